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
use roibin_compressors::bitshuffle::Bitshuffle;
use roibin_compressors::permute::Permutation;

/// The HDF5 filter id of bitshuffle.
pub const FILTER_ID: i32 = 32008;

/// Decode one raw chunk of `elem`-byte elements into `dst`, which must be exactly the chunk's
/// size (the header's size is checked against it before anything is written).
pub fn decode_into(chunk: &[u8], elem: usize, dst: &mut [u8]) -> Result<()> {
    ensure!(
        chunk.len() >= 12,
        "bitshuffle-LZ4 chunk of {} bytes: too short",
        chunk.len()
    );
    ensure!(elem > 0 && elem <= 8, "element size {elem}");
    let total = u64::from_be_bytes(chunk[0..8].try_into().expect("8")) as usize;
    let block_bytes = u32::from_be_bytes(chunk[8..12].try_into().expect("4")) as usize;
    if total != dst.len() {
        bail!(
            "bitshuffle-LZ4 chunk declares {total} bytes, the chunk holds {}",
            dst.len()
        );
    }
    let block = block_bytes / elem;
    ensure!(
        block >= 8 && block % 8 == 0 && block_bytes % elem == 0,
        "bitshuffle-LZ4 block of {block_bytes} bytes for {elem}-byte elements"
    );
    let n = total / elem;
    let mut pos = 12;
    let mut tmp = vec![0u8; block_bytes.min(total)];
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
        let out = &mut tmp[..m * elem];
        let got = lz4_flex::block::decompress_into(src, out)
            .map_err(|e| anyhow::anyhow!("LZ4 block at byte {}: {e}", pos - len))?;
        ensure!(
            got == out.len(),
            "LZ4 block holds {got} bytes, not {}",
            out.len()
        );
        Bitshuffle {
            block: m,
            threads: 1,
        }
        .inverse(out, elem, &mut dst[start * elem..(start + m) * elem]);
        start += m;
    }
    let rest = (n - start) * elem + total % elem;
    let tail = chunk
        .get(pos..pos + rest)
        .ok_or_else(|| anyhow::anyhow!("bitshuffle-LZ4 chunk misses its last {rest} bytes"))?;
    dst[start * elem..].copy_from_slice(tail);
    ensure!(
        pos + rest == chunk.len(),
        "{} trailing bytes after the last block",
        chunk.len() - pos - rest
    );
    Ok(())
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
