//! `zstd(level, block, threads)`: Zstandard on independent blocks.

use crate::blocked;
use roibin_registry::options::THREADS;
use roibin_registry::{
    Accepts, Codec, CodecInfo, Config, DataKind, Error, OptionSpec, OptionType, Result,
};
use std::cell::RefCell;

/// Zstandard configuration.
#[derive(Debug, Clone)]
pub struct Zstd {
    pub level: i32,
    pub block: usize,
    pub threads: usize,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "level",
        ty: OptionType::Int { min: -7, max: 22 },
        default: "3",
        doc: "compression level: negative is faster, 19+ is slow and strong",
    },
    OptionSpec {
        name: "block",
        ty: OptionType::Int { min: 0, max: 1 << 30 },
        default: "1048576",
        doc: "bytes per independently compressed block (0 = the whole chunk); blocks are what threads share",
    },
    THREADS,
];

impl Zstd {
    fn from_config(c: &Config) -> Result<Self> {
        Ok(Zstd {
            level: c.get::<i64>("level")? as i32,
            block: c.get::<i64>("block")? as usize,
            threads: c.threads()?,
        })
    }
}

thread_local! {
    // Contexts are costly to set up (hundreds of KiB); keep one per worker thread.
    static CCTX: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DCTX: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

fn io(e: std::io::Error) -> Error {
    Error::corrupt("zstd", e.to_string())
}

impl Codec for Zstd {
    fn output(&self, _input: &DataKind) -> Result<DataKind> {
        Ok(DataKind::Bytes)
    }

    fn encode(&self, data: &[u8], _input: &DataKind, out: &mut Vec<u8>) -> Result<()> {
        blocked::encode(data, self.block, self.threads, out, |b, o| {
            CCTX.with(|c| {
                let mut c = c.borrow_mut();
                if c.as_ref().is_none_or(|(l, _)| *l != self.level) {
                    *c = Some((
                        self.level,
                        zstd::bulk::Compressor::new(self.level).map_err(io)?,
                    ));
                }
                let (_, cctx) = c.as_mut().expect("just set");
                o.reserve(zstd::zstd_safe::compress_bound(b.len()));
                cctx.compress_to_buffer(b, o).map_err(io)?;
                Ok(())
            })
        })
    }

    fn decode(&self, data: &[u8], _input: &DataKind, out: &mut Vec<u8>) -> Result<()> {
        self.decode_bytes(data, roibin_registry::container::MAX_CHUNK_BYTES, out)
    }

    fn decode_bytes(&self, data: &[u8], max: usize, out: &mut Vec<u8>) -> Result<()> {
        blocked::decode("zstd", data, max, self.threads, out, block_into)
    }

    fn decode_into(&self, data: &[u8], _input: &DataKind, dst: &mut [u8]) -> Result<()> {
        blocked::decode_into("zstd", data, dst, self.threads, block_into)
    }
}

/// Decompress one zstd frame into `dst` with this thread's reused context (a new context is
/// hundreds of KB to allocate and fault in: per chunk, it showed in profiles).
pub(crate) fn block_into(src: &[u8], dst: &mut [u8]) -> Result<usize> {
    DCTX.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new().map_err(io)?);
        }
        d.as_mut()
            .expect("just set")
            .decompress_to_buffer(src, dst)
            .map_err(io)
    })
}

inventory::submit! {
    CodecInfo {
        name: "zstd",
        version: 1,
        doc: "Zstandard (lossless) on independent blocks; good ratio at hundreds of MB/s per thread",
        options: OPTIONS,
        accepts: Accepts::ANY,
        thread_safe: true,
        build: |c| Ok(Box::new(Zstd::from_config(c)?)),
    }
}
