//! One ZFP-style block of 4^d values (d = 1..3): block floating point, the decorrelating
//! lifting transform, sequency order, negabinary, and embedded bit-plane coding with group
//! tests. The same functions serve the encoder (which decodes its own block to check the bound)
//! and the decoder.

use super::planes::{from_planes, to_planes};
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
            nb32_to_int(u)
        } else {
            ((u ^ self.nbmask()).wrapping_sub(self.nbmask())) as i64
        }
    }
}

/// A 32-bit negabinary number (the low 32 bits of `u`) as an integer.
#[inline(always)]
fn nb32_to_int(u: u64) -> i64 {
    ((u as u32 ^ 0xaaaa_aaaa).wrapping_sub(0xaaaa_aaaa)) as i32 as i64
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
    to_planes(data, pl.intprec, kmin, planes);
    if maxbits == u64::MAX {
        let start = w.bits();
        write_planes(w, planes, size, pl.intprec, kmin);
        w.bits() - start
    } else {
        write_planes_within(w, planes, size, pl.intprec, kmin, maxbits)
    }
}

/// Bit planes `intprec - 1` down to `kmin` of a block of `size` values without a bit budget
/// (every mode but `rate`): each group test goes out as one code (its one, its zeros, and the
/// one that ends them), the bits [`write_planes_within`] writes one by one.
pub(super) fn write_planes(
    w: &mut BitWriter,
    planes: &[u64; 64],
    size: usize,
    intprec: u32,
    kmin: u32,
) {
    let mut n = 0usize;
    for k in (kmin..intprec).rev() {
        let mut x = planes[k as usize];
        w.lsb_bits(x, n as u32);
        x = x.checked_shr(n as u32).unwrap_or(0);
        while n < size {
            if x == 0 {
                w.bit(false);
                break;
            }
            let max = size - 1 - n;
            let zeros = x.trailing_zeros() as usize;
            let (run, code, len) = if zeros < max {
                (zeros, (1u64 << (zeros + 1)) | 1, zeros + 2)
            } else {
                (max, 1u64 << max, max + 1)
            };
            w.put_long(code, len as u32);
            x = x.checked_shr(run as u32 + 1).unwrap_or(0);
            n += run + 1;
        }
    }
}

/// [`write_planes`] within a budget of `maxbits` bits (`rate` mode); returns the bits used.
fn write_planes_within(
    w: &mut BitWriter,
    planes: &[u64; 64],
    size: usize,
    intprec: u32,
    kmin: u32,
    maxbits: u64,
) -> u64 {
    let mut bits = maxbits;
    let mut n = 0usize;
    let mut k = intprec;
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
    let (k, used) = if maxbits == u64::MAX {
        let start = r.consumed();
        let k = read_planes(r, size, pl.intprec, kmin, planes)?;
        (k, r.consumed() - start)
    } else {
        read_planes_within(r, size, pl.intprec, kmin, maxbits, planes)?
    };
    from_planes(planes, size, pl.intprec, k, &mut data[..size]);
    // From negabinary straight into place, value by value: the transpose has just stored the
    // values eight bytes at a time, and a vectorised loop's wider loads of them would wait
    // for those stores to retire (no store-to-load forwarding across two stores).
    let data = &data[..size];
    if pl.intprec == 32 {
        for (&u, &p) in data.iter().zip(perm) {
            ints[p] = nb32_to_int(u);
        }
    } else {
        for (&u, &p) in data.iter().zip(perm) {
            ints[p] = pl.nb_to_int(u);
        }
    }
    Ok(used)
}

/// The bit planes from `intprec - 1` down to `kmin` of a block of `size` values coded without a
/// bit budget (every mode but `rate`), into `planes`; returns the last plane read.
fn read_planes(
    r: &mut BitReader<'_>,
    size: usize,
    intprec: u32,
    kmin: u32,
    planes: &mut [u64; 64],
) -> Result<u32> {
    read_planes_with(r, size, intprec, kmin, |k, x| planes[k as usize] = x)?;
    Ok(kmin.min(intprec))
}

/// [`read_planes`], handing each plane `k` (bit i: value i in sequency order, none past
/// `size`) to `plane` as it is read, from the top one down.
///
/// Each plane is the bits of the values already known to be significant, verbatim, then group
/// tests: a one, the zeros up to the next significant value, and the one that ends them (left
/// out when the run reaches the last value), until a zero says no more. One look at the bit
/// buffer parses a whole group test; near the stream's end, [`group_test`] takes it bit by bit.
#[inline(always)]
pub(super) fn read_planes_with(
    reader: &mut BitReader<'_>,
    size: usize,
    intprec: u32,
    kmin: u32,
    mut plane: impl FnMut(u32, u64),
) -> Result<()> {
    // On a local copy of the reader, which stays in registers: through `reader` its count and
    // buffer went to memory and back at every group test (`perf` put a tenth of the decode
    // on the reload; the copy measured 1-2% faster over all).
    let mut r = reader.clone();
    let mut n = 0usize;
    let mut k = intprec;
    while k > kmin {
        k -= 1;
        let mut x = r.lsb_bits(n as u32)?;
        while n < size {
            let (look, avail) = r.window_of(16);
            if look >> 63 == 0 {
                if avail == 0 {
                    return Err(roibin_registry::Error::corrupt(
                        "zfp",
                        "bit stream ends early",
                    ));
                }
                r.consume(1);
                break;
            }
            let max = size - 1 - n;
            let zeros = (look << 1).leading_zeros() as usize;
            // The run, and the one that ends it when it stops short of the last value.
            let (run, len) = if zeros < max {
                (zeros, zeros + 2)
            } else {
                (max, max + 1)
            };
            if len > avail as usize {
                if !group_test(&mut r, &mut n, size, &mut x)? {
                    break;
                }
                continue;
            }
            r.consume(len as u32);
            n += run;
            x += 1u64 << n;
            n += 1;
        }
        plane(k, mask_to(x, size));
    }
    *reader = r;
    Ok(())
}

/// One group test read bit by bit (the stream's end may come inside it); false when it says
/// no value of the plane is left significant.
#[inline(always)]
fn group_test(r: &mut BitReader<'_>, n: &mut usize, size: usize, x: &mut u64) -> Result<bool> {
    if !r.bit()? {
        return Ok(false);
    }
    *n += r.zeros(size - 1 - *n);
    if *n < size - 1 && !r.bit()? {
        return Err(roibin_registry::Error::corrupt("zfp", "bad group test"));
    }
    *x += 1u64 << *n;
    *n += 1;
    Ok(true)
}

/// Only the first `size` positions of a plane exist (a damaged stream may set more).
fn mask_to(x: u64, size: usize) -> u64 {
    if size == 64 {
        x
    } else {
        x & ((1u64 << size) - 1)
    }
}

/// [`read_planes`] within a budget of `maxbits` bits (`rate` mode): the stream stops wherever
/// the budget runs out. Returns the last plane read and the bits used.
fn read_planes_within(
    r: &mut BitReader<'_>,
    size: usize,
    intprec: u32,
    kmin: u32,
    maxbits: u64,
    planes: &mut [u64; 64],
) -> Result<(u32, u64)> {
    let mut bits = maxbits;
    let mut n = 0usize;
    let mut k = intprec;
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
        planes[k as usize] = mask_to(x, size);
    }
    Ok((k, maxbits - bits))
}

/// A block's integers (natural order; 4, 16 or 64 of them) coded at 32-bit integer precision
/// with `prec` planes and no bit budget, as the tests of the block coders make them.
#[cfg(test)]
pub(super) fn coded(ints: &[i64], prec: u32) -> BitWriter {
    let d = (ints.len().trailing_zeros() / 2) as usize;
    let mut w = BitWriter::default();
    let pl = Planes { intprec: 32 };
    encode_ints(
        &mut w,
        ints,
        sequency(d),
        pl,
        prec,
        u64::MAX,
        &mut Scratch::default(),
    );
    w
}

/// A block of `N` = 4^d integers as an array (the caller's slice always has that length).
fn as_block<const N: usize>(ints: &mut [i64]) -> &mut [i64; N] {
    ints.try_into().expect("a block holds 4^d integers")
}

/// Forward transform of a block of integers.
pub fn forward(ints: &mut [i64], d: usize) {
    // 2-D (frames) and 3-D blocks as fixed-size arrays: every index is known, no bounds
    // checks, and the lines of an axis unroll.
    match d {
        2 => xform(as_block::<16>(ints), 2, fwd_lift, false),
        3 => xform(as_block::<64>(ints), 3, fwd_lift, false),
        _ => xform(ints, d, fwd_lift, false),
    }
}

/// Inverse transform of a block of integers.
pub fn inverse(ints: &mut [i64], d: usize) {
    match d {
        2 => xform(as_block::<16>(ints), 2, inv_lift, true),
        3 => xform(as_block::<64>(ints), 3, inv_lift, true),
        _ => xform(ints, d, inv_lift, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The group-test writer and parser that take a whole test at once write and read what
    /// the bit-by-bit ones (the budgeted paths, here with a budget that never runs out) do.
    /// The parser that reads a whole test from one look at the bit buffer gives
    /// what the bit-by-bit reader (the budgeted path, here with a budget that never runs out)
    /// gives: the same planes and bits on whole streams, the same errors on every truncation
    /// and on flipped bits.
    #[test]
    fn fast_group_tests_write_and_read_what_the_bit_by_bit_coder_does() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..60 {
            let d = 1 + round % 3;
            let size = 1usize << (2 * d);
            // Sparse and dense blocks: small, large and mixed coefficients.
            let shift = next() % 31;
            let ints: Vec<i64> = (0..size).map(|_| (next() as i32 as i64) >> shift).collect();
            let pl = Planes { intprec: 32 };
            let prec = 4 + (next() % 29) as u32;
            let perm = sequency(d);
            let bytes = coded(&ints, prec).finish();
            let kmin = 32 - prec;
            // The one-code-per-group-test writer writes what the bit-by-bit writer writes.
            let mut planes = [0u64; 64];
            let mut data = [0u64; 64];
            for (d, &i) in data.iter_mut().zip(perm) {
                *d = pl.int_to_nb(ints[i]);
            }
            to_planes(&data[..size], 32, kmin, &mut planes);
            let mut slow = BitWriter::default();
            write_planes_within(&mut slow, &planes, size, 32, kmin, u64::MAX - 1);
            assert_eq!(slow.finish(), bytes, "round {round}");
            let read = |bytes: &[u8], fast: bool| {
                let mut r = BitReader::new(bytes, "zfp");
                let mut planes = [0u64; 64];
                let got = if fast {
                    read_planes(&mut r, size, 32, kmin, &mut planes).map(|k| (k, r.consumed()))
                } else {
                    read_planes_within(&mut r, size, 32, kmin, u64::MAX - 1, &mut planes)
                };
                got.map(|k| (k, planes)).map_err(|e| e.to_string())
            };
            assert_eq!(read(&bytes, true), read(&bytes, false), "round {round}");
            for cut in 0..bytes.len() {
                assert_eq!(
                    read(&bytes[..cut], true),
                    read(&bytes[..cut], false),
                    "cut {cut}"
                );
            }
            let mut bad = bytes.clone();
            for _ in 0..8 {
                let i = next() as usize % bad.len();
                bad[i] ^= 1 << (next() % 8);
                assert_eq!(
                    read(&bad, true),
                    read(&bad, false),
                    "round {round}, flip at {i}"
                );
            }
        }
    }

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
