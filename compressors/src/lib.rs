//! Every roibin codec, one module each, registered with the registry through `inventory`.
//!
//! ```
//! use roibin_registry::{ArrayMeta, DType};
//! let meta = ArrayMeta::new(DType::U16, vec![64, 64]);
//! let data: Vec<u8> = (0..64 * 64u32).flat_map(|i| ((i % 7) as u16).to_le_bytes()).collect();
//! let chunk = roibin_compressors::encode_chunk("bitshuffle|lz4", &meta, &data).unwrap();
//! assert!(chunk.len() < data.len());
//! assert_eq!(roibin_compressors::decode_chunk(&chunk).unwrap(), (meta, data));
//! ```

pub mod auto;
mod bits;
pub mod bitshuffle;
mod blocked;
pub mod bzip2;
pub mod chunked;
pub mod delta;
pub mod detector;
mod huffman;
pub mod lz4;
pub mod none;
pub mod permute;
pub mod prefetch;
pub mod shuffle;
pub mod spare;
pub mod sz;
#[cfg(test)]
mod test_rng;
pub mod zfp;
pub mod zstd;

use roibin_registry::{container, ArrayMeta, DataKind, Graph, Pipeline, Result};

/// For this crate's exported macros ([`with_element_type!`]).
#[doc(hidden)]
pub use roibin_registry as __registry;

/// Encode one chunk into a self-describing container with the graph `spec`.
pub fn encode_chunk(spec: &str, meta: &ArrayMeta, data: &[u8]) -> Result<Vec<u8>> {
    container::encode(&spec.parse()?, meta, data)
}

/// Decode a container; needs nothing but its bytes.
pub fn decode_chunk(bytes: &[u8]) -> Result<(ArrayMeta, Vec<u8>)> {
    container::decode(bytes)
}

/// Build a pipeline for chunks of `meta` (reuse it across chunks of the same shape).
pub fn pipeline(spec: &Graph, meta: &ArrayMeta) -> Result<Pipeline> {
    Pipeline::build(spec, &DataKind::Array(meta.clone()), "")
}

/// Names of all registered codecs (forces this crate's registrations to be linked in).
pub fn codec_names() -> Vec<&'static str> {
    roibin_registry::codecs().iter().map(|c| c.name).collect()
}
