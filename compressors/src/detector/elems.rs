//! Element conversion between a chunk's dtype and the floats detector stages compute in.

use crate::sz::quant::Sample;
use rayon::prelude::*;
use roibin_registry::{threads, DType};

pub use roibin_registry::metrics::{element_f64 as get, to_f64_into as row_f64};

/// One element type of a chunk (read as `sz` reads it): its detector sentinels, its value as
/// f32.
trait Elem: Sample {
    /// See [`is_sentinel`].
    fn sentinel(self) -> bool;
    fn to_f32(self) -> f32;
    fn to_f64(self) -> f64;
}

macro_rules! elem {
    ($t:ty, $flag:expr) => {
        impl Elem for $t {
            #[inline]
            fn sentinel(self) -> bool {
                $flag(self)
            }
            #[inline]
            fn to_f32(self) -> f32 {
                self as f32
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
    };
}

elem!(u8, |v| v == u8::MAX);
elem!(u16, |v| v == u16::MAX);
elem!(u32, |v| v == u32::MAX);
elem!(u64, |v| v == u64::MAX);
elem!(i8, |v: i8| v < 0 || v == i8::MAX);
elem!(i16, |v: i16| v < 0 || v == i16::MAX);
elem!(i32, |v: i32| v < 0 || v == i32::MAX);
elem!(i64, |v: i64| v < 0 || v == i64::MAX);
elem!(f32, |_| false);
elem!(f64, |_| false);

/// `f::<T>()` for the element type of `dtype`: the dtype matched once, the loop inside typed.
macro_rules! typed {
    ($dtype:expr, $f:ident ( $($arg:expr),* )) => {
        match $dtype {
            DType::U8 => $f::<u8>($($arg),*),
            DType::U16 => $f::<u16>($($arg),*),
            DType::U32 => $f::<u32>($($arg),*),
            DType::U64 => $f::<u64>($($arg),*),
            DType::I8 => $f::<i8>($($arg),*),
            DType::I16 => $f::<i16>($($arg),*),
            DType::I32 => $f::<i32>($($arg),*),
            DType::I64 => $f::<i64>($($arg),*),
            DType::F32 => $f::<f32>($($arg),*),
            DType::F64 => $f::<f64>($($arg),*),
        }
    };
}

/// All elements as f32 (what the peak finders work on), into a reused buffer; integer
/// detector sentinels (see [`is_sentinel`]) become NaN: flags, not counts, so no finder takes
/// them for a peak or a background. One pass, the dtype matched once, in pieces of at least
/// [`threads::MIN_TASK_BYTES`] on the current pool.
pub fn to_f32(bytes: &[u8], dtype: DType, out: &mut Vec<f32>) {
    fn conv<T: Elem>(bytes: &[u8], out: &mut Vec<f32>) {
        out.clear();
        // Written in place, no zero fill first (a 4M-pixel frame is 16 MB of memset).
        let elements = bytes.par_chunks_exact(T::SIZE);
        out.par_extend(elements.with_min_len(threads::min_len(T::SIZE)).map(|c| {
            let v = T::read(c);
            if v.sentinel() {
                f32::NAN
            } else {
                v.to_f32()
            }
        }));
    }
    typed!(dtype, conv(bytes, out))
}

/// Ascending indices of the elements of `bytes` for which `keep(value, is_sentinel)` holds
/// (see [`is_sentinel`]): one typed pass.
pub fn indices_where(bytes: &[u8], dtype: DType, keep: impl Fn(f64, bool) -> bool) -> Vec<usize> {
    fn pass<T: Elem>(bytes: &[u8], keep: impl Fn(f64, bool) -> bool) -> Vec<usize> {
        let mut out = vec![];
        for (i, c) in bytes.chunks_exact(T::SIZE).enumerate() {
            let v = T::read(c);
            if keep(v.to_f64(), v.sentinel()) {
                out.push(i);
            }
        }
        out
    }
    typed!(dtype, pass(bytes, keep))
}

/// [`indices_where`] for float32 elements kept when not finite or outside `[below, above]`
/// (the exact-pixel rule on float frames, where nothing is a sentinel): the same indices, 64
/// elements to a bit mask in a loop the compiler vectorises, then only the set bits visited
/// (a frame has a few hundred such pixels in four million). With `copy`, the elements are
/// also appended to it in the same pass (the background's input starts as such a copy: one
/// pass over the frame instead of two).
pub fn f32_indices_outside(
    bytes: &[u8],
    below: f64,
    above: f64,
    mut copy: Option<&mut Vec<u8>>,
) -> Vec<usize> {
    // x > above ⇔ x > (the largest f32 ≤ above), x < below ⇔ x < (the smallest f32 ≥ below).
    let (lo, hi) = (-f32_at_most(-below), f32_at_most(above));
    let keep = |e: &[u8]| {
        let x = f32::from_le_bytes(e.try_into().expect("4 bytes"));
        !(x >= lo && x <= hi) || x.is_infinite()
    };
    let mut out = vec![];
    if let Some(c) = copy.as_deref_mut() {
        c.reserve(bytes.len());
    }
    let whole = bytes.len() / 256 * 256;
    // Copied a span at a time (one call, not one per block), then scanned while in cache.
    for (s, span) in bytes[..whole].chunks(SPAN).enumerate() {
        if let Some(c) = copy.as_deref_mut() {
            c.extend_from_slice(span);
        }
        let first = s * (SPAN / 256);
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above), all `outside_avx2` asks for.
            unsafe { outside_avx2(span, (lo, hi), first, &mut out) };
            continue;
        }
        for (b, block) in span.chunks_exact(256).enumerate() {
            let mut mask = 0u64;
            for (j, e) in block.chunks_exact(4).enumerate() {
                mask |= (keep(e) as u64) << j;
            }
            push_set_bits(mask, 64 * (first + b), &mut out);
        }
    }
    let tail = &bytes[whole..];
    if let Some(c) = copy {
        c.extend_from_slice(tail);
    }
    out.extend(
        tail.chunks_exact(4)
            .enumerate()
            .filter(|(_, e)| keep(e))
            .map(|(j, _)| whole / 4 + j),
    );
    out
}

/// Bytes [`f32_indices_outside`] copies and scans at a time (a multiple of its 256-byte
/// blocks).
const SPAN: usize = 1 << 14;

/// `base + j` for every bit `j` set in `mask`, in increasing order.
fn push_set_bits(mut mask: u64, base: usize, out: &mut Vec<usize>) {
    while mask != 0 {
        out.push(base + mask.trailing_zeros() as usize);
        mask &= mask - 1;
    }
}

/// [`f32_indices_outside`]'s rule over the 256-byte blocks of `span` (block `first` of the
/// frame onwards), eight elements a compare with AVX2: kept unless `lo ≤ x ≤ hi` (ordered: NaN
/// is kept), and kept when infinite.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn outside_avx2(span: &[u8], (lo, hi): (f32, f32), first: usize, out: &mut Vec<usize>) {
    use std::arch::x86_64::*;
    // SAFETY: the caller checked AVX2. Each load reads 32 bytes at 32·g < 256 of a 256-byte
    // block (little-endian float32; x86 is little-endian), unaligned.
    unsafe {
        let (vlo, vhi) = (_mm256_set1_ps(lo), _mm256_set1_ps(hi));
        let magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let inf = _mm256_set1_ps(f32::INFINITY);
        for (b, block) in span.chunks_exact(256).enumerate() {
            let mut mask = 0u64;
            for g in 0..8 {
                let x = _mm256_loadu_ps(block.as_ptr().add(32 * g) as *const f32);
                let inside = _mm256_and_ps(
                    _mm256_cmp_ps::<_CMP_GE_OQ>(x, vlo),
                    _mm256_cmp_ps::<_CMP_LE_OQ>(x, vhi),
                );
                let infinite = _mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_and_ps(x, magnitude), inf);
                // Not inside, or infinite: (inside AND NOT infinite) negated.
                let kept = !_mm256_movemask_ps(_mm256_andnot_ps(infinite, inside)) & 0xff;
                mask |= (kept as u64) << (8 * g);
            }
            push_set_bits(mask, 64 * (first + b), out);
        }
    }
}

/// The largest f32 not above `v` (not NaN); `f32::next_down` of Rust 1.86, by hand.
fn f32_at_most(v: f64) -> f32 {
    let f = v as f32;
    if f as f64 <= v {
        return f;
    }
    // f > v ≥ −inf, so f is above −inf: one step down.
    match f.to_bits() {
        0 => -f32::from_bits(1),
        b if f > 0.0 => f32::from_bits(b - 1),
        b => f32::from_bits(b + 1),
    }
}

/// Element `k` of `bytes`: its value and whether it is a detector sentinel.
pub fn value_and_sentinel(bytes: &[u8], dtype: DType, k: usize) -> (f64, bool) {
    fn one<T: Elem>(bytes: &[u8], k: usize) -> (f64, bool) {
        let v = T::read(&bytes[k * T::SIZE..(k + 1) * T::SIZE]);
        (v.to_f64(), v.sentinel())
    }
    typed!(dtype, one(bytes, k))
}

/// Write `v` as one element of `dtype` into `dst` (integers rounded to nearest and clamped to
/// the type's range, so a mean of counts stays a count).
#[inline]
pub fn put(v: f64, dtype: DType, dst: &mut [u8]) {
    fn int(v: f64, lo: f64, hi: f64) -> f64 {
        if v.is_nan() {
            0.0
        } else {
            v.round().clamp(lo, hi)
        }
    }
    match dtype {
        DType::U8 => dst[0] = int(v, 0.0, u8::MAX as f64) as u8,
        DType::I8 => dst[0] = int(v, i8::MIN as f64, i8::MAX as f64) as i8 as u8,
        DType::U16 => dst.copy_from_slice(&(int(v, 0.0, u16::MAX as f64) as u16).to_le_bytes()),
        DType::I16 => {
            dst.copy_from_slice(&(int(v, i16::MIN as f64, i16::MAX as f64) as i16).to_le_bytes())
        }
        DType::U32 => dst.copy_from_slice(&(int(v, 0.0, u32::MAX as f64) as u32).to_le_bytes()),
        DType::I32 => {
            dst.copy_from_slice(&(int(v, i32::MIN as f64, i32::MAX as f64) as i32).to_le_bytes())
        }
        DType::U64 => dst.copy_from_slice(&(int(v, 0.0, u64::MAX as f64) as u64).to_le_bytes()),
        DType::I64 => {
            dst.copy_from_slice(&(int(v, i64::MIN as f64, i64::MAX as f64) as i64).to_le_bytes())
        }
        DType::F32 => dst.copy_from_slice(&(v as f32).to_le_bytes()),
        DType::F64 => dst.copy_from_slice(&v.to_le_bytes()),
    }
}

/// Indices of NaN and ±Inf elements (none for integer dtypes); tests exponent bits, so it
/// runs at memory speed on frames that have none.
pub fn non_finite(bytes: &[u8], dtype: DType) -> Vec<usize> {
    match dtype {
        DType::F32 => bytes
            .chunks_exact(4)
            .enumerate()
            .filter(|(_, c)| {
                u32::from_le_bytes((*c).try_into().expect("4")) & 0x7f80_0000 == 0x7f80_0000
            })
            .map(|(i, _)| i)
            .collect(),
        DType::F64 => bytes
            .chunks_exact(8)
            .enumerate()
            .filter(|(_, c)| {
                u64::from_le_bytes((*c).try_into().expect("8")) & 0x7ff0_0000_0000_0000
                    == 0x7ff0_0000_0000_0000
            })
            .map(|(i, _)| i)
            .collect(),
        _ => vec![],
    }
}

/// Whether `v` is exactly an element of `dtype` (integers: whole and in range; floats: finite
/// and in range): a fill value that is not would be silently changed by [`put`].
pub fn representable(v: f64, dtype: DType) -> bool {
    let (lo, hi) = match dtype {
        DType::U8 => (0.0, u8::MAX as f64),
        DType::I8 => (i8::MIN as f64, i8::MAX as f64),
        DType::U16 => (0.0, u16::MAX as f64),
        DType::I16 => (i16::MIN as f64, i16::MAX as f64),
        DType::U32 => (0.0, u32::MAX as f64),
        DType::I32 => (i32::MIN as f64, i32::MAX as f64),
        DType::U64 => (0.0, u64::MAX as f64),
        DType::I64 => (i64::MIN as f64, i64::MAX as f64),
        DType::F32 => return v.is_finite() && v.abs() <= f32::MAX as f64,
        DType::F64 => return v.is_finite(),
    };
    v.fract() == 0.0 && v >= lo && v <= hi
}

/// Whether element `i` is a detector sentinel rather than a count: for integer dtypes a
/// negative value (PILATUS −1 gaps, −2 bad pixels) or the type's maximum (EIGER gaps and
/// overloads, 0xFFFF…); floats have NaN and ±Inf instead (see [`non_finite`]).
#[inline]
pub fn is_sentinel(bytes: &[u8], dtype: DType, i: usize) -> bool {
    fn at<T: Elem>(bytes: &[u8], i: usize) -> bool {
        T::read(&bytes[i * T::SIZE..(i + 1) * T::SIZE]).sentinel()
    }
    typed!(dtype, at(bytes, i))
}

/// Move every integer sentinel in `bytes` (see [`is_sentinel`]) to the nearest ordinary value:
/// negatives to 0, the type's maximum to one below it. Floats are left as they are.
pub fn clear_sentinels(bytes: &mut [u8], dtype: DType) {
    macro_rules! fix {
        ($t:ty, $n:expr) => {
            for c in bytes.chunks_exact_mut($n) {
                let v = <$t>::from_le_bytes(c.try_into().expect("element"));
                #[allow(unused_comparisons)]
                let w = if v < 0 as $t {
                    0 as $t
                } else if v == <$t>::MAX {
                    <$t>::MAX - 1
                } else {
                    v
                };
                c.copy_from_slice(&w.to_le_bytes());
            }
        };
    }
    match dtype {
        DType::U8 => fix!(u8, 1),
        DType::I8 => fix!(i8, 1),
        DType::U16 => fix!(u16, 2),
        DType::I16 => fix!(i16, 2),
        DType::U32 => fix!(u32, 4),
        DType::I32 => fix!(i32, 4),
        DType::U64 => fix!(u64, 8),
        DType::I64 => fix!(i64, 8),
        DType::F32 | DType::F64 => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The float32 fast path keeps exactly the elements the generic rule keeps: NaN, both
    /// infinities, values beside thresholds that f32 cannot hold, both zeros, any length.
    #[test]
    fn f32_outside_matches_the_generic_rule() {
        let mut next = crate::test_rng::xorshift(0x0dd_ba11);
        let specials = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            f32::MAX,
            f32::MIN,
        ];
        for round in 0..200 {
            let n = (next() % if round % 20 == 0 { 9000 } else { 700 }) as usize;
            let vals: Vec<f32> = (0..n)
                .map(|_| match next() % 10 {
                    0 => specials[(next() % 7) as usize],
                    1 => 250.0f32.next_up(),
                    2 => 250.0,
                    3 => (-3.0f32).next_down(),
                    _ => (next() % 600) as f32 - 100.0 + (next() % 1000) as f32 / 999.0,
                })
                .collect();
            let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
            let thresholds = [
                (f64::NEG_INFINITY, f64::INFINITY),
                (-3.0, 250.0),
                // Not f32 values, rounding to the f32 beyond them (the fast path must step
                // back) and to the f32 inside them.
                (-3.000_000_2, 250.000_01),
                (-3.000_000_1, 250.000_001),
                (f64::NEG_INFINITY, 1e300),
                (-1e300, 0.0),
            ];
            for (below, above) in thresholds {
                let want = indices_where(&bytes, DType::F32, |x, sentinel| {
                    !x.is_finite() || sentinel || x > above || x < below
                });
                let got = f32_indices_outside(&bytes, below, above, None);
                assert_eq!(got, want, "round {round}, [{below}, {above}]");
                let mut copy = vec![];
                let copying = f32_indices_outside(&bytes, below, above, Some(&mut copy));
                assert_eq!((copying, copy), (want, bytes.clone()));
            }
        }
    }

    #[test]
    fn sentinels_and_representable_values() {
        let mut b: Vec<u8> = [-4i32, -1, 0, 7, i32::MAX]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert!(is_sentinel(&b, DType::I32, 0) && is_sentinel(&b, DType::I32, 4));
        assert!(!is_sentinel(&b, DType::I32, 2));
        clear_sentinels(&mut b, DType::I32);
        let v: Vec<i32> = b
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(v, [0, 0, 0, 7, i32::MAX - 1]);
        let mut u = u16::MAX.to_le_bytes().to_vec();
        clear_sentinels(&mut u, DType::U16);
        assert_eq!(u, (u16::MAX - 1).to_le_bytes());
        assert!(representable(-1.0, DType::I32) && !representable(-1e30, DType::I32));
        assert!(!representable(0.5, DType::U16) && !representable(-1.0, DType::U8));
        assert!(representable(1e30, DType::F32) && !representable(1e39, DType::F32));
    }

    #[test]
    fn finder_pixels_flag_sentinels_as_nan() {
        let b: Vec<u8> = [-2i32, 5, i32::MAX]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let mut v = vec![];
        to_f32(&b, DType::I32, &mut v);
        assert!(v[0].is_nan() && v[1] == 5.0 && v[2].is_nan());
        to_f32(&[1, 0, 255, 255], DType::U16, &mut v);
        assert!(v[0] == 1.0 && v[1].is_nan());
        to_f32(&7.5f64.to_le_bytes(), DType::F64, &mut v);
        assert_eq!(v, [7.5]);
        let b: Vec<u8> = [-2i16, 5, i16::MAX]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let sentinels = |b: &[u8], d: DType| indices_where(b, d, |_, sentinel| sentinel);
        assert_eq!(sentinels(&b, DType::I16), [0, 2]);
        assert_eq!(
            value_and_sentinel(&b, DType::I16, 2),
            (i16::MAX as f64, true)
        );
        assert!(sentinels(&[0; 8], DType::F32).is_empty());
    }
}
