//! `bin(f1, f2, ...)`: mean binning of the trailing axes by per-axis factors; decode un-bins
//! by nearest neighbour (every pixel gets its bin's mean).
//!
//! Partial edge bins average the pixels they have. Non-finite pixels are left out of a bin's
//! mean (a bin of only non-finite pixels is NaN), so one hot or dead pixel does not blank its
//! neighbours. Integer data get rounded means: the output keeps the input's dtype, so a
//! following `sz(abs=...)` bounds in counts. Binning is lossy by design; its error is reported,
//! not bounded.

use super::elems;
use rayon::prelude::*;
use roibin_registry::options::THREADS;
use roibin_registry::{
    threads, Accepts, ArrayMeta, Codec, CodecInfo, Config, DType, DataKind, Error, OptionSpec,
    OptionType, Result,
};

const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "factors",
        ty: OptionType::IntList { min: 1, max: 1024 },
        default: "2,2",
        doc: "bin factor per trailing axis: bin(2,2) halves rows and columns, bin(1,2,2) the same on a stack",
    },
    THREADS,
];

/// The `bin` stage.
pub struct Bin {
    factors: Vec<usize>,
    threads: usize,
}

/// Elements of a `bin` stage's input to change before they are binned (see
/// [`Bin::encode_patched`]).
pub trait RowPatch: Sync {
    /// The changes to row `row` of the input seen as `[planes × rows, cols]`: (element index
    /// in the whole input, new value), indices ascending.
    fn changes(&self, row: usize) -> &[(usize, f64)];
}

impl Bin {
    /// The `bin` stage of a graph's stage (its options as the registry reads them).
    pub fn from_stage(stage: &roibin_registry::spec::Stage) -> Result<Bin> {
        Bin::from_config(&Config::from_stage(stage, OPTIONS, "bin")?)
    }

    fn from_config(c: &Config) -> Result<Bin> {
        Ok(Bin {
            factors: factors(c)?,
            threads: c.threads()?,
        })
    }

    /// [`Codec::encode`] of `data` with the elements `patch` changes changed first, each bin
    /// that holds one copied and changed on its own: the same bytes as encoding a patched
    /// copy of the whole input, without writing one (roibin's background: a 16 MB frame with
    /// tens of thousands of pixels replaced, a few in every row).
    pub fn encode_patched(
        &self,
        data: &[u8],
        input: &DataKind,
        out: &mut Vec<u8>,
        patch: Option<&dyn RowPatch>,
    ) -> Result<()> {
        let m = input.array("bin")?;
        let ([p, r, c], [fp, fr, fc]) = view("bin", m, &self.factors)?;
        let (bp, br, bc) = (p.div_ceil(fp), r.div_ceil(fr), c.div_ceil(fc));
        let (es, dtype) = (m.dtype.size(), m.dtype);
        let start = out.len();
        out.resize(start + bp * br * bc * es, 0);
        let dst = &mut out[start..];
        threads::install(self.threads, || {
            dst.par_chunks_mut((bc * es).max(1))
                .enumerate()
                .for_each(|(row, o)| {
                    with_row_buffers(bc, |mut sums, vals, patched, saved| {
                        let (pb, rb) = (row / br, row % br);
                        for pp in pb * fp..((pb + 1) * fp).min(p) {
                            for rr in rb * fr..((rb + 1) * fr).min(r) {
                                let base = (pp * r + rr) * c;
                                let input = &data[base * es..(base + c) * es];
                                let changes = patch.map_or(&[][..], |q| q.changes(pp * r + rr));
                                // Each bin holding a change: its sums before this row,
                                // the row added in place, then those bins' sums put back
                                // and their changed values added instead, in column order
                                // as the row's were: the same sums.
                                saved.clear();
                                for &(i, _) in changes {
                                    let j = (i - base) / fc;
                                    if saved.last().is_none_or(|s| s.0 != j) {
                                        saved.push((j, sums.sum[j], sums.cnt[j]));
                                    }
                                }
                                add_elements(input, dtype, fc, sums.starting_at(0), vals);
                                let mut k = 0;
                                for &(j, sum, cnt) in saved.iter() {
                                    let (b0, b1) = (j * fc, ((j + 1) * fc).min(c));
                                    patched.clear();
                                    patched.extend_from_slice(&input[b0 * es..b1 * es]);
                                    while let Some(&(i, v)) =
                                        changes.get(k).filter(|e| e.0 < base + b1)
                                    {
                                        let at = (i - base - b0) * es;
                                        elems::put(v, dtype, &mut patched[at..at + es]);
                                        k += 1;
                                    }
                                    (sums.sum[j], sums.cnt[j]) = (sum, cnt);
                                    add_elements(patched, dtype, fc, sums.starting_at(j), vals);
                                }
                            }
                        }
                        put_means(sums.sum, sums.cnt, m.dtype, o);
                    })
                });
        });
        Ok(())
    }
}

/// Per-bin sums and counts of one output row, from some bin on.
struct Sums<'a> {
    sum: &'a mut [f64],
    cnt: &'a mut [u32],
}

impl Sums<'_> {
    fn starting_at(&mut self, bin: usize) -> Sums<'_> {
        Sums {
            sum: &mut self.sum[bin..],
            cnt: &mut self.cnt[bin..],
        }
    }
}

/// Add `elements` (whole bins of `fc` columns from the first of `sums`, the last possibly
/// partial) into `sums`; `vals` is a row of f64 to reuse.
fn add_elements(elements: &[u8], dtype: DType, fc: usize, sums: Sums<'_>, vals: &mut Vec<f64>) {
    let Sums { sum, cnt } = sums;
    match (dtype, fc) {
        // float32 rows read in place: no f64 copy of the row.
        (DType::F32, 2) => add_f32_windows::<2>(elements, sum, cnt),
        (DType::F32, 4) => add_f32_windows::<4>(elements, sum, cnt),
        _ => {
            elems::row_f64(elements, dtype, vals);
            match fc {
                2 => add_windows::<2>(vals, sum, cnt),
                4 => add_windows::<4>(vals, sum, cnt),
                _ => add_windows_of(fc, vals, sum, cnt),
            }
        }
    }
}

/// The array as (planes, rows, cols) with factors for each; leading axes merge into planes.
fn view(codec: &str, m: &ArrayMeta, factors: &[usize]) -> Result<([usize; 3], [usize; 3])> {
    if factors.len() > m.rank() {
        return Err(Error::unsupported(
            codec,
            format!("rank {}", m.rank()),
            format!("{} factors need at least that many axes", factors.len()),
        ));
    }
    // Factors for every axis: 1 on the leading axes the list does not reach.
    let k = m.rank();
    let lead = k - factors.len();
    let f = |i: usize| if i < lead { 1 } else { factors[i - lead] };
    if k > 3 && (0..k - 3).any(|i| f(i) != 1) {
        return Err(Error::unsupported(
            codec,
            format!("rank {}", m.rank()),
            "only the last three axes can be binned",
        ));
    }
    let s = &m.shape;
    let dims = match k {
        1 => [1, 1, s[0]],
        2 => [1, s[0], s[1]],
        _ => [s[..k - 2].iter().product(), s[k - 2], s[k - 1]],
    };
    let fac = match k {
        1 => [1, 1, f(0)],
        2 => [1, f(0), f(1)],
        _ => [f(k - 3), f(k - 2), f(k - 1)],
    };
    if k > 3 && fac[0] != 1 {
        return Err(Error::unsupported(
            codec,
            format!("rank {k}"),
            "on 4-D data only the last two axes can be binned",
        ));
    }
    Ok((dims, fac))
}

/// Zeroed per-bin sums and counts for `bins` bins, a row of f64, a bin of elements (a changed
/// copy) and the sums of the bins a row changes, kept per thread: a chunk loop allocates none
/// of them after warm-up.
fn with_row_buffers<R>(
    bins: usize,
    f: impl FnOnce(Sums<'_>, &mut Vec<f64>, &mut Vec<u8>, &mut Vec<(usize, f64, u32)>) -> R,
) -> R {
    type Buffers = (
        Vec<f64>,
        Vec<u32>,
        Vec<f64>,
        Vec<u8>,
        Vec<(usize, f64, u32)>,
    );
    thread_local! {
        static ROW: std::cell::RefCell<Buffers> = const {
            std::cell::RefCell::new((Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new()))
        };
    }
    ROW.with(|b| {
        let mut b = b.borrow_mut();
        let (sum, cnt, vals, patched, saved) = &mut *b;
        sum.clear();
        sum.resize(bins, 0.0);
        cnt.clear();
        cnt.resize(bins, 0);
        f(Sums { sum, cnt }, vals, patched, saved)
    })
}

/// Add the finite values of each window of `fc` values of `vals` into `sum` and count them
/// in `cnt` (a window per bin; the last may be partial).
fn add_windows_of(fc: usize, vals: &[f64], sum: &mut [f64], cnt: &mut [u32]) {
    for (j, win) in vals.chunks(fc).enumerate() {
        for &v in win {
            if v.is_finite() {
                sum[j] += v;
                cnt[j] += 1;
            }
        }
    }
}

/// [`add_windows_of`] for a width known when compiling, without a branch per value (the
/// common 2 and 4): adding 0.0 for a value left out changes no sum, which starts at +0.0 and so
/// is never −0.0. The same additions in the same order, so the same bits.
fn add_windows<const F: usize>(vals: &[f64], sum: &mut [f64], cnt: &mut [u32]) {
    let whole = vals.chunks_exact(F);
    let tail = whole.remainder();
    for ((win, s), n) in whole.zip(sum.iter_mut()).zip(cnt.iter_mut()) {
        for &v in win {
            let finite = v.is_finite();
            *s += if finite { v } else { 0.0 };
            *n += finite as u32;
        }
    }
    let j = (vals.len() / F).min(sum.len()).min(cnt.len());
    add_windows_of(F, tail, &mut sum[j..], &mut cnt[j..]);
}

/// [`add_windows`] of a row of little-endian float32 `bytes`, each value widened as it is
/// added: the same additions of the same f64 values, so the same bits.
fn add_f32_windows<const F: usize>(bytes: &[u8], sum: &mut [f64], cnt: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    let done = if F == 2 && std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above), all `add_f32_pairs_avx2` asks for.
        unsafe { add_f32_pairs_avx2(bytes, sum, cnt) }
    } else {
        0
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    let (bytes, sum, cnt) = (&bytes[done * 4 * F..], &mut sum[done..], &mut cnt[done..]);
    let whole = bytes.chunks_exact(4 * F);
    let tail = whole.remainder();
    for ((win, s), n) in whole.zip(sum.iter_mut()).zip(cnt.iter_mut()) {
        for b in win.chunks_exact(4) {
            let v = f32::from_le_bytes(b.try_into().expect("4 bytes")) as f64;
            let finite = v.is_finite();
            *s += if finite { v } else { 0.0 };
            *n += finite as u32;
        }
    }
    let tail: Vec<f64> = tail
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")) as f64)
        .collect();
    let j = (bytes.len() / 4 / F).min(sum.len()).min(cnt.len());
    add_windows_of(F, &tail, &mut sum[j..], &mut cnt[j..]);
}

/// [`add_f32_windows`] of pairs, four pairs a step with AVX2: each pair's first value is
/// added to its sum, then its second, as the loop does (no FMA, so the same bits); a value
/// that is not finite adds +0.0 and no count. Returns how many pairs it summed (whole steps;
/// the rest is the caller's).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_f32_pairs_avx2(bytes: &[u8], sum: &mut [f64], cnt: &mut [u32]) -> usize {
    use std::arch::x86_64::*;
    let pairs = (bytes.len() / 8).min(sum.len()).min(cnt.len()) / 4 * 4;
    // SAFETY: the caller checked AVX2. Step k reads bytes 8k..8k+32 of `bytes` (little-endian
    // float32, x86 is little-endian) and reads and writes sum[k..k+4] and cnt[k..k+4]: all
    // below `pairs`, which fits each of them; unaligned loads and stores.
    unsafe {
        let evens_then_odds = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
        let magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let inf = _mm256_set1_ps(f32::INFINITY);
        for k in (0..pairs).step_by(4) {
            let v = _mm256_loadu_ps(bytes.as_ptr().add(8 * k) as *const f32);
            // Below +∞ in magnitude (ordered: NaN is not).
            let finite = _mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_and_ps(v, magnitude), inf);
            let y = _mm256_permutevar8x32_ps(_mm256_and_ps(v, finite), evens_then_odds);
            let m = _mm256_permutevar8x32_epi32(_mm256_castps_si256(finite), evens_then_odds);
            let first = _mm256_cvtps_pd(_mm256_castps256_ps128(y));
            let second = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(y));
            let at = sum.as_mut_ptr().add(k);
            _mm256_storeu_pd(
                at,
                _mm256_add_pd(_mm256_add_pd(_mm256_loadu_pd(at), first), second),
            );
            // A finite value's mask is −1 as an integer.
            let c = cnt.as_mut_ptr().add(k) as *mut __m128i;
            let c1 = _mm_sub_epi32(_mm_loadu_si128(c), _mm256_castsi256_si128(m));
            _mm_storeu_si128(c, _mm_sub_epi32(c1, _mm256_extracti128_si256::<1>(m)));
        }
    }
    pairs
}

/// Each bin's mean (`sum / cnt`, NaN for a bin with no finite value) into `out`, elements of
/// `dtype`; float32 typed (a division and a rounding per bin, which the compiler vectorises),
/// the rest through [`elems::put`].
fn put_means(sum: &[f64], cnt: &[u32], dtype: DType, out: &mut [u8]) {
    let mean = |s: f64, n: u32| if n > 0 { s / n as f64 } else { f64::NAN };
    if dtype == DType::F32 {
        for ((o, &s), &n) in out.chunks_exact_mut(4).zip(sum).zip(cnt) {
            o.copy_from_slice(&(mean(s, n) as f32).to_le_bytes());
        }
        return;
    }
    let es = dtype.size();
    for ((o, &s), &n) in out.chunks_exact_mut(es).zip(sum).zip(cnt) {
        elems::put(mean(s, n), dtype, o);
    }
}

/// Binned shape: every binned axis rounds up (partial edge bins).
pub fn binned_shape(m: &ArrayMeta, factors: &[usize]) -> Vec<usize> {
    let mut out = m.shape.clone();
    let k = out.len();
    for (j, &f) in factors.iter().rev().enumerate() {
        if j < k {
            out[k - 1 - j] = out[k - 1 - j].div_ceil(f.max(1));
        }
    }
    out
}

impl Codec for Bin {
    fn output(&self, input: &DataKind) -> Result<DataKind> {
        let m = input.array("bin")?;
        view("bin", m, &self.factors)?;
        Ok(DataKind::Array(ArrayMeta::new(
            m.dtype,
            binned_shape(m, &self.factors),
        )))
    }

    fn encode(&self, data: &[u8], input: &DataKind, out: &mut Vec<u8>) -> Result<()> {
        self.encode_patched(data, input, out, None)
    }

    fn decode(&self, data: &[u8], input: &DataKind, out: &mut Vec<u8>) -> Result<()> {
        let m = input.array("bin")?;
        let start = out.len();
        out.resize(start + m.nbytes(), 0);
        self.decode_into(data, input, &mut out[start..])
    }

    fn decode_into(&self, data: &[u8], input: &DataKind, dst: &mut [u8]) -> Result<()> {
        let m = input.array("bin")?;
        let ([p, r, c], [fp, fr, fc]) = view("bin", m, &self.factors)?;
        let (br, bc) = (r.div_ceil(fr), c.div_ceil(fc));
        let es = m.dtype.size();
        if data.len() != p.div_ceil(fp) * br * bc * es || dst.len() != m.nbytes() {
            return Err(Error::corrupt(
                "bin",
                format!("{} binned bytes do not match {m}", data.len()),
            ));
        }
        threads::install(self.threads, || {
            unbin(data, dst, [p, r, c], [fp, fr, fc], es)
        });
        Ok(())
    }
}

/// Un-bin `data` (binned values of `es` bytes) into `dst`, a `[p, r, c]` array binned by
/// `[fp, fr, fc]`; sizes checked by the caller. Runs on the current rayon pool.
fn unbin(data: &[u8], dst: &mut [u8], [_, r, c]: [usize; 3], [fp, fr, fc]: [usize; 3], es: usize) {
    let (br, bc) = (r.div_ceil(fr), c.div_ceil(fc));
    let (row_bytes, plane_bytes) = (c * es, r * c * es);
    if row_bytes == 0 {
        return;
    }
    for (plane, out) in dst.chunks_mut(plane_bytes).enumerate() {
        let src_plane = (plane / fp) * br * bc;
        // A group of `fr` rows shares its bins: the first row is filled, the others are
        // copies of it.
        out.par_chunks_mut(fr * row_bytes)
            .enumerate()
            .for_each(|(g, rows)| {
                let src = (src_plane + g * bc) * es;
                let (first, rest) = rows.split_at_mut(row_bytes);
                fill_row(first, &data[src..src + bc * es], fc, es);
                for row in rest.chunks_mut(row_bytes) {
                    row.copy_from_slice(first);
                }
            });
    }
}

/// One un-binned row: each `es`-byte binned value repeated over its `fc` columns.
fn fill_row(row: &mut [u8], bins: &[u8], fc: usize, es: usize) {
    match es {
        1 => fill_row_n::<1>(row, bins, fc),
        2 => fill_row_n::<2>(row, bins, fc),
        4 => fill_row_n::<4>(row, bins, fc),
        8 => fill_row_n::<8>(row, bins, fc),
        _ => {
            for (run, v) in row.chunks_mut(fc * es).zip(bins.chunks_exact(es)) {
                for e in run.chunks_exact_mut(es) {
                    e.copy_from_slice(v);
                }
            }
        }
    }
}

/// [`fill_row`] for `N`-byte elements: fixed-size stores, not a copy call per element.
fn fill_row_n<const N: usize>(row: &mut [u8], bins: &[u8], fc: usize) {
    for (run, v) in row.chunks_mut(fc * N).zip(bins.chunks_exact(N)) {
        let v: [u8; N] = v.try_into().expect("N bytes");
        for e in run.chunks_exact_mut(N) {
            e.copy_from_slice(&v);
        }
    }
}

/// The factors of a `bin` stage of a spec (validated as building it would).
pub fn factors_of(stage: &roibin_registry::spec::Stage) -> Result<Vec<usize>> {
    Ok(Bin::from_stage(stage)?.factors)
}

fn factors(c: &Config) -> Result<Vec<usize>> {
    let factors: Vec<usize> = c
        .get::<Vec<i64>>("factors")?
        .iter()
        .map(|&x| x as usize)
        .collect();
    if factors.is_empty() || factors.len() > 3 {
        return Err(Error::option(
            format!("{}:factors", c.path),
            "give one to three factors, e.g. bin(2,2)",
        ));
    }
    Ok(factors)
}

fn build(c: &Config) -> Result<Box<dyn Codec>> {
    Ok(Box::new(Bin::from_config(c)?))
}

inventory::submit! {
    CodecInfo {
        name: "bin",
        version: 1,
        doc: "mean binning of the trailing axes (partial edge bins kept); decode repeats each bin's mean (lossy by design)",
        options: OPTIONS,
        accepts: Accepts::ARRAYS,
        thread_safe: true,
        build,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The branch-free window sums give the branching loop's bits: rows of any length (a
    /// partial last window), NaN, infinities, zeros of both signs, values that cancel.
    #[test]
    fn fixed_width_window_sums_match_the_loop() {
        let mut next = crate::test_rng::xorshift(0xb1_2020);
        for round in 0..400 {
            let n = (next() % 70) as usize;
            let vals: Vec<f64> = (0..n)
                .map(|_| match next() % 8 {
                    0 => f64::NAN,
                    1 => f64::INFINITY,
                    2 => -0.0,
                    3 => 0.0,
                    4 => 1e16,
                    5 => -1e16,
                    _ => (next() % 1000) as f64 / 7.0 - 50.0,
                })
                .collect();
            for f in [2usize, 4] {
                let bins = n.div_ceil(f);
                let (mut s1, mut c1) = (vec![0.0; bins], vec![0u32; bins]);
                let (mut s2, mut c2) = (vec![0.0; bins], vec![0u32; bins]);
                add_windows_of(f, &vals, &mut s1, &mut c1);
                match f {
                    2 => add_windows::<2>(&vals, &mut s2, &mut c2),
                    _ => add_windows::<4>(&vals, &mut s2, &mut c2),
                }
                let bits = |s: &[f64]| s.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    (bits(&s1), &c1),
                    (bits(&s2), &c2),
                    "round {round}, width {f}"
                );
                // The float32 row read in place, against the loop over the widened values.
                let v32: Vec<f32> = vals.iter().map(|&v| v as f32).collect();
                let wide: Vec<f64> = v32.iter().map(|&v| v as f64).collect();
                let bytes: Vec<u8> = v32.iter().flat_map(|v| v.to_le_bytes()).collect();
                let (mut s3, mut c3) = (vec![0.0; bins], vec![0u32; bins]);
                let (mut s4, mut c4) = (vec![0.0; bins], vec![0u32; bins]);
                // Two rows into the same sums, as a bin of two rows adds them (the second
                // reversed: other values meet in each bin).
                let wide_rev: Vec<f64> = wide.iter().rev().copied().collect();
                let bytes_rev: Vec<u8> = v32.iter().rev().flat_map(|v| v.to_le_bytes()).collect();
                for (w, b) in [(&wide, &bytes), (&wide_rev, &bytes_rev)] {
                    add_windows_of(f, w, &mut s3, &mut c3);
                    match f {
                        2 => add_f32_windows::<2>(b, &mut s4, &mut c4),
                        _ => add_f32_windows::<4>(b, &mut s4, &mut c4),
                    }
                }
                assert_eq!(
                    (bits(&s3), c3),
                    (bits(&s4), c4),
                    "f32 round {round}, width {f}"
                );
            }
        }
    }

    /// Un-binning matches its definition, `out[z][y][x] = bins[z/fp][y/fr][x/fc]`, for every
    /// element size and for shapes the factors do not divide.
    #[test]
    fn unbin_matches_the_definition() {
        for es in [1, 2, 3, 4, 8] {
            for (shape, f) in [
                ([1, 5, 7], [1, 2, 3]),
                ([4, 6, 4], [2, 4, 1]),
                ([3, 1, 9], [2, 1, 4]),
            ] {
                let [p, r, c]: [usize; 3] = shape;
                let [fp, fr, fc]: [usize; 3] = f;
                let (bp, br, bc) = (p.div_ceil(fp), r.div_ceil(fr), c.div_ceil(fc));
                let data: Vec<u8> = (0..bp * br * bc * es)
                    .map(|i| (i * 37 % 251) as u8)
                    .collect();
                let mut dst = vec![0u8; p * r * c * es];
                unbin(&data, &mut dst, shape, f, es);
                for z in 0..p {
                    for y in 0..r {
                        for x in 0..c {
                            let b = ((z / fp) * br + y / fr) * bc + x / fc;
                            let o = (z * r + y) * c + x;
                            assert_eq!(dst[o * es..(o + 1) * es], data[b * es..(b + 1) * es]);
                        }
                    }
                }
            }
        }
    }
}
