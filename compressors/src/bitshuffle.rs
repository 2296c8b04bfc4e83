//! `bitshuffle(block, threads)`: bit-plane transpose inside blocks of elements, so that the
//! mostly-zero high bits of photon counts become long runs of zero bytes.
//!
//! Layout of one block of `m` elements (m a multiple of 8) of `n` bytes: `8n` rows of `m/8`
//! bytes; row `8b + k` holds bit `k` of byte `b` of every element. A final run of fewer than 8
//! elements is copied as is.

use crate::permute::{Permutation, Permute};
use rayon::prelude::*;
use roibin_registry::options::THREADS;
use roibin_registry::{
    threads, Accepts, Codec, CodecInfo, Config, Error, OptionSpec, OptionType, Result,
};

/// Bitshuffle configuration.
#[derive(Debug, Clone)]
pub struct Bitshuffle {
    /// Elements per block (multiple of 8); 0 = 8 KiB worth of elements.
    pub block: usize,
    pub threads: usize,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "block",
        ty: OptionType::Int {
            min: 0,
            max: 1 << 24,
        },
        default: "0",
        doc:
            "elements per block, a multiple of 8 (0 = 8 KiB of elements, as the bitshuffle library)",
    },
    THREADS,
];

/// Transpose the 8×8 bit matrix held in `x` (byte i = row i).
#[inline]
pub(crate) fn transpose8(mut x: u64) -> u64 {
    let t = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AA;
    x = x ^ t ^ (t << 7);
    let t = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCC;
    x = x ^ t ^ (t << 14);
    let t = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0;
    x ^ t ^ (t << 28)
}

/// Split `m` elements of `N` bytes into `N` byte planes of `m` bytes.
fn byte_planes<const N: usize>(src: &[u8], planes: &mut [u8]) {
    let m = src.len() / N;
    let (p, _) = planes.split_at_mut(m * N);
    for (i, e) in src.chunks_exact(N).enumerate() {
        for b in 0..N {
            p[b * m + i] = e[b];
        }
    }
}

/// Inverse of [`byte_planes`].
fn interleave<const N: usize>(planes: &[u8], dst: &mut [u8]) {
    let m = dst.len() / N;
    for (i, e) in dst.chunks_exact_mut(N).enumerate() {
        for b in 0..N {
            e[b] = planes[b * m + i];
        }
    }
}

/// Bit-transpose one byte plane of `m` bytes into 8 rows of `m/8` bytes (row k = bit k).
fn plane_to_rows(plane: &[u8], rows: &mut [u8]) {
    let row = plane.len() / 8;
    let mut g = 0;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SSE2 is part of x86_64: movemask collects the top bit of 16 bytes at once.
        while g + 2 <= row {
            unsafe {
                let mut v = _mm_loadu_si128(plane.as_ptr().add(g * 8) as *const __m128i);
                for k in (0..8).rev() {
                    let bits = _mm_movemask_epi8(v) as u16;
                    rows[k * row + g..k * row + g + 2].copy_from_slice(&bits.to_le_bytes());
                    v = _mm_add_epi8(v, v);
                }
            }
            g += 2;
        }
    }
    while g < row {
        let x = u64::from_le_bytes(plane[g * 8..g * 8 + 8].try_into().expect("8"));
        let y = transpose8(x).to_le_bytes();
        for k in 0..8 {
            rows[k * row + g] = y[k];
        }
        g += 1;
    }
}

/// Inverse of [`plane_to_rows`].
/// SSE2 kernels (SSE2 is part of x86_64).
#[cfg(target_arch = "x86_64")]
// Lane-indexed loops read more plainly than iterator chains over several vector arrays.
#[allow(clippy::needless_range_loop)]
mod sse2 {
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn is_zero(x: __m128i) -> bool {
        _mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_setzero_si128())) == 0xFFFF
    }

    /// Rebuild 128 elements of one byte plane from its 8 bit rows: take 16 bytes of each row at
    /// `rows[k * row + g..]`, transpose that 8×16 byte matrix with unpacks so each 64-bit lane
    /// holds byte i of rows 0-7, then transpose the 8×8 bit matrix inside every lane. Output
    /// vector j holds elements 16j..16j+15 of the group.
    ///
    /// # Safety
    /// `rows` must hold `7 * row + g + 16` bytes.
    #[inline(always)]
    pub unsafe fn plane_group(rows: &[u8], row: usize, g: usize) -> [__m128i; 8] {
        debug_assert!(7 * row + g + 16 <= rows.len());
        let r = |k: usize| _mm_loadu_si128(rows.as_ptr().add(k * row + g) as *const __m128i);
        let (r0, r1, r2, r3, r4, r5, r6, r7) = (r(0), r(1), r(2), r(3), r(4), r(5), r(6), r(7));
        // Photon counts leave whole bit planes empty: skip the transposes for them.
        if is_zero(_mm_or_si128(
            _mm_or_si128(_mm_or_si128(r0, r1), _mm_or_si128(r2, r3)),
            _mm_or_si128(_mm_or_si128(r4, r5), _mm_or_si128(r6, r7)),
        )) {
            return [_mm_setzero_si128(); 8];
        }
        let (p01l, p01h) = (_mm_unpacklo_epi8(r0, r1), _mm_unpackhi_epi8(r0, r1));
        let (p23l, p23h) = (_mm_unpacklo_epi8(r2, r3), _mm_unpackhi_epi8(r2, r3));
        let (p45l, p45h) = (_mm_unpacklo_epi8(r4, r5), _mm_unpackhi_epi8(r4, r5));
        let (p67l, p67h) = (_mm_unpacklo_epi8(r6, r7), _mm_unpackhi_epi8(r6, r7));
        let q = [
            (
                _mm_unpacklo_epi16(p01l, p23l),
                _mm_unpacklo_epi16(p45l, p67l),
            ),
            (
                _mm_unpackhi_epi16(p01l, p23l),
                _mm_unpackhi_epi16(p45l, p67l),
            ),
            (
                _mm_unpacklo_epi16(p01h, p23h),
                _mm_unpacklo_epi16(p45h, p67h),
            ),
            (
                _mm_unpackhi_epi16(p01h, p23h),
                _mm_unpackhi_epi16(p45h, p67h),
            ),
        ];
        let c1 = _mm_set1_epi64x(0x00AA_00AA_00AA_00AA);
        let c2 = _mm_set1_epi64x(0x0000_CCCC_0000_CCCC);
        let c3 = _mm_set1_epi64x(0x0000_0000_F0F0_F0F0);
        let mut out = [_mm_setzero_si128(); 8];
        for (j, (a, b)) in q.into_iter().enumerate() {
            for (h, mut x) in [_mm_unpacklo_epi32(a, b), _mm_unpackhi_epi32(a, b)]
                .into_iter()
                .enumerate()
            {
                let t = _mm_and_si128(_mm_xor_si128(x, _mm_srli_epi64(x, 7)), c1);
                x = _mm_xor_si128(x, _mm_xor_si128(t, _mm_slli_epi64(t, 7)));
                let t = _mm_and_si128(_mm_xor_si128(x, _mm_srli_epi64(x, 14)), c2);
                x = _mm_xor_si128(x, _mm_xor_si128(t, _mm_slli_epi64(t, 14)));
                let t = _mm_and_si128(_mm_xor_si128(x, _mm_srli_epi64(x, 28)), c3);
                out[2 * j + h] = _mm_xor_si128(x, _mm_xor_si128(t, _mm_slli_epi64(t, 28)));
            }
        }
        out
    }

    /// Unshuffle a whole block of 1-, 2- or 4-byte elements straight into interleaved
    /// elements, 128 at a time, with no byte-plane intermediate.
    ///
    /// # Safety
    /// `src.len() == dst.len() == m * elem`, `elem` in {1, 2, 4}, `m % 128 == 0`.
    pub unsafe fn unshuffle_block(src: &[u8], elem: usize, dst: &mut [u8]) {
        let m = src.len() / elem;
        let row = m / 8;
        let plane = |b: usize, g: usize| plane_group(&src[b * 8 * row..], row, g);
        let out = dst.as_mut_ptr();
        for g in (0..row).step_by(16) {
            let base = out.add(g * 8 * elem);
            match elem {
                1 => {
                    for (j, v) in plane(0, g).into_iter().enumerate() {
                        _mm_storeu_si128(base.add(16 * j) as *mut __m128i, v);
                    }
                }
                2 => {
                    let (p0, p1) = (plane(0, g), plane(1, g));
                    for j in 0..8 {
                        _mm_storeu_si128(
                            base.add(32 * j) as *mut __m128i,
                            _mm_unpacklo_epi8(p0[j], p1[j]),
                        );
                        _mm_storeu_si128(
                            base.add(32 * j + 16) as *mut __m128i,
                            _mm_unpackhi_epi8(p0[j], p1[j]),
                        );
                    }
                }
                _ => {
                    let (p0, p1, p2, p3) = (plane(0, g), plane(1, g), plane(2, g), plane(3, g));
                    for j in 0..8 {
                        let (a, b) = (
                            _mm_unpacklo_epi8(p0[j], p1[j]),
                            _mm_unpackhi_epi8(p0[j], p1[j]),
                        );
                        let (c, d) = (
                            _mm_unpacklo_epi8(p2[j], p3[j]),
                            _mm_unpackhi_epi8(p2[j], p3[j]),
                        );
                        let o = base.add(64 * j) as *mut __m128i;
                        _mm_storeu_si128(o, _mm_unpacklo_epi16(a, c));
                        _mm_storeu_si128(o.add(1), _mm_unpackhi_epi16(a, c));
                        _mm_storeu_si128(o.add(2), _mm_unpacklo_epi16(b, d));
                        _mm_storeu_si128(o.add(3), _mm_unpackhi_epi16(b, d));
                    }
                }
            }
        }
    }

    /// Bit-transpose 128 elements of one byte plane (8 vectors, vector j = elements
    /// 16j..16j+15) and store the 8 rows of 16 bytes at `rows[k * row + g..]`: the inverse of
    /// [`plane_group`]. Lanes are fed in the order that makes the unpack network a transpose.
    ///
    /// # Safety
    /// `rows` must hold `7 * row + g + 16` bytes.
    #[inline(always)]
    pub unsafe fn store_plane_group(v: [__m128i; 8], rows: &mut [u8], row: usize, g: usize) {
        debug_assert!(7 * row + g + 16 <= rows.len());
        let c1 = _mm_set1_epi64x(0x00AA_00AA_00AA_00AA);
        let c2 = _mm_set1_epi64x(0x0000_CCCC_0000_CCCC);
        let c3 = _mm_set1_epi64x(0x0000_0000_F0F0_F0F0);
        let t8 = |mut x: __m128i| {
            let t = _mm_and_si128(_mm_xor_si128(x, _mm_srli_epi64(x, 7)), c1);
            x = _mm_xor_si128(x, _mm_xor_si128(t, _mm_slli_epi64(t, 7)));
            let t = _mm_and_si128(_mm_xor_si128(x, _mm_srli_epi64(x, 14)), c2);
            x = _mm_xor_si128(x, _mm_xor_si128(t, _mm_slli_epi64(t, 14)));
            let t = _mm_and_si128(_mm_xor_si128(x, _mm_srli_epi64(x, 28)), c3);
            _mm_xor_si128(x, _mm_xor_si128(t, _mm_slli_epi64(t, 28)))
        };
        let any = v
            .iter()
            .fold(_mm_setzero_si128(), |a, &x| _mm_or_si128(a, x));
        if is_zero(any) {
            let zero = _mm_setzero_si128();
            for k in 0..8 {
                _mm_storeu_si128(rows.as_mut_ptr().add(k * row + g) as *mut __m128i, zero);
            }
            return;
        }
        // After t8, lane i of the group holds byte k = row k's byte i: a 16×8 byte matrix.
        let w: [__m128i; 8] = [
            t8(v[0]),
            t8(v[2]),
            t8(v[4]),
            t8(v[6]),
            t8(v[1]),
            t8(v[3]),
            t8(v[5]),
            t8(v[7]),
        ];
        let mut c = [_mm_setzero_si128(); 4];
        let mut d = [_mm_setzero_si128(); 4];
        for j in 0..4 {
            let a = _mm_unpacklo_epi8(w[j], w[j + 4]);
            let b = _mm_unpackhi_epi8(w[j], w[j + 4]);
            c[j] = _mm_unpacklo_epi8(a, b);
            d[j] = _mm_unpackhi_epi8(a, b);
        }
        let dst = rows.as_mut_ptr();
        let out = |k: usize, x: __m128i| _mm_storeu_si128(dst.add(k * row + g) as *mut __m128i, x);
        for (half, q) in [c, d].into_iter().enumerate() {
            let lo = (
                _mm_unpacklo_epi32(q[0], q[1]),
                _mm_unpacklo_epi32(q[2], q[3]),
            );
            let hi = (
                _mm_unpackhi_epi32(q[0], q[1]),
                _mm_unpackhi_epi32(q[2], q[3]),
            );
            out(4 * half, _mm_unpacklo_epi64(lo.0, lo.1));
            out(4 * half + 1, _mm_unpackhi_epi64(lo.0, lo.1));
            out(4 * half + 2, _mm_unpacklo_epi64(hi.0, hi.1));
            out(4 * half + 3, _mm_unpackhi_epi64(hi.0, hi.1));
        }
    }

    /// Split 16 bytes of 2-byte lanes into their low and high bytes (two vectors of lanes in,
    /// 16 low bytes and 16 high bytes out).
    #[inline(always)]
    unsafe fn split16(a: __m128i, b: __m128i) -> (__m128i, __m128i) {
        let m = _mm_set1_epi16(0xff);
        (
            _mm_packus_epi16(_mm_and_si128(a, m), _mm_and_si128(b, m)),
            _mm_packus_epi16(_mm_srli_epi16(a, 8), _mm_srli_epi16(b, 8)),
        )
    }

    /// Shuffle a whole block of 1-, 2- or 4-byte elements, 128 at a time, with no byte-plane
    /// intermediate: the inverse of [`unshuffle_block`].
    ///
    /// # Safety
    /// `src.len() == dst.len() == m * elem`, `elem` in {1, 2, 4}, `m % 128 == 0`.
    pub unsafe fn shuffle_block(src: &[u8], elem: usize, dst: &mut [u8]) {
        let m = src.len() / elem;
        let row = m / 8;
        let ld = |off: usize| _mm_loadu_si128(src.as_ptr().add(off) as *const __m128i);
        for g in (0..row).step_by(16) {
            let base = g * 8 * elem;
            let mut planes = [[_mm_setzero_si128(); 8]; 4];
            for j in 0..8 {
                match elem {
                    1 => planes[0][j] = ld(base + 16 * j),
                    2 => {
                        let (lo, hi) = split16(ld(base + 32 * j), ld(base + 32 * j + 16));
                        planes[0][j] = lo;
                        planes[1][j] = hi;
                    }
                    _ => {
                        let o = base + 64 * j;
                        let (e02a, e13a) = split16(ld(o), ld(o + 16));
                        let (e02b, e13b) = split16(ld(o + 32), ld(o + 48));
                        let (b0, b2) = split16(e02a, e02b);
                        let (b1, b3) = split16(e13a, e13b);
                        planes[0][j] = b0;
                        planes[1][j] = b1;
                        planes[2][j] = b2;
                        planes[3][j] = b3;
                    }
                }
            }
            for (b, p) in planes.into_iter().take(elem).enumerate() {
                store_plane_group(p, &mut dst[b * 8 * row..], row, g);
            }
        }
    }
}

fn rows_to_plane(rows: &[u8], plane: &mut [u8]) {
    let row = plane.len() / 8;
    let mut g = 0;
    #[cfg(target_arch = "x86_64")]
    while g + 16 <= row {
        // SAFETY: 7 * row + g + 16 <= 8 * row = rows.len(); stores stay in plane[8g..8g+128].
        unsafe {
            let v = sse2::plane_group(rows, row, g);
            for (j, x) in v.into_iter().enumerate() {
                std::arch::x86_64::_mm_storeu_si128(
                    plane.as_mut_ptr().add(g * 8 + 16 * j) as *mut _,
                    x,
                );
            }
        }
        g += 16;
    }
    while g < row {
        let mut y = [0u8; 8];
        for (k, v) in y.iter_mut().enumerate() {
            *v = rows[k * row + g];
        }
        plane[g * 8..g * 8 + 8].copy_from_slice(&transpose8(u64::from_le_bytes(y)).to_le_bytes());
        g += 1;
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}
fn shuffle_block(src: &[u8], elem: usize, dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if matches!(elem, 1 | 2 | 4) && (src.len() / elem) % 128 == 0 {
        // SAFETY: sizes checked just above; blocks hold whole elements.
        unsafe { sse2::shuffle_block(src, elem, dst) };
        return;
    }
    scalar_shuffle_block(src, elem, dst)
}

/// The reference (and non-x86, odd-size) path: byte planes, then bit rows.
fn scalar_shuffle_block(src: &[u8], elem: usize, dst: &mut [u8]) {
    SCRATCH.with(|s| {
        let mut planes = s.borrow_mut();
        planes.resize(src.len(), 0);
        match elem {
            1 => planes.copy_from_slice(src),
            2 => byte_planes::<2>(src, &mut planes),
            4 => byte_planes::<4>(src, &mut planes),
            _ => byte_planes::<8>(src, &mut planes),
        }
        let m = src.len() / elem;
        for (p, r) in planes.chunks_exact(m).zip(dst.chunks_exact_mut(m)) {
            plane_to_rows(p, r);
        }
    })
}
/// Undo bitshuffle on one block of `src.len() / elem` elements (a multiple of 8) on the
/// calling thread (for readers of other formats' blocks, such as the bitshuffle-LZ4 HDF5
/// filter's).
pub fn unshuffle_block(src: &[u8], elem: usize, dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if matches!(elem, 1 | 2 | 4) && (src.len() / elem) % 128 == 0 {
        // SAFETY: sizes checked just above; blocks hold whole elements.
        unsafe { sse2::unshuffle_block(src, elem, dst) };
        return;
    }
    SCRATCH.with(|s| {
        let mut planes = s.borrow_mut();
        planes.resize(src.len(), 0);
        let m = src.len() / elem;
        for (r, p) in src.chunks_exact(m).zip(planes.chunks_exact_mut(m)) {
            rows_to_plane(r, p);
        }
        match elem {
            1 => dst.copy_from_slice(&planes),
            2 => interleave::<2>(&planes, dst),
            4 => interleave::<4>(&planes, dst),
            _ => interleave::<8>(&planes, dst),
        }
    })
}

impl Bitshuffle {
    fn block_elems(&self, elem: usize) -> usize {
        let b = if self.block == 0 {
            8192 / elem
        } else {
            self.block
        };
        (b / 8).max(1) * 8
    }

    fn run(&self, data: &[u8], elem: usize, dst: &mut [u8], f: fn(&[u8], usize, &mut [u8])) {
        let whole = data.len() / elem / 8 * 8 * elem;
        let block = self.block_elems(elem) * elem;
        if self.threads == 1 {
            // One thread: no pool to hop to (a hop costs more than a small block's work).
            for (d, s) in dst[..whole]
                .chunks_mut(block)
                .zip(data[..whole].chunks(block))
            {
                f(s, elem, d);
            }
            dst[whole..].copy_from_slice(&data[whole..]);
            return;
        }
        threads::install(self.threads, || {
            dst[..whole]
                .par_chunks_mut(block)
                .zip(data[..whole].par_chunks(block))
                .with_min_len(threads::min_len(block))
                .for_each(|(d, s)| f(s, elem, d));
        });
        dst[whole..].copy_from_slice(&data[whole..]);
    }
}

impl Permutation for Bitshuffle {
    const NAME: &'static str = "bitshuffle";
    fn forward(&self, data: &[u8], elem: usize, dst: &mut [u8]) {
        self.run(data, elem, dst, shuffle_block);
    }
    fn inverse(&self, data: &[u8], elem: usize, dst: &mut [u8]) {
        self.run(data, elem, dst, unshuffle_block);
    }
}

fn build(c: &Config) -> Result<Box<dyn Codec>> {
    let block = c.get::<i64>("block")? as usize;
    if block % 8 != 0 {
        return Err(Error::option(
            format!("{}:block", c.path),
            format!("{block} is not a multiple of 8"),
        ));
    }
    Ok(Box::new(Permute(Bitshuffle {
        block,
        threads: c.threads()?,
    })))
}

inventory::submit! {
    CodecInfo {
        name: "bitshuffle",
        version: 1,
        doc: "bit shuffle (lossless) in blocks: bit-planes of photon counts compress to runs of zeros; pair with lz4 or zstd",
        options: OPTIONS,
        accepts: Accepts::ANY,
        thread_safe: true,
        build,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_blocks_match_the_scalar_reference() {
        for elem in [1usize, 2, 4] {
            for m in [128usize, 384] {
                let src: Vec<u8> = (0..(m * elem) as u32)
                    .map(|i| (i.wrapping_mul(2654435761) >> 9) as u8)
                    .collect();
                let (mut fast, mut slow) = (vec![0u8; src.len()], vec![0u8; src.len()]);
                shuffle_block(&src, elem, &mut fast);
                scalar_shuffle_block(&src, elem, &mut slow);
                assert_eq!(fast, slow, "elem {elem} m {m}");
            }
        }
    }

    #[test]
    fn whole_blocks_round_trip_for_every_element_size() {
        for elem in [1usize, 2, 4, 8] {
            for m in [128usize, 256, 136, 8] {
                let src: Vec<u8> = (0..(m * elem) as u32)
                    .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
                    .collect();
                let mut rows = vec![0u8; src.len()];
                shuffle_block(&src, elem, &mut rows);
                let mut back = vec![0u8; src.len()];
                unshuffle_block(&rows, elem, &mut back);
                assert_eq!(back, src, "elem {elem} m {m}");
            }
        }
    }

    #[test]
    fn sse_and_scalar_paths_agree() {
        // 136 elements per plane: SIMD groups, then one scalar group of 8.
        let n = 136;
        let plane: Vec<u8> = (0..n as u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let mut rows = vec![0u8; n];
        plane_to_rows(&plane, &mut rows);
        for k in 0..8 {
            for e in 0..n {
                let bit = (rows[k * n / 8 + e / 8] >> (e % 8)) & 1;
                assert_eq!(bit, (plane[e] >> k) & 1, "row {k} element {e}");
            }
        }
        let mut back = vec![0u8; n];
        rows_to_plane(&rows, &mut back);
        assert_eq!(back, plane);
    }

    #[test]
    fn transpose_is_an_involution_and_moves_bits() {
        // Byte 0 = 0b0000_0001 (bit 0 of element 0) lands in row 0, column 0.
        assert_eq!(transpose8(1), 1);
        // Bit 1 of element 0 goes to row 1 (byte 1), position 0.
        assert_eq!(transpose8(2), 1 << 8);
        for x in [
            0u64,
            1,
            0xDEAD_BEEF_0123_4567,
            u64::MAX,
            0x8000_0000_0000_0000,
        ] {
            assert_eq!(transpose8(transpose8(x)), x);
        }
    }
}
