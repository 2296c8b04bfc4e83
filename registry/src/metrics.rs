//! Quality and size metrics every lossy graph reports.

use crate::DType;

/// Convert little-endian elements of `dtype` to f64 (for metrics, not for codecs).
pub fn to_f64(bytes: &[u8], dtype: DType) -> Vec<f64> {
    let mut out = Vec::with_capacity(bytes.len() / dtype.size());
    to_f64_into(bytes, dtype, &mut out);
    out
}

/// `$body` with `$it` bound to the elements of `$bytes` (of `$dtype`) as an exact-size iterator
/// of f64: the dtype matched once, the loop inside typed.
macro_rules! with_f64s {
    ($bytes:expr, $dtype:expr, |$it:ident| $body:expr) => {{
        macro_rules! typed {
            ($t:ty, $n:expr) => {{
                let $it = $bytes
                    .chunks_exact($n)
                    .map(|c| <$t>::from_le_bytes(c.try_into().expect("size")) as f64);
                $body
            }};
        }
        match $dtype {
            DType::U8 => {
                let $it = $bytes.iter().map(|&b| b as f64);
                $body
            }
            DType::I8 => {
                let $it = $bytes.iter().map(|&b| b as i8 as f64);
                $body
            }
            DType::U16 => typed!(u16, 2),
            DType::I16 => typed!(i16, 2),
            DType::U32 => typed!(u32, 4),
            DType::I32 => typed!(i32, 4),
            DType::F32 => typed!(f32, 4),
            DType::U64 => typed!(u64, 8),
            DType::I64 => typed!(i64, 8),
            DType::F64 => typed!(f64, 8),
        }
    }};
}

/// [`to_f64`] into a reused buffer (cleared first); the dtype is matched once per call.
pub fn to_f64_into(bytes: &[u8], dtype: DType, out: &mut Vec<f64>) {
    out.clear();
    // `extend` from an exact-size iterator: no capacity check per element, so the loop
    // vectorises (a `push` per element ran at ~3 ns each).
    with_f64s!(bytes, dtype, |values| out.extend(values))
}

/// Call `f` with every element of `bytes` (of `dtype`) as f64, in order, without a copy; the
/// dtype is matched once per call.
///
/// ```
/// use roibin_registry::{metrics::for_each_f64, DType};
/// let mut sum = 0.0;
/// for_each_f64(&[1, 0, 2, 0], DType::U16, |v| sum += v);
/// assert_eq!(sum, 3.0);
/// ```
pub fn for_each_f64(bytes: &[u8], dtype: DType, mut f: impl FnMut(f64)) {
    with_f64s!(bytes, dtype, |values| values.for_each(&mut f))
}

/// Element `i` of `bytes` (of `dtype`) as f64.
#[inline]
pub fn element_f64(bytes: &[u8], dtype: DType, i: usize) -> f64 {
    let n = dtype.size();
    let c = &bytes[i * n..i * n + n];
    match dtype {
        DType::U8 => c[0] as f64,
        DType::I8 => c[0] as i8 as f64,
        DType::U16 => u16::from_le_bytes([c[0], c[1]]) as f64,
        DType::I16 => i16::from_le_bytes([c[0], c[1]]) as f64,
        DType::U32 => u32::from_le_bytes(c.try_into().expect("4")) as f64,
        DType::I32 => i32::from_le_bytes(c.try_into().expect("4")) as f64,
        DType::F32 => f32::from_le_bytes(c.try_into().expect("4")) as f64,
        DType::U64 => u64::from_le_bytes(c.try_into().expect("8")) as f64,
        DType::I64 => i64::from_le_bytes(c.try_into().expect("8")) as f64,
        DType::F64 => f64::from_le_bytes(c.try_into().expect("8")),
    }
}

/// Error statistics of a reconstruction against its original.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorStats {
    /// Largest |x − x'| over finite elements.
    pub max_abs: f64,
    /// Peak signal-to-noise ratio in dB over the original's value range (∞ when exact).
    pub psnr: f64,
    /// Elements whose non-finite value did not come back bit-for-bit as NaN/±Inf.
    pub nonfinite_mismatch: usize,
}

/// Compare `orig` and `recon` element-wise.
///
/// ```
/// use roibin_registry::metrics::error_stats;
/// let s = error_stats(&[0.0, 10.0], &[0.5, 10.0]);
/// assert_eq!(s.max_abs, 0.5);
/// ```
pub fn error_stats(orig: &[f64], recon: &[f64]) -> ErrorStats {
    assert_eq!(orig.len(), recon.len(), "arrays differ in length");
    let (mut lo, mut hi, mut max_abs, mut sq, mut bad, mut n) =
        (f64::MAX, f64::MIN, 0f64, 0f64, 0, 0usize);
    for (&a, &b) in orig.iter().zip(recon) {
        if !a.is_finite() {
            if !(a.is_nan() && b.is_nan() || a == b) {
                bad += 1;
            }
            continue;
        }
        lo = lo.min(a);
        hi = hi.max(a);
        let e = (a - b).abs();
        max_abs = max_abs.max(if e.is_nan() { f64::INFINITY } else { e });
        sq += e * e;
        n += 1;
    }
    let mse = if n > 0 { sq / n as f64 } else { 0.0 };
    let range = if n > 0 { hi - lo } else { 0.0 };
    let psnr = if mse == 0.0 {
        f64::INFINITY
    } else {
        20.0 * range.max(f64::MIN_POSITIVE).log10() - 10.0 * mse.log10()
    };
    ErrorStats {
        max_abs,
        psnr,
        nonfinite_mismatch: bad,
    }
}

/// Compression ratio against the size the same pixels would take as uint16 (how the ROIBIN-SZ paper reports).
pub fn ratio_vs_u16(elements: usize, compressed_bytes: usize) -> f64 {
    (elements * 2) as f64 / compressed_bytes.max(1) as f64
}
