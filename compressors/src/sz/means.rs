//! Block-mean pieces, coded and decoded a block's run at a time.
//!
//! Every element's prediction is its block's stored value, so no element waits on another:
//! the loop runs over the codes and the block values directly, with no visiting-order cursor
//! and no reconstruction buffer (through [`super::predict`]'s generic loop a block-mean piece
//! decoded no faster than a Lorenzo plane, whose elements form a chain). Each element is
//! computed by the same [`ElementDecoder::element`] rule, escapes taken in the same (raster)
//! order, so the values are bit-identical.

use super::predict::MEAN_BLOCK;
use super::quant::{quantise_float, Codes, ElementDecoder, Float};

/// Code a float piece of `dims` (`data`) with the block-mean predictor (`means`, one per
/// block) at bound `eb`: appends its codes and escaped elements to `out`, in raster order,
/// as the general loop does. No reconstruction: nothing predicts from it. float32 runs go
/// four elements at a time with AVX2 where the CPU has it (`perf`: the general loop was 44 %
/// of a detector frame's encode at abs 90, a quantisation per element behind a block lookup).
pub fn encode_block_means<T: Float>(
    dims: [usize; 3],
    data: &[u8],
    (eb, radius): (f64, u32),
    means: &[f64],
    out: &mut Codes,
) {
    let [n0, n1, n2] = dims;
    let (nb1, nb2) = (n1.div_ceil(MEAN_BLOCK), n2.div_ceil(MEAN_BLOCK));
    assert!(
        data.len() >= n0 * n1 * n2 * T::SIZE && means.len() >= n0 * nb1 * nb2,
        "a value for every element and block"
    );
    #[cfg(target_arch = "x86_64")]
    let avx2 = T::SIZE == 4 && std::arch::is_x86_feature_detected!("avx2");
    let mut row = 0usize;
    for i0 in 0..n0 {
        for i1 in 0..n1 {
            let blocks = &means[(i0 * nb1 + i1 / MEAN_BLOCK) * nb2..][..nb2];
            let raw = &data[row * T::SIZE..(row + n2) * T::SIZE];
            let at = out.codes.len();
            out.codes.resize(at + n2, 0);
            let codes = &mut out.codes[at..];
            #[cfg(target_arch = "x86_64")]
            let escaped = if avx2 {
                // SAFETY: the CPU has AVX2; `T` is float32 (the only 4-byte `Float`).
                unsafe { row_avx2(raw, blocks, (eb, radius), codes) }
            } else {
                row_scalar::<T>(raw, blocks, (eb, radius), codes)
            };
            #[cfg(not(target_arch = "x86_64"))]
            let escaped = row_scalar::<T>(raw, blocks, (eb, radius), codes);
            if escaped {
                for (c, v) in codes.iter().zip(raw.chunks_exact(T::SIZE)) {
                    if *c == 0 {
                        out.unpred.extend_from_slice(v);
                    }
                }
            }
            row += n2;
        }
    }
}

/// One row's codes, block by block (`blocks` its predictions); whether any was escaped.
fn row_scalar<T: Float>(raw: &[u8], blocks: &[f64], bound: (f64, u32), codes: &mut [u32]) -> bool {
    let mut escaped = false;
    for (k, (c, v)) in codes.iter_mut().zip(raw.chunks_exact(T::SIZE)).enumerate() {
        *c = quantise_float::<T>(v, blocks[k / MEAN_BLOCK], bound.0, bound.1).0;
        escaped |= *c == 0;
    }
    escaped
}

/// [`row_scalar`] of float32 elements, four at a time where a block's run allows.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_avx2(
    raw: &[u8],
    blocks: &[f64],
    (eb, radius): (f64, u32),
    codes: &mut [u32],
) -> bool {
    use std::arch::x86_64::*;
    let quant = super::quant_avx2::Quant4::new(eb, radius);
    let n = codes.len().min(raw.len() / 4);
    let dp = raw.as_ptr() as *const f32;
    let mut escaped = false;
    for (b, &pred) in blocks.iter().enumerate() {
        let (start, end) = (b * MEAN_BLOCK, ((b + 1) * MEAN_BLOCK).min(n));
        let mut k = start;
        let p4 = _mm256_set1_pd(pred);
        while k + 4 <= end {
            // SAFETY: elements and codes `k..k + 4` exist (`k + 4 <= n`).
            let coded = quant.code(_mm_loadu_ps(dp.add(k)), p4);
            _mm_storeu_si128(codes.as_mut_ptr().add(k) as *mut __m128i, coded.codes);
            escaped |= coded.escaped;
            k += 4;
        }
        for k in k..end {
            codes[k] = quantise_float::<f32>(&raw[k * 4..k * 4 + 4], pred, eb, radius).0;
            escaped |= codes[k] == 0;
        }
    }
    escaped
}

/// Decode a block-mean piece of `dims` from `codes` (one per element) and `means` (one per
/// block) through `d`. Returns false if the codes ask for escaped values the piece does not
/// hold, or the codes or block values are too few.
pub fn decode_block_means<D: ElementDecoder>(
    dims: [usize; 3],
    codes: &[u32],
    means: &[f64],
    d: &mut D,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above), all `decode_block_means_avx2` asks for.
        return unsafe { decode_block_means_avx2(dims, codes, means, d) };
    }
    decode_block_means_body(dims, codes, means, d)
}

/// [`decode_block_means`] four values to a vector (no FMA: the same roundings as the plain
/// build).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn decode_block_means_avx2<D: ElementDecoder>(
    dims: [usize; 3],
    codes: &[u32],
    means: &[f64],
    d: &mut D,
) -> bool {
    decode_block_means_body(dims, codes, means, d)
}

#[inline(always)]
fn decode_block_means_body<D: ElementDecoder>(
    dims: [usize; 3],
    codes: &[u32],
    means: &[f64],
    d: &mut D,
) -> bool {
    let [n0, n1, n2] = dims;
    let n = n0 * n1 * n2;
    let (nb1, nb2) = (n1.div_ceil(MEAN_BLOCK), n2.div_ceil(MEAN_BLOCK));
    if codes.len() < n || means.len() < n0 * nb1 * nb2 {
        return n == 0;
    }
    let mut escapes = 0usize;
    let mut row = 0usize;
    for i0 in 0..n0 {
        for i1 in 0..n1 {
            let blocks = &means[(i0 * nb1 + i1 / MEAN_BLOCK) * nb2..][..nb2];
            for (b, &pred) in blocks.iter().enumerate() {
                let first = row + b * MEAN_BLOCK;
                d.run(
                    first,
                    &codes[first..row + ((b + 1) * MEAN_BLOCK).min(n2)],
                    pred,
                    &mut escapes,
                );
            }
            row += n2;
        }
    }
    !d.bad()
}

#[cfg(test)]
mod tests {
    use super::super::predict::{block_means, Predictor};
    use super::super::quant::{f32_codes, visiting_order, Cursor, FloatDecoder};
    use super::*;

    #[test]
    fn block_means_match_visiting_order() {
        // Noise with steps and escapes (NaN, huge jumps), shapes the blocks do not divide.
        for (dims, eb) in [([1, 40, 37], 0.5), ([2, 17, 16], 0.01), ([1, 1, 5], 1.0)] {
            let n: usize = dims.iter().product();
            let data: Vec<f32> = (0..n)
                .map(|i| match i % 23 {
                    3 => f32::NAN,
                    7 => 1e30,
                    _ => (i % 11) as f32 * 0.7 + (i / 50) as f32,
                })
                .collect();
            let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
            let means = block_means(dims, &data.iter().map(|&v| v as f64).collect::<Vec<_>>());
            let pred = Predictor::BlockMean;
            let codes = f32_codes(pred, dims, &bytes, eb, &means);
            let mut a = vec![0u8; bytes.len()];
            let mut d =
                FloatDecoder::<f32>::new(Cursor::new(&codes.codes, &codes.unpred), eb, 64, &mut a);
            pred.run(dims, &mut vec![0.0; n], &mut d, &means);
            assert!(!d.cur.bad);
            let mut b = vec![0u8; bytes.len()];
            let mut d =
                FloatDecoder::<f32>::new(Cursor::new(&codes.codes, &codes.unpred), eb, 64, &mut b);
            assert!(decode_block_means(dims, &codes.codes, &means, &mut d));
            assert_eq!(a, b, "{dims:?}");
            assert!(!codes.unpred.is_empty());
        }
    }

    /// Runs of block values, four at a time or one by one, code as the visiting-order
    /// encoder does: the same codes and escapes, f32 (both ways) and f64.
    #[test]
    fn block_runs_code_as_the_visiting_order() {
        let shapes = [[1, 40, 37], [2, 17, 16], [1, 1, 5], [3, 33, 70], [1, 16, 3]];
        for (dims, eb) in shapes.into_iter().zip([0.5, 0.01, 1.0, 2.5, 1e-3]) {
            let n: usize = dims.iter().product();
            let vals: Vec<f64> = (0..n)
                .map(|i| match i % 29 {
                    3 => f64::NAN,
                    5 => f64::NEG_INFINITY,
                    7 => 1e30,
                    11 => -0.0,
                    13 => (i / 40) as f64 + 64.0 * 2.0 * eb, // at the code radius
                    _ => (i % 11) as f64 * 0.7 + (i / 50) as f64,
                })
                .collect();
            let means = block_means(dims, &vals);
            let f32_bytes: Vec<u8> = vals
                .iter()
                .flat_map(|&v| (v as f32).to_le_bytes())
                .collect();
            let f64_bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
            let pred = Predictor::BlockMean;
            let want32 = visiting_order::<f32>(pred, dims, &f32_bytes, eb, &means).0;
            let want64 = visiting_order::<f64>(pred, dims, &f64_bytes, eb, &means).0;
            assert!(!want32.unpred.is_empty() && !want64.unpred.is_empty());
            let mut got = Codes::default();
            encode_block_means::<f32>(dims, &f32_bytes, (eb, 64), &means, &mut got);
            assert_eq!(
                (&got.codes, &got.unpred),
                (&want32.codes, &want32.unpred),
                "{dims:?}"
            );
            let mut got = Codes::default();
            encode_block_means::<f64>(dims, &f64_bytes, (eb, 64), &means, &mut got);
            assert_eq!(
                (&got.codes, &got.unpred),
                (&want64.codes, &want64.unpred),
                "{dims:?}"
            );
            // The plain rows, whatever this CPU has.
            let (nb1, nb2) = (dims[1].div_ceil(MEAN_BLOCK), dims[2].div_ceil(MEAN_BLOCK));
            let mut codes = vec![0u32; n];
            for (r, (row, c)) in f32_bytes
                .chunks(4 * dims[2])
                .zip(codes.chunks_mut(dims[2]))
                .enumerate()
            {
                let (i0, i1) = (r / dims[1], r % dims[1]);
                let blocks = &means[(i0 * nb1 + i1 / MEAN_BLOCK) * nb2..][..nb2];
                row_scalar::<f32>(row, blocks, (eb, 64), c);
            }
            assert_eq!(codes, want32.codes, "{dims:?}");
        }
    }

    #[test]
    fn missing_escapes_are_reported() {
        let codes = vec![0u32; 12];
        let mut out = vec![0u8; 48];
        let mut d = FloatDecoder::<f32>::new(Cursor::new(&codes, &[]), 1.0, 8, &mut out);
        assert!(!decode_block_means([1, 3, 4], &codes, &[0.0], &mut d));
    }
}
