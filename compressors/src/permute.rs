//! Size-preserving byte permutations (shuffle, bitshuffle) share one `Codec` impl.

use roibin_registry::{Codec, DataKind, Error, Result};

/// A reversible rearrangement of a chunk's bytes that keeps its size.
pub trait Permutation: Send + Sync {
    /// Registered name, for error messages.
    const NAME: &'static str;
    /// Rearrange `data` of `elem`-byte elements into `dst` (same length).
    fn forward(&self, data: &[u8], elem: usize, dst: &mut [u8]);
    /// Undo [`Permutation::forward`].
    fn inverse(&self, data: &[u8], elem: usize, dst: &mut [u8]);
}

/// The codec for a [`Permutation`]: its output is the same bytes, seen as a flat u8 array.
pub struct Permute<P>(pub P);

impl<P: Permutation> Codec for Permute<P> {
    fn output(&self, input: &DataKind) -> Result<DataKind> {
        Ok(input.as_bytes_array())
    }

    fn encode(&self, data: &[u8], input: &DataKind, out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        out.resize(start + data.len(), 0);
        self.0.forward(data, input.elem_size(), &mut out[start..]);
        Ok(())
    }

    fn decode(&self, data: &[u8], input: &DataKind, out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        out.resize(start + data.len(), 0);
        self.decode_into(data, input, &mut out[start..])
    }

    fn decode_into(&self, data: &[u8], input: &DataKind, dst: &mut [u8]) -> Result<()> {
        if data.len() != dst.len() {
            return Err(Error::corrupt(
                P::NAME,
                format!("{} bytes for {input}", data.len()),
            ));
        }
        self.0.inverse(data, input.elem_size(), dst);
        Ok(())
    }
}
