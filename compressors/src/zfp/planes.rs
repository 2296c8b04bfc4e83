//! A block's bit planes and back: the 64 × 64 bit transposes between a block's integers (as
//! negabinary digits) and the planes the embedded coder reads and writes. On x86-64 sixteen
//! values go at a time through SSE2 (a byte transpose by unpacks, then a bit transpose by
//! `movemask`, eight times); elsewhere, and for 1-D blocks of 4 values, eight at a time
//! through 8 × 8 bit transposes in a `u64`. Both give the same bits (tested).

/// Bit planes of up to 64 values: `planes[k]` holds bit k of value i at bit i. Planes in bytes
/// wholly below plane `lowest` are not needed and may be left as they were.
pub(super) fn to_planes(data: &[u64], intprec: u32, lowest: u32, planes: &mut [u64; 64]) {
    #[cfg(target_arch = "x86_64")]
    if data.len() % 16 == 0 {
        // SAFETY: SSE2 is part of the x86-64 baseline, so every x86-64 CPU has it.
        return unsafe {
            sse2::to_planes(data, (lowest / 8) as usize, (intprec / 8) as usize, planes)
        };
    }
    to_planes_portable(data, intprec, lowest, planes)
}

/// Inverse of [`to_planes`]: values from planes `lowest..intprec`, whatever the planes below
/// `lowest` hold (a block's scratch keeps the last block's there).
pub(super) fn from_planes(
    planes: &mut [u64; 64],
    size: usize,
    intprec: u32,
    lowest: u32,
    data: &mut [u64],
) {
    #[cfg(target_arch = "x86_64")]
    if size % 16 == 0 {
        // SAFETY: SSE2 is part of the x86-64 baseline, so every x86-64 CPU has it.
        return unsafe { sse2::from_planes(planes, lowest, intprec, &mut data[..size]) };
    }
    // The portable transposes read whole bytes of planes: clear those below `lowest` in its byte.
    planes[(lowest / 8 * 8) as usize..lowest as usize].fill(0);
    from_planes_portable(planes, size, intprec, lowest, data)
}

/// Bit planes of up to 64 values: `planes[k]` holds bit k of value i at bit i. Built with 8×8
/// bit transposes, eight values and one byte at a time; planes in bytes wholly below plane
/// `lowest` are not needed and not written.
fn to_planes_portable(data: &[u64], intprec: u32, lowest: u32, planes: &mut [u64; 64]) {
    let size = data.len();
    if size % 8 != 0 {
        planes.fill(0);
        for (i, &v) in data.iter().enumerate() {
            for (k, p) in planes.iter_mut().enumerate().take(intprec as usize) {
                *p |= ((v >> k) & 1) << i;
            }
        }
        return;
    }
    for g in 0..size / 8 {
        for b in (lowest / 8) as usize..(intprec / 8) as usize {
            let mut x = 0u64;
            for j in 0..8 {
                x |= ((data[8 * g + j] >> (8 * b)) & 0xff) << (8 * j);
            }
            let t = crate::bitshuffle::transpose8(x);
            for j in 0..8 {
                let byte = ((t >> (8 * j)) & 0xff) << (8 * g);
                // The first group sets the plane, the others add to it.
                planes[8 * b + j] = if g == 0 {
                    byte
                } else {
                    planes[8 * b + j] | byte
                };
            }
        }
    }
}

/// Inverse of [`to_planes_portable`], for planes that are zero below `lowest`.
fn from_planes_portable(
    planes: &[u64; 64],
    size: usize,
    intprec: u32,
    lowest: u32,
    data: &mut [u64],
) {
    if size % 8 != 0 {
        for (i, d) in data.iter_mut().enumerate().take(size) {
            let mut v = 0u64;
            for k in lowest..intprec {
                v |= ((planes[k as usize] >> i) & 1) << k;
            }
            *d = v;
        }
        return;
    }
    for g in 0..size / 8 {
        let mut vals = [0u64; 8];
        for b in (lowest / 8) as usize..(intprec / 8) as usize {
            let mut x = 0u64;
            for j in 0..8 {
                x |= ((planes[8 * b + j] >> (8 * g)) & 0xff) << (8 * j);
            }
            let t = crate::bitshuffle::transpose8(x);
            for (j, v) in vals.iter_mut().enumerate() {
                *v |= ((t >> (8 * j)) & 0xff) << (8 * b);
            }
        }
        data[8 * g..8 * g + 8].copy_from_slice(&vals);
    }
}

/// The transposes with SSE2 (always present on x86-64), sixteen values at a time.
#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::*;

    /// Transpose 8 rows of 8 bytes: `out[c]` holds column `2c` (rows 0-7) then column `2c + 1`.
    #[target_feature(enable = "sse2")]
    fn columns(rows: [u64; 8]) -> [__m128i; 4] {
        let r = rows.map(|x| _mm_set_epi64x(0, x as i64));
        let t = [
            _mm_unpacklo_epi8(r[0], r[1]),
            _mm_unpacklo_epi8(r[2], r[3]),
            _mm_unpacklo_epi8(r[4], r[5]),
            _mm_unpacklo_epi8(r[6], r[7]),
        ];
        let u = [
            _mm_unpacklo_epi16(t[0], t[1]),
            _mm_unpackhi_epi16(t[0], t[1]),
            _mm_unpacklo_epi16(t[2], t[3]),
            _mm_unpackhi_epi16(t[2], t[3]),
        ];
        [
            _mm_unpacklo_epi32(u[0], u[2]),
            _mm_unpackhi_epi32(u[0], u[2]),
            _mm_unpacklo_epi32(u[1], u[3]),
            _mm_unpackhi_epi32(u[1], u[3]),
        ]
    }

    /// Bytes `first..last` of each value (byte b holds planes 8b..8b+8).
    #[target_feature(enable = "sse2")]
    pub(super) fn to_planes(data: &[u64], first: usize, last: usize, planes: &mut [u64; 64]) {
        // Fixed sizes, as in `from_planes`: clearing the planes first was a call to memset.
        if data.len() == 16 {
            to_planes_of::<16>(data.try_into().expect("16 values"), first, last, planes)
        } else {
            to_planes_of::<64>(data.try_into().expect("64 values"), first, last, planes)
        }
    }

    #[target_feature(enable = "sse2")]
    fn to_planes_of<const N: usize>(
        data: &[u64; N],
        first: usize,
        last: usize,
        planes: &mut [u64; 64],
    ) {
        for (h, vals) in data.chunks_exact(16).enumerate() {
            let lo = columns(vals[..8].try_into().expect("8 values"));
            let hi = columns(vals[8..].try_into().expect("8 values"));
            for b in first..last {
                // Byte b of the sixteen values, value order.
                let (l, r) = (lo[b / 2], hi[b / 2]);
                let mut x = if b % 2 == 0 {
                    _mm_unpacklo_epi64(l, r)
                } else {
                    _mm_unpackhi_epi64(l, r)
                };
                // movemask takes each byte's top bit: plane 8b + 7 first, then shift up. The
                // first sixteen values set a plane, the others add to it.
                for j in (0..8).rev() {
                    let bits = (_mm_movemask_epi8(x) as u64) << (16 * h);
                    let p = &mut planes[8 * b + j];
                    *p = if h == 0 { bits } else { *p | bits };
                    x = _mm_add_epi8(x, x);
                }
            }
        }
    }

    /// Inverse of [`to_planes`] for planes `lowest..intprec` (bits below `lowest` come out zero
    /// whatever those planes hold).
    #[target_feature(enable = "sse2")]
    pub(super) fn from_planes(planes: &[u64; 64], lowest: u32, intprec: u32, data: &mut [u64]) {
        // Fixed sizes, so the values' loops unroll and nothing calls memset or memcpy (a
        // 512-byte staging array, cleared and copied out, was a fifth of a 2-D decode).
        if data.len() == 16 {
            from_planes_of::<16>(planes, lowest, intprec, data.try_into().expect("16 values"))
        } else {
            from_planes_of::<64>(planes, lowest, intprec, data.try_into().expect("64 values"))
        }
    }

    #[target_feature(enable = "sse2")]
    fn from_planes_of<const N: usize>(
        planes: &[u64; 64],
        lowest: u32,
        intprec: u32,
        data: &mut [u64; N],
    ) {
        let (first, last) = ((lowest / 8) as usize, (intprec / 8) as usize);
        if first == last {
            *data = [0; N];
            return;
        }
        // The top byte of planes sets the values, the others add to them; the lowest byte's
        // planes below `lowest` are masked off.
        for b in (first..last).rev() {
            let keep = if b == first { !0u64 << lowest } else { !0 };
            let cols = columns(planes[8 * b..8 * b + 8].try_into().expect("8 planes"));
            for (h, &col) in cols.iter().take(N / 16).enumerate() {
                // Bytes 0-7: values 16h..16h+8 of planes 8b..8b+8; bytes 8-15: the next eight.
                let mut x = col;
                for s in (0..8).rev() {
                    let m = _mm_movemask_epi8(x) as u64;
                    let (lo, hi) = (((m & 0xff) << (8 * b)) & keep, ((m >> 8) << (8 * b)) & keep);
                    if b + 1 == last {
                        data[16 * h + s] = lo;
                        data[16 * h + 8 + s] = hi;
                    } else {
                        data[16 * h + s] |= lo;
                        data[16 * h + 8 + s] |= hi;
                    }
                    x = _mm_add_epi8(x, x);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SSE2 transposes give the portable ones' bits, both ways, for 2-D and 3-D blocks,
    /// 32- and 64-bit integers and every lowest plane.
    #[test]
    fn fast_transposes_match_the_portable_ones() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for size in [16, 64] {
            for intprec in [32, 64] {
                for lowest in [0, 5, 8, 17, 24, 31] {
                    let mask = if intprec == 32 {
                        u32::MAX as u64
                    } else {
                        u64::MAX
                    };
                    let data: Vec<u64> = (0..size).map(|_| next() & mask).collect();
                    let (mut fast, mut slow) = ([0u64; 64], [0u64; 64]);
                    to_planes(&data, intprec, lowest, &mut fast);
                    to_planes_portable(&data, intprec, lowest, &mut slow);
                    let from = (lowest / 8 * 8) as usize;
                    assert_eq!(fast[from..intprec as usize], slow[from..intprec as usize]);
                    // Planes below `lowest` hold garbage (the last block's), which the fast
                    // transpose must ignore; the portable one reads them cleared.
                    for p in &mut fast[..lowest as usize] {
                        *p = next();
                    }
                    let mut cleared = fast;
                    cleared[..lowest as usize].fill(0);
                    let (mut back, mut back_slow) = (vec![0u64; size], vec![0u64; size]);
                    from_planes(&mut fast, size, intprec, lowest, &mut back);
                    from_planes_portable(&cleared, size, intprec, lowest, &mut back_slow);
                    assert_eq!(
                        back, back_slow,
                        "size {size}, intprec {intprec}, lowest {lowest}"
                    );
                    let keep = !0u64 << lowest & mask;
                    let want: Vec<u64> = data.iter().map(|v| v & keep).collect();
                    assert_eq!(back, want);
                }
            }
        }
    }
}
