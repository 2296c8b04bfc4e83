//! Decoding of block-mean pieces.
//!
//! Every element's prediction is its block's stored value, so no element waits on another:
//! the loop runs over the codes and the block values directly, with no visiting-order cursor
//! and no reconstruction buffer (through [`super::predict`]'s generic loop a block-mean piece
//! decoded no faster than a Lorenzo plane, whose elements form a chain). Each element is
//! computed by the same [`ElementDecoder::element`] rule, escapes taken in the same (raster)
//! order, so the values are bit-identical.

use super::predict::MEAN_BLOCK;
use super::quant::ElementDecoder;

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
    use super::super::quant::{f32_codes, Cursor, FloatDecoder};
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

    #[test]
    fn missing_escapes_are_reported() {
        let codes = vec![0u32; 12];
        let mut out = vec![0u8; 48];
        let mut d = FloatDecoder::<f32>::new(Cursor::new(&codes, &[]), 1.0, 8, &mut out);
        assert!(!decode_block_means([1, 3, 4], &codes, &[0.0], &mut d));
    }
}
