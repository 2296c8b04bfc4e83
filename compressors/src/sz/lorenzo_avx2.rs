//! Eight rows of a float32 Lorenzo piece encoded at once with AVX2, one f64 lane a row.
//!
//! [`super::lorenzo_rows`] codes [`super::lorenzo_rows::ROWS`] rows together, row `k` one
//! column behind row `k − 1`, so that their chains overlap; element by element the core still
//! runs ~30 cycles a value (`perf`: half of an `sz(abs=1)` encode of a smooth 3-D field). Here
//! eight rows' elements of a step are the lanes of two registers: element `(k, t − k)`
//! at step `t`. A lane's left neighbour is its own lane a step before, the one above is the
//! lane below a step before (row 0's comes from the row above the group, finished), above-left
//! two steps before; the slice behind (3-D Lorenzo) is finished, so its part of every
//! prediction is summed for the group first. Each prediction is the element loop's sum, term
//! for term, quantised by [`Quant4`] (the same operations as `quantise_float`), so the codes,
//! escapes and values are bit-identical (tested against the visiting-order loop in
//! `lorenzo_rows`). A lane before its row's first column reads zero-padded inputs and lanes
//! before their own start, so it holds +0.0: what the element loop adds for a neighbour that
//! does not exist. A lane past its row's end is never read by one inside its row.

use super::quant_avx2::Quant4;
use std::arch::x86_64::*;

/// Rows coded at once: two registers of four lanes, whose chains overlap (one register's
/// chain of ~60 cycles a step left the core idle between steps).
pub const ROWS: usize = 8;

/// Reused buffers: the group's inputs and outputs skewed by step (row `k`'s column `j` at
/// index `j + k`), zero-padded.
#[derive(Default)]
pub struct Skewed {
    /// Element values, float32.
    x: [Vec<f32>; ROWS],
    /// The slice behind's part of each prediction.
    back: [Vec<f64>; ROWS],
    /// The row above the group as f64, shifted by one (index 0 is column −1: 0.0).
    above: Vec<f64>,
    codes: [Vec<u32>; ROWS],
    seen: [Vec<f32>; ROWS],
}

/// Four lanes of rows `k0..k0 + 4` of a skewed buffer at step `t`.
#[inline(always)]
fn lanes<T: Copy>(b: &[Vec<T>; ROWS], k0: usize, t: usize) -> [T; 4] {
    [b[k0][t], b[k0 + 1][t], b[k0 + 2][t], b[k0 + 3][t]]
}

/// One group: rows `start..start + ROWS·n2` of a piece (rows of `n2`, slices of `s0`, a row
/// above the group; `back`: predicted from the slice behind too, which must exist). Writes the
/// codes and values; appends the escaped elements' bytes to `unpred` row by row, in column
/// order (the element loop's visiting order).
///
/// # Safety
/// The CPU must have AVX2.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
pub unsafe fn rows(
    data: &[u8],
    recon: &mut [f32],
    codes: &mut [u32],
    unpred: &mut Vec<u8>,
    (start, n2, s0): (usize, usize, usize),
    back: bool,
    quant: &Quant4,
    b: &mut Skewed,
) {
    let steps = n2 + ROWS - 1;
    for k in 0..ROWS {
        let row = start + k * n2;
        let x = &mut b.x[k];
        x.clear();
        x.resize(steps, 0.0);
        let elements = data[4 * row..4 * (row + n2)].chunks_exact(4);
        for (x, e) in x[k..k + n2].iter_mut().zip(elements) {
            *x = f32::from_le_bytes(e.try_into().expect("4 bytes"));
        }
        if back {
            let bk = &mut b.back[k];
            bk.clear();
            bk.resize(steps, 0.0);
            skewed_back(recon, row - s0, n2, &mut bk[k..k + n2]);
        }
        b.codes[k].resize(steps, 0);
        b.seen[k].resize(steps, 0.0);
    }
    b.above.clear();
    b.above.push(0.0);
    b.above
        .extend(recon[start - n2..start].iter().map(|&v| v as f64));
    b.above.resize(steps + 1, 0.0);

    // Lanes of rows 0–3 (`lo`) and 4–7 (`hi`), a step and two steps before.
    let zero = _mm256_setzero_pd();
    let (mut lo, mut lo2, mut hi, mut hi2) = (zero, zero, zero, zero);
    // Lanes one up: lane k takes lane k − 1; `lo`'s lane 0 the row above the group, `hi`'s
    // lane 0 `lo`'s lane 3.
    let up = |v: __m256d, below: __m256d| {
        _mm256_blend_pd::<1>(_mm256_permute4x64_pd::<0b10_01_00_00>(v), below)
    };
    let mut escaped = false;
    for t in 0..steps {
        let up_lo = up(lo, _mm256_broadcast_sd(&b.above[t + 1]));
        let up_left_lo = up(lo2, _mm256_broadcast_sd(&b.above[t]));
        let up_hi = up(hi, _mm256_permute4x64_pd::<0b11_11_11_11>(lo));
        let up_left_hi = up(hi2, _mm256_permute4x64_pd::<0b11_11_11_11>(lo2));
        let mut pred_lo = _mm256_sub_pd(_mm256_add_pd(lo, up_lo), up_left_lo);
        let mut pred_hi = _mm256_sub_pd(_mm256_add_pd(hi, up_hi), up_left_hi);
        if back {
            let [a, c, d, e] = lanes(&b.back, 0, t);
            pred_lo = _mm256_add_pd(pred_lo, _mm256_setr_pd(a, c, d, e));
            let [a, c, d, e] = lanes(&b.back, 4, t);
            pred_hi = _mm256_add_pd(pred_hi, _mm256_setr_pd(a, c, d, e));
        }
        let [a, c, d, e] = lanes(&b.x, 0, t);
        let q_lo = quant.code(_mm_setr_ps(a, c, d, e), pred_lo);
        let [a, c, d, e] = lanes(&b.x, 4, t);
        let q_hi = quant.code(_mm_setr_ps(a, c, d, e), pred_hi);
        escaped |= q_lo.escaped | q_hi.escaped;
        let mut code = [0u32; ROWS];
        let mut seen = [0f32; ROWS];
        _mm_storeu_si128(code.as_mut_ptr().cast(), q_lo.codes);
        _mm_storeu_si128(code[4..].as_mut_ptr().cast(), q_hi.codes);
        _mm_storeu_ps(seen.as_mut_ptr(), q_lo.seen);
        _mm_storeu_ps(seen[4..].as_mut_ptr(), q_hi.seen);
        for k in 0..ROWS {
            b.codes[k][t] = code[k];
            b.seen[k][t] = seen[k];
        }
        (lo2, hi2) = (lo, hi);
        lo = _mm256_cvtps_pd(q_lo.seen);
        hi = _mm256_cvtps_pd(q_hi.seen);
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

/// The slice behind's part of the predictions of the row whose slice-behind twin starts at
/// `b` (a row above it exists): `((f[b] − f[b − 1]) − f[b − s1]) + f[b − s1 − 1]` as the element
/// loop sums it, the left terms 0.0 in the first column.
fn skewed_back(recon: &[f32], b: usize, n2: usize, out: &mut [f64]) {
    let f = |i: usize| recon[i] as f64;
    out[0] = (f(b) - 0.0) - f(b - n2) + 0.0;
    for (j, o) in out.iter_mut().enumerate().skip(1) {
        let i = b + j;
        *o = ((f(i) - f(i - 1)) - f(i - n2)) + f(i - n2 - 1);
    }
}
