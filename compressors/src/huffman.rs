//! Canonical Huffman coding of integer symbols (ours), used by `sz` for quantisation codes.
//!
//! Stream: `u32 symbol count`, per used symbol a varint gap to the previous symbol and its code
//! length (u8), then `u64 bit count` and the MSB-first bit stream.

use crate::bits::{BitReader, BitWriter};
use roibin_registry::stream::Reader;
use roibin_registry::{Error, Result};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Longest code we emit; longer trees are flattened.
const MAX_LEN: u32 = 24;
/// Bits resolved by the decoder's first-level table.
const FAST: u32 = 11;

/// Code lengths for `freq` (0 for unused symbols), each at most [`MAX_LEN`].
fn code_lengths(freq: &[u64]) -> Vec<u8> {
    let mut lens = vec![0u8; freq.len()];
    let used: Vec<usize> = (0..freq.len()).filter(|&s| freq[s] > 0).collect();
    if used.len() == 1 {
        lens[used[0]] = 1;
        return lens;
    }
    let mut f: Vec<u64> = freq.to_vec();
    loop {
        // Classic Huffman on a heap of (weight, node); children recorded to read depths back.
        let mut heap: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
        let mut parent: Vec<usize> = Vec::with_capacity(2 * used.len());
        for (i, &s) in used.iter().enumerate() {
            heap.push(Reverse((f[s], i)));
            parent.push(usize::MAX);
        }
        while heap.len() > 1 {
            let Reverse((wa, a)) = heap.pop().expect("two");
            let Reverse((wb, b)) = heap.pop().expect("two");
            let id = parent.len();
            parent.push(usize::MAX);
            parent[a] = id;
            parent[b] = id;
            heap.push(Reverse((wa + wb, id)));
        }
        let mut depth = vec![0u32; parent.len()];
        for n in (0..parent.len()).rev() {
            if parent[n] != usize::MAX {
                depth[n] = depth[parent[n]] + 1;
            }
        }
        let max = used
            .iter()
            .enumerate()
            .map(|(i, _)| depth[i])
            .max()
            .unwrap_or(0);
        if max <= MAX_LEN {
            for (i, &s) in used.iter().enumerate() {
                lens[s] = depth[i] as u8;
            }
            return lens;
        }
        // Too deep: flatten the distribution and try again.
        for &s in &used {
            f[s] = (f[s] >> 1).max(1);
        }
    }
}

/// Canonical codes from lengths: (code, length) per symbol.
fn canonical(lens: &[u8]) -> Vec<(u32, u32)> {
    let mut order: Vec<usize> = (0..lens.len()).filter(|&s| lens[s] > 0).collect();
    order.sort_by_key(|&s| (lens[s], s));
    let mut codes = vec![(0u32, 0u32); lens.len()];
    let (mut code, mut prev) = (0u32, 0u32);
    for s in order {
        let l = lens[s] as u32;
        code <<= l - prev;
        codes[s] = (code, l);
        code += 1;
        prev = l;
    }
    codes
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(r: &mut Reader<'_>) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = r.u8()?;
        v |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(Error::corrupt("huffman", "varint too long"))
}

/// Encode `symbols` (each < `alphabet`) and append the stream to `out`.
pub fn encode(symbols: &[u32], alphabet: usize, out: &mut Vec<u8>) {
    let mut freq = vec![0u64; alphabet];
    for &s in symbols {
        freq[s as usize] += 1;
    }
    let lens = code_lengths(&freq);
    let codes = canonical(&lens);
    let used: Vec<usize> = (0..alphabet).filter(|&s| lens[s] > 0).collect();
    out.extend_from_slice(&(used.len() as u32).to_le_bytes());
    let mut prev = 0usize;
    for &s in &used {
        put_varint(out, (s - prev) as u64);
        out.push(lens[s]);
        prev = s;
    }
    let mut w = BitWriter::default();
    for &s in symbols {
        let (c, l) = codes[s as usize];
        w.put(c, l);
    }
    out.extend_from_slice(&w.bits().to_le_bytes());
    out.extend_from_slice(&w.finish());
}

/// Decode exactly `count` symbols (each checked `< alphabet`) from `r`.
pub fn decode(r: &mut Reader<'_>, count: usize, alphabet: usize, out: &mut Vec<u32>) -> Result<()> {
    let bad = |m: &str| Error::corrupt("huffman", m.to_string());
    let n = r.u32()? as usize;
    if n > alphabet {
        return Err(bad("more symbols than the alphabet"));
    }
    let mut lens = vec![0u8; alphabet];
    let mut prev = 0usize;
    for i in 0..n {
        let gap = get_varint(r)? as usize;
        let s = prev
            .checked_add(gap)
            .filter(|&s| s < alphabet && (i == 0 || gap > 0))
            .ok_or_else(|| bad("bad symbol table"))?;
        let l = r.u8()?;
        if l == 0 || l as u32 > MAX_LEN {
            return Err(bad("bad code length"));
        }
        lens[s] = l;
        prev = s;
    }
    let nbits = r.u64()?;
    let bytes = r.take(usize::try_from(nbits.div_ceil(8)).map_err(|_| bad("bit count"))?)?;
    if count == 0 {
        return Ok(());
    }
    if n == 0 {
        return Err(bad("no symbols in the table"));
    }
    // Kraft check: a corrupted table must not build an ambiguous or incomplete decoder.
    let kraft: u64 = lens
        .iter()
        .filter(|&&l| l > 0)
        .map(|&l| 1u64 << (MAX_LEN - l as u32))
        .sum();
    if kraft > 1u64 << MAX_LEN || (n > 1 && kraft != 1u64 << MAX_LEN) {
        return Err(bad("code lengths do not form a prefix code"));
    }
    let codes = canonical(&lens);
    // First-level table: (symbol, length) for codes of at most FAST bits.
    let mut table = vec![(u32::MAX, 0u8); 1 << FAST];
    // Slow path: per length, the first canonical code and the symbols in canonical order.
    let mut sorted: Vec<usize> = (0..alphabet).filter(|&s| lens[s] > 0).collect();
    sorted.sort_by_key(|&s| (lens[s], s));
    let mut first = [0u32; MAX_LEN as usize + 2];
    let mut start = [0usize; MAX_LEN as usize + 2];
    let mut count_len = [0usize; MAX_LEN as usize + 2];
    for &s in &sorted {
        count_len[lens[s] as usize] += 1;
    }
    let mut idx = 0;
    for l in 1..=MAX_LEN as usize {
        start[l] = idx;
        idx += count_len[l];
    }
    for (i, &s) in sorted.iter().enumerate() {
        let (c, l) = codes[s];
        if start[l as usize] == i {
            first[l as usize] = c;
        }
        if l <= FAST {
            let base = (c << (FAST - l)) as usize;
            for e in table.iter_mut().skip(base).take(1 << (FAST - l)) {
                *e = (s as u32, l as u8);
            }
        }
    }
    let mut br = BitReader::new(bytes, "huffman");
    out.reserve(count);
    for _ in 0..count {
        let (s, l) = table[br.peek(FAST) as usize];
        if l > 0 {
            br.skip(l as u32)?;
            out.push(s);
            continue;
        }
        // Longer code: walk lengths canonically.
        let mut code = 0u32;
        let mut found = false;
        for len in 1..=MAX_LEN {
            code = (code << 1) | br.get(1)?;
            let k = count_len[len as usize];
            if k > 0 && code >= first[len as usize] && code - first[len as usize] < k as u32 {
                out.push(
                    sorted[start[len as usize] + (code - first[len as usize]) as usize] as u32,
                );
                found = true;
                break;
            }
        }
        if !found {
            return Err(bad("invalid code in the bit stream"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(symbols: &[u32], alphabet: usize) {
        let mut out = vec![];
        encode(symbols, alphabet, &mut out);
        let mut r = Reader::new(&out, "huffman");
        let mut back = vec![];
        decode(&mut r, symbols.len(), alphabet, &mut back).unwrap();
        assert_eq!(back, symbols);
    }

    #[test]
    fn skewed_and_single_symbol() {
        round_trip(&[5; 100], 16);
        round_trip(&[], 16);
        // Fibonacci-like frequencies force deep trees and the length limit.
        let mut v = vec![];
        let (mut a, mut b) = (1u64, 1u64);
        for s in 0..40u32 {
            for _ in 0..a.min(5000) {
                v.push(s);
            }
            (a, b) = (b, a + b);
        }
        round_trip(&v, 64);
    }

    proptest! {
        #[test]
        fn any_symbols_round_trip(v in prop::collection::vec(0u32..300, 0..2000)) {
            round_trip(&v, 300);
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200), count in 0usize..100) {
            let mut r = Reader::new(&bytes, "huffman");
            let mut out = vec![];
            let _ = decode(&mut r, count, 1 << 16, &mut out);
        }
    }
}
