//! The one-line graph spec language.
//!
//! ```text
//! graph  := stage ('|' stage)*
//! stage  := ident ('(' [arg (',' arg)*] ')')?
//! arg    := ident '=' value | value
//! value  := number | "quoted string" | graph
//! ```
//! `shuffle|zstd(3)`, `sz(abs=0.5)`, `roibin(roi=8, background=bin(2,2)|sz(abs=90))`.
//! A bare identifier is a one-stage graph; options typed as text read it as a word.
//!
//! ```
//! use roibin_registry::spec::Graph;
//! let g: Graph = "shuffle | zstd( 3 )".parse().unwrap();
//! assert_eq!(g.to_string(), "shuffle|zstd(3)");
//! ```

use crate::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// A chain of stages joined by `|`.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub stages: Vec<Stage>,
}

/// One codec invocation: a name and its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub name: String,
    pub args: Vec<Arg>,
}

/// A positional (`name == None`) or named argument.
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    pub name: Option<String>,
    pub value: Value,
}

/// An argument value as written. Typing happens against the codec's option table.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number kept as its source text, so printing never changes it.
    Number(String),
    /// A quoted string.
    Text(String),
    /// A nested graph; a bare word such as `lorenzo` is a one-stage graph.
    Graph(Graph),
}

impl Value {
    /// The bare word this value is, if it is a one-stage graph without arguments.
    pub fn as_word(&self) -> Option<&str> {
        match self {
            Value::Graph(g) if g.stages.len() == 1 && g.stages[0].args.is_empty() => {
                Some(&g.stages[0].name)
            }
            _ => None,
        }
    }
}

impl Graph {
    /// A graph of one stage without arguments.
    pub fn word(name: &str) -> Graph {
        Graph {
            stages: vec![Stage {
                name: name.to_string(),
                args: vec![],
            }],
        }
    }

    /// Whether a stage called `name` appears anywhere, nested graphs included.
    ///
    /// ```
    /// let g: roibin_registry::Graph = "roibin(peaks=given,background=bin(2,2)|sz(abs=90))".parse().unwrap();
    /// assert!(g.uses("given") && g.uses("sz") && !g.uses("zfp"));
    /// ```
    pub fn uses(&self, name: &str) -> bool {
        self.stages.iter().any(|s| {
            s.name == name
                || s.args
                    .iter()
                    .any(|a| matches!(&a.value, Value::Graph(g) if g.uses(name)))
        })
    }

    /// The same graph with every argument called `option` removed, nested graphs included.
    ///
    /// Run-time options (`threads`) change how a chunk is computed, never its bytes: chunks
    /// store the spec without them so the same data encode identically under any allocation.
    ///
    /// ```
    /// let g: roibin_registry::Graph = "roibin(threads=2,background=bin(2,2,threads=1)|sz(abs=9))".parse().unwrap();
    /// assert_eq!(g.without_option("threads").to_string(), "roibin(background=bin(2,2)|sz(abs=9))");
    /// ```
    pub fn without_option(&self, option: &str) -> Graph {
        self.without_args(&|a| a.name.as_deref() == Some(option))
    }

    /// The same graph with every quoted-text argument removed, nested graphs included.
    ///
    /// Text options name encode-time inputs (a finder's `mask` and `radius` files); a decoder
    /// is built from its chunk's spec without them, so no file name ever reaches it.
    ///
    /// ```
    /// let g: roibin_registry::Graph = r#"roibin(peaks=pf8(mask="/dev/zero"),roi=4)"#.parse().unwrap();
    /// assert_eq!(g.without_text().to_string(), "roibin(peaks=pf8,roi=4)");
    /// ```
    pub fn without_text(&self) -> Graph {
        self.without_args(&|a| matches!(a.value, Value::Text(_)))
    }

    /// The same graph without the arguments `drop` picks, nested graphs included.
    fn without_args(&self, drop: &dyn Fn(&Arg) -> bool) -> Graph {
        Graph {
            stages: self
                .stages
                .iter()
                .map(|s| Stage {
                    name: s.name.clone(),
                    args: s
                        .args
                        .iter()
                        .filter(|a| !drop(a))
                        .map(|a| Arg {
                            name: a.name.clone(),
                            value: match &a.value {
                                Value::Graph(g) => Value::Graph(g.without_args(drop)),
                                v => v.clone(),
                            },
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// The path of every stage, nested graphs included, in the form [`Graph::set_option`] takes
    /// (`stage/arg/stage`).
    ///
    /// ```
    /// let g: roibin_registry::Graph = "roibin(peaks=pf8,background=bin(2,2)|sz(abs=9))".parse().unwrap();
    /// assert_eq!(g.stage_paths(), ["roibin", "roibin/peaks/pf8", "roibin/background/bin", "roibin/background/sz"]);
    /// ```
    pub fn stage_paths(&self) -> Vec<String> {
        let mut out = vec![];
        for s in &self.stages {
            out.push(s.name.clone());
            for a in &s.args {
                if let (Some(arg), Value::Graph(g)) = (&a.name, &a.value) {
                    out.extend(
                        g.stage_paths()
                            .into_iter()
                            .map(|p| format!("{}/{arg}/{p}", s.name)),
                    );
                }
            }
        }
        out
    }

    /// Set an option by its hierarchical path, LibPressio style: `stage/arg/stage:option`.
    ///
    /// ```
    /// use roibin_registry::spec::{Graph, Value};
    /// let mut g: Graph = "roibin(background=bin(2,2)|sz(abs=90))".parse().unwrap();
    /// g.set_option("roibin/background/sz:abs", Value::Number("45".into())).unwrap();
    /// assert_eq!(g.to_string(), "roibin(background=bin(2,2)|sz(abs=45))");
    /// ```
    pub fn set_option(&mut self, path: &str, value: Value) -> Result<()> {
        let (stages, option) = split_option_path(path)?;
        let stage = self.stage_mut(stages, path)?;
        match stage
            .args
            .iter_mut()
            .find(|a| a.name.as_deref() == Some(option))
        {
            Some(a) => a.value = value,
            None => stage.args.push(Arg {
                name: Some(option.to_string()),
                value,
            }),
        }
        Ok(())
    }

    /// The value an option has in this graph, by the same path [`Graph::set_option`] takes;
    /// `None` where the graph leaves it at its default (or the path names no stage).
    ///
    /// ```
    /// let g: roibin_registry::Graph = "roibin(background=bin(2,2)|sz(abs=90))".parse().unwrap();
    /// assert_eq!(g.option("roibin/background/sz:abs").unwrap().to_string(), "90");
    /// assert!(g.option("roibin/background/sz:threads").is_none());
    /// ```
    pub fn option(&self, path: &str) -> Option<&Value> {
        let (stages, option) = split_option_path(path).ok()?;
        let parts: Vec<&str> = stages.split('/').collect();
        let mut graph = self;
        let mut i = 0;
        loop {
            let stage = graph.stages.iter().find(|s| s.name == parts[i])?;
            let arg = |name: &str| stage.args.iter().find(|a| a.name.as_deref() == Some(name));
            if i + 1 == parts.len() {
                return arg(option).map(|a| &a.value);
            }
            graph = match &arg(parts[i + 1])?.value {
                Value::Graph(g) => g,
                _ => return None,
            };
            i += 2;
            if i >= parts.len() {
                return None;
            }
        }
    }

    /// The stage at `stages` (`stage/arg/stage`); `path` is the full option path, for errors.
    fn stage_mut(&mut self, stages: &str, path: &str) -> Result<&mut Stage> {
        let parts: Vec<&str> = stages.split('/').collect();
        let mut graph = self;
        let mut i = 0;
        loop {
            let name = parts[i];
            let stage = graph
                .stages
                .iter_mut()
                .find(|s| s.name == name)
                .ok_or_else(|| Error::option(path, format!("no stage `{name}` at this level")))?;
            if i + 1 == parts.len() {
                return Ok(stage);
            }
            let arg_name = parts[i + 1];
            let arg = stage
                .args
                .iter_mut()
                .find(|a| a.name.as_deref() == Some(arg_name))
                .ok_or_else(|| {
                    Error::option(
                        path,
                        format!("stage `{name}` has no nested graph `{arg_name}`"),
                    )
                })?;
            graph = match &mut arg.value {
                Value::Graph(g) => g,
                _ => return Err(Error::option(path, format!("`{arg_name}` is not a graph"))),
            };
            i += 2;
            if i >= parts.len() {
                return Err(Error::option(
                    path,
                    "path ends at an argument; add `/stage:option`",
                ));
            }
        }
    }
}

fn split_option_path(path: &str) -> Result<(&str, &str)> {
    path.rsplit_once(':')
        .ok_or_else(|| Error::option(path, "expected a path like `stage/arg/stage:option`"))
}

impl fmt::Display for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.stages.iter().enumerate() {
            if i > 0 {
                f.write_str("|")?;
            }
            s.fmt(f)?;
        }
        Ok(())
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if self.args.is_empty() {
            return Ok(());
        }
        f.write_str("(")?;
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if let Some(n) = &a.name {
                write!(f, "{n}=")?;
            }
            a.value.fmt(f)?;
        }
        f.write_str(")")
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(n) => f.write_str(n),
            Value::Text(t) => {
                f.write_str("\"")?;
                for c in t.chars() {
                    match c {
                        '"' => f.write_str("\\\"")?,
                        '\\' => f.write_str("\\\\")?,
                        c => write!(f, "{c}")?,
                    }
                }
                f.write_str("\"")
            }
            Value::Graph(g) => g.fmt(f),
        }
    }
}

impl FromStr for Graph {
    type Err = Error;
    fn from_str(s: &str) -> Result<Graph> {
        if s.len() > MAX_SPEC_BYTES {
            return Err(Error::Other(format!(
                "spec of {} bytes: longer than the {MAX_SPEC_BYTES} a spec may have",
                s.len()
            )));
        }
        let mut p = Parser {
            src: s,
            chars: s.char_indices().collect(),
            pos: 0,
            depth: 0,
            stages: 0,
        };
        let g = p.graph()?;
        p.skip_ws();
        if p.pos < p.chars.len() {
            return Err(p.error(format!(
                "unexpected `{}` after the end of the graph",
                p.chars[p.pos].1
            )));
        }
        Ok(g)
    }
}

/// Deepest nesting of graphs inside arguments a spec may have. Parsing, building and
/// printing recurse once per level; the cap keeps that far from any stack limit, and no real
/// graph comes close (`roibin(background=chunked(codec=bin(2,2)|sz))` is 3 deep).
pub const MAX_DEPTH: usize = 64;
/// Most stages a spec may hold in all, nested ones included: building a pipeline is linear
/// in this, and decoding runs each stage once.
pub const MAX_STAGES: usize = 256;
/// Longest spec text accepted: what a chunk can store (its spec has a u16 length).
pub const MAX_SPEC_BYTES: usize = u16::MAX as usize;

struct Parser<'a> {
    src: &'a str,
    chars: Vec<(usize, char)>,
    pos: usize,
    /// Graphs open around the current position.
    depth: usize,
    /// Stages parsed so far, nested ones included.
    stages: usize,
}

impl Parser<'_> {
    fn error(&self, message: impl Into<String>) -> Error {
        Error::Syntax {
            spec: self.src.to_string(),
            column: self.pos + 1,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).map(|c| c.1)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn graph(&mut self) -> Result<Graph> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(format!(
                "graphs nested more than {MAX_DEPTH} deep; no codec needs that"
            )));
        }
        self.depth += 1;
        let mut stages = vec![self.stage()?];
        while self.eat('|') {
            stages.push(self.stage()?);
        }
        self.depth -= 1;
        Ok(Graph { stages })
    }

    fn ident(&mut self) -> Result<String> {
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
            Some(c) => return Err(self.error(format!("expected a codec name, found `{c}`"))),
            None => return Err(self.error("expected a codec name, found the end of the spec")),
        }
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.pos += 1;
        }
        Ok(self.chars[start..self.pos].iter().map(|c| c.1).collect())
    }

    fn stage(&mut self) -> Result<Stage> {
        let name = self.ident()?;
        self.stages += 1;
        if self.stages > MAX_STAGES {
            return Err(self.error(format!("more than {MAX_STAGES} stages in one spec")));
        }
        let mut args = vec![];
        if self.eat('(') && !self.eat(')') {
            loop {
                args.push(self.arg()?);
                if self.eat(')') {
                    break;
                }
                if !self.eat(',') {
                    return Err(match self.peek() {
                        Some(c) => self.error(format!("expected `,` or `)`, found `{c}`")),
                        None => self.error(format!("missing `)` to close `{name}(`")),
                    });
                }
            }
        }
        Ok(Stage { name, args })
    }

    fn arg(&mut self) -> Result<Arg> {
        self.skip_ws();
        let save = self.pos;
        if self
            .peek()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        {
            let name = self.ident()?;
            if self.eat('=') {
                let value = self.value()?;
                return Ok(Arg {
                    name: Some(name),
                    value,
                });
            }
            self.pos = save;
        }
        Ok(Arg {
            name: None,
            value: self.value()?,
        })
    }

    fn value(&mut self) -> Result<Value> {
        self.skip_ws();
        match self.peek() {
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => self.number(),
            Some('"') => self.text(),
            Some(_) => Ok(Value::Graph(self.graph()?)),
            None => Err(self.error("expected a value, found the end of the spec")),
        }
    }

    fn number(&mut self) -> Result<Value> {
        let start = self.pos;
        if matches!(self.peek(), Some('-' | '+')) {
            self.pos += 1;
        }
        let mut digits = 0;
        while let Some(c) = self.peek() {
            if c.is_ascii_digit() {
                digits += 1;
            } else if !(c == '.'
                || c == 'e'
                || c == 'E'
                || ((c == '-' || c == '+') && matches!(self.chars[self.pos - 1].1, 'e' | 'E')))
            {
                break;
            }
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos].iter().map(|c| c.1).collect();
        if digits == 0 || text.parse::<f64>().is_err() {
            self.pos = start;
            return Err(self.error(format!("`{text}` is not a number")));
        }
        Ok(Value::Number(text))
    }

    fn text(&mut self) -> Result<Value> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    self.pos = start;
                    return Err(self.error("unterminated string"));
                }
                Some('"') => {
                    self.pos += 1;
                    return Ok(Value::Text(out));
                }
                Some('\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ ('"' | '\\')) => out.push(c),
                        _ => return Err(self.error("only \\\" and \\\\ may be escaped")),
                    }
                    self.pos += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }
}

/// A spec as users may give it: the text itself, or `@FILE` for a file that holds it.
///
/// `@FILE` keeps cd_values short where clients cap them (h5repack 1.10 takes at most 20
/// values in `UD=`): the plugin reads the file when the dataset is created and stores the
/// resolved spec in the file, so readers never need it. It is an encode-time input only:
/// nothing that decodes calls this. Only a regular file of at most [`MAX_SPEC_BYTES`] is
/// read (never a FIFO or a device, which could hang or exhaust the writer), and an error never
/// quotes what the file holds.
///
/// ```
/// assert_eq!(roibin_registry::spec::spec_text("zstd(3)").unwrap(), "zstd(3)");
/// assert!(roibin_registry::spec::spec_text("@/no/such/file").unwrap_err().to_string().contains("/no/such/file"));
/// assert!(roibin_registry::spec::spec_text("@/dev/zero").unwrap_err().to_string().contains("not a regular file"));
/// ```
pub fn spec_text(s: &str) -> Result<String> {
    let Some(path) = s.trim().strip_prefix('@') else {
        return Ok(s.to_string());
    };
    let text = read_small_file(path, MAX_SPEC_BYTES).map_err(|e| {
        Error::Other(format!(
            "spec file `{path}`: {e} (write the spec in it, or give the spec itself)"
        ))
    })?;
    let text = text.trim().to_string();
    if let Err(e) = text.parse::<Graph>() {
        // Say where, not what: the file may not be a spec at all (and may be private).
        let at = match e {
            Error::Syntax { column, .. } => format!(" (syntax error at column {column})"),
            _ => String::new(),
        };
        return Err(Error::Other(format!(
            "spec file `{path}` does not hold a roibin graph spec{at}"
        )));
    }
    Ok(text)
}

/// Read a regular file of at most `limit` bytes as UTF-8 text, without blocking on FIFOs or
/// reading devices: the path is opened non-blocking and checked before anything is read.
pub fn read_small_file(path: &str, limit: usize) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    if meta.len() > limit as u64 {
        return Err(bad(format!(
            "{} bytes, more than the {limit} allowed",
            meta.len()
        )));
    }
    let mut text = String::new();
    file.take(limit as u64 + 1).read_to_string(&mut text)?;
    if text.len() > limit {
        return Err(bad(format!("more than the {limit} bytes allowed")));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_nested() {
        let s = "roibin(peaks=pf8(snr=6,min_pix=2,max_pix=30), roi=8, roi_codec=shuffle|zstd(3), background=bin(2,2)|sz(abs=90))";
        let g: Graph = s.parse().unwrap();
        assert_eq!(
            g.to_string(),
            "roibin(peaks=pf8(snr=6,min_pix=2,max_pix=30),roi=8,roi_codec=shuffle|zstd(3),background=bin(2,2)|sz(abs=90))"
        );
        assert_eq!(g.stages[0].args.len(), 4);
    }

    #[test]
    fn errors_point_at_the_column() {
        for (spec, col) in [
            ("zstd(3", 7),
            ("zstd(3;)", 7),
            ("|zstd", 1),
            ("zstd(level=)", 12),
            ("zstd(1e)", 6),
            ("zstd)", 5),
        ] {
            match spec.parse::<Graph>() {
                Err(Error::Syntax { column, .. }) => assert_eq!(column, col, "{spec}"),
                other => panic!("{spec}: {other:?}"),
            }
        }
        let msg = "zstd(3".parse::<Graph>().unwrap_err().to_string();
        assert!(
            msg.contains("column 7") && msg.contains("missing `)`"),
            "{msg}"
        );
    }

    fn ident() -> impl Strategy<Value = String> {
        "[a-z_][a-z0-9_]{0,6}"
    }

    fn number() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i32>().prop_map(|i| i.to_string()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| format!("{f:e}")),
            (0u32..1000, 0u32..1000).prop_map(|(a, b)| format!("{a}.{b}")),
        ]
    }

    fn graph() -> impl Strategy<Value = Graph> {
        let leaf = prop::collection::vec(ident(), 1..3).prop_map(|names| Graph {
            stages: names
                .into_iter()
                .map(|name| Stage { name, args: vec![] })
                .collect(),
        });
        leaf.prop_recursive(4, 32, 4, |inner| {
            let value = prop_oneof![
                number().prop_map(Value::Number),
                "[ -~]{0,8}".prop_map(Value::Text),
                inner.prop_map(Value::Graph),
            ];
            let arg =
                (prop::option::of(ident()), value).prop_map(|(name, value)| Arg { name, value });
            let stage = (ident(), prop::collection::vec(arg, 0..4))
                .prop_map(|(name, args)| Stage { name, args });
            prop::collection::vec(stage, 1..4).prop_map(|stages| Graph { stages })
        })
    }

    proptest! {
        #[test]
        fn parse_print_parse_is_identity(g in graph()) {
            let printed = g.to_string();
            let parsed: Graph = printed.parse().unwrap();
            prop_assert_eq!(&parsed, &g);
            prop_assert_eq!(parsed.to_string(), printed);
        }

        #[test]
        fn parser_never_panics(s in "[ -~]{0,40}") {
            let _ = s.parse::<Graph>();
        }
    }
}
