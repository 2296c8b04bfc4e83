//! `lz4(block, threads)`: LZ4 block format on independent blocks; the fastest lossless back-end.

use crate::blocked;
use roibin_registry::options::THREADS;
use roibin_registry::{Accepts, Codec, CodecInfo, DataKind, Error, OptionSpec, OptionType, Result};

/// LZ4 configuration.
#[derive(Debug, Clone)]
pub struct Lz4 {
    pub block: usize,
    pub threads: usize,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "block",
        ty: OptionType::Int {
            min: 0,
            max: 1 << 30,
        },
        default: "262144",
        doc: "bytes per independently compressed block (0 = the whole chunk)",
    },
    THREADS,
];

impl Codec for Lz4 {
    fn output(&self, _input: &DataKind) -> Result<DataKind> {
        Ok(DataKind::Bytes)
    }

    fn encode(&self, data: &[u8], _input: &DataKind, out: &mut Vec<u8>) -> Result<()> {
        blocked::encode(data, self.block, self.threads, out, |b, o| {
            o.resize(lz4_flex::block::get_maximum_output_size(b.len()), 0);
            let n = lz4_flex::block::compress_into(b, o)
                .map_err(|e| Error::Other(format!("lz4: {e}")))?;
            o.truncate(n);
            Ok(())
        })
    }

    fn decode(&self, data: &[u8], _input: &DataKind, out: &mut Vec<u8>) -> Result<()> {
        self.decode_bytes(data, roibin_registry::container::MAX_CHUNK_BYTES, out)
    }

    fn decode_bytes(&self, data: &[u8], max: usize, out: &mut Vec<u8>) -> Result<()> {
        blocked::decode("lz4", data, max, self.threads, out, block_into)
    }

    fn decode_into(&self, data: &[u8], _input: &DataKind, dst: &mut [u8]) -> Result<()> {
        blocked::decode_into("lz4", data, dst, self.threads, block_into)
    }
}

fn block_into(src: &[u8], dst: &mut [u8]) -> Result<usize> {
    lz4_flex::block::decompress_into(src, dst).map_err(|e| Error::corrupt("lz4", e.to_string()))
}

inventory::submit! {
    CodecInfo {
        name: "lz4",
        version: 1,
        doc: "LZ4 (lossless) on independent blocks; GB/s per thread, modest ratio: pair with bitshuffle",
        options: OPTIONS,
        accepts: Accepts::ANY,
        thread_safe: true,
        build: |c| Ok(Box::new(Lz4 {
            block: c.get::<i64>("block")? as usize,
            threads: c.threads()?,
        })),
    }
}
