//! The compressed domain's sums over the runs of window pixels of a frame, the frame's share
//! of `Σ_exact c_p·(I_p − B_k(p))` (see [`crate::compressed`]): [`row_sums`] gives each row's
//! `Σ (I_p − B_bin(p))` and `Σ x_p·(I_p − B_bin(p))` over its counted pixels (unit weights:
//! sums, centres of mass), [`labeled_sums`] adds each pixel's weighted difference to its
//! label's accumulator (rings, sectors). A `roibin(auto)` frame of the real JUNGFRAU modules
//! holds about 2 900 runs of 16 pixels, a synthetic one ~56 000 of ~19; float32 runs take eight
//! pixels a step with AVX2 (the last step masked), other runs go pixel by pixel.

use crate::geometry::valid;
use roibin_compressors::detector::roibin::parts::Element;
use roibin_compressors::prefetch::prefetch;
use roibin_registry::DType;

/// Per column of the frame: its bin column, whether it counts (all ones or 0) and its
/// processed x, with [`X_PAD`] zeros past the frame's columns (steps load eight whole).
pub(crate) struct Columns<'a> {
    pub bin: &'a [u32],
    pub counts: &'a [u32],
    pub x: &'a [f64],
    /// Every column counts (no region of interest): steps need not load `counts`.
    pub all_count: bool,
}

/// Zeros past the frame's columns in [`Columns::x`].
pub(crate) const X_PAD: usize = 8;

/// Frame-wide inputs of [`row_sums`]: the frame's bins (elements of type `E`; a bin past
/// their end reads `fill`), per-column data, and the per-pixel weights (`None`: all 1).
pub(crate) struct Frame<'a> {
    pub bins: &'a [u8],
    pub fill: f64,
    pub cols: Columns<'a>,
    pub weights: Option<&'a [f32]>,
}

/// Where a row starts: the index of its first bin and of its first pixel (in the weights).
#[derive(Clone, Copy)]
pub(crate) struct RowStart {
    pub bin: usize,
    pub pixel: usize,
}

/// `(Σ d, Σ x·d)` with `d = I − B` over the pixels of each row's runs whose column counts and
/// whose weight is not 0: `fold(row, Σ d, Σ x·d)` once per row that has runs and for which
/// `row_start` is `Some`. `runs` are (row, first column, elements), rows ascending. Without
/// `MOMENTS` (a request for `Itot` alone) `Σ x·d` is not summed and reads 0. The sums stay in
/// registers along a row: summing each run's lanes cost as much as its ~19 pixels.
#[inline(always)]
pub(crate) fn row_sums<'r, E: Element, const MOMENTS: bool>(
    runs: impl Iterator<Item = (usize, usize, &'r [u8])>,
    frame: &Frame<'_>,
    row_start: impl FnMut(usize) -> Option<RowStart>,
    mut fold: impl FnMut(usize, f64, f64),
) {
    #[cfg(target_arch = "x86_64")]
    if E::DTYPE == DType::F32 && frame.weights.is_none() && std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked above).
        return unsafe { row_sums_f32_avx2::<MOMENTS>(runs, frame, row_start, fold) };
    }
    by_rows(
        runs,
        row_start,
        &mut (),
        |_, y, d0, dx| fold(y, d0, dx),
        |_, run| run_sums_scalar::<E, MOMENTS>(run, frame),
    )
}

/// Groups `runs` by row: `sums(lanes, run)` of each run of a counted row (`row_start`
/// `Some`), `fold(lanes, row, Σ, Σ)` of their results once a row; `lanes` is state both share.
/// `sums` gets the run with where its row starts in place of its row.
#[inline(always)]
fn by_rows<'r, L>(
    runs: impl Iterator<Item = (usize, usize, &'r [u8])>,
    mut row_start: impl FnMut(usize) -> Option<RowStart>,
    lanes: &mut L,
    mut fold: impl FnMut(&mut L, usize, f64, f64),
    mut sums: impl FnMut(&mut L, Run<'r>) -> (f64, f64),
) {
    let (mut row, mut start, mut s) = (usize::MAX, None, (0.0, 0.0));
    for (y, x0, elements) in runs {
        if y != row {
            if start.is_some() {
                fold(lanes, row, s.0, s.1);
            }
            (row, start, s) = (y, row_start(y), (0.0, 0.0));
        }
        if let Some(row) = start {
            let (d0, dx) = sums(lanes, Run { x0, elements, row });
            s = (s.0 + d0, s.1 + dx);
        }
    }
    if start.is_some() {
        fold(lanes, row, s.0, s.1);
    }
}

/// One run: its elements starting at column `x0` and where its row starts.
#[derive(Clone, Copy)]
struct Run<'a> {
    x0: usize,
    elements: &'a [u8],
    row: RowStart,
}

/// Pixel by pixel.
#[inline(always)]
fn run_sums_scalar<E: Element, const MOMENTS: bool>(run: Run<'_>, frame: &Frame<'_>) -> (f64, f64) {
    let cols = &frame.cols;
    let weights = frame.weights.map(|w| &w[run.row.pixel + run.x0..]);
    let (mut d0, mut dx) = (0f64, 0f64);
    for i in 0..run.elements.len() / E::SIZE {
        let x = run.x0 + i;
        if cols.counts[x] != 0 && weights.is_none_or(|w| w[i] != 0.0) {
            let d = pixel_delta::<E>(run, frame, i);
            d0 += d;
            if MOMENTS {
                dx += d * cols.x[x];
            }
        }
    }
    (d0, dx)
}

/// `I − B` of pixel `i` of `run`, both read as [`valid`] makes them (a bin past the frame's
/// reads `fill`).
#[inline(always)]
fn pixel_delta<E: Element>(run: Run<'_>, frame: &Frame<'_>, i: usize) -> f64 {
    let b = (run.row.bin + frame.cols.bin[run.x0 + i] as usize) * E::SIZE;
    let bin = match frame.bins.get(b..b + E::SIZE) {
        Some(e) => valid(E::read_f64(e), E::DTYPE),
        None => frame.fill,
    };
    valid(
        E::read_f64(&run.elements[i * E::SIZE..(i + 1) * E::SIZE]),
        E::DTYPE,
    ) - bin
}

/// Adds four copies of accumulators (`copies`, four runs of `copies.len() / 4`, at least
/// `acc.len()` each) into `acc`: what sums spread over copies (so that neighbouring
/// additions to one accumulator do not wait on each other) add up to.
pub(crate) fn add_copies(copies: &[f64], acc: &mut [f64]) {
    let stride = copies.len() / 4;
    for (c, a) in acc.iter_mut().enumerate() {
        *a += (copies[c] + copies[stride + c]) + (copies[2 * stride + c] + copies[3 * stride + c]);
    }
}

/// [`row_sums`] of float32 runs without per-pixel weights, eight pixels a step: the values
/// and their bins, non-finite ones read as 0 (as [`valid`] makes them), widened to f64 and
/// subtracted there (as the scalar loop does), pixels of uncounted columns zeroed. A run's
/// last step loads only the pixels it has left (masked loads; a run of the real JUNGFRAU
/// modules is two steps, and its tail pixel by pixel cost as much as the steps). A run whose
/// last step would load bins past the frame's goes pixel by pixel.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_sums_f32_avx2<'r, const MOMENTS: bool>(
    runs: impl Iterator<Item = (usize, usize, &'r [u8])>,
    frame: &Frame<'_>,
    row_start: impl FnMut(usize) -> Option<RowStart>,
    mut fold: impl FnMut(usize, f64, f64),
) {
    use std::arch::x86_64::*;
    let zero = _mm256_setzero_pd();
    let sum = |a: [__m256d; 2]| {
        let mut l = [0f64; 4];
        // SAFETY: `l` holds four f64.
        unsafe { _mm256_storeu_pd(l.as_mut_ptr(), _mm256_add_pd(a[0], a[1])) };
        (l[0] + l[1]) + (l[2] + l[3])
    };
    let bins = frame.bins.len() / 4;
    // Σ d and Σ x·d of the row's steps.
    let mut lanes = [[zero; 2]; 2];
    by_rows(
        runs,
        row_start,
        &mut lanes,
        |[s0, sx], y, d0, dx| {
            // The row's lanes, then its runs that went pixel by pixel.
            fold(y, sum(*s0) + d0, sum(*sx) + dx);
            (*s0, *sx) = ([zero; 2], [zero; 2]);
        },
        |[s0, sx], run| {
            let n = run.elements.len() / 4;
            // Eight bins loaded from each step's first one must lie inside the frame's bins
            // (bin columns are `x / fc`: they grow by at most one a column).
            match n.checked_sub(1) {
                None => (0.0, 0.0),
                Some(last) if run.row.bin + frame.cols.bin[run.x0 + last] as usize + 8 <= bins => {
                    // SAFETY: AVX2 is enabled here; `run_steps` reads the run's elements,
                    // the columns at its pixels and eight bins from each step's first, at
                    // most `last_bin + 7`, all in bounds (checked above and by its slices).
                    unsafe { run_steps::<MOMENTS>(run, frame, s0, sx) };
                    (0.0, 0.0)
                }
                Some(_) => run_sums_scalar::<f32, MOMENTS>(run, frame),
            }
        },
    );
}

/// [`labeled_sums`]'s label of pixels that count nothing.
pub(crate) const NO_LABEL: u16 = u16::MAX;

/// Labels past the frame's pixels that [`labeled_sums`] needs (its steps load eight).
pub(crate) const LABEL_PAD: usize = 8;

/// How many window runs ahead the labelled sums ask for their labels and weights.
pub(crate) const PREFETCH_RUNS: usize = 8;

/// How far ahead of a run [`run_steps`] prefetches (512–2048 measured alike).
const PREFETCH_BYTES: usize = 1024;

/// `Σ w_p·(I_p − B_bin(p))` over a frame's float32 window runs, each pixel's into
/// `acc[labels[p]]` (one accumulator per label: no moments; [`NO_LABEL`] counts nothing):
/// radial rings, polar sectors. `runs` and `row_start` as for [`row_sums`] (its `pixel`
/// indexes `labels` and the weights). `labels` as 16 bits (half the bytes a frame's
/// scattered runs fetch), [`LABEL_PAD`] more than the frame's pixels. False, with nothing
/// added, on a CPU without AVX2: the caller sums pixel by pixel.
pub(crate) fn labeled_sums<'r>(
    runs: impl Iterator<Item = (usize, usize, &'r [u8])> + Clone,
    frame: &Frame<'_>,
    labels: &[u16],
    row_start: impl Fn(usize) -> Option<RowStart> + Copy,
    acc: &mut [f64],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked above).
        unsafe { labeled_sums_avx2(runs, frame, labels, row_start, acc) };
        return true;
    }
    false
}

/// [`labeled_sums`], eight pixels a step. Neighbouring pixels mostly share a label (a ring is
/// several pixels wide): each step's eight additions go to four copies of the accumulators
/// in turn, so an addition waits on the one four pixels back, not on the last. The labels
/// and weights of the run [`PREFETCH_RUNS`] ahead are asked for (8 MB of labels for a
/// 4 M-pixel frame, met in scattered runs the hardware prefetcher cannot follow).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn labeled_sums_avx2<'r>(
    runs: impl Iterator<Item = (usize, usize, &'r [u8])> + Clone,
    frame: &Frame<'_>,
    labels: &[u16],
    row_start: impl Fn(usize) -> Option<RowStart> + Copy,
    acc: &mut [f64],
) {
    use std::arch::x86_64::*;
    // A slot past the labels takes the pixels of `NO_LABEL`.
    let stride = acc.len() + 1;
    let mut copies = vec![0f64; 4 * stride];
    let none_slot = _mm256_set1_epi32(acc.len() as i32);
    let bins = frame.bins.len() / 4;
    let mut ahead = runs.clone().skip(PREFETCH_RUNS);
    by_rows(
        runs,
        row_start,
        &mut copies,
        |_, _, _, _| {},
        |copies, run| {
            if let Some((y, x, e)) = ahead.next() {
                if let Some(row) = row_start(y) {
                    // The run's first and last labels (a run is 1–2 cache lines of them).
                    for p in [row.pixel + x, row.pixel + x + (e.len() / 4).max(1) - 1] {
                        prefetch(labels, p);
                        if let Some(w) = frame.weights {
                            prefetch(w, p);
                        }
                    }
                }
            }
            let n = run.elements.len() / 4;
            let p0 = run.row.pixel + run.x0;
            // Each step loads eight labels: the padding past the frame's keeps them inside.
            let (padded, labels) = (&labels[p0..], &labels[p0..p0 + n]);
            let weights = frame.weights.map(|w| &w[p0..p0 + n]);
            let fits = n.checked_sub(1).is_some_and(|last| {
                run.row.bin + frame.cols.bin[run.x0 + last] as usize + 8 <= bins
                    && padded.len() >= n + LABEL_PAD
            });
            if !fits {
                // Pixel by pixel (the frame's last bins, or bins of one fill value).
                for (i, &l) in labels.iter().enumerate() {
                    let w = weights.map_or(1.0, |w| w[i] as f64);
                    if l != NO_LABEL && w != 0.0 {
                        copies[l as usize] += w * pixel_delta::<f32>(run, frame, i);
                    }
                }
                return (0.0, 0.0);
            }
            // SAFETY: AVX2 is enabled here; the run's last step's bins lie inside the frame's
            // (checked above), all `Steps` asks for.
            let steps = unsafe { Steps::new(run, frame.bins, frame.cols.bin) };
            for i in (0..n).step_by(8) {
                let lanes = steps.lanes(i);
                // SAFETY: `deltas` as `Steps` promises; eight labels from pixel i, at most
                // n + 7 < n + LABEL_PAD of `padded` (checked above).
                let mut d = unsafe { steps.deltas(i, lanes) };
                if let Some(w) = weights {
                    // SAFETY: lanes of pixels i..min(i + 8, n) of the run's weights.
                    let w = unsafe { _mm256_maskload_ps(w.as_ptr().add(i), lanes) };
                    d[0] = _mm256_mul_pd(d[0], _mm256_cvtps_pd(_mm256_castps256_ps128(w)));
                    d[1] = _mm256_mul_pd(d[1], _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(w)));
                }
                // SAFETY: 16 bytes from label i, inside `padded` (see above).
                let l = unsafe {
                    _mm256_cvtepu16_epi32(_mm_loadu_si128(padded.as_ptr().add(i) as *const __m128i))
                };
                let mut slot = [0u32; 8];
                let mut value = [0f64; 8];
                // SAFETY: stores into local arrays of eight u32 and eight f64.
                unsafe {
                    _mm256_storeu_si256(
                        slot.as_mut_ptr() as *mut __m256i,
                        _mm256_min_epu32(l, none_slot),
                    );
                    _mm256_storeu_pd(value.as_mut_ptr(), d[0]);
                    _mm256_storeu_pd(value.as_mut_ptr().add(4), d[1]);
                }
                for k in 0..(n - i).min(8) {
                    copies[(k & 3) * stride + slot[k] as usize] += value[k];
                }
            }
            (0.0, 0.0)
        },
    );
    add_copies(&copies, acc);
}

/// One run's steps of eight pixels added to the lanes `s0` (Σ d) and `sx` (Σ x·d).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn run_steps<const MOMENTS: bool>(
    run: Run<'_>,
    frame: &Frame<'_>,
    s0: &mut [std::arch::x86_64::__m256d; 2],
    sx: &mut [std::arch::x86_64::__m256d; 2],
) {
    use std::arch::x86_64::*;
    let n = run.elements.len() / 4;
    let cols = &frame.cols;
    let (counts, x) = (&cols.counts[run.x0..run.x0 + n], &cols.x[run.x0..]);
    // Each step loads eight x whole (the padding past the frame's columns).
    assert!(
        !MOMENTS || x.len() >= n.next_multiple_of(8),
        "x padded past the columns"
    );
    let steps = Steps::new(run, frame.bins, cols.bin);
    for i in (0..n).step_by(8) {
        let lanes = steps.lanes(i);
        // Lanes of counted pixels of the run: the rest read 0 (their values and bins), so
        // their d is 0 and they add nothing (times any x: x is finite).
        // SAFETY: a masked load touches only the lanes of pixels i..min(i + 8, n) of the
        // run's column slice.
        let counted = match cols.all_count {
            true => lanes,
            false => _mm256_maskload_epi32(counts.as_ptr().add(i) as *const i32, lanes),
        };
        let d = steps.deltas(i, counted);
        for h in 0..2 {
            s0[h] = _mm256_add_pd(s0[h], d[h]);
            if MOMENTS {
                // SAFETY: four f64 of x from pixel i + 4h, at most n + 7 < x.len() (asserted).
                let x = _mm256_loadu_pd(x.as_ptr().add(i + 4 * h));
                sx[h] = _mm256_add_pd(sx[h], _mm256_mul_pd(d[h], x));
            }
        }
    }
}

/// A float32 run's steps of eight pixels: `d = I − B` of a step's pixels, the values and
/// their bins non-finite ones read as 0 (as [`valid`] makes them), widened to f64 and
/// subtracted there (as the scalar loop does). Made only for a run whose last step's eight
/// bins lie inside the frame's (see [`row_sums_f32_avx2`]).
#[cfg(target_arch = "x86_64")]
struct Steps<'a> {
    n: usize,
    elements: *const f32,
    /// The run's first bin, and the bin columns of its pixels.
    bins: *const f32,
    bin: &'a [u32],
}

#[cfg(target_arch = "x86_64")]
impl<'a> Steps<'a> {
    /// The steps of `run` over a frame's `bins` (float32) with bin columns `col_bin`; the
    /// elements and the bins a run ahead asked for (both 4 MB a frame of synthetic
    /// `roibin(auto)`, read in raster order but in pieces the hardware prefetcher followed
    /// late: a third of the sums' time).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn new(run: Run<'a>, bins: &'a [u8], col_bin: &'a [u32]) -> Steps<'a> {
        use std::arch::x86_64::*;
        let n = run.elements.len() / 4;
        let bin = &col_bin[run.x0..run.x0 + n];
        let row = (bins.as_ptr() as *const f32).wrapping_add(run.row.bin);
        let elements = run.elements.as_ptr() as *const f32;
        // A prefetch never faults: addresses past the end are harmless.
        _mm_prefetch::<_MM_HINT_T0>((elements as *const i8).wrapping_add(PREFETCH_BYTES));
        let ahead = (row.wrapping_add(bin[0] as usize) as *const i8).wrapping_add(PREFETCH_BYTES);
        _mm_prefetch::<_MM_HINT_T0>(ahead);
        Steps {
            n,
            elements,
            bins: row,
            bin,
        }
    }

    /// Lanes of step `i` that hold pixels of the run (all ones), the rest 0.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn lanes(&self, i: usize) -> std::arch::x86_64::__m256i {
        use std::arch::x86_64::*;
        let left = (self.n - i).min(8) as i32;
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(left),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }

    /// `d` of step `i` (a multiple of 8 below `n`) as two halves of four f64; lanes not in
    /// `load` (a subset of [`Steps::lanes`]) load nothing and read 0.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn deltas(
        &self,
        i: usize,
        load: std::arch::x86_64::__m256i,
    ) -> [std::arch::x86_64::__m256d; 2] {
        use std::arch::x86_64::*;
        let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let inf = _mm256_set1_ps(f32::INFINITY);
        let finite =
            |v: __m256| _mm256_and_ps(v, _mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_and_ps(v, abs), inf));
        // SAFETY (of the loads): masked loads touch only lanes of pixels i..min(i + 8, n) of
        // the run's elements and bin columns; eight bins from the step's first, whose index
        // is at most the last step's, inside the frame's bins (the caller's check).
        let v = finite(_mm256_maskload_ps(self.elements.add(i), load));
        // The step's pixels lie in its first bin column and the next seven at most: eight
        // bins loaded, each pixel's picked by its offset (a permute, not a gather).
        let first = self.bin[i];
        let near = _mm256_loadu_ps(self.bins.add(first as usize));
        let offsets = _mm256_sub_epi32(
            _mm256_maskload_epi32(self.bin.as_ptr().add(i) as *const i32, load),
            _mm256_set1_epi32(first as i32),
        );
        let b = _mm256_and_ps(
            finite(_mm256_permutevar8x32_ps(near, offsets)),
            _mm256_castsi256_ps(load),
        );
        let half = |v: __m128, b: __m128| _mm256_sub_pd(_mm256_cvtps_pd(v), _mm256_cvtps_pd(b));
        [
            half(_mm256_castps256_ps128(v), _mm256_castps256_ps128(b)),
            half(_mm256_extractf128_ps::<1>(v), _mm256_extractf128_ps::<1>(b)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 sums (on a CPU that has it) against the scalar loop, with non-finite values
    /// and bins, uncounted columns and rows, runs of every length up to 40 (several a row)
    /// and bins of 1–3 columns; the last bin row's runs, whose last steps would load bins past
    /// the end, go pixel by pixel.
    #[test]
    fn float32_rows_equal_the_scalar_loop() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut uniform = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let (width, height) = (64usize, 12usize);
        // Bins of 1–3 columns; some columns uncounted, or all counted (steps skip `counts`).
        for (fc, all_count) in (1..=3).flat_map(|fc| [(fc, false), (fc, true)]) {
            let bin: Vec<u32> = (0..width).map(|x| (x / fc) as u32).collect();
            let counts: Vec<u32> = (0..width)
                .map(|x| {
                    if x % 11 == 5 && !all_count {
                        0
                    } else {
                        u32::MAX
                    }
                })
                .collect();
            let x: Vec<f64> = (0..width + X_PAD).map(|x| x as f64 * 0.5).collect();
            let special = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
            let mut value = |k: usize| -> f32 {
                if k % 13 == 7 {
                    special[k % 3]
                } else {
                    (uniform() * 1000.0 - 100.0) as f32
                }
            };
            let bin_cols = width.div_ceil(fc);
            // A bin row a frame row (rows of one bin): the last rows' runs reach the end.
            let bins: Vec<u8> = (0..height * bin_cols)
                .flat_map(|k| value(k).to_le_bytes())
                .collect();
            for len in 0..=40 {
                // Per row: runs of `len` pixels and of a few more, gaps of 1–3 between.
                let mut runs: Vec<(usize, usize, Vec<u8>)> = Vec::new();
                for y in 0..height {
                    let mut x0 = (len * 7 + y) % 5;
                    for n in [len, len % 9 + 1, len / 2] {
                        if x0 + n > width {
                            break;
                        }
                        let elements = (0..n).flat_map(|k| value(k + len).to_le_bytes());
                        runs.push((y, x0, elements.collect()));
                        x0 += n + 1 + (y + n) % 3;
                    }
                }
                let frame = Frame {
                    bins: &bins,
                    fill: 0.0,
                    cols: Columns {
                        bin: &bin,
                        counts: &counts,
                        x: &x,
                        all_count,
                    },
                    weights: None,
                };
                let row_start = |y: usize| {
                    (y % 4 != 1).then_some(RowStart {
                        bin: y * bin_cols,
                        pixel: y * width,
                    })
                };
                let iter = || runs.iter().map(|(y, x0, e)| (*y, *x0, &e[..]));
                let collect = |moments: bool, simd: bool| {
                    let mut rows = Vec::new();
                    let mut fold = |y, d0, dx| rows.push((y, d0, dx));
                    match (moments, simd) {
                        (true, true) => row_sums::<f32, true>(iter(), &frame, row_start, fold),
                        (false, true) => row_sums::<f32, false>(iter(), &frame, row_start, fold),
                        (m, false) => by_rows(
                            iter(),
                            row_start,
                            &mut (),
                            |_, y, d0, dx| fold(y, d0, dx),
                            |_, run| match m {
                                true => run_sums_scalar::<f32, true>(run, &frame),
                                false => run_sums_scalar::<f32, false>(run, &frame),
                            },
                        ),
                    }
                    rows
                };
                let (a, b) = (collect(true, true), collect(true, false));
                // Every counted row with runs folded once, in order.
                let counted: Vec<usize> = (0..height)
                    .filter(|&y| row_start(y).is_some() && runs.iter().any(|r| r.0 == y))
                    .collect();
                assert_eq!(a.iter().map(|r| r.0).collect::<Vec<_>>(), counted);
                assert_eq!(b.iter().map(|r| r.0).collect::<Vec<_>>(), counted);
                let tol = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + b.abs() * 64.0);
                for (&(y, a0, ax), &(_, b0, bx)) in a.iter().zip(&b) {
                    assert!(a0.is_finite() && ax.is_finite());
                    assert!(
                        tol(a0, b0) && tol(ax, bx),
                        "fc {fc} len {len} row {y}: {a0} {ax} vs {b0} {bx}"
                    );
                }
                // Without moments: the same first sums, bit for bit, and no second.
                let firsts = |r: &[(usize, f64, f64)]| -> Vec<(usize, f64, f64)> {
                    r.iter().map(|r| (r.0, r.1, 0.0)).collect()
                };
                assert_eq!(collect(false, true), firsts(&a));
                assert_eq!(collect(false, false), firsts(&b));
            }
        }
    }
}
