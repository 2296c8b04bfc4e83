//! `dispersion` and `dispersion_extended`: DIALS's spot finders (Parkhurst et al. 2016), per
//! panel, mask honoured, so that ROIBIN windows around their spots keep what DIALS finds.
//!
//! For every good pixel, the count m, sum x and sum of squares y of the good pixels in a
//! (2k+1)² box give the local index of dispersion. With gain g (the variance of one count
//! relative to its mean: 1 for photon counting):
//! - `dispersion`: strong when m·y − x² > g·x·(m − 1 + σ_b·√(2(m−1))) (the local variance is
//!   significantly above Poisson's) and m·v − x > σ_s·√(g·x·m) (the pixel is significantly
//!   above the local mean), with m ≥ `min_local`, x ≥ 0 and v above `threshold`;
//! - `dispersion_extended`: the dispersion test alone marks a region; its core (Chebyshev
//!   distance ≥ k from the region's border) is kept where v ≥ mean + σ_s·√(g·mean), the mean
//!   taken over a box 2 pixels wider that leaves the strong pixels out.
//!
//! Strong pixels form spots by 8-connectivity; spots of `min_pix`..=`max_pix` pixels are kept,
//! the brightest `max_peaks` of them. Sums run over pixels below 2^24, as DIALS's do.

use super::boxsum;
use super::peaks::{self, Peak, PeakList, MASK, RADIUS};
use crate::spare::Spare;
use rayon::prelude::*;
use roibin_registry::options::THREADS;
use roibin_registry::{threads, Accepts, Codec, CodecInfo, Config, OptionSpec, OptionType, Result};
use std::ops::Range;

/// The options both finders take.
pub(crate) const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "gain",
        ty: OptionType::Float { min: 0.0, max: 1e6 },
        default: "1",
        doc: "variance of one count over its mean (1: photon counting; ADU per photon for calibrated data in ADU; 0: from the data: 1 where the background's index of dispersion says counts (≤ 2), else that index, per panel)",
    },
    OptionSpec {
        name: "sigma_background",
        ty: OptionType::Float { min: 0.0, max: 1e3 },
        default: "6",
        doc: "significance of the local index of dispersion above Poisson's",
    },
    OptionSpec {
        name: "sigma_strong",
        ty: OptionType::Float { min: 0.0, max: 1e3 },
        default: "3",
        doc: "significance of the pixel above the local mean",
    },
    OptionSpec {
        name: "kernel",
        ty: OptionType::Int { min: 1, max: 32 },
        default: "3",
        doc: "half-size k of the (2k+1)² local box",
    },
    OptionSpec {
        name: "min_local",
        ty: OptionType::Int { min: 2, max: 4225 },
        default: "2",
        doc: "fewest good pixels in the local box for a test",
    },
    OptionSpec {
        name: "threshold",
        ty: OptionType::Float {
            min: -1e30,
            max: 1e30,
        },
        default: "0",
        doc: "global threshold: strong pixels are above it",
    },
    OptionSpec {
        name: "min_pix",
        ty: OptionType::Int {
            min: 1,
            max: 1 << 20,
        },
        default: "2",
        doc: "smallest spot in pixels",
    },
    OptionSpec {
        name: "max_pix",
        ty: OptionType::Int {
            min: 1,
            max: 1 << 24,
        },
        default: "100000",
        doc: "largest spot in pixels",
    },
    OptionSpec {
        name: "max_peaks",
        ty: OptionType::Int {
            min: 1,
            max: 1 << 20,
        },
        default: "2048",
        doc: "keep the brightest this many (all are counted)",
    },
    MASK,
    RADIUS,
    THREADS,
];

/// Parameters of both variants.
#[derive(Debug, Clone)]
pub struct DispersionParams {
    pub extended: bool,
    pub gain: f64,
    pub sigma_background: f64,
    pub sigma_strong: f64,
    pub kernel: usize,
    pub min_local: usize,
    pub threshold: f64,
    pub min_pix: usize,
    pub max_pix: usize,
    pub max_peaks: usize,
}

/// Pixels at or above this are left out of the local sums (DIALS: "about 16m counts").
const BIG: f32 = (1 << 24) as f32;

/// Frame-sized buffers the dispersion finders keep between frames (see [`Spare`]), owned
/// by the codec that runs them: a fresh frame of pages for each box-sum input, flag frame and
/// mask of every run of the test (three runs a frame in `roibin(auto)`) had been most of its
/// page faults on large frames.
#[derive(Debug, Default)]
pub struct FinderSpare {
    taken: boxsum::TakenSpare,
    flags: Spare<u8>,
    masks: Spare<bool>,
}

impl FinderSpare {
    /// A mask of `n` pixels, all `false`, in a kept buffer.
    pub(crate) fn mask(&self, n: usize) -> Vec<bool> {
        let mut m = self.masks.take();
        m.clear();
        m.resize(n, false);
        m
    }

    /// Keep `mask` for a later [`FinderSpare::mask`].
    pub(crate) fn give_mask(&self, mask: Vec<bool>) {
        self.masks.give(mask);
    }
}

/// Strong pixels of one panel.
pub(crate) fn strong_pixels(
    v: &[f32],
    good: &[bool],
    rows: usize,
    cols: usize,
    p: &DispersionParams,
    gain: f64,
    spare: &FinderSpare,
) -> Vec<bool> {
    let mut each = strong_pixels_each(v, good, rows, cols, &[(p, gain)], spare);
    each.pop().unwrap_or_default()
}

/// Strong pixels of one panel for each of up to 8 tests (parameters and gain) that share a
/// kernel: one pass of box sums for all (`roibin(auto)`'s finder and check look at the same
/// frame). Tests with different kernels are run one after the other.
pub(crate) fn strong_pixels_each(
    v: &[f32],
    good: &[bool],
    rows: usize,
    cols: usize,
    tests: &[Test],
    spare: &FinderSpare,
) -> Vec<Vec<bool>> {
    let Some(&(first, _)) = tests.first() else {
        return vec![];
    };
    if tests.len() > 8 || tests.iter().any(|(p, _)| p.kernel != first.kernel) {
        return tests
            .iter()
            .map(|&(p, gain)| strong_pixels(v, good, rows, cols, p, gain, spare))
            .collect();
    }
    // Bit t of a pixel's flags: strong by test t's dispersion (and local-mean) test.
    let mut flags = spare.flags.take();
    flags.clear();
    flags.resize(rows * cols, 0);
    let taken = boxsum::Taken::new_in(v, good, BIG, &spare.taken);
    boxsum::map_rows(
        &taken,
        (rows, cols),
        first.kernel,
        &mut flags,
        |r, s, out| {
            let row = r * cols..(r + 1) * cols;
            for (t, &test) in tests.iter().enumerate() {
                let (v, good) = (&v[row.clone()], &good[row.clone()]);
                dispersion_row(RowInput { v, good, s }, test, t, out);
            }
        },
    );
    taken.give_back(&spare.taken);
    let bit = |t: usize| {
        let mut mask = spare.mask(rows * cols);
        for (m, f) in mask.iter_mut().zip(&flags) {
            *m = (f >> t) & 1 != 0;
        }
        mask
    };
    let masks: Vec<Vec<bool>> = (0..tests.len()).map(bit).collect();
    spare.flags.give(flags);
    // The tests' second passes side by side: each is partly serial.
    masks
        .into_par_iter()
        .zip(tests)
        .map(|(mut strong, &(p, gain))| {
            if p.extended {
                extend(v, good, (rows, cols), p, gain, &mut strong, spare);
            }
            strong
        })
        .collect()
}

/// One row of a panel as the tests see it: its values, which are good, and its box sums.
struct RowInput<'a> {
    v: &'a [f32],
    good: &'a [bool],
    s: &'a boxsum::BoxRow,
}

/// A test's parameters and the gain it uses on a panel.
pub(crate) type Test<'a> = (&'a DispersionParams, f64);

/// Set bit `bit` of `out` where a pixel of `row` passes the dispersion test of `p` with
/// `gain` (and, unless extended, the local-mean test).
fn dispersion_row(row: RowInput, test: Test, bit: usize, out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above), all `dispersion_row_avx2` asks for.
        return unsafe { dispersion_row_avx2(row, test, bit, out) };
    }
    dispersion_row_body(row, test, bit, out)
}

/// [`dispersion_row`] four pixels to a vector (no FMA: the same roundings as the plain build).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dispersion_row_avx2(row: RowInput, test: Test, bit: usize, out: &mut [u8]) {
    dispersion_row_body(row, test, bit, out)
}

#[inline(always)]
fn dispersion_row_body(row: RowInput, (p, gain): Test, bit: usize, out: &mut [u8]) {
    let RowInput { v, good, s } = row;
    let (nb, threshold) = (p.sigma_background, p.threshold);
    // σ_s·√(g·x·m) compared squared: no square root per pixel.
    let strong_sq = p.sigma_strong * p.sigma_strong * gain;
    let min_local = p.min_local as u32;
    let px = v.iter().zip(good);
    let sums = s.m.iter().zip(&s.x).zip(&s.y);
    // Every test evaluated and combined without branches: about half the pixels are above
    // their local mean, a coin flip the branch predictor loses.
    for ((o, (&val, &ok)), ((&m, &x), &y)) in out.iter_mut().zip(px).zip(sums) {
        let (mf, val) = (m as f64, val as f64);
        let m1 = mf - 1.0;
        let dispersed = mf * y - x * x > gain * x * (m1 + nb * (2.0 * m1).sqrt());
        let d = mf * val - x;
        let above = (d > 0.0) & (d * d > strong_sq * x * mf) & (val > threshold);
        let tested = ok & (m >= min_local) & (x >= 0.0);
        *o |= ((tested & dispersed & (p.extended | above)) as u8) << bit;
    }
}

/// `dispersion_extended`'s second pass over the dispersion mask `strong` (in place).
fn extend(
    v: &[f32],
    good: &[bool],
    (rows, cols): (usize, usize),
    p: &DispersionParams,
    gain: f64,
    strong: &mut [bool],
    spare: &FinderSpare,
) {
    let k = p.kernel;
    let core = eroded(strong, rows, cols, k, spare);
    // The mean over the box of half-size k + 2 of the good pixels outside the cores, at core
    // pixels only: they are few (spot interiors), so the box is summed where it is needed.
    let kb = k + 2;
    let band = (threads::MIN_TASK_BYTES / cols.max(1)).max(1);
    strong
        .par_chunks_mut(cols.max(1))
        .enumerate()
        .with_min_len(band)
        .for_each(|(r, row)| {
            row.fill(false);
            let row_core = &core[r * cols..(r + 1) * cols];
            let (r0, r1) = (r.saturating_sub(kb), (r + kb + 1).min(rows));
            for c in memchr::memchr_iter(1, bools_as_bytes(row_core)) {
                let i = r * cols + c;
                if !good[i] {
                    continue;
                }
                let out = &mut row[c];
                let (c0, c1) = (c.saturating_sub(kb), (c + kb + 1).min(cols));
                let (mut m, mut x) = (0u32, 0f64);
                for rr in r0..r1 {
                    let span = rr * cols + c0..rr * cols + c1;
                    let px = v[span.clone()]
                        .iter()
                        .zip(&good[span.clone()])
                        .zip(&core[span]);
                    for ((&a, &ok), &in_core) in px {
                        let take = ok & !in_core & (a < BIG);
                        m += take as u32;
                        x += if take { a as f64 } else { 0.0 };
                    }
                }
                let mean = if m >= 2 { x / m as f64 } else { 0.0 };
                let val = v[i] as f64;
                *out = val > p.threshold
                    && val >= mean + p.sigma_strong * (gain * mean.max(0.0)).sqrt();
            }
        });
    spare.give_mask(core);
}

/// The pixels of `mask` at Chebyshev distance ≥ `k` from every `false` pixel of the panel:
/// those whose box of half-size h = k−1 (clipped to the panel) is all `true`, the same as
/// thresholding the Chebyshev distance to the nearest `false` pixel at `k` (DIALS's chamfer
/// passes), which the tests check. The square box is a row of 2h + 1 then a column of
/// 2h + 1: first each pixel whose row neighbours within h are all `true` (from the runs of
/// `true` of its row), then those whose column neighbours within h are (an `and` of rows).
/// Only rows holding a `true` pixel are looked at: strong pixels are sparse (box counts
/// over the whole frame had cost a seventh of a `roibin(auto)` encode).
fn eroded(mask: &[bool], rows: usize, cols: usize, k: usize, spare: &FinderSpare) -> Vec<bool> {
    let mut out = spare.mask(rows * cols);
    if k == 0 || cols == 0 {
        out.copy_from_slice(mask);
        return out;
    }
    let h = k - 1;
    let band = (threads::MIN_TASK_BYTES / cols).max(1);
    let mut across = spare.mask(rows * cols);
    across
        .par_chunks_mut(cols)
        .zip(mask.par_chunks(cols))
        .with_min_len(band)
        .for_each(|(out, row)| row_eroded(row, h, out));
    out.par_chunks_mut(cols)
        .enumerate()
        .with_min_len(band)
        .for_each(|(r, out)| {
            let row = &across[r * cols..(r + 1) * cols];
            if memchr::memchr(1, bools_as_bytes(row)).is_none() {
                return;
            }
            out.copy_from_slice(row);
            for near in r.saturating_sub(h)..(r + h + 1).min(rows) {
                let near = &across[near * cols..(near + 1) * cols];
                out.iter_mut().zip(near).for_each(|(o, &n)| *o &= n);
            }
        });
    spare.give_mask(across);
    out
}

/// The pixels of `row` whose neighbours within `h` along it (clipped to the row) are all
/// `true`, into `out` (all `false`): each run of `true` less `h` pixels at each end that does
/// not touch the row's end.
fn row_eroded(row: &[bool], h: usize, out: &mut [bool]) {
    let (bytes, mut c) = (bools_as_bytes(row), 0);
    while let Some(start) = memchr::memchr(1, &bytes[c..]).map(|p| c + p) {
        let end = memchr::memchr(0, &bytes[start..]).map_or(row.len(), |p| start + p);
        let lo = if start == 0 { 0 } else { start + h };
        let hi = if end == row.len() {
            end
        } else {
            end.saturating_sub(h)
        };
        if lo < hi {
            out[lo..hi].fill(true);
        }
        c = end;
    }
}

/// A mask's bytes (each 0 or 1), for `memchr`'s word-at-a-time searches.
fn bools_as_bytes(mask: &[bool]) -> &[u8] {
    bytemuck::cast_slice(mask)
}

#[cfg(test)]
/// Chebyshev distance of every pixel to the nearest `false` pixel (0 on them): two chamfer
/// passes with the 8-neighbourhood, exact for this metric (the reference `eroded` is tested
/// against).
fn chebyshev_to_background(mask: &[bool], rows: usize, cols: usize) -> Vec<usize> {
    let far = rows + cols;
    let mut d: Vec<usize> = mask.iter().map(|&m| if m { far } else { 0 }).collect();
    for r in 0..rows {
        for c in 0..cols {
            let i = r * cols + c;
            if d[i] == 0 {
                continue;
            }
            let mut best = d[i];
            for (dr, dc) in [(-1i64, -1i64), (-1, 0), (-1, 1), (0, -1)] {
                let (rr, cc) = (r as i64 + dr, c as i64 + dc);
                if rr >= 0 && cc >= 0 && (cc as usize) < cols {
                    best = best.min(d[rr as usize * cols + cc as usize] + 1);
                }
            }
            d[i] = best;
        }
    }
    for r in (0..rows).rev() {
        for c in (0..cols).rev() {
            let i = r * cols + c;
            if d[i] == 0 {
                continue;
            }
            let mut best = d[i];
            for (dr, dc) in [(1i64, 1i64), (1, 0), (1, -1), (0, 1)] {
                let (rr, cc) = (r as i64 + dr, c as i64 + dc);
                if (rr as usize) < rows && cc >= 0 && (cc as usize) < cols {
                    best = best.min(d[rr as usize * cols + cc as usize] + 1);
                }
            }
            d[i] = best;
        }
    }
    d
}

/// Side of the boxes the gain is estimated over.
const GAIN_BOX: usize = 16;

/// The panel's gain from its own background when `gain=0`: the median over boxes of the
/// local index of dispersion (variance over mean), robust to the spots a few boxes hold.
pub fn estimate_gain(v: &[f32], good: &[bool], rows: usize, cols: usize) -> f64 {
    median_ratio(&box_ratios(v, good, rows, cols))
}

/// The index of dispersion of every [`GAIN_BOX`]² box of a panel (by rows of boxes; `None`
/// where a box has too few good pixels or no counts). Bands of boxes in parallel, each
/// streamed row by row along contiguous runs.
pub(crate) fn box_ratios(v: &[f32], good: &[bool], rows: usize, cols: usize) -> Vec<Option<f64>> {
    let b = GAIN_BOX;
    let nbox = cols.div_ceil(b);
    let band_ratios = |r0: usize| {
        let mut sums = vec![BoxSums::default(); nbox];
        for r in r0..(r0 + b).min(rows) {
            let row = r * cols..(r + 1) * cols;
            let px = v[row.clone()].chunks(b).zip(good[row].chunks(b));
            for (sum, (vals, oks)) in sums.iter_mut().zip(px) {
                sum.add(vals, oks);
            }
        }
        sums.into_iter().map(BoxSums::ratio)
    };
    let bands: Vec<usize> = (0..rows).step_by(b).collect();
    bands
        .into_par_iter()
        .with_min_len(roibin_registry::threads::min_len(b * cols * 5))
        .flat_map_iter(band_ratios)
        .collect()
}

/// Recompute the entries of `ratios` (see [`box_ratios`]) of the boxes that overlap rows `ys`
/// × columns `xs` of the panel: the same values a full run gives (each box sums its pixels
/// in the same order).
pub(crate) fn update_box_ratios(
    ratios: &mut [Option<f64>],
    (v, good): (&[f32], &[bool]),
    (rows, cols): (usize, usize),
    (ys, xs): (Range<usize>, Range<usize>),
) {
    let b = GAIN_BOX;
    let nbox = cols.div_ceil(b);
    for by in ys.start / b..ys.end.div_ceil(b) {
        for bx in xs.start / b..xs.end.div_ceil(b) {
            let mut sum = BoxSums::default();
            let span = bx * b..((bx + 1) * b).min(cols);
            for r in by * b..((by + 1) * b).min(rows) {
                let row = r * cols + span.start..r * cols + span.end;
                sum.add(&v[row.clone()], &good[row]);
            }
            ratios[by * nbox + bx] = sum.ratio();
        }
    }
}

/// Count, sum and sum of squares of a box's good pixels below 2^24.
#[derive(Clone, Copy, Default)]
struct BoxSums {
    n: u32,
    s: f64,
    s2: f64,
}

impl BoxSums {
    fn add(&mut self, vals: &[f32], oks: &[bool]) {
        for (&a, &ok) in vals.iter().zip(oks) {
            let take = ok & (a < BIG);
            let a = if take { a as f64 } else { 0.0 };
            self.n += take as u32;
            self.s += a;
            self.s2 += a * a;
        }
    }

    /// The box's variance over mean, if it has 16 good pixels and counts.
    fn ratio(self) -> Option<f64> {
        let (n, s, s2) = (self.n as f64, self.s, self.s2);
        (n >= 16.0 && s > 0.0).then(|| {
            let mean = s / n;
            let var = (s2 - s * s / n) / (n - 1.0);
            var / mean
        })
    }
}

/// The median of the boxes' ratios (1 where no box has one).
fn median_ratio(ratios: &[Option<f64>]) -> f64 {
    let mut known: Vec<f64> = ratios.iter().flatten().copied().collect();
    if known.is_empty() {
        return 1.0;
    }
    let mid = known.len() / 2;
    known
        .select_nth_unstable_by(mid, f64::total_cmp)
        .1
        .max(1e-6)
}

/// The gain `gain=0` uses: DIALS's default of 1 where the background looks like counts
/// (index of dispersion up to 2: photon counting, photons, binned or sub-Poisson detectors),
/// the estimate where the data are scaled (ADU).
pub fn gain_from_data(v: &[f32], good: &[bool], rows: usize, cols: usize) -> f64 {
    gain_from_ratios(&box_ratios(v, good, rows, cols))
}

/// [`gain_from_data`] from the panel's [`box_ratios`].
pub(crate) fn gain_from_ratios(ratios: &[Option<f64>]) -> f64 {
    let g = median_ratio(ratios);
    if g <= 2.0 {
        1.0
    } else {
        g
    }
}

/// Spots of one panel: 8-connected strong pixels, sized within limits.
fn panel_peaks(
    v: &[f32],
    good: &[bool],
    rows: usize,
    cols: usize,
    row0: usize,
    p: &DispersionParams,
) -> Vec<Peak> {
    let gain = panel_gain(v, good, rows, cols, p);
    // The finder codec keeps nothing between frames (a `roibin(auto)` encode keeps its own).
    let spare = FinderSpare::default();
    let strong = strong_pixels(v, good, rows, cols, p, gain, &spare);
    spots_of(v, strong, rows, cols, row0, p, &spare)
}

/// The gain a panel's test uses: the option's, or from the data (`gain=0`).
pub(crate) fn panel_gain(
    v: &[f32],
    good: &[bool],
    rows: usize,
    cols: usize,
    p: &DispersionParams,
) -> f64 {
    gain_or(p, || gain_from_data(v, good, rows, cols))
}

/// The gain option of `p`, or `estimate()` where it says to take it from the data (`gain=0`).
pub(crate) fn gain_or(p: &DispersionParams, estimate: impl FnOnce() -> f64) -> f64 {
    if p.gain > 0.0 {
        p.gain
    } else {
        estimate()
    }
}

/// The spots of a panel's strong-pixel mask: 8-connected regions, sized within limits.
pub(crate) fn spots_of(
    v: &[f32],
    mut strong: Vec<bool>,
    rows: usize,
    cols: usize,
    row0: usize,
    p: &DispersionParams,
    spare: &FinderSpare,
) -> Vec<Peak> {
    let mut out = vec![];
    let mut stack = vec![];
    let mut from = 0;
    // Strong pixels are sparse: the next one found a machine word at a time, not a pixel at
    // a time (the scan had been 3% of a `roibin(auto)` encode).
    while let Some(offset) = memchr::memchr(1, bools_as_bytes(&strong[from..])) {
        let start = from + offset;
        from = start + 1;
        strong[start] = false;
        stack.push(start);
        let mut region = vec![];
        while let Some(i) = stack.pop() {
            let (r, c) = (i / cols, i % cols);
            region.push((r, c));
            for rr in r.saturating_sub(1)..(r + 2).min(rows) {
                for cc in c.saturating_sub(1)..(c + 2).min(cols) {
                    let j = rr * cols + cc;
                    if strong[j] {
                        strong[j] = false;
                        stack.push(j);
                    }
                }
            }
        }
        if region.len() < p.min_pix || region.len() > p.max_pix {
            continue;
        }
        region.sort_unstable();
        let total: f64 = region.iter().map(|&(y, x)| v[y * cols + x] as f64).sum();
        let max = region
            .iter()
            .map(|&(y, x)| v[y * cols + x] as f64)
            .fold(f64::MIN, f64::max);
        let centre = super::pf8::centroid(v, &region, |y, x| y * cols + x);
        out.push(Peak::of_region(&region, centre, row0, total, max));
    }
    spare.give_mask(strong);
    out
}

/// How far (pixels) a changed pixel can change the strong mask: the local box, and for
/// `dispersion_extended` the erosion and the wider mean's box as well.
pub(crate) fn reach(p: &DispersionParams) -> usize {
    if p.extended {
        3 * p.kernel + 1
    } else {
        p.kernel
    }
}

/// Run the dispersion spot finder on pixels `v` of a frame of `panels`.
pub fn find(
    v: &[f32],
    panels: peaks::Panels,
    g: &peaks::Geometry,
    p: &DispersionParams,
) -> PeakList {
    peaks::per_panel(v, panels, g, p.max_peaks, |v, good, rows, cols, row0| {
        panel_peaks(v, good, rows, cols, row0, p)
    })
}

/// The parameters a `dispersion`/`dispersion_extended` configuration holds.
pub(crate) fn params(c: &Config, extended: bool) -> Result<DispersionParams> {
    Ok(DispersionParams {
        extended,
        gain: c.get("gain")?,
        sigma_background: c.get("sigma_background")?,
        sigma_strong: c.get("sigma_strong")?,
        kernel: c.get::<i64>("kernel")? as usize,
        min_local: c.get::<i64>("min_local")? as usize,
        threshold: c.get("threshold")?,
        min_pix: c.get::<i64>("min_pix")? as usize,
        max_pix: c.get::<i64>("max_pix")? as usize,
        max_peaks: c.get::<i64>("max_peaks")? as usize,
    })
}

fn build(c: &Config, name: &'static str, extended: bool) -> Result<Box<dyn Codec>> {
    peaks::Finder::build(name, c, params(c, extended)?, false, find)
}

inventory::submit! {
    CodecInfo {
        name: "dispersion",
        version: 1,
        doc: "DIALS's dispersion spot finder: local index of dispersion and local mean tests in a (2k+1)² box, 8-connected spots; a frame in, a peak list out",
        options: OPTIONS,
        accepts: Accepts { dtypes: &[], ranks: (2, 3), bytes: false },
        thread_safe: true,
        build: |c| build(c, "dispersion", false),
    }
}

inventory::submit! {
    CodecInfo {
        name: "dispersion_extended",
        version: 1,
        doc: "DIALS's dispersion_extended spot finder: the dispersion region's core, tested against a mean that leaves strong pixels out; a frame in, a peak list out",
        options: OPTIONS,
        accepts: Accepts { dtypes: &[], ranks: (2, 3), bytes: false },
        thread_safe: true,
        build: |c| build(c, "dispersion_extended", true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Masks mostly true with holes, and mostly false with blobs (rows without a true pixel,
    /// runs at the row's ends and inside it).
    #[test]
    fn erosion_is_the_chebyshev_threshold() {
        let (rows, cols) = (37, 53);
        let mut s = 9u64;
        let mut draw = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s >> 60
        };
        let holes: Vec<bool> = (0..rows * cols).map(|_| draw() != 0).collect();
        let mut blobs = vec![false; rows * cols];
        for _ in 0..12 {
            let (r, c, size) = (draw() as usize * 2, draw() as usize * 3, draw() as usize);
            for rr in r..(r + size).min(rows) {
                for cc in c..(c + 2 * size).min(cols) {
                    blobs[rr * cols + cc] = true;
                }
            }
        }
        // Buffers kept between the masks and the ks, as a codec keeps them between frames.
        let spare = FinderSpare::default();
        for mask in [holes, blobs] {
            let d = chebyshev_to_background(&mask, rows, cols);
            for k in 0..5 {
                let want: Vec<bool> = (0..rows * cols).map(|i| mask[i] && d[i] >= k).collect();
                let got = eroded(&mask, rows, cols, k, &spare);
                assert_eq!(got, want, "k={k}");
                spare.give_mask(got);
            }
        }
        assert_eq!(eroded(&[true; 12], 3, 4, 3, &spare), vec![true; 12]);
    }

    #[test]
    fn chebyshev_distances() {
        let mut m = vec![true; 7 * 7];
        m[0] = false;
        let d = chebyshev_to_background(&m, 7, 7);
        assert_eq!(d[0], 0);
        assert_eq!(d[8], 1);
        assert_eq!(d[6 * 7 + 6], 6);
        assert_eq!(d[3 * 7 + 5], 5);
    }

    #[test]
    fn gain_estimate_recovers_a_scaled_poisson_background() {
        // Poisson-like counts (mean 4) scaled by 45 ADU per photon: gain ≈ 45.
        let (rows, cols) = (128, 128);
        let mut s = 7u64;
        let v: Vec<f32> = (0..rows * cols)
            .map(|_| {
                let mut k = 0;
                let mut p = 1.0f64;
                let l = (-4.0f64).exp();
                loop {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    p *= (s >> 11) as f64 / (1u64 << 53) as f64;
                    if p < l {
                        break;
                    }
                    k += 1;
                }
                45.0 * k as f32
            })
            .collect();
        let g = estimate_gain(&v, &vec![true; rows * cols], rows, cols);
        assert!((g - 45.0).abs() < 5.0, "{g}");
    }
}
