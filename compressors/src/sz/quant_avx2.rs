//! The float32 quantiser four elements at a time with AVX2, for the encoders whose
//! predictions do not depend on each other (interpolation lines, block means).
//!
//! The same operations as [`super::quant::quantise_float`] on four f64 lanes (no fused
//! multiply-add; negation as a sign flip; rounding by the same magic constant; the
//! reconstruction rounded to float32 and checked in that precision), so the same codes and
//! values, tested against it by each user.

use std::arch::x86_64::*;

/// The bound's constants, set once per line or run.
#[derive(Clone, Copy)]
pub struct Quant4 {
    inv: __m256d,
    step: __m256d,
    bound: __m256d,
    magic: __m256d,
    lim: __m256d,
    inf: __m256d,
    offset: __m128i,
}

/// Four elements quantised: their codes (0 where escaped), the values later predictions see
/// (an escaped element as itself, 0 when not finite) and whether any was escaped.
pub struct Coded4 {
    pub codes: __m128i,
    pub seen: __m128,
    pub escaped: bool,
}

/// |v| (the sign bit cleared).
#[inline]
#[target_feature(enable = "avx2")]
pub unsafe fn abs(v: __m256d) -> __m256d {
    _mm256_andnot_pd(_mm256_set1_pd(-0.0), v)
}

/// 64-bit lane masks narrowed to 32-bit ones.
#[inline]
#[target_feature(enable = "avx2")]
pub unsafe fn narrow(m: __m256d) -> __m128i {
    let evens = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(_mm256_castpd_si256(m), evens))
}

impl Quant4 {
    /// The constants of bound `eb` and code radius `radius`.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn new(eb: f64, radius: u32) -> Quant4 {
        Quant4 {
            inv: _mm256_set1_pd(0.5 / eb),
            step: _mm256_set1_pd(2.0 * eb),
            bound: _mm256_set1_pd(eb),
            magic: _mm256_set1_pd(super::quant::ROUND_MAGIC),
            lim: _mm256_set1_pd(radius as f64),
            inf: _mm256_set1_pd(f64::INFINITY),
            offset: _mm_set1_epi32(radius as i32),
        }
    }

    /// Quantise the float32 values `x32` predicted by `pred`.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn code(&self, x32: __m128, pred: __m256d) -> Coded4 {
        let x = _mm256_cvtps_pd(x32);
        // round(): (v + M) − M below 2^51 in magnitude, v itself above. Above, (v + M) − M
        // is within 2 of v (or ±inf, NaN as v): as far above the radius as v, so the lane
        // escapes either way and its q is not used: no test of |v| needed.
        let v = _mm256_mul_pd(_mm256_sub_pd(x, pred), self.inv);
        let q = _mm256_sub_pd(_mm256_add_pd(v, self.magic), self.magic);
        // The reconstruction rounded to float32, checked in that precision.
        let rec32 = _mm256_cvtpd_ps(_mm256_add_pd(pred, _mm256_mul_pd(q, self.step)));
        let rec = _mm256_cvtps_pd(rec32);
        let ok = _mm256_and_pd(
            _mm256_cmp_pd::<_CMP_LT_OQ>(abs(q), self.lim),
            _mm256_cmp_pd::<_CMP_LE_OQ>(abs(_mm256_sub_pd(rec, x)), self.bound),
        );
        if _mm256_movemask_pd(ok) == 0b1111 {
            // |q| < radius <= 2^20: exact in 32 bits.
            return Coded4 {
                codes: _mm_add_epi32(_mm256_cvtpd_epi32(q), self.offset),
                seen: rec32,
                escaped: false,
            };
        }
        self.escapes(x32, q, rec32, ok)
    }

    /// [`Quant4::code`] where a lane escaped. Escapes are rare (out-of-range residuals, NaN,
    /// ±inf): taking them here, instead of the finite test, the masks' narrowing and the
    /// blends on every group, made the 256³ field's encode at bound 90 2% faster (one core,
    /// medians of 8 interleaved: 74.3 → 72.8 ms), at 0.01 3%.
    #[cold]
    #[inline(never)]
    #[target_feature(enable = "avx2")]
    unsafe fn escapes(&self, x32: __m128, q: __m256d, rec32: __m128, ok: __m256d) -> Coded4 {
        let x = _mm256_cvtps_pd(x32);
        let finite = _mm256_cmp_pd::<_CMP_LT_OQ>(abs(x), self.inf);
        let (ok32, finite32) = (narrow(ok), narrow(finite));
        Coded4 {
            // An escaped element is seen as itself, or 0 when not finite; its code is 0.
            seen: _mm_blendv_ps(
                _mm_and_ps(_mm_castsi128_ps(finite32), x32),
                rec32,
                _mm_castsi128_ps(ok32),
            ),
            // |q| < radius <= 2^20 on the kept lanes: exact in 32 bits.
            codes: _mm_and_si128(_mm_add_epi32(_mm256_cvtpd_epi32(q), self.offset), ok32),
            escaped: true,
        }
    }
}
