//! Shared framing for byte codecs that compress fixed-size blocks independently.
//!
//! ```text
//! u64 total length · u32 block size (0 = one block) · u32 compressed length per block · blocks
//! ```
//! Blocks depend only on the data size, never on the thread count, so the output is the same
//! whatever the allocation; threads take blocks in parallel.

use rayon::prelude::*;
use roibin_registry::container::MAX_CHUNK_BYTES;
use roibin_registry::stream::Reader;
use roibin_registry::{threads, Error, Result};

/// Compress `data` in blocks of `block` bytes with `f`, appending the framed stream to `out`.
pub fn encode(
    data: &[u8],
    block: usize,
    nthreads: usize,
    out: &mut Vec<u8>,
    f: impl Fn(&[u8], &mut Vec<u8>) -> Result<()> + Sync,
) -> Result<()> {
    let block_len = if block == 0 { data.len().max(1) } else { block };
    let nblocks = data.len().div_ceil(block_len);
    // Each block's output goes to a buffer this thread keeps from chunk to chunk (their
    // capacity survives), so after warm-up a chunk loop allocates none here.
    with_parts(nblocks, |parts| {
        threads::install(nthreads, || {
            parts
                .par_iter_mut()
                .zip(data.par_chunks(block_len))
                .with_min_len(threads::min_len(block_len))
                .try_for_each(|(o, b)| {
                    o.clear();
                    f(b, o)
                })
        })?;
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        out.extend_from_slice(&(block as u32).to_le_bytes());
        for p in parts.iter() {
            let len = u32::try_from(p.len()).map_err(|_| Error::Other("block too large".into()))?;
            out.extend_from_slice(&len.to_le_bytes());
        }
        for p in parts.iter() {
            out.extend_from_slice(p);
        }
        Ok(())
    })
}

/// `nblocks` output buffers kept per thread (a stack, for nested blocked codecs).
fn with_parts<R>(nblocks: usize, f: impl FnOnce(&mut [Vec<u8>]) -> R) -> R {
    thread_local! {
        static PARTS: std::cell::RefCell<Vec<Vec<Vec<u8>>>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let mut parts = PARTS.with(|p| p.borrow_mut().pop()).unwrap_or_default();
    if parts.len() < nblocks {
        parts.resize_with(nblocks, Vec::new);
    }
    let r = f(&mut parts[..nblocks]);
    PARTS.with(|p| p.borrow_mut().push(parts));
    r
}

/// Decode a stream written by [`encode`] into `dst`, which must be exactly the recorded size;
/// `f(block, dst)` must fill `dst` exactly and return how many bytes it wrote.
pub fn decode_into(
    codec: &'static str,
    data: &[u8],
    dst: &mut [u8],
    nthreads: usize,
    f: impl Fn(&[u8], &mut [u8]) -> Result<usize> + Sync,
) -> Result<()> {
    let mut r = Reader::new(data, codec);
    let total = r.len_at_most(MAX_CHUNK_BYTES)?;
    if total != dst.len() {
        return Err(Error::corrupt(
            codec,
            format!("stream holds {total} bytes, the chunk needs {}", dst.len()),
        ));
    }
    let block = r.u32()? as usize;
    let block_len = if block == 0 { total.max(1) } else { block };
    let nblocks = total.div_ceil(block_len);
    let lens: Vec<usize> = (0..nblocks)
        .map(|_| r.u32().map(|l| l as usize))
        .collect::<Result<_>>()?;
    let mut srcs = Vec::with_capacity(nblocks);
    for &l in &lens {
        srcs.push(r.take(l)?);
    }
    if !r.is_empty() {
        return Err(Error::corrupt(codec, "trailing bytes after the last block"));
    }
    threads::install(nthreads, || {
        dst.par_chunks_mut(block_len)
            .zip(srcs.par_iter())
            .with_min_len(threads::min_len(block_len))
            .try_for_each(|(d, src)| {
                if f(src, d)? != d.len() {
                    return Err(Error::corrupt(
                        codec,
                        "a block decoded to fewer bytes than recorded",
                    ));
                }
                Ok(())
            })
    })
}

/// Like [`decode_into`], appending to `out`; the size comes from the stream's header and is
/// refused, before anything is allocated, when it exceeds `max`.
pub fn decode(
    codec: &'static str,
    data: &[u8],
    max: usize,
    nthreads: usize,
    out: &mut Vec<u8>,
    f: impl Fn(&[u8], &mut [u8]) -> Result<usize> + Sync,
) -> Result<()> {
    let total = Reader::new(data, codec).len_at_most(max.min(MAX_CHUNK_BYTES))?;
    let start = out.len();
    out.resize(start + total, 0);
    decode_into(codec, data, &mut out[start..], nthreads, f)
}
