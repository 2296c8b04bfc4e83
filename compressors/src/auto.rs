//! `auto`: a lossless graph chosen from the dtype, what an empty HDF5 cd_values means.
//!
//! The choice is resolved when a dataset is created and stored in canonical form, so changing
//! it later never changes how existing files decode.

use roibin_registry::spec::Graph;
use roibin_registry::{Accepts, Codec, CodecInfo, DType, DataKind, Error, Result};

/// The `auto` meta codec.
#[derive(Debug, Clone)]
pub struct Auto;

/// The graph `auto` picks for `input`.
///
/// ```
/// use roibin_compressors::auto::choose;
/// use roibin_registry::{ArrayMeta, DType, DataKind};
/// let g = choose(&DataKind::Array(ArrayMeta::new(DType::U16, vec![512, 1024])));
/// assert_eq!(g.to_string(), "bitshuffle|zstd(level=1)");
/// ```
pub fn choose(input: &DataKind) -> Graph {
    let spec = match input {
        DataKind::Bytes => "zstd(level=3)",
        DataKind::Array(m) => match m.dtype {
            DType::U8 | DType::I8 => "zstd(level=3)",
            // Counts: bit planes above the signal are all zeros.
            d if !d.is_float() => "bitshuffle|zstd(level=1)",
            _ => "shuffle|zstd(level=3)",
        },
    };
    spec.parse().expect("built-in spec parses")
}

impl Codec for Auto {
    fn output(&self, _input: &DataKind) -> Result<DataKind> {
        Err(Error::Other("auto is expanded before use".into()))
    }
    fn encode(&self, _: &[u8], _: &DataKind, _: &mut Vec<u8>) -> Result<()> {
        Err(Error::Other("auto is expanded before use".into()))
    }
    fn decode(&self, _: &[u8], _: &DataKind, _: &mut Vec<u8>) -> Result<()> {
        Err(Error::Other("auto is expanded before use".into()))
    }
    fn expand(&self, input: &DataKind) -> Option<Graph> {
        Some(choose(input))
    }
}

inventory::submit! {
    CodecInfo {
        name: "auto",
        version: 1,
        doc: "a lossless graph chosen from the dtype (integers: bitshuffle|zstd(1); floats: shuffle|zstd(3)); resolved once, at dataset creation",
        options: &[],
        accepts: Accepts::ANY,
        thread_safe: true,
        build: |_| Ok(Box::new(Auto)),
    }
}
