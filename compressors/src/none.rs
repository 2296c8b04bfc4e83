//! `none`: the identity, for comparisons and for storing a graph's input as is.

use roibin_registry::{Accepts, Codec, CodecInfo, DataKind, Result};

/// The identity codec.
#[derive(Debug, Clone)]
pub struct NoneCodec;

impl Codec for NoneCodec {
    fn output(&self, input: &DataKind) -> Result<DataKind> {
        Ok(input.clone())
    }
    fn encode(&self, data: &[u8], _: &DataKind, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(data);
        Ok(())
    }
    fn decode(&self, data: &[u8], _: &DataKind, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(data);
        Ok(())
    }
    fn decode_into(&self, data: &[u8], _: &DataKind, dst: &mut [u8]) -> Result<()> {
        if data.len() != dst.len() {
            return Err(roibin_registry::Error::corrupt("none", "size mismatch"));
        }
        dst.copy_from_slice(data);
        Ok(())
    }
}

inventory::submit! {
    CodecInfo {
        name: "none",
        version: 1,
        doc: "identity: stores the data as is (the container still checksums it)",
        options: &[],
        accepts: Accepts::ANY,
        thread_safe: true,
        build: |_| Ok(Box::new(NoneCodec)),
    }
}
