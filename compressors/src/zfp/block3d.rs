//! Whole 3-D float32 blocks of at most 16 bit planes decoded from their planes in registers
//! (AVX2), as [`super::block2d`] decodes 2-D ones: each plane, as the bit reader yields it,
//! is spread over the 64 values' 16-bit lanes (four vectors). Lane j picks the byte of the
//! plane that holds its coefficient's bit (a byte shuffle) and tests the bit; the lanes then
//! hold the planes read, widened to 32 bits and shifted into place at the end.
//!
//! `perf` of a 3-D decode of a smooth field at an absolute bound of 90 (about a dozen planes a
//! block) put a fifth of the time in the plane transposes and the per-value negabinary and
//! reordering between the planes and the transform. The integers are those of
//! [`super::block::decode_ints`] (tested).

use super::block;
use crate::bits::BitReader;
use roibin_registry::Result;
use std::arch::x86_64::*;

/// Most planes a block may hold to be decoded here: the planes read fit a 16-bit lane.
pub const MAX_PLANES: u32 = 16;

/// Per natural-order 16-bit lane of a 3-D block, the byte of a plane that holds its
/// coefficient's bit (a shuffle index; the lane's high byte is zeroed) and that bit in it.
/// Made once a piece from the block order.
pub struct Lanes {
    byte: [__m256i; 4],
    bit: [__m256i; 4],
}

impl Lanes {
    /// From `perm` (sequency position → natural index, a 3-D block's 64).
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn new(perm: &[usize]) -> Lanes {
        let (mut byte, mut bit) = ([0u16; 64], [0u16; 64]);
        for (i, &p) in perm.iter().enumerate() {
            // The shuffle's high byte index 0x80 zeroes the lane's high byte.
            byte[p] = 0x8000 | (i / 8) as u16;
            bit[p] = 1 << (i % 8);
        }
        // SAFETY: sixteen u16 of each array for each vector.
        let load =
            |a: &[u16], v: usize| unsafe { _mm256_loadu_si256(a[16 * v..].as_ptr() as *const _) };
        Lanes {
            byte: std::array::from_fn(|v| load(&byte, v)),
            bit: std::array::from_fn(|v| load(&bit, v)),
        }
    }
}

/// Decode a whole 3-D float32 block's planes down to `kmin` (no bit budget, at most
/// [`MAX_PLANES`] of them) into `ints`, its coefficients in natural order, as
/// [`block::decode_ints`] does.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn decode_ints(
    r: &mut BitReader<'_>,
    kmin: u32,
    lanes: &Lanes,
    ints: &mut [i64; 64],
) -> Result<()> {
    debug_assert!(32 - kmin <= MAX_PLANES);
    let mut acc = [_mm256_setzero_si256(); 4];
    // Planes from the top: each lane doubles and takes its bit of the plane (a set bit makes
    // the comparison's -1, subtracted).
    block::read_planes_with(r, 64, 32, kmin, |_, x| {
        let x = _mm256_set1_epi64x(x as i64);
        for (v, a) in acc.iter_mut().enumerate() {
            let bit = _mm256_and_si256(_mm256_shuffle_epi8(x, lanes.byte[v]), lanes.bit[v]);
            let set = _mm256_cmpeq_epi16(bit, lanes.bit[v]);
            *a = _mm256_sub_epi16(_mm256_add_epi16(*a, *a), set);
        }
    })?;
    // Planes below kmin are zero; then from negabinary (as `nb32_to_int`, lane-wise).
    let count = _mm_cvtsi32_si128(kmin as i32);
    let nb = _mm256_set1_epi32(0xaaaa_aaaau32 as i32);
    for (v, a) in acc.into_iter().enumerate() {
        let halves = [_mm256_castsi256_si128(a), _mm256_extracti128_si256::<1>(a)];
        for (h, half) in halves.into_iter().enumerate() {
            let u = _mm256_sll_epi32(_mm256_cvtepu16_epi32(half), count);
            let int = _mm256_sub_epi32(_mm256_xor_si256(u, nb), nb);
            let quads = [
                _mm256_castsi256_si128(int),
                _mm256_extracti128_si256::<1>(int),
            ];
            for (q, quad) in quads.into_iter().enumerate() {
                let at = 16 * v + 8 * h + 4 * q;
                let out = &mut ints[at..at + 4];
                // SAFETY: `out` is four i64.
                unsafe {
                    _mm256_storeu_si256(
                        out.as_mut_ptr() as *mut __m256i,
                        _mm256_cvtepi32_epi64(quad),
                    )
                };
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zfp::block::{Planes, Scratch};

    /// Blocks coded with every precision up to [`MAX_PLANES`], from sparse to dense and small
    /// to wrapping coefficients, then a sentinel: the same integers and the same bits read as
    /// the scalar decode.
    #[test]
    fn matches_the_scalar_decode() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let mut rnd = crate::test_rng::xorshift(0x3d3d_0bad_beef_0001);
        let (perm, pl) = (block::sequency(3), Planes { intprec: 32 });
        // SAFETY: AVX2 checked above.
        let lanes = unsafe { Lanes::new(perm) };
        for round in 0..2000 {
            let shift = rnd() % 32;
            let ints: Vec<i64> = (0..64).map(|_| (rnd() as i32 as i64) >> shift).collect();
            let prec = round % (MAX_PLANES + 1);
            let mut scratch = Scratch::default();
            let mut w = block::coded(&ints, prec);
            w.put(0x5a, 8);
            let bytes = w.finish();
            let mut r = BitReader::new(&bytes, "zfp");
            let mut want = [0i64; 64];
            block::decode_ints(&mut r, &mut want, perm, pl, prec, u64::MAX, &mut scratch).unwrap();
            let mut r = BitReader::new(&bytes, "zfp");
            let mut got = [0i64; 64];
            // SAFETY: AVX2 checked above.
            unsafe { decode_ints(&mut r, 32 - prec, &lanes, &mut got) }.unwrap();
            assert_eq!(got, want, "round {round}");
            assert_eq!(r.get(8).unwrap(), 0x5a, "round {round}: bits read");
        }
    }
}
