//! The pixels a finder's radial statistics are taken from when it samples the frame (`pf8`'s
//! `sample=N`), and the full-frame scan for pixels above their bin's threshold that sampling
//! needs (the regrouped frame of [`super::radial_pack`] then holds only the sample).
//!
//! A sample is every `step`-th row of the frame, whole rows so that it streams from memory a
//! row at a time. A bin those rows leave with fewer than [`MIN_PER_BIN`] pixels (the innermost
//! rings, short arcs, a bin that crosses few sampled rows) takes its pixels from a finer step
//! (every `step/2`-th row, …, down to every row): each bin's statistics come from at least
//! that many of its pixels, or all of them.

use super::radial_pack::{Packed, Packing, BLOCK};
use crate::prefetch::prefetch;
use rayon::prelude::*;

/// Fewest pixels a bin's statistics are taken from (all of them where it has fewer).
pub const MIN_PER_BIN: usize = 256;

/// Pixels per piece of the threshold scan: one lower bound of the thresholds per piece.
const PIECE: usize = 64;

/// Bins per group of the pieces' lower bounds: a piece's bins span a few groups at most.
const GROUP: usize = 64;

/// A frame sample and its regrouping, built once per geometry and step.
#[derive(Debug)]
pub struct Sample {
    /// Every `step`-th row.
    pub step: usize,
    /// The sampled pixels: per block of the packing, runs (first pixel, length) in frame
    /// order, read where they lie when the sample is regrouped.
    pieces: Vec<Vec<(usize, usize)>>,
    /// Where the sample's pixels (in frame order) go when regrouped by bin.
    pub packing: Packing,
    /// Per piece of [`PIECE`] pixels, the smallest and largest bin of its unmasked pixels
    /// ((1, 0) when it has none).
    piece_bins: Vec<(u16, u16)>,
    /// Per piece, a bit per unmasked pixel: masked pixels (hot, dead, gaps) above the bound
    /// are dropped without looking their bins up (on the synthetic JUNGFRAU frames they were
    /// 96% of the pixels above 300 ADU).
    piece_good: Vec<u64>,
}

impl Sample {
    /// The sample of a frame of rows of `cols` pixels with bins `key` (`masked`: the key of
    /// masked pixels; `bins` keys in all, `masked` included).
    pub fn new(key: &[u16], cols: usize, step: usize, masked: u16, bins: usize) -> Sample {
        let cols = cols.max(1);
        let step = step.max(1);
        let bin_step = bin_steps(key, cols, step, bins);
        let mut runs: Vec<(usize, usize)> = vec![];
        let mut push = |i: usize| match runs.last_mut() {
            Some((start, len)) if *start + *len == i => *len += 1,
            _ => runs.push((i, 1)),
        };
        for (row, keys) in key.chunks(cols).enumerate() {
            for (j, &k) in keys.iter().enumerate() {
                if row % bin_step[k as usize] == 0 {
                    push(row * cols + j);
                }
            }
        }
        let sample_keys: Vec<u16> = runs
            .iter()
            .flat_map(|&(s, n)| key[s..s + n].iter().copied())
            .collect();
        let (piece_bins, piece_good) = piece_tables(key, masked);
        Sample {
            step,
            packing: Packing::new(&sample_keys, masked, bins),
            pieces: split_at_blocks(&runs),
            piece_bins,
            piece_good,
        }
    }

    /// The sample of frame `v` regrouped by bin, with the first round of sums within
    /// `bounds` (see [`Packing::pack`]); the pixels are read where they lie.
    pub fn pack<'a>(&self, v: &'a [f32], bounds: &[(f32, f32)]) -> Packed<'a> {
        self.packing.pack_pieces(v, &self.pieces, bounds)
    }

    /// The sampled pixels, in frame order.
    #[cfg(test)]
    fn pixels(&self) -> Vec<usize> {
        self.pieces
            .iter()
            .flatten()
            .flat_map(|&(a, n)| a..a + n)
            .collect()
    }

    /// The pixels of `v` (bins `key`) above their bin's `threshold`, in increasing order (NaN
    /// is above nothing; masked pixels, whose threshold is +∞, neither).
    ///
    /// Each piece of [`PIECE`] pixels is first compared, a vector at a time, with a lower
    /// bound of its pixels' thresholds (the least over the groups of [`GROUP`] bins its bins
    /// span); only pieces holding a pixel above that bound look their pixels' bins up.
    pub fn above(&self, v: &[f32], key: &[u16], threshold: &[f32]) -> Vec<usize> {
        let group_min: Vec<f32> = threshold
            .chunks(GROUP)
            .map(|g| g.iter().copied().fold(f32::INFINITY, f32::min))
            .collect();
        let bound = |(lo, hi): (u16, u16)| {
            if lo > hi {
                return f32::INFINITY;
            }
            group_min[lo as usize / GROUP..=hi as usize / GROUP]
                .iter()
                .copied()
                .fold(f32::INFINITY, f32::min)
        };
        // Blocks of pieces, in parallel, concatenated in order.
        const PIECES: usize = 1024;
        #[cfg(target_arch = "x86_64")]
        let avx2 = std::is_x86_feature_detected!("avx2");
        let blocks: Vec<Vec<usize>> = v
            .par_chunks(PIECE * PIECES)
            .zip(key.par_chunks(PIECE * PIECES))
            .zip(self.piece_bins.par_chunks(PIECES))
            .zip(self.piece_good.par_chunks(PIECES))
            .enumerate()
            .map(|(block, (((v, key), bins), good))| {
                let b = Block {
                    base: block * PIECE * PIECES,
                    v,
                    key,
                    bins,
                    good,
                };
                #[cfg(target_arch = "x86_64")]
                if avx2 {
                    // SAFETY: the CPU has AVX2 (checked above), all `scan_avx2` asks for.
                    return unsafe { b.scan_avx2(&bound, threshold) };
                }
                b.scan(&bound, threshold, bits_above)
            })
            .collect();
        blocks.concat()
    }
}

/// Per bin, the row step its pixels are sampled at: the largest of `step`, then `step`
/// halved while even, then 1 (each dividing the one before, so a coarser step's rows are
/// among a finer one's) that leaves it at least `min(its pixels, MIN_PER_BIN)` pixels.
fn bin_steps(key: &[u16], cols: usize, step: usize, bins: usize) -> Vec<usize> {
    let mut levels = vec![step];
    while let Some(&s) = levels.last().filter(|&&s| s > 1) {
        levels.push(if s % 2 == 0 { s / 2 } else { 1 });
    }
    // Per level, per bin: its pixels in that level's rows (the last level: all of them).
    let mut counts = vec![vec![0usize; bins]; levels.len()];
    for (row, keys) in key.chunks(cols).enumerate() {
        for (count, &s) in counts.iter_mut().zip(&levels) {
            if row % s == 0 {
                for &k in keys {
                    count[k as usize] += 1;
                }
            }
        }
    }
    let all = &counts[levels.len() - 1];
    (0..bins)
        .map(|b| {
            let enough = all[b].min(MIN_PER_BIN);
            let level = (0..levels.len()).find(|&l| counts[l][b] >= enough);
            levels[level.unwrap_or(levels.len() - 1)]
        })
        .collect()
}

/// Per piece of [`PIECE`] pixels of the frame: the smallest and largest key of its unmasked
/// pixels ((1, 0) when none), and a bit per unmasked pixel.
fn piece_tables(key: &[u16], masked: u16) -> (Vec<(u16, u16)>, Vec<u64>) {
    key.chunks(PIECE)
        .map(|piece| {
            let (lo, hi, good) = piece
                .iter()
                .enumerate()
                .filter(|(_, &k)| k != masked)
                .fold((u16::MAX, 0, 0u64), |(lo, hi, good), (j, &k)| {
                    (lo.min(k), hi.max(k), good | 1 << j)
                });
            (if lo > hi { (1, 0) } else { (lo, hi) }, good)
        })
        .unzip()
}

/// `runs` (first pixel, length) cut where the sample's packing blocks of [`BLOCK`] pixels
/// end: per block, its runs.
fn split_at_blocks(runs: &[(usize, usize)]) -> Vec<Vec<(usize, usize)>> {
    let mut blocks: Vec<Vec<(usize, usize)>> = vec![vec![]];
    let mut room = BLOCK;
    for &(mut a, mut n) in runs {
        while n > 0 {
            if room == 0 {
                blocks.push(vec![]);
                room = BLOCK;
            }
            let take = n.min(room);
            blocks
                .last_mut()
                .expect("one block at least")
                .push((a, take));
            (a, n, room) = (a + take, n - take, room - take);
        }
    }
    blocks
}

/// One block of pieces of the frame for [`Sample::above`].
struct Block<'a> {
    /// Index of its first pixel in the frame.
    base: usize,
    v: &'a [f32],
    key: &'a [u16],
    /// Per piece, its bins' range and its unmasked pixels (see [`Sample`]).
    bins: &'a [(u16, u16)],
    good: &'a [u64],
}

impl Block<'_> {
    /// The block's pixels above their bin's `threshold`, pieces bounded by `bound` of their
    /// bins' range, `bits_of(piece, t)` the bits of a piece's pixels above `t`.
    #[inline(always)]
    fn scan(
        &self,
        bound: &impl Fn((u16, u16)) -> f32,
        threshold: &[f32],
        bits_of: impl Fn(&[f32], f32) -> u64,
    ) -> Vec<usize> {
        // First every piece's candidates (unmasked pixels above the bound), their key lines
        // asked for as they are found; then their bins looked up, the misses overlapping
        // (on the dense EIGER frame the lookups had waited on one miss at a time).
        let mut candidates: Vec<(usize, u64)> = vec![];
        let pieces = self.v.chunks(PIECE).zip(self.bins.iter().zip(self.good));
        for (p, (v, (&b, &good))) in pieces.enumerate() {
            let bits = bits_of(v, bound(b)) & good;
            if bits != 0 {
                prefetch(self.key, p * PIECE + bits.trailing_zeros() as usize);
                candidates.push((p, bits));
            }
        }
        let mut out = vec![];
        for (p, mut bits) in candidates {
            let (v, key) = (&self.v[p * PIECE..], &self.key[p * PIECE..]);
            while bits != 0 {
                let j = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if v[j] > threshold[key[j] as usize] {
                    out.push(self.base + p * PIECE + j);
                }
            }
        }
        out
    }

    /// [`Block::scan`] with whole pieces compared eight pixels at a time.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn scan_avx2(
        &self,
        bound: &impl Fn((u16, u16)) -> f32,
        threshold: &[f32],
    ) -> Vec<usize> {
        self.scan(bound, threshold, |v, t| {
            if v.len() == PIECE {
                // SAFETY: AVX2 is enabled here; the piece holds PIECE pixels.
                unsafe { bits_above_avx2(v, t) }
            } else {
                bits_above(v, t)
            }
        })
    }
}

/// A bit per pixel of `v` (at most 64) above `t` (NaN is above nothing).
#[inline(always)]
fn bits_above(v: &[f32], t: f32) -> u64 {
    v.iter()
        .enumerate()
        .fold(0u64, |bits, (j, &x)| bits | ((x > t) as u64) << j)
}

/// [`bits_above`] of a whole piece: eight compares and movemasks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn bits_above_avx2(v: &[f32], t: f32) -> u64 {
    use std::arch::x86_64::*;
    assert!(v.len() == PIECE, "whole pieces only");
    let t = _mm256_set1_ps(t);
    let mut bits = 0u64;
    for k in 0..PIECE / 8 {
        // SAFETY: elements 8k..8k + 8 of a piece of PIECE = 64 (asserted above).
        let x = unsafe { _mm256_loadu_ps(v.as_ptr().add(8 * k)) };
        let above = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(x, t)) as u32 as u64;
        bits |= above << (8 * k);
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring-binned frame: bins are the rounded distance from an off-centre beam, a masked
    /// stripe, pixel `i`'s value from `value(i)`.
    fn rings(rows: usize, cols: usize, masked_col: usize) -> (Vec<u16>, u16, usize) {
        let (cy, cx) = (rows as f32 * 0.3, cols as f32 * 0.6);
        let bins = ((rows as f32).hypot(cols as f32) as usize) + 2;
        let key = (0..rows * cols)
            .map(|i| {
                let (y, x) = ((i / cols) as f32, (i % cols) as f32);
                if i % cols == masked_col {
                    bins as u16
                } else {
                    (y - cy).hypot(x - cx).round() as u16
                }
            })
            .collect();
        (key, bins as u16, bins + 1)
    }

    /// The sample holds the sampled rows whole, and every unmasked bin keeps at least
    /// `min(its pixels, MIN_PER_BIN)` pixels; thin bins are taken whole.
    #[test]
    fn every_bin_keeps_enough_pixels() {
        let (rows, cols) = (300, 200);
        let (key, masked, bins) = rings(rows, cols, 7);
        for step in [1, 3, 8] {
            let s = Sample::new(&key, cols, step, masked, bins);
            let picked = s.pixels();
            assert!(picked.windows(2).all(|w| w[0] < w[1]), "frame order");
            for r in (0..rows).step_by(step) {
                assert!((r * cols..(r + 1) * cols).all(|i| picked.binary_search(&i).is_ok()));
            }
            let (mut all, mut kept) = (vec![0; bins], vec![0; bins]);
            for &k in &key {
                all[k as usize] += 1;
            }
            for &i in &picked {
                kept[key[i] as usize] += 1;
            }
            for b in 0..bins - 1 {
                assert!(kept[b] >= all[b].min(MIN_PER_BIN), "step {step} bin {b}");
            }
            if step == 1 {
                assert_eq!(picked.len(), key.len());
            } else {
                assert!(picked.len() <= key.len());
            }
        }
        // Where rings are long, the sample is mostly the rows.
        let (key, masked, bins) = rings(1000, 1000, 7);
        // Each packing block but the last reads BLOCK pixels.
        let s = Sample::new(&key, 1000, 2, masked, bins);
        let per_block: Vec<usize> = s
            .pieces
            .iter()
            .map(|b| b.iter().map(|r| r.1).sum())
            .collect();
        assert!(per_block.len() > 2);
        assert!(per_block[..per_block.len() - 1].iter().all(|&n| n == BLOCK));
        assert_eq!(per_block.iter().sum::<usize>(), s.pixels().len());
        let len = |step| Sample::new(&key, 1000, step, masked, bins).pixels().len();
        let (two, four, eight) = (len(2), len(4), len(8));
        assert!(eight <= four && four <= two && two < key.len() * 6 / 10);
        assert!(eight < key.len() / 3, "{eight}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]
        /// The piece-bounded scan finds exactly the pixels a plain scan finds, whatever the
        /// thresholds (some −∞, +∞ or NaN), values (NaN, ±∞) and frame size.
        #[test]
        fn scan_equals_a_plain_scan(
            rows in 1usize..90,
            cols in 1usize..300,
            seed in proptest::prelude::any::<u64>(),
        ) {
            let (key, masked, bins) = rings(rows, cols, 3);
            let mut s = seed | 1;
            let mut rnd = || {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s
            };
            let mut threshold: Vec<f32> = (0..bins)
                .map(|_| match rnd() % 50 {
                    0 => f32::NEG_INFINITY,
                    1 => f32::NAN,
                    2 => f32::INFINITY,
                    _ => (rnd() % 100) as f32,
                })
                .collect();
            threshold[masked as usize] = f32::INFINITY;
            let v: Vec<f32> = (0..key.len())
                .map(|_| match rnd() % 100 {
                    0 => f32::NAN,
                    1 => f32::INFINITY,
                    2 => f32::NEG_INFINITY,
                    _ => (rnd() % 90) as f32,
                })
                .collect();
            let sample = Sample::new(&key, cols, 4, masked, bins);
            let plain: Vec<usize> = (0..v.len()).filter(|&i| v[i] > threshold[key[i] as usize]).collect();
            proptest::prop_assert_eq!(sample.above(&v, &key, &threshold), plain);
        }
    }
}
