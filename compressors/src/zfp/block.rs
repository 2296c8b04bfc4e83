//! One ZFP-style block of 4^d values (d = 1..3): block floating point, the decorrelating
//! lifting transform, sequency order, negabinary, and embedded bit-plane coding with group
//! tests. The same functions serve the encoder (which decodes its own block to check the bound)
//! and the decoder.

use crate::bits::{BitReader, BitWriter};
use roibin_registry::Result;

/// A value the lifting steps work on: the block's integers, or (to bound the transform's
/// error once, in [`super::bound`]) a value that tracks where it came from.
pub(super) trait Lane: Copy {
    fn plus(self, o: Self) -> Self;
    fn minus(self, o: Self) -> Self;
    /// ⌊self / 2⌋ (an arithmetic shift right).
    fn half(self) -> Self;
    /// 2 · self.
    fn twice(self) -> Self;
}

/// Two's complement arithmetic that wraps, as ZFP's: a crafted stream's coefficients may
/// overflow, and must give garbage values, not a panic.
impl Lane for i64 {
    #[inline(always)]
    fn plus(self, o: i64) -> i64 {
        self.wrapping_add(o)
    }
    #[inline(always)]
    fn minus(self, o: i64) -> i64 {
        self.wrapping_sub(o)
    }
    #[inline(always)]
    fn half(self) -> i64 {
        self >> 1
    }
    #[inline(always)]
    fn twice(self) -> i64 {
        self.wrapping_shl(1)
    }
}

/// ZFP's forward lifting step on 4 values at stride `s` (non-orthogonal, near-orthogonal).
#[inline(always)]
pub(super) fn fwd_lift<T: Lane>(p: &mut [T], o: usize, s: usize) {
    let (mut x, mut y, mut z, mut w) = (p[o], p[o + s], p[o + 2 * s], p[o + 3 * s]);
    x = x.plus(w).half();
    w = w.minus(x);
    z = z.plus(y).half();
    y = y.minus(z);
    x = x.plus(z).half();
    z = z.minus(x);
    w = w.plus(y).half();
    y = y.minus(w);
    w = w.plus(y.half());
    y = y.minus(w.half());
    (p[o], p[o + s], p[o + 2 * s], p[o + 3 * s]) = (x, y, z, w);
}

/// Inverse of [`fwd_lift`].
#[inline(always)]
pub(super) fn inv_lift<T: Lane>(p: &mut [T], o: usize, s: usize) {
    let (mut x, mut y, mut z, mut w) = (p[o], p[o + s], p[o + 2 * s], p[o + 3 * s]);
    y = y.plus(w.half());
    w = w.minus(y.half());
    y = y.plus(w);
    w = w.twice().minus(y);
    z = z.plus(x);
    x = x.twice().minus(z);
    y = y.plus(z);
    z = z.twice().minus(y);
    w = w.plus(x);
    x = x.twice().minus(w);
    (p[o], p[o + s], p[o + 2 * s], p[o + 3 * s]) = (x, y, z, w);
}

/// Apply `lift` along every axis of a 4^d block: the 4^(d-1) lines along axis `a` start where
/// that coordinate is 0, so line `j`'s start is `j` with a zero digit put in at position `a`.
#[inline(always)]
pub(super) fn xform<T: Lane>(
    p: &mut [T],
    d: usize,
    lift: impl Fn(&mut [T], usize, usize),
    reverse: bool,
) {
    let lines = 1usize << (2 * (d - 1));
    for k in 0..d {
        let a = if reverse { d - 1 - k } else { k };
        let s = 1usize << (2 * a);
        for j in 0..lines {
            lift(p, (j & (s - 1)) | ((j >> (2 * a)) << (2 * a + 2)), s);
        }
    }
}

/// Coefficient order by sequency (sum of coordinates), for 4^d blocks (d ≤ 3), computed once.
pub fn sequency(d: usize) -> &'static [usize] {
    static ORDERS: [std::sync::OnceLock<Vec<usize>>; 4] = [const { std::sync::OnceLock::new() }; 4];
    ORDERS[d].get_or_init(|| {
        let n = 1usize << (2 * d);
        let coords = |i: usize| (0..d).map(move |a| (i >> (2 * a)) & 3);
        let mut idx: Vec<usize> = (0..n).collect();
        idx.sort_by_key(|&i| (coords(i).sum::<usize>(), coords(i).max().unwrap_or(0), i));
        idx
    })
}

/// Precision parameters of one block's integers.
#[derive(Clone, Copy)]
pub struct Planes {
    /// Bits per integer (32 for f32, 64 for f64).
    pub intprec: u32,
}

impl Planes {
    fn nbmask(self) -> u64 {
        if self.intprec == 32 {
            0xaaaa_aaaa
        } else {
            0xaaaa_aaaa_aaaa_aaaa
        }
    }

    fn int_to_nb(self, i: i64) -> u64 {
        if self.intprec == 32 {
            ((i as i32 as u32).wrapping_add(0xaaaa_aaaa) ^ 0xaaaa_aaaa) as u64
        } else {
            (i as u64).wrapping_add(self.nbmask()) ^ self.nbmask()
        }
    }

    /// `i` as the decoder rebuilds it when bit planes below `kmin` are not coded.
    pub fn truncate(self, i: i64, kmin: u32) -> i64 {
        if kmin == 0 {
            return i;
        }
        let mask = if kmin >= 64 { 0 } else { !0u64 << kmin };
        self.nb_to_int(self.int_to_nb(i) & mask)
    }

    fn nb_to_int(self, u: u64) -> i64 {
        if self.intprec == 32 {
            ((u as u32 ^ 0xaaaa_aaaa).wrapping_sub(0xaaaa_aaaa)) as i32 as i64
        } else {
            ((u ^ self.nbmask()).wrapping_sub(self.nbmask())) as i64
        }
    }
}

/// A block's negabinary digits and bit planes, kept from block to block: a block fills what it
/// uses instead of zeroing a kilobyte.
pub struct Scratch {
    data: [u64; 64],
    planes: [u64; 64],
}

impl Default for Scratch {
    fn default() -> Scratch {
        Scratch {
            data: [0; 64],
            planes: [0; 64],
        }
    }
}

/// Bit planes of up to 64 values: `planes[k]` holds bit k of value i at bit i. Built with 8×8
/// bit transposes, eight values and one byte at a time; planes in bytes wholly below plane
/// `lowest` are not needed and not written.
fn to_planes(data: &[u64], intprec: u32, lowest: u32, planes: &mut [u64; 64]) {
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

/// Inverse of [`to_planes`], for planes that are zero below `lowest`.
fn from_planes(planes: &[u64; 64], size: usize, intprec: u32, lowest: u32, data: &mut [u64]) {
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

/// Encode the integers of a block (already transformed, in natural order) with `prec` bit planes
/// and at most `maxbits` bits; returns the bits used.
pub fn encode_ints(
    w: &mut BitWriter,
    ints: &[i64],
    perm: &[usize],
    pl: Planes,
    prec: u32,
    maxbits: u64,
    scratch: &mut Scratch,
) -> u64 {
    let size = ints.len();
    let Scratch { data, planes } = scratch;
    for (d, &i) in data.iter_mut().zip(perm) {
        *d = pl.int_to_nb(ints[i]);
    }
    let data = &data[..size];
    let kmin = pl.intprec.saturating_sub(prec);
    let mut bits = maxbits;
    let mut n = 0usize;
    let mut k = pl.intprec;
    to_planes(data, pl.intprec, kmin, planes);
    while bits > 0 && k > kmin {
        k -= 1;
        let mut x = planes[k as usize];
        let m = (n as u64).min(bits) as u32;
        bits -= m as u64;
        w.lsb_bits(x, m);
        x = if m >= 64 { 0 } else { x >> m };
        // Group tests: "any ones left?", then the zeros before the next one in bulk (ZFP
        // writes them bit by bit; the bits are the same).
        while n < size && bits > 0 {
            bits -= 1;
            let any = x != 0;
            w.bit(any);
            if !any {
                break;
            }
            let zeros = (x.trailing_zeros() as u64)
                .min((size - 1 - n) as u64)
                .min(bits);
            w.zeros(zeros as u32);
            bits -= zeros;
            x >>= zeros;
            n += zeros as usize;
            if n < size - 1 && bits > 0 {
                // x's lowest bit is the one that ends the run.
                bits -= 1;
                w.bit(true);
            }
            x >>= 1;
            n += 1;
        }
    }
    maxbits - bits
}

/// Decode what [`encode_ints`] wrote into `ints` (natural order); returns the bits read.
pub fn decode_ints(
    r: &mut BitReader<'_>,
    ints: &mut [i64],
    perm: &[usize],
    pl: Planes,
    prec: u32,
    maxbits: u64,
    scratch: &mut Scratch,
) -> Result<u64> {
    let size = ints.len();
    let Scratch { data, planes } = scratch;
    let kmin = pl.intprec.saturating_sub(prec);
    let mut bits = maxbits;
    let mut n = 0usize;
    let mut k = pl.intprec;
    while bits > 0 && k > kmin {
        k -= 1;
        let m = (n as u64).min(bits) as u32;
        bits -= m as u64;
        let mut x = r.lsb_bits(m)?;
        while n < size && bits > 0 {
            bits -= 1;
            if !r.bit()? {
                break;
            }
            let max = ((size - 1 - n) as u64).min(bits) as usize;
            let zeros = r.zeros(max);
            bits -= zeros as u64;
            n += zeros;
            if n < size - 1 && bits > 0 {
                // The run stopped short of its limit: a one follows, or the stream ended.
                bits -= 1;
                if !r.bit()? {
                    return Err(roibin_registry::Error::corrupt("zfp", "bad group test"));
                }
            }
            x += 1u64 << n;
            n += 1;
        }
        // Only the first `size` positions exist (a damaged stream may set more).
        planes[k as usize] = if size == 64 {
            x
        } else {
            x & ((1u64 << size) - 1)
        };
    }
    // Planes below the last one read, in the bytes the transpose reads, are zero.
    planes[(k / 8 * 8) as usize..k as usize].fill(0);
    from_planes(planes, size, pl.intprec, k, &mut data[..size]);
    for (j, &p) in perm.iter().enumerate() {
        ints[p] = pl.nb_to_int(data[j]);
    }
    Ok(maxbits - bits)
}

/// Forward transform of a block of integers.
pub fn forward(ints: &mut [i64], d: usize) {
    // A 2-D block (frames) as a fixed-size array: every index is known, no bounds checks.
    match <&mut [i64; 16]>::try_from(&mut *ints) {
        Ok(block) if d == 2 => xform(block, 2, fwd_lift, false),
        _ => xform(ints, d, fwd_lift, false),
    }
}

/// Inverse transform of a block of integers.
pub fn inverse(ints: &mut [i64], d: usize) {
    match <&mut [i64; 16]>::try_from(&mut *ints) {
        Ok(block) if d == 2 => xform(block, 2, inv_lift, true),
        _ => xform(ints, d, inv_lift, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_precision_round_trips_integers_closely() {
        for d in 1..=3 {
            let n = 1 << (2 * d);
            let orig: Vec<i64> = (0..n)
                .map(|i| ((i as i64 * 7919) % 1000 - 500) << 20)
                .collect();
            let mut t = orig.clone();
            forward(&mut t, d);
            let perm = sequency(d);
            let pl = Planes { intprec: 32 };
            let mut w = BitWriter::default();
            let used = encode_ints(&mut w, &t, perm, pl, 32, u64::MAX, &mut Scratch::default());
            let bytes = w.finish();
            let mut r = BitReader::new(&bytes, "zfp");
            let mut back = vec![0i64; n];
            assert_eq!(
                decode_ints(
                    &mut r,
                    &mut back,
                    perm,
                    pl,
                    32,
                    u64::MAX,
                    &mut Scratch::default()
                )
                .unwrap(),
                used
            );
            assert_eq!(back, t, "d={d}: planes must round-trip exactly");
            inverse(&mut back, d);
            // The lifting transform loses at most a few ulps of the integer.
            for (a, b) in orig.iter().zip(&back) {
                assert!((a - b).abs() <= 16, "d={d}: {a} vs {b}");
            }
        }
    }
}
