//! `chunked(block, codec, threads)`: run a nested graph on independent, cache-sized blocks.
//!
//! Stages of a plain chain each stream the whole chunk through memory; inside `chunked` every
//! block goes through all stages while it sits in L2, and blocks run in parallel. This is how
//! `chunked(codec=bitshuffle|lz4)` beats a plain `bitshuffle|lz4` on large frames. Blocks
//! depend only on the data size, so the output is the same for any thread count.

use crate::blocked;
use roibin_registry::options::THREADS;
use roibin_registry::spec::Graph;
use roibin_registry::{
    Accepts, ArrayMeta, Codec, CodecInfo, Config, DataKind, Error, OptionSpec, OptionType,
    Pipeline, Purpose, Result,
};
use std::sync::{Arc, Mutex};

const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "block",
        ty: OptionType::Int {
            min: 64,
            max: 1 << 30,
        },
        default: "65536",
        doc: "bytes per block (rounded down to whole elements); blocks are what threads share",
    },
    OptionSpec {
        name: "codec",
        ty: OptionType::Graph,
        default: "bitshuffle|lz4",
        doc: "graph run on every block, which it sees as a 1-D array of the chunk's dtype",
    },
    THREADS,
];

/// The `chunked` meta codec.
pub struct Chunked {
    block: usize,
    codec: Graph,
    threads: usize,
    path: String,
    purpose: Purpose,
    /// Pipelines by (dtype, block length): built once, shared by every block of that length.
    cache: Mutex<Vec<(ArrayMeta, Arc<Pipeline>)>>,
}

impl Chunked {
    fn pipeline(&self, dtype: roibin_registry::DType, len: usize) -> Result<Arc<Pipeline>> {
        let meta = ArrayMeta::new(dtype, vec![len]);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, p)) = cache.iter().find(|(m, _)| *m == meta) {
            return Ok(p.clone());
        }
        let p = Arc::new(Pipeline::build_for(
            self.purpose,
            &self.codec,
            &DataKind::Array(meta.clone()),
            &format!("{}/codec", self.path),
        )?);
        cache.push((meta, p.clone()));
        Ok(p)
    }

    fn block_bytes(&self, elem: usize) -> usize {
        (self.block / elem).max(1) * elem
    }
}

impl Codec for Chunked {
    fn output(&self, input: &DataKind) -> Result<DataKind> {
        let m = input.array("chunked")?;
        // Validate the nested graph now, against a full block, so errors surface at set_local.
        self.pipeline(
            m.dtype,
            (self.block_bytes(m.dtype.size()) / m.dtype.size()).min(m.len().max(1)),
        )?;
        Ok(DataKind::Bytes)
    }

    fn encode(&self, data: &[u8], input: &DataKind, out: &mut Vec<u8>) -> Result<()> {
        let m = input.array("chunked")?;
        let elem = m.dtype.size();
        blocked::encode(data, self.block_bytes(elem), self.threads, out, |b, o| {
            self.pipeline(m.dtype, b.len() / elem)?.encode_into(b, o)
        })
    }

    fn decode(&self, data: &[u8], input: &DataKind, out: &mut Vec<u8>) -> Result<()> {
        let m = input.array("chunked")?;
        let start = out.len();
        out.resize(start + m.nbytes(), 0);
        self.decode_into(data, input, &mut out[start..])
    }

    fn decode_into(&self, data: &[u8], input: &DataKind, dst: &mut [u8]) -> Result<()> {
        let m = input.array("chunked")?;
        let elem = m.dtype.size();
        if dst.len() % elem != 0 {
            return Err(Error::corrupt("chunked", "output is not whole elements"));
        }
        // The block size is part of the spec: a stream that records another one is not ours
        // (and would make a pipeline per forged length).
        let block = data
            .get(8..12)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4")));
        if block != Some(self.block_bytes(elem) as u32) {
            return Err(Error::corrupt(
                "chunked",
                format!(
                    "blocks of {block:?} bytes recorded, the spec says {}",
                    self.block_bytes(elem)
                ),
            ));
        }
        blocked::decode_into("chunked", data, dst, self.threads, |src, d| {
            if d.len() % elem != 0 {
                return Err(Error::corrupt("chunked", "block is not whole elements"));
            }
            self.pipeline(m.dtype, d.len() / elem)?
                .decode_into(src, d)?;
            Ok(d.len())
        })
    }

    fn canonical_children(&self) -> Vec<(&'static str, Graph)> {
        // The nested graph in canonical form; its own `auto` stays as written (resolved per block).
        let canon = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first()
            .map(|(_, p)| p.canonical().clone())
            .unwrap_or_else(|| self.codec.clone());
        vec![("codec", canon)]
    }
}

fn build(c: &Config) -> Result<Box<dyn Codec>> {
    Ok(Box::new(Chunked {
        block: c.get::<i64>("block")? as usize,
        codec: c.get("codec")?,
        threads: c.threads()?,
        path: c.path.clone(),
        purpose: c.purpose,
        cache: Mutex::new(vec![]),
    }))
}

inventory::submit! {
    CodecInfo {
        name: "chunked",
        version: 1,
        doc: "runs a nested graph on independent cache-sized blocks, in parallel: chunked(codec=bitshuffle|lz4) is the fastest lossless path",
        options: OPTIONS,
        accepts: Accepts::ARRAYS,
        thread_safe: true,
        build,
    }
}
