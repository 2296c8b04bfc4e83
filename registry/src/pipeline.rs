//! A graph built from a spec: stages resolved against the registry and an input kind.

use crate::codec::{lookup, Codec, Purpose};
use crate::options::Config;
use crate::spec::{Arg, Graph, Stage, Value};
use crate::{DataKind, Error, Result};
use std::cell::RefCell;

/// A ready-to-run chain of codecs for one input kind.
pub struct Pipeline {
    stages: Vec<Box<dyn Codec>>,
    /// Each stage's registered name (for [`crate::profile`]).
    names: Vec<&'static str>,
    /// The kind entering each stage (`kinds[i]` is stage `i`'s input); one more for the output.
    kinds: Vec<DataKind>,
    canonical: Graph,
    /// The canonical spec without run-time options: what chunks store.
    stored: String,
    purpose: Purpose,
}

/// Most bytes an intermediate stage may produce for a chunk of `chunk_bytes`: encoding
/// refuses more (the container then stores the chunk raw) and decoding refuses, before it
/// allocates, a stream that records more. Real graphs stay far below (their intermediate
/// streams are compressed forms of the chunk).
pub fn max_intermediate(chunk_bytes: usize) -> usize {
    chunk_bytes.saturating_mul(2).saturating_add(1 << 20)
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pipeline({})", self.canonical)
    }
}

impl Pipeline {
    /// Validate `graph` against the registry for encoding data of kind `input`, expanding
    /// meta codecs. `path` prefixes option errors (empty at the top level).
    pub fn build(graph: &Graph, input: &DataKind, path: &str) -> Result<Pipeline> {
        Pipeline::build_for(Purpose::Encode, graph, input, path)
    }

    /// A pipeline that only decodes, from a chunk's stored spec: text options (file names)
    /// are removed before any codec sees them, and every stage is built for decoding (see
    /// [`Purpose`]). Nothing here reads a file or the environment.
    pub fn decoder(graph: &Graph, input: &DataKind) -> Result<Pipeline> {
        Pipeline::build_for(Purpose::Decode, &graph.without_text(), input, "")
    }

    /// [`Pipeline::build`] or [`Pipeline::decoder`], as `purpose` says; meta codecs build
    /// their nested graphs with the purpose they were built for.
    pub fn build_for(
        purpose: Purpose,
        graph: &Graph,
        input: &DataKind,
        path: &str,
    ) -> Result<Pipeline> {
        let graph = &match purpose {
            Purpose::Encode => graph.clone(),
            Purpose::Decode => graph.without_text(),
        };
        let mut stages = vec![];
        let mut names = vec![];
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
            let mut config = Config::from_stage(&stage, info.options, &here)?;
            config.purpose = purpose;
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
            // Declared order, children included, so that canonicalising is idempotent (a child
            // equal to its default is omitted by `to_stage` and appended here).
            let rank = |a: &Arg| match &a.name {
                None => 0,
                Some(n) => {
                    1 + info
                        .options
                        .iter()
                        .position(|o| o.name == n)
                        .unwrap_or(usize::MAX - 1)
                }
            };
            canon.args.sort_by_key(rank);
            canonical.stages.push(canon);
            stages.push(codec);
            names.push(info.name);
            kinds.push(out);
        }
        let stored = canonical.without_option("threads").to_string();
        Ok(Pipeline {
            stages,
            names,
            kinds,
            canonical,
            stored,
            purpose,
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

    /// The canonical spec without run-time options (`threads`): what a chunk stores, so the
    /// bytes do not depend on the thread allocation.
    pub fn stored_spec(&self) -> &str {
        &self.stored
    }

    /// The kind this pipeline was built for.
    pub fn input(&self) -> &DataKind {
        &self.kinds[0]
    }

    /// What the last stage produces.
    pub fn output(&self) -> &DataKind {
        self.kinds.last().expect("non-empty")
    }

    /// Run every stage's encoder; returns the last stage's output.
    pub fn encode(&self, data: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        self.encode_into(data, &mut out)?;
        Ok(out)
    }

    /// Run every stage's encoder, appending the last stage's output to `out`. Intermediate
    /// buffers are reused across calls on a thread, so with a reused `out` a chunk loop
    /// allocates nothing after warm-up.
    pub fn encode_into(&self, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if self.purpose == Purpose::Decode {
            return Err(Error::Other(format!(
                "`{}` was built for decoding only",
                self.canonical
            )));
        }
        let limit = max_intermediate(data.len());
        let Some((last, rest)) = self.stages.split_last() else {
            out.extend_from_slice(data);
            return Ok(());
        };
        with_scratch(|a, b| {
            let mut src: &[u8] = data;
            for ((codec, kind), name) in rest.iter().zip(&self.kinds).zip(&self.names) {
                a.clear();
                crate::profile::timed(name, || codec.encode(src, kind, a))?;
                if a.len() > limit {
                    return Err(Error::unrepresentable(
                        name,
                        format!(
                            "its output of {} bytes exceeds the {limit} an intermediate stage may hold",
                            a.len()
                        ),
                    ));
                }
                std::mem::swap(a, b);
                src = b;
            }
            crate::profile::timed(self.names[rest.len()], || {
                last.encode(src, &self.kinds[rest.len()], out)
            })
        })
    }

    /// Run every stage's decoder, last stage first, writing the result into `dst`
    /// (exactly the input's size). Intermediate buffers are reused across calls on a thread.
    pub fn decode_into(&self, data: &[u8], dst: &mut [u8]) -> Result<()> {
        let Some((first, rest)) = self.stages.split_first() else {
            if data.len() != dst.len() {
                return Err(Error::corrupt("none", "size mismatch"));
            }
            dst.copy_from_slice(data);
            return Ok(());
        };
        let limit = max_intermediate(dst.len());
        with_scratch(|a, b| {
            let mut src: &[u8] = data;
            for (i, codec) in rest.iter().enumerate().rev() {
                let kind = &self.kinds[i + 1];
                match kind {
                    // Known size: decode in place into the reused buffer, zero-filled only
                    // where it grows (a stage writes every byte it decodes: nothing of an
                    // earlier chunk shows through).
                    DataKind::Array(m) => {
                        a.resize(m.nbytes(), 0);
                        codec.decode_into(src, kind, a)?;
                    }
                    DataKind::Bytes => {
                        a.clear();
                        codec.decode_bytes(src, limit, a)?;
                        if a.len() > limit {
                            return Err(Error::corrupt(
                                self.names[i + 1],
                                format!("decoded {} bytes, more than the {limit} allowed", a.len()),
                            ));
                        }
                    }
                }
                if let DataKind::Array(m) = kind {
                    if a.len() != m.nbytes() {
                        return Err(Error::corrupt(
                            &self.canonical.to_string(),
                            format!(
                                "a stage decoded {} bytes where {m} needs {}",
                                a.len(),
                                m.nbytes()
                            ),
                        ));
                    }
                }
                std::mem::swap(a, b);
                src = b;
            }
            first.decode_into(src, &self.kinds[0], dst)
        })
    }

    /// Decode into a new buffer of the input's size.
    pub fn decode(&self, data: &[u8]) -> Result<Vec<u8>> {
        let n = match &self.kinds[0] {
            DataKind::Array(m) => m.nbytes(),
            DataKind::Bytes => return Err(Error::Other("decode needs a typed input".into())),
        };
        let mut out = vec![0u8; n];
        self.decode_into(data, &mut out)?;
        Ok(out)
    }
}

/// Pairs of scratch buffers per thread for intermediate stage outputs, kept as a stack so a
/// meta codec running nested pipelines reuses them too: after the first chunk a chunk loop
/// allocates nothing for them.
fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>, &mut Vec<u8>) -> R) -> R {
    thread_local! {
        static SCRATCH: RefCell<Vec<(Vec<u8>, Vec<u8>)>> = const { RefCell::new(Vec::new()) };
    }
    let (mut a, mut b) = SCRATCH.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    let r = f(&mut a, &mut b);
    SCRATCH.with(|s| s.borrow_mut().push((a, b)));
    r
}
