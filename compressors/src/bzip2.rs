//! `bzip2(level, block, threads)`: bzip2 on independent blocks; strong and slow.

use crate::blocked;
use bzip2::{Action, Compress, Compression, Decompress, Status};
use roibin_registry::options::THREADS;
use roibin_registry::{Accepts, Codec, CodecInfo, DataKind, Error, OptionSpec, OptionType, Result};

/// bzip2 configuration.
#[derive(Debug, Clone)]
pub struct Bzip2 {
    pub level: u32,
    pub block: usize,
    pub threads: usize,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "level",
        ty: OptionType::Int { min: 1, max: 9 },
        default: "9",
        doc: "block-sorting size in 100 kB units (1 = fastest, 9 = strongest)",
    },
    OptionSpec {
        name: "block",
        ty: OptionType::Int {
            min: 0,
            max: 1 << 30,
        },
        default: "1048576",
        doc: "bytes per independently compressed block (0 = the whole chunk)",
    },
    THREADS,
];

fn bz(e: impl std::fmt::Display) -> Error {
    Error::corrupt("bzip2", e.to_string())
}

impl Codec for Bzip2 {
    fn output(&self, _input: &DataKind) -> Result<DataKind> {
        Ok(DataKind::Bytes)
    }

    fn encode(&self, data: &[u8], _input: &DataKind, out: &mut Vec<u8>) -> Result<()> {
        blocked::encode(data, self.block, self.threads, out, |b, o| {
            let mut c = Compress::new(Compression::new(self.level), 30);
            o.reserve(b.len() + b.len() / 100 + 600);
            loop {
                match c
                    .compress_vec(&b[c.total_in() as usize..], o, Action::Finish)
                    .map_err(bz)?
                {
                    Status::StreamEnd => return Ok(()),
                    _ => o.reserve(o.capacity().max(4096)),
                }
            }
        })
    }

    fn decode(&self, data: &[u8], _input: &DataKind, out: &mut Vec<u8>) -> Result<()> {
        self.decode_bytes(data, roibin_registry::container::MAX_CHUNK_BYTES, out)
    }

    fn decode_bytes(&self, data: &[u8], max: usize, out: &mut Vec<u8>) -> Result<()> {
        blocked::decode("bzip2", data, max, self.threads, out, block_into)
    }

    fn decode_into(&self, data: &[u8], _input: &DataKind, dst: &mut [u8]) -> Result<()> {
        blocked::decode_into("bzip2", data, dst, self.threads, block_into)
    }
}

fn block_into(src: &[u8], dst: &mut [u8]) -> Result<usize> {
    let mut d = Decompress::new(false);
    loop {
        let (i, o) = (d.total_in() as usize, d.total_out() as usize);
        match d.decompress(&src[i..], &mut dst[o..]).map_err(bz)? {
            Status::StreamEnd => return Ok(d.total_out() as usize),
            _ if d.total_in() as usize == i && d.total_out() as usize == o => {
                return Err(bz("stream ends early or holds more than recorded"))
            }
            _ => {}
        }
    }
}

inventory::submit! {
    CodecInfo {
        name: "bzip2",
        version: 1,
        doc: "bzip2 (lossless) on independent blocks; strongest classic ratio, tens of MB/s",
        options: OPTIONS,
        accepts: Accepts::ANY,
        thread_safe: true,
        build: |c| Ok(Box::new(Bzip2 {
            level: c.get::<i64>("level")? as u32,
            block: c.get::<i64>("block")? as usize,
            threads: c.threads()?,
        })),
    }
}
