//! Row-interleaved coding of Lorenzo pieces.
//!
//! Each value of a Lorenzo piece waits on its left neighbour's reconstruction: an addition, a
//! subtraction, the quantisation (or the code's step), the rounding to the element type (and
//! the encoder's bound check), a chain the core runs one element at a time (`perf`: over half
//! of an `sz(abs=1)` encode of a smooth 3-D field). Element `(r, j)` needs row `r − 1` only up
//! to column `j` (and the slice behind, finished), so [`ROWS`] rows are coded together, each
//! one column behind the row above: independent chains the core overlaps ([`super::plane`]
//! does the same for 2-D planes with a ring of rows). Every prediction is the visiting-order
//! loop's sum, term for term (absent neighbours added as 0.0), so the codes, escapes and
//! values are bit-identical to [`super::predict`]'s. Escapes are stored in visiting order: the
//! encoder keeps each row's apart and appends them in row order, the decoder counts where
//! each row's start from the codes of the rows above.

use super::predict::Recon;
use super::quant::{quantise_float, Codes, ElementDecoder, Float};

/// Rows coded together.
const ROWS: usize = 4;

/// Buffers of the AVX2 row groups, kept by the caller from piece to piece.
#[cfg(target_arch = "x86_64")]
pub type GroupBuffers = super::lorenzo_avx2::Skewed;
/// Buffers of the AVX2 row groups (none on other targets).
#[cfg(not(target_arch = "x86_64"))]
#[derive(Default)]
pub struct GroupBuffers;

/// One side of the coding: what happens to an element, given its prediction.
pub trait RowCoder {
    /// Before a group of `g` rows (at most [`ROWS`]) starting at element `start`, rows of `n2`.
    fn begin(&mut self, start: usize, n2: usize, g: usize);
    /// Element `i`, of the group's row `k`, predicted `pred`: the value later predictions see.
    fn element(&mut self, i: usize, k: usize, pred: f64) -> f64;
    /// After that group.
    fn end(&mut self, g: usize);
    /// Code rows from `start` (`at`: start, rows of `n2`, slices of `s0`; `left` rows left in
    /// the slice; `back`: predicted from the slice behind too) in one go, where this coder
    /// has a faster path for them and `recon` is float32: how many it coded (0 leaves them to
    /// the element loop).
    fn fast_rows(
        &mut self,
        _recon: Option<&mut [f32]>,
        _at: (usize, usize, usize),
        _left: usize,
        _back: bool,
    ) -> usize {
        0
    }
}

/// Visit the `dims` piece with first-order Lorenzo, across slices (3-D) or inside each slice
/// (`across_slices` false), rows interleaved; `recon` receives every value (`dims` elements).
pub fn lorenzo<R: Recon, C: RowCoder>(
    dims: [usize; 3],
    across_slices: bool,
    recon: &mut [R],
    coder: &mut C,
) {
    let [n0, n1, n2] = dims;
    if n0 * n1 * n2 == 0 {
        return;
    }
    let mut piece = Piece {
        s0: n1 * n2,
        s1: n2,
        recon,
        coder,
    };
    for i0 in 0..n0 {
        let base = i0 * n1 * n2;
        if across_slices && i0 > 0 {
            piece.plane::<true>(base, n1);
        } else {
            piece.plane::<false>(base, n1);
        }
    }
}

/// Encode the `dims` piece of float elements `data` into `out` (cleared first) and `recon`:
/// the codes and escapes the visiting-order encoder writes.
pub fn encode<T: Float, R: Recon>(
    dims: [usize; 3],
    data: &[u8],
    (eb, radius): (f64, u32),
    across_slices: bool,
    out: &mut Codes,
    recon: &mut [R],
    groups: &mut GroupBuffers,
) {
    let n = dims.iter().product();
    out.codes.clear();
    out.codes.resize(n, 0);
    out.unpred.clear();
    let mut coder = Encoder::<T> {
        data,
        eb,
        radius,
        out,
        escapes: Default::default(),
        fast: fast_coder::<T>(eb, radius, groups),
        _t: std::marker::PhantomData,
    };
    lorenzo(dims, across_slices, recon, &mut coder);
}

/// Decode the `dims` piece from `codes` (one per element) through `d`, `recon` (`dims`
/// elements) as scratch. Returns false if the codes ask for escaped values the piece does
/// not hold (or are too few).
pub fn decode<R: Recon, D: ElementDecoder>(
    dims: [usize; 3],
    across_slices: bool,
    codes: &[u32],
    recon: &mut [R],
    groups: &mut GroupBuffers,
    d: &mut D,
) -> bool {
    let n: usize = dims.iter().product();
    if codes.len() < n || recon.len() < n {
        return n == 0;
    }
    let mut coder = Decoder {
        d,
        codes,
        escapes: 0,
        at: [0; ROWS],
        #[cfg(target_arch = "x86_64")]
        fast: std::arch::is_x86_feature_detected!("avx2").then_some(groups),
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = groups;
    lorenzo(dims, across_slices, recon, &mut coder);
    !coder.d.bad()
}

/// The encoder: codes written by index, each group row's escapes kept apart.
struct Encoder<'a, T: Float> {
    data: &'a [u8],
    eb: f64,
    radius: u32,
    out: &'a mut Codes,
    escapes: [Vec<u8>; ROWS],
    /// Groups of eight rows at once, for float32 on a CPU with AVX2.
    fast: Option<FastRows<'a>>,
    _t: std::marker::PhantomData<T>,
}

/// What the AVX2 group coder needs: the quantiser's constants and its buffers.
#[cfg(target_arch = "x86_64")]
struct FastRows<'a> {
    quant: super::quant_avx2::Quant4,
    groups: &'a mut GroupBuffers,
}
#[cfg(not(target_arch = "x86_64"))]
struct FastRows<'a>(std::marker::PhantomData<&'a ()>);

/// The AVX2 group coder for float32 elements, where the CPU has AVX2.
fn fast_coder<T: Float>(eb: f64, radius: u32, groups: &mut GroupBuffers) -> Option<FastRows<'_>> {
    #[cfg(target_arch = "x86_64")]
    if T::DIGITS == f32::MANTISSA_DIGITS as i32 && std::arch::is_x86_feature_detected!("avx2") {
        return Some(FastRows {
            // SAFETY: the CPU has AVX2 (checked just above).
            quant: unsafe { super::quant_avx2::Quant4::new(eb, radius) },
            groups,
        });
    }
    let _ = (eb, radius, groups);
    None
}

impl<T: Float> RowCoder for Encoder<'_, T> {
    fn begin(&mut self, _start: usize, _n2: usize, _g: usize) {}

    #[inline(always)]
    fn element(&mut self, i: usize, k: usize, pred: f64) -> f64 {
        let raw = &self.data[i * T::SIZE..(i + 1) * T::SIZE];
        let (code, v) = quantise_float::<T>(raw, pred, self.eb, self.radius);
        if code == 0 {
            self.escapes[k].extend_from_slice(raw);
        }
        self.out.codes[i] = code;
        v
    }

    fn end(&mut self, g: usize) {
        for e in &mut self.escapes[..g] {
            self.out.unpred.extend_from_slice(e);
            e.clear();
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn fast_rows(
        &mut self,
        recon: Option<&mut [f32]>,
        at: (usize, usize, usize),
        left: usize,
        back: bool,
    ) -> usize {
        use super::lorenzo_avx2::{encode_rows, ROWS};
        let (Some(fast), Some(recon), true) = (&mut self.fast, recon, left >= ROWS) else {
            return 0;
        };
        // SAFETY: `fast` exists only where the CPU has AVX2 and the elements are float32
        // (`fast_coder`); `at` starts ROWS rows of its slice with a row above them, and a
        // slice behind when `back` (`Piece::plane`). The escapes of the groups before were
        // appended (`end`), so these follow in visiting order.
        unsafe {
            encode_rows(
                self.data,
                recon,
                &mut self.out.codes,
                &mut self.out.unpred,
                at,
                back,
                &fast.quant,
                fast.groups,
            )
        };
        ROWS
    }
}

/// The decoder: each group row's next escape position, counted from the codes above it.
struct Decoder<'a, D: ElementDecoder> {
    d: &'a mut D,
    codes: &'a [u32],
    /// Escapes of the rows done.
    escapes: usize,
    at: [usize; ROWS],
    /// The AVX2 row groups' buffers, where the CPU has AVX2 (used when the decoder has
    /// [`ElementDecoder::float32_parts`]).
    #[cfg(target_arch = "x86_64")]
    fast: Option<&'a mut GroupBuffers>,
}

impl<D: ElementDecoder> RowCoder for Decoder<'_, D> {
    fn begin(&mut self, start: usize, n2: usize, g: usize) {
        self.at[0] = self.escapes;
        for k in 1..g {
            let above = &self.codes[start + (k - 1) * n2..start + k * n2];
            self.at[k] = self.at[k - 1] + above.iter().filter(|&&c| c == 0).count();
        }
    }

    #[inline(always)]
    fn element(&mut self, i: usize, k: usize, pred: f64) -> f64 {
        self.d.element(i, self.codes[i], pred, &mut self.at[k])
    }

    fn end(&mut self, g: usize) {
        self.escapes = self.at[g - 1];
    }

    #[cfg(target_arch = "x86_64")]
    fn fast_rows(
        &mut self,
        recon: Option<&mut [f32]>,
        at: (usize, usize, usize),
        left: usize,
        back: bool,
    ) -> usize {
        use super::lorenzo_avx2::{decode_rows, ROWS};
        let (Some(groups), Some(recon), true) = (&mut self.fast, recon, left >= ROWS) else {
            return 0;
        };
        let Some(parts) = self.d.float32_parts() else {
            return 0;
        };
        // SAFETY: `fast` exists only where the CPU has AVX2; `at` starts ROWS rows of its
        // slice with a row above them, and a slice behind when `back` (`Piece::plane`); the
        // codes cover the piece (`decode` checked).
        let decoded = unsafe {
            decode_rows(
                (self.codes, parts.unpred),
                &mut self.escapes,
                parts.out,
                recon,
                at,
                back,
                (parts.eb, parts.radius),
                groups,
            )
        };
        match decoded {
            None => 0,
            Some(true) => ROWS,
            Some(false) => {
                *parts.bad = true;
                ROWS
            }
        }
    }
}

/// A piece being coded: its strides, reconstruction and coder.
struct Piece<'a, R: Recon, C: RowCoder> {
    /// Strides of a slice and of a row.
    s0: usize,
    s1: usize,
    recon: &'a mut [R],
    coder: &'a mut C,
}

impl<R: Recon, C: RowCoder> Piece<'_, R, C> {
    /// The slice of `n1` rows at element `base`; `BACK`: predicted from the slice behind too.
    fn plane<const BACK: bool>(&mut self, base: usize, n1: usize) {
        let n2 = self.s1;
        // The first row: no row above, one chain.
        self.coder.begin(base, n2, 1);
        let mut left = 0.0;
        for j in 0..n2 {
            left = self.element::<BACK>(base + j, 0, false, j > 0, left);
        }
        self.coder.end(1);
        let mut r = 1;
        while r < n1 {
            let at = (base + r * n2, n2, self.s0);
            let fast = self
                .coder
                .fast_rows(R::as_f32_mut(self.recon), at, n1 - r, BACK);
            if fast > 0 {
                r += fast;
                continue;
            }
            let g = ROWS.min(n1 - r);
            self.coder.begin(base + r * n2, n2, g);
            self.rows::<BACK>(base + r * n2, g);
            self.coder.end(g);
            r += g;
        }
    }

    /// Rows `start..` (`g ≤ ROWS` of them, each with a row above), row `k` one column behind
    /// row `k − 1`.
    #[inline(always)]
    fn rows<const BACK: bool>(&mut self, start: usize, g: usize) {
        let n2 = self.s1;
        let mut left = [0.0f64; ROWS];
        // Row k is k columns behind row 0: it starts at step k and ends at step n2 − 1 + k.
        for t in 0..n2 + g - 1 {
            if g == ROWS && t >= ROWS && t < n2 {
                // Every row has a column with a left neighbour: a loop of constant length the
                // compiler unrolls, so the rows' `left` values stay in registers.
                for (k, l) in left.iter_mut().enumerate() {
                    let i = start + k * n2 + t - k;
                    *l = self.element::<BACK>(i, k, true, true, *l);
                }
                continue;
            }
            let rows = t.saturating_sub(n2 - 1)..g.min(t + 1);
            for (k, l) in left.iter_mut().enumerate().take(rows.end).skip(rows.start) {
                let j = t - k;
                let i = start + k * n2 + j;
                *l = self.element::<BACK>(i, k, true, j > 0, *l);
            }
        }
    }

    /// Element `i` of group row `k`: predicted as the visiting-order loop does (`up`: it has
    /// a row above, `has_left`: a column to its left, whose value is `left`), coded, its
    /// value stored and returned.
    #[inline(always)]
    fn element<const BACK: bool>(
        &mut self,
        i: usize,
        k: usize,
        up: bool,
        has_left: bool,
        left: f64,
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
        let v = self.coder.element(i, k, pred);
        self.recon[i] = R::set(v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::super::predict::Predictor;
    use super::super::quant::{visiting_order, Cursor, FloatDecoder};
    use super::*;

    /// The codes decoded in visiting order and rows interleaved: the same bytes.
    /// (`R`: the decoder's values as the encoder's were: float32 ones take the AVX2 groups.)
    fn decode_both_orders<T: Float, R: Recon + Default>(
        pred: Predictor,
        dims: [usize; 3],
        codes: &Codes,
        eb: f64,
    ) {
        let n: usize = dims.iter().product();
        let mut a = vec![0u8; n * T::SIZE];
        let mut d =
            FloatDecoder::<T>::new(Cursor::new(&codes.codes, &codes.unpred), eb, 64, &mut a);
        pred.run(dims, &mut vec![0.0; n], &mut d, &[]);
        assert!(!d.cur.bad);
        let mut b = vec![0u8; n * T::SIZE];
        let mut d =
            FloatDecoder::<T>::new(Cursor::new(&codes.codes, &codes.unpred), eb, 64, &mut b);
        let across = pred == Predictor::Lorenzo;
        assert!(decode(
            dims,
            across,
            &codes.codes,
            &mut vec![R::default(); n],
            &mut GroupBuffers::default(),
            &mut d
        ));
        assert_eq!(a, b, "{pred:?} {dims:?} decoded");
        // One escape fewer than the codes ask for: refused, not read past.
        if !codes.unpred.is_empty() {
            let short = &codes.unpred[..codes.unpred.len() - T::SIZE];
            let mut d = FloatDecoder::<T>::new(Cursor::new(&codes.codes, short), eb, 64, &mut b);
            assert!(!decode(
                dims,
                across,
                &codes.codes,
                &mut vec![R::default(); n],
                &mut GroupBuffers::default(),
                &mut d
            ));
        }
    }

    fn both_orders<T: Float, R: Recon + Default>(dims: [usize; 3], bytes: &[u8], eb: f64) {
        for (pred, across) in [(Predictor::Lorenzo, true), (Predictor::Lorenzo2d, false)] {
            let (want, want_recon) = visiting_order::<T>(pred, dims, bytes, eb, &[]);
            let mut got = Codes::default();
            let mut recon = vec![R::default(); want_recon.len()];
            let groups = &mut GroupBuffers::default();
            encode::<T, R>(dims, bytes, (eb, 64), across, &mut got, &mut recon, groups);
            assert_eq!(got.codes, want.codes, "{pred:?} {dims:?} codes");
            assert_eq!(got.unpred, want.unpred, "{pred:?} {dims:?} escapes");
            decode_both_orders::<T, R>(pred, dims, &got, eb);
            // A code no stream of ours holds (past 2^31): the same values on every path.
            let mut odd = Codes {
                codes: got.codes.clone(),
                unpred: got.unpred.clone(),
            };
            // (An element that was not escaped: the escapes stay as many as the codes ask.)
            if let Some(c) = odd.codes.iter_mut().rev().find(|c| **c != 0) {
                *c = u32::MAX;
                decode_both_orders::<T, R>(pred, dims, &odd, eb);
            }
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
    /// column, and several slices: the same codes, escapes and values as visiting order
    /// (float32 pieces take the AVX2 groups of eight rows where the CPU has it).
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
            // Groups of eight rows (the AVX2 path) and what is left after them.
            [3, 20, 33],
            [2, 9, 1],
            [2, 10, 2],
            [2, 17, 5],
        ];
        for dims in shapes {
            let n: usize = dims.iter().product();
            let mut rnd = crate::test_rng::xorshift(0x9e37_79b9_7f4a_7c15);
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
