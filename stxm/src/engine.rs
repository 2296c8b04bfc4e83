//! The engine: a request over a source gives a map.
//!
//! Scan lines are the tasks: the source reads line i+1 (serially: HDF5 is not thread-safe)
//! while the frames of line i decode and reduce in parallel (rayon). A frame that cannot be
//! read or decoded becomes NaN in the map and is reported; the run goes on. Lines and whole
//! results are cached when a [`Cache`] is given.

use crate::algo::{self, Input, Reducer};
use crate::bslz4::{self, Block};
use crate::cache::Cache;
use crate::compressed::{BinForm, Bins};
use crate::geometry::{row_values, Geometry, Linear};
use crate::request::{Image, Mask, Request};
use crate::source::{ChunkCodec, Info, Item, Source};
use crate::{bitplanes, Error, Result};
use rayon::prelude::*;
use roibin_compressors::bitshuffle;
use roibin_compressors::detector::roibin::parts;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How to run a request.
#[derive(Default)]
pub struct RunOptions<'a> {
    /// Scan lines to reduce (the others stay NaN): how MPI ranks split a scan. None: all.
    pub lines: Option<Vec<usize>>,
    /// Decode roibin chunks even where the compressed domain would do (for comparisons).
    pub decode: bool,
    /// Called with the number of frames just finished.
    pub progress: Option<&'a (dyn Fn(usize) + Sync)>,
    /// Where results and line results are kept.
    pub cache: Option<&'a Cache>,
}

/// Timings and counts of a run.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub frames: usize,
    /// Stored bytes read from the source.
    pub bytes_read: u64,
    /// Seconds in the source's reads (serial), in decoding and reducing (parallel), overall.
    pub read_s: f64,
    pub reduce_s: f64,
    pub total_s: f64,
    /// Frames reduced from roibin chunks in the compressed domain.
    pub compressed_domain_frames: usize,
    /// Lines taken from the cache.
    pub cached_lines: usize,
    /// The whole result came from the cache.
    pub cached: bool,
    pub read_path: String,
}

/// A reduced scan.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Reduction {
    /// The canonical request.
    pub request: String,
    pub algo: String,
    pub signal: String,
    /// (rows, cols).
    pub scan: (usize, usize),
    /// Values per scan point (`[]` for one number).
    pub value_shape: Vec<usize>,
    pub value_axes: Vec<(String, Vec<f64>)>,
    /// `scan rows × scan cols × value_shape`, C order; NaN where a frame failed.
    #[serde(skip)]
    pub values: Vec<f64>,
    /// Frames that failed (source index) and why.
    pub failed: Vec<(usize, String)>,
    pub stats: Stats,
}

impl Reduction {
    /// Values per scan point.
    pub fn per_point(&self) -> usize {
        self.value_shape.iter().product()
    }

    /// A compact binary form (JSON head + raw f64 values), for the cache and MPI.
    pub fn to_bytes(&self) -> Vec<u8> {
        let head = serde_json::to_vec(self).expect("serialisable");
        let mut out = (head.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&head);
        out.extend(self.values.iter().flat_map(|v| v.to_le_bytes()));
        out
    }

    pub fn from_bytes(b: &[u8]) -> Option<Reduction> {
        let n = u64::from_le_bytes(b.get(..8)?.try_into().ok()?) as usize;
        let mut r: Reduction = serde_json::from_slice(b.get(8..8usize.checked_add(n)?)?).ok()?;
        let rest = &b[8 + n..];
        if rest.len() != r.scan.0 * r.scan.1 * r.per_point() * 8 {
            return None;
        }
        r.values = rest
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8")))
            .collect();
        Some(r)
    }
}

/// A worker's buffers, reused from chunk to chunk (a frame-sized allocation per chunk cost
/// page faults and zero fills as large as the work).
#[derive(Default)]
struct Scratch {
    /// The chunk's stored bytes.
    chunk: Vec<u8>,
    /// A roibin chunk's background bins and window pixels.
    parts: parts::Buffers,
}

/// A request bound to a source: geometry, reducer, scan.
pub struct Plan {
    pub request: Request,
    pub info: Info,
    pub scan: (usize, usize),
    pub reducer: Box<dyn Reducer>,
    pub linear: Option<Linear>,
    pub geometry: Geometry,
    /// Bin forms per roibin bin shape met so far (built once each).
    forms: Mutex<Vec<Arc<BinForm>>>,
}

/// The accumulators of the `per` scan frames held by frame `f` of a roibin chunk (its panels
/// when `per` > 1), from the chunk's bins and exact pixels.
fn frame_sums(
    lin: &Linear,
    form: &BinForm,
    p: &parts::Parts,
    f: usize,
    per: usize,
) -> Result<Vec<Vec<f64>>> {
    let mut accs = vec![vec![0f64; lin.detector.len()]; per];
    let mut views: Vec<&mut [f64]> = accs.iter_mut().map(|a| a.as_mut_slice()).collect();
    form.accumulate(lin, p, f, &mut views)?;
    Ok(accs)
}

/// One frame's outcome: its values or why it failed.
type FrameResult = (usize, std::result::Result<Vec<f64>, String>);

impl Plan {
    /// Check `req` against `source` and prepare everything a frame needs.
    pub fn new(req: &Request, source: &mut dyn Source) -> Result<Plan> {
        let info = source.info().clone();
        let available = info.frames.saturating_sub(req.first);
        if req.first >= info.frames {
            return Err(Error::request(
                "first",
                format!(
                    "frame {} is past the source's {} frames",
                    req.first, info.frames
                ),
            ));
        }
        let scan = req.scan.or(info.scan).unwrap_or((1, available));
        if scan.0 * scan.1 > available {
            return Err(Error::request(
                "scan",
                format!(
                    "{}x{} needs {} frames from frame {}; the source has {} ({} from there)",
                    scan.0,
                    scan.1,
                    scan.0 * scan.1,
                    req.first,
                    info.frames,
                    available
                ),
            ));
        }
        let geometry = prepare_geometry(req, source, &info)?;
        let reducer = algo::reducer(req, &geometry)?;
        let linear = reducer.detector().map(|d| Linear::new(geometry.clone(), d));
        Ok(Plan {
            request: req.clone(),
            info,
            scan,
            reducer,
            linear,
            geometry,
            forms: Mutex::new(vec![]),
        })
    }

    /// Values per scan point.
    pub fn per_point(&self) -> usize {
        self.reducer.value_shape().iter().product()
    }

    fn frame_bytes(&self) -> usize {
        self.info.height * self.info.width * self.info.dtype.size()
    }

    /// Values of one decoded frame.
    fn reduce_frame(&self, frame: &[u8]) -> std::result::Result<Vec<f64>, String> {
        thread_local! {
            static BUF: std::cell::RefCell<(Vec<f64>, Vec<f64>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
        }
        let dtype = self.info.dtype;
        let mut out = vec![0f64; self.per_point()];
        BUF.with(|b| {
            let (row, acc) = &mut *b.borrow_mut();
            let r = if let Some(lin) = &self.linear {
                acc.resize(lin.detector.len(), 0.0);
                lin.accumulate(frame, dtype, acc, row);
                self.reducer.finish(Input::Sums(acc), &mut out)
            } else {
                row_values(frame, dtype, row);
                let p = self.geometry.process(row);
                self.reducer.finish(Input::Processed(&p), &mut out)
            };
            r.map(|_| out).map_err(|e| e.to_string())
        })
    }

    /// The bin form for scan frames binned like `bins`.
    fn form(&self, lin: &Linear, bins: Bins) -> Result<Arc<BinForm>> {
        let mut forms = self.forms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = forms.iter().find(|f| f.bins == bins) {
            return Ok(f.clone());
        }
        let f = Arc::new(BinForm::new(lin, bins)?);
        forms.push(f.clone());
        Ok(f)
    }

    /// Values of the wanted frames of a roibin chunk from its parts, without decoding it;
    /// None when the chunk must be decoded instead. `buffers` are the worker's
    /// (the background is read only where a linear signal needs it).
    fn reduce_parts(
        &self,
        bytes: &[u8],
        first: usize,
        slots: usize,
        want: std::ops::Range<usize>,
        buffers: &mut parts::Buffers,
    ) -> Option<Vec<FrameResult>> {
        let compressed = self.linear.is_some() || self.reducer.needs_parts();
        if !compressed || !parts::is_roibin_chunk(bytes) {
            return None;
        }
        let p = match parts::parts_with(bytes, self.linear.is_some(), std::mem::take(buffers)) {
            Ok(p) => p,
            Err(e) => {
                return Some(
                    want.map(|g| (g, Err(format!("roibin chunk: {e}"))))
                        .collect(),
                )
            }
        };
        // Each chunk frame is a scan frame, or (a 4-D chunk of several scan columns) each of
        // its panels is.
        let l = p.layout;
        let per = if l.panels > 1 && l.rows == self.info.height && l.cols == self.info.width {
            l.panels
        } else {
            1
        };
        let fits =
            l.frames * per == slots && l.frame_pixels() == per * self.info.height * self.info.width;
        if !fits {
            return None;
        }
        let form = match &self.linear {
            Some(lin) => {
                let bins = Bins {
                    panels: l.panels / per,
                    ..Bins::of(&p)
                };
                match self.form(lin, bins) {
                    Ok(f) => Some(f),
                    Err(_) => return None,
                }
            }
            None => None,
        };
        // The accumulators of the chunk frame last reduced: a chunk frame of `per` scan
        // frames is reduced once for all of them.
        let mut last: Option<(usize, Result<Vec<Vec<f64>>>)> = None;
        let results = want
            .map(|g| {
                let (f, j) = ((g - first) / per, (g - first) % per);
                let mut out = vec![0f64; self.per_point()];
                let r = match (&self.linear, &form) {
                    (Some(lin), Some(form)) => {
                        if last.as_ref().map(|l| l.0) != Some(f) {
                            last = Some((f, frame_sums(lin, form, &p, f, per)));
                        }
                        match &last.as_ref().expect("reduced above").1 {
                            Ok(accs) => self.reducer.finish(Input::Sums(&accs[j]), &mut out),
                            Err(e) => Err(Error::Source(e.to_string())),
                        }
                    }
                    _ => {
                        let rows = j * self.info.height..(j + 1) * self.info.height;
                        self.reducer.finish(Input::Parts(&p, f, rows), &mut out)
                    }
                };
                (g, r.map(|_| out).map_err(|e| e.to_string()))
            })
            .collect();
        *buffers = p.into_buffers();
        Some(results)
    }

    /// Linear signals of a bitshuffle-LZ4 chunk, each block reduced as soon as it is decoded
    /// (the frame is never written out).
    fn reduce_bslz4(
        &self,
        lin: &Linear,
        bytes: &[u8],
        first: usize,
        slots: usize,
        want: std::ops::Range<usize>,
    ) -> Vec<FrameResult> {
        let (fb, dtype) = (self.frame_bytes(), self.info.dtype);
        let es = dtype.size();
        let mut accs = vec![vec![0f64; lin.detector.len()]; want.len()];
        accs.iter_mut().for_each(|a| lin.begin(a));
        let (mut row, mut plain) = (Vec::new(), Vec::new());
        let planes = lin.is_plain_sum(dtype);
        let done = bslz4::blocks(bytes, es, slots * fb, |offset, block| {
            let block = match block {
                Block::Packed { bits, elems } => {
                    let f = offset / fb;
                    let p0 = (offset - f * fb) / es;
                    // A plain sum from the bit planes, when the block lies in one frame and
                    // its mask bits are whole bytes.
                    if planes && offset + elems * es <= (f + 1) * fb && p0 % 8 == 0 {
                        if let Some(acc) = (first + f)
                            .checked_sub(want.start)
                            .and_then(|i| accs.get_mut(i))
                        {
                            let masked = lin.mask_bits(p0, elems);
                            acc[0] += bitplanes::block_sum(bits, es, elems, masked) as f64;
                        }
                        return;
                    }
                    plain.resize(elems * es, 0);
                    bitshuffle::unshuffle_block(bits, es, &mut plain);
                    &plain[..]
                }
                Block::Plain(bytes) => bytes,
            };
            let (mut o, mut rest) = (offset, block);
            while !rest.is_empty() {
                let f = o / fb;
                let seg = (((f + 1) * fb).min(o + rest.len())) - o;
                if let Some(acc) = (first + f)
                    .checked_sub(want.start)
                    .and_then(|i| accs.get_mut(i))
                {
                    lin.accumulate_range(&rest[..seg], dtype, (o - f * fb) / es, acc, &mut row);
                }
                o += seg;
                rest = &rest[seg..];
            }
        });
        match done {
            Ok(()) => want
                .zip(accs)
                .map(|(g, acc)| {
                    let mut out = vec![0f64; self.per_point()];
                    let r = self.reducer.finish(Input::Sums(&acc), &mut out);
                    (g, r.map(|_| out).map_err(|e| e.to_string()))
                })
                .collect(),
            Err(e) => want
                .map(|g| (g, Err(format!("corrupt chunk: {e:#}"))))
                .collect(),
        }
    }

    /// [`Plan::reduce_item`], where a bug in a reducer costs its frames, not the user's run.
    /// `scratch` is the worker's, reused from item to item.
    fn reduce_item_guarded(
        &self,
        item: &Item,
        decode: bool,
        scratch: &mut Scratch,
    ) -> (Vec<FrameResult>, usize) {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.reduce_item(item, decode, scratch)
        }))
        .unwrap_or_else(|_| {
            let frames = match item {
                Item::Frames { frames, .. } | Item::Failed { frames, .. } => frames.clone(),
                Item::Chunk { want, .. } => want.clone(),
            };
            let msg = "internal error while reducing (please report)";
            (frames.map(|g| (g, Err(msg.to_string()))).collect(), 0)
        })
    }

    /// Decode and reduce one item: (source frame, values or error) per frame.
    fn reduce_item(
        &self,
        item: &Item,
        decode: bool,
        scratch: &mut Scratch,
    ) -> (Vec<FrameResult>, usize) {
        let fb = self.frame_bytes();
        let frames =
            |first: usize, want: std::ops::Range<usize>, bytes: &[u8]| -> Vec<FrameResult> {
                want.map(|g| {
                    let f = g - first;
                    match bytes.get(f * fb..(f + 1) * fb) {
                        Some(b) => (g, self.reduce_frame(b)),
                        None => (
                            g,
                            Err("chunk holds fewer frames than its shape says".into()),
                        ),
                    }
                })
                .collect()
            };
        if self.reducer.needs_parts()
            && !matches!(
                item,
                Item::Chunk {
                    codec: ChunkCodec::Roibin,
                    ..
                }
            )
        {
            let msg =
                "hits and bragg read roibin-compressed frames: this scan is not stored with roibin"
                    .to_string();
            let r = match item {
                Item::Frames { frames, .. } | Item::Failed { frames, .. } => frames.clone(),
                Item::Chunk { want, .. } => want.clone(),
            };
            return (r.map(|g| (g, Err(msg.clone()))).collect(), 0);
        }
        match item {
            Item::Frames { frames: r, bytes } => (frames(r.start, r.clone(), bytes), 0),
            Item::Failed { frames, message } => (
                frames.clone().map(|g| (g, Err(message.clone()))).collect(),
                0,
            ),
            Item::Chunk {
                first,
                slots,
                want,
                codec,
                bytes,
            } => {
                let Scratch { chunk, parts } = scratch;
                let bytes = match bytes.load_into(chunk) {
                    Ok(b) => b,
                    Err(e) => {
                        let msg = format!("cannot read the chunk: {e}");
                        return (want.clone().map(|g| (g, Err(msg.clone()))).collect(), 0);
                    }
                };
                if *codec == ChunkCodec::Roibin && !decode {
                    let (first, slots, want) = (*first, *slots, want.clone());
                    if let Some(r) = self.reduce_parts(bytes, first, slots, want, parts) {
                        let n = r.len();
                        return (r, n);
                    }
                }
                if let (ChunkCodec::Bslz4, Some(lin)) = (codec, &self.linear) {
                    return (
                        self.reduce_bslz4(lin, bytes, *first, *slots, want.clone()),
                        0,
                    );
                }
                let decoded = decode_chunk(*codec, bytes, *slots * fb, self.info.dtype);
                match decoded {
                    Ok(d) => (frames(*first, want.clone(), &d), 0),
                    Err(e) => (
                        want.clone()
                            .map(|g| (g, Err(format!("corrupt chunk: {e}"))))
                            .collect(),
                        0,
                    ),
                }
            }
        }
    }
}

/// The request's pre-processing over `source`'s frames: ROI and binning checked, the mask
/// (the request's, or the source's own with `mask=auto`), the empty-beam and difference
/// images read and folded in.
pub fn prepare_geometry(req: &Request, source: &mut dyn Source, info: &Info) -> Result<Geometry> {
    let mut geometry = Geometry::new(req, info.height, info.width)?;
    let from_file: Option<Vec<bool>>;
    let mask: Option<&[bool]> = match &req.mask {
        Mask::Auto => info.mask.as_deref(),
        Mask::None => None,
        Mask::File(f) => {
            from_file = Some(
                read_image(f, info.height, info.width, "mask")?
                    .iter()
                    .map(|&v| v != 0.0)
                    .collect(),
            );
            from_file.as_deref()
        }
    };
    if let Some(m) = mask {
        geometry.set_mask(m)?;
    }
    for (param, image) in crate::geometry::image_param(req) {
        let Some(image) = image else { continue };
        let values = match image {
            Image::Frame(n) => frame_values(source, info, *n, param)?,
            Image::File(f) => read_image(f, info.height, info.width, param)?,
        };
        if param == "empty" {
            geometry.set_empty(&values);
        } else {
            geometry.set_difference(&values);
        }
    }
    Ok(geometry)
}

/// A raw chunk decoded to `bytes` bytes of `dtype` elements (its frame slots).
fn decode_chunk(
    codec: ChunkCodec,
    chunk: &[u8],
    bytes: usize,
    dtype: roibin_registry::DType,
) -> std::result::Result<Vec<u8>, String> {
    match codec {
        ChunkCodec::Bslz4 => {
            let mut dst = vec![0u8; bytes];
            bslz4::decode_into(chunk, dtype.size(), &mut dst)
                .map(|_| dst)
                .map_err(|e| format!("{e:#}"))
        }
        ChunkCodec::Roibin => roibin_compressors::decode_chunk(chunk)
            .map_err(|e| e.to_string())
            .and_then(|(m, d)| {
                if m.dtype == dtype && d.len() == bytes {
                    Ok(d)
                } else {
                    Err(format!("chunk decodes to {m}, not the dataset's frames"))
                }
            }),
    }
}

/// Valid values of source frame `n` (empty/difference images, frames to show); `param` names
/// the request parameter an error is about.
pub fn frame_values(
    source: &mut dyn Source,
    info: &Info,
    n: usize,
    param: &str,
) -> Result<Vec<f64>> {
    if n >= info.frames {
        return Err(Error::request(
            param,
            format!("frame {n} is past the source's {} frames", info.frames),
        ));
    }
    let fb = info.height * info.width * info.dtype.size();
    let bytes = match source.read(n..n + 1).into_iter().next() {
        Some(Item::Frames { bytes, .. }) => bytes,
        Some(Item::Chunk {
            first,
            slots,
            codec,
            bytes,
            ..
        }) => {
            let chunk = bytes
                .load()
                .map_err(|e| Error::request(param, format!("frame {n}: {e}")))?;
            let d = decode_chunk(codec, &chunk, slots * fb, info.dtype)
                .map_err(|e| Error::request(param, format!("frame {n}: {e}")))?;
            d.get((n - first) * fb..(n - first + 1) * fb)
                .ok_or_else(|| Error::request(param, format!("frame {n}: short chunk")))?
                .to_vec()
        }
        Some(Item::Failed { message, .. }) => {
            return Err(Error::request(param, format!("frame {n}: {message}")))
        }
        None => {
            return Err(Error::request(
                param,
                format!("frame {n} could not be read"),
            ))
        }
    };
    let mut v = vec![];
    row_values(&bytes, info.dtype, &mut v);
    Ok(v)
}

/// An image from a file: `.npy`, or `FILE.h5:/dataset` (2-D, the frames' shape).
fn read_image(target: &str, h: usize, w: usize, param: &str) -> Result<Vec<f64>> {
    let (path, dset) = roibin_h5io::split_target(target);
    if path.ends_with(".npy") {
        let p = roibin_compressors::detector::peaks::Panels {
            panels: 1,
            rows: h,
            cols: w,
        };
        return roibin_compressors::detector::npy::read_map(param, path, p)
            .map(|v| v.to_vec())
            .map_err(|e| Error::request(param, e.to_string()));
    }
    let dset = dset.ok_or_else(|| {
        Error::request(
            param,
            format!("`{target}`: give a .npy file or FILE.h5:/dataset"),
        )
    })?;
    let f = hdf5::File::open(path).map_err(|e| Error::request(param, format!("`{path}`: {e}")))?;
    let d = f
        .dataset(dset)
        .map_err(|e| Error::request(param, format!("`{target}`: {e}")))?;
    if d.shape() != [h, w] {
        return Err(Error::request(
            param,
            format!("`{target}` is {:?}, the frames [{h}, {w}]", d.shape()),
        ));
    }
    let v: Vec<f64> = d
        .read_raw()
        .map_err(|e| Error::request(param, format!("`{target}`: {e}")))?;
    Ok(v.into_iter()
        .map(|x| if x.is_finite() { x } else { 0.0 })
        .collect())
}

/// Reduce the scan `req` describes over `source`.
pub fn run(req: &Request, source: &mut dyn Source, opts: &RunOptions<'_>) -> Result<Reduction> {
    let t0 = Instant::now();
    // A cached result needs no plan (a plan reads masks and builds per-pixel weights).
    if let Some(r) = cached(req, source.info(), opts, t0) {
        return Ok(r);
    }
    let plan = Plan::new(req, source)?;
    run_plan(&plan, source, opts, t0)
}

/// The cache key of a whole result.
fn result_key(identity: &str, req: &Request, decode: bool) -> String {
    format!("{identity}|{}|decode={decode}", req.canonical())
}

/// The whole result from the cache, when there is one.
pub fn cached(req: &Request, info: &Info, opts: &RunOptions<'_>, t0: Instant) -> Option<Reduction> {
    let cache = opts.cache.filter(|_| opts.lines.is_none())?;
    let mut r =
        Reduction::from_bytes(&cache.get(&result_key(&info.identity, req, opts.decode))?)?;
    r.stats.cached = true;
    r.stats.total_s = t0.elapsed().as_secs_f64();
    Some(r)
}

/// Run a prepared plan (`t0`: when the run started, for its timing).
pub fn run_plan(
    plan: &Plan,
    source: &mut dyn Source,
    opts: &RunOptions<'_>,
    t0: Instant,
) -> Result<Reduction> {
    let req = &plan.request;
    let (rows, cols) = plan.scan;
    let n = plan.per_point();
    let canonical = req.canonical();
    let key = result_key(&plan.info.identity, req, opts.decode);
    let all_lines = opts.lines.is_none();
    if let Some(r) = cached(req, &plan.info, opts, t0) {
        return Ok(r);
    }
    let lines: Vec<usize> = opts.lines.clone().unwrap_or_else(|| (0..rows).collect());
    let mut values = vec![f64::NAN; rows * cols * n];
    let mut failed = vec![];
    let mut stats = Stats {
        read_path: plan.info.read_path.clone(),
        ..Stats::default()
    };
    let line_key = |r: usize| format!("{key}|line={r}");
    // Lines still to compute; cached ones are filled in now.
    let mut todo = vec![];
    for &r in &lines {
        match opts.cache.and_then(|c| c.get(&line_key(r))) {
            Some(b) if b.len() == cols * n * 8 => {
                for (v, c) in values[r * cols * n..(r + 1) * cols * n]
                    .iter_mut()
                    .zip(b.chunks_exact(8))
                {
                    *v = f64::from_le_bytes(c.try_into().expect("8"));
                }
                stats.cached_lines += 1;
                if let Some(p) = opts.progress {
                    p(cols)
                }
            }
            _ => todo.push(r),
        }
    }
    let frames_of = |r: usize| req.first + r * cols..req.first + (r + 1) * cols;
    // One thread reads (HDF5 is not thread-safe) into a bounded queue; every worker takes the
    // next item as it is free: no barrier between lines, and the reader takes no worker.
    let t = Instant::now();
    let results = std::sync::Mutex::new(Vec::new());
    let read = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Item>(2 * rayon::current_num_threads());
        let todo = &todo;
        let reader = scope.spawn(move || {
            let (mut read_s, mut bytes) = (0f64, 0u64);
            for &r in todo {
                let t = Instant::now();
                let items = source.read(frames_of(r));
                read_s += t.elapsed().as_secs_f64();
                for it in items {
                    bytes += match &it {
                        Item::Frames { bytes, .. } => bytes.len() as u64,
                        Item::Chunk { bytes, .. } => bytes.len(),
                        Item::Failed { .. } => 0,
                    };
                    if tx.send(it).is_err() {
                        return (read_s, bytes);
                    }
                }
            }
            (read_s, bytes)
        });
        rx.into_iter()
            .par_bridge()
            .for_each_init(Scratch::default, |scratch, it| {
                let out = plan.reduce_item_guarded(&it, opts.decode, scratch);
                if let Some(p) = opts.progress {
                    p(out.0.len());
                }
                results.lock().unwrap_or_else(|e| e.into_inner()).push(out);
            });
        reader.join()
    });
    let (read_s, bytes_read) =
        read.map_err(|_| Error::Source("the reader thread failed".into()))?;
    stats.read_s = read_s;
    stats.bytes_read = bytes_read;
    stats.reduce_s = t.elapsed().as_secs_f64();
    let mut failed_lines = vec![];
    for (frame_results, compressed) in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
        stats.compressed_domain_frames += compressed;
        for (g, res) in frame_results {
            let point = g - req.first;
            stats.frames += 1;
            match res {
                Ok(v) => values[point * n..(point + 1) * n].copy_from_slice(&v),
                Err(e) => {
                    failed_lines.push(point / cols);
                    failed.push((g, e));
                }
            }
        }
    }
    if let Some(cache) = opts.cache {
        let lines: Vec<(String, Vec<u8>)> = todo
            .iter()
            .filter(|r| !failed_lines.contains(r))
            .map(|&r| {
                let line = &values[r * cols * n..(r + 1) * cols * n];
                (
                    line_key(r),
                    line.iter().flat_map(|v| v.to_le_bytes()).collect(),
                )
            })
            .collect();
        cache.put_many(&lines);
    }
    failed.sort_by_key(|f| f.0);
    stats.total_s = t0.elapsed().as_secs_f64();
    let reduction = Reduction {
        request: canonical,
        algo: req.algo.clone(),
        signal: algo::signal_of(req),
        scan: (rows, cols),
        value_shape: plan.reducer.value_shape(),
        value_axes: plan.reducer.value_axes(),
        values,
        failed,
        stats,
    };
    if let (Some(cache), true, true) = (opts.cache, all_lines, reduction.failed.is_empty()) {
        cache.put(&key, &reduction.to_bytes());
    }
    Ok(reduction)
}
