//! Named lossless graphs chosen from the dtype: `auto` (what empty HDF5 cd_values mean),
//! `fast` and `strong`.
//!
//! Each is resolved when a dataset is created and stored in canonical form, so changing a
//! choice later never changes how existing files decode.

use roibin_registry::spec::Graph;
use roibin_registry::{Accepts, Codec, CodecInfo, DataKind, Error, Result};

/// Bit planes of counts are mostly zeros: bitshuffle, then an entropy coder, per cache-sized
/// block. Floats: the same (their exponent and high mantissa bits shuffle into runs).
const FAST: &str = "chunked(codec=bitshuffle|lz4)";
const STRONG: &str = "chunked(block=1048576,codec=bitshuffle(block=262144)|zstd(level=6))";
/// Calibrated floats: the noisy low mantissa bits cap every lossless ratio near 1.1; zstd(6)
/// gains nothing over zstd(1) there and costs several times the time.
const STRONG_FLOAT: &str = "chunked(block=1048576,codec=bitshuffle(block=262144)|zstd(level=1))";
const BALANCED: &str = "chunked(block=1048576,codec=bitshuffle(block=262144)|zstd(level=3))";

/// A meta codec that expands to a fixed graph per input kind.
pub struct Preset(fn(&DataKind) -> &'static str);

/// The graph `auto` picks for `input`.
///
/// ```
/// use roibin_compressors::auto::choose;
/// use roibin_registry::{ArrayMeta, DType, DataKind};
/// let g = choose(&DataKind::Array(ArrayMeta::new(DType::U16, vec![512, 1024])));
/// assert!(g.to_string().contains("bitshuffle"));
/// ```
pub fn choose(input: &DataKind) -> Graph {
    auto(input).parse().expect("built-in spec parses")
}

fn auto(input: &DataKind) -> &'static str {
    match input {
        DataKind::Bytes => "zstd(level=3)",
        DataKind::Array(m) if m.dtype.size() == 1 => "zstd(level=3)",
        DataKind::Array(_) => BALANCED,
    }
}

fn fast(input: &DataKind) -> &'static str {
    match input {
        DataKind::Bytes => "lz4",
        DataKind::Array(_) => FAST,
    }
}

fn strong(input: &DataKind) -> &'static str {
    match input {
        DataKind::Bytes => "zstd(level=6)",
        DataKind::Array(m) if m.dtype.is_float() => STRONG_FLOAT,
        DataKind::Array(_) => STRONG,
    }
}

fn expanded() -> Error {
    Error::Other("presets are expanded before use".into())
}

impl Codec for Preset {
    fn output(&self, _input: &DataKind) -> Result<DataKind> {
        Err(expanded())
    }
    fn encode(&self, _: &[u8], _: &DataKind, _: &mut Vec<u8>) -> Result<()> {
        Err(expanded())
    }
    fn decode(&self, _: &[u8], _: &DataKind, _: &mut Vec<u8>) -> Result<()> {
        Err(expanded())
    }
    fn expand(&self, input: &DataKind) -> Option<Graph> {
        Some((self.0)(input).parse().expect("built-in spec parses"))
    }
}

inventory::submit! {
    CodecInfo {
        name: "auto",
        version: 1,
        doc: "lossless, balanced: chunked bitshuffle|zstd(3) for 2-8 byte types, zstd(3) for bytes; resolved once, at dataset creation",
        options: &[],
        accepts: Accepts::ANY,
        thread_safe: true,
        build: |_| Ok(Box::new(Preset(auto))),
    }
}

inventory::submit! {
    CodecInfo {
        name: "fast",
        version: 1,
        doc: "lossless, fastest: chunked(codec=bitshuffle|lz4)",
        options: &[],
        accepts: Accepts::ANY,
        thread_safe: true,
        build: |_| Ok(Box::new(Preset(fast))),
    }
}

inventory::submit! {
    CodecInfo {
        name: "strong",
        version: 1,
        doc: "lossless, strongest at speed: chunked bitshuffle (256 Ki elements) | zstd(6) on 1 MiB blocks (zstd(1) for floats)",
        options: &[],
        accepts: Accepts::ANY,
        thread_safe: true,
        build: |_| Ok(Box::new(Preset(strong))),
    }
}
