//! Lines of interpolation levels, four elements at a time with AVX2 where the CPU has it
//! (checked at run time), two with SSE2 otherwise: the same bits either way.
//!
//! An interpolation level's pass codes, in each row, elements `2s` apart along the last
//! axis (`s` the level's step), each predicted from elements of coarser levels or earlier
//! passes (along whichever axis the pass runs), so a line's predictions do not depend on each
//! other. Seven eighths of a piece's elements are on the finest level (`s = 1`). The scalar
//! loop spent about 20 cycles an element there (`perf`: the field at bound 10, three
//! quarters of the encode in `interp`). Here several are predicted, quantised and checked at
//! once with the same IEEE operations in the same order (negation as a sign flip, the
//! rounding by the same magic constant, the same float32 rounding of the reconstruction and
//! the same bound check), so codes, escapes and values are bit-identical to
//! [`super::quant::FloatEncoder`]'s `next` (tested against it). SSE2 pairs took the 256³
//! field's encode at bound 90 from ~170 to ~133 ms on one core; AVX2's four lanes to ~95 ms
//! (the lines across the last axis read rows or slices far apart and wait on memory), the
//! coarser levels' lines to ~90–96 ms. The decoder takes the same lines one element at a
//! time, through [`predict`], without the general loop's index work.

/// A line of one interpolation level: elements `first + gap·k` for `k < count` along the
/// last axis, each predicted from the elements `reach` and (cubic) `3·reach` before and after
/// it, all of which exist and were coded before the line (so its predictions do not depend
/// on each other).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    pub first: usize,
    pub count: usize,
    pub reach: usize,
    pub gap: usize,
    pub cubic: bool,
    /// How far the next line of the pass starts (in elements), for the encoder to ask for its
    /// rows while it codes this one; 0: no next line, or one the hardware finds itself.
    pub next: usize,
}

impl Line {
    /// The line's elements, in order.
    pub fn elements(self) -> impl Iterator<Item = usize> {
        (self.first..).step_by(self.gap).take(self.count)
    }

    /// Where the encoder asks for the next line's rows ([`ask_next_line`]): at the elements `k`
    /// (a group of four's first) with `k & mask == 0`, once per 64 bytes the line moves on, on
    /// lines of gap 2 and 4 that have a next line (coarser levels are small); `None`: never.
    /// A mask, not `k % (16 / gap)`: the kernel checks it every group, where two integer
    /// divisions cost 3% of the field's encode at bound 90. The decoder, whose passes along
    /// the slowest axis are as slow, was no faster with the same requests (its element loop
    /// waits on something else): it does not ask.
    #[inline(always)]
    pub fn ask_mask(self) -> Option<usize> {
        match self.gap {
            2 | 4 if self.next != 0 => Some(16 / self.gap - 1),
            _ => None,
        }
    }
}

/// Ask for the cache lines the pass's next line will read and write at the place of element
/// `p` of `line`: its neighbours `reach` (and `3·reach`) around, its value (float32 in
/// `values`, the input) and its reconstruction. A line across the last axis reads rows of four
/// planes or rows, and writes one, that no stream the hardware prefetcher follows leads to:
/// the 256³ field's passes along its middle axis took twice as long per value as those along
/// its last, along its slowest three times (with the loads and stores of those rows sent to a
/// buffer in L1 instead, a third as long). Asked for one line ahead, its encode at bound 90
/// went 96–99 → 79–82 ms on one core.
#[inline(always)]
pub fn ask_next_line(recon: *const f32, values: *const u8, p: usize, line: Line) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is a hint that never faults, and `wrapping_add`/`wrapping_sub`
        // compute addresses (past the data too, at a pass's last line) without dereferencing.
        let ask = |a: *const f32| unsafe { _mm_prefetch::<_MM_HINT_T0>(a as *const i8) };
        let (q, reach) = (p + line.next, line.reach);
        ask(recon.wrapping_add(q).wrapping_sub(reach));
        ask(recon.wrapping_add(q + reach));
        if line.cubic {
            ask(recon.wrapping_add(q).wrapping_sub(3 * reach));
            ask(recon.wrapping_add(q + 3 * reach));
        }
        ask(recon.wrapping_add(q));
        ask((values as *const f32).wrapping_add(q));
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (recon, values, p, line);
}

/// The prediction of element `p` of a float32 reconstruction from the elements `reach` and
/// (cubic) `3·reach` around it: the interpolation rule, one element.
#[inline(always)]
pub fn predict(f: &[f32], p: usize, reach: usize, cubic: bool) -> f64 {
    let (l, r) = (f[p - reach] as f64, f[p + reach] as f64);
    if cubic {
        (-(f[p - 3 * reach] as f64) + 9.0 * l + 9.0 * r - f[p + 3 * reach] as f64) / 16.0
    } else {
        (l + r) / 2.0
    }
}

/// Whether lines of elements `T` with values `R` are float32 both (`T` the only 4-byte
/// [`Float`](super::quant::Float)).
pub fn float32_lines<T: super::quant::Float, R: super::predict::Recon>() -> bool {
    T::SIZE == 4 && R::as_f32_mut(&mut []).is_some()
}

/// Code `line` of a float32 piece (`data`) with a float32 reconstruction `f` at bound `eb`:
/// writes its codes in order to `codes` (`line.count` of them) and returns whether any
/// element was escaped (its code 0; the caller stores the escaped elements' bytes in order).
#[cfg(target_arch = "x86_64")]
pub fn line(
    data: &[u8],
    f: &mut [f32],
    line: Line,
    (eb, radius): (f64, u32),
    codes: &mut [u32],
) -> bool {
    let avx2 = std::arch::is_x86_feature_detected!("avx2");
    line_with(avx2, data, f, line, (eb, radius), codes)
}

/// [`line`], four elements at a time with AVX2 where `avx2` (the CPU has it), the rest two
/// at a time with SSE2.
#[cfg(target_arch = "x86_64")]
fn line_with(
    avx2: bool,
    data: &[u8],
    f: &mut [f32],
    line: Line,
    (eb, radius): (f64, u32),
    codes: &mut [u32],
) -> bool {
    use std::arch::x86_64::*;
    let Line {
        first,
        count,
        reach,
        gap,
        cubic,
        ..
    } = line;
    assert_eq!(codes.len(), count, "one code per element of the line");
    let at = |f: &[f32], p: usize| f[p] as f64;
    let x_at =
        |p: usize| f32::from_le_bytes(data[p * 4..p * 4 + 4].try_into().expect("4 bytes")) as f64;
    let mut escaped = false;
    let mut k = 0;
    if avx2 {
        // SAFETY: the caller checked that the CPU has AVX2.
        (k, escaped) = unsafe { super::interp_avx2::encode(data, f, line, (eb, radius), codes) };
    }
    // SAFETY: SSE2 is part of x86_64; these intrinsics only compute on registers.
    unsafe {
        let sign = _mm_set1_pd(-0.0);
        let (nine, sixteen, half) = (_mm_set1_pd(9.0), _mm_set1_pd(16.0), _mm_set1_pd(2.0));
        let inv = _mm_set1_pd(0.5 / eb);
        let step = _mm_set1_pd(2.0 * eb);
        let bound = _mm_set1_pd(eb);
        let magic = _mm_set1_pd(super::quant::ROUND_MAGIC);
        let big = _mm_set1_pd(super::quant::ROUND_BELOW);
        let lim = _mm_set1_pd(radius as f64);
        let inf = _mm_set1_pd(f64::INFINITY);
        let abs = |v: __m128d| _mm_andnot_pd(sign, v);
        while k + 2 <= count {
            // Lanes: element k (low) and k + 1 (high).
            let (p0, p1) = (first + gap * k, first + gap * (k + 1));
            let l = _mm_set_pd(at(f, p1 - reach), at(f, p0 - reach));
            let r = _mm_set_pd(at(f, p1 + reach), at(f, p0 + reach));
            let pred = if cubic {
                let a = _mm_set_pd(at(f, p1 - 3 * reach), at(f, p0 - 3 * reach));
                let b = _mm_set_pd(at(f, p1 + 3 * reach), at(f, p0 + 3 * reach));
                // (-a + 9·l + 9·r − b) / 16, left to right, as the scalar expression.
                let s = _mm_add_pd(_mm_xor_pd(a, sign), _mm_mul_pd(nine, l));
                let s = _mm_sub_pd(_mm_add_pd(s, _mm_mul_pd(nine, r)), b);
                _mm_div_pd(s, sixteen)
            } else {
                _mm_div_pd(_mm_add_pd(l, r), half)
            };
            let x = _mm_set_pd(x_at(p1), x_at(p0));
            // round(): (v + M) − M below 2^51 in magnitude, v itself above.
            let v = _mm_mul_pd(_mm_sub_pd(x, pred), inv);
            let rounded = _mm_sub_pd(_mm_add_pd(v, magic), magic);
            let small = _mm_cmplt_pd(abs(v), big);
            let q = _mm_or_pd(_mm_and_pd(small, rounded), _mm_andnot_pd(small, v));
            // The reconstruction rounded to float32, checked in that precision.
            let rec = _mm_cvtps_pd(_mm_cvtpd_ps(_mm_add_pd(pred, _mm_mul_pd(q, step))));
            let ok = _mm_and_pd(
                _mm_cmplt_pd(abs(q), lim),
                _mm_cmple_pd(abs(_mm_sub_pd(rec, x)), bound),
            );
            // An escaped element is seen as itself, or 0 when not finite.
            let finite = _mm_cmplt_pd(abs(x), inf);
            let seen = _mm_or_pd(
                _mm_and_pd(ok, rec),
                _mm_andnot_pd(ok, _mm_and_pd(finite, x)),
            );
            let mask = _mm_movemask_pd(ok);
            let mut qs = [0f64; 2];
            _mm_storeu_pd(qs.as_mut_ptr(), q);
            let mut vs = [0f64; 2];
            _mm_storeu_pd(vs.as_mut_ptr(), seen);
            for (lane, p) in [p0, p1].into_iter().enumerate() {
                let code = if mask & (1 << lane) != 0 {
                    (qs[lane] as i64 + radius as i64) as u32
                } else {
                    escaped = true;
                    0
                };
                codes[k + lane] = code;
                f[p] = vs[lane] as f32;
            }
            k += 2;
        }
    }
    // An odd one left: the scalar rule.
    if k < count {
        let p = first + gap * k;
        let pred = predict(f, p, reach, cubic);
        let (code, v) =
            super::quant::quantise_float::<f32>(&data[p * 4..p * 4 + 4], pred, eb, radius);
        codes[k] = code;
        escaped |= code == 0;
        f[p] = v as f32;
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::super::predict::{Levels, Predictor};
    use super::super::quant::{Codes, Cursor, FloatDecoder, FloatEncoder};

    /// Codes, escapes and values of an interpolated float32 piece with an f32 reconstruction
    /// (this path) and an f64 one (the scalar loop): the same, on noise with NaN, ±inf, −0.0
    /// and jumps that escape, rows of odd and even lengths, short rows, tight and loose bounds.
    #[test]
    fn rows_at_once_match_the_scalar_loop() {
        let mut rnd = crate::test_rng::xorshift(0x2545_f491_4f6c_dd1d);
        let shapes = [
            [1, 1, 9],
            [1, 3, 10],
            [2, 9, 33],
            [3, 7, 64],
            [1, 5, 4],
            [1, 4, 5],
            [2, 6, 7],
            // Lines longer than a batch of 32 groups.
            [1, 3, 300],
            [3, 2, 290],
        ];
        // Around 1e6 float32's step (0.0625) exceeds the tighter bounds: there the float32
        // rounding of a reconstruction decides its bound check.
        for (dims, offset) in shapes.into_iter().flat_map(|d| [(d, 0.0f32), (d, 1e6)]) {
            let n: usize = dims.iter().product();
            let vals: Vec<f32> = (0..n)
                .map(|i| match rnd() % 37 {
                    0 => f32::NAN,
                    1 => f32::NEG_INFINITY,
                    2 => -0.0,
                    3 => 3e30,
                    _ => {
                        offset + ((i % 11) as f32 * 0.7).sin() * 40.0 + (rnd() % 100) as f32 * 0.05
                    }
                })
                .collect();
            let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
            for pred in [Predictor::InterpCubic, Predictor::InterpLinear] {
                for eb in [1e-3, 0.02, 0.3, 5.0] {
                    let run = |narrow: bool| {
                        let mut codes = Codes::default();
                        let mut q = FloatEncoder::<f32> {
                            data: &bytes,
                            eb,
                            base: eb,
                            radius: 32,
                            out: &mut codes,
                            _t: std::marker::PhantomData,
                        };
                        let values: Vec<u64> = if narrow {
                            let mut r = vec![0f32; n];
                            pred.run_with(dims, &mut r, &mut q, &[], Levels::CANDIDATES[1]);
                            r.iter().map(|v| (*v as f64).to_bits()).collect()
                        } else {
                            let mut r = vec![0f64; n];
                            pred.run_with(dims, &mut r, &mut q, &[], Levels::CANDIDATES[1]);
                            r.iter().map(|v| v.to_bits()).collect()
                        };
                        (codes.codes, codes.unpred, values)
                    };
                    let narrow = run(true);
                    assert_eq!(
                        narrow,
                        run(false),
                        "{pred:?} {dims:?} eb {eb} offset {offset}"
                    );
                    let (codes, unpred, _) = narrow;
                    // Decoded through the lines (f32 values) and one by one (f64): same bytes.
                    let decode = |narrow: bool, codes: &[u32]| {
                        let mut out = vec![0u8; n * 4];
                        let cur = Cursor::new(codes, &unpred);
                        let mut d = FloatDecoder::<f32>::new(cur, eb, 32, &mut out);
                        let levels = Levels::CANDIDATES[1];
                        if narrow {
                            pred.run_with(dims, &mut vec![0f32; n], &mut d, &[], levels);
                        } else {
                            pred.run_with(dims, &mut vec![0f64; n], &mut d, &[], levels);
                        }
                        assert!(!d.cur.bad);
                        out
                    };
                    assert_eq!(
                        decode(true, &codes),
                        decode(false, &codes),
                        "{pred:?} {dims:?} eb {eb} decoded"
                    );
                    // A crafted stream's codes beyond 2^31 (the lanes' 32-bit integers
                    // cannot hold them): the same bytes both ways still.
                    let crafted: Vec<u32> = codes
                        .iter()
                        .enumerate()
                        .map(|(i, &c)| {
                            if i % 13 == 5 && c != 0 {
                                c | 1 << 31
                            } else {
                                c
                            }
                        })
                        .collect();
                    assert_eq!(
                        decode(true, &crafted),
                        decode(false, &crafted),
                        "{pred:?} {dims:?} eb {eb} crafted"
                    );
                }
            }
        }
    }

    /// Four lanes (AVX2) and two (SSE2): the same codes, escape flag and values, along the
    /// last axis (reach 1, where a group's loads meet the group before's places) and across,
    /// on lines long and short, with NaN, ±inf, −0.0 and values that escape. Fails when a
    /// lane's rule or the write-back places are off.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_lines_match_sse2_lines() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let mut rnd = crate::test_rng::xorshift(0x9e37_79b9_7f4a_7c15);
        let n = 4096;
        let mut value = move |scale: f32| match rnd() % 41 {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => -0.0,
            3 => -3e30,
            k => (k as f32 * 0.37).sin() * scale + (rnd() % 1000) as f32 * 1e-3,
        };
        let lines = [
            (1, 1),
            (1, 5),
            (1, 64),
            (1, 1000),
            (3, 37),
            (64, 20),
            (200, 3),
        ];
        for ((reach, count), gap) in lines.into_iter().flat_map(|l| [(l, 2), (l, 4), (l, 16)]) {
            let first = 3 * reach + 1;
            if first + gap * count + 3 * reach > n {
                continue;
            }
            for cubic in [true, false] {
                for eb in [1e-3, 0.4, 30.0] {
                    let data: Vec<u8> = (0..n).flat_map(|_| value(50.0).to_le_bytes()).collect();
                    let f0: Vec<f32> = (0..n).map(|_| value(50.0)).collect();
                    let run = |avx2: bool| {
                        let (mut f, mut codes) = (f0.clone(), vec![7u32; count]);
                        let line = super::Line {
                            first,
                            count,
                            reach,
                            gap,
                            cubic,
                            // Prefetches past the data change nothing.
                            next: 4096,
                        };
                        let esc = super::line_with(avx2, &data, &mut f, line, (eb, 64), &mut codes);
                        let bits: Vec<u32> = f.iter().map(|v| v.to_bits()).collect();
                        (esc, codes, bits)
                    };
                    let what = format!("reach {reach} count {count} gap {gap} {cubic} {eb}");
                    assert_eq!(run(true), run(false), "{what}");
                }
            }
        }
    }
}
