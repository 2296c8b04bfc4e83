//! Linear quantisers with an escape for values that miss the bound. The encoder computes each
//! reconstruction exactly as the decoder will, checks it against the bound, and escapes
//! (stores the value bit-exactly) whenever it does not hold: the bound is checked, not trusted.

use super::predict::Quant;

/// Element types `sz` reads and writes (little-endian bytes).
pub trait Sample: Copy {
    const SIZE: usize;
    fn read(b: &[u8]) -> Self;
    fn write(self, b: &mut [u8]);
}

macro_rules! sample {
    ($($t:ty),*) => {$(
        impl Sample for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            #[inline]
            fn read(b: &[u8]) -> Self {
                <$t>::from_le_bytes(b.try_into().expect("element"))
            }
            #[inline]
            fn write(self, b: &mut [u8]) {
                b.copy_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
sample!(u8, u16, u32, u64, i8, i16, i32, i64, f32, f64);

/// Floats: values and reconstructions in the element's own precision.
pub trait Float: Sample {
    /// Integers up to 2^DIGITS in magnitude are exact; so is any of them times a power of two
    /// between `MIN_NORMAL` and `MAX / 2^DIGITS`.
    const DIGITS: i32;
    const MIN_NORMAL: f64;
    const MAX: f64;
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
    fn is_finite(self) -> bool;
    /// An integer ordered as `total_cmp` orders the values (one per bit pattern): selections
    /// compare plain integers, not keys re-derived at every comparison.
    type Key: Ord + Copy + Default;
    /// The value's [`Float::Key`].
    fn key(self) -> Self::Key;
    /// The value whose key is `k`.
    fn from_key(k: Self::Key) -> Self;
}

/// `total_cmp`'s key of a float's bits `b`: negative values' magnitude bits flipped, so that
/// the signed integers order as the values do (−0.0 before +0.0). Its own inverse.
macro_rules! order_key {
    ($b:expr, $i:ty, $u:ty) => {{
        let b = $b as $i;
        b ^ (((b >> (<$i>::BITS - 1)) as $u) >> 1) as $i
    }};
}
impl Float for f32 {
    const DIGITS: i32 = 24;
    const MIN_NORMAL: f64 = f32::MIN_POSITIVE as f64;
    const MAX: f64 = f32::MAX as f64;
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
    type Key = i32;
    #[inline(always)]
    fn key(self) -> i32 {
        order_key!(self.to_bits(), i32, u32)
    }
    #[inline(always)]
    fn from_key(k: i32) -> f32 {
        f32::from_bits(order_key!(k, i32, u32) as u32)
    }
}
impl Float for f64 {
    const DIGITS: i32 = 53;
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    const MAX: f64 = f64::MAX;
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
    type Key = i64;
    #[inline(always)]
    fn key(self) -> i64 {
        order_key!(self.to_bits(), i64, u64)
    }
    #[inline(always)]
    fn from_key(k: i64) -> f64 {
        f64::from_bits(order_key!(k, i64, u64) as u64)
    }
}

/// Integers: exact arithmetic in i128; the bound is in counts.
pub trait Int: Sample {
    fn to_i128(self) -> i128;
    fn from_i128(v: i128) -> Option<Self>;
}
macro_rules! int {
    ($($t:ty),*) => {$(
        impl Int for $t {
            fn to_i128(self) -> i128 {
                self as i128
            }
            fn from_i128(v: i128) -> Option<Self> {
                <$t>::try_from(v).ok()
            }
        }
    )*};
}
int!(u8, u16, u32, u64, i8, i16, i32, i64);

/// What a quantiser produced for one piece.
#[derive(Default)]
pub struct Codes {
    /// 0 = escaped, else `q + radius`.
    pub codes: Vec<u32>,
    /// Escaped values, raw little-endian elements in visiting order.
    pub unpred: Vec<u8>,
}

/// Round to an integer without a libm call (ties to even, exact for |v| < 2^51; larger values
/// come out as large and are escaped by the range check that follows).
#[inline]
pub fn round(v: f64) -> f64 {
    if v.abs() < ROUND_BELOW {
        (v + ROUND_MAGIC) - ROUND_MAGIC
    } else {
        v
    }
}

/// [`round`]'s constant, 1.5 · 2^52, and the magnitude (2^51) up to which it rounds; the
/// vector quantisers use the same two.
pub const ROUND_MAGIC: f64 = 6_755_399_441_055_744.0;
pub const ROUND_BELOW: f64 = 2_251_799_813_685_248.0;

/// Prediction-side value of a stored element: non-finite values would poison their neighbours.
#[inline]
fn finite_or_zero(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

pub struct FloatEncoder<'a, T: Float> {
    pub data: &'a [u8],
    /// The bound in force (the piece's bound, tightened on coarse levels).
    pub eb: f64,
    pub base: f64,
    pub radius: u32,
    pub out: &'a mut Codes,
    pub _t: std::marker::PhantomData<T>,
}

/// The codes of f32 `bytes` of `dims` under `pred` (block values `means`), radius 64: what
/// the decoders' tests decode both ways.
#[cfg(test)]
pub(crate) fn f32_codes(
    pred: super::predict::Predictor,
    dims: [usize; 3],
    bytes: &[u8],
    eb: f64,
    means: &[f64],
) -> Codes {
    visiting_order::<f32>(pred, dims, bytes, eb, means).0
}

/// The codes and reconstruction of `T` elements `bytes` under `pred` (block values `means`),
/// radius 64, from the visiting-order encoder: what faster walks are checked against.
#[cfg(test)]
pub(crate) fn visiting_order<T: Float>(
    pred: super::predict::Predictor,
    dims: [usize; 3],
    bytes: &[u8],
    eb: f64,
    means: &[f64],
) -> (Codes, Vec<f64>) {
    let mut codes = Codes::default();
    let mut recon = vec![0.0; bytes.len() / T::SIZE];
    let mut q = FloatEncoder::<T> {
        data: bytes,
        eb,
        base: eb,
        radius: 64,
        out: &mut codes,
        _t: std::marker::PhantomData,
    };
    pred.run(dims, &mut recon, &mut q, means);
    (codes, recon)
}

impl<T: Float> Quant for FloatEncoder<'_, T> {
    fn set_scale(&mut self, scale: f64) {
        self.eb = self.base / scale;
    }
    fn level_lines<R: super::predict::Recon>(&self) -> bool {
        cfg!(target_arch = "x86_64") && super::interp_row::float32_lines::<T, R>()
    }
    fn level_line<R: super::predict::Recon>(
        &mut self,
        f: &mut [R],
        line: super::interp_row::Line,
    ) -> bool {
        #[cfg(target_arch = "x86_64")]
        if T::SIZE == 4 {
            // Float32 elements (the only 4-byte `Float`) and float32 values.
            let Some(f) = R::as_f32_mut(f) else {
                return false;
            };
            let at = self.out.codes.len();
            self.out.codes.resize(at + line.count, 0);
            let codes = &mut self.out.codes[at..];
            let bound = (self.eb, self.radius);
            if super::interp_row::line(self.data, f, line, bound, codes) {
                for (p, &c) in line.elements().zip(codes.iter()) {
                    if c == 0 {
                        self.out
                            .unpred
                            .extend_from_slice(&self.data[p * 4..p * 4 + 4]);
                    }
                }
            }
            return true;
        }
        let _ = (f, line);
        false
    }
    #[inline]
    fn next(&mut self, i: usize, pred: f64) -> f64 {
        let raw = &self.data[i * T::SIZE..(i + 1) * T::SIZE];
        let (code, v) = quantise_float::<T>(raw, pred, self.eb, self.radius);
        self.out.codes.push(code);
        if code == 0 {
            self.out.unpred.extend_from_slice(raw);
        }
        v
    }
}

/// The code of the float element `raw` predicted by `pred` (0: it must be escaped, stored
/// bit-exactly) and the value later predictions see: the encoder's whole rule for one element.
#[inline(always)]
pub fn quantise_float<T: Float>(raw: &[u8], pred: f64, eb: f64, radius: u32) -> (u32, f64) {
    let x = T::read(raw).to_f64();
    // A multiply instead of a divide: the bound is checked below either way.
    let q = round((x - pred) * (0.5 / eb));
    if q.abs() < radius as f64 {
        let r = T::from_f64(pred + q * (2.0 * eb)).to_f64();
        // Checked in the element's precision, exactly as the decoder will rebuild it.
        if (r - x).abs() <= eb {
            return ((q as i64 + radius as i64) as u32, r);
        }
    }
    (0, finite_or_zero(x))
}

/// A piece's codes and escaped values, read in visiting order by either decoder.
pub struct Cursor<'a> {
    codes: &'a [u32],
    unpred: &'a [u8],
    k: usize,
    u: usize,
    /// Set when the codes ask for more escaped values than the piece holds.
    pub bad: bool,
}

impl<'a> Cursor<'a> {
    pub fn new(codes: &'a [u32], unpred: &'a [u8]) -> Self {
        Cursor {
            codes,
            unpred,
            k: 0,
            u: 0,
            bad: false,
        }
    }

    /// The next code (0: an escaped value follows).
    #[inline]
    fn code(&mut self) -> u32 {
        let c = self.codes.get(self.k).copied().unwrap_or(0);
        self.k += 1;
        c
    }

    /// Escaped element number `*e` of `size` bytes; advances `*e`.
    #[inline]
    fn escaped_at(&mut self, e: &mut usize, size: usize) -> Option<&'a [u8]> {
        let v = self.unpred.get(*e * size..(*e + 1) * size);
        match v {
            Some(_) => *e += 1,
            None => self.bad = true,
        }
        v
    }
}

/// A decoder's rule for one element, with the escape position passed in: the row-interleaved
/// Lorenzo decoder ([`super::plane`]) keeps one escape position per row, where the visiting
/// order keeps one for the piece.
pub trait ElementDecoder {
    /// Element `i` from its code `c` and prediction `pred`; code 0 takes escaped value `*e`
    /// and advances `*e`. Returns the value later predictions see.
    fn element(&mut self, i: usize, c: u32, pred: f64, e: &mut usize) -> f64;
    /// Elements `first..` from `codes`, every one predicted by `pred` (a block mean): what
    /// [`ElementDecoder::element`] gives for each, which is what this default does.
    fn run(&mut self, first: usize, codes: &[u32], pred: f64, e: &mut usize) {
        each_element(self, first, codes, pred, e);
    }
    /// Decode the 2-D Lorenzo plane of `n1 × n2` elements at element `first` in one go, if the
    /// decoder can give exactly what [`ElementDecoder::element`] in visiting order would
    /// (`row` is scratch of two rows); false, having left the plane to the caller, if not.
    fn lorenzo_plane(
        &mut self,
        _first: usize,
        _n1: usize,
        _n2: usize,
        _codes: &[u32],
        _rows: &mut [f64],
    ) -> bool {
        false
    }
    /// What the AVX2 Lorenzo row groups decode with, when this decoder decodes float32
    /// values by the rule of [`FloatDecoder`].
    fn float32_parts(&mut self) -> Option<Float32Parts<'_>> {
        None
    }
    /// Set when the codes asked for escaped values the piece does not hold.
    fn bad(&self) -> bool;
}

/// A float32 decoder's parts: the piece's escaped values, the output, the bound and radius,
/// and its flag for codes that ask for escaped values the piece does not hold.
pub struct Float32Parts<'a> {
    pub unpred: &'a [u8],
    pub out: &'a mut [u8],
    pub eb: f64,
    pub radius: u32,
    pub bad: &'a mut bool,
}

/// [`Quant::next`] of a decoder: the next code, escapes in visiting order.
macro_rules! next_in_order {
    () => {
        #[inline]
        fn next(&mut self, i: usize, pred: f64) -> f64 {
            let c = self.cur.code();
            let mut e = self.cur.u;
            let v = self.element(i, c, pred, &mut e);
            self.cur.u = e;
            v
        }
    };
}

pub struct FloatDecoder<'a, T: Float> {
    pub cur: Cursor<'a>,
    eb: f64,
    base: f64,
    radius: u32,
    out: &'a mut [u8],
    _t: std::marker::PhantomData<T>,
}

impl<'a, T: Float> FloatDecoder<'a, T> {
    pub fn new(cur: Cursor<'a>, eb: f64, radius: u32, out: &'a mut [u8]) -> Self {
        FloatDecoder {
            cur,
            eb,
            base: eb,
            radius,
            out,
            _t: std::marker::PhantomData,
        }
    }
}

impl<T: Float> Quant for FloatDecoder<'_, T> {
    fn set_scale(&mut self, scale: f64) {
        self.eb = self.base / scale;
    }
    next_in_order!();
    fn level_lines<R: super::predict::Recon>(&self) -> bool {
        super::interp_row::float32_lines::<T, R>()
    }
    /// The line's elements in order, with the interpolation rule and the element rule written
    /// out for float32 (no per-element index arithmetic of the general loop): the same
    /// operations, so the same values.
    fn level_line<R: super::predict::Recon>(
        &mut self,
        f: &mut [R],
        line: super::interp_row::Line,
    ) -> bool {
        let Some(f) = R::as_f32_mut(f) else {
            return false;
        };
        let (radius, eb) = (self.radius as f64, self.eb);
        let (reach, cubic) = (line.reach, line.cubic);
        for p in line.elements() {
            let pred = super::interp_row::predict(f, p, reach, cubic);
            let c = self.cur.code();
            let v = if c == 0 {
                let mut e = self.cur.u;
                let v = self.element(p, c, pred, &mut e);
                self.cur.u = e;
                v
            } else {
                let q = c as f64 - radius;
                let v = (pred + q * 2.0 * eb) as f32;
                self.out[p * 4..p * 4 + 4].copy_from_slice(&v.to_le_bytes());
                v as f64
            };
            f[p] = v as f32;
        }
        true
    }
}

impl<T: Float> ElementDecoder for FloatDecoder<'_, T> {
    #[inline(always)]
    fn element(&mut self, i: usize, c: u32, pred: f64, e: &mut usize) -> f64 {
        let dst = &mut self.out[i * T::SIZE..(i + 1) * T::SIZE];
        if c == 0 {
            let Some(raw) = self.cur.escaped_at(e, T::SIZE) else {
                return 0.0;
            };
            dst.copy_from_slice(raw);
            return finite_or_zero(T::read(raw).to_f64());
        }
        let q = c as f64 - self.radius as f64;
        let r = T::from_f64(pred + q * 2.0 * self.eb);
        r.write(dst);
        r.to_f64()
    }
    #[inline(always)]
    fn run(&mut self, first: usize, codes: &[u32], pred: f64, e: &mut usize) {
        if codes.contains(&0) {
            return each_element(self, first, codes, pred, e);
        }
        // No escapes: the same arithmetic as `element`, in a loop the compiler vectorises.
        let (radius, eb) = (self.radius as f64, self.eb);
        let dst = &mut self.out[first * T::SIZE..(first + codes.len()) * T::SIZE];
        for (d, &c) in dst.chunks_exact_mut(T::SIZE).zip(codes) {
            T::from_f64(pred + (c as f64 - radius) * 2.0 * eb).write(d);
        }
    }
    /// Exactly when the step `2·eb` is an odd integer `m` (below 2^32) times a power of two
    /// `unit`, the plane holds no escapes, and every value stays below 2^DIGITS units: then
    /// every value is an integer number of units and every sum of visiting-order decoding is
    /// exact, so that `x[i][j] = x[i-1][j] + Σ_{j'≤j} q[i][j']·m` units gives the same bits
    /// with no chain of roundings: a prefix sum in integers along the row, then vectors.
    fn lorenzo_plane(
        &mut self,
        first: usize,
        n1: usize,
        n2: usize,
        codes: &[u32],
        rows: &mut [f64],
    ) -> bool {
        let Some((m, unit)) = odd_times_power_of_two(2.0 * self.eb) else {
            return false;
        };
        let limit = (1u64 << T::DIGITS) as f64;
        let codes = &codes[first..first + n1 * n2];
        // A row's running sum stays within i64: |c − radius| < radius (codes are checked
        // against 2·radius before they get here), times m, over n2 elements.
        let widest = n2 as u128 * self.radius as u128 * m as u128;
        if unit < T::MIN_NORMAL || unit * limit > T::MAX || widest >= 1 << 63 || codes.contains(&0)
        {
            return false;
        }
        let (above, steps) = rows[..2 * n2].split_at_mut(n2);
        above.fill(0.0);
        let out = &mut self.out[first * T::SIZE..(first + n1 * n2) * T::SIZE];
        let radius = self.radius as i64;
        let row_bytes = n2 * T::SIZE;
        for (r, row) in codes.chunks_exact(n2).enumerate() {
            // A row of "no change" everywhere (most of a sparse frame's background at a loose
            // bound) has no step: `above` stays, and so do the values, which are the row
            // above's bytes again.
            if r > 0 && super::runs::all_no_change(row, self.radius) {
                out.copy_within((r - 1) * row_bytes..r * row_bytes, r * row_bytes);
                continue;
            }
            let dst = &mut out[r * row_bytes..(r + 1) * row_bytes];
            // The row's steps, summed: integers below 2^53, so exact as f64 too.
            let mut acc = 0i64;
            for (s, &c) in steps.iter_mut().zip(row) {
                acc += (c as i64 - radius) * m;
                *s = acc as f64;
            }
            // A flag, not a running maximum: an OR the compiler keeps in vectors.
            let mut outgrown = false;
            for ((a, &s), d) in above
                .iter_mut()
                .zip(steps.iter())
                .zip(dst.chunks_exact_mut(T::SIZE))
            {
                // Both below 2^DIGITS ≤ 2^53: exact as f64, and so is their sum unless it
                // passes the limit, which then ends the fast path.
                outgrown |= s.abs() >= limit;
                *a += s;
                outgrown |= a.abs() >= limit;
                T::from_f64(*a * unit).write(d);
            }
            if outgrown {
                return false;
            }
        }
        true
    }
    fn float32_parts(&mut self) -> Option<Float32Parts<'_>> {
        (T::DIGITS == f32::MANTISSA_DIGITS as i32).then_some(Float32Parts {
            unpred: self.cur.unpred,
            out: self.out,
            eb: self.eb,
            radius: self.radius,
            bad: &mut self.cur.bad,
        })
    }
    fn bad(&self) -> bool {
        self.cur.bad
    }
}

/// `v` as `(m, 2^k)` with `m` odd and below 2^32, if it is a positive normal number that has
/// so few significant bits.
fn odd_times_power_of_two(v: f64) -> Option<(i64, f64)> {
    if !(v.is_normal() && v > 0.0) {
        return None;
    }
    let bits = v.to_bits();
    let mantissa = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
    let exponent = ((bits >> 52) & 0x7ff) as i32 - 1075;
    let tz = mantissa.trailing_zeros();
    let m = mantissa >> tz;
    (m < 1 << 32).then(|| (m as i64, 2f64.powi(exponent + tz as i32)))
}

/// [`ElementDecoder::element`] for elements `first..` from `codes`, all predicted by `pred`.
#[inline(always)]
fn each_element<D: ElementDecoder + ?Sized>(
    d: &mut D,
    first: usize,
    codes: &[u32],
    pred: f64,
    e: &mut usize,
) {
    for (i, &c) in (first..).zip(codes) {
        d.element(i, c, pred, e);
    }
}

/// Nearest integer prediction (0 for non-finite predictions).
#[inline]
fn int_pred(pred: f64) -> i128 {
    // The same value either way; f64 → i64 is one instruction, f64 → i128 a library call
    // (13 % of an int32 decode).
    if pred.abs() < 9.0e18 {
        pred.round() as i64 as i128
    } else if pred.is_finite() {
        pred.round().clamp(-1.7e38, 1.7e38) as i128
    } else {
        0
    }
}

/// `v as f64`, through i64 where it fits (the same rounding of the same value, without the
/// library call i128 → f64 costs).
#[inline]
fn wide_to_f64(v: i128) -> f64 {
    match i64::try_from(v) {
        Ok(s) => s as f64,
        Err(_) => v as f64,
    }
}

pub struct IntEncoder<'a, T: Int> {
    pub data: &'a [u8],
    /// Bound in counts (in force; `base` tightened on coarse levels).
    pub eb: u64,
    pub base: u64,
    pub radius: u32,
    pub out: &'a mut Codes,
    pub _t: std::marker::PhantomData<T>,
}

impl<T: Int> Quant for IntEncoder<'_, T> {
    fn set_scale(&mut self, scale: f64) {
        self.eb = (self.base as f64 / scale).floor() as u64;
    }
    #[inline]
    fn next(&mut self, i: usize, pred: f64) -> f64 {
        let raw = &self.data[i * T::SIZE..(i + 1) * T::SIZE];
        let x = T::read(raw).to_i128();
        let p = int_pred(pred);
        let step = 2 * self.eb as i128 + 1;
        let q = (x - p + self.eb as i128).div_euclid(step);
        if q.abs() < self.radius as i128 {
            let r = p + q * step;
            if (r - x).abs() <= self.eb as i128 && T::from_i128(r).is_some() {
                self.out.codes.push((q + self.radius as i128) as u32);
                return wide_to_f64(r);
            }
        }
        self.out.codes.push(0);
        self.out.unpred.extend_from_slice(raw);
        wide_to_f64(x)
    }
}

pub struct IntDecoder<'a, T: Int> {
    pub cur: Cursor<'a>,
    eb: u64,
    base: u64,
    radius: u32,
    out: &'a mut [u8],
    _t: std::marker::PhantomData<T>,
}

impl<'a, T: Int> IntDecoder<'a, T> {
    pub fn new(cur: Cursor<'a>, eb: u64, radius: u32, out: &'a mut [u8]) -> Self {
        IntDecoder {
            cur,
            eb,
            base: eb,
            radius,
            out,
            _t: std::marker::PhantomData,
        }
    }
}

impl<T: Int> Quant for IntDecoder<'_, T> {
    fn set_scale(&mut self, scale: f64) {
        self.eb = (self.base as f64 / scale).floor() as u64;
    }
    next_in_order!();
}

impl<T: Int> ElementDecoder for IntDecoder<'_, T> {
    fn bad(&self) -> bool {
        self.cur.bad
    }
    #[inline(always)]
    fn element(&mut self, i: usize, c: u32, pred: f64, e: &mut usize) -> f64 {
        let dst = &mut self.out[i * T::SIZE..(i + 1) * T::SIZE];
        if c == 0 {
            let Some(raw) = self.cur.escaped_at(e, T::SIZE) else {
                return 0.0;
            };
            dst.copy_from_slice(raw);
            return wide_to_f64(T::read(raw).to_i128());
        }
        let q = c as i128 - self.radius as i128;
        let r = int_pred(pred) + q * (2 * self.eb as i128 + 1);
        match T::from_i128(r) {
            Some(v) => v.write(dst),
            None => self.cur.bad = true,
        }
        wide_to_f64(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast conversions give the values of the plain i128 ones, bit for bit.
    #[test]
    fn int_conversions_keep_values() {
        let preds = [
            0.0,
            -0.5,
            0.5,
            2.5,
            -2.5,
            1e18,
            -8.99e18,
            9.1e18,
            -1e30,
            1e300,
            f64::NAN,
            f64::INFINITY,
        ];
        for p in preds {
            let plain = if p.is_finite() {
                p.round().clamp(-1.7e38, 1.7e38) as i128
            } else {
                0
            };
            assert_eq!(int_pred(p), plain, "{p}");
        }
        let wide = [
            0i128,
            1,
            -1,
            (1 << 53) + 1,
            i64::MAX as i128,
            i64::MAX as i128 + 1,
            u64::MAX as i128,
            -(1i128 << 70),
        ];
        for v in wide {
            assert_eq!(wide_to_f64(v).to_bits(), (v as f64).to_bits(), "{v}");
        }
    }
}
