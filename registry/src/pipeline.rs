//! A graph built from a spec: stages resolved against the registry and an input kind.

use crate::codec::{lookup, Codec};
use crate::options::Config;
use crate::spec::{Arg, Graph, Stage, Value};
use crate::{DataKind, Result};

/// A ready-to-run chain of codecs for one input kind.
pub struct Pipeline {
    stages: Vec<Box<dyn Codec>>,
    /// The kind entering each stage (`kinds[i]` is stage `i`'s input); one more for the output.
    kinds: Vec<DataKind>,
    canonical: Graph,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pipeline({})", self.canonical)
    }
}

impl Pipeline {
    /// Validate `graph` against the registry for data of kind `input`, expanding meta codecs.
    ///
    /// `path` prefixes option errors (empty at the top level).
    pub fn build(graph: &Graph, input: &DataKind, path: &str) -> Result<Pipeline> {
        let mut stages = vec![];
        let mut kinds = vec![input.clone()];
        let mut canonical = Graph { stages: vec![] };
        let mut todo: Vec<Stage> = graph.stages.iter().rev().cloned().collect();
        while let Some(stage) = todo.pop() {
            let info = lookup(&stage.name)?;
            let here = if path.is_empty() {
                stage.name.clone()
            } else {
                format!("{path}/{}", stage.name)
            };
            let config = Config::from_stage(&stage, info.options, &here)?;
            let kind = kinds.last().expect("starts non-empty").clone();
            info.accepts.check(info.name, &kind)?;
            let codec = (info.build)(&config)?;
            if let Some(expanded) = codec.expand(&kind) {
                todo.extend(expanded.stages.into_iter().rev());
                continue;
            }
            let out = codec.output(&kind)?;
            let mut canon = config.to_stage(info.name)?;
            for (name, child) in codec.canonical_children() {
                for a in canon
                    .args
                    .iter_mut()
                    .filter(|a| a.name.as_deref() == Some(name))
                {
                    a.value = Value::Graph(child.clone());
                }
                if !canon.args.iter().any(|a| a.name.as_deref() == Some(name)) {
                    canon.args.push(Arg {
                        name: Some(name.to_string()),
                        value: Value::Graph(child),
                    });
                }
            }
            canonical.stages.push(canon);
            stages.push(codec);
            kinds.push(out);
        }
        Ok(Pipeline {
            stages,
            kinds,
            canonical,
        })
    }

    /// Parse and build in one go.
    pub fn from_spec(spec: &str, input: &DataKind) -> Result<Pipeline> {
        Pipeline::build(&spec.parse()?, input, "")
    }

    /// The canonical spec: meta codecs expanded, options in declared order, defaults omitted.
    pub fn canonical(&self) -> &Graph {
        &self.canonical
    }

    /// The kind this pipeline was built for.
    pub fn input(&self) -> &DataKind {
        &self.kinds[0]
    }

    /// What the last stage produces.
    pub fn output(&self) -> &DataKind {
        self.kinds.last().expect("non-empty")
    }

    /// Run every stage's encoder.
    pub fn encode(&self, data: &[u8]) -> Result<Vec<u8>> {
        let mut owned: Option<Vec<u8>> = None;
        for (codec, kind) in self.stages.iter().zip(&self.kinds) {
            let src = owned.as_deref().unwrap_or(data);
            let mut out = Vec::with_capacity(src.len() / 2 + 64);
            codec.encode(src, kind, &mut out)?;
            owned = Some(out);
        }
        Ok(owned.unwrap_or_else(|| data.to_vec()))
    }

    /// Run every stage's decoder, last stage first.
    pub fn decode(&self, data: &[u8]) -> Result<Vec<u8>> {
        let mut owned: Option<Vec<u8>> = None;
        for (codec, kind) in self.stages.iter().zip(&self.kinds).rev() {
            let src = owned.as_deref().unwrap_or(data);
            let mut out = Vec::with_capacity(match kind {
                DataKind::Array(m) => m.nbytes(),
                DataKind::Bytes => src.len() * 2,
            });
            codec.decode(src, kind, &mut out)?;
            if let DataKind::Array(m) = kind {
                if out.len() != m.nbytes() {
                    return Err(crate::Error::corrupt(
                        &self.canonical.to_string(),
                        format!(
                            "a stage decoded {} bytes where {m} needs {}",
                            out.len(),
                            m.nbytes()
                        ),
                    ));
                }
            }
            owned = Some(out);
        }
        Ok(owned.unwrap_or_else(|| data.to_vec()))
    }
}
