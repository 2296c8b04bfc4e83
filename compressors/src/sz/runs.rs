//! Quantisation codes as Huffman tokens with the zero residual in runs ([`Coding::Runs`]).
//!
//! At a loose bound a detector frame's codes are almost all "no change" (the code `radius`):
//! plain Huffman spends at least a bit on each, and zstd then has to find the runs in that bit
//! stream, at two to three bytes per code that is not "no change". Here a run of `L` of them
//! is one token `2·radius + k` (`k = ⌊log₂ L⌋`) with the `k` low bits of `L` stored apart, so a
//! sparse frame costs a few bytes per Bragg-peak pixel and the decoder fills runs at once.
//!
//! Stream: `u64 token count · Huffman stream of tokens (alphabet 2·radius + 31) ·
//! u64 extra-bit count · the extra bits` (MSB first, `k` bits per run token in token order).
//!
//! [`Coding::Runs`]: super::Coding::Runs

use crate::bits::{BitReader, BitWriter};
use crate::huffman;
use roibin_registry::stream::Reader;
use roibin_registry::{Error, Result};

/// Run classes: `k` in `0..CLASSES`, a run of `2^k ..= 2^(k+1) − 1` codes. Longer runs are
/// split, so the extra bits of one token fit a `u32`.
const CLASSES: u32 = 31;

/// Buffers one thread reuses from piece to piece.
#[derive(Default)]
pub(super) struct RunScratch {
    tokens: Vec<u32>,
    extra: Vec<u8>,
}

/// Append the runs stream of `codes` (each `< 2·radius`) to `out`; returns how many codes are
/// not "no change" (the caller's check of the share it assumed).
pub(super) fn encode(codes: &[u32], radius: u32, sc: &mut RunScratch, out: &mut Vec<u8>) -> usize {
    let alphabet = 2 * radius as usize + CLASSES as usize;
    sc.tokens.clear();
    let mut extra = BitWriter::over(std::mem::take(&mut sc.extra));
    let mut run = 0usize;
    let flush = |run: usize, tokens: &mut Vec<u32>, extra: &mut BitWriter| {
        let mut left = run;
        while left > 0 {
            let l = left.min((1usize << CLASSES) - 1);
            let k = l.ilog2();
            tokens.push(2 * radius + k);
            extra.put((l - (1 << k)) as u32, k);
            left -= l;
        }
    };
    let mut others = 0;
    let mut code = |c: u32, run: &mut usize, tokens: &mut Vec<u32>, extra: &mut BitWriter| {
        if c == radius {
            *run += 1;
        } else {
            flush(*run, tokens, extra);
            *run = 0;
            tokens.push(c);
            others += 1;
        }
    };
    // Sixteen codes at a time: at a loose bound nearly every group is all "no change", told by
    // one comparison the compiler vectorises, and only the others are walked code by code.
    for group in codes.chunks(16) {
        if all_no_change(group, radius) {
            run += group.len();
            continue;
        }
        for &c in group {
            code(c, &mut run, &mut sc.tokens, &mut extra);
        }
    }
    flush(run, &mut sc.tokens, &mut extra);
    out.extend_from_slice(&(sc.tokens.len() as u64).to_le_bytes());
    huffman::encode(&sc.tokens, alphabet, out);
    out.extend_from_slice(&extra.bits().to_le_bytes());
    sc.extra = extra.finish();
    out.extend_from_slice(&sc.extra);
    others
}

/// Whether every code is `radius` ("no change"): one comparison a lane, no early exit, so the
/// compiler keeps it in vectors.
pub(super) fn all_no_change(codes: &[u32], radius: u32) -> bool {
    codes.iter().fold(true, |same, &c| same & (c == radius))
}

/// Decode exactly `n` codes (each checked `< 2·radius`) from a runs stream into `codes`.
pub(super) fn decode(
    r: &mut Reader<'_>,
    n: usize,
    radius: u32,
    tokens: &mut Vec<u32>,
    codes: &mut Vec<u32>,
) -> Result<()> {
    let bad = |m: &str| Error::corrupt("sz", m.to_string());
    let alphabet = 2 * radius as usize + CLASSES as usize;
    // Every token stands for at least one code.
    let count = r.len_at_most(n)?;
    tokens.clear();
    huffman::decode(r, count, alphabet, tokens)?;
    let nbits = r.u64()?;
    let bytes = r.take(usize::try_from(nbits.div_ceil(8)).map_err(|_| bad("extra bit count"))?)?;
    let mut extra = BitReader::new(bytes, "sz");
    let mut used = 0u64;
    let start = codes.len();
    for &t in tokens.iter() {
        if t < 2 * radius {
            codes.push(t);
            continue;
        }
        let k = t - 2 * radius;
        let low = extra.get(k)? as usize;
        used += k as u64;
        let run = (1usize << k) + low;
        if run > n - (codes.len() - start) {
            return Err(bad("runs longer than the piece"));
        }
        codes.extend(std::iter::repeat_n(radius, run));
    }
    if codes.len() - start != n {
        return Err(bad("runs stream holds fewer codes than the piece"));
    }
    if used != nbits {
        return Err(bad("extra bits left over in a runs stream"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(codes: &[u32], radius: u32) -> usize {
        let mut out = vec![];
        encode(codes, radius, &mut RunScratch::default(), &mut out);
        let mut r = Reader::new(&out, "sz");
        let (mut tokens, mut back) = (vec![], vec![]);
        decode(&mut r, codes.len(), radius, &mut tokens, &mut back).unwrap();
        assert!(r.is_empty());
        assert_eq!(back, codes);
        out.len()
    }

    #[test]
    fn sparse_codes_cost_bytes_per_outlier_not_bits_per_code() {
        // 1 M codes, 500 of them not "no change": plain Huffman needs 1 M bits (125 kB).
        let radius = 32768;
        let mut codes = vec![radius; 1 << 20];
        for i in 0..500usize {
            codes[(i * 2_654_435_761) % (1 << 20)] = radius + 1 + (i % 3) as u32;
        }
        let size = round_trip(&codes, radius);
        assert!(size < 500 * 4, "{size} bytes");
    }

    #[test]
    fn edge_runs() {
        let r = 4;
        round_trip(&[], r);
        round_trip(&[r], r);
        round_trip(&[0, 7, 1], r);
        round_trip(&[r; 1000], r);
        let mut v = vec![r; 5];
        v.extend([3, 3]);
        v.extend([r; 64]);
        round_trip(&v, r);
    }

    #[test]
    fn truncated_or_overlong_streams_are_errors() {
        let radius = 4;
        let codes = vec![radius, radius, radius, 1, radius];
        let mut out = vec![];
        encode(&codes, radius, &mut RunScratch::default(), &mut out);
        let (mut tokens, mut back) = (vec![], vec![]);
        // Fewer codes than the stream holds, more, and cut short.
        for n in [codes.len() - 1, codes.len() + 1] {
            back.clear();
            let mut r = Reader::new(&out, "sz");
            assert!(decode(&mut r, n, radius, &mut tokens, &mut back).is_err());
        }
        for cut in 0..out.len() {
            back.clear();
            let mut r = Reader::new(&out[..cut], "sz");
            assert!(decode(&mut r, codes.len(), radius, &mut tokens, &mut back).is_err());
        }
    }

    proptest! {
        #[test]
        fn any_codes_round_trip(v in prop::collection::vec(prop_oneof![3 => Just(6u32), 1 => 0u32..12], 0..3000)) {
            round_trip(&v, 6);
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200), n in 0usize..100) {
            let mut r = Reader::new(&bytes, "sz");
            let (mut tokens, mut back) = (vec![], vec![]);
            let _ = decode(&mut r, n, 8, &mut tokens, &mut back);
        }
    }
}
