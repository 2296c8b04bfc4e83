//! The `Codec` trait, codec descriptors and the registry they live in.

use crate::options::{Config, OptionSpec};
use crate::spec::Graph;
use crate::{DType, DataKind, Error, Result};

/// One stage of a graph, built from a validated [`Config`].
///
/// `encode` turns input of kind `input` into bytes; `decode` gets those bytes and the same
/// `input` kind back and must rebuild the input exactly (or within the codec's bound).
pub trait Codec: Send + Sync {
    /// What this stage produces from `input`; an `Unsupported` error when it does not accept it.
    fn output(&self, input: &DataKind) -> Result<DataKind>;
    /// Append the encoding of `data` (of kind `input`) to `out`.
    fn encode(&self, data: &[u8], input: &DataKind, out: &mut Vec<u8>) -> Result<()>;
    /// Append the decoding of `data` to `out`; `input` is the kind `encode` was given.
    fn decode(&self, data: &[u8], input: &DataKind, out: &mut Vec<u8>) -> Result<()>;
    /// Decode when this stage's input was opaque bytes, whose size only the stream records:
    /// must refuse, before allocating, to produce more than `max` bytes. The default suits
    /// codecs whose decoded size is at most their encoded size (shuffles, `none`); codecs
    /// that expand (entropy coders) override it.
    fn decode_bytes(&self, data: &[u8], max: usize, out: &mut Vec<u8>) -> Result<()> {
        if data.len() > max {
            return Err(Error::corrupt(
                "stage",
                format!("{} bytes where at most {max} may decode", data.len()),
            ));
        }
        self.decode(data, &DataKind::Bytes, out)
    }
    /// Decode into `dst`, which has exactly the decoded size. Codecs that can write in place
    /// override this, so the last stage writes straight into the caller's buffer (HDF5's).
    fn decode_into(&self, data: &[u8], input: &DataKind, dst: &mut [u8]) -> Result<()> {
        let mut v = Vec::with_capacity(dst.len());
        self.decode(data, input, &mut v)?;
        if v.len() != dst.len() {
            return Err(crate::Error::corrupt(
                "stage",
                format!("decoded {} bytes, expected {}", v.len(), dst.len()),
            ));
        }
        dst.copy_from_slice(&v);
        Ok(())
    }
    /// Meta codecs such as `auto` replace themselves by a concrete graph once the input is known.
    fn expand(&self, _input: &DataKind) -> Option<Graph> {
        None
    }
    /// Nested graphs in canonical form, for meta codecs (`roibin(background=...)`).
    fn canonical_children(&self) -> Vec<(&'static str, Graph)> {
        vec![]
    }
}

/// Which inputs a codec takes, for `roibin list` and early checks.
#[derive(Debug, Clone, Copy)]
pub struct Accepts {
    /// Accepted dtypes; empty slice means any.
    pub dtypes: &'static [DType],
    /// Smallest and largest accepted rank.
    pub ranks: (usize, usize),
    /// Whether opaque bytes (the output of an entropy coder) are accepted.
    pub bytes: bool,
}

impl Accepts {
    /// Arrays of any dtype and rank 1–4, and opaque bytes.
    pub const ANY: Accepts = Accepts {
        dtypes: &[],
        ranks: (1, 4),
        bytes: true,
    };
    /// Typed arrays of any dtype, rank 1–4.
    pub const ARRAYS: Accepts = Accepts {
        dtypes: &[],
        ranks: (1, 4),
        bytes: false,
    };

    /// Check `kind` against this declaration; the error names `codec`.
    pub fn check(&self, codec: &str, kind: &DataKind) -> Result<()> {
        match kind {
            DataKind::Bytes if self.bytes => Ok(()),
            DataKind::Bytes => kind.array(codec).map(|_| ()),
            DataKind::Array(m) => {
                if !self.dtypes.is_empty() && !self.dtypes.contains(&m.dtype) {
                    let names: Vec<&str> = self.dtypes.iter().map(|d| d.name()).collect();
                    return Err(Error::unsupported(
                        codec,
                        format!("dtype {}", m.dtype),
                        format!("it takes {}", names.join(", ")),
                    ));
                }
                if m.rank() < self.ranks.0 || m.rank() > self.ranks.1 {
                    return Err(Error::unsupported(
                        codec,
                        format!("rank {}", m.rank()),
                        format!("it takes ranks {} to {}", self.ranks.0, self.ranks.1),
                    ));
                }
                Ok(())
            }
        }
    }
}

/// What a pipeline is built for.
///
/// Decoding is pure: a decoder is built from the chunk's stored spec with every text option
/// (file names such as a finder's `mask`) removed before any codec sees it, and meta codecs
/// build no encode-only parts (peak finders, masks) for it. So decoding cannot open a file,
/// by construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Encoding (and validating a spec for encoding): encode-time inputs may be read.
    Encode,
    /// Decoding stored chunks: nothing but the chunk's bytes.
    Decode,
}

/// A registered codec: name, version, docs, options, and how to build it.
///
/// Codecs register from any crate with `inventory::submit!`:
/// ```ignore
/// inventory::submit! { roibin_registry::CodecInfo { name: "mycodec", .. } }
/// ```
pub struct CodecInfo {
    pub name: &'static str,
    /// Stream version written by the current encoder; decoders read every version up to it.
    pub version: u32,
    pub doc: &'static str,
    pub options: &'static [OptionSpec],
    pub accepts: Accepts,
    /// Whether one built instance may run on several threads at once.
    pub thread_safe: bool,
    pub build: fn(&Config) -> Result<Box<dyn Codec>>,
}

inventory::collect!(CodecInfo);

/// Every registered codec, sorted by name.
/// Check a graph before any data: every stage's codec exists, its options are valid (with the
/// codec's own checks, which run when it is built), and so are its nested graphs. Dtype, rank
/// and files named by options are checked when a pipeline is built for data.
///
/// ```
/// use roibin_registry::{check_graph, Graph};
/// // No codec is registered in this crate alone: every name is unknown here.
/// let g: Graph = "nosuchcodec(level=3)".parse().unwrap();
/// assert!(check_graph(&g).unwrap_err().to_string().contains("unknown codec `nosuchcodec`"));
/// ```
pub fn check_graph(graph: &Graph) -> Result<()> {
    check_at(graph, "")
}

fn check_at(graph: &Graph, path: &str) -> Result<()> {
    for stage in &graph.stages {
        let info = lookup(&stage.name)?;
        let here = if path.is_empty() {
            stage.name.clone()
        } else {
            format!("{path}/{}", stage.name)
        };
        let config = Config::from_stage(stage, info.options, &here)?;
        (info.build)(&config)?;
        for (name, nested) in config.graphs() {
            check_at(nested, &format!("{here}/{name}"))?;
        }
    }
    Ok(())
}

pub fn codecs() -> Vec<&'static CodecInfo> {
    let mut v: Vec<&'static CodecInfo> = inventory::iter::<CodecInfo>.into_iter().collect();
    v.sort_by_key(|c| c.name);
    v
}

/// Look a codec up by name.
pub fn lookup(name: &str) -> Result<&'static CodecInfo> {
    inventory::iter::<CodecInfo>
        .into_iter()
        .find(|c| c.name == name)
        .ok_or_else(|| Error::UnknownCodec {
            name: name.to_string(),
            known: codecs()
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}
