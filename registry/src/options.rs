//! Typed, documented codec options and their validation.

use crate::spec::{Graph, Stage, Value};
use crate::{Error, Result};
use std::fmt;

/// The type (and range) an option accepts.
#[derive(Debug, Clone, Copy)]
pub enum OptionType {
    /// An integer in `min..=max`.
    Int { min: i64, max: i64 },
    /// A finite float in `min..=max`.
    Float { min: f64, max: f64 },
    /// One word out of a fixed list.
    Choice(&'static [&'static str]),
    /// A nested graph spec (`background=bin(2,2)|sz(abs=90)`).
    Graph,
    /// Integers in `min..=max`, written as several positional arguments (`bin(2,2)`); takes the rest.
    IntList { min: i64, max: i64 },
    /// Free text in quotes.
    Text,
}

impl fmt::Display for OptionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionType::Int { min, max } => write!(f, "integer in {min}..={max}"),
            OptionType::Float { min, max } => write!(
                f,
                "number in {}..={}",
                format_float(*min),
                format_float(*max)
            ),
            OptionType::Choice(c) => write!(f, "one of {}", c.join("|")),
            OptionType::Graph => f.write_str("graph spec"),
            OptionType::IntList { min, max } => {
                write!(f, "integers in {min}..={max}, comma separated")
            }
            OptionType::Text => f.write_str("\"quoted text\""),
        }
    }
}

/// One documented option of a codec.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    pub name: &'static str,
    pub ty: OptionType,
    /// Default as spec text (`"3"`, `"lorenzo"`, `"shuffle|zstd(3)"`); `""` means "not set".
    pub default: &'static str,
    pub doc: &'static str,
}

/// A validated option value.
#[derive(Debug, Clone, PartialEq)]
pub enum OptValue {
    Int(i64),
    Float(f64),
    Word(String),
    Graph(Graph),
    IntList(Vec<i64>),
    Text(String),
}

impl OptValue {
    /// The spec value that prints this option (canonical form).
    pub fn to_value(&self) -> Vec<Value> {
        match self {
            OptValue::Int(i) => vec![Value::Number(i.to_string())],
            OptValue::Float(x) => vec![Value::Number(format_float(*x))],
            OptValue::Word(w) => vec![Value::Graph(Graph::word(w))],
            OptValue::Graph(g) => vec![Value::Graph(g.clone())],
            OptValue::IntList(l) => l.iter().map(|i| Value::Number(i.to_string())).collect(),
            OptValue::Text(t) => vec![Value::Text(t.clone())],
        }
    }
}

/// Option values as the Rust types codecs read them with [`Config::get`].
pub trait FromOptValue: Sized {
    fn from_opt(v: &OptValue) -> Option<Self>;
}

impl FromOptValue for i64 {
    fn from_opt(v: &OptValue) -> Option<Self> {
        match v {
            OptValue::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl FromOptValue for f64 {
    fn from_opt(v: &OptValue) -> Option<Self> {
        match v {
            OptValue::Float(x) => Some(*x),
            OptValue::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}

/// Choice and text options.
impl FromOptValue for String {
    fn from_opt(v: &OptValue) -> Option<Self> {
        match v {
            OptValue::Word(w) | OptValue::Text(w) => Some(w.clone()),
            _ => None,
        }
    }
}

impl FromOptValue for Graph {
    fn from_opt(v: &OptValue) -> Option<Self> {
        match v {
            OptValue::Graph(g) => Some(g.clone()),
            _ => None,
        }
    }
}

impl FromOptValue for Vec<i64> {
    fn from_opt(v: &OptValue) -> Option<Self> {
        match v {
            OptValue::IntList(l) => Some(l.clone()),
            _ => None,
        }
    }
}

/// Shortest text that reads back as the same f64.
pub fn format_float(x: f64) -> String {
    let s = format!("{x}");
    if s.len() > 12 {
        format!("{x:e}")
    } else {
        s
    }
}

/// The options of one stage after validation against its [`OptionSpec`] table, defaults filled in.
#[derive(Debug, Clone)]
pub struct Config {
    /// Path of this stage for error messages (`roibin/background/sz`).
    pub path: String,
    /// What the stage is built for; meta codecs build their nested graphs for the same.
    pub purpose: crate::Purpose,
    values: Vec<(&'static OptionSpec, Option<OptValue>)>,
}

impl Config {
    /// Validate a parsed stage against `specs`. `path` prefixes every error.
    pub fn from_stage(stage: &Stage, specs: &'static [OptionSpec], path: &str) -> Result<Config> {
        let mut values: Vec<(&'static OptionSpec, Option<OptValue>)> = specs
            .iter()
            .map(|s| Ok((s, parse_default(s, path)?)))
            .collect::<Result<_>>()?;
        let mut set = vec![false; specs.len()];
        let mut next_positional = 0;
        let mut list_acc: Option<(usize, Vec<i64>)> = None;
        for arg in &stage.args {
            let idx = match &arg.name {
                Some(n) => specs.iter().position(|s| s.name == n).ok_or_else(|| {
                    let known: Vec<&str> = specs.iter().map(|s| s.name).collect();
                    Error::option(
                        format!("{path}:{n}"),
                        if known.is_empty() {
                            format!("`{}` takes no options", stage.name)
                        } else {
                            format!("unknown option; `{}` has: {}", stage.name, known.join(", "))
                        },
                    )
                })?,
                None => {
                    if let Some((i, acc)) = list_acc.as_mut() {
                        acc.push(int_in_range(&arg.value, &specs[*i], path)?);
                        continue;
                    }
                    if next_positional >= specs.len() {
                        return Err(Error::option(
                            path,
                            format!(
                                "too many positional arguments: `{}` takes at most {}",
                                stage.name,
                                specs.len()
                            ),
                        ));
                    }
                    next_positional += 1;
                    next_positional - 1
                }
            };
            if set[idx] {
                return Err(Error::option(
                    format!("{path}:{}", specs[idx].name),
                    "given twice",
                ));
            }
            set[idx] = true;
            let spec = &specs[idx];
            let v = if let (OptionType::IntList { .. }, None) = (spec.ty, &arg.name) {
                list_acc = Some((idx, vec![int_in_range(&arg.value, spec, path)?]));
                continue;
            } else {
                typed(&arg.value, spec, path)?
            };
            values[idx].1 = Some(v);
        }
        if let Some((i, acc)) = list_acc {
            values[i].1 = Some(OptValue::IntList(acc));
        }
        Ok(Config {
            path: path.to_string(),
            purpose: crate::Purpose::Encode,
            values,
        })
    }

    /// The nested graphs among the options (given or default), by option name.
    pub fn graphs(&self) -> Vec<(&'static str, &Graph)> {
        self.values
            .iter()
            .filter_map(|(s, v)| match v {
                Some(OptValue::Graph(g)) => Some((s.name, g)),
                _ => None,
            })
            .collect()
    }

    /// The value of a declared option (its default when not given; `None` when it has no
    /// default and was not given). Asking for an option the codec did not declare is an
    /// error that names it, never a panic: it can be reached from a file's stored spec.
    fn lookup(&self, name: &str) -> Result<Option<&OptValue>> {
        self.values
            .iter()
            .find(|(s, _)| s.name == name)
            .map(|(_, v)| v.as_ref())
            .ok_or_else(|| {
                Error::option(
                    format!("{}:{name}", self.path),
                    "the codec asked for an option it does not declare (a bug in the codec)",
                )
            })
    }

    /// A declared option's value as `T`, or `None` when it has no default and was not given.
    /// Defaults live in the option's declaration only ([`OptionSpec::default`]).
    pub fn get_opt<T: FromOptValue>(&self, name: &str) -> Result<Option<T>> {
        match self.lookup(name)? {
            None => Ok(None),
            Some(v) => T::from_opt(v).map(Some).ok_or_else(|| {
                Error::option(
                    format!("{}:{name}", self.path),
                    format!("holds {v:?}, not the type the codec reads (a bug in the codec)"),
                )
            }),
        }
    }

    /// A declared option's value (given, or its declared default) as `T`.
    pub fn get<T: FromOptValue>(&self, name: &str) -> Result<T> {
        self.get_opt(name)?.ok_or_else(|| {
            Error::option(
                format!("{}:{name}", self.path),
                "must be given (it has no default)",
            )
        })
    }

    /// The `threads` option, capped at the cores this process may use: a stored or written
    /// value can never create more threads than there are cores.
    pub fn threads(&self) -> Result<usize> {
        let t: i64 = self.get("threads")?;
        Ok(crate::threads::capped(t as usize))
    }

    /// Replace a nested graph (used when canonicalising meta codecs' children).
    pub fn set_graph(&mut self, name: &str, g: Graph) {
        if let Some(v) = self.values.iter_mut().find(|(s, _)| s.name == name) {
            v.1 = Some(OptValue::Graph(g));
        }
    }

    /// The canonical stage: every option that differs from its default, named, in declared order.
    pub fn to_stage(&self, name: &str) -> Result<Stage> {
        let mut args = vec![];
        for (spec, v) in &self.values {
            let Some(v) = v else { continue };
            if parse_default(spec, &self.path)?.as_ref() == Some(v) {
                continue;
            }
            let vals = v.to_value();
            if let OptionType::IntList { .. } = spec.ty {
                // Lists print positionally: they are the only form that can carry several values.
                args.extend(
                    vals.into_iter()
                        .map(|value| crate::spec::Arg { name: None, value }),
                );
            } else {
                args.extend(vals.into_iter().map(|value| crate::spec::Arg {
                    name: Some(spec.name.to_string()),
                    value,
                }));
            }
        }
        // Positional list arguments must come first to re-parse identically.
        args.sort_by_key(|a| a.name.is_some());
        Ok(Stage {
            name: name.to_string(),
            args,
        })
    }
}

fn parse_default(spec: &OptionSpec, path: &str) -> Result<Option<OptValue>> {
    if spec.default.is_empty() {
        return Ok(None);
    }
    let g: Graph = format!("x({})", spec.default).parse().map_err(|e| {
        Error::option(
            format!("{path}:{}", spec.name),
            format!("bad built-in default: {e}"),
        )
    })?;
    let args = &g.stages[0].args;
    if let OptionType::IntList { .. } = spec.ty {
        return Ok(Some(OptValue::IntList(
            args.iter()
                .map(|a| int_in_range(&a.value, spec, path))
                .collect::<Result<_>>()?,
        )));
    }
    Ok(Some(typed(&args[0].value, spec, path)?))
}

fn int_in_range(v: &Value, spec: &OptionSpec, path: &str) -> Result<i64> {
    let (min, max) = match spec.ty {
        OptionType::Int { min, max } | OptionType::IntList { min, max } => (min, max),
        _ => unreachable!(),
    };
    let err = |m: String| Error::option(format!("{path}:{}", spec.name), m);
    let Value::Number(t) = v else {
        return Err(err(format!(
            "expected an {}, found `{}`",
            spec.ty,
            shorten(&v.to_string())
        )));
    };
    let i: i64 = t.parse().map_err(|_| {
        err(match t.parse::<f64>() {
            Ok(x) if x.fract() == 0.0 => {
                format!("{} is out of range: expected an {}", shorten(t), spec.ty)
            }
            _ => format!("expected an {}, found `{}`", spec.ty, shorten(t)),
        })
    })?;
    if i < min || i > max {
        return Err(err(format!(
            "{} is out of range: expected an {}",
            shorten(t),
            spec.ty
        )));
    }
    Ok(i)
}

/// A number as the user wrote it, cut short for messages (a 300-digit literal stays readable).
fn shorten(t: &str) -> String {
    if t.len() <= 24 {
        return t.to_string();
    }
    match t.parse::<f64>() {
        Ok(x) if x.is_finite() => format!("{x:e}"),
        _ => {
            let head: String = t.chars().take(16).collect();
            format!("{head}… ({} characters)", t.len())
        }
    }
}

fn typed(v: &Value, spec: &OptionSpec, path: &str) -> Result<OptValue> {
    let err = |m: String| Error::option(format!("{path}:{}", spec.name), m);
    match spec.ty {
        OptionType::Int { .. } | OptionType::IntList { .. } => {
            let i = int_in_range(v, spec, path)?;
            Ok(match spec.ty {
                OptionType::Int { .. } => OptValue::Int(i),
                _ => OptValue::IntList(vec![i]),
            })
        }
        OptionType::Float { min, max } => {
            let Value::Number(t) = v else {
                return Err(err(format!(
                    "expected a {}, found `{}`",
                    spec.ty,
                    shorten(&v.to_string())
                )));
            };
            let x: f64 = t
                .parse()
                .map_err(|_| err(format!("expected a {}, found `{}`", spec.ty, shorten(t))))?;
            if !x.is_finite() || x < min || x > max {
                return Err(err(format!(
                    "{} is out of range: expected a {}",
                    shorten(t),
                    spec.ty
                )));
            }
            Ok(OptValue::Float(x))
        }
        OptionType::Choice(choices) => match v.as_word() {
            Some(w) if choices.contains(&w) => Ok(OptValue::Word(w.to_string())),
            _ => Err(err(format!(
                "expected {}, found `{}`",
                spec.ty,
                shorten(&v.to_string())
            ))),
        },
        OptionType::Graph => match v {
            Value::Graph(g) => Ok(OptValue::Graph(g.clone())),
            _ => Err(err(format!(
                "expected a graph spec, found `{}`",
                shorten(&v.to_string())
            ))),
        },
        OptionType::Text => match v {
            Value::Text(t) => Ok(OptValue::Text(t.clone())),
            _ => Err(err(format!(
                "expected \"quoted text\", found `{}`",
                shorten(&v.to_string())
            ))),
        },
    }
}

/// The `threads` option every multi-threaded codec declares, so they all read the same.
pub const THREADS: OptionSpec = OptionSpec {
    name: "threads",
    ty: OptionType::Int { min: 0, max: 1024 },
    default: "0",
    doc: crate::threads::THREADS_DOC,
};

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: &[OptionSpec] = &[
        OptionSpec {
            name: "level",
            ty: OptionType::Int { min: 1, max: 9 },
            default: "3",
            doc: "",
        },
        OptionSpec {
            name: "abs",
            ty: OptionType::Float {
                min: 0.0,
                max: 1e30,
            },
            default: "",
            doc: "",
        },
    ];

    #[test]
    fn defaults_come_from_the_declaration_and_undeclared_options_are_errors() {
        let g: Graph = "x(abs=2)".parse().unwrap();
        let c = Config::from_stage(&g.stages[0], OPTS, "x").unwrap();
        assert_eq!(c.get::<i64>("level").unwrap(), 3);
        assert_eq!(c.get::<f64>("abs").unwrap(), 2.0);
        let g: Graph = "x".parse().unwrap();
        let c = Config::from_stage(&g.stages[0], OPTS, "x").unwrap();
        assert_eq!(c.get_opt::<f64>("abs").unwrap(), None);
        assert!(c
            .get::<f64>("abs")
            .unwrap_err()
            .to_string()
            .contains("must be given"));
        // A codec asking for an option it never declared gets an error, not a panic.
        let e = c.get::<i64>("block").unwrap_err().to_string();
        assert!(
            e.contains("x:block") && e.contains("does not declare"),
            "{e}"
        );
        // The wrong type is an error too.
        assert!(c.get::<String>("level").is_err());
        // Range messages print bounds and long numbers short.
        let g: Graph = format!("x(abs={})", "9".repeat(400)).parse().unwrap();
        let e = Config::from_stage(&g.stages[0], OPTS, "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("0..=1e30") && e.len() < 120, "{e}");
    }
}
