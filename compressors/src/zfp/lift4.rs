//! A block's lifting transforms, both ways, four lines at a time (AVX2).
//!
//! `perf` put an eighth of a 2-D encode of Eiger-like frames in the forward transform, and a
//! sixth of a 3-D decode of a smooth field in the inverse one (48 lifts of four values a
//! block). A block's rows of four are one vector: the lifts along its slower axes run on four
//! lines at once, lane by lane, and those along rows run on the block transposed. The
//! arithmetic is the scalar lifts' own (wrapping adds, an arithmetic shift by one), in the
//! scalar transform's order of axes, so the integers are the same (tested against
//! [`super::block::forward`] and [`super::block::inverse`]).

use std::arch::x86_64::*;

/// ⌊v / 2⌋ per lane: a logical shift with the sign bit put back (AVX2 has no 64-bit
/// arithmetic shift; by one place the two differ only in the top bit).
#[inline(always)]
unsafe fn half(v: __m256i) -> __m256i {
    _mm256_or_si256(
        _mm256_srli_epi64::<1>(v),
        _mm256_and_si256(v, _mm256_set1_epi64x(i64::MIN)),
    )
}

/// [`super::block::fwd_lift`] on four lines at once.
#[inline(always)]
unsafe fn fwd_lift(l: [__m256i; 4]) -> [__m256i; 4] {
    let [mut x, mut y, mut z, mut w] = l;
    x = half(_mm256_add_epi64(x, w));
    w = _mm256_sub_epi64(w, x);
    z = half(_mm256_add_epi64(z, y));
    y = _mm256_sub_epi64(y, z);
    x = half(_mm256_add_epi64(x, z));
    z = _mm256_sub_epi64(z, x);
    w = half(_mm256_add_epi64(w, y));
    y = _mm256_sub_epi64(y, w);
    w = _mm256_add_epi64(w, half(y));
    y = _mm256_sub_epi64(y, half(w));
    [x, y, z, w]
}

/// [`super::block::inv_lift`] on four lines at once.
#[inline(always)]
unsafe fn inv_lift(l: [__m256i; 4]) -> [__m256i; 4] {
    let [mut x, mut y, mut z, mut w] = l;
    let twice = |v| _mm256_add_epi64(v, v);
    y = _mm256_add_epi64(y, half(w));
    w = _mm256_sub_epi64(w, half(y));
    y = _mm256_add_epi64(y, w);
    w = _mm256_sub_epi64(twice(w), y);
    z = _mm256_add_epi64(z, x);
    x = _mm256_sub_epi64(twice(x), z);
    y = _mm256_add_epi64(y, z);
    z = _mm256_sub_epi64(twice(z), y);
    w = _mm256_add_epi64(w, x);
    x = _mm256_sub_epi64(twice(x), w);
    [x, y, z, w]
}

/// Rows of a 4 × 4 block of i64 to its columns (and back).
#[inline(always)]
unsafe fn transpose(r: [__m256i; 4]) -> [__m256i; 4] {
    let t0 = _mm256_unpacklo_epi64(r[0], r[1]);
    let t1 = _mm256_unpackhi_epi64(r[0], r[1]);
    let t2 = _mm256_unpacklo_epi64(r[2], r[3]);
    let t3 = _mm256_unpackhi_epi64(r[2], r[3]);
    [
        _mm256_permute2x128_si256::<0x20>(t0, t2),
        _mm256_permute2x128_si256::<0x20>(t1, t3),
        _mm256_permute2x128_si256::<0x31>(t0, t2),
        _mm256_permute2x128_si256::<0x31>(t1, t3),
    ]
}

/// The lifts along rows of four, on the transposed rows lane by lane. (Not a function taking
/// the lift as a closure: a closure does not inherit its caller's target features, and its
/// intrinsics stayed calls.)
#[inline(always)]
unsafe fn fwd_rows(r: [__m256i; 4]) -> [__m256i; 4] {
    transpose(fwd_lift(transpose(r)))
}

#[inline(always)]
unsafe fn inv_rows(r: [__m256i; 4]) -> [__m256i; 4] {
    transpose(inv_lift(transpose(r)))
}

/// Four i64 from the start of `p` (bounds-checked by the slicing).
#[inline(always)]
unsafe fn load(p: &[i64]) -> __m256i {
    // SAFETY: `p[..4]` is four valid i64.
    unsafe { _mm256_loadu_si256(p[..4].as_ptr() as *const __m256i) }
}

#[inline(always)]
unsafe fn store(p: &mut [i64], v: __m256i) {
    // SAFETY: `p[..4]` is four valid i64.
    unsafe { _mm256_storeu_si256(p[..4].as_mut_ptr() as *mut __m256i, v) }
}

/// [`super::block::forward`] of a 2-D block (value `4y + x`).
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn forward_2d(p: &mut [i64; 16]) {
    let r = [load(&p[0..]), load(&p[4..]), load(&p[8..]), load(&p[12..])];
    // Along x first, then along y (stride 4): the scalar transform's order.
    let r = fwd_lift(fwd_rows(r));
    for (y, v) in r.into_iter().enumerate() {
        store(&mut p[4 * y..], v);
    }
}

/// [`super::block::forward`] of a 3-D block (value `16z + 4y + x`).
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn forward_3d(p: &mut [i64; 64]) {
    let mut v = [[_mm256_setzero_si256(); 4]; 4];
    for (z, plane) in v.iter_mut().enumerate() {
        let rows = [0, 1, 2, 3].map(|y| load(&p[16 * z + 4 * y..]));
        // Along x, then y (stride 4); then z (stride 16) below.
        *plane = fwd_lift(fwd_rows(rows));
    }
    for y in 0..4 {
        let l = fwd_lift([v[0][y], v[1][y], v[2][y], v[3][y]]);
        for (z, w) in l.into_iter().enumerate() {
            store(&mut p[16 * z + 4 * y..], w);
        }
    }
}

/// [`super::block::inverse`] of a 2-D block (value `4y + x`).
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn inverse_2d(p: &mut [i64; 16]) {
    let r = [load(&p[0..]), load(&p[4..]), load(&p[8..]), load(&p[12..])];
    for (y, v) in inverse_2d_rows(r).into_iter().enumerate() {
        store(&mut p[4 * y..], v);
    }
}

/// [`inverse_2d`] of a block held in four vectors (its rows).
///
/// # Safety
/// The CPU must have AVX2 (the caller is compiled for it).
#[inline(always)]
pub unsafe fn inverse_2d_rows(r: [__m256i; 4]) -> [__m256i; 4] {
    // Along y (stride 4) first, then along x: the scalar transform's order.
    inv_rows(inv_lift(r))
}

/// [`super::block::inverse`] of a 3-D block (value `16z + 4y + x`).
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn inverse_3d(p: &mut [i64; 64]) {
    // Along z (stride 16): four lines at a time, one row of each plane.
    for y in 0..4 {
        let l = inv_lift([0, 1, 2, 3].map(|z| load(&p[16 * z + 4 * y..])));
        for (z, w) in l.into_iter().enumerate() {
            store(&mut p[16 * z + 4 * y..], w);
        }
    }
    // Then y (stride 4) and x, plane by plane.
    for z in 0..4 {
        let rows = [0, 1, 2, 3].map(|y| load(&p[16 * z + 4 * y..]));
        for (y, w) in inv_rows(inv_lift(rows)).into_iter().enumerate() {
            store(&mut p[16 * z + 4 * y..], w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zfp::block;

    /// The vector transforms give the scalar ones' integers both ways, for small, large and
    /// wrapping values.
    #[test]
    fn match_the_scalar_transforms() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let mut rnd = crate::test_rng::xorshift(0x2545_f491_4f6c_dd1d);
        for bits in [4, 20, 31, 33, 40, 64] {
            let mut next = || (rnd() as i64) >> (64 - bits);
            for _ in 0..200 {
                let a: [i64; 16] = std::array::from_fn(|_| next());
                let (mut slow, mut fast) = (a, a);
                block::forward(&mut slow, 2);
                // SAFETY: AVX2 checked above.
                unsafe { forward_2d(&mut fast) };
                assert_eq!(slow, fast, "2-D forward, {bits}-bit values");
                let (mut slow, mut fast) = (a, a);
                block::inverse(&mut slow, 2);
                // SAFETY: AVX2 checked above.
                unsafe { inverse_2d(&mut fast) };
                assert_eq!(slow, fast, "2-D inverse, {bits}-bit values");

                let a: [i64; 64] = std::array::from_fn(|_| next());
                let (mut slow, mut fast) = (a, a);
                block::forward(&mut slow, 3);
                // SAFETY: AVX2 checked above.
                unsafe { forward_3d(&mut fast) };
                assert_eq!(slow, fast, "3-D forward, {bits}-bit values");
                let (mut slow, mut fast) = (a, a);
                block::inverse(&mut slow, 3);
                // SAFETY: AVX2 checked above.
                unsafe { inverse_3d(&mut fast) };
                assert_eq!(slow, fast, "3-D inverse, {bits}-bit values");
            }
        }
    }
}
