//! A frame's pixels regrouped by radial bin, so that per-bin statistics sum contiguous runs in
//! registers instead of scattering every pixel into a table indexed by its bin.
//!
//! The frame is cut into fixed blocks of [`BLOCK`] pixels. Within a block, each bin's pixels
//! are stored together, bins in increasing order and pixels in frame order: a stable
//! counting sort whose layout ([`Packing`]) depends only on the geometry and is built once.
//! Sums are per (block, bin) and merged in block order, so they depend on neither the thread
//! count nor the scheduling.

use crate::spare::Spare;
use rayon::prelude::*;
use std::ops::Range;

/// Pixels per block: a block's values and keys stay in L2 while it is regrouped.
pub const BLOCK: usize = 1 << 16;

/// Per-bin count, sum and sum of squares.
pub type BinSums = (u32, f64, f64);

/// Where each pixel goes when a frame is regrouped by bin (built from the radial keys, once
/// per geometry).
#[derive(Debug)]
pub struct Packing {
    /// Per pixel, its place in its block's packed order.
    dest: Vec<u16>,
    /// Per packed place, the pixel (relative to its block) stored there.
    src: Vec<u16>,
    /// Per block, its bins in increasing order with where each begins (relative to the block);
    /// a bin's run ends where the next begins, the last at the block's end.
    segments: Vec<Vec<(u16, u32)>>,
    /// The key of masked pixels: packed with the rest (a permutation is simpler and faster to
    /// apply than a selection), never summed.
    masked: u16,
    /// Per-block buffers of kept runs handed back by [`Packing::recycle`], for the next frames
    /// (fresh ones cost page faults); each is cleared before it is filled.
    kept: Spare<Vec<f32>>,
    /// Block-sized buffers a block is regrouped in (each place is written: the layout is a
    /// permutation of the block, so nothing of an earlier block is read).
    scratch: Spare<f32>,
}

impl Packing {
    /// The layout for `key` (a bin per pixel below `bins`; `masked` marks pixels never summed).
    pub fn new(key: &[u16], masked: u16, bins: usize) -> Packing {
        // Per block: dest, src and segments.
        type Layout = (Vec<u16>, Vec<u16>, Vec<(u16, u32)>);
        let blocks: Vec<Layout> = key
            .par_chunks(BLOCK)
            .map(|keys| {
                let mut count = vec![0u32; bins];
                for &k in keys {
                    count[k as usize] += 1;
                }
                let (mut at, mut segments) = (0u32, vec![]);
                let mut cursor = vec![0u32; bins];
                for (b, &n) in count.iter().enumerate().filter(|(_, &n)| n > 0) {
                    segments.push((b as u16, at));
                    cursor[b] = at;
                    at += n;
                }
                let (mut dest, mut src) = (vec![0u16; keys.len()], vec![0u16; keys.len()]);
                for (i, &k) in keys.iter().enumerate() {
                    let c = &mut cursor[k as usize];
                    // Places and pixels of a block are below BLOCK = 2¹⁶.
                    dest[i] = *c as u16;
                    src[*c as usize] = i as u16;
                    *c += 1;
                }
                (dest, src, segments)
            })
            .collect();
        let mut packing = Packing {
            dest: Vec::with_capacity(key.len()),
            src: Vec::with_capacity(key.len()),
            segments: Vec::with_capacity(blocks.len()),
            masked,
            kept: Default::default(),
            scratch: Default::default(),
        };
        for (dest, src, segments) in blocks {
            packing.dest.extend_from_slice(&dest);
            packing.src.extend_from_slice(&src);
            packing.segments.push(segments);
        }
        packing
    }

    /// Regroup the frame `v` (non-finite pixels too: no bounds admit them), and sum each
    /// block's runs within `bounds` (the first round of [`Packing::sums`]) while the block is
    /// still in cache.
    ///
    /// A block is regrouped in a scratch buffer that stays in cache, and only its runs that
    /// later rounds are likely to read again are kept (see `worth_keeping`); the others are
    /// read from `v` again, through the layout, where a round needs them. The frame's 16 MB
    /// regrouped copy (written, then mostly never read: the rounds after the first re-read a
    /// tenth of the pixels) is not written.
    pub fn pack<'a>(&self, v: &'a [f32], bounds: &[(f32, f32)]) -> Packed<'a> {
        self.pack_keeping(v, bounds, worth_keeping)
    }

    /// [`Packing::pack`], keeping the runs `keep` picks by their first round.
    fn pack_keeping<'a>(
        &self,
        v: &'a [f32],
        bounds: &[(f32, f32)],
        keep: impl Fn(&RunSums) -> bool + Sync,
    ) -> Packed<'a> {
        self.pack_blocks(v, |block, kept| {
            let (vals, dest) = (&v[self.block_range(block)], self.block_dest(block));
            let mut scratch = self.scratch.take();
            scratch.resize(vals.len(), 0.0);
            for (&x, &d) in vals.iter().zip(dest) {
                scratch[d as usize] = x;
            }
            let last = self.first_round(&scratch, block, bounds);
            let at = self.keep(&scratch, block, &last, &keep, kept);
            self.scratch.give(scratch);
            BlockRuns { last, at }
        })
    }

    /// [`Packing::pack`] of the pixels `v[a..a + n]` of each `(a, n)` of `pieces`, in turn,
    /// read where they lie (a sample of a frame, not copied out first); `pieces[block]` are
    /// the pieces of packing block `block`, which together hold its [`BLOCK`] pixels (fewer
    /// in the last). Every run is kept: the sample is not where its pixels lie in `v`.
    pub fn pack_pieces<'a>(
        &self,
        v: &'a [f32],
        pieces: &[Vec<(usize, usize)>],
        bounds: &[(f32, f32)],
    ) -> Packed<'a> {
        self.pack_blocks(&[], |block, out| {
            let mut dest = self.block_dest(block).iter();
            out.resize(dest.len(), 0.0);
            for &(a, n) in &pieces[block] {
                for (&x, &d) in v[a..a + n].iter().zip(dest.by_ref()) {
                    out[d as usize] = x;
                }
            }
            let last = self.first_round(out, block, bounds);
            let at = self.ranges(block).map(|(_, r)| r.start as u32).collect();
            BlockRuns { last, at }
        })
    }

    /// A [`Packed`] frame whose runs not kept are read from `frame`: `regroup(block, kept)`
    /// regroups each block in parallel, filling `kept` (a buffer of an earlier frame's, from
    /// the pool) with the values of the runs it keeps.
    fn pack_blocks<'a>(
        &self,
        frame: &'a [f32],
        regroup: impl Fn(usize, &mut Vec<f32>) -> BlockRuns + Sync,
    ) -> Packed<'a> {
        let mut kept = self.kept.take();
        kept.resize_with(self.segments.len(), Vec::new);
        let blocks = kept
            .par_iter_mut()
            .enumerate()
            .map(|(block, kept)| regroup(block, kept))
            .collect();
        Packed {
            frame,
            kept,
            blocks,
        }
    }

    /// The pixels of block `block`.
    fn block_range(&self, block: usize) -> Range<usize> {
        block * BLOCK..self.dest.len().min((block + 1) * BLOCK)
    }

    /// Where each pixel of block `block` goes in the block's packed order.
    fn block_dest(&self, block: usize) -> &[u16] {
        &self.dest[self.block_range(block)]
    }

    /// The first round over one block's packed `values`.
    fn first_round(&self, values: &[f32], block: usize, bounds: &[(f32, f32)]) -> Vec<RunSums> {
        self.ranges(block)
            .map(|(b, r)| {
                if b == self.masked {
                    // Never summed nor seeded: not read.
                    return RunSums::NOTHING;
                }
                let (lo, hi) = bounds[b as usize];
                RunSums::of(&values[r], lo, hi)
            })
            .collect()
    }

    /// Copy the runs of one block (`values`: its packed values) that `keep` picks by their
    /// first round (`last`) into `kept`; per run, where its values begin there, or
    /// [`NOT_KEPT`].
    fn keep(
        &self,
        values: &[f32],
        block: usize,
        last: &[RunSums],
        keep: impl Fn(&RunSums) -> bool,
        kept: &mut Vec<f32>,
    ) -> Vec<u32> {
        kept.clear();
        self.ranges(block)
            .zip(last)
            .map(|((b, r), run)| {
                if b == self.masked || !keep(run) {
                    return NOT_KEPT;
                }
                let at = kept.len() as u32;
                kept.extend_from_slice(&values[r]);
                at
            })
            .collect()
    }

    /// Keep `packed`'s buffers for a later [`Packing::pack`].
    pub fn recycle(&self, packed: Packed) {
        self.kept.give(packed.kept);
    }

    /// The runs of one block: (bin, its places in the block's packed order), bins in order.
    fn ranges(&self, block: usize) -> impl Iterator<Item = (u16, Range<usize>)> + '_ {
        let segments = &self.segments[block];
        let len = self.block_range(block).len();
        segments.iter().enumerate().map(move |(i, &(b, at))| {
            let end = segments.get(i + 1).map_or(len, |s| s.1 as usize);
            (b, at as usize..end)
        })
    }

    /// The values of the run at places `r` of block `block`: from the kept runs where it was
    /// kept (`at`), else read from the frame through the layout into `buf`.
    fn run_values<'b>(
        &self,
        (frame, kept): (&[f32], &'b [f32]),
        block: usize,
        (at, r): (u32, Range<usize>),
        buf: &'b mut Vec<f32>,
    ) -> &'b [f32] {
        if at != NOT_KEPT {
            let at = at as usize;
            return &kept[at..at + r.len()];
        }
        let base = block * BLOCK;
        buf.clear();
        buf.extend(
            self.src[base + r.start..base + r.end]
                .iter()
                .map(|&i| frame[base + i as usize]),
        );
        buf
    }

    /// Per-bin sums of the unmasked pixels strictly inside their bin's `bounds` (`bins` entries).
    ///
    /// A run whose bounds admit the same values as in the round before keeps that round's
    /// sums without being read again: the same pixels summed the same way, so the same bits.
    /// Sigma clipping converges, so after the first rounds most runs are skipped.
    pub fn sums(&self, packed: &mut Packed, bounds: &[(f32, f32)], bins: usize) -> Vec<BinSums> {
        let Packed {
            frame,
            kept,
            blocks,
        } = packed;
        let frame: &[f32] = frame;
        blocks.par_iter_mut().enumerate().for_each(|(block, runs)| {
            let mut buf = vec![];
            let kept = kept[block].as_slice();
            for ((i, (b, r)), found) in self.ranges(block).enumerate().zip(&mut runs.last) {
                if b == self.masked {
                    continue;
                }
                let (lo, hi) = bounds[b as usize];
                if !found.admits_the_same(lo, hi) {
                    let x = self.run_values((frame, kept), block, (runs.at[i], r), &mut buf);
                    *found = RunSums::of(x, lo, hi);
                }
            }
        });
        // Merged in block order: the same sums at any thread count.
        let mut sums = vec![(0u32, 0f64, 0f64); bins];
        for (segments, runs) in self.segments.iter().zip(&packed.blocks) {
            for (&(b, _), run) in segments.iter().zip(&runs.last) {
                if b != self.masked {
                    let (n, s, s2) = run.sums;
                    let a = &mut sums[b as usize];
                    a.0 += n;
                    a.1 += s;
                    a.2 += s2;
                }
            }
        }
        sums
    }

    /// The unmasked pixels above their bin's `threshold`, in increasing order (NaN is above
    /// nothing).
    pub fn above(&self, packed: &Packed, threshold: &[f32]) -> Vec<usize> {
        let blocks: Vec<Vec<usize>> = (0..self.segments.len())
            .into_par_iter()
            .map(|block| {
                let base = block * BLOCK;
                let runs = &packed.blocks[block];
                // One bit per pixel of the block, set in packed order and read in pixel order.
                let mut bits = vec![0u64; BLOCK / 64];
                let mut buf = vec![];
                for ((i, (b, r)), run) in self.ranges(block).enumerate().zip(&runs.last) {
                    let t = threshold[b as usize];
                    // Most runs hold nothing above their threshold: skip them unread.
                    if run.top <= t {
                        continue;
                    }
                    let src = &self.src[base + r.start..base + r.end];
                    let x = self.run_values(
                        (packed.frame, &packed.kept[block]),
                        block,
                        (runs.at[i], r),
                        &mut buf,
                    );
                    for (&v, &p) in x.iter().zip(src) {
                        if v > t {
                            bits[p as usize / 64] |= 1 << (p % 64);
                        }
                    }
                }
                let mut out = vec![];
                for (w, &word) in bits.iter().enumerate() {
                    let mut word = word;
                    while word != 0 {
                        out.push(base + w * 64 + word.trailing_zeros() as usize);
                        word &= word - 1;
                    }
                }
                out
            })
            .collect();
        blocks.concat()
    }
}

/// Where a run not kept begins in its block's kept values: nowhere.
const NOT_KEPT: u32 = u32::MAX;

/// How far past its own mean, in its own standard deviations, a run's extreme must lie for
/// [`worth_keeping`]: a run with a Bragg spot or a hot pixel (what clipping rejects and
/// thresholds find) reaches it, a run of background rarely does. Photon-counting backgrounds
/// have long tails: on the synthetic JUNGFRAU frame 4 keeps three quarters of the pixels (as
/// slow as regrouping the whole frame in memory), 6 an eighth (pf8 ~20% faster than the whole
/// frame regrouped, `benches/results/pf8_vs_pass_2026-12-05.txt`); keeping nothing is as fast
/// on one core but reads three times the pixels again from the frame.
const KEEP_SPREAD: f64 = 6.0;

/// Whether a run is likely to be read again after the first round (`first`: its sums and
/// extents with every finite value admitted): later rounds re-read a run only where their
/// bounds move past one of its values, and the seed scan only a run with a value above its
/// threshold, which is what an outlier of the run is. A guess, never a change of result: a
/// run not kept is read from the frame where it is needed.
fn worth_keeping(first: &RunSums) -> bool {
    let (n, s, s2) = first.sums;
    if n == 0 {
        return false;
    }
    let mean = s / n as f64;
    let sd = (s2 / n as f64 - mean * mean).max(0.0).sqrt();
    let reach = KEEP_SPREAD * sd;
    first.top as f64 - mean > reach || mean - first.inside.0 as f64 > reach
}

/// A frame regrouped by [`Packing::pack`]: what the last round of [`Packing::sums`] found in
/// each run, the values of the runs kept, and the frame the others are read from.
pub struct Packed<'a> {
    frame: &'a [f32],
    /// Per block, the values of its kept runs, in packed order.
    kept: Vec<Vec<f32>>,
    blocks: Vec<BlockRuns>,
}

/// One block's runs in a [`Packed`] frame.
struct BlockRuns {
    /// Per run, what the last round found in it.
    last: Vec<RunSums>,
    /// Per run, where its values begin in its block's kept values ([`NOT_KEPT`]: not kept).
    at: Vec<u32>,
}

/// One round's sums over one run, and where its admitted and rejected values lie.
#[derive(Debug, Clone, Copy)]
struct RunSums {
    sums: BinSums,
    /// Smallest and largest admitted value ((+∞, −∞) when none).
    inside: (f32, f32),
    /// Largest rejected value at or below the lower bound (−∞ when none).
    below: f32,
    /// Smallest rejected value at or above the upper bound (+∞ when none).
    above: f32,
    /// Largest value of the run, NaN aside (−∞ when none).
    top: f32,
}

impl RunSums {
    /// A run never read (masked pixels): no values, so nothing above any threshold.
    const NOTHING: RunSums = RunSums {
        sums: (0, 0.0, 0.0),
        inside: (f32::INFINITY, f32::NEG_INFINITY),
        below: f32::NEG_INFINITY,
        above: f32::INFINITY,
        top: f32::NEG_INFINITY,
    };

    /// Whether `(lo, hi)` admits exactly the values this round admitted: all of them, and
    /// none of those it rejected (NaN is never admitted, so it is not tracked).
    fn admits_the_same(&self, lo: f32, hi: f32) -> bool {
        lo < self.inside.0 && hi > self.inside.1 && self.below <= lo && self.above >= hi
    }
}

/// Lanes of count, sum and sum of squares: lane `j` takes elements `LANES·k + j`. Eight
/// independent chains: each add waits on the one before it in its lane.
const LANES: usize = 8;

/// Per-lane sums, and the extents of a run (order-free: minima and maxima are exact).
struct Lanes {
    n: [u32; LANES],
    s: [f64; LANES],
    s2: [f64; LANES],
    inside: (f32, f32),
    below: f32,
    above: f32,
    top: f32,
}

impl Lanes {
    fn new() -> Lanes {
        Lanes {
            n: [0; LANES],
            s: [0.0; LANES],
            s2: [0.0; LANES],
            inside: (f32::INFINITY, f32::NEG_INFINITY),
            below: f32::NEG_INFINITY,
            above: f32::INFINITY,
            top: f32::NEG_INFINITY,
        }
    }

    /// The run's extents from each lane's: smallest and largest admitted value, largest
    /// rejected below, smallest rejected above, largest (minima and maxima: order-free).
    #[inline(always)]
    fn set_extents<const N: usize>(&mut self, [in_min, in_max, below, above, top]: [[f32; N]; 5]) {
        let min = |a: [f32; N]| a.into_iter().fold(f32::INFINITY, f32::min);
        let max = |a: [f32; N]| a.into_iter().fold(f32::NEG_INFINITY, f32::max);
        self.inside = (min(in_min), max(in_max));
        (self.below, self.above, self.top) = (max(below), min(above), max(top));
    }

    /// Element `v` into lane `j`.
    fn add(&mut self, j: usize, v: f32, lo: f32, hi: f32) {
        let inside = v > lo && v < hi;
        let y = if inside { v as f64 } else { 0.0 };
        self.n[j] += inside as u32;
        self.s[j] += y;
        self.s2[j] += y * y;
        self.top = self.top.max(v);
        if inside {
            self.inside = (self.inside.0.min(v), self.inside.1.max(v));
        }
        // Both when the bounds are empty (lo ≥ hi): every rejected value is in one group or
        // both, which is all `admits_the_same` needs.
        if v <= lo {
            self.below = self.below.max(v);
        }
        if v >= hi {
            self.above = self.above.min(v);
        }
    }
}

impl RunSums {
    /// Count, sum and sum of squares of the values of `x` strictly between `lo` and `hi`, in
    /// [`LANES`] lanes combined in a fixed order (the same bits on every path and run), and
    /// the extents [`RunSums::admits_the_same`] tests.
    fn of(x: &[f32], lo: f32, hi: f32) -> RunSums {
        let whole = x.len() / LANES * LANES;
        #[cfg(target_arch = "x86_64")]
        let mut l =
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("popcnt") {
                // SAFETY: the CPU has AVX2 and POPCNT (checked just above), all `lanes_avx2`
                // asks for.
                unsafe { lanes_avx2(&x[..whole], lo, hi) }
            } else {
                lanes_sse2(&x[..whole], lo, hi)
            };
        #[cfg(not(target_arch = "x86_64"))]
        let mut l = lanes_portable(&x[..whole], lo, hi);
        for (j, &v) in x[whole..].iter().enumerate() {
            l.add(j, v, lo, hi);
        }
        let tree =
            |a: [f64; LANES]| ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
        RunSums {
            sums: (l.n.iter().sum(), tree(l.s), tree(l.s2)),
            inside: l.inside,
            below: l.below,
            above: l.above,
            top: l.top,
        }
    }
}

/// The lanes of `x` (a multiple of [`LANES`] long), one element at a time.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn lanes_portable(x: &[f32], lo: f32, hi: f32) -> Lanes {
    let mut l = Lanes::new();
    for q in x.chunks_exact(LANES) {
        for (j, &v) in q.iter().enumerate() {
            l.add(j, v, lo, hi);
        }
    }
    l
}

/// The lanes of `x` (a multiple of [`LANES`] long), eight elements per step with SSE2: the
/// same operations per lane as [`lanes_portable`] (compare, zero outside, widen, add, square
/// and add), so the same bits; the scalar loop is compute-bound at about 1 ns a pixel.
#[cfg(target_arch = "x86_64")]
fn lanes_sse2(x: &[f32], lo: f32, hi: f32) -> Lanes {
    use std::arch::x86_64::*;
    assert!(x.len() % LANES == 0, "whole steps only");
    // SAFETY: SSE2 is part of every x86_64 CPU. Each step loads elements k..k+8 of `x`
    // (k + 8 <= its length, a multiple of 8, asserted above), unaligned; the stores write
    // whole local arrays of the matching size.
    unsafe {
        let (vlo, vhi) = (_mm_set1_ps(lo), _mm_set1_ps(hi));
        let (inf, ninf) = (_mm_set1_ps(f32::INFINITY), _mm_set1_ps(f32::NEG_INFINITY));
        // Where `mask` is set `a`, else `b`.
        let select = |mask, a, b| _mm_or_ps(_mm_and_ps(mask, a), _mm_andnot_ps(mask, b));
        let mut n = [_mm_setzero_si128(); 2];
        let (mut s, mut q) = ([_mm_setzero_pd(); 4], [_mm_setzero_pd(); 4]);
        let (mut in_min, mut in_max, mut below, mut above, mut top) = (inf, ninf, ninf, inf, ninf);
        for k in (0..x.len()).step_by(LANES) {
            for h in 0..2 {
                let v = _mm_loadu_ps(x.as_ptr().add(k + 4 * h));
                let inside = _mm_and_ps(_mm_cmpgt_ps(v, vlo), _mm_cmplt_ps(v, vhi));
                let y = _mm_and_ps(v, inside);
                // An inside lane's mask is −1 as an integer.
                n[h] = _mm_sub_epi32(n[h], _mm_castps_si128(inside));
                let (lo2, hi2) = (_mm_cvtps_pd(y), _mm_cvtps_pd(_mm_movehl_ps(y, y)));
                s[2 * h] = _mm_add_pd(s[2 * h], lo2);
                s[2 * h + 1] = _mm_add_pd(s[2 * h + 1], hi2);
                q[2 * h] = _mm_add_pd(q[2 * h], _mm_mul_pd(lo2, lo2));
                q[2 * h + 1] = _mm_add_pd(q[2 * h + 1], _mm_mul_pd(hi2, hi2));
                in_min = _mm_min_ps(in_min, select(inside, v, inf));
                in_max = _mm_max_ps(in_max, select(inside, v, ninf));
                below = _mm_max_ps(below, select(_mm_cmple_ps(v, vlo), v, ninf));
                above = _mm_min_ps(above, select(_mm_cmpge_ps(v, vhi), v, inf));
                // maxps returns its second operand when the first is NaN: NaN is skipped.
                top = _mm_max_ps(v, top);
            }
        }
        let mut l = Lanes::new();
        for (h, &nh) in n.iter().enumerate() {
            _mm_storeu_si128(l.n.as_mut_ptr().add(4 * h) as *mut __m128i, nh);
        }
        for p in 0..4 {
            _mm_storeu_pd(l.s.as_mut_ptr().add(2 * p), s[p]);
            _mm_storeu_pd(l.s2.as_mut_ptr().add(2 * p), q[p]);
        }
        let lanes = |v| {
            let mut a = [0f32; 4];
            _mm_storeu_ps(a.as_mut_ptr(), v);
            a
        };
        l.set_extents([in_min, in_max, below, above, top].map(lanes));
        l
    }
}

/// [`lanes_sse2`] with the eight lanes in one AVX2 register: the same operations per lane
/// (no FMA), so the same bits, in half the instructions (the SSE2 loop is bound by them, not
/// by its add chains).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
unsafe fn lanes_avx2(x: &[f32], lo: f32, hi: f32) -> Lanes {
    use std::arch::x86_64::*;
    assert!(x.len() % LANES == 0, "whole steps only");
    // SAFETY: the caller checked AVX2. Each step loads elements k..k+8 of `x` (k + 8 <= its
    // length, a multiple of 8, asserted above), unaligned; the stores write whole local
    // arrays of the matching size.
    unsafe {
        let (vlo, vhi) = (_mm256_set1_ps(lo), _mm256_set1_ps(hi));
        let (inf, ninf) = (
            _mm256_set1_ps(f32::INFINITY),
            _mm256_set1_ps(f32::NEG_INFINITY),
        );
        // The count in a general register: a vector count was the accumulator spilled to the
        // stack (sixteen registers hold the ten others, four constants and the temporaries),
        // and its store and reload cost a third of the loop where the stack's alignment split
        // the store over two cache lines.
        let mut n = 0u32;
        let (mut s, mut q) = ([_mm256_setzero_pd(); 2], [_mm256_setzero_pd(); 2]);
        let (mut in_min, mut in_max, mut below, mut above, mut top) = (inf, ninf, ninf, inf, ninf);
        for k in (0..x.len()).step_by(LANES) {
            let v = _mm256_loadu_ps(x.as_ptr().add(k));
            let inside = _mm256_and_ps(
                _mm256_cmp_ps::<_CMP_GT_OQ>(v, vlo),
                _mm256_cmp_ps::<_CMP_LT_OQ>(v, vhi),
            );
            let y = _mm256_and_ps(v, inside);
            n += _mm256_movemask_ps(inside).count_ones();
            let (lo4, hi4) = (
                _mm256_cvtps_pd(_mm256_castps256_ps128(y)),
                _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(y)),
            );
            s[0] = _mm256_add_pd(s[0], lo4);
            s[1] = _mm256_add_pd(s[1], hi4);
            q[0] = _mm256_add_pd(q[0], _mm256_mul_pd(lo4, lo4));
            q[1] = _mm256_add_pd(q[1], _mm256_mul_pd(hi4, hi4));
            in_min = _mm256_min_ps(in_min, _mm256_blendv_ps(inf, v, inside));
            in_max = _mm256_max_ps(in_max, _mm256_blendv_ps(ninf, v, inside));
            let (at_lo, at_hi) = (
                _mm256_cmp_ps::<_CMP_LE_OQ>(v, vlo),
                _mm256_cmp_ps::<_CMP_GE_OQ>(v, vhi),
            );
            below = _mm256_max_ps(below, _mm256_blendv_ps(ninf, v, at_lo));
            above = _mm256_min_ps(above, _mm256_blendv_ps(inf, v, at_hi));
            // maxps returns its second operand when the first is NaN: NaN is skipped.
            top = _mm256_max_ps(v, top);
        }
        let mut l = Lanes::new();
        // Only the lanes' total is used.
        l.n[0] = n;
        for h in 0..2 {
            _mm256_storeu_pd(l.s.as_mut_ptr().add(4 * h), s[h]);
            _mm256_storeu_pd(l.s2.as_mut_ptr().add(4 * h), q[h]);
        }
        let lanes = |v| {
            let mut a = [0f32; LANES];
            _mm256_storeu_ps(a.as_mut_ptr(), v);
            a
        };
        l.set_extents([in_min, in_max, below, above, top].map(lanes));
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packed sums equal a plain per-pixel accumulation (to summation order), masked and
    /// non-finite pixels left out, over several blocks and a partial last one.
    #[test]
    fn packed_sums_equal_plain_sums() {
        let (bins, masked) = (37usize, 37u16);
        let n = 2 * BLOCK + 999;
        let mut s = 7u64;
        let mut rnd = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s >> 33
        };
        let key: Vec<u16> = (0..n)
            .map(|i| {
                if rnd() % 50 == 0 {
                    masked
                } else {
                    ((i / 3 + rnd() as usize % 4) % bins) as u16
                }
            })
            .collect();
        let v: Vec<f32> = (0..n)
            .map(|_| match rnd() % 1000 {
                0 => f32::NAN,
                1 => f32::INFINITY,
                r => r as f32 * 0.37 - 50.0,
            })
            .collect();
        // Rounds whose bounds open, narrow, move a hair (runs kept), widen again (rejected
        // values come back: a run kept on its admitted values' extent alone would be wrong),
        // empty, and repeat.
        let round = |shift: f32, grow: f32| -> Vec<(f32, f32)> {
            (0..=bins)
                .map(|b| match (b % 5, grow) {
                    (0, _) => (f32::NEG_INFINITY, f32::INFINITY),
                    (_, g) if g < 0.0 => (10.0, 5.0),
                    _ => (
                        -20.0 + b as f32 + shift - grow,
                        200.0 - b as f32 + shift + grow,
                    ),
                })
                .collect()
        };
        let rounds = [
            round(0.0, 1e9),
            round(0.0, 0.0),
            round(0.01, 0.0),
            round(0.01, 0.02),
            round(0.0, 30.0),
            round(-7.0, 3.0),
            round(0.0, -1.0),
            round(0.0, 0.0),
            round(0.0, 0.0),
        ];
        let packing = Packing::new(&key, masked, bins + 1);
        let threshold: Vec<f32> = (0..=bins).map(|b| 40.0 + b as f32).collect();
        let above: Vec<usize> = (0..n)
            .filter(|&i| key[i] != masked && v[i] > threshold[key[i] as usize])
            .collect();
        assert!(above.len() > 1000, "the test finds something");
        // Whichever runs are kept, and whichever are read from the frame again, the sums are
        // the same bits and the seeds the same pixels.
        type Keep<'k> = &'k (dyn Fn(&RunSums) -> bool + Sync);
        let policies: [(&str, Keep); 4] = [
            ("none", &|_| false),
            ("all", &|_| true),
            ("every other", &|r| r.sums.0 % 2 == 0),
            ("worth keeping", &worth_keeping),
        ];
        let mut first_sums: Option<Vec<Vec<(u32, u64, u64)>>> = None;
        for (name, keep) in policies {
            // Buffers recycled from another frame first: nothing of it may be read.
            let other: Vec<f32> = v.iter().map(|x| x * 3.0 + 1000.0).collect();
            packing.recycle(packing.pack_keeping(&other, &rounds[0], keep));
            let mut packed = packing.pack_keeping(&v, &rounds[0], keep);
            let mut all_sums = vec![];
            for (r, bounds) in rounds.iter().enumerate() {
                let mut plain = vec![(0u32, 0f64, 0f64); bins + 1];
                for (&x, &k) in v.iter().zip(&key) {
                    let (lo, hi) = bounds[k as usize];
                    if k != masked && x > lo && x < hi {
                        let a = &mut plain[k as usize];
                        a.0 += 1;
                        a.1 += x as f64;
                        a.2 += (x as f64) * (x as f64);
                    }
                }
                let sums = packing.sums(&mut packed, bounds, bins + 1);
                for (b, (p, q)) in plain.iter().zip(&sums).enumerate() {
                    assert_eq!(p.0, q.0, "{name}: round {r} bin {b}");
                    assert!(
                        (p.1 - q.1).abs() <= 1e-9 * p.1.abs().max(1.0),
                        "{name}: round {r} bin {b}"
                    );
                    assert!(
                        (p.2 - q.2).abs() <= 1e-9 * p.2.abs().max(1.0),
                        "{name}: round {r} bin {b}"
                    );
                }
                assert!(sums[0].0 > 1000, "the test sums something");
                all_sums.push(
                    sums.iter()
                        .map(|&(n, a, b)| (n, a.to_bits(), b.to_bits()))
                        .collect(),
                );
            }
            let first = first_sums.get_or_insert_with(|| all_sums.clone());
            assert!(*first == all_sums, "{name}: other bits than keeping none");
            assert_eq!(packing.above(&packed, &threshold), above, "{name}");
            packing.recycle(packed);
        }
    }

    /// The SIMD lanes are bit-identical to the portable ones, specials and boundaries included.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn simd_lanes_equal_portable_lanes() {
        let x: Vec<f32> = (0..4000)
            .map(|i| match i % 97 {
                0 => f32::NAN,
                1 => f32::NEG_INFINITY,
                2 => -0.0,
                3 => 10.0, // on the upper bound: outside
                4 => -1.0, // on the lower bound: outside
                _ => ((i * 7919) % 1013) as f32 * 0.0173 - 3.0,
            })
            .collect();
        for (lo, hi) in [(-1.0, 10.0), (f32::NEG_INFINITY, f32::INFINITY), (5.0, 4.0)] {
            let b = lanes_portable(&x, lo, hi);
            let mut simd = vec![lanes_sse2(&x, lo, hi)];
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("popcnt") {
                // SAFETY: the CPU has AVX2 and POPCNT (checked just above).
                simd.push(unsafe { lanes_avx2(&x, lo, hi) });
            }
            // Counts are compared as the lanes' total (the AVX2 lanes keep only that).
            let total = |n: [u32; LANES]| n.iter().sum::<u32>();
            for a in simd {
                assert_eq!(total(a.n), total(b.n));
                assert_eq!(a.s.map(f64::to_bits), b.s.map(f64::to_bits));
                assert_eq!(a.s2.map(f64::to_bits), b.s2.map(f64::to_bits));
                assert_eq!(
                    (a.inside, a.below, a.above, a.top),
                    (b.inside, b.below, b.above, b.top)
                );
            }
        }
    }
}
