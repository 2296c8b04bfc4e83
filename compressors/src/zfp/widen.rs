//! Whole float32 blocks read and scaled, and written back, four neighbours at a time (AVX2).
//!
//! `perf` of a 2-D encode of Eiger-like frames put a fifth of the time in the per-value block
//! preparation: widening each value to f64, testing it for NaN and infinity, taking its
//! exponent and converting it to an integer. A whole block's rows of four are neighbours in
//! memory, so here they are read a row at a time; the exponent only grows with the magnitude,
//! so the block's largest exponent is that of its largest magnitude, found as the largest
//! of the values' bits with the sign cleared (IEEE order), which also reveals a NaN or an
//! infinity. Same values, same integers as the per-value loops (tested against them).

use std::arch::x86_64::*;

/// Widen the whole block whose rows of four start at every fourth of `offsets` (element
/// indices into the float32 `data`) into `vals`; returns the bits of its largest magnitude.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn f32_rows(data: &[u8], offsets: &[usize], vals: &mut [f64]) -> u32 {
    let magnitude = _mm_set1_epi32(0x7fff_ffff);
    let mut top = _mm_setzero_si128();
    for (row, out) in offsets.iter().step_by(4).zip(vals.chunks_exact_mut(4)) {
        let bytes = &data[row * 4..row * 4 + 16];
        // SAFETY: `bytes` holds 16 bytes; `out` four f64 (`chunks_exact_mut`).
        let v = _mm_loadu_ps(bytes.as_ptr() as *const f32);
        top = _mm_max_epi32(top, _mm_and_si128(_mm_castps_si128(v), magnitude));
        _mm256_storeu_pd(out.as_mut_ptr(), _mm256_cvtps_pd(v));
    }
    let mut lanes = [0u32; 4];
    _mm_storeu_si128(lanes.as_mut_ptr() as *mut __m128i, top);
    lanes.into_iter().max().unwrap_or(0)
}

/// `ints[i] = (vals[i] * scale) as i64` for blocks whose scaled values are below 2^31 in
/// magnitude (a float32 block scaled to its 32-bit integer precision stays below 2^30).
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn scale_ints(vals: &[f64], scale: f64, ints: &mut [i64]) {
    let s = _mm256_set1_pd(scale);
    for (v, i) in vals.chunks_exact(4).zip(ints.chunks_exact_mut(4)) {
        // SAFETY: four f64 and four i64 (`chunks_exact`); truncation toward zero as `as`.
        let t = _mm256_cvttpd_epi32(_mm256_mul_pd(_mm256_loadu_pd(v.as_ptr()), s));
        _mm256_storeu_si256(i.as_mut_ptr() as *mut __m256i, _mm256_cvtepi32_epi64(t));
    }
}

/// Store a whole block's values, `ints[i] as f64 * scale` rounded to float32, as rows of four
/// starting at the element offsets `rows`; false, storing nothing, when a value is not below
/// 2^31 in magnitude (only a damaged stream's are), for the per-value path to store.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn narrow_rows(
    ints: &[i64],
    scale: f64,
    rows: impl Iterator<Item = usize>,
    dst: &mut [u8],
) -> bool {
    // SAFETY: each `row` is four i64 (`chunks_exact`).
    let row = |r: &[i64]| unsafe { _mm256_loadu_si256(r.as_ptr() as *const __m256i) };
    let fit = ints.chunks_exact(4).fold(_mm256_set1_epi64x(-1), |f, r| {
        _mm256_and_si256(f, fits(row(r)))
    });
    if _mm256_movemask_epi8(fit) != -1 {
        return false;
    }
    let s = _mm256_set1_pd(scale);
    for (r, at) in ints.chunks_exact(4).zip(rows) {
        store_row(row(r), s, at, dst);
    }
    true
}

/// [`narrow_rows`] for a 2-D block held in four vectors (its rows).
///
/// # Safety
/// The CPU must have AVX2 (the caller is compiled for it).
#[inline(always)]
pub unsafe fn narrow_row_vectors(
    block: [__m256i; 4],
    scale: f64,
    rows: impl Iterator<Item = usize>,
    dst: &mut [u8],
) -> bool {
    let fit = block
        .iter()
        .fold(_mm256_set1_epi64x(-1), |f, &v| _mm256_and_si256(f, fits(v)));
    if _mm256_movemask_epi8(fit) != -1 {
        return false;
    }
    let s = _mm256_set1_pd(scale);
    for (v, at) in block.into_iter().zip(rows) {
        store_row(v, s, at, dst);
    }
    true
}

/// The low halves of four i64, as i32 in the low 128 bits.
#[inline(always)]
unsafe fn low_halves(v: __m256i) -> __m128i {
    _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(
        v,
        _mm256_setr_epi32(0, 2, 4, 6, 0, 0, 0, 0),
    ))
}

/// All ones in the lanes whose i64 fits an i32 (its low half sign-extends back to it).
#[inline(always)]
unsafe fn fits(v: __m256i) -> __m256i {
    _mm256_cmpeq_epi64(v, _mm256_cvtepi32_epi64(low_halves(v)))
}

/// Four values that fit i32, times `scale`, as float32 at element `at` of `dst`.
#[inline(always)]
unsafe fn store_row(v: __m256i, scale: __m256d, at: usize, dst: &mut [u8]) {
    // i32 → f64 is exact, so the product and its rounding are the scalar path's.
    let f = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtepi32_pd(low_halves(v)), scale));
    let out = &mut dst[at * 4..at * 4 + 16];
    // SAFETY: `out` holds the 16 bytes of the row's four float32.
    unsafe { _mm_storeu_ps(out.as_mut_ptr() as *mut f32, f) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks of noise over every exponent, with zeros, -0.0, subnormals, the largest
    /// finite values, NaN and infinities: the same widened values, largest exponent,
    /// finiteness and integers as the per-value loops.
    #[test]
    fn rows_match_the_per_value_loops() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let mut rnd = crate::test_rng::xorshift(0x2545_f491_4f6c_dd1d);
        let cols = 11;
        for case in 0..3000 {
            let vals32: Vec<f32> = (0..cols * 4)
                .map(|_| match rnd() % 23 {
                    0 if case % 7 == 0 => f32::NAN,
                    1 if case % 5 == 0 => f32::NEG_INFINITY,
                    2 => -0.0,
                    3 => 0.0,
                    4 => f32::from_bits(1 + (rnd() % 1000) as u32),
                    5 => f32::MAX,
                    _ => f32::from_bits((rnd() as u32) & 0xbfff_ffff),
                })
                .collect();
            let data: Vec<u8> = vals32.iter().flat_map(|v| v.to_le_bytes()).collect();
            let origin = (rnd() % (cols as u64 - 3)) as usize;
            let offsets: Vec<usize> = (0..16).map(|i| origin + (i / 4) * cols + i % 4).collect();
            let want: Vec<f64> = offsets.iter().map(|&j| vals32[j] as f64).collect();
            let mut got = [0f64; 16];
            // SAFETY: AVX2 checked above.
            let top = unsafe { f32_rows(&data, &offsets, &mut got) };
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "case {case}");
            let finite = want.iter().all(|v| v.is_finite());
            assert_eq!(top < super::super::NOT_FINITE, finite, "case {case}");
            if !finite {
                continue;
            }
            let emax = want.iter().map(|&v| super::super::exponent(v)).max();
            assert_eq!(
                super::super::exponent(f32::from_bits(top) as f64),
                emax.unwrap()
            );
            if emax == Some(i32::MIN) {
                continue;
            }
            let scale = super::super::pow2(30 - emax.unwrap());
            let mut ints = [0i64; 16];
            // SAFETY: AVX2 checked above.
            unsafe { scale_ints(&want, scale, &mut ints) };
            let expect: Vec<i64> = want.iter().map(|&v| (v * scale) as i64).collect();
            assert_eq!(ints.to_vec(), expect, "case {case}");
        }
    }

    /// Rows written back hold the scalar conversion's float32; a value past 2^31 sends the
    /// block to the scalar path, storing nothing.
    #[test]
    fn narrowed_rows_match_the_per_value_conversion() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let mut rnd = crate::test_rng::xorshift(0x9e37_79b9_7f4a_7c15);
        for bits in [4, 24, 31, 32, 33] {
            for _ in 0..500 {
                let scale = super::super::pow2((rnd() % 61) as i32 - 30);
                let ints: [i64; 16] = std::array::from_fn(|_| (rnd() as i64) >> (64 - bits));
                // Rows of four at offsets 0, 10, 20, 30 of a 40-value array.
                let mut fast = vec![0u8; 160];
                // SAFETY: AVX2 checked above.
                let stored =
                    unsafe { narrow_rows(&ints, scale, (0..4).map(|r| 10 * r), &mut fast) };
                assert_eq!(
                    stored,
                    ints.iter().all(|&i| i == i as i32 as i64),
                    "{ints:?}"
                );
                let mut slow = vec![0u8; 160];
                if stored {
                    for (i, &v) in ints.iter().enumerate() {
                        let at = 10 * (i / 4) + i % 4;
                        let f = (v as f64 * scale) as f32;
                        slow[at * 4..at * 4 + 4].copy_from_slice(&f.to_le_bytes());
                    }
                }
                assert_eq!(fast, slow);
            }
        }
    }
}
