//! Block medians for [`Predictor::BlockMean`](super::predict::Predictor::BlockMean).
//!
//! Medians, not means: a Bragg peak inside a block must not lift the prediction for the
//! background pixels around it. A piece stores each block's median in units of the bound,
//! `(median / eb).round()`; [`block_units_into`] finds those without taking the medians.
//! `v ↦ (v / eb).round()` never decreases (in `total_cmp`'s order too, −0.0 before +0.0), so
//! the rounded median is the median of the rounded values, and those are integers in a narrow
//! range, found by counting (a few passes over a block) instead of a selection (`perf`: the
//! selection was 40 % of a detector frame's encode at abs 90, after its keys were integers).

use super::predict::MEAN_BLOCK;
use super::quant::Float;

/// Reused buffers of the median searches (one block's worth each).
#[derive(Default)]
pub struct MedianScratch<T: Float> {
    finite: Vec<T>,
    keys: Vec<T::Key>,
    units: Vec<i32>,
}

/// Rounded values at most this large in magnitude are counted; a block with larger ones (or
/// values that overflow when divided by the bound) is selected the long way.
const COUNTED: f64 = (1u32 << 30) as f64;

/// Calls `f` with each block's finite values, blocks in stored order (`buf` holds them).
fn for_each_block<T: Float>(
    dims: [usize; 3],
    vals: &[T],
    buf: &mut Vec<T>,
    mut f: impl FnMut(&[T]),
) {
    let (nb1, nb2) = (dims[1].div_ceil(MEAN_BLOCK), dims[2].div_ceil(MEAN_BLOCK));
    for i0 in 0..dims[0] {
        for b1 in 0..nb1 {
            for b2 in 0..nb2 {
                buf.clear();
                for i1 in b1 * MEAN_BLOCK..((b1 + 1) * MEAN_BLOCK).min(dims[1]) {
                    let row = (i0 * dims[1] + i1) * dims[2];
                    let (a, b) = (
                        row + b2 * MEAN_BLOCK,
                        row + ((b2 + 1) * MEAN_BLOCK).min(dims[2]),
                    );
                    let vals = &vals[a..b];
                    // Copied whole, and gathered one by one only where a value is not finite.
                    if vals.iter().fold(true, |all, v| all & v.is_finite()) {
                        buf.extend_from_slice(vals);
                    } else {
                        buf.extend(vals.iter().filter(|v| v.is_finite()));
                    }
                }
                f(buf);
            }
        }
    }
}

/// The median (the `n / 2`-th smallest in `total_cmp`'s order) of `vals` (finite, not empty).
fn median<T: Float>(vals: &[T], keys: &mut Vec<T::Key>) -> T {
    keys.clear();
    keys.extend(vals.iter().map(|v| v.key()));
    let mid = keys.len() / 2;
    T::from_key(*keys.select_nth_unstable(mid).1)
}

/// Each block's median of its finite values (0 where it has none) into `out` (cleared).
///
/// `vals` are f64, or f32 read in place: the same medians, since the conversion to f64 keeps
/// every value and their order.
pub fn block_medians_into<T: Float>(
    dims: [usize; 3],
    vals: &[T],
    s: &mut MedianScratch<T>,
    out: &mut Vec<f64>,
) {
    out.clear();
    let MedianScratch { finite, keys, .. } = s;
    for_each_block(dims, vals, finite, |block| {
        out.push(match block.is_empty() {
            true => 0.0,
            false => median(block, keys).to_f64(),
        })
    });
}

/// `(m / eb).round()` of each block's median `m` (see [`block_medians_into`]) into `out`
/// (cleared), bit for bit (−0.0 included); `eb` positive and finite.
pub fn block_units_into<T: Float>(
    dims: [usize; 3],
    vals: &[T],
    eb: f64,
    s: &mut MedianScratch<T>,
    out: &mut Vec<f64>,
) {
    out.clear();
    let MedianScratch {
        finite,
        keys,
        units,
    } = s;
    for_each_block(dims, vals, finite, |block| {
        // The search starts from the block before's: neighbouring blocks' medians are close.
        let guess = out.last().map_or(0, |&m: &f64| m as i32);
        out.push(match block.is_empty() {
            true => (0.0 / eb).round(),
            false => counted_units(block, eb, units, guess)
                .unwrap_or_else(|| (median(block, keys).to_f64() / eb).round()),
        })
    });
}

/// `(m / eb).round()` of the median `m` of `block` (finite, not empty) by counting, searched
/// from `guess`, or `None` where a rounded value is too large to count.
fn counted_units<T: Float>(block: &[T], eb: f64, units: &mut Vec<i32>, guess: i32) -> Option<f64> {
    units.clear();
    units.resize(block.len(), 0);
    #[cfg(target_arch = "x86_64")]
    let rounded = if T::SIZE == 4 && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: `T` is float32 (the only 4-byte `Float`), so `block` is `block.len()`
        // float32; the CPU has AVX2.
        unsafe {
            let block = std::slice::from_raw_parts(block.as_ptr() as *const f32, block.len());
            rounded_f32_avx2(block, eb, units)
        }
    } else {
        rounded(block, eb, units)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let rounded = rounded(block, eb, units);
    let (lo, hi, neg_zeros) = rounded?;
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return Some(unsafe { middle_avx2(units, (lo, hi), neg_zeros, guess) });
    }
    Some(middle(units, (lo, hi), neg_zeros, guess))
}

/// The `n / 2`-th smallest of the `n` integers `units`, all in `lo..=hi`, as `total_cmp`
/// orders their f64 values where `neg_zeros` of the zeros are −0.0: a search of the range,
/// each step a count, in steps doubling away from `guess` until the answer is bracketed,
/// then halving (`perf`: halving the whole range took most of the medians' time at abs 1,
/// where a block's rounded values span hundreds, or more with a Bragg peak in it).
#[inline(always)]
fn middle(units: &[i32], (lo, hi): (i32, i32), neg_zeros: u32, guess: i32) -> f64 {
    // The smallest c with more than k = n/2 values at most c is the k-th smallest: it is in
    // lo..=hi throughout.
    let (mut lo, mut hi) = (lo as i64, hi as i64);
    let k = units.len() as u32 / 2;
    // Probes stay in lo..=hi, inside i32.
    let at_most = |c: i64| units.iter().map(|&u| (u <= c as i32) as u32).sum::<u32>();
    let mut c = (guess as i64).clamp(lo, hi);
    let down = at_most(c) > k;
    if down {
        hi = c;
    } else {
        lo = c + 1;
    }
    let mut step = 1;
    while lo < hi {
        c = if down { c - step } else { c + step };
        if !(lo..=hi).contains(&c) {
            break;
        }
        match (at_most(c) > k, down) {
            (true, true) => hi = c,
            (false, false) => lo = c + 1,
            // Bracketed.
            (true, false) => {
                hi = c;
                break;
            }
            (false, true) => {
                lo = c + 1;
                break;
            }
        }
        step *= 2;
    }
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if at_most(mid) > k {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    if lo != 0 {
        return lo as f64;
    }
    // In `total_cmp`'s order the −0.0s come after the negatives, before the +0.0s.
    let negatives = units.iter().map(|&u| (u < 0) as u32).sum::<u32>();
    if negatives + neg_zeros > k {
        -0.0
    } else {
        0.0
    }
}

/// [`middle`], its counts eight at a time.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn middle_avx2(units: &[i32], range: (i32, i32), neg_zeros: u32, guess: i32) -> f64 {
    middle(units, range, neg_zeros, guess)
}

/// Each of `block`'s values divided by `eb` and rounded half away from zero, as `f64::round`,
/// into `units`: their least and greatest and how many rounded to −0.0 (the values in
/// (−½, −0]), or `None` where one is too large to count.
fn rounded<T: Float>(block: &[T], eb: f64, units: &mut [i32]) -> Option<(i32, i32, u32)> {
    let (mut lo, mut hi, mut neg_zeros) = (i32::MAX, i32::MIN, 0u32);
    for (u, v) in units.iter_mut().zip(block) {
        let t = v.to_f64() / eb;
        // Also where `t` overflowed (infinite).
        if t.abs() >= COUNTED {
            return None;
        }
        // The truncation and whether the rest reaches a half (exact: |t| < 2^30).
        let whole = t as i32;
        let rest = t - whole as f64;
        *u = whole + (rest >= 0.5) as i32 - (rest <= -0.5) as i32;
        neg_zeros += (*u == 0 && t.is_sign_negative()) as u32;
        (lo, hi) = (lo.min(*u), hi.max(*u));
    }
    Some((lo, hi, neg_zeros))
}

/// [`rounded`] of float32 values, four at a time (the same operations in f64 lanes).
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn rounded_f32_avx2(block: &[f32], eb: f64, units: &mut [i32]) -> Option<(i32, i32, u32)> {
    use super::quant_avx2;
    use std::arch::x86_64::*;
    let n = block.len().min(units.len());
    let (ebv, lim, half) = (
        _mm256_set1_pd(eb),
        _mm256_set1_pd(COUNTED),
        _mm256_set1_pd(0.5),
    );
    let (mut lo, mut hi) = (_mm_set1_epi32(i32::MAX), _mm_set1_epi32(i32::MIN));
    let mut small = _mm256_castsi256_pd(_mm256_set1_epi64x(-1));
    // Per lane, minus the count of −0.0s (masks are −1): no population count per group.
    let mut neg_zeros = _mm_setzero_si128();
    let mut k = 0;
    while k + 4 <= n {
        // SAFETY: values and units `k..k + 4` exist.
        let t = _mm256_div_pd(_mm256_cvtps_pd(_mm_loadu_ps(block.as_ptr().add(k))), ebv);
        let whole = _mm256_cvttpd_epi32(t);
        let rest = _mm256_sub_pd(t, _mm256_cvtepi32_pd(whole));
        small = _mm256_and_pd(small, _mm256_cmp_pd::<_CMP_LT_OQ>(quant_avx2::abs(t), lim));
        // Comparison masks are −1 where true: up subtracts, down adds.
        let up = _mm256_cmp_pd::<_CMP_GE_OQ>(rest, half);
        let down = _mm256_cmp_pd::<_CMP_LE_OQ>(rest, _mm256_xor_pd(half, _mm256_set1_pd(-0.0)));
        let (up, down) = (quant_avx2::narrow(up), quant_avx2::narrow(down));
        let u = _mm_add_epi32(_mm_sub_epi32(whole, up), down);
        _mm_storeu_si128(units.as_mut_ptr().add(k) as *mut __m128i, u);
        let zero = _mm_cmpeq_epi32(u, _mm_setzero_si128());
        let signs = _mm_castps_si128(_mm256_cvtpd_ps(t));
        let neg_zero = _mm_and_si128(zero, _mm_srai_epi32::<31>(signs));
        neg_zeros = _mm_add_epi32(neg_zeros, neg_zero);
        (lo, hi) = (_mm_min_epi32(lo, u), _mm_max_epi32(hi, u));
        k += 4;
    }
    if _mm256_movemask_pd(small) != 0b1111 {
        return None;
    }
    let lanes = |v: __m128i| {
        let mut a = [0i32; 4];
        // SAFETY: `a` holds the four lanes.
        _mm_storeu_si128(a.as_mut_ptr() as *mut __m128i, v);
        a
    };
    let lo = lanes(lo).into_iter().min().unwrap_or(i32::MAX);
    let hi = lanes(hi).into_iter().max().unwrap_or(i32::MIN);
    let neg_zeros = lanes(neg_zeros)
        .into_iter()
        .map(i32::unsigned_abs)
        .sum::<u32>();
    let (tl, th, tz) = rounded(&block[k..n], eb, &mut units[k..n])?;
    Some((lo.min(tl), hi.max(th), neg_zeros + tz))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The medians by selection with `total_cmp`: what the keys and the counting must give.
    fn by_total_cmp(dims: [usize; 3], vals: &[f64]) -> Vec<f64> {
        let mut buf = vec![];
        let mut out = vec![];
        for_each_block(dims, vals, &mut buf, |b| {
            let mut b = b.to_vec();
            if b.is_empty() {
                return out.push(0.0);
            }
            let mid = b.len() / 2;
            out.push(*b.select_nth_unstable_by(mid, f64::total_cmp).1);
        });
        out
    }

    fn bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Blocks of noise around a level, with signed zeros, halves, NaN, infinities, huge
    /// values and empty blocks; f32 and f64; bounds that make ties and overflows.
    #[test]
    fn counted_units_are_the_rounded_medians() {
        let mut next = crate::test_rng::xorshift(0x9e37_79b9_7f4a_7c15);
        let mut below = move |n: u64| next() % n;
        for case in 0..60 {
            let dims = [1 + case % 2, 1 + below(40) as usize, 1 + below(70) as usize];
            let n: usize = dims.iter().product();
            let eb = [0.5, 1.0, 90.0, 1e-3, 0.25, 1e-300][case % 6];
            let level = [0.0, -0.2, 3.0, -1e3][case % 4];
            // Every third case all ties, so that a tie is the median.
            let ties = case % 3 == 0;
            let vals: Vec<f64> = (0..n)
                .map(|i| match if ties { 4 } else { below(40) } {
                    0 => f64::NAN,
                    1 => f64::INFINITY,
                    2 => -0.0,
                    3 => 0.0,
                    4 => eb * (below(9) as f64 - 4.0 + 0.5), // ties
                    5 => 3e9 * eb,
                    _ if i % 97 == 0 => f64::NAN,
                    _ => level * eb + (below(2001) as f64 - 1000.0) * eb * 0.003,
                })
                .collect();
            let want: Vec<f64> = by_total_cmp(dims, &vals)
                .iter()
                .map(|m| (m / eb).round())
                .collect();
            let mut s = MedianScratch::default();
            let mut got = vec![];
            block_units_into(dims, &vals, eb, &mut s, &mut got);
            assert_eq!(bits(&got), bits(&want), "f64 {dims:?} at {eb}");
            let vals32: Vec<f32> = vals.iter().map(|&v| v as f32).collect();
            let wide: Vec<f64> = vals32.iter().map(|&v| v as f64).collect();
            let want: Vec<f64> = by_total_cmp(dims, &wide)
                .iter()
                .map(|m| (m / eb).round())
                .collect();
            let mut s = MedianScratch::default();
            block_units_into(dims, &vals32, eb, &mut s, &mut got);
            assert_eq!(bits(&got), bits(&want), "f32 {dims:?} at {eb}");
            let mut medians = vec![];
            block_medians_into(dims, &vals32, &mut s, &mut medians);
            assert_eq!(
                bits(&medians),
                bits(&by_total_cmp(dims, &wide)),
                "f32 {dims:?}"
            );
        }
    }
}
