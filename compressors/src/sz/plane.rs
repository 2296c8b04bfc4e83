//! Row-interleaved decoding of 2-D Lorenzo planes.
//!
//! Each value of a Lorenzo plane waits on its left neighbour: an addition, a subtraction, the
//! quantised step and the rounding to the element type, a chain of about twenty cycles that
//! the core runs one element at a time (a quarter of a `bin(2,2)|sz` decode, `perf`). Row
//! `r + 1` at column `j` needs row `r` only up to column `j`, so [`ROWS`] rows are decoded
//! together, each one column behind the row above: independent chains the core overlaps.
//! Every element is computed by the same operations in the same order as
//! [`super::predict`]'s visiting-order loop, so the values are bit-identical; only the order
//! in which elements are visited changes, and with it where each row's escaped values start
//! (counted from the codes).

use super::quant::ElementDecoder;

/// Rows decoded together.
const ROWS: usize = 4;

/// Rows of reconstructed values a plane's decode keeps: a group's rows and the row above them.
/// A ring of them (a few KB, in L1) instead of the whole piece: the values are read only by
/// the next row, and a frame-sized f64 buffer was 8 bytes written and read per element.
pub const RING: usize = ROWS + 1;

/// Decode `planes` Lorenzo planes of `n1 × n2` elements (a C-order piece) from `codes` (one
/// per element) through `d`; `recon` is scratch of at least [`RING`] rows of `n2`. Returns
/// false if the codes ask for escaped values the piece does not hold.
pub fn decode_planes<D: ElementDecoder>(
    planes: usize,
    n1: usize,
    n2: usize,
    codes: &[u32],
    recon: &mut [f64],
    d: &mut D,
) -> bool {
    let n = planes * n1 * n2;
    if n2 == 0 || codes.len() < n || recon.len() < RING * n2 {
        return n == 0;
    }
    // Escapes are stored in visiting order: `escapes` counts those of the rows already done.
    let mut escapes = 0usize;
    for p in 0..planes {
        let base = p * n1 * n2;
        if d.lorenzo_plane(base, n1, n2, codes, recon) {
            continue;
        }
        first_row(base, n2, codes, recon, d, &mut escapes);
        let mut r = 1;
        while r < n1 {
            let g = ROWS.min(n1 - r);
            rows(base, r, g, n2, codes, recon, d, &mut escapes);
            r += g;
        }
    }
    !d.bad()
}

/// Where plane row `r`'s values sit in the ring.
#[inline(always)]
fn ring_row(r: usize, n2: usize) -> usize {
    (r % RING) * n2
}

/// The plane's first row: no row above, one chain.
fn first_row<D: ElementDecoder>(
    row: usize,
    n2: usize,
    codes: &[u32],
    recon: &mut [f64],
    d: &mut D,
    escapes: &mut usize,
) {
    let mut left = d.element(row, codes[row], 0.0, escapes);
    recon[0] = left;
    for j in 1..n2 {
        // `+ 0.0 - 0.0`, as the visiting-order loop adds the absent neighbours: a -0.0 turns
        // into +0.0 there, and so here.
        left = d.element(row + j, codes[row + j], left + 0.0 - 0.0, escapes);
        recon[j] = left;
    }
}

/// Rows `r..r + g` (`g ≤ ROWS`, `r ≥ 1`) of the plane at element `base`, row `k` one column
/// behind row `k - 1`.
#[allow(clippy::too_many_arguments)]
fn rows<D: ElementDecoder>(
    base: usize,
    r: usize,
    g: usize,
    n2: usize,
    codes: &[u32],
    recon: &mut [f64],
    d: &mut D,
    escapes: &mut usize,
) {
    let start = base + r * n2;
    // Where each row's escapes start: after those of the rows above it.
    let mut e = [0usize; ROWS];
    e[0] = *escapes;
    for k in 1..g {
        let above = start + (k - 1) * n2;
        e[k] = e[k - 1] + codes[above..above + n2].iter().filter(|&&c| c == 0).count();
    }
    let mut left = [0.0f64; ROWS];
    let rings: [(usize, usize); ROWS] =
        std::array::from_fn(|k| (ring_row(r + k, n2), ring_row(r + k + RING - 1, n2)));
    let mut step = |t: usize, k: usize, left: &mut [f64; ROWS], e: &mut [usize; ROWS]| {
        element(
            start + k * n2,
            rings[k],
            t - k,
            codes,
            recon,
            d,
            &mut left[k],
            &mut e[k],
        )
    };
    // Row k is k columns behind row 0: it starts at step k and ends at step n2 - 1 + k.
    for t in 0..n2 + g - 1 {
        if g == ROWS && t >= ROWS - 1 && t < n2 {
            // Every row has a column: a loop of constant length the compiler unrolls, so the
            // rows' `left` values stay in registers.
            for k in 0..ROWS {
                step(t, k, &mut left, &mut e);
            }
            continue;
        }
        for k in t.saturating_sub(n2 - 1)..g.min(t + 1) {
            step(t, k, &mut left, &mut e);
        }
    }
    *escapes = e[g - 1];
}

/// Element `j` of the row at element `row` (not a plane's first row), whose values go to
/// ring offset `cur` with the row above at `up`; `left` its row's last value.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn element<D: ElementDecoder>(
    row: usize,
    (cur, up): (usize, usize),
    j: usize,
    codes: &[u32],
    recon: &mut [f64],
    d: &mut D,
    left: &mut f64,
    e: &mut usize,
) {
    let i = row + j;
    // The visiting-order loop's sums, term for term: (left + up) − up-left.
    let pred = if j == 0 {
        0.0 + recon[up] - 0.0
    } else {
        *left + recon[up + j] - recon[up + j - 1]
    };
    let v = d.element(i, codes[i], pred, e);
    recon[cur + j] = v;
    *left = v;
}

#[cfg(test)]
mod tests {
    use super::super::predict::Predictor;
    use super::super::quant::{f32_codes, Codes, Cursor, FloatDecoder, IntDecoder, IntEncoder};
    use super::*;

    /// Codes of `data` under a Lorenzo predictor, decoded in visiting order and row-interleaved:
    /// the bytes must be identical.
    fn both_orders_f32(dims: [usize; 3], data: &[f32], eb: f64) {
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        let n = data.len();
        let pred = if dims[0] > 1 {
            Predictor::Lorenzo2d
        } else {
            Predictor::Lorenzo
        };
        let codes = f32_codes(pred, dims, &bytes, eb, &[]);
        let mut a = vec![0u8; bytes.len()];
        let mut d =
            FloatDecoder::<f32>::new(Cursor::new(&codes.codes, &codes.unpred), eb, 64, &mut a);
        pred.run(dims, &mut vec![0.0; n], &mut d, &[]);
        assert!(!d.cur.bad);
        let mut b = vec![0u8; bytes.len()];
        let mut d =
            FloatDecoder::<f32>::new(Cursor::new(&codes.codes, &codes.unpred), eb, 64, &mut b);
        assert!(decode_planes(
            dims[0],
            dims[1],
            dims[2],
            &codes.codes,
            &mut vec![0.0; RING * dims[2]],
            &mut d
        ));
        assert_eq!(a, b);
    }

    #[test]
    fn interleaved_rows_match_visiting_order() {
        // Noise with steps, escapes (NaN, huge jumps) and -0.0 in every row position, over
        // row counts that leave a short last group.
        for (dims, eb) in [
            ([1, 9, 13], 0.5),
            ([3, 6, 5], 0.01),
            ([2, 1, 7], 1.0),
            ([1, 5, 1], 0.1),
        ] {
            let n: usize = dims.iter().product();
            let data: Vec<f32> = (0..n)
                .map(|i| match i % 17 {
                    3 => f32::NAN,
                    5 => -0.0,
                    8 => 1e9,
                    _ => ((i * 7919) % 23) as f32 * 0.37 - 4.0,
                })
                .collect();
            both_orders_f32(dims, &data, eb);
        }
    }

    /// Escape-free planes whose step `2·eb` is an odd integer times a power of two decode in
    /// integers (`lorenzo_plane` takes them) to the same bytes as visiting order; planes whose
    /// values outgrow f32's exact integers, or whose step has too many digits, do not.
    #[test]
    fn exact_planes_match_visiting_order() {
        let mut next = crate::test_rng::xorshift(0x853c_49e6_748f_ea9bu64);
        let radius = 512u32;
        // (eb, dims, steps spread around the centre, largest step first, taken, every how
        // many rows one is all "no change" (0: none; such a row repeats the row above's values)
        let cases = [
            (0.5, [1, 33, 47], 40, false, true, 0),
            (0.5, [1, 33, 47], 40, false, true, 3),
            (90.0, [3, 20, 31], 511, false, true, 0),
            (90.0, [3, 20, 31], 511, false, true, 2),
            (0.375, [2, 9, 64], 7, false, true, 0),
            (1.0 / 2048.0, [1, 16, 16], 40, false, true, 0),
            (0.1, [1, 12, 12], 40, false, false, 0),
            // Codes of a steady slope: the values pass 2^24 units and must round as f32 does.
            (0.5, [1, 700, 700], 0, true, false, 0),
        ];
        for (eb, dims, spread, grow, taken, quiet) in cases {
            let n: usize = dims.iter().product();
            let codes: Vec<u32> = (0..n)
                .map(|i| {
                    if quiet > 0 && (i / dims[2]) % quiet == 0 {
                        radius
                    } else if grow {
                        radius + 41
                    } else {
                        radius - spread + (next() % (2 * spread as u64 + 1)) as u32
                    }
                })
                .collect();
            let mut a = vec![0u8; n * 4];
            let mut d = FloatDecoder::<f32>::new(Cursor::new(&codes, &[]), eb, radius, &mut a);
            Predictor::Lorenzo2d.run(dims, &mut vec![0.0; n], &mut d, &[]);
            assert!(!d.cur.bad);
            let mut b = vec![0u8; n * 4];
            let mut d = FloatDecoder::<f32>::new(Cursor::new(&codes, &[]), eb, radius, &mut b);
            let mut ring = vec![0.0; RING * dims[2]];
            assert!(decode_planes(
                dims[0], dims[1], dims[2], &codes, &mut ring, &mut d
            ));
            assert!(a == b, "eb {eb}, {dims:?}");
            let mut c = vec![0u8; n * 4];
            let mut d = FloatDecoder::<f32>::new(Cursor::new(&codes, &[]), eb, radius, &mut c);
            let plane = dims[1] * dims[2];
            assert_eq!(
                d.lorenzo_plane(0, dims[1], dims[2], &codes, &mut ring),
                taken,
                "eb {eb}"
            );
            if taken {
                assert!(c[..plane * 4] == a[..plane * 4], "eb {eb}, {dims:?}");
            }
        }
    }

    /// Steps with 31 significant bits, the largest codes and rows wide enough that a row's
    /// integer sum could leave i64: the plane goes the element-wise way, with the same bytes.
    #[test]
    fn planes_whose_sums_could_overflow_are_left_to_visiting_order() {
        let radius = 1u32 << 20;
        let eb = ((1u64 << 31) - 1) as f64 * 2f64.powi(-41);
        let dims = [1, 3, 4096];
        let n: usize = dims.iter().product();
        let codes: Vec<u32> = (0..n as u32)
            .map(|i| if i % 2 == 0 { 2 * radius - 1 } else { 1 })
            .collect();
        let mut ring = vec![0.0; RING * dims[2]];
        let mut a = vec![0u8; n * 4];
        let mut d = FloatDecoder::<f32>::new(Cursor::new(&codes, &[]), eb, radius, &mut a);
        assert!(!d.lorenzo_plane(0, dims[1], dims[2], &codes, &mut ring));
        Predictor::Lorenzo2d.run(dims, &mut vec![0.0; n], &mut d, &[]);
        let mut b = vec![0u8; n * 4];
        let mut d = FloatDecoder::<f32>::new(Cursor::new(&codes, &[]), eb, radius, &mut b);
        assert!(decode_planes(
            dims[0], dims[1], dims[2], &codes, &mut ring, &mut d
        ));
        assert!(a == b);
    }

    #[test]
    fn interleaved_rows_match_for_integers() {
        let dims = [2, 7, 11];
        let n: usize = dims.iter().product();
        let data: Vec<u8> = (0..n as u32)
            .map(|i| {
                if i % 13 == 4 {
                    u32::MAX
                } else {
                    i.wrapping_mul(2654435761) % 97
                }
            })
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mut codes = Codes::default();
        let mut q = IntEncoder::<u32> {
            data: &data,
            eb: 2,
            base: 2,
            radius: 16,
            out: &mut codes,
            _t: std::marker::PhantomData,
        };
        Predictor::Lorenzo2d.run(dims, &mut vec![0.0; n], &mut q, &[]);
        let mut a = vec![0u8; data.len()];
        let mut d = IntDecoder::<u32>::new(Cursor::new(&codes.codes, &codes.unpred), 2, 16, &mut a);
        Predictor::Lorenzo2d.run(dims, &mut vec![0.0; n], &mut d, &[]);
        let mut b = vec![0u8; data.len()];
        let mut d = IntDecoder::<u32>::new(Cursor::new(&codes.codes, &codes.unpred), 2, 16, &mut b);
        assert!(decode_planes(
            2,
            7,
            11,
            &codes.codes,
            &mut vec![0.0; RING * 11],
            &mut d
        ));
        assert_eq!(a, b);
        let words = |v: &[u8]| -> Vec<i64> {
            v.chunks_exact(4)
                .map(|w| u32::from_le_bytes(w.try_into().unwrap()) as i64)
                .collect()
        };
        assert!(words(&a)
            .iter()
            .zip(words(&data))
            .all(|(x, y)| (x - y).abs() <= 2));
    }

    #[test]
    fn missing_escapes_are_reported() {
        let codes = vec![0u32; 12];
        let mut out = vec![0u8; 48];
        let mut d = FloatDecoder::<f32>::new(Cursor::new(&codes, &[]), 1.0, 8, &mut out);
        assert!(!decode_planes(
            1,
            3,
            4,
            &codes,
            &mut [0.0; RING * 4],
            &mut d
        ));
    }
}
