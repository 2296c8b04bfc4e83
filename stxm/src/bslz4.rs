//! Raw chunks of the bitshuffle-LZ4 HDF5 filter (id 32008, as DECTRIS EIGER and ARINA write
//! them), decoded here so that frames decode in parallel outside the HDF5 library.
//!
//! ```text
//! u64 BE uncompressed bytes · u32 BE block bytes · per block: u32 BE length · LZ4 block of
//! the bitshuffled block · the last (elements mod 8) elements copied as they are
//! ```
//! Blocks hold `block bytes / element size` elements; the last block holds what is left,
//! rounded down to a multiple of 8 elements (bitshuffle's own layout, the same as our
//! `bitshuffle` codec).

use anyhow::{bail, ensure, Result};
use roibin_compressors::bitshuffle::{self, Bitshuffle};
use roibin_compressors::permute::Permutation;

/// The HDF5 filter id of bitshuffle.
pub const FILTER_ID: i32 = 32008;

/// Decode one raw chunk of `elem`-byte elements into `dst`, which must be exactly the chunk's
/// size (the header's size is checked against it before anything is written).
pub fn decode_into(chunk: &[u8], elem: usize, dst: &mut [u8]) -> Result<()> {
    let n = dst.len();
    for_each_block(chunk, elem, n, |offset, block| {
        dst[offset..offset + block.len()].copy_from_slice(block)
    })
}

/// Decode a chunk of `total` bytes block by block, handing each decoded run to
/// `f(byte offset, bytes)` while it is still in cache: a reduction fused with decoding never
/// writes the frame out. Blocks come in order and cover the chunk exactly.
pub fn for_each_block(
    chunk: &[u8],
    elem: usize,
    total: usize,
    mut f: impl FnMut(usize, &[u8]),
) -> Result<()> {
    let mut plain = Vec::new();
    blocks(chunk, elem, total, |offset, block| match block {
        Block::Packed { bits, elems } => {
            plain.resize(elems * elem, 0);
            bitshuffle::unshuffle_block(bits, elem, &mut plain);
            f(offset, &plain)
        }
        Block::Plain(bytes) => f(offset, bytes),
    })
}

/// One piece of a chunk as [`blocks`] hands it over.
pub enum Block<'a> {
    /// A block of `elems` elements, LZ4-decoded but still bitshuffled.
    Packed { bits: &'a [u8], elems: usize },
    /// The last `elements mod 8` elements, stored as they are.
    Plain(&'a [u8]),
}

/// [`for_each_block`] without the transpose: each block as its bit planes, for reductions
/// that read them directly ([`crate::bitplanes`]).
pub fn blocks(
    chunk: &[u8],
    elem: usize,
    total: usize,
    mut f: impl FnMut(usize, Block<'_>),
) -> Result<()> {
    ensure!(
        chunk.len() >= 12,
        "bitshuffle-LZ4 chunk of {} bytes: too short",
        chunk.len()
    );
    ensure!(elem > 0 && elem <= 8, "element size {elem}");
    let declared = u64::from_be_bytes(chunk[0..8].try_into().expect("8")) as usize;
    let block_bytes = u32::from_be_bytes(chunk[8..12].try_into().expect("4")) as usize;
    if declared != total {
        bail!("bitshuffle-LZ4 chunk declares {declared} bytes, the chunk holds {total}");
    }
    let block = block_bytes / elem;
    ensure!(
        block >= 8 && block % 8 == 0 && block_bytes % elem == 0,
        "bitshuffle-LZ4 block of {block_bytes} bytes for {elem}-byte elements"
    );
    let n = total / elem;
    let size = block_bytes.min(total);
    let mut packed = vec![0u8; size];
    let mut pos = 12;
    let mut start = 0usize;
    while start + 8 <= n {
        let m = if n - start >= block {
            block
        } else {
            (n - start) / 8 * 8
        };
        let len = chunk
            .get(pos..pos + 4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4")) as usize)
            .ok_or_else(|| anyhow::anyhow!("bitshuffle-LZ4 chunk ends inside a block header"))?;
        pos += 4;
        let src = chunk.get(pos..pos + len).ok_or_else(|| {
            anyhow::anyhow!("bitshuffle-LZ4 block of {len} bytes past the chunk's end")
        })?;
        pos += len;
        let out = &mut packed[..m * elem];
        let got = lz4_block(src, out)
            .map_err(|e| anyhow::anyhow!("LZ4 block at byte {}: {e}", pos - len))?;
        ensure!(
            got == out.len(),
            "LZ4 block holds {got} bytes, not {}",
            out.len()
        );
        f(
            start * elem,
            Block::Packed {
                bits: out,
                elems: m,
            },
        );
        start += m;
    }
    let rest = total - start * elem;
    let tail = chunk
        .get(pos..pos + rest)
        .ok_or_else(|| anyhow::anyhow!("bitshuffle-LZ4 chunk misses its last {rest} bytes"))?;
    ensure!(
        pos + rest == chunk.len(),
        "{} trailing bytes after the last block",
        chunk.len() - pos - rest
    );
    if rest > 0 {
        f(start * elem, Block::Plain(tail));
    }
    Ok(())
}

/// Literal runs and matches up to [`SHORT`] bytes are copied in fixed-size moves of this many.
const WIDE: usize = 16;
const SHORT: usize = 64;

/// Decode one LZ4 block (the raw block format, no frame) into `dst`; returns the bytes
/// written. Every length and offset is checked against both buffers before use, so a crafted
/// block is an error, never a panic or a read outside them. Long runs (the zero planes of
/// bitshuffled counts are matches at offset 1) are filled or copied in doubling strides
/// instead of byte by byte.
pub fn lz4_block(src: &[u8], dst: &mut [u8]) -> Result<usize, &'static str> {
    fn length(src: &[u8], i: &mut usize, mut n: usize) -> Result<usize, &'static str> {
        if n == 15 {
            loop {
                let b = *src.get(*i).ok_or("length runs past the block")?;
                *i += 1;
                n = n.checked_add(b as usize).ok_or("length overflows")?;
                if b != 255 {
                    break;
                }
            }
        }
        Ok(n)
    }
    let (mut i, mut o) = (0usize, 0usize);
    loop {
        let token = *src.get(i).ok_or("block ends before its last literals")?;
        i += 1;
        let lit = length(src, &mut i, (token >> 4) as usize)?;
        if lit <= SHORT && i + lit + WIDE <= src.len() && o + lit + WIDE <= dst.len() {
            // A short run (most are, in bitshuffled counts) as fixed-size copies, no library
            // call: the bytes past `lit` land in output not written yet, which later
            // sequences overwrite.
            for k in (0..lit).step_by(WIDE) {
                let w: [u8; WIDE] = src[i + k..i + k + WIDE].try_into().expect("WIDE");
                dst[o + k..o + k + WIDE].copy_from_slice(&w);
            }
        } else {
            let from = src.get(i..i + lit).ok_or("literals run past the block")?;
            dst.get_mut(o..o + lit)
                .ok_or("literals run past the output")?
                .copy_from_slice(from);
        }
        i += lit;
        o += lit;
        if i == src.len() {
            return Ok(o);
        }
        let off = src.get(i..i + 2).ok_or("block ends inside an offset")?;
        let offset = u16::from_le_bytes([off[0], off[1]]) as usize;
        i += 2;
        if offset == 0 || offset > o {
            return Err("match offset outside the output");
        }
        let len = length(src, &mut i, (token & 15) as usize)? + 4;
        if len > dst.len() - o {
            return Err("match runs past the output");
        }
        if len <= SHORT && o + len + WIDE <= dst.len() && (offset == 1 || offset >= WIDE) {
            // Short matches as fixed-size stores, as for literals. In order, each source
            // piece (`offset` ≥ WIDE back) is output already final.
            let fill = [dst[o - 1]; WIDE];
            for k in (0..len).step_by(WIDE) {
                let w: [u8; WIDE] = if offset == 1 {
                    fill
                } else {
                    dst[o + k - offset..o + k - offset + WIDE]
                        .try_into()
                        .expect("WIDE")
                };
                dst[o + k..o + k + WIDE].copy_from_slice(&w);
            }
        } else if offset == 1 {
            let b = dst[o - 1];
            dst[o..o + len].fill(b);
        } else {
            // Period `offset`: copy whole periods, doubling, from the start of the first.
            let mut done = 0;
            while done < len {
                let n = (offset + done).min(len - done);
                dst.copy_within(o - offset..o - offset + n, o + done);
                done += n;
            }
        }
        o += len;
    }
}

/// Encode (what the filter writes, block = 8 KiB of elements): for tests and benchmarks.
pub fn encode(data: &[u8], elem: usize) -> Vec<u8> {
    let block = (8192 / elem) / 8 * 8;
    let n = data.len() / elem;
    let mut out = (data.len() as u64).to_be_bytes().to_vec();
    out.extend_from_slice(&((block * elem) as u32).to_be_bytes());
    let mut start = 0;
    let mut tmp = vec![0u8; block * elem];
    while start + 8 <= n {
        let m = if n - start >= block {
            block
        } else {
            (n - start) / 8 * 8
        };
        let t = &mut tmp[..m * elem];
        Bitshuffle {
            block: m,
            threads: 1,
        }
        .forward(&data[start * elem..(start + m) * elem], elem, t);
        let c = lz4_flex::block::compress(t);
        out.extend_from_slice(&(c.len() as u32).to_be_bytes());
        out.extend_from_slice(&c);
        start += m;
    }
    out.extend_from_slice(&data[start * elem..]);
    out
}

/// Largest chunk the in-process HDF5 filter decodes (a chunk's header declares its size).
const MAX_HDF5_CHUNK: usize = 4 << 30;

/// The HDF5 filter callback: decode only (this process reads bitshuffle-LZ4, it does not
/// write it through HDF5). Returns the decoded size, or 0 (HDF5's failure) on any error.
extern "C" fn hdf5_filter(
    flags: std::ffi::c_uint,
    cd_nelmts: usize,
    cd_values: *const std::ffi::c_uint,
    nbytes: usize,
    buf_size: *mut usize,
    buf: *mut *mut std::ffi::c_void,
) -> usize {
    if flags & hdf5_sys::h5z::H5Z_FLAG_REVERSE == 0 {
        return 0;
    }
    std::panic::catch_unwind(|| {
        // SAFETY: HDF5 hands a malloc'd buffer of at least `nbytes` at *buf and `cd_nelmts`
        // cd_values; the output is malloc'd here, the input freed, as the filter API asks.
        unsafe {
            let input = std::slice::from_raw_parts(*buf as *const u8, nbytes);
            let cd = std::slice::from_raw_parts(cd_values, cd_nelmts);
            let elem = cd.get(2).copied().unwrap_or(4) as usize;
            if input.len() < 12 {
                return 0;
            }
            let total = u64::from_be_bytes(input[..8].try_into().expect("8")) as usize;
            if total == 0
                || total > MAX_HDF5_CHUNK
                || total > nbytes.saturating_mul(1 << 12).saturating_add(1 << 20)
            {
                return 0;
            }
            let out = libc::malloc(total) as *mut u8;
            if out.is_null() {
                return 0;
            }
            let dst = std::slice::from_raw_parts_mut(out, total);
            if decode_into(input, elem, dst).is_err() {
                libc::free(out as *mut _);
                return 0;
            }
            libc::free(*buf);
            *buf = out as *mut _;
            *buf_size = total;
            total
        }
    })
    .unwrap_or(0)
}

/// Register a decoder for filter 32008 with this process's libhdf5 when none is available
/// (no bitshuffle plugin on `HDF5_PLUGIN_PATH`), so HDF5's own reads of DECTRIS data work too.
pub fn register_hdf5_filter() {
    use hdf5_sys::h5z;
    static NAME: &[u8] = b"bitshuffle-LZ4 (decoder of roibin)\0";
    // SAFETY: H5Zfilter_avail only asks; the class is copied by H5Zregister and its name is a
    // static string.
    unsafe {
        if h5z::H5Zfilter_avail(FILTER_ID) > 0 {
            return;
        }
        let class = h5z::H5Z_class2_t {
            version: h5z::H5Z_CLASS_T_VERS as _,
            id: FILTER_ID,
            encoder_present: 0,
            decoder_present: 1,
            name: NAME.as_ptr() as *const _,
            can_apply: None,
            set_local: None,
            filter: Some(hdf5_filter),
        };
        h5z::H5Zregister(&class as *const _ as *const _);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_partial_blocks_and_a_tail() {
        for n in [8usize, 2048, 2053, 5000, 4096 + 13] {
            let data: Vec<u8> = (0..n as u32)
                .flat_map(|i| (i % 97 * (i % 5)).to_le_bytes())
                .collect();
            let enc = encode(&data, 4);
            let mut dst = vec![0u8; data.len()];
            decode_into(&enc, 4, &mut dst).unwrap();
            assert_eq!(dst, data, "{n}");
        }
    }

    #[test]
    fn lz4_blocks_decode_like_lz4_flex() {
        let mut x = 7u64;
        let mut cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0; 100_000],
            b"abcabcabcabcabcabcab".repeat(300),
        ];
        cases.push(
            (0..50_000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if x % 5 == 0 {
                        (x >> 8) as u8
                    } else {
                        0
                    }
                })
                .collect(),
        );
        cases.push(
            (0..70_000u32)
                .map(|i| (i % 251 % (1 + i / 3000)) as u8)
                .collect(),
        );
        // Short matches at every offset (words drawn from a small vocabulary) and literal
        // runs of every length up to past the fixed-size copy.
        let words: Vec<[u8; 5]> = (0..40u8).map(|k| [k, k ^ 0x5a, 3, k / 2, 200]).collect();
        cases.push(
            (0..60_000)
                .flat_map(|i: usize| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let lit = (0..(x % 23) as usize).map(move |j| (i * 31 + j * 7) as u8);
                    words[(x >> 20) as usize % words.len()]
                        .into_iter()
                        .chain(lit)
                })
                .take(200_000)
                .collect(),
        );
        for data in cases {
            let c = lz4_flex::block::compress(&data);
            let mut out = vec![0u8; data.len()];
            assert_eq!(lz4_block(&c, &mut out), Ok(data.len()));
            assert_eq!(out, data);
        }
    }

    #[test]
    fn crafted_lz4_blocks_are_errors_not_panics() {
        let data = b"abcabcabcabcabcabcab".repeat(300);
        let c = lz4_flex::block::compress(&data);
        let mut out = vec![0u8; data.len()];
        for cut in [1, 2, 5, c.len() / 2] {
            let _ = lz4_block(&c[..c.len() - cut], &mut out);
        }
        let mut x = 1u64;
        for _ in 0..2000 {
            let junk: Vec<u8> = (0..64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = lz4_block(&junk, &mut out[..1000]);
        }
        assert!(lz4_block(&[0x1f, 1, 0, 0], &mut out).is_err());
        assert!(lz4_block(&[0x0f, 0xff], &mut out).is_err());
    }

    #[test]
    fn corrupt_chunks_are_errors() {
        let data: Vec<u8> = (0..4096u32).flat_map(|i| (i % 7).to_le_bytes()).collect();
        let enc = encode(&data, 4);
        let mut dst = vec![0u8; data.len()];
        assert!(decode_into(&enc[..enc.len() - 3], 4, &mut dst).is_err());
        assert!(decode_into(&enc, 4, &mut dst[..100]).is_err());
        let mut bad = enc.clone();
        bad[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_into(&bad, 4, &mut dst).is_err());
        let mut bad = enc;
        bad[8..12].copy_from_slice(&3u32.to_be_bytes());
        assert!(decode_into(&bad, 4, &mut dst).is_err());
    }
}
