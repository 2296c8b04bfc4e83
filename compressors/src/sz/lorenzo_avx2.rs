//! Eight rows of a float32 Lorenzo piece encoded or decoded at once with AVX2, one f64 lane a
//! row.
//!
//! [`super::lorenzo_rows`] codes [`super::lorenzo_rows::ROWS`] rows together, row `k` one
//! column behind row `k − 1`, so that their chains overlap; element by element the core still
//! runs ~30 cycles a value (`perf`: half of an `sz(abs=1)` encode of a smooth 3-D field). Here
//! eight rows' elements of a step are the lanes of two registers: element `(k, t − k)`
//! at step `t`. A lane's left neighbour is its own lane a step before, the one above is the
//! lane below a step before (row 0's comes from the row above the group, finished), above-left
//! two steps before; the slice behind (3-D Lorenzo) is finished, so its part of every
//! prediction is summed for the group first. Each prediction is the element loop's sum, term
//! for term, quantised by [`Quant4`] (the same operations as `quantise_float`) or decoded by
//! the decoder's rule, so the codes, escapes and values are bit-identical (tested against the
//! visiting-order loop in `lorenzo_rows`). A lane before its row's first column reads zero-padded inputs and lanes
//! before their own start, so it holds +0.0: what the element loop adds for a neighbour that
//! does not exist. A lane past its row's end is never read by one inside its row.

use super::quant_avx2::Quant4;
use std::arch::x86_64::*;

/// Rows coded at once: two registers of four lanes, whose chains overlap (one register's
/// chain of ~60 cycles a step left the core idle between steps).
pub const ROWS: usize = 8;

/// Reused buffers: the group's inputs and outputs skewed by step (row `k`'s column `j` at
/// index `j + k`), padded.
#[derive(Default)]
pub struct Skewed {
    /// Element values, float32 bits (encoding: the input; decoding: the output).
    x: [Vec<u32>; ROWS],
    /// The slice behind's part of each prediction.
    back: [Vec<f64>; ROWS],
    /// The row above the group as f64, shifted by one (index 0 is column −1: 0.0).
    above: Vec<f64>,
    codes: [Vec<u32>; ROWS],
    /// The values later predictions see.
    seen: [Vec<f32>; ROWS],
}

/// Four lanes of rows `k0..k0 + 4` of a skewed buffer at step `t`.
#[inline(always)]
fn lanes<T: Copy>(b: &[Vec<T>; ROWS], k0: usize, t: usize) -> [T; 4] {
    [b[k0][t], b[k0 + 1][t], b[k0 + 2][t], b[k0 + 3][t]]
}

/// A group's rows: its first element, row length and slice length.
pub type Group = (usize, usize, usize);

impl Skewed {
    /// Size the buffers for rows of `n2` and fill what every prediction takes from finished
    /// rows: the row above the group and (`back`) the slice behind's terms.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    unsafe fn prepare(&mut self, recon: &[f32], (start, n2, s0): Group, back: bool) {
        let steps = n2 + ROWS - 1;
        for k in 0..ROWS {
            self.x[k].resize(steps, 0);
            self.codes[k].resize(steps, 0);
            self.seen[k].resize(steps, 0.0);
            if back {
                let bk = &mut self.back[k];
                bk.clear();
                bk.resize(steps, 0.0);
                back_terms(recon, start + k * n2 - s0, n2, &mut bk[k..k + n2]);
            }
        }
        self.above.clear();
        self.above.push(0.0);
        self.above
            .extend(recon[start - n2..start].iter().map(|&v| v as f64));
        self.above.resize(steps + 1, 0.0);
    }
}

/// The lanes of rows 0–3 (`lo`) and 4–7 (`hi`) a step and two steps before.
struct Chains {
    lo: __m256d,
    lo2: __m256d,
    hi: __m256d,
    hi2: __m256d,
}

impl Chains {
    // Always inlined into the AVX2 kernels (a target-feature function is not), so the
    // intrinsics are compiled for AVX2 there.
    #[inline(always)]
    unsafe fn new() -> Chains {
        let zero = _mm256_setzero_pd();
        Chains {
            lo: zero,
            lo2: zero,
            hi: zero,
            hi2: zero,
        }
    }

    /// The predictions of step `t`: left + up − up-left (+ the slice behind's terms).
    // Always inlined into the AVX2 kernels (a target-feature function is not), so the
    // intrinsics are compiled for AVX2 there.
    #[inline(always)]
    unsafe fn predict(&self, b: &Skewed, t: usize, back: bool) -> (__m256d, __m256d) {
        // Lanes one up: lane k takes lane k − 1; `lo`'s lane 0 the row above the group, `hi`'s
        // lane 0 `lo`'s lane 3.
        let up = |v: __m256d, below: __m256d| {
            _mm256_blend_pd::<1>(_mm256_permute4x64_pd::<0b10_01_00_00>(v), below)
        };
        let up_lo = up(self.lo, _mm256_broadcast_sd(&b.above[t + 1]));
        let up_left_lo = up(self.lo2, _mm256_broadcast_sd(&b.above[t]));
        let up_hi = up(self.hi, _mm256_permute4x64_pd::<0b11_11_11_11>(self.lo));
        let up_left_hi = up(self.hi2, _mm256_permute4x64_pd::<0b11_11_11_11>(self.lo2));
        let mut lo = _mm256_sub_pd(_mm256_add_pd(self.lo, up_lo), up_left_lo);
        let mut hi = _mm256_sub_pd(_mm256_add_pd(self.hi, up_hi), up_left_hi);
        if back {
            let [a, c, d, e] = lanes(&b.back, 0, t);
            lo = _mm256_add_pd(lo, _mm256_setr_pd(a, c, d, e));
            let [a, c, d, e] = lanes(&b.back, 4, t);
            hi = _mm256_add_pd(hi, _mm256_setr_pd(a, c, d, e));
        }
        (lo, hi)
    }

    /// Step `t`'s values seen: stored, and the lanes' left neighbours for the next step.
    // Always inlined into the AVX2 kernels (a target-feature function is not), so the
    // intrinsics are compiled for AVX2 there.
    #[inline(always)]
    unsafe fn push(&mut self, b: &mut Skewed, t: usize, lo: __m128, hi: __m128) {
        let mut seen = [0f32; ROWS];
        _mm_storeu_ps(seen.as_mut_ptr(), lo);
        _mm_storeu_ps(seen[4..].as_mut_ptr(), hi);
        for (k, &v) in seen.iter().enumerate() {
            b.seen[k][t] = v;
        }
        (self.lo2, self.hi2) = (self.lo, self.hi);
        self.lo = _mm256_cvtps_pd(lo);
        self.hi = _mm256_cvtps_pd(hi);
    }
}

/// Encode one group: rows `start..start + ROWS·n2` of a piece (`at`: rows of `n2`, slices of
/// `s0`, a row above the group; `back`: predicted from the slice behind too, which must
/// exist). Writes the codes and values; appends the escaped elements' bytes to `unpred` row
/// by row, in column order (the element loop's visiting order).
///
/// # Safety
/// The CPU must have AVX2.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
pub unsafe fn encode_rows(
    data: &[u8],
    recon: &mut [f32],
    codes: &mut [u32],
    unpred: &mut Vec<u8>,
    at: Group,
    back: bool,
    quant: &Quant4,
    b: &mut Skewed,
) {
    let (start, n2, _) = at;
    b.prepare(recon, at, back);
    for k in 0..ROWS {
        let row = start + k * n2;
        let x = &mut b.x[k];
        x.fill(0);
        let elements = data[4 * row..4 * (row + n2)].chunks_exact(4);
        for (x, e) in x[k..k + n2].iter_mut().zip(elements) {
            *x = u32::from_le_bytes(e.try_into().expect("4 bytes"));
        }
    }
    let mut chains = Chains::new();
    let mut escaped = false;
    for t in 0..n2 + ROWS - 1 {
        let (pred_lo, pred_hi) = chains.predict(b, t, back);
        let x = |k0| _mm_castsi128_ps(_mm_loadu_si128(lanes(&b.x, k0, t).as_ptr().cast()));
        let q_lo = quant.code(x(0), pred_lo);
        let q_hi = quant.code(x(4), pred_hi);
        escaped |= q_lo.escaped | q_hi.escaped;
        let mut code = [0u32; ROWS];
        _mm_storeu_si128(code.as_mut_ptr().cast(), q_lo.codes);
        _mm_storeu_si128(code[4..].as_mut_ptr().cast(), q_hi.codes);
        for (k, &c) in code.iter().enumerate() {
            b.codes[k][t] = c;
        }
        chains.push(b, t, q_lo.seen, q_hi.seen);
    }
    for k in 0..ROWS {
        let row = start + k * n2;
        codes[row..row + n2].copy_from_slice(&b.codes[k][k..k + n2]);
        recon[row..row + n2].copy_from_slice(&b.seen[k][k..k + n2]);
        // Lanes past their row may have escaped too: the codes say which were elements.
        if !escaped {
            continue;
        }
        for (j, _) in b.codes[k][k..k + n2]
            .iter()
            .enumerate()
            .filter(|(_, &c)| c == 0)
        {
            unpred.extend_from_slice(&data[4 * (row + j)..4 * (row + j + 1)]);
        }
    }
}

/// Decode one group (as [`encode_rows`]) from `codes` and the piece's escaped values
/// `unpred`, of which the rows before used `*escapes` (advanced past this group's): values
/// into `out` (float32, little-endian) and `recon`. None, having written nothing, when a code
/// is beyond what the lanes convert exactly (2³¹ and more: no stream of ours holds one);
/// Some(false) when the codes ask for escaped values `unpred` does not hold.
///
/// # Safety
/// The CPU must have AVX2.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
pub unsafe fn decode_rows(
    (codes, unpred): (&[u32], &[u8]),
    escapes: &mut usize,
    out: &mut [u8],
    recon: &mut [f32],
    at: Group,
    back: bool,
    (eb, radius): (f64, u32),
    b: &mut Skewed,
) -> Option<bool> {
    let (start, n2, _) = at;
    // One OR over the group (a search that stops at the first stayed a scalar loop).
    if codes[start..start + ROWS * n2]
        .iter()
        .fold(0, |m, &c| m | c)
        > i32::MAX as u32
    {
        return None;
    }
    b.prepare(recon, at, back);
    // Each row's next escaped value; lanes outside their row take code `radius` (0 from a
    // prediction of 0), never an escape.
    let mut next = [0usize; ROWS];
    let mut e = *escapes;
    for k in 0..ROWS {
        let row = &codes[start + k * n2..start + (k + 1) * n2];
        let c = &mut b.codes[k];
        c.fill(radius);
        c[k..k + n2].copy_from_slice(row);
        next[k] = e;
        e += row.iter().filter(|&&c| c == 0).count();
    }
    let (radius_v, two, eb_v) = (
        _mm256_set1_pd(radius as f64),
        _mm256_set1_pd(2.0),
        _mm256_set1_pd(eb),
    );
    let mut chains = Chains::new();
    for t in 0..n2 + ROWS - 1 {
        let (pred_lo, pred_hi) = chains.predict(b, t, back);
        // The element loop's rule: pred + (c − radius)·2·eb, rounded to float32.
        let value = |k0: usize, pred: __m256d| {
            let c = _mm_loadu_si128(lanes(&b.codes, k0, t).as_ptr().cast());
            let q = _mm256_sub_pd(_mm256_cvtepi32_pd(c), radius_v);
            let v = _mm256_cvtpd_ps(_mm256_add_pd(
                pred,
                _mm256_mul_pd(_mm256_mul_pd(q, two), eb_v),
            ));
            let escaped =
                _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(c, _mm_setzero_si128())));
            (v, escaped)
        };
        let (lo, esc_lo) = value(0, pred_lo);
        let (hi, esc_hi) = value(4, pred_hi);
        let mut bits = [0u32; ROWS];
        _mm_storeu_ps(bits.as_mut_ptr().cast(), lo);
        _mm_storeu_ps(bits[4..].as_mut_ptr().cast(), hi);
        let escaped = esc_lo | esc_hi << 4;
        if escaped == 0 {
            for (k, &v) in bits.iter().enumerate() {
                b.x[k][t] = v;
            }
            chains.push(b, t, lo, hi);
            continue;
        }
        // An escaped element is its stored bits; later predictions see it, or 0 when it is
        // not finite.
        let mut seen = [0f32; ROWS];
        for k in 0..ROWS {
            if escaped & 1 << k != 0 {
                let Some(raw) = unpred.get(4 * next[k]..4 * next[k] + 4) else {
                    return Some(false);
                };
                next[k] += 1;
                bits[k] = u32::from_le_bytes(raw.try_into().expect("4 bytes"));
                let v = f32::from_bits(bits[k]);
                seen[k] = if v.is_finite() { v } else { 0.0 };
            } else {
                seen[k] = f32::from_bits(bits[k]);
            }
            b.x[k][t] = bits[k];
        }
        chains.push(
            b,
            t,
            _mm_loadu_ps(seen.as_ptr()),
            _mm_loadu_ps(seen[4..].as_ptr()),
        );
    }
    for k in 0..ROWS {
        let row = start + k * n2;
        let outputs = out[4 * row..4 * (row + n2)].chunks_exact_mut(4);
        for (o, &v) in outputs.zip(&b.x[k][k..k + n2]) {
            o.copy_from_slice(&v.to_le_bytes());
        }
        recon[row..row + n2].copy_from_slice(&b.seen[k][k..k + n2]);
    }
    *escapes = e;
    Some(true)
}

/// The slice behind's part of the predictions of the row whose slice-behind twin starts at
/// `b` (a row above it exists): `((f[b] − f[b − 1]) − f[b − s1]) + f[b − s1 − 1]` as the element
/// loop sums it, the left terms 0.0 in the first column.
#[inline(always)]
fn back_terms(recon: &[f32], b: usize, n2: usize, out: &mut [f64]) {
    let f = |i: usize| recon[i] as f64;
    out[0] = (f(b) - 0.0) - f(b - n2) + 0.0;
    for (j, o) in out.iter_mut().enumerate().skip(1) {
        let i = b + j;
        *o = ((f(i) - f(i - 1)) - f(i - n2)) + f(i - n2 - 1);
    }
}
