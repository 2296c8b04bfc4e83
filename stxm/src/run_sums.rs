//! The compressed domain's sums over one run of window pixels: `Σ (I_p − B_bin(p))` and
//! `Σ x_p·(I_p − B_bin(p))` over the run's counted pixels, the run's share of
//! `Σ_exact c_p·(I_p − B_k(p))` (see [`crate::compressed`]). A `roibin(auto)` frame of the real
//! JUNGFRAU modules holds about 2 900 runs of 16 pixels; float32 runs take eight pixels a step
//! with AVX2 (the last step masked), other runs go pixel by pixel.

use crate::geometry::valid;
use roibin_compressors::detector::roibin::parts::Element;
use roibin_registry::DType;

/// Per column of the frame: its bin column, whether it counts (1 or 0) and its processed x.
pub(crate) struct Columns<'a> {
    pub bin: &'a [u32],
    pub w: &'a [f64],
    pub x: &'a [f64],
}

/// One run: its elements (of type `E`) starting at column `x0`, the frame's bins (elements of
/// type `E`; a bin past their end reads `fill`), the index of the run row's first bin, and
/// the per-pixel weights of the run's row (`None`: all 1).
pub(crate) struct Run<'a> {
    pub x0: usize,
    pub elements: &'a [u8],
    pub bins: &'a [u8],
    pub row_bin: usize,
    pub fill: f64,
    pub weights: Option<&'a [f32]>,
}

/// `(Σ d, Σ x·d)` with `d = I − B` over the run's pixels whose column counts and whose weight
/// is not 0; without `MOMENTS` (a request for `Itot` alone) `Σ x·d` is not summed and reads 0.
#[inline(always)]
pub(crate) fn run_sums<E: Element, const MOMENTS: bool>(
    run: &Run<'_>,
    cols: &Columns<'_>,
) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if E::DTYPE == DType::F32 && run.weights.is_none() && std::is_x86_feature_detected!("avx2") {
        let n = run.elements.len() / 4;
        let last_bin = n
            .checked_sub(1)
            .map(|i| run.row_bin + cols.bin[run.x0 + i] as usize);
        // Eight bins loaded from each step's first one must lie inside the frame's bins (bin
        // columns are `x / fc`: they grow by at most one a column).
        if last_bin.is_some_and(|b| b + 8 <= run.bins.len() / 4) {
            // SAFETY: the CPU has AVX2 (checked above); `run_sums_f32_avx2` reads the run's
            // elements, `cols` at the run's columns and eight bins from each step's first,
            // at most `last_bin + 7`, all in bounds (checked above and by its slices).
            return unsafe { run_sums_f32_avx2::<MOMENTS>(run, cols) };
        }
    }
    run_sums_scalar::<E, MOMENTS>(run, cols)
}

/// Pixel by pixel.
#[inline(always)]
fn run_sums_scalar<E: Element, const MOMENTS: bool>(
    run: &Run<'_>,
    cols: &Columns<'_>,
) -> (f64, f64) {
    let (mut d0, mut dx) = (0f64, 0f64);
    for (i, e) in run.elements.chunks_exact(E::SIZE).enumerate() {
        let x = run.x0 + i;
        if cols.w[x] * run.weights.map_or(1.0, |w| w[i] as f64) != 0.0 {
            let b = (run.row_bin + cols.bin[x] as usize) * E::SIZE;
            let bin = match run.bins.get(b..b + E::SIZE) {
                Some(e) => valid(E::read_f64(e), E::DTYPE),
                None => run.fill,
            };
            let d = valid(E::read_f64(e), E::DTYPE) - bin;
            d0 += d;
            if MOMENTS {
                dx += d * cols.x[x];
            }
        }
    }
    (d0, dx)
}

/// Eight float32 pixels a step: the values and their bins, non-finite ones read as
/// 0 (as [`valid`] makes them), widened to f64 and subtracted there (as the scalar loop does),
/// pixels of uncounted columns zeroed. The last step loads only the pixels the run has left
/// (masked loads; a run of the real JUNGFRAU modules is two steps, and its tail pixel by
/// pixel cost as much as the steps).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn run_sums_f32_avx2<const MOMENTS: bool>(run: &Run<'_>, cols: &Columns<'_>) -> (f64, f64) {
    use std::arch::x86_64::*;
    let n = run.elements.len() / 4;
    let (bin, w, x) = (
        &cols.bin[run.x0..run.x0 + n],
        &cols.w[run.x0..run.x0 + n],
        &cols.x[run.x0..run.x0 + n],
    );
    let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let inf = _mm256_set1_ps(f32::INFINITY);
    let finite =
        |v: __m256| _mm256_and_ps(v, _mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_and_ps(v, abs), inf));
    let zero = _mm256_setzero_pd();
    let (mut s0, mut sx) = ([zero; 2], [zero; 2]);
    for i in (0..n).step_by(8) {
        // Lanes below `left` hold pixels of the run; the rest load nothing and read 0.
        let left = (n - i).min(8) as i32;
        let lanes = _mm256_cmpgt_epi32(
            _mm256_set1_epi32(left),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        );
        // SAFETY (of the loads): masked loads touch only the lanes of pixels i..min(i + 8, n)
        // of the run's elements (4 bytes each) and column slices; eight bins from the step's
        // first, whose index is at most `last_bin` (checked by `run_sums`).
        let v = finite(_mm256_maskload_ps(
            run.elements.as_ptr().add(4 * i) as *const f32,
            lanes,
        ));
        // The step's pixels lie in its first bin column and the next seven at most: eight
        // bins loaded, each pixel's picked by its offset (a permute, not a gather).
        let step_bin = run.row_bin + bin[i] as usize;
        let near = _mm256_loadu_ps((run.bins.as_ptr() as *const f32).add(step_bin));
        let offsets = _mm256_sub_epi32(
            _mm256_maskload_epi32(bin.as_ptr().add(i) as *const i32, lanes),
            _mm256_set1_epi32(bin[i] as i32),
        );
        let b = finite(_mm256_permutevar8x32_ps(near, offsets));
        let halves = [
            (_mm256_castps256_ps128(v), _mm256_castps256_ps128(b)),
            (_mm256_extractf128_ps::<1>(v), _mm256_extractf128_ps::<1>(b)),
        ];
        for (h, (v, b)) in halves.into_iter().enumerate() {
            let quarter = _mm256_cvtepi32_epi64(if h == 0 {
                _mm256_castsi256_si128(lanes)
            } else {
                _mm256_extracti128_si256::<1>(lanes)
            });
            let d = _mm256_sub_pd(_mm256_cvtps_pd(v), _mm256_cvtps_pd(b));
            // A lane past the run loads weight 0: not counted.
            let weight = _mm256_maskload_pd(w.as_ptr().add(i + 4 * h), quarter);
            let d = _mm256_and_pd(d, _mm256_cmp_pd::<_CMP_NEQ_UQ>(weight, zero));
            s0[h] = _mm256_add_pd(s0[h], d);
            if MOMENTS {
                sx[h] = _mm256_add_pd(
                    sx[h],
                    _mm256_mul_pd(d, _mm256_maskload_pd(x.as_ptr().add(i + 4 * h), quarter)),
                );
            }
        }
    }
    let lanes = |a: [__m256d; 2]| {
        let mut l = [0f64; 4];
        // SAFETY: `l` holds four f64.
        _mm256_storeu_pd(l.as_mut_ptr(), _mm256_add_pd(a[0], a[1]));
        (l[0] + l[1]) + (l[2] + l[3])
    };
    (lanes(s0), lanes(sx))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 sums (on a CPU that has it) against the scalar loop, with non-finite values
    /// and bins, uncounted columns, runs of every length up to 40 and bins of 1–3 columns.
    #[test]
    fn float32_runs_equal_the_scalar_loop() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut uniform = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let width = 64;
        for fc in 1..=3 {
            let bin: Vec<u32> = (0..width).map(|x| (x / fc) as u32).collect();
            let w: Vec<f64> = (0..width)
                .map(|x| if x % 11 == 5 { 0.0 } else { 1.0 })
                .collect();
            let x: Vec<f64> = (0..width).map(|x| x as f64 * 0.5).collect();
            let cols = Columns {
                bin: &bin,
                w: &w,
                x: &x,
            };
            let special = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
            let mut value = |k: usize| -> f32 {
                if k % 13 == 7 {
                    special[k % 3]
                } else {
                    (uniform() * 1000.0 - 100.0) as f32
                }
            };
            let bins: Vec<u8> = (0..3 * width)
                .flat_map(|k| value(k).to_le_bytes())
                .collect();
            for len in 0..=40 {
                let x0 = (len * 7) % (width - len);
                let elements: Vec<u8> = (0..len)
                    .flat_map(|k| value(k + len).to_le_bytes())
                    .collect();
                // A row in the middle of the bins, and the last row (whose last steps would
                // load bins past the end: those runs go pixel by pixel).
                for row_bin in [width, 3 * width - width.div_ceil(fc)] {
                    let run = Run {
                        x0,
                        elements: &elements,
                        bins: &bins,
                        row_bin,
                        fill: 0.0,
                        weights: None,
                    };
                    let (a0, ax) = run_sums::<f32, true>(&run, &cols);
                    let (b0, bx) = run_sums_scalar::<f32, true>(&run, &cols);
                    // Without moments: the same first sum, bit for bit, and no second.
                    assert_eq!(run_sums::<f32, false>(&run, &cols), (a0, 0.0));
                    assert_eq!(run_sums_scalar::<f32, false>(&run, &cols), (b0, 0.0));
                    assert!(a0.is_finite() && ax.is_finite());
                    let tol = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + b.abs() * 64.0);
                    assert!(
                        tol(a0, b0) && tol(ax, bx),
                        "fc {fc} len {len}: {a0} {ax} vs {b0} {bx}"
                    );
                }
            }
        }
    }
}
