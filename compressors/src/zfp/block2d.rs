//! Whole 2-D float32 blocks in registers (AVX2), both ways: decoded from their bit planes to
//! their four rows out, and their transformed integers encoded to bit planes, without the
//! transposes and the stores and reloads between the steps.
//!
//! Frames are coded in 2-D blocks, and at the bounds users pick most blocks hold a few bit
//! planes (six, on Eiger-like frames at an absolute bound of 90). `perf` of such a decode put
//! a third of the time between the planes and the values: transposing the planes, storing the
//! values, reloading them (in vectors, which waits for the scalar stores) to transform them.
//! Here each plane, as the bit reader yields it, is spread over the sixteen values' lanes at
//! once: lane j takes the plane's bit for the coefficient it holds in sequency order (a
//! per-lane shift), so the values come out in natural order, already in registers. The
//! encoder gathers the integers into sequency order with two lane permutes and takes each
//! plane as the lanes' sign bits. The integers and bits are those of
//! [`super::block::decode_ints`], [`super::block::inverse`] and [`super::block::encode_ints`]
//! (tested).

use super::{block, lift4, widen};
use crate::bits::BitReader;
use roibin_registry::Result;
use std::arch::x86_64::*;

/// A 2-D block's order in lanes, made once a piece from `perm` (sequency position → natural
/// index): for decoding, per natural-order lane the sequency position of its coefficient (the
/// shift that brings its bit of a plane down to bit 0); for encoding, per sequency-order lane
/// the natural index it takes its value from.
#[derive(Clone, Copy)]
pub struct Lanes {
    lo: __m256i,
    hi: __m256i,
    from_lo: __m256i,
    from_hi: __m256i,
}

impl Lanes {
    /// From `perm`, a 2-D block's 16.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn new(perm: &[usize]) -> Lanes {
        let (mut at, mut from) = ([0i32; 16], [0i32; 16]);
        for (i, &p) in perm.iter().enumerate() {
            at[p] = i as i32;
            from[i] = p as i32;
        }
        // SAFETY: eight i32 from each half of `at` and `from`.
        let load = |h: &[i32]| unsafe { _mm256_loadu_si256(h[..8].as_ptr() as *const __m256i) };
        Lanes {
            lo: load(&at[..8]),
            hi: load(&at[8..]),
            from_lo: load(&from[..8]),
            from_hi: load(&from[8..]),
        }
    }
}

/// The bit planes `kmin..32` of a whole 2-D block of transformed integers (natural order, as
/// [`super::lift4::forward_2d`] leaves them), as [`super::block::encode_ints`] makes them:
/// `planes[k]` holds bit k of the negabinary digits of the coefficients in sequency order.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn planes(ints: &[i64; 16], kmin: u32, lanes: Lanes, planes: &mut [u64; 64]) {
    // The low halves of the sixteen integers (all that 32-bit negabinary keeps), natural order.
    let low = _mm256_setr_epi32(0, 2, 4, 6, 0, 0, 0, 0);
    // SAFETY: each row is four i64 of `ints`.
    let row = |y: usize| unsafe {
        let v = _mm256_loadu_si256(ints[4 * y..4 * y + 4].as_ptr() as *const __m256i);
        _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(v, low))
    };
    let nb = _mm256_set1_epi32(0xaaaa_aaaau32 as i32);
    let negabinary = |v| _mm256_xor_si256(_mm256_add_epi32(v, nb), nb);
    let lo = negabinary(_mm256_set_m128i(row(1), row(0)));
    let hi = negabinary(_mm256_set_m128i(row(3), row(2)));
    // Sequency order: each lane takes its value from the half that holds it.
    let gather = |from: __m256i| {
        let upper = _mm256_cmpgt_epi32(from, _mm256_set1_epi32(7));
        _mm256_blendv_epi8(
            _mm256_permutevar8x32_epi32(lo, from),
            _mm256_permutevar8x32_epi32(hi, from),
            upper,
        )
    };
    let (mut a, mut b) = (gather(lanes.from_lo), gather(lanes.from_hi));
    // From the top plane down: each plane is the lanes' sign bits, then the next bit up.
    for k in (kmin..32).rev() {
        let bits = |v| _mm256_movemask_ps(_mm256_castsi256_ps(v)) as u32 as u64;
        planes[k as usize] = bits(a) | bits(b) << 8;
        a = _mm256_add_epi32(a, a);
        b = _mm256_add_epi32(b, b);
    }
}

/// Decode a whole 2-D float32 block's planes down to `kmin` (no bit budget), transform it
/// back and store its values times `scale` as float32 rows of four at the element offsets
/// `rows`. Returns false when a value does not fit the vector store (a damaged stream's):
/// then `ints` holds the block's transformed integers (natural order) for the per-value path.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn decode(
    r: &mut BitReader<'_>,
    kmin: u32,
    lanes: Lanes,
    scale: f64,
    rows: impl Iterator<Item = usize>,
    dst: &mut [u8],
    ints: &mut [i64; 16],
) -> Result<bool> {
    let one = _mm256_set1_epi32(1);
    let (mut lo, mut hi) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    // Planes from the top: each value doubles and takes its bit of the plane.
    block::read_planes_with(r, 16, 32, kmin, |_, x| {
        let x = _mm256_set1_epi32(x as i32);
        let bit = |at| _mm256_and_si256(_mm256_srlv_epi32(x, at), one);
        lo = _mm256_or_si256(_mm256_add_epi32(lo, lo), bit(lanes.lo));
        hi = _mm256_or_si256(_mm256_add_epi32(hi, hi), bit(lanes.hi));
    })?;
    // Planes below kmin are zero; then from negabinary (as `nb32_to_int`, lane-wise).
    let count = _mm_cvtsi32_si128(kmin as i32);
    let nb = _mm256_set1_epi32(0xaaaa_aaaau32 as i32);
    let int = |v| _mm256_sub_epi32(_mm256_xor_si256(_mm256_sll_epi32(v, count), nb), nb);
    let (lo, hi) = (int(lo), int(hi));
    let wide = |v: __m256i, upper: bool| {
        _mm256_cvtepi32_epi64(if upper {
            _mm256_extracti128_si256::<1>(v)
        } else {
            _mm256_castsi256_si128(v)
        })
    };
    let block = [
        wide(lo, false),
        wide(lo, true),
        wide(hi, false),
        wide(hi, true),
    ];
    let block = lift4::inverse_2d_rows(block);
    if widen::narrow_row_vectors(block, scale, rows, dst) {
        return Ok(true);
    }
    for (y, v) in block.into_iter().enumerate() {
        // SAFETY: `ints[4 * y..4 * y + 4]` is four i64.
        unsafe { _mm256_storeu_si256(ints[4 * y..4 * y + 4].as_mut_ptr() as *mut __m256i, v) };
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::BitWriter;
    use crate::zfp::block::{Planes, Scratch};

    /// The 2-D block's lanes, where the CPU has AVX2 (the tests pass trivially elsewhere).
    fn avx2_lanes() -> Option<Lanes> {
        std::arch::is_x86_feature_detected!("avx2")
            // SAFETY: AVX2 checked just before.
            .then(|| unsafe { Lanes::new(block::sequency(2)) })
    }

    /// Blocks coded with every precision, from sparse to dense and small to wrapping
    /// coefficients, then a sentinel: the registers' decode reads the same bits, stores the
    /// float32 the scalar path stores, and where the values do not fit hands back the scalar
    /// path's integers.
    #[test]
    fn matches_the_scalar_decode() {
        let Some(lanes) = avx2_lanes() else {
            return;
        };
        let mut rnd = crate::test_rng::xorshift(0x0bad_cafe_f00d_d00d);
        let (perm, pl) = (block::sequency(2), Planes { intprec: 32 });
        let (mut fell_back, mut stored) = (0, 0);
        for round in 0..3000 {
            let shift = rnd() % 32;
            let ints: Vec<i64> = (0..16).map(|_| (rnd() as i32 as i64) >> shift).collect();
            let prec = (round % 33) as u32;
            let mut w = block::coded(&ints, prec);
            w.put(0x5a, 8);
            let bytes = w.finish();
            let scale = 2f64.powi((rnd() % 41) as i32 - 20);
            // Rows of four at element offsets 0, 9, 18, 27 of a 36-value frame.
            let rows = (0..4).map(|y| 9 * y);

            let mut r = BitReader::new(&bytes, "zfp");
            let mut want = [0i64; 16];
            block::decode_ints(
                &mut r,
                &mut want,
                perm,
                pl,
                prec,
                u64::MAX,
                &mut Scratch::default(),
            )
            .unwrap();
            assert_eq!(r.get(8).unwrap(), 0x5a, "round {round}");
            block::inverse(&mut want, 2);

            let mut r = BitReader::new(&bytes, "zfp");
            let (mut got, mut frame) = ([0i64; 16], vec![0u8; 36 * 4]);
            // SAFETY: AVX2 checked above.
            let ok = unsafe { decode(&mut r, 32 - prec, lanes, scale, rows, &mut frame, &mut got) }
                .unwrap();
            assert_eq!(r.get(8).unwrap(), 0x5a, "round {round}: bits read");
            if ok {
                stored += 1;
                for (i, &v) in want.iter().enumerate() {
                    let at = 9 * (i / 4) + i % 4;
                    let f = (v as f64 * scale) as f32;
                    assert_eq!(frame[4 * at..4 * at + 4], f.to_le_bytes(), "round {round}");
                }
            } else {
                fell_back += 1;
                assert_eq!(got, want, "round {round}");
                assert!(want.iter().any(|&v| v != v as i32 as i64));
            }
        }
        // Both ways were taken.
        assert!(
            stored > 1000 && fell_back > 10,
            "{stored} stored, {fell_back} fell back"
        );
    }

    /// The planes taken from registers code a block as [`block::encode_ints`] does, for every
    /// precision and for coefficients small, large and past 32 bits (of which 32-bit
    /// negabinary keeps the low half).
    #[test]
    fn planes_code_what_encode_ints_codes() {
        let Some(lanes) = avx2_lanes() else {
            return;
        };
        let mut rnd = crate::test_rng::xorshift(0x5eed_1234_abcd_ef01);
        for round in 0..2000 {
            let shift = rnd() % 40;
            let ints: [i64; 16] = std::array::from_fn(|_| (rnd() as i64) >> (24 + shift));
            let prec = (round % 33) as u32;
            let want = block::coded(&ints, prec);
            let mut got = BitWriter::default();
            let mut planes = [0u64; 64];
            // SAFETY: AVX2 checked above.
            unsafe { super::planes(&ints, 32 - prec, lanes, &mut planes) };
            block::write_planes(&mut got, &planes, 16, 32, 32 - prec);
            assert_eq!(got.finish(), want.finish(), "round {round}, {ints:?}");
        }
    }
}
