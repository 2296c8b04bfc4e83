//! Row-interleaved encoding of float Lorenzo pieces.
//!
//! Each value of a Lorenzo piece waits on its left neighbour's reconstruction: an addition, a
//! subtraction, the quantisation, the rounding to the element type and the bound check, a
//! chain the core runs one element at a time (`perf`: over half of an `sz(abs=1)` encode of
//! a smooth 3-D field). Element `(r, j)` needs row `r − 1` only up to column `j` (and the
//! plane behind, finished), so [`ROWS`] rows are encoded together, each one column behind the
//! row above: independent chains the core overlaps, as [`super::plane`] does for decoding.
//! Every prediction is the visiting-order loop's sum, term for term (absent neighbours added
//! as 0.0), so the codes and escaped values are bit-identical to [`super::predict`]'s; codes
//! are written by index and each row's escapes are kept apart and appended in row order.

use super::predict::Recon;
use super::quant::{quantise_float, Codes, Float};

/// Rows encoded together.
const ROWS: usize = 4;

/// Encode the `dims` piece of float elements `data` with first-order Lorenzo, across slices
/// (3-D) or inside each slice (`across_slices` false), into `out` (cleared first) and `recon`
/// (every reconstructed value, `dims` elements).
pub fn encode<T: Float, R: Recon>(
    dims: [usize; 3],
    data: &[u8],
    eb: f64,
    radius: u32,
    across_slices: bool,
    out: &mut Codes,
    recon: &mut [R],
) {
    let [n0, n1, n2] = dims;
    let n = n0 * n1 * n2;
    out.codes.clear();
    out.codes.resize(n, 0);
    out.unpred.clear();
    if n == 0 {
        return;
    }
    let mut piece = Piece::<T, R> {
        data,
        eb,
        radius,
        s0: n1 * n2,
        s1: n2,
        codes: &mut out.codes,
        recon,
        _t: std::marker::PhantomData,
    };
    let mut escapes: [Vec<u8>; ROWS] = Default::default();
    for i0 in 0..n0 {
        let base = i0 * n1 * n2;
        if across_slices && i0 > 0 {
            piece.plane::<true>(base, n1, &mut escapes, &mut out.unpred);
        } else {
            piece.plane::<false>(base, n1, &mut escapes, &mut out.unpred);
        }
    }
}

/// A piece being encoded: its elements, bound, codes and reconstruction.
struct Piece<'a, T: Float, R: Recon> {
    data: &'a [u8],
    eb: f64,
    radius: u32,
    /// Strides of a slice and of a row.
    s0: usize,
    s1: usize,
    codes: &'a mut [u32],
    recon: &'a mut [R],
    _t: std::marker::PhantomData<T>,
}

impl<T: Float, R: Recon> Piece<'_, T, R> {
    /// The slice of `n1` rows at element `base`; `BACK`: predicted from the slice behind too.
    fn plane<const BACK: bool>(
        &mut self,
        base: usize,
        n1: usize,
        escapes: &mut [Vec<u8>; ROWS],
        unpred: &mut Vec<u8>,
    ) {
        let n2 = self.s1;
        // The first row: no row above, one chain.
        let mut left = 0.0;
        for j in 0..n2 {
            left = self.element::<BACK>(base + j, false, j > 0, left, unpred);
        }
        let mut r = 1;
        while r < n1 {
            let g = ROWS.min(n1 - r);
            self.rows::<BACK>(base + r * n2, g, escapes);
            for e in &mut escapes[..g] {
                unpred.extend_from_slice(e);
                e.clear();
            }
            r += g;
        }
    }

    /// Rows `start..` (`g ≤ ROWS` of them, each with a row above), row `k` one column behind
    /// row `k − 1`; row `k`'s escapes into `escapes[k]`.
    #[inline(always)]
    fn rows<const BACK: bool>(&mut self, start: usize, g: usize, escapes: &mut [Vec<u8>; ROWS]) {
        let n2 = self.s1;
        let mut left = [0.0f64; ROWS];
        // Row k is k columns behind row 0: it starts at step k and ends at step n2 − 1 + k.
        for t in 0..n2 + g - 1 {
            if g == ROWS && t >= ROWS && t < n2 {
                // Every row has a column with a left neighbour: a loop of constant length the
                // compiler unrolls, so the rows' `left` values stay in registers.
                for k in 0..ROWS {
                    let i = start + k * n2 + t - k;
                    left[k] = self.element::<BACK>(i, true, true, left[k], &mut escapes[k]);
                }
                continue;
            }
            for k in t.saturating_sub(n2 - 1)..g.min(t + 1) {
                let j = t - k;
                let i = start + k * n2 + j;
                left[k] = self.element::<BACK>(i, true, j > 0, left[k], &mut escapes[k]);
            }
        }
    }

    /// Element `i`: predicted as the visiting-order loop does (`up`: it has a row above,
    /// `has_left`: a column to its left, whose value is `left`), quantised, its code and
    /// reconstruction stored, its raw bytes appended to `escapes` if it is escaped.
    #[inline(always)]
    fn element<const BACK: bool>(
        &mut self,
        i: usize,
        up: bool,
        has_left: bool,
        left: f64,
        escapes: &mut Vec<u8>,
    ) -> f64 {
        let (s0, s1, f) = (self.s0, self.s1, &*self.recon);
        let g = |c: bool, j: usize| if c { f[j].get() } else { 0.0 };
        let l = if has_left { left } else { 0.0 };
        let mut pred = l + g(up, i.wrapping_sub(s1)) - g(up && has_left, i.wrapping_sub(s1 + 1));
        if BACK {
            let b = i - s0;
            pred += f[b].get() - g(has_left, b.wrapping_sub(1)) - g(up, b.wrapping_sub(s1))
                + g(up && has_left, b.wrapping_sub(s1 + 1));
        }
        let raw = &self.data[i * T::SIZE..(i + 1) * T::SIZE];
        let (code, v) = quantise_float::<T>(raw, pred, self.eb, self.radius);
        if code == 0 {
            escapes.extend_from_slice(raw);
        }
        self.codes[i] = code;
        self.recon[i] = R::set(v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::super::predict::Predictor;
    use super::super::quant::FloatEncoder;
    use super::*;

    /// The visiting-order encoder's codes, escapes and reconstruction.
    fn visiting_order<T: Float>(
        pred: Predictor,
        dims: [usize; 3],
        bytes: &[u8],
        eb: f64,
    ) -> (Codes, Vec<f64>) {
        let mut codes = Codes::default();
        let mut recon = vec![0.0; dims.iter().product()];
        let mut q = FloatEncoder::<T> {
            data: bytes,
            eb,
            base: eb,
            radius: 64,
            out: &mut codes,
            _t: std::marker::PhantomData,
        };
        pred.run(dims, &mut recon, &mut q, &[]);
        (codes, recon)
    }

    fn both_orders<T: Float, R: Recon + Default>(dims: [usize; 3], bytes: &[u8], eb: f64) {
        for (pred, across) in [(Predictor::Lorenzo, true), (Predictor::Lorenzo2d, false)] {
            let (want, want_recon) = visiting_order::<T>(pred, dims, bytes, eb);
            let mut got = Codes::default();
            let mut recon = vec![R::default(); want_recon.len()];
            encode::<T, R>(dims, bytes, eb, 64, across, &mut got, &mut recon);
            assert_eq!(got.codes, want.codes, "{pred:?} {dims:?} codes");
            assert_eq!(got.unpred, want.unpred, "{pred:?} {dims:?} escapes");
            let bits =
                |r: &mut dyn Iterator<Item = f64>| r.map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&mut recon.iter().map(|r| r.get())),
                bits(&mut want_recon.into_iter()),
                "{pred:?} {dims:?} recon"
            );
        }
    }

    /// Noise with steps, escapes (NaN, ±inf, huge jumps) and -0.0 scattered over every row
    /// position, on shapes that leave short row groups, rows shorter than the group, one
    /// column, and several slices: the same codes, escapes and values as visiting order.
    #[test]
    fn interleaved_rows_match_visiting_order() {
        let shapes = [
            [1, 1, 1],
            [1, 1, 9],
            [1, 9, 1],
            [1, 5, 3],
            [1, 6, 7],
            [3, 9, 11],
            [2, 13, 70],
            [4, 8, 8],
            [2, 5, 2],
        ];
        for dims in shapes {
            let n: usize = dims.iter().product();
            let mut s = 0x9e37_79b9_7f4a_7c15u64;
            let mut rnd = || {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s
            };
            let vals: Vec<f64> = (0..n)
                .map(|i| match rnd() % 41 {
                    0 => f64::NAN,
                    1 => f64::INFINITY,
                    2 => -0.0,
                    3 => 1e30,
                    4 => -1e30,
                    _ => (i % 7) as f64 * 3.0 + (rnd() % 1000) as f64 / 100.0,
                })
                .collect();
            for eb in [0.01, 0.5, 4.0] {
                let b32: Vec<u8> = vals
                    .iter()
                    .flat_map(|&v| (v as f32).to_le_bytes())
                    .collect();
                both_orders::<f32, f32>(dims, &b32, eb);
                both_orders::<f32, f64>(dims, &b32, eb);
                let b64: Vec<u8> = vals.iter().flat_map(|&v| v.to_le_bytes()).collect();
                both_orders::<f64, f64>(dims, &b64, eb);
            }
        }
    }
}
