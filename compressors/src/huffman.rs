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

/// Tables one thread reuses from piece to piece. `freq` and `lens` are kept all-zero between
/// uses (only the used symbols are reset), so an alphabet of 2^16 costs nothing per piece.
#[derive(Default)]
struct Tables {
    freq: Vec<u64>,
    lens: Vec<u8>,
    codes: Vec<(u32, u32)>,
    /// Used symbols, ascending.
    used: Vec<usize>,
    /// Used symbols in canonical order (length, then symbol).
    order: Vec<usize>,
    weights: Vec<u64>,
    parent: Vec<usize>,
    depth: Vec<u32>,
    heap: BinaryHeap<Reverse<(u64, usize)>>,
    bits: Vec<u8>,
    /// The decoder's first-level table.
    fast: Vec<(u32, u8)>,
}

impl Tables {
    /// Grow the per-symbol tables to `alphabet` (new entries zero).
    fn fit(&mut self, alphabet: usize) {
        if self.freq.len() < alphabet {
            self.freq.resize(alphabet, 0);
            self.lens.resize(alphabet, 0);
            self.codes.resize(alphabet, (0, 0));
        }
    }

    /// Back to all-zero `freq` and `lens` for the next piece.
    fn reset(&mut self) {
        for &s in &self.used {
            self.freq[s] = 0;
            self.lens[s] = 0;
        }
        self.used.clear();
    }

    /// Code lengths of the used symbols from `freq`, each at most [`MAX_LEN`].
    fn code_lengths(&mut self) {
        if self.used.len() == 1 {
            self.lens[self.used[0]] = 1;
            return;
        }
        self.weights.clear();
        self.weights.extend(self.used.iter().map(|&s| self.freq[s]));
        loop {
            // Classic Huffman on a heap of (weight, node); parents recorded to read depths back.
            self.heap.clear();
            self.parent.clear();
            for (i, &w) in self.weights.iter().enumerate() {
                self.heap.push(Reverse((w, i)));
                self.parent.push(usize::MAX);
            }
            while self.heap.len() > 1 {
                let Reverse((wa, a)) = self.heap.pop().expect("two");
                let Reverse((wb, b)) = self.heap.pop().expect("two");
                let id = self.parent.len();
                self.parent.push(usize::MAX);
                self.parent[a] = id;
                self.parent[b] = id;
                self.heap.push(Reverse((wa + wb, id)));
            }
            self.depth.clear();
            self.depth.resize(self.parent.len(), 0);
            for n in (0..self.parent.len()).rev() {
                if self.parent[n] != usize::MAX {
                    self.depth[n] = self.depth[self.parent[n]] + 1;
                }
            }
            let max = self.depth[..self.used.len()]
                .iter()
                .copied()
                .max()
                .unwrap_or(0);
            if max <= MAX_LEN {
                for (i, &s) in self.used.iter().enumerate() {
                    self.lens[s] = self.depth[i] as u8;
                }
                return;
            }
            // Too deep: flatten the distribution and try again.
            for w in &mut self.weights {
                *w = (*w >> 1).max(1);
            }
        }
    }

    /// Canonical codes for the used symbols from their lengths (and `order`).
    fn canonical(&mut self) {
        self.order.clear();
        self.order.extend_from_slice(&self.used);
        let lens = &self.lens;
        self.order.sort_unstable_by_key(|&s| (lens[s], s));
        let (mut code, mut prev) = (0u32, 0u32);
        for &s in &self.order {
            let l = self.lens[s] as u32;
            code <<= l - prev;
            self.codes[s] = (code, l);
            code += 1;
            prev = l;
        }
    }
}

fn with_tables<R>(f: impl FnOnce(&mut Tables) -> R) -> R {
    thread_local! {
        static TABLES: std::cell::RefCell<Tables> = std::cell::RefCell::new(Tables::default());
    }
    TABLES.with(|t| match t.try_borrow_mut() {
        Ok(mut t) => f(&mut t),
        Err(_) => f(&mut Tables::default()),
    })
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

/// Encode `symbols` (each < `alphabet`) and append the stream to `out`. Tables and the bit
/// buffer are reused per thread: nothing is allocated per call once they have grown.
pub fn encode(symbols: &[u32], alphabet: usize, out: &mut Vec<u8>) {
    with_tables(|t| {
        t.fit(alphabet);
        count_into(symbols, &mut t.freq);
        t.used.extend((0..alphabet).filter(|&s| t.freq[s] > 0));
        t.code_lengths();
        t.canonical();
        out.extend_from_slice(&(t.used.len() as u32).to_le_bytes());
        let mut prev = 0usize;
        for &s in &t.used {
            put_varint(out, (s - prev) as u64);
            out.push(t.lens[s]);
            prev = s;
        }
        let mut w = BitWriter::over(std::mem::take(&mut t.bits));
        w.put_all(symbols.iter().map(|&s| t.codes[s as usize]));
        out.extend_from_slice(&w.bits().to_le_bytes());
        t.bits = w.finish();
        out.extend_from_slice(&t.bits);
        t.reset();
    })
}

/// Add each symbol's count to `freq`. One memory increment per symbol makes a chain through
/// the counter when a symbol repeats (a flat background's "no change"): each store waits on
/// the load before it. Runs are then counted in a register instead; symbols that change at
/// most steps (noise at a tight bound) keep the plain loop, where the run test would be a
/// branch mispredicted half the time.
fn count_into(symbols: &[u32], freq: &mut [u64]) {
    let Some(&first) = symbols.first() else {
        return;
    };
    let sample = &symbols[..symbols.len().min(4096)];
    let changes = sample.windows(2).filter(|w| w[0] != w[1]).count();
    if changes * 4 > sample.len() {
        for &s in symbols {
            freq[s as usize] += 1;
        }
        return;
    }
    let (mut current, mut run) = (first, 0u64);
    for &s in symbols {
        if s != current {
            freq[current as usize] += run;
            (current, run) = (s, 0);
        }
        run += 1;
    }
    freq[current as usize] += run;
}

/// Decode exactly `count` symbols (each checked `< alphabet`) from `r`. Tables are reused per
/// thread, as in [`encode`].
pub fn decode(r: &mut Reader<'_>, count: usize, alphabet: usize, out: &mut Vec<u32>) -> Result<()> {
    with_tables(|t| {
        t.fit(alphabet);
        let res = decode_with(t, r, count, alphabet, out);
        t.reset();
        res
    })
}

fn decode_with(
    t: &mut Tables,
    r: &mut Reader<'_>,
    count: usize,
    alphabet: usize,
    out: &mut Vec<u32>,
) -> Result<()> {
    let bad = |m: &str| Error::corrupt("huffman", m.to_string());
    let n = r.u32()? as usize;
    if n > alphabet {
        return Err(bad("more symbols than the alphabet"));
    }
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
        t.lens[s] = l;
        t.used.push(s);
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
    let kraft: u64 = t
        .used
        .iter()
        .map(|&s| 1u64 << (MAX_LEN - t.lens[s] as u32))
        .sum();
    if kraft > 1u64 << MAX_LEN || (n > 1 && kraft != 1u64 << MAX_LEN) {
        return Err(bad("code lengths do not form a prefix code"));
    }
    t.canonical();
    let Tables {
        lens,
        codes,
        order: sorted,
        fast: table,
        ..
    } = t;
    // First-level table: (symbol, length) for codes of at most FAST bits.
    table.clear();
    table.resize(1 << FAST, (u32::MAX, 0u8));
    // Slow path: per length, the first canonical code and the symbols in canonical order.
    let mut first = [0u32; MAX_LEN as usize + 2];
    let mut start = [0usize; MAX_LEN as usize + 2];
    let mut count_len = [0usize; MAX_LEN as usize + 2];
    for &s in sorted.iter() {
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
    // The first symbol in canonical order has the all-zero code. When that code is one bit
    // long, a run of zero bits is a run of it: sz's codes for a flat background are mostly the
    // one symbol "no change", decoded here a run at a time.
    let runs = lens[sorted[0]] == 1;
    let mut br = BitReader::new(bytes, "huffman");
    out.reserve(count);
    let end = out.len() + count;
    while out.len() < end {
        let next = br.peek(FAST);
        let (s, l) = table[next as usize];
        // Only runs of at least FAST zeros: shorter ones are cheaper one symbol at a time.
        if runs && next == 0 {
            let z = br.zero_run(end - out.len());
            if z == 0 {
                return Err(bad("bit stream ends early"));
            }
            out.extend(std::iter::repeat_n(s, z));
            continue;
        }
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
    fn counts_are_those_of_a_plain_loop() {
        // Long runs (counted in a register), noise (the plain loop), both mixed, and empty.
        let runs: Vec<u32> = (0..20_000u32)
            .map(|i| if i % 997 < 990 { 7 } else { i % 5 })
            .collect();
        let noise: Vec<u32> = (0..20_000u32)
            .map(|i| i.wrapping_mul(2_654_435_761) % 11)
            .collect();
        let mixed: Vec<u32> = runs[..10_000]
            .iter()
            .chain(&noise[..10_000])
            .copied()
            .collect();
        for symbols in [runs, noise, mixed, vec![]] {
            let mut freq = vec![0u64; 16];
            count_into(&symbols, &mut freq);
            let mut plain = vec![0u64; 16];
            for &s in &symbols {
                plain[s as usize] += 1;
            }
            assert_eq!(freq, plain);
        }
    }

    #[test]
    fn runs_of_a_one_bit_symbol() {
        // One symbol over half the stream: a one-bit code, decoded a run at a time, with runs
        // longer than the reader's 64-bit buffer and runs at both ends.
        let mut v = vec![7u32; 300];
        for i in 0..200u32 {
            v.push(i % 5);
            v.extend(std::iter::repeat_n(7, (i * 37 % 90) as usize));
        }
        v.extend([7; 130]);
        round_trip(&v, 16);
        round_trip(&[3], 16);
        round_trip(&[3, 3, 3], 16);
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
