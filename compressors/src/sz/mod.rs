//! `sz(abs|rel|psnr, predictor, radius, level, threads)`: SZ3-class error-bounded lossy
//! compression, ours, in pure Rust.
//!
//! Per piece (a slab of the chunk along its slowest non-trivial axis, coded independently so
//! threads can share the work): predict every element from already reconstructed neighbours
//! (Lorenzo 1-3D, Lorenzo per 2-D slice, SZ3-style multilevel linear/cubic interpolation, or
//! 16×16 block means for sparse detector frames,
//! chosen per piece by trying each on a sample), quantise the residual linearly in steps of 2e,
//! escape values that would miss the bound (NaN and ±Inf always), Huffman-code the
//! quantisation codes (with runs of "no change" as tokens where it dominates), and zstd the
//! lot.
//!
//! Piece stream (inside `zstd`): `u8 predictor (0x80: levels stored) · u8 coding · f64 bound ·
//! u32 radius · u64 escapes · f64 alpha · f64 beta (interpolation levels, when stored) ·
//! f32 block means (block-mean predictor only) · codes (a Huffman stream, the runs stream of
//! [`runs`], or u32 codes) · escaped values`.
//!
//! Guarantee: |x − x'| ≤ e for every finite element (e = abs, or rel × the chunk's finite value
//! range, or the bound a PSNR target implies); non-finite values come back bit-exact. Every
//! reconstruction is computed by the code the decoder runs and checked before it is kept.

#[cfg(target_arch = "x86_64")]
mod interp_avx2;
mod interp_row;
#[cfg(target_arch = "x86_64")]
mod lorenzo_avx2;
mod lorenzo_rows;
mod means;
mod medians;
mod plane;
mod predict;
pub(crate) mod quant;
#[cfg(target_arch = "x86_64")]
mod quant_avx2;
mod runs;

use crate::blocked;
use crate::huffman;
use predict::{Levels, Predictor};
use quant::{Codes, Cursor, FloatDecoder, FloatEncoder, IntDecoder, IntEncoder};
use roibin_registry::options::THREADS;
use roibin_registry::stream::Reader;
use roibin_registry::{
    Accepts, ArrayMeta, Codec, CodecInfo, Config, DType, DataKind, Error, OptionSpec, OptionType,
    Result,
};
use std::marker::PhantomData;

const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "abs",
        ty: OptionType::Float {
            min: 0.0,
            max: 1e300,
        },
        default: "",
        doc: "absolute bound: |x - x'| <= abs for every finite element (counts for integer data)",
    },
    OptionSpec {
        name: "rel",
        ty: OptionType::Float { min: 0.0, max: 1.0 },
        default: "",
        doc: "relative bound: abs = rel × (max - min) of the chunk's finite values",
    },
    OptionSpec {
        name: "psnr",
        ty: OptionType::Float {
            min: 1.0,
            max: 400.0,
        },
        default: "",
        doc: "target PSNR in dB over the chunk's value range (sets abs = range·√3·10^(-psnr/20))",
    },
    OptionSpec {
        name: "predictor",
        ty: OptionType::Choice(&[
            "auto",
            "lorenzo",
            "lorenzo2d",
            "interp_linear",
            "interp_cubic",
            "block_mean",
        ]),
        default: "auto",
        doc: "prediction: auto picks per piece by trying each on a sample",
    },
    OptionSpec {
        name: "radius",
        ty: OptionType::Int {
            min: 2,
            max: 1 << 20,
        },
        default: "32768",
        doc: "quantisation bins on each side of the prediction; residuals beyond are escaped",
    },
    OptionSpec {
        name: "level",
        ty: OptionType::Int { min: -7, max: 22 },
        default: "3",
        doc: "zstd level applied after Huffman coding",
    },
    THREADS,
];

/// The bound, as configured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    Abs(f64),
    Rel(f64),
    Psnr(f64),
}

/// `sz` configuration.
#[derive(Debug, Clone)]
pub struct Sz {
    pub bound: Bound,
    /// None = auto.
    pub predictor: Option<Predictor>,
    pub radius: u32,
    pub level: i32,
    pub threads: usize,
}

/// Pieces hold at least this many elements (prediction restarts at piece edges).
/// Volumes keep long runs for the coarse interpolation levels; stacks of 2-D frames choose their
/// predictor per region of a frame.
fn piece_elems(dims: [usize; 3]) -> usize {
    if dims[0] > 1 {
        1 << 23
    } else {
        1 << 20
    }
}

/// The 3-D view: rank 1 → (1, 1, n), 2 → (1, a, b), 3 as is, 4 → (a·b, c, d).
fn view(shape: &[usize]) -> [usize; 3] {
    match shape {
        [a] => [1, 1, *a],
        [a, b] => [1, *a, *b],
        [a, b, c] => [*a, *b, *c],
        [a, b, c, d] => [a * b, *c, *d],
        _ => [1, 1, shape.iter().product()],
    }
}

/// The axis pieces split, and the elements in one step along it.
fn split_axis(dims: [usize; 3]) -> (usize, usize) {
    let axis = (0..3).find(|&a| dims[a] > 1).unwrap_or(2);
    (axis, dims[axis + 1..].iter().product())
}

/// Dims of a piece of `elems` elements cut from `dims` along its split axis.
fn piece_dims(dims: [usize; 3], elems: usize) -> Result<[usize; 3]> {
    let (axis, row) = split_axis(dims);
    if elems % row != 0 {
        return Err(Error::corrupt("sz", "piece is not whole rows"));
    }
    let mut d = [1, 1, 1];
    d[axis] = elems / row;
    d[axis + 1..].copy_from_slice(&dims[axis + 1..]);
    Ok(d)
}

/// (min, max) of the finite values, as f64.
fn finite_range(data: &[u8], dtype: DType) -> Option<(f64, f64)> {
    let mut range: Option<(f64, f64)> = None;
    roibin_registry::metrics::for_each_f64(data, dtype, |v| {
        if v.is_finite() {
            range = Some(range.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))));
        }
    });
    range
}

impl Sz {
    /// The absolute bound for this chunk.
    pub fn abs_bound(&self, data: &[u8], dtype: DType) -> f64 {
        let range = || finite_range(data, dtype).map_or(0.0, |(lo, hi)| hi - lo);
        match self.bound {
            Bound::Abs(e) => e,
            Bound::Rel(r) => r * range(),
            Bound::Psnr(p) => range() * 3f64.sqrt() * 10f64.powf(-p / 20.0),
        }
    }

    fn encode_piece(
        &self,
        dtype: DType,
        dims: [usize; 3],
        data: &[u8],
        eb: f64,
        o: &mut Vec<u8>,
    ) -> Result<()> {
        with_scratch(|sc| {
            let pred = match self.predictor {
                Some(p) => p,
                None => choose(dtype, dims, data, eb, self.radius, sc),
            };
            let (levels, quantised) = match pred.is_interp() {
                true => tune_levels(self, dtype, dims, data, eb, pred, sc)?,
                false => (Levels::DEFAULT, false),
            };
            sc.means.compute(pred, dtype, dims, data, eb);
            if !quantised {
                quantise_into(
                    dtype,
                    pred,
                    dims,
                    data,
                    eb,
                    self.radius,
                    (&sc.means.values, levels),
                    &mut sc.codes,
                    &mut sc.recon,
                );
            }
            let piece = Piece {
                pred,
                levels,
                dtype,
                eb,
                radius: self.radius,
                codes: &sc.codes,
                means: &sc.means.stored,
            };
            piece.body_chosen(&mut sc.runs, &mut sc.body);
            zstd_into(&sc.body, self.level, o)?;
            Ok(())
        })
    }
}

/// A quantised piece, ready to be stored.
struct Piece<'a> {
    pred: Predictor,
    /// Interpolation levels' bounds; stored (flag [`LEVELS_STORED`] on the predictor byte)
    /// unless the default.
    levels: Levels,
    dtype: DType,
    eb: f64,
    radius: u32,
    codes: &'a Codes,
    /// Block means in units of the bound (block-mean predictor only).
    means: &'a [f32],
}

impl Piece<'_> {
    /// The piece's stream (before zstd) into `body`, its codes stored as [`coding_for`] says.
    ///
    /// Huffman cannot spend less than a bit per code, and zstd then finds the runs of the
    /// dominant "no change" code in its bit stream at two to three bytes per other code. Where
    /// that code dominates (flat backgrounds at a loose bound) its runs become tokens instead:
    /// 10-25% smaller on detector frames at abs 90. Where a sample of the codes says so, the
    /// runs are coded first and the share checked from what they held, instead of a pass
    /// counting every code before (the codes stream from memory: the 256³ field's encode at
    /// bound 90 went 68.8 → 66.8 ms, medians of 10 interleaved on one core); the same choice
    /// either way.
    fn body_chosen(&self, runs: &mut runs::RunScratch, body: &mut Vec<u8>) {
        let codes = &self.codes.codes;
        if sampled_share(codes, self.radius) > RUNS_LIKELY {
            let others = self.body(Coding::Runs, runs, body);
            let hits = codes.len() - others.expect("runs count the other codes");
            if share(hits, codes.len()) > RUNS_ABOVE {
                return;
            }
        }
        self.body(coding_for(self.codes, self.radius), runs, body);
    }

    /// The piece's stream (before zstd) into `body`, its codes stored as `coding`; for runs,
    /// how many codes are not "no change".
    fn body(
        &self,
        coding: Coding,
        runs: &mut runs::RunScratch,
        body: &mut Vec<u8>,
    ) -> Option<usize> {
        let escapes = self.codes.unpred.len() / self.dtype.size();
        let stored = self.levels != Levels::DEFAULT;
        body.clear();
        body.push(self.pred as u8 | if stored { LEVELS_STORED } else { 0 });
        body.push(coding as u8);
        body.extend_from_slice(&self.eb.to_le_bytes());
        body.extend_from_slice(&self.radius.to_le_bytes());
        body.extend_from_slice(&(escapes as u64).to_le_bytes());
        if stored {
            body.extend_from_slice(&self.levels.alpha.to_le_bytes());
            body.extend_from_slice(&self.levels.beta.to_le_bytes());
        }
        body.extend(self.means.iter().flat_map(|m| m.to_le_bytes()));
        let codes = &self.codes.codes;
        let others = match coding {
            Coding::Huffman => {
                huffman::encode(codes, 2 * self.radius as usize, body);
                None
            }
            Coding::Runs => Some(runs::encode(codes, self.radius, runs, body)),
            Coding::Raw => {
                body.extend(codes.iter().flat_map(|c| c.to_le_bytes()));
                None
            }
        };
        body.extend_from_slice(&self.codes.unpred);
        others
    }
}

/// Flag on a piece's predictor byte: `f64 alpha · f64 beta` ([`Levels`]) follow the escape
/// count (since 2026-12-03; pieces without it use [`Levels::DEFAULT`]).
const LEVELS_STORED: u8 = 0x80;

/// The [`Levels`] that store a central cube of an interpolated piece smallest (up to 64 a
/// side: the level structure of a 3-D field, which `choose`'s flat sample lacks), measured in
/// stored bytes: an entropy estimate missed it (at loose bounds nearly every code is "no
/// change", and what the rest cost is what differs). The default on a tie. Also whether the
/// sample was the whole piece, whose winning codes are then left in `sc.codes`.
fn tune_levels(
    sz: &Sz,
    dtype: DType,
    dims: [usize; 3],
    data: &[u8],
    eb: f64,
    pred: Predictor,
    sc: &mut Scratch,
) -> Result<(Levels, bool)> {
    let sd = dims.map(|d| d.min(64));
    let whole = sd == dims;
    central_sample(dtype, dims, data, sd, &mut sc.sample);
    let mut best = (usize::MAX, Levels::DEFAULT);
    for levels in Levels::CANDIDATES {
        quantise_into(
            dtype,
            pred,
            sd,
            &sc.sample,
            eb,
            sz.radius,
            (&[], levels),
            &mut sc.trial,
            &mut sc.trial_recon,
        );
        let piece = Piece {
            pred,
            levels,
            dtype,
            eb,
            radius: sz.radius,
            codes: &sc.trial,
            means: &[],
        };
        piece.body_chosen(&mut sc.runs, &mut sc.body);
        sc.alt.clear();
        zstd_into(&sc.body, sz.level, &mut sc.alt)?;
        if sc.alt.len() < best.0 {
            best = (sc.alt.len(), levels);
            if whole {
                // The sample is the piece: keep the winner's codes rather than quantise again.
                std::mem::swap(&mut sc.trial, &mut sc.codes);
            }
        }
    }
    Ok((best.1, whole))
}

/// The `sd` block at the centre of a piece of `dims`, into `out`.
fn central_sample(dtype: DType, dims: [usize; 3], data: &[u8], sd: [usize; 3], out: &mut Vec<u8>) {
    let off = [0, 1, 2].map(|a| (dims[a] - sd[a]) / 2);
    let es = dtype.size();
    out.clear();
    for i0 in 0..sd[0] {
        for i1 in 0..sd[1] {
            let start = (((i0 + off[0]) * dims[1] + i1 + off[1]) * dims[2] + off[2]) * es;
            out.extend_from_slice(&data[start..start + sd[2] * es]);
        }
    }
}

/// Expand `$float!(T)` or `$int!(T)` for the element type of `$dtype`.
macro_rules! for_dtype {
    ($dtype:expr, $float:ident, $int:ident) => {
        match $dtype {
            DType::F32 => $float!(f32),
            DType::F64 => $float!(f64),
            DType::U8 => $int!(u8),
            DType::U16 => $int!(u16),
            DType::U32 => $int!(u32),
            DType::U64 => $int!(u64),
            DType::I8 => $int!(i8),
            DType::I16 => $int!(i16),
            DType::I32 => $int!(i32),
            DType::I64 => $int!(i64),
        }
    };
}

/// How a piece stores its quantisation codes (one byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Coding {
    Huffman = 0,
    /// u32 little-endian codes, left to zstd (written until 2026-12-03, still read).
    Raw = 1,
    /// Huffman tokens with runs of the zero residual ([`runs`]).
    Runs = 2,
}

/// Share of the zero-residual code above which [`Coding::Runs`] stores the codes. Stored both
/// ways, of 24 pieces with shares from 0.85 to 0.96 (frames, binned backgrounds and a field, at
/// bounds 3 to 40), runs came out smaller in 15 of the 17 above 0.91 (by up to 11%; 4-5% larger
/// in two) and larger in all 7 below (by 0.5-4.7%); above 0.96, smaller in every test. Trying
/// both on every piece had cost a sixth of the write.
const RUNS_ABOVE: f64 = 0.91;

/// How a piece's codes are stored: runs where "no change" dominates.
fn coding_for(codes: &Codes, radius: u32) -> Coding {
    if dominant_share(&codes.codes, radius) > RUNS_ABOVE {
        Coding::Runs
    } else {
        Coding::Huffman
    }
}

/// Share of the zero-residual code.
fn dominant_share(codes: &[u32], radius: u32) -> f64 {
    // The dominant code is the zero residual (`radius`) whenever any code dominates.
    share(codes.iter().filter(|&&c| c == radius).count(), codes.len())
}

/// `hits` of `n` as a share.
fn share(hits: usize, n: usize) -> f64 {
    hits as f64 / n.max(1) as f64
}

/// Above this [`sampled_share`], a piece's codes are coded as runs before their share is
/// known (and again as Huffman if it is not above [`RUNS_ABOVE`]).
const RUNS_LIKELY: f64 = 0.97;

/// The share of the zero-residual code in one block of 16 codes (a 64-byte cache line) of
/// every 64: each block a cache miss (one in 16 had cost 2.6% of the field's encode at bound
/// 90, one in 64 about a quarter of that).
fn sampled_share(codes: &[u32], radius: u32) -> f64 {
    let blocks = codes.chunks_exact(16).step_by(64);
    let n = blocks.len() * 16;
    let hits: usize = blocks
        .map(|b| b.iter().filter(|&&c| c == radius).count())
        .sum();
    share(hits, n)
}

/// Block medians for [`Predictor::BlockMean`] (nothing for the others), with reused buffers.
///
/// Means are stored in units of the bound (rounded), so flat backgrounds store runs of zeros;
/// the prediction only has to be close, and both sides use the stored value.
#[derive(Default)]
struct Means {
    /// What the piece stores (units of the bound).
    stored: Vec<f32>,
    /// The predictions they stand for.
    values: Vec<f64>,
    as_f64: Vec<f64>,
    /// `stored` before its rounding to f32: each block's median in units of the bound, or the
    /// median itself where the bound gives no unit.
    block_values: Vec<f64>,
    scratch: medians::MedianScratch<f64>,
    scratch32: medians::MedianScratch<f32>,
}

impl Means {
    fn compute(&mut self, pred: Predictor, dtype: DType, dims: [usize; 3], data: &[u8], eb: f64) {
        self.stored.clear();
        self.values.clear();
        if pred != Predictor::BlockMean {
            return;
        }
        // In units of the bound, rounded (straight from the values); the medians themselves
        // where there is no unit.
        let unit = (eb > 0.0 && eb.is_finite()).then_some(eb);
        let out = &mut self.block_values;
        match (bytemuck::try_cast_slice::<u8, f32>(data), unit) {
            // float32 read in place: no 8-byte copy of the piece to take medians of.
            (Ok(vals), Some(eb)) if dtype == DType::F32 => {
                medians::block_units_into(dims, vals, eb, &mut self.scratch32, out)
            }
            (Ok(vals), None) if dtype == DType::F32 => {
                medians::block_medians_into(dims, vals, &mut self.scratch32, out)
            }
            _ => {
                roibin_registry::metrics::to_f64_into(data, dtype, &mut self.as_f64);
                let vals = &self.as_f64;
                match unit {
                    Some(eb) => medians::block_units_into(dims, vals, eb, &mut self.scratch, out),
                    None => medians::block_medians_into(dims, vals, &mut self.scratch, out),
                }
            }
        }
        self.stored
            .extend(self.block_values.iter().map(|&m| m as f32));
        self.values.extend(mean_values(&self.stored, eb));
    }
}

/// The predictions stored means stand for.
fn mean_values(stored: &[f32], eb: f64) -> impl Iterator<Item = f64> + '_ {
    let unit = if eb > 0.0 && eb.is_finite() { eb } else { 1.0 };
    stored.iter().map(move |&s| s as f64 * unit)
}

/// A piece's reconstruction: f32 for float32 pieces (the same values, half the memory
/// traffic; see [`predict::Recon`]), f64 for the others.
#[derive(Default)]
struct ReconBuf {
    wide: Vec<f64>,
    narrow: Vec<f32>,
    /// The Lorenzo row groups' buffers.
    groups: lorenzo_rows::GroupBuffers,
}

impl ReconBuf {
    /// `n` zeroed f64 values (the previous piece's dropped).
    fn fresh_wide(&mut self, n: usize) -> &mut [f64] {
        zeroed(&mut self.wide, n)
    }
}

/// The reconstruction width of a float element type.
trait FloatRecon: quant::Float {
    type R: predict::Recon;
    /// `n` zeroed values of that width in `buf`, and its row groups' buffers.
    fn fresh(buf: &mut ReconBuf, n: usize) -> (&mut [Self::R], &mut lorenzo_rows::GroupBuffers);
    /// `n` values of that width in `buf`, those a previous piece left there kept: for the
    /// interpolation predictors, which read only values they wrote before (tested with a
    /// buffer of NaNs), so zeroing the 32 MB of a 128 × 256 × 256 piece each time (3–4% of
    /// its encode) bought nothing.
    fn reused(buf: &mut ReconBuf, n: usize) -> &mut [Self::R];
}

/// `v` as `n` zeroed values.
fn zeroed<T: Copy + Default>(v: &mut Vec<T>, n: usize) -> &mut [T] {
    v.clear();
    v.resize(n, T::default());
    v
}

/// `v` as `n` values: the first ones kept, the rest 0.
fn kept_then_zeroed<T: Copy + Default>(v: &mut Vec<T>, n: usize) -> &mut [T] {
    v.truncate(n);
    v.resize(n, T::default());
    v
}

impl FloatRecon for f32 {
    type R = f32;
    fn fresh(buf: &mut ReconBuf, n: usize) -> (&mut [f32], &mut lorenzo_rows::GroupBuffers) {
        let ReconBuf { narrow, groups, .. } = buf;
        (zeroed(narrow, n), groups)
    }
    fn reused(buf: &mut ReconBuf, n: usize) -> &mut [f32] {
        kept_then_zeroed(&mut buf.narrow, n)
    }
}

impl FloatRecon for f64 {
    type R = f64;
    fn fresh(buf: &mut ReconBuf, n: usize) -> (&mut [f64], &mut lorenzo_rows::GroupBuffers) {
        let ReconBuf { wide, groups, .. } = buf;
        (zeroed(wide, n), groups)
    }
    fn reused(buf: &mut ReconBuf, n: usize) -> &mut [f64] {
        kept_then_zeroed(&mut buf.wide, n)
    }
}

/// Buffers one thread reuses from piece to piece, so a chunk loop stops allocating them.
#[derive(Default)]
struct Scratch {
    codes: Codes,
    recon: ReconBuf,
    body: Vec<u8>,
    /// A trial's stored bytes.
    alt: Vec<u8>,
    runs: runs::RunScratch,
    means: Means,
    /// The predictor trial's sample, codes and reconstruction.
    sample: Vec<u8>,
    trial: Codes,
    trial_recon: ReconBuf,
}

fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
    }
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        Err(_) => f(&mut Scratch::default()),
    })
}

/// zstd-compress `src`, appending to `out`, with a compression context this thread keeps.
fn zstd_into(src: &[u8], level: i32, out: &mut Vec<u8>) -> Result<()> {
    thread_local! {
        static CCTX: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { std::cell::RefCell::new(None) };
    }
    let err = |e: std::io::Error| Error::Other(format!("sz: zstd: {e}"));
    CCTX.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().is_none_or(|(l, _)| *l != level) {
            *c = Some((level, zstd::bulk::Compressor::new(level).map_err(err)?));
        }
        let (_, cctx) = c.as_mut().expect("just set");
        // Into `out`'s spare capacity after its bytes: no zero-fill of the bound first.
        out.reserve(zstd::zstd_safe::compress_bound(src.len()));
        let start = out.len() as u64;
        let mut at = std::io::Cursor::new(&mut *out);
        at.set_position(start);
        cctx.compress_to_buffer(src, &mut at).map_err(err)?;
        Ok(())
    })
}

/// Run the predictor and the encoding quantiser over one piece into reused buffers.
#[allow(clippy::too_many_arguments)]
fn quantise_into(
    dtype: DType,
    pred: Predictor,
    dims: [usize; 3],
    data: &[u8],
    eb: f64,
    radius: u32,
    (means, levels): (&[f64], Levels),
    out: &mut Codes,
    recon: &mut ReconBuf,
) {
    let n = dims.iter().product();
    out.codes.clear();
    out.codes.reserve(n);
    out.unpred.clear();
    macro_rules! float {
        ($t:ty) => {{
            match pred {
                // Rows interleaved: the same codes, several chains at once.
                Predictor::Lorenzo | Predictor::Lorenzo2d => {
                    let (values, groups) = <$t as FloatRecon>::fresh(recon, n);
                    lorenzo_rows::encode::<$t, _>(
                        dims,
                        data,
                        (eb, radius),
                        pred == Predictor::Lorenzo,
                        out,
                        values,
                        groups,
                    )
                }
                Predictor::BlockMean => {
                    means::encode_block_means::<$t>(dims, data, (eb, radius), means, out)
                }
                _ => pred.run_with(
                    dims,
                    <$t as FloatRecon>::reused(recon, n),
                    &mut FloatEncoder::<$t> {
                        data,
                        eb,
                        base: eb,
                        radius,
                        out,
                        _t: PhantomData,
                    },
                    means,
                    levels,
                ),
            }
        }};
    }
    macro_rules! int {
        ($t:ty) => {
            pred.run_with(
                dims,
                recon.fresh_wide(n),
                &mut IntEncoder::<$t> {
                    data,
                    eb: eb.floor() as u64,
                    base: eb.floor() as u64,
                    radius,
                    out,
                    _t: PhantomData,
                },
                means,
                levels,
            )
        };
    }
    for_dtype!(dtype, float, int)
}

/// Estimated coded size of a set of codes (bits): log-magnitude for bins, a full value for escapes.
fn cost(codes: &Codes, radius: u32, elem_bits: f64) -> f64 {
    // The costs of the small magnitudes most codes have, worked out once per call (a log2
    // per code was 5 % of an encode); the same values, summed in the same order.
    let bits = |d: u64| 1.0 + 2.0 * (d as f64 + 1.0).log2();
    let small: [f64; 64] = std::array::from_fn(|d| bits(d as u64));
    codes
        .codes
        .iter()
        .map(|&c| {
            if c == 0 {
                elem_bits + 8.0
            } else {
                let d = (c as i64 - radius as i64).unsigned_abs();
                small.get(d as usize).copied().unwrap_or_else(|| bits(d))
            }
        })
        .sum()
}

/// Pick the predictor that codes a central sample of the piece smallest.
fn choose(
    dtype: DType,
    dims: [usize; 3],
    data: &[u8],
    eb: f64,
    radius: u32,
    sc: &mut Scratch,
) -> Predictor {
    let sd = [dims[0].min(8), dims[1].min(64), dims[2].min(256)];
    central_sample(dtype, dims, data, sd, &mut sc.sample);
    // Block means first: the one predictor without a chain from value to value (the
    // fastest to encode and decode). At the floor of a bit a value (within 0.1%: nearly
    // every code "no change") the piece will be stored as runs of that code and what another
    // could save is a rounding error, so it is kept untried against the rest (on roibin's
    // flat backgrounds at abs 90 those trials were a tenth of an encode). Otherwise every
    // candidate is tried and the cheapest wins, the earliest of `candidates` on a tie.
    let floor = sd.iter().product::<usize>() as f64 * 1.001;
    let candidates = candidates(dims);
    // (rank in `candidates`, predictor), block means first; no allocation (the chunk loop
    // allocates nothing after warm-up: `compressors/tests/alloc.rs`).
    let ranked = candidates.iter().copied().enumerate();
    let block_means_first = ranked
        .clone()
        .filter(|&(_, p)| p == Predictor::BlockMean)
        .chain(ranked.filter(|&(_, p)| p != Predictor::BlockMean));
    let mut best = (f64::INFINITY, 0, Predictor::Lorenzo);
    for (rank, p) in block_means_first {
        let c = trial_cost(p, dtype, sd, eb, radius, sc);
        if (c, rank) < (best.0, best.1) {
            best = (c, rank, p);
        }
        if p == Predictor::BlockMean && c <= floor {
            break;
        }
    }
    best.2
}

/// The predictors [`choose`] tries on a piece of `dims`.
fn candidates(dims: [usize; 3]) -> &'static [Predictor] {
    if dims[0] > 1 {
        &Predictor::ALL
    } else {
        &[
            Predictor::Lorenzo,
            Predictor::InterpLinear,
            Predictor::InterpCubic,
            Predictor::BlockMean,
        ]
    }
}

/// Estimated bits of the sample in `sc` (of dims `sd`) coded with `p`: codes and block means.
fn trial_cost(
    p: Predictor,
    dtype: DType,
    sd: [usize; 3],
    eb: f64,
    radius: u32,
    sc: &mut Scratch,
) -> f64 {
    sc.means.compute(p, dtype, sd, &sc.sample, eb);
    let side = sc.means.stored.iter().filter(|&&m| m != 0.0).count() as f64 * 16.0;
    quantise_into(
        dtype,
        p,
        sd,
        &sc.sample,
        eb,
        radius,
        (&sc.means.values, Levels::DEFAULT),
        &mut sc.trial,
        &mut sc.trial_recon,
    );
    side + cost(&sc.trial, radius, (dtype.size() * 8) as f64)
}

/// Decode one piece, with a decompression context and buffers this thread keeps.
fn decode_piece(dtype: DType, dims: [usize; 3], src: &[u8], dst: &mut [u8]) -> Result<usize> {
    #[derive(Default)]
    struct DecodeScratch {
        body: Vec<u8>,
        codes: Vec<u32>,
        tokens: Vec<u32>,
        recon: ReconBuf,
        dctx: Option<zstd::bulk::Decompressor<'static>>,
    }
    thread_local! {
        static SCRATCH: std::cell::RefCell<DecodeScratch> = std::cell::RefCell::new(DecodeScratch::default());
    }
    let bad = |m: &str| Error::corrupt("sz", m.to_string());
    let n: usize = dims.iter().product();
    SCRATCH.with(|sc| {
        let mut fresh = DecodeScratch::default();
        let mut guard = sc.try_borrow_mut();
        let sc: &mut DecodeScratch = match guard.as_mut() {
            Ok(g) => g,
            Err(_) => &mut fresh,
        };
        if sc.dctx.is_none() {
            sc.dctx =
                Some(zstd::bulk::Decompressor::new().map_err(|e| bad(&format!("zstd: {e}")))?);
        }
        let cap = 64 + n * (4 + dtype.size()) + (1 << 20);
        sc.body.clear();
        sc.body.reserve(cap);
        let dctx = sc.dctx.as_mut().expect("just set");
        dctx.decompress_to_buffer(src, &mut sc.body)
            .map_err(|e| bad(&format!("zstd: {e}")))?;
        let bufs = (&mut sc.codes, &mut sc.tokens, &mut sc.recon);
        decode_body(dtype, dims, &sc.body, dst, bufs)
    })
}

/// Decode a piece's decompressed body into `dst`.
fn decode_body(
    dtype: DType,
    dims: [usize; 3],
    body: &[u8],
    dst: &mut [u8],
    (codes, tokens, recon): (&mut Vec<u32>, &mut Vec<u32>, &mut ReconBuf),
) -> Result<usize> {
    let bad = |m: &str| Error::corrupt("sz", m.to_string());
    let n: usize = dims.iter().product();
    let mut r = Reader::new(body, "sz");
    let first = r.u8()?;
    let pred =
        Predictor::from_u8(first & !LEVELS_STORED).ok_or_else(|| bad("unknown predictor"))?;
    let coding = r.u8()?;
    let eb = f64::from_le_bytes(r.take(8)?.try_into().expect("8"));
    let radius = r.u32()?;
    if !(eb >= 0.0 && eb.is_finite() && (2..=1 << 20).contains(&radius)) {
        return Err(bad("bad bound or radius"));
    }
    let escapes = r.len_at_most(n)?;
    let levels = if first & LEVELS_STORED != 0 {
        let mut f64_at = || {
            r.take(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8")))
        };
        let levels = Levels {
            alpha: f64_at()?,
            beta: f64_at()?,
        };
        if !pred.is_interp() || !levels.valid() {
            return Err(bad("bad interpolation levels"));
        }
        levels
    } else {
        Levels::DEFAULT
    };
    let means: Vec<f64> = if pred == Predictor::BlockMean {
        let stored: Vec<f32> = r
            .take(predict::mean_blocks(dims) * 4)?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4")))
            .collect();
        mean_values(&stored, eb).collect()
    } else {
        vec![]
    };
    codes.clear();
    codes.reserve(n);
    match coding {
        c if c == Coding::Huffman as u8 => huffman::decode(&mut r, n, 2 * radius as usize, codes)?,
        c if c == Coding::Runs as u8 => runs::decode(&mut r, n, radius, tokens, codes)?,
        c if c == Coding::Raw as u8 => {
            for b in r.take(n * 4)?.chunks_exact(4) {
                let c = u32::from_le_bytes(b.try_into().expect("4"));
                if c >= 2 * radius {
                    return Err(bad("code out of range"));
                }
                codes.push(c);
            }
        }
        _ => return Err(bad("unknown code storage")),
    }
    if codes.iter().filter(|&&c| c == 0).count() != escapes {
        return Err(bad("escape count does not match the codes"));
    }
    let unpred = r.take(escapes * dtype.size())?;
    if !r.is_empty() {
        return Err(bad("trailing bytes in a piece"));
    }
    // Lorenzo within 2-D planes decodes several rows at once (bit-identical, faster).
    let planar = pred == Predictor::Lorenzo2d || (pred == Predictor::Lorenzo && dims[0] == 1);
    if planar {
        // A ring of rows, each value written before a prediction reads it: no zero fill.
        let ring = plane::RING * dims[2];
        if recon.wide.len() < ring {
            recon.wide.resize(ring, 0.0);
        }
    }
    // `$recon`: the whole piece's reconstruction, of the element type's width.
    macro_rules! run {
        ($q:ident, $recon:expr) => {
            if planar {
                !plane::decode_planes(dims[0], dims[1], dims[2], codes, &mut recon.wide, &mut $q)
            } else if pred == Predictor::BlockMean {
                !means::decode_block_means(dims, codes, &means, &mut $q)
            } else if pred == Predictor::Lorenzo {
                // 3-D: rows interleaved too (bit-identical, faster).
                let (values, groups) = $recon;
                !lorenzo_rows::decode(dims, true, codes, values, groups, &mut $q)
            } else {
                pred.run_with(dims, $recon.0, &mut $q, &means, levels);
                $q.cur.bad
            }
        };
    }
    macro_rules! float {
        ($t:ty) => {{
            let mut q = FloatDecoder::<$t>::new(Cursor::new(codes, unpred), eb, radius, dst);
            run!(q, <$t as FloatRecon>::fresh(recon, n))
        }};
    }
    macro_rules! int {
        ($t:ty) => {{
            let mut q =
                IntDecoder::<$t>::new(Cursor::new(codes, unpred), eb.floor() as u64, radius, dst);
            run!(q, <f64 as FloatRecon>::fresh(recon, n))
        }};
    }
    let bad_flag = for_dtype!(dtype, float, int);
    if bad_flag {
        return Err(bad("codes and escaped values do not fit together"));
    }
    Ok(dst.len())
}

fn meta_of(input: &DataKind) -> Result<&ArrayMeta> {
    input.array("sz")
}

impl Codec for Sz {
    fn output(&self, _input: &DataKind) -> Result<DataKind> {
        Ok(DataKind::Bytes)
    }

    fn encode(&self, data: &[u8], input: &DataKind, out: &mut Vec<u8>) -> Result<()> {
        let m = meta_of(input)?;
        let dims = view(&m.shape);
        let eb = self.abs_bound(data, m.dtype);
        let (_, row) = split_axis(dims);
        let rows = piece_elems(dims).div_ceil(row.max(1)).max(1);
        let es = m.dtype.size();
        blocked::encode(data, rows * row * es, self.threads, out, |piece, o| {
            self.encode_piece(m.dtype, piece_dims(dims, piece.len() / es)?, piece, eb, o)
        })
    }

    fn decode(&self, data: &[u8], input: &DataKind, out: &mut Vec<u8>) -> Result<()> {
        let m = meta_of(input)?;
        let start = out.len();
        out.resize(start + m.nbytes(), 0);
        self.decode_into(data, input, &mut out[start..])
    }

    fn decode_into(&self, data: &[u8], input: &DataKind, dst: &mut [u8]) -> Result<()> {
        let m = meta_of(input)?;
        let dims = view(&m.shape);
        let es = m.dtype.size();
        blocked::decode_into("sz", data, dst, self.threads, |src, d| {
            if d.len() % es != 0 {
                return Err(Error::corrupt("sz", "piece is not whole elements"));
            }
            decode_piece(m.dtype, piece_dims(dims, d.len() / es)?, src, d)
        })
    }
}

fn build(c: &Config) -> Result<Box<dyn Codec>> {
    let bounds: Vec<Bound> = [
        c.get_opt::<f64>("abs")?.map(Bound::Abs),
        c.get_opt::<f64>("rel")?.map(Bound::Rel),
        c.get_opt::<f64>("psnr")?.map(Bound::Psnr),
    ]
    .into_iter()
    .flatten()
    .collect();
    let bound = match bounds[..] {
        [b] => b,
        _ => {
            return Err(Error::option(
                c.path.clone(),
                "sz needs exactly one of abs=, rel= or psnr= (e.g. sz(abs=90))",
            ))
        }
    };
    Ok(Box::new(Sz {
        bound,
        predictor: c
            .get_opt::<String>("predictor")?
            .and_then(|w| Predictor::from_name(&w)),
        radius: c.get::<i64>("radius")? as u32,
        level: c.get::<i64>("level")? as i32,
        threads: c.threads()?,
    }))
}

inventory::submit! {
    CodecInfo {
        name: "sz",
        version: 1,
        doc: "error-bounded lossy (SZ3-class): Lorenzo/interpolation prediction, linear quantisation, Huffman + zstd; |x-x'| <= bound checked per element",
        options: OPTIONS,
        accepts: Accepts::ARRAYS,
        thread_safe: true,
        build,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A piece of f32 `data` quantised with `pred` and `levels` at bound `eb` (radius 64,
    /// block means computed), stored as each of `codings`; and the encoder's reconstruction.
    fn stored(
        (pred, levels): (Predictor, Levels),
        dims: [usize; 3],
        data: &[u8],
        eb: f64,
        codings: &[Coding],
    ) -> (Vec<Vec<u8>>, Vec<f64>) {
        let mut means = Means::default();
        means.compute(pred, DType::F32, dims, data, eb);
        let (mut codes, mut recon) = (Codes::default(), ReconBuf::default());
        let side = (&means.values[..], levels);
        quantise_into(
            DType::F32,
            pred,
            dims,
            data,
            eb,
            64,
            side,
            &mut codes,
            &mut recon,
        );
        let piece = Piece {
            pred,
            levels,
            dtype: DType::F32,
            eb,
            radius: 64,
            codes: &codes,
            means: &means.stored,
        };
        let bodies = codings
            .iter()
            .map(|&coding| {
                let mut body = vec![];
                piece.body(coding, &mut runs::RunScratch::default(), &mut body);
                body
            })
            .collect();
        (bodies, recon.narrow.iter().map(|&v| v as f64).collect())
    }

    /// The coding a piece's codes are stored with is [`coding_for`]'s whether or not the sample
    /// guessed it: codes all "no change" where the sample looks (every 64th line) and with
    /// 0–100% of them elsewhere, around both thresholds. Fails when runs are kept without
    /// the share checked, or the share is counted wrong.
    #[test]
    fn the_sampled_guess_never_changes_the_coding() {
        let radius = 64;
        let mut rnd = crate::test_rng::xorshift(0x1234_5678_9abc_def1);
        for permille in [0, 500, 880, 905, 915, 960, 975, 990, 1000] {
            for n in [0, 7, 16, 300, 4096, 65_536 + 5] {
                let codes: Vec<u32> = (0..n)
                    .map(|i| {
                        let sampled = (i / 16) % 64 == 0;
                        if sampled || (rnd() % 1000) < permille {
                            radius
                        } else {
                            1 + (rnd() % 127) as u32
                        }
                    })
                    .collect();
                let codes = Codes {
                    codes,
                    unpred: vec![],
                };
                let piece = Piece {
                    pred: Predictor::Lorenzo,
                    levels: Levels::DEFAULT,
                    dtype: DType::F32,
                    eb: 1.0,
                    radius,
                    codes: &codes,
                    means: &[],
                };
                let (mut chosen, mut counted) = (vec![], vec![]);
                let mut runs = runs::RunScratch::default();
                piece.body_chosen(&mut runs, &mut chosen);
                piece.body(coding_for(&codes, radius), &mut runs, &mut counted);
                assert_eq!(chosen, counted, "{permille}‰ of {n}");
            }
        }
    }

    /// The interpolation predictors read only values they wrote: their codes and escapes are
    /// the same whatever a previous piece left in the reused reconstruction (NaNs here, more
    /// or fewer of them than the piece has values), for float32 and float64 pieces.
    #[test]
    fn interpolation_ignores_what_the_reused_reconstruction_held() {
        let dims = [9, 14, 23];
        let n: usize = dims.iter().product();
        let value = |i: usize| ((i as f64 * 0.37).sin() * 40.0 + (i % 7) as f64).round();
        for pred in [Predictor::InterpLinear, Predictor::InterpCubic] {
            for dtype in [DType::F32, DType::F64] {
                let data: Vec<u8> = match dtype {
                    DType::F32 => (0..n)
                        .flat_map(|i| (value(i) as f32).to_le_bytes())
                        .collect(),
                    _ => (0..n).flat_map(|i| value(i).to_le_bytes()).collect(),
                };
                let run = |held: usize| {
                    let mut recon = ReconBuf {
                        narrow: vec![f32::NAN; held],
                        wide: vec![f64::NAN; held],
                        ..ReconBuf::default()
                    };
                    let mut codes = Codes::default();
                    let side = (&[][..], Levels::DEFAULT);
                    quantise_into(
                        dtype, pred, dims, &data, 0.5, 64, side, &mut codes, &mut recon,
                    );
                    (codes.codes, codes.unpred)
                };
                let clean = run(0);
                assert!(
                    clean.0.iter().any(|&c| c != 32),
                    "{pred:?} {dtype:?}: a piece with codes"
                );
                assert_eq!(run(n / 2), clean, "{pred:?} {dtype:?}");
                assert_eq!(run(n + 5), clean, "{pred:?} {dtype:?}");
            }
        }
    }

    /// `choose` keeps block means where they code the sample at a bit a value (a flat
    /// background at a loose bound) and otherwise picks what trying every candidate picks:
    /// the cheapest, the earliest on a tie.
    #[test]
    fn choose_tries_every_candidate_unless_block_means_are_at_the_floor() {
        let dims = [2, 64, 256];
        let n: usize = dims.iter().product();
        let wave = |i: usize, a: f32, slope: f32| {
            a * ((i % 256) as f32 * 0.05).sin() + slope * (i / 256) as f32
        };
        let cases = [
            (90.0, 3.0, 0.0, true),
            (90.0, 3.0, 1.0, false),
            (0.01, 40.0, 1.0, false),
            (0.5, 4.0, 1.0, false),
        ];
        for (eb, amplitude, slope, at_floor) in cases {
            let data: Vec<u8> = (0..n)
                .flat_map(|i| wave(i, amplitude, slope).to_le_bytes())
                .collect();
            let mut sc = Scratch::default();
            let got = choose(DType::F32, dims, &data, eb, 512, &mut sc);
            sc.sample = data.clone();
            let costs: Vec<f64> = candidates(dims)
                .iter()
                .map(|&p| trial_cost(p, DType::F32, dims, eb, 512, &mut sc))
                .collect();
            let floor = n as f64 * 1.001;
            let block_means = trial_cost(Predictor::BlockMean, DType::F32, dims, eb, 512, &mut sc);
            assert_eq!(block_means <= floor, at_floor, "eb {eb}: {costs:?}");
            let want = if at_floor {
                Predictor::BlockMean
            } else {
                let min = costs.iter().copied().fold(f64::INFINITY, f64::min);
                candidates(dims)[costs.iter().position(|&c| c == min).unwrap()]
            };
            assert_eq!(got, want, "eb {eb}: {costs:?}");
        }
    }

    /// Every way of storing the codes decodes to the same values, Raw included (no longer
    /// written, but files hold it).
    #[test]
    fn every_coding_decodes_the_same() {
        let dims = [1, 90, 130];
        let n = 90 * 130;
        // A flat background with sparse peaks and one NaN (an escape).
        let vals: Vec<f32> = (0..n)
            .map(|i| match i {
                777 => f32::NAN,
                _ if i % 211 == 5 => 400.0 + (i % 7) as f32 * 50.0,
                _ => (i % 13) as f32 * 0.3,
            })
            .collect();
        let data: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let tuned = Levels::CANDIDATES[1];
        for (pred, levels) in [
            (Predictor::Lorenzo, Levels::DEFAULT),
            (Predictor::BlockMean, Levels::DEFAULT),
            (Predictor::InterpCubic, tuned),
        ] {
            let codings = [Coding::Huffman, Coding::Runs, Coding::Raw];
            let (bodies, recon) = stored((pred, levels), dims, &data, 9.0, &codings);
            let mut decoded = vec![];
            for body in bodies {
                let mut dst = vec![0u8; data.len()];
                let bufs = (&mut vec![], &mut vec![], &mut ReconBuf::default());
                decode_body(DType::F32, dims, &body, &mut dst, bufs).unwrap();
                decoded.push(dst);
            }
            assert_eq!(decoded[0], decoded[1], "{pred:?}");
            assert_eq!(decoded[0], decoded[2], "{pred:?}");
            // The decoder rebuilds exactly the encoder's reconstruction: stored levels read.
            for (i, (r, d)) in recon.iter().zip(decoded[0].chunks_exact(4)).enumerate() {
                let d = f32::from_le_bytes(d.try_into().unwrap());
                assert!(d.is_nan() || *r as f32 == d, "{pred:?} {i}: {r} {d}");
            }
            for (i, (o, d)) in vals.iter().zip(decoded[0].chunks_exact(4)).enumerate() {
                let d = f32::from_le_bytes(d.try_into().unwrap());
                assert!(
                    o.is_nan() && d.is_nan() || (o - d).abs() <= 9.0,
                    "{i}: {o} {d}"
                );
            }
        }
    }

    /// Stored levels outside their range, or on a predictor without levels, are errors.
    #[test]
    fn bad_stored_levels_are_errors() {
        let dims = [1, 8, 8];
        let data: Vec<u8> = (0..64).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let body = |pred: Predictor, levels: Levels| {
            let (mut bodies, _) = stored((pred, levels), dims, &data, 0.5, &[Coding::Huffman]);
            bodies.remove(0)
        };
        let decode = |body: &[u8]| {
            let bufs = (&mut vec![], &mut vec![], &mut ReconBuf::default());
            decode_body(DType::F32, dims, body, &mut vec![0u8; 256], bufs)
        };
        let tuned = Levels::CANDIDATES[1];
        assert!(decode(&body(Predictor::InterpLinear, tuned)).is_ok());
        let low = Levels {
            alpha: 0.5,
            beta: 2.0,
        };
        let huge = Levels {
            alpha: 1.5,
            beta: 1e9,
        };
        for bad in [
            body(Predictor::InterpLinear, low),
            body(Predictor::InterpCubic, huge),
            body(Predictor::Lorenzo, tuned),
        ] {
            let e = decode(&bad).unwrap_err().to_string();
            assert!(e.contains("interpolation levels"), "{e}");
        }
    }
}
