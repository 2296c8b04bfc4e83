//! `roibin(peaks, roi, window, roi_codec, background, fill, panel_rows, min_peaks, masked,
//! sentinels, exact_above, exact_below, threads)`: the ROIBIN meta codec, and `roi(...)`, its
//! windows alone.
//!
//! Per frame, a finder (or the writer, `peaks=given`) locates Bragg peaks; a window of
//! (2r+1)² pixels around each rounded centre is kept losslessly (pixels outside the panel read
//! `fill`), the centres go into the chunk, and the rest of the frame runs through the
//! `background` graph, typically `bin(2,2)|sz(abs=90)`. Detector conventions survive: pixels
//! the mask marks, integer sentinels (PILATUS −1/−2, EIGER's 0xFFFF… gaps), non-finite values
//! and outliers beyond `exact_above`/`exact_below` decode bit-exact (`exact.rs`: their indices
//! as runs, their values through roi_codec), and none of them takes part in a bin
//! (`background.rs`). Decoding runs the background graph back, pastes the exact pixels and the
//! windows: every pixel of every window is bit-exact. Frames with fewer than `min_peaks` peaks
//! are flagged, never dropped.
//!
//! Layouts: `[rows, cols]` (one frame), `[frames, rows, cols]`, `[frames, panels, rows, cols]`.
//! Panels are stacked along rows (the CXI raw layout); `panel_rows` splits a 2-D/3-D frame
//! into panels, 4-D data carry them in their shape. The background graph sees the chunk as
//! `[frames·panels, rows, cols]`, so binning never mixes two panels. The stream format is in
//! `stream.rs` (v3 written, v1 and v2 still read).

mod background;
pub mod coverage;
mod exact;
pub mod parts;
mod stream;

use super::bin::Bin;
use super::dispersion::FinderSpare;
use super::elems;
use super::peaks::{Panels, Peak, PeakList};
use super::recheck::{FrameCheck, Recheck};
use crate::spare::Spare;
use rayon::prelude::*;
use roibin_registry::options::THREADS;
use roibin_registry::spec::{Graph, Value};
use roibin_registry::{
    container, threads, Accepts, ArrayMeta, Codec, CodecInfo, Config, DType, DataKind, Error,
    OptionSpec, OptionType, Pipeline, Purpose, Result,
};
use std::cell::RefCell;
use std::sync::{Arc, Mutex};

const PEAKS: OptionSpec = OptionSpec {
    name: "peaks",
    ty: OptionType::Graph,
    default: "pf8",
    doc: "peak finder run on every frame (pf8, pfv3, dispersion, dispersion_extended with their options), `auto` (`roibin(auto)`: DIALS's dispersion test with the gain estimated from the frame, windows sized to each spot), or `given` for centres supplied by the writer",
};
const ROI: OptionSpec = OptionSpec {
    name: "roi",
    ty: OptionType::Int { min: 0, max: 127 },
    default: "8",
    doc: "window half-size r: (2r+1)² pixels around each rounded centre (8 = the paper's 17×17); with peaks=auto each window is the spot's extent + 4 instead",
};
const WINDOW: OptionSpec = OptionSpec {
    name: "window",
    ty: OptionType::Choice(&["fixed", "extent"]),
    default: "fixed",
    doc: "fixed: every window has half-size roi; extent: each peak's own extent + 1, at most roi",
};
const ROI_CODEC: OptionSpec = OptionSpec {
    name: "roi_codec",
    ty: OptionType::Graph,
    default: "shuffle|zstd(3)",
    doc: "lossless graph for the window pixels (a 1-D array of the chunk's dtype)",
};
const FILL: OptionSpec = OptionSpec {
    name: "fill",
    ty: OptionType::Float {
        min: -1e30,
        max: 1e30,
    },
    default: "0",
    doc: "value of window pixels outside the panel, and of the background in `roi`",
};
const PANEL_ROWS: OptionSpec = OptionSpec {
    name: "panel_rows",
    ty: OptionType::Int {
        min: 0,
        max: 1 << 30,
    },
    default: "0",
    doc: "rows per panel in a frame of panels stacked along rows (0: the 4-D shape's panels, else one panel)",
};
const MIN_PEAKS: OptionSpec = OptionSpec {
    name: "min_peaks",
    ty: OptionType::Int {
        min: 0,
        max: 1 << 20,
    },
    default: "0",
    doc: "frames with fewer peaks are flagged as non-hits in the chunk (never dropped)",
};

const MASKED: OptionSpec = OptionSpec {
    name: "masked",
    ty: OptionType::Choice(&["keep", "fill"]),
    default: "keep",
    doc: "pixels the finder's mask marks bad: keep (decoded bit-exact, stored as runs) or fill (decoded as the mean of their good neighbours: readers that mask by value then see data there)",
};

const SENTINELS: OptionSpec = OptionSpec {
    name: "sentinels",
    ty: OptionType::Choice(&["auto", "none"]),
    default: "auto",
    doc: "auto: integer pixels below 0 or at the type's maximum (PILATUS −1/−2, EIGER gaps and overloads) are detector flags, decoded bit-exact and kept out of bins; NaN/±Inf always are",
};

const CHECK: OptionSpec = OptionSpec {
    name: "check",
    ty: OptionType::Graph,
    default: "dispersion_extended(gain=0,min_pix=1,max_peaks=1048576)",
    doc: "with peaks=auto: the finder whose spots must be the same (same pixels) on the original and the decoded frame (DIALS's default; single pixels count, as DIALS joins them across frames into 3-D spots; dispersion(gain=0,min_pix=1,max_peaks=1048576) for DIALS's plain dispersion)",
};

const EXACT_BELOW: OptionSpec = OptionSpec {
    name: "exact_below",
    ty: OptionType::Float {
        min: -1e30,
        max: 1e30,
    },
    default: "",
    doc: "background pixels below this value are stored exactly and left out of their bins (cold or dead pixels cannot drag their neighbours down)",
};

const EXACT_ABOVE: OptionSpec = OptionSpec {
    name: "exact_above",
    ty: OptionType::Float {
        min: -1e30,
        max: 1e30,
    },
    default: "",
    doc: "background pixels above this value are stored exactly and left out of their bins (weak peaks the finder missed stay intact, and binning cannot lift a bin over the finder's threshold)",
};

const ROIBIN_OPTIONS: &[OptionSpec] = &[
    PEAKS,
    ROI,
    WINDOW,
    ROI_CODEC,
    OptionSpec {
        name: "background",
        ty: OptionType::Graph,
        default: "bin(2,2)|sz(abs=90)",
        doc: "graph for everything outside the windows, seen as [frames·panels, rows, cols]",
    },
    FILL,
    PANEL_ROWS,
    MIN_PEAKS,
    MASKED,
    SENTINELS,
    EXACT_ABOVE,
    EXACT_BELOW,
    CHECK,
    THREADS,
];

const ROI_OPTIONS: &[OptionSpec] = &[
    PEAKS, ROI, WINDOW, ROI_CODEC, FILL, PANEL_ROWS, MIN_PEAKS, SENTINELS, THREADS,
];

/// The finder `roibin(auto)` runs: DIALS's dispersion test with the gain estimated per panel
/// from the frame's own background, a little more sensitive than DIALS's defaults (σ_b 6,
/// σ_s 3), so the windows hold every spot DIALS finds on the originals.
pub const AUTO_FINDER: &str =
    "dispersion(gain=0,sigma_background=5,sigma_strong=2.5,max_peaks=1048576)";
/// Encodings `roibin(auto)` tries before it keeps the last.
const AUTO_ROUNDS: usize = 4;
/// `roibin(auto)` windows reach this far beyond a spot's extent.
const AUTO_MARGIN: usize = 2;
/// Windows the check adds reach this far: the 7×7 box of DIALS's test around each spot pixel
/// and the 11×11 mean of `dispersion_extended` see exact pixels.
const AUTO_CHECK_MARGIN: usize = 6;
/// Largest half-size of the windows `roibin(auto)`'s finder places.
const AUTO_MAX_HALF_SIZE: usize = 40;
/// Largest half-size of the windows its check adds (a spot that still moves gets all of it).
const AUTO_CHECK_MAX_HALF_SIZE: usize = 127;

/// A window: rounded centre in the stacked frame and half-size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub y: u32,
    pub x: u32,
    pub r: u8,
}

/// How the chunk splits into frames and panels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub frames: usize,
    pub panels: usize,
    pub rows: usize,
    pub cols: usize,
}

impl Layout {
    /// One frame as the finders see it.
    pub fn panel_view(&self) -> Panels {
        Panels {
            panels: self.panels,
            rows: self.rows,
            cols: self.cols,
        }
    }

    /// Pixels of one frame (all its panels).
    pub fn frame_pixels(&self) -> usize {
        self.panels
            .saturating_mul(self.rows)
            .saturating_mul(self.cols)
    }
}

/// What the encoder learnt about one frame (also what `frames` reports from a stream).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrameInfo {
    /// Peaks the finder found (windows may be fewer when `max_peaks` capped them).
    pub found: usize,
    pub windows: Vec<Window>,
    /// Fewer than `min_peaks` peaks.
    pub non_hit: bool,
}

/// Set by writers that supply centres (`roibin compress --peaks`); see [`given_allowed`].
static GIVEN_ALLOWED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Declare that this process supplies peak centres to `peaks=given` graphs.
pub fn allow_given_centres() {
    GIVEN_ALLOWED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether a dataset may be created with `peaks=given`: only a writer that supplies centres
/// can encode such chunks. The HDF5 plugin refuses it at dataset creation otherwise, because a
/// failure at write time would make h5py store chunks uncompressed.
pub fn given_allowed() -> bool {
    GIVEN_ALLOWED.load(std::sync::atomic::Ordering::Relaxed)
}

thread_local! {
    static SUPPLIED: RefCell<Option<Vec<Vec<[f32; 2]>>>> = const { RefCell::new(None) };
}

/// Run `f` (which encodes one chunk on this thread) with writer-supplied peak centres, one
/// list of `[y, x]` (raw stacked-frame coordinates) per frame of the chunk; graphs with
/// `peaks=given` take them. This is how `roibin compress --peaks` passes CXI peak lists.
pub fn with_centres<R>(centres: Vec<Vec<[f32; 2]>>, f: impl FnOnce() -> R) -> R {
    SUPPLIED.with(|s| *s.borrow_mut() = Some(centres));
    let r = f();
    SUPPLIED.with(|s| *s.borrow_mut() = None);
    r
}

/// The `roibin` and `roi` codecs (`roi` has no background graph).
pub struct Roibin {
    name: &'static str,
    peaks: Graph,
    roi: usize,
    extent: bool,
    roi_codec: Graph,
    background: Option<Graph>,
    fill: f64,
    panel_rows: usize,
    min_peaks: usize,
    threads: usize,
    path: String,
    /// Built for decoding: no finder and no mask, only what the chunk holds.
    purpose: Purpose,
    finders: Mutex<Vec<(ArrayMeta, Arc<Pipeline>)>>,
    /// `roibin(auto)`'s check finder spec.
    check: Graph,
    /// `roibin(auto)`'s check finders, by frame layout.
    checks: Mutex<Vec<(ArrayMeta, Arc<Pipeline>)>>,
    backgrounds: Mutex<Vec<(ArrayMeta, Arc<Pipeline>)>>,
    /// A background graph that starts with `bin`: that stage, and the rest of the graph by
    /// the binned array's meta (see [`Roibin::encode_background`]).
    leading_bin: Option<(Bin, Graph)>,
    background_tails: Mutex<Vec<(ArrayMeta, Arc<Pipeline>)>>,
    /// Buffers of the background's input (or of its binned form), kept between chunks (see
    /// [`Spare`]).
    copies: Spare<u8>,
    /// Buffers of a flag per pixel for the background's input, kept all false.
    exclusions: Spare<bool>,
    /// Buffers of the dispersion finders in `roibin(auto)` (see [`FinderSpare`]).
    finder_buffers: FinderSpare,
    /// Which pixels outside the windows decode bit-exact.
    rules: exact::Rules,
    /// Masked pixels of a frame (from the finder's `mask`), by frame size.
    masked: Mutex<Option<(usize, Arc<Vec<usize>>)>>,
}

fn cached(
    cache: &Mutex<Vec<(ArrayMeta, Arc<Pipeline>)>>,
    purpose: Purpose,
    meta: ArrayMeta,
    graph: &Graph,
    path: String,
) -> Result<Arc<Pipeline>> {
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = c.iter().find(|(m, _)| *m == meta) {
        return Ok(p.clone());
    }
    let p = Arc::new(Pipeline::build_for(
        purpose,
        graph,
        &DataKind::Array(meta.clone()),
        &path,
    )?);
    c.push((meta, p.clone()));
    Ok(p)
}

impl Roibin {
    fn layout(&self, m: &ArrayMeta) -> Result<Layout> {
        let s = &m.shape;
        let (frames, h, w, shape_panels) =
            match s.len() {
                2 => (1, s[0], s[1], 1),
                3 => (s[0], s[1], s[2], 1),
                4 => (s[0], s[1] * s[2], s[3], s[1]),
                r => return Err(Error::unsupported(
                    self.name,
                    format!("rank {r}"),
                    "it takes [rows, cols], [frames, rows, cols] or [frames, panels, rows, cols]",
                )),
            };
        let prow = match self.panel_rows {
            0 => h / shape_panels.max(1),
            p => p,
        };
        if prow == 0 || h % prow != 0 || w == 0 {
            return Err(Error::option(
                format!("{}:panel_rows", self.path),
                format!("{prow} does not divide the frame's {h} rows (chunk {m})"),
            ));
        }
        Ok(Layout {
            frames,
            panels: h / prow,
            rows: prow,
            cols: w,
        })
    }

    /// Indices (within a frame) of the pixels the finder's mask marks bad; empty without a mask.
    /// Encode-time only: the mask file is an input of the writer, never of a reader.
    fn masked_pixels(&self, l: Layout) -> Result<Arc<Vec<usize>>> {
        let frame_pixels = l.frame_pixels();
        if self.purpose == Purpose::Decode {
            return Err(Error::Other(format!(
                "{}: built for decoding, it reads no mask",
                self.name
            )));
        }
        let mut m = self.masked.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((n, v)) = m.as_ref() {
            if *n == frame_pixels {
                return Ok(v.clone());
            }
        }
        let path = self.peaks.stages.first().and_then(|s| {
            s.args.iter().find_map(|a| match (&a.name, &a.value) {
                (Some(n), Value::Text(t)) if n == "mask" => Some(t.clone()),
                _ => None,
            })
        });
        let v = match path {
            Some(path) => super::npy::read_map(self.name, &path, l.panel_view())?
                .iter()
                .enumerate()
                .filter(|(_, &g)| g == 0.0)
                .map(|(i, _)| i)
                .collect(),
            None => vec![],
        };
        let v = Arc::new(v);
        *m = Some((frame_pixels, v.clone()));
        Ok(v)
    }

    fn given(&self) -> bool {
        self.peaks.stages.first().is_some_and(|s| s.name == "given")
    }

    fn finder(&self, dtype: DType, l: Layout) -> Result<Arc<Pipeline>> {
        let meta = ArrayMeta::new(dtype, vec![l.panels, l.rows, l.cols]);
        let auto: Graph;
        let graph = if self.auto() {
            auto = AUTO_FINDER.parse()?;
            &auto
        } else {
            &self.peaks
        };
        cached(
            &self.finders,
            Purpose::Encode,
            meta,
            graph,
            format!("{}/peaks", self.path),
        )
    }

    /// The finder `roibin(auto)` checks its encodings with (the `check` option): spots it
    /// finds on the original but not on the decoded frame, or the other way round, get
    /// windows and the chunk is encoded again (at most [`AUTO_ROUNDS`] times).
    fn check_finder(&self, dtype: DType, l: Layout) -> Result<Arc<Pipeline>> {
        let meta = ArrayMeta::new(dtype, vec![l.panels, l.rows, l.cols]);
        cached(
            &self.checks,
            Purpose::Encode,
            meta,
            &self.check,
            format!("{}/check", self.path),
        )
    }

    /// `peaks=auto` (`roibin(auto)`): settings from the data (see [`AUTO_FINDER`]).
    fn auto(&self) -> bool {
        self.peaks.stages.len() == 1
            && self.peaks.stages[0].name == "auto"
            && self.peaks.stages[0].args.is_empty()
    }

    /// Largest window half-size a stream of this spec may hold.
    fn max_half_size(&self) -> usize {
        if self.auto() {
            AUTO_CHECK_MAX_HALF_SIZE
        } else {
            self.roi
        }
    }

    /// The array the background graph sees: the chunk's panels stacked.
    fn background_meta(&self, dtype: DType, l: Layout) -> ArrayMeta {
        ArrayMeta::new(dtype, vec![l.frames * l.panels, l.rows, l.cols])
    }

    fn background(&self, dtype: DType, l: Layout) -> Result<Option<Arc<Pipeline>>> {
        let Some(g) = &self.background else {
            return Ok(None);
        };
        let meta = self.background_meta(dtype, l);
        cached(
            &self.backgrounds,
            self.purpose,
            meta,
            g,
            format!("{}/background", self.path),
        )
        .map(Some)
    }

    fn windows_pipeline(&self, dtype: DType, n: usize) -> Result<Pipeline> {
        Pipeline::build_for(
            self.purpose,
            &self.roi_codec,
            &DataKind::Array(ArrayMeta::new(dtype, vec![n.max(1)])),
            &format!("{}/roi_codec", self.path),
        )
    }

    fn window_for(&self, p: &Peak, l: Layout) -> Option<Window> {
        let (y, x) = (p.y.round(), p.x.round());
        if !(y >= 0.0 && x >= 0.0 && (y as usize) < l.panels * l.rows && (x as usize) < l.cols) {
            return None;
        }
        let r = if self.auto() {
            // The spot and the box DIALS's test sees around each of its pixels.
            (p.extent as usize + AUTO_MARGIN).min(AUTO_MAX_HALF_SIZE)
        } else if self.extent {
            (p.extent as usize + 1).min(self.roi)
        } else {
            self.roi
        };
        Some(Window {
            y: y as u32,
            x: x as u32,
            r: r as u8,
        })
    }

    /// The flagged pixels of the chunk (see [`background::flagged_pixels`]): they need
    /// nothing of the windows, so they are found beside the finder.
    fn flagged(&self, data: &[u8], m: &ArrayMeta, l: Layout) -> Result<background::Flagged> {
        let masked = self.masked_pixels(l)?;
        // The background's input starts as a copy of the chunk, made in the same pass (a
        // leading `bin` reads the chunk itself).
        let buffers = (
            (self.background.is_some() && self.leading_bin.is_none()).then(|| self.copies.take()),
            self.exclusions.take(),
        );
        Ok(threads::install(self.threads, || {
            background::flagged_pixels(data, m.dtype, l, &masked, self.rules, self.auto(), buffers)
        }))
    }

    /// The background graph's encoding of the chunk with the windows `infos` and the
    /// `flagged` pixels filled in.
    fn encode_background(
        &self,
        data: &[u8],
        m: &ArrayMeta,
        l: Layout,
        infos: &[FrameInfo],
        mut flagged: background::Flagged,
    ) -> Result<EncodedBackground> {
        let dtype = m.dtype;
        let masked = self.masked_pixels(l)?;
        let mut encoded = Vec::new();
        if let Some(bg_pipe) = self.background(dtype, l)? {
            threads::install(self.threads, || {
                let replaced = background::replacements(
                    data,
                    dtype,
                    l,
                    infos,
                    &mut flagged,
                    &masked,
                    self.fill,
                );
                let Some((bin, tail)) = &self.leading_bin else {
                    let bg = background::prepare(data, &replaced, flagged.copy.take());
                    let done = bg_pipe.encode_into(&bg, &mut encoded);
                    self.copies.give(bg);
                    return done;
                };
                // `bin` of the chunk with the replacements patched into the rows it reads,
                // then the rest of the graph: the bytes of the whole graph on a patched copy,
                // without writing one (16 MB a JUNGFRAU frame, written and read again).
                let kind = DataKind::Array(self.background_meta(dtype, l));
                let tail_pipe = cached(
                    &self.background_tails,
                    self.purpose,
                    bin.output(&kind)?.array("bin")?.clone(),
                    tail,
                    format!("{}/background", self.path),
                )?;
                let mut binned = self.copies.take();
                binned.clear();
                let done = bin
                    .encode_patched(data, &kind, &mut binned, Some(&replaced))
                    .and_then(|()| tail_pipe.encode_into(&binned, &mut encoded));
                self.copies.give(binned);
                done
            })?;
        }
        self.exclusions.give(std::mem::take(&mut flagged.excluded));
        Ok(EncodedBackground {
            flagged: flagged.pixels,
            encoded,
        })
    }

    /// The stream of the chunk with the windows `infos` over the background `bg` (encoded
    /// with these windows or fewer: a window the background was not prepared for is pasted
    /// over it all the same).
    fn write_stream(
        &self,
        data: &[u8],
        m: &ArrayMeta,
        l: Layout,
        infos: &[FrameInfo],
        bg: &EncodedBackground,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let dtype = m.dtype;
        let squares = window_square_pixels(infos);
        if squares > max_window_pixels(m.len()) {
            return Err(Error::unrepresentable(
                self.name,
                format!("{squares} window pixels for a chunk of {m}: more than a decoder accepts"),
            ));
        }
        let cover = coverage::of(l, infos);
        let enc_win = self.encode_windows(data, m, l, &cover)?;
        // Window pixels are exact already: the stream lists only the flagged pixels outside.
        let exact = cover.outside(&bg.flagged, l.frame_pixels(), l.cols);
        stream::write_head(l, infos, self.background.is_some(), out);
        exact::write(
            &exact,
            data,
            dtype.size(),
            |v, o| {
                self.windows_pipeline(dtype, v.len() / dtype.size())?
                    .encode_into(v, o)
            },
            out,
        )?;
        stream::write_section(&enc_win, out);
        stream::write_section(&bg.encoded, out);
        Ok(())
    }

    /// The pixels the windows cover (`cover`), each once in raster order, encoded by
    /// roi_codec.
    fn encode_windows(
        &self,
        data: &[u8],
        m: &ArrayMeta,
        l: Layout,
        cover: &coverage::Coverage,
    ) -> Result<Vec<u8>> {
        let es = m.dtype.size();
        let mut win = Vec::with_capacity(cover.pixels() * es);
        for f in 0..l.frames {
            for run in cover.frame(f) {
                let i = (f * l.frame_pixels() + run.y as usize * l.cols + run.x as usize) * es;
                win.extend_from_slice(&data[i..i + run.len as usize * es]);
            }
        }
        let mut enc_win = Vec::new();
        if !win.is_empty() {
            self.windows_pipeline(m.dtype, win.len() / es)?
                .encode_into(&win, &mut enc_win)?;
        }
        Ok(enc_win)
    }

    /// Parse a chunk's stream and check that it is for this codec and chunk.
    fn parse<'a>(&self, data: &'a [u8], m: &ArrayMeta) -> Result<(Layout, stream::Parsed<'a>)> {
        let l = self.layout(m)?;
        let p = stream::parse(self.name, data, m.dtype.size(), m.len())?;
        if p.layout != l || p.has_bg != self.background.is_some() {
            return Err(Error::corrupt(
                self.name,
                format!("stream is for {:?}, the chunk is {m}", p.layout),
            ));
        }
        if let Some(w) = p
            .infos
            .iter()
            .flat_map(|f| &f.windows)
            .find(|w| w.y as usize >= l.panels * l.rows || w.x as usize >= l.cols)
        {
            return Err(Error::corrupt(
                self.name,
                format!("window centre ({}, {}) outside the frame", w.y, w.x),
            ));
        }
        Ok((l, p))
    }

    /// The pixels the windows cover and, into `buf` (its allocation reused; no zero fill
    /// when it already has the size), their elements in the coverage's order, whatever the
    /// stream's version. Window sizes come from the stream: they are checked against the spec
    /// before anything they size is allocated or walked.
    fn window_values_into(
        &self,
        p: &stream::Parsed<'_>,
        m: &ArrayMeta,
        buf: &mut Vec<u8>,
    ) -> Result<coverage::Coverage> {
        if let Some(w) = p
            .infos
            .iter()
            .flat_map(|f| &f.windows)
            .find(|w| w.r as usize > self.max_half_size())
        {
            return Err(Error::corrupt(
                self.name,
                format!("a window of half-size {} where roi is {}", w.r, self.roi),
            ));
        }
        let squares = window_square_pixels(&p.infos);
        if squares > max_window_pixels(m.len()) {
            return Err(Error::corrupt(
                self.name,
                format!("{squares} window pixels for a chunk of {m}"),
            ));
        }
        let cover = coverage::of(p.layout, &p.infos);
        let es = m.dtype.size();
        buf.resize(cover.pixels() * es, 0);
        if p.version >= 3 {
            if cover.pixels() > 0 {
                self.windows_pipeline(m.dtype, cover.pixels())?
                    .decode_into(p.windows, buf)?;
            }
        } else if squares > 0 {
            let squares = self.windows_pipeline(m.dtype, squares)?.decode(p.windows)?;
            v2_windows_as_runs(&squares, &p.infos, p.layout, &cover, es, buf);
        }
        Ok(cover)
    }

    /// The exact pixels of a stream: chunk indices (unchecked) and their elements.
    fn exact_pixels(
        &self,
        exact: &stream::Exact<'_>,
        dtype: DType,
    ) -> Result<(Vec<usize>, Vec<u8>)> {
        match exact {
            stream::Exact::Listed(list) => Ok((
                list.iter().map(|&(i, _)| i).collect(),
                list.iter().flat_map(|&(_, b)| b.iter().copied()).collect(),
            )),
            stream::Exact::Runs(p) if !p.indices.is_empty() => Ok((
                p.indices.clone(),
                self.windows_pipeline(dtype, p.indices.len())?
                    .decode(p.values)?,
            )),
            stream::Exact::Runs(_) => Ok((vec![], vec![])),
        }
    }

    /// Write the exact pixels of a stream into the decoded chunk.
    fn paste_exact(&self, exact: &stream::Exact<'_>, dtype: DType, dst: &mut [u8]) -> Result<()> {
        let es = dtype.size();
        let (indices, values) = self.exact_pixels(exact, dtype)?;
        for (&i, v) in indices.iter().zip(values.chunks_exact(es)) {
            dst.get_mut(i * es..(i + 1) * es)
                .ok_or_else(|| Error::corrupt(self.name, "exact pixel index out of range"))?
                .copy_from_slice(v);
        }
        Ok(())
    }

    /// Find the windows of every frame.
    fn frames(
        &self,
        data: &[u8],
        m: &ArrayMeta,
        l: Layout,
        supplied: Option<Vec<Vec<[f32; 2]>>>,
    ) -> Result<Vec<FrameInfo>> {
        let fb = l.frame_pixels() * m.dtype.size();
        let lists: Vec<PeakList> = if self.given() {
            let supplied = supplied.ok_or_else(|| {
                Error::unsupported(
                    self.name,
                    "peaks=given without centres",
                    "the writer must supply peak centres (roibin compress --peaks GROUP); inside HDF5 use a finder such as peaks=pf8",
                )
            })?;
            if supplied.len() != l.frames {
                return Err(Error::Other(format!(
                    "{} peak lists supplied for a chunk of {} frames",
                    supplied.len(),
                    l.frames
                )));
            }
            supplied
                .into_iter()
                .map(|c| PeakList {
                    found: c.len(),
                    peaks: c
                        .into_iter()
                        .map(|[y, x]| Peak {
                            y,
                            x,
                            total: 0.0,
                            max: 0.0,
                            npix: 0,
                            extent: self.roi as u32,
                        })
                        .collect(),
                })
                .collect()
        } else {
            let finder = self.finder(m.dtype, l)?;
            data.par_chunks(fb)
                .map(|frame| {
                    // A list of a few peaks: `encode`'s buffer for half the frame is not wanted.
                    let mut list = Vec::new();
                    finder.encode_into(frame, &mut list)?;
                    PeakList::read(&list)
                })
                .collect::<Result<_>>()?
        };
        Ok(self.infos(lists, l))
    }

    /// Each frame's windows around the peaks of its list.
    fn infos(&self, lists: Vec<PeakList>, l: Layout) -> Vec<FrameInfo> {
        lists
            .into_iter()
            .map(|list| FrameInfo {
                found: list.found,
                non_hit: list.found < self.min_peaks,
                windows: list
                    .peaks
                    .iter()
                    .filter_map(|p| self.window_for(p, l))
                    .collect(),
            })
            .collect()
    }

    /// `roibin(auto)`'s windows and its check's spots on the originals, per frame, when both
    /// finders are dispersion tests that can share their work on a frame (see
    /// [`Recheck::peak_lists`]); `None` when the check is another finder.
    fn auto_spots(
        &self,
        data: &[u8],
        m: &ArrayMeta,
        l: Layout,
        check: Option<&Recheck>,
    ) -> Result<Option<AutoSpots>> {
        let (Some(check), Some(finder)) = (
            check,
            Recheck::of(&AUTO_FINDER.parse()?, l.panel_view(), &self.finder_buffers),
        ) else {
            return Ok(None);
        };
        let fb = l.frame_pixels() * m.dtype.size();
        let (lists, orig): (Vec<PeakList>, Vec<Vec<Peak>>) = data
            .par_chunks(fb)
            .map(|frame| {
                // One list per finder, in order (no panic path inside a filter).
                let mut lists = Recheck::peak_lists(&[&finder, check], frame, m.dtype).into_iter();
                let found = lists.next().unwrap_or_default();
                (found, lists.next().unwrap_or_default().peaks)
            })
            .unzip();
        Ok(Some((self.infos(lists, l), orig)))
    }
}

/// [`Roibin::auto_spots`]: per frame, the windows and the check's spots on the original.
type AutoSpots = (Vec<FrameInfo>, Vec<Vec<Peak>>);

/// What [`Roibin::encode_background`] makes: the flagged pixels and the background's encoding.
struct EncodedBackground {
    flagged: Vec<usize>,
    encoded: Vec<u8>,
}

/// The rows and columns (of the stacked frame) that window `w` covers inside its panel.
fn window_rect(w: Window, l: Layout) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    let (y, x, r) = (w.y as usize, w.x as usize, w.r as usize);
    let top = y / l.rows * l.rows;
    let rows = y.saturating_sub(r).max(top)..(y + r + 1).min(top + l.rows);
    let cols = x.saturating_sub(r)..(x + r + 1).min(l.cols);
    (rows, cols)
}

/// Copy the pixels of the windows `added` (frame, window) from `data` into `dst`: what a
/// decoder makes of a stream once those windows join it.
fn paste_windows(data: &[u8], dst: &mut [u8], l: Layout, es: usize, added: &[(usize, Window)]) {
    for &(f, w) in added {
        let base = f * l.frame_pixels();
        for (y, x) in window_pixels(w, l).flatten() {
            let i = (base + y * l.cols + x) * es;
            dst[i..i + es].copy_from_slice(&data[i..i + es]);
        }
    }
}

/// The peaks `finder` finds on every frame of `data`.
fn spots(finder: &Pipeline, data: &[u8], l: Layout, dtype: DType) -> Result<Vec<Vec<Peak>>> {
    data.par_chunks(l.frame_pixels() * dtype.size())
        .map(|frame| Ok(PeakList::read(&finder.encode(frame)?)?.peaks))
        .collect()
}

/// Spots of `orig` and of `dec` that are not the same spot on both: left over by a one-to-one
/// matching within 1.5 pixels (see [`super::peaks::match_peaks`]), or matched but with other
/// pixels (pixel count or centroid differ). A spot's centroid comes from its pixels' values,
/// so equal counts and centroids mean the same pixels; near-misses matter because DIALS's
/// own filters (`min_spot_size` 3, the peak-centroid distance) then keep or drop them
/// differently on the two frames.
fn unmatched<'a>(orig: &'a [Peak], dec: &'a [Peak]) -> Vec<&'a Peak> {
    let pairs = super::peaks::match_peaks(orig, dec, 1.5);
    let (mut found, mut used) = (vec![false; orig.len()], vec![false; dec.len()]);
    for (i, j) in pairs {
        let (p, q) = (&orig[i], &dec[j]);
        if p.npix == q.npix && (p.y - q.y).hypot(p.x - q.x) <= SAME_SPOT_PX {
            found[i] = true;
            used[j] = true;
        }
    }
    let lost = orig.iter().zip(found).filter(|(_, f)| !f).map(|(p, _)| p);
    let invented = dec.iter().zip(used).filter(|(_, u)| !u).map(|(q, _)| q);
    lost.chain(invented).collect()
}

/// Centroids this close (pixels) with equal pixel counts are the same spot (f32 rounding of
/// the same pixels' centroid stays far below it).
const SAME_SPOT_PX: f32 = 1e-3;

/// Pixels of the windows' squares, overlaps and parts outside the panel counted (what a v2
/// stream stores, and a bound on the work of finding their coverage).
fn window_square_pixels(infos: &[FrameInfo]) -> usize {
    infos
        .iter()
        .flat_map(|f| &f.windows)
        .map(|w| (2 * w.r as usize + 1).pow(2))
        .sum()
}

/// A v2 stream's window pixels (`squares`: each window's (2r+1)² in window order) as the
/// elements of `cover`'s runs into `out`; where windows overlap the later one's pixel is
/// kept, as v2 decoders pasted them.
fn v2_windows_as_runs(
    squares: &[u8],
    infos: &[FrameInfo],
    l: Layout,
    cover: &coverage::Coverage,
    es: usize,
    out: &mut [u8],
) {
    let mut frame = vec![0u8; l.frame_pixels() * es];
    let (mut k, mut at) = (0, 0);
    for (f, info) in infos.iter().enumerate() {
        for &w in &info.windows {
            for px in window_pixels(w, l) {
                if let Some((y, x)) = px {
                    let i = (y * l.cols + x) * es;
                    frame[i..i + es].copy_from_slice(&squares[k * es..(k + 1) * es]);
                }
                k += 1;
            }
        }
        for run in cover.frame(f) {
            let (i, n) = (
                (run.y as usize * l.cols + run.x as usize) * es,
                run.len as usize * es,
            );
            out[at..at + n].copy_from_slice(&frame[i..i + n]);
            at += n;
        }
    }
}

/// Most window pixels a chunk of `pixels` may hold (windows overlap, so more than the chunk
/// is possible, but not without bound): the encoder stores a chunk over it raw, the decoder
/// refuses a stream over it before allocating.
fn max_window_pixels(pixels: usize) -> usize {
    pixels.saturating_mul(4).saturating_add(1 << 16)
}

/// Pixels of window `w` as (stacked-frame row, col) of in-panel pixels, or None for outside.
fn window_pixels(w: Window, l: Layout) -> impl Iterator<Item = Option<(usize, usize)>> {
    let r = w.r as i64;
    let panel = w.y as usize / l.rows;
    let (top, bottom) = ((panel * l.rows) as i64, ((panel + 1) * l.rows) as i64);
    (-r..=r).flat_map(move |dy| {
        (-r..=r).map(move |dx| {
            let (y, x) = (w.y as i64 + dy, w.x as i64 + dx);
            (y >= top && y < bottom && x >= 0 && x < l.cols as i64)
                .then_some((y as usize, x as usize))
        })
    })
}

/// Frame facts of a `roibin`/`roi` chunk container: peaks found, windows, non-hit flags.
pub fn frames(chunk: &[u8]) -> Result<Vec<FrameInfo>> {
    let h = container::read_header(chunk)?;
    if h.raw {
        return Err(Error::Other("chunk stored raw (no windows)".into()));
    }
    let graph: Graph = h.spec.parse()?;
    if !matches!(&graph.stages[..], [s] if s.name == "roibin" || s.name == "roi") {
        return Err(Error::Other(format!(
            "chunk graph `{}` is not roibin or roi",
            h.spec
        )));
    }
    let section = h.sections.first().copied().unwrap_or(&[]);
    Ok(stream::parse("roibin", section, h.meta.dtype.size(), h.meta.len())?.infos)
}

impl Codec for Roibin {
    fn output(&self, input: &DataKind) -> Result<DataKind> {
        let m = input.array(self.name)?;
        let l = self.layout(m)?;
        // The finder (and its mask and radius files) is an encoder's part only.
        if self.purpose == Purpose::Encode && !self.given() {
            self.finder(m.dtype, l)?;
        }
        if self.purpose == Purpose::Encode && !elems::representable(self.fill, m.dtype) {
            return Err(Error::option(
                format!("{}:fill", self.path),
                format!(
                    "{} is not a {} value: give a fill the data type can hold",
                    roibin_registry::options::format_float(self.fill),
                    m.dtype
                ),
            ));
        }
        self.background(m.dtype, l)?;
        self.windows_pipeline(m.dtype, (2 * self.roi + 1).pow(2))?;
        Ok(DataKind::Bytes)
    }

    fn encode(&self, data: &[u8], input: &DataKind, out: &mut Vec<u8>) -> Result<()> {
        let m = input.array(self.name)?;
        let l = self.layout(m)?;
        // Taken here, on the caller's thread: the frame loop runs on pool threads.
        let supplied = SUPPLIED.with(|s| s.borrow_mut().take());
        // `roi` has no background to check: its auto windows are the finder's.
        if !self.auto() || self.background.is_none() {
            let (infos, flagged) = threads::install(self.threads, || {
                rayon::join(
                    || self.frames(data, m, l, supplied),
                    || self.flagged(data, m, l),
                )
            });
            let infos = infos?;
            let bg = self.encode_background(data, m, l, &infos, flagged?)?;
            return self.write_stream(data, m, l, &infos, &bg, out);
        }
        // roibin(auto): encode, decode, compare DIALS-default spots, add windows, again. The
        // background is encoded once, with the finder's windows: windows the check adds are
        // pasted over it, so the next decoded chunk is this one with their pixels put back
        // (no re-encoding, no decoding), and only the check runs again. The check of the
        // originals needs nothing of the encoding, so it runs beside the first one.
        let check = self.check_finder(m.dtype, l)?;
        // A dispersion check is re-run only around the windows pasted since (the same spots
        // as a full run: see `recheck`); any other check runs on the whole chunk each round.
        let recheck = Recheck::of(&self.check, l.panel_view(), &self.finder_buffers);
        let encode_first = |infos: &[FrameInfo], flagged| -> Result<_> {
            let bg = self.encode_background(data, m, l, infos, flagged)?;
            let mut stream = Vec::new();
            self.write_stream(data, m, l, infos, &bg, &mut stream)?;
            let mut back = vec![0u8; data.len()];
            self.decode_into(&stream, input, &mut back)?;
            Ok((bg, stream, back))
        };
        let (orig, mut infos, (bg, stream, mut back)) = threads::install(self.threads, || {
            let (auto, flagged) = rayon::join(
                || self.auto_spots(data, m, l, recheck.as_ref()),
                || self.flagged(data, m, l),
            );
            let flagged = flagged?;
            if let Some((infos, orig)) = auto? {
                let first = encode_first(&infos, flagged)?;
                return Ok::<_, Error>((orig, infos, first));
            }
            let (orig, first) = rayon::join(
                || spots(&check, data, l, m.dtype),
                || -> Result<_> {
                    let infos = self.frames(data, m, l, supplied)?;
                    Ok((encode_first(&infos, flagged)?, infos))
                },
            );
            let (first, infos) = first?;
            Ok((orig?, infos, first))
        })?;
        let start = out.len();
        out.extend_from_slice(&stream);
        let mut grown = false;
        let fb = l.frame_pixels() * m.dtype.size();
        let mut checked: Option<Vec<FrameCheck>> = recheck.as_ref().map(|rc| {
            threads::install(self.threads, || {
                back.par_chunks(fb).map(|f| rc.full(f, m.dtype)).collect()
            })
        });
        for _ in 1..AUTO_ROUNDS {
            let dec = match (&recheck, &checked) {
                (Some(rc), Some(frames)) => threads::install(self.threads, || {
                    frames.par_iter().map(|fc| rc.spots(fc)).collect()
                }),
                _ => threads::install(self.threads, || spots(&check, &back, l, m.dtype))?,
            };
            let mut added = vec![];
            for (f, info) in infos.iter_mut().enumerate() {
                let lost = unmatched(&orig[f], &dec[f]);
                if lost.is_empty() {
                    continue;
                }
                // A set, not a search of the list per spot: a frame holds ~12 000 windows
                // where its check adds thousands (a fifth of a synthetic frame's encode).
                let mut known: rustc_hash::FxHashSet<Window> =
                    info.windows.iter().copied().collect();
                for p in lost {
                    // As large as the spot needs: a large diffuse spot's centroid moves with
                    // its background unless all of it is exact.
                    let r = (p.extent as usize + AUTO_CHECK_MARGIN).min(AUTO_CHECK_MAX_HALF_SIZE);
                    if let Some(w) = self.window_for(p, l).map(|w| Window { r: r as u8, ..w }) {
                        if known.insert(w) {
                            info.windows.push(w);
                            added.push((f, w));
                        }
                    }
                }
            }
            if added.is_empty() {
                break;
            }
            grown = true;
            paste_windows(data, &mut back, l, m.dtype.size(), &added);
            if let (Some(rc), Some(frames)) = (&recheck, &mut checked) {
                threads::install(self.threads, || {
                    frames.par_iter_mut().enumerate().for_each(|(f, fc)| {
                        let rects: Vec<_> = added
                            .iter()
                            .filter(|(af, _)| *af == f)
                            .map(|&(_, w)| window_rect(w, l))
                            .collect();
                        if !rects.is_empty() {
                            rc.update(fc, &back[f * fb..(f + 1) * fb], m.dtype, &rects);
                        }
                    })
                });
            }
        }
        // The stream is written once, with the last round's windows: a round needs only the
        // decoded chunk, which the pasted windows keep up to date.
        if grown {
            out.truncate(start);
            self.write_stream(data, m, l, &infos, &bg, out)?;
        }
        Ok(())
    }

    fn decode(&self, data: &[u8], input: &DataKind, out: &mut Vec<u8>) -> Result<()> {
        let m = input.array(self.name)?;
        let start = out.len();
        out.resize(start + m.nbytes(), 0);
        self.decode_into(data, input, &mut out[start..])
    }

    fn decode_into(&self, data: &[u8], input: &DataKind, dst: &mut [u8]) -> Result<()> {
        let m = input.array(self.name)?;
        let (dtype, es) = (m.dtype, m.dtype.size());
        let (l, p) = self.parse(data, m)?;
        if dst.len() != m.nbytes() {
            return Err(Error::corrupt(self.name, format!("output is not {m}")));
        }
        match self.background(dtype, l)? {
            Some(bg) => {
                threads::install(self.threads, || bg.decode_into(p.background, dst))?;
                if self.rules.sentinels {
                    // Every sentinel was stored exactly: a lossy background value that lands on
                    // one (a count decoded below zero, or at the type's maximum) is moved
                    // back into range, so readers that mask by value see no false flags.
                    elems::clear_sentinels(dst, dtype);
                }
            }
            None => {
                let mut fill = vec![0u8; es];
                elems::put(self.fill, dtype, &mut fill);
                dst.chunks_exact_mut(es)
                    .for_each(|c| c.copy_from_slice(&fill));
            }
        }
        self.paste_exact(&p.exact, dtype, dst)?;
        let mut win = Vec::new();
        let cover = self.window_values_into(&p, m, &mut win)?;
        let mut values = win.as_slice();
        for f in 0..l.frames {
            for run in cover.frame(f) {
                let (n, i) = (
                    run.len as usize * es,
                    (f * l.frame_pixels() + run.y as usize * l.cols + run.x as usize) * es,
                );
                dst[i..i + n].copy_from_slice(&values[..n]);
                values = &values[n..];
            }
        }
        Ok(())
    }

    fn canonical_children(&self) -> Vec<(&'static str, Graph)> {
        let first = |c: &Mutex<Vec<(ArrayMeta, Arc<Pipeline>)>>, g: &Graph| {
            c.lock()
                .unwrap_or_else(|e| e.into_inner())
                .first()
                .map(|(_, p)| p.canonical().clone())
                .unwrap_or_else(|| g.clone())
        };
        let peaks = if self.auto() {
            self.peaks.clone()
        } else {
            first(&self.finders, &self.peaks)
        };
        let mut v = vec![("peaks", peaks)];
        if let Some(bg) = &self.background {
            v.push(("background", first(&self.backgrounds, bg)));
        }
        v
    }
}

fn build_with(c: &Config, name: &'static str, background: bool) -> Result<Box<dyn Codec>> {
    Ok(Box::new(build_roibin(c, name, background)?))
}

fn build_roibin(c: &Config, name: &'static str, background: bool) -> Result<Roibin> {
    let graph: Option<Graph> = if background {
        Some(c.get("background")?)
    } else {
        None
    };
    // Encoding only: a decoder runs the stored graph as it is.
    let stages = graph.as_ref().filter(|_| c.purpose != Purpose::Decode);
    let leading_bin = match stages.map(|g| &g.stages[..]) {
        Some([first, rest @ ..]) if first.name == "bin" && !rest.is_empty() => Some((
            Bin::from_stage(first)?,
            Graph {
                stages: rest.to_vec(),
            },
        )),
        _ => None,
    };
    Ok(Roibin {
        name,
        peaks: c.get("peaks")?,
        roi: c.get::<i64>("roi")? as usize,
        extent: c.get::<String>("window")? == "extent",
        roi_codec: c.get("roi_codec")?,
        background: graph,
        fill: c.get("fill")?,
        panel_rows: c.get::<i64>("panel_rows")? as usize,
        min_peaks: c.get::<i64>("min_peaks")? as usize,
        rules: exact::Rules {
            sentinels: c.get::<String>("sentinels")? == "auto",
            // roi keeps masked pixels (it has no background to fill them into); the
            // thresholds are roibin's only: they decide what its background leaves out.
            masked: !background || c.get::<String>("masked")? == "keep",
            above: if background {
                c.get_opt("exact_above")?
            } else {
                None
            },
            below: if background {
                c.get_opt("exact_below")?
            } else {
                None
            },
        },
        masked: Mutex::new(None),
        threads: c.threads()?,
        path: c.path.clone(),
        purpose: c.purpose,
        finders: Mutex::new(vec![]),
        checks: Mutex::new(vec![]),
        check: if background {
            c.get("check")?
        } else {
            Graph::word("none")
        },
        backgrounds: Mutex::new(vec![]),
        leading_bin,
        background_tails: Mutex::new(vec![]),
        copies: Spare::default(),
        exclusions: Spare::default(),
        finder_buffers: FinderSpare::default(),
    })
}

inventory::submit! {
    CodecInfo {
        name: "roibin",
        version: 1,
        doc: "ROIBIN: peak windows kept losslessly (centres in the chunk), the background through its own graph (binning + error-bounded lossy); one spec fits 2-D, 3-D and 4-D frame layouts",
        options: ROIBIN_OPTIONS,
        accepts: Accepts { dtypes: &[], ranks: (2, 4), bytes: false },
        thread_safe: true,
        build: |c| build_with(c, "roibin", true),
    }
}

inventory::submit! {
    CodecInfo {
        name: "roi",
        version: 1,
        doc: "peak windows only: keeps (2r+1)² pixels around each peak losslessly and drops the rest (decoded as `fill`)",
        options: ROI_OPTIONS,
        accepts: Accepts { dtypes: &[], ranks: (2, 4), bytes: false },
        thread_safe: true,
        build: |c| build_with(c, "roi", false),
    }
}

/// `given`: stands for centres the writer supplies (see [`with_centres`]).
struct Given;

impl Codec for Given {
    fn output(&self, input: &DataKind) -> Result<DataKind> {
        Panels::of("given", input.array("given")?)?;
        Ok(DataKind::Bytes)
    }
    fn encode(&self, _: &[u8], _: &DataKind, _: &mut Vec<u8>) -> Result<()> {
        Err(Error::unsupported(
            "given",
            "a frame",
            "`given` has no finder: the writer supplies centres (roibin compress --peaks GROUP)",
        ))
    }
    fn decode(&self, _: &[u8], _: &DataKind, _: &mut Vec<u8>) -> Result<()> {
        Err(super::peaks::refuse_decode("given"))
    }
}

inventory::submit! {
    CodecInfo {
        name: "given",
        version: 1,
        doc: "peak centres supplied by the writer (roibin compress --peaks GROUP reads CXI nPeaks/peakXPosRaw/peakYPosRaw)",
        options: &[],
        accepts: Accepts { dtypes: &[], ranks: (2, 3), bytes: false },
        thread_safe: true,
        build: |_| Ok(Box::new(Given)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peak(y: f32, x: f32, npix: u32) -> Peak {
        Peak {
            y,
            x,
            total: 100.0,
            max: 50.0,
            npix,
            extent: 1,
        }
    }

    #[test]
    fn a_spot_with_other_pixels_is_not_the_same_spot() {
        let orig = [
            peak(10.0, 10.0, 3),
            peak(40.0, 40.0, 4),
            peak(70.0, 70.0, 2),
        ];
        // Same pixels; one pixel fewer (DIALS's min_spot_size 3 would then drop it); a centroid
        // moved by a background pixel that joined the spot.
        let dec = [
            peak(10.0, 10.0, 3),
            peak(40.2, 40.1, 3),
            peak(70.3, 70.0, 2),
        ];
        let left: Vec<(f32, f32)> = unmatched(&orig, &dec).iter().map(|p| (p.y, p.x)).collect();
        assert_eq!(
            left,
            vec![(40.0, 40.0), (70.0, 70.0), (40.2, 40.1), (70.3, 70.0)]
        );
        assert!(unmatched(&orig, &orig).is_empty());
    }

    /// A v2 stream's overlapping windows read as v3's runs: each covered pixel once, with the
    /// value of the last window that holds it (what v2 decoders pasted last), and nothing of
    /// the parts outside the panel.
    #[test]
    fn v2_windows_read_as_runs_keep_the_last_windows_pixels() {
        let l = Layout {
            frames: 2,
            panels: 2,
            rows: 6,
            cols: 8,
        };
        let w = |y, x, r| Window { y, x, r };
        let infos = [
            FrameInfo {
                windows: vec![w(2, 2, 2), w(3, 3, 1), w(6, 7, 1)],
                ..Default::default()
            },
            FrameInfo {
                windows: vec![w(5, 0, 1)],
                ..Default::default()
            },
        ];
        // Window k of the stream holds the value k + 1 in each of its (2r+1)² pixels.
        let squares: Vec<u8> = infos
            .iter()
            .flat_map(|i| &i.windows)
            .enumerate()
            .flat_map(|(k, w)| vec![k as u8 + 1; (2 * w.r as usize + 1).pow(2)])
            .collect();
        let cover = coverage::of(l, &infos);
        let mut out = vec![0u8; cover.pixels()];
        v2_windows_as_runs(&squares, &infos, l, &cover, 1, &mut out);
        let mut want = vec![vec![0u8; l.frame_pixels()]; 2];
        let mut k = 0;
        for (f, info) in infos.iter().enumerate() {
            for &win in &info.windows {
                k += 1;
                for (y, x) in window_pixels(win, l).flatten() {
                    want[f][y * l.cols + x] = k;
                }
            }
        }
        let got: Vec<u8> = (0..2)
            .flat_map(|f| {
                cover.frame(f).iter().flat_map(move |r| {
                    (0..r.len as usize).map(move |i| (f, r.y as usize * l.cols + r.x as usize + i))
                })
            })
            .map(|(f, i)| want[f][i])
            .collect();
        assert_eq!(out, got);
        assert!(out.iter().all(|&v| v > 0));
        // The second window's 3×3 overwrote the first's there; panel 1's window kept apart.
        assert_eq!(want[0][3 * l.cols + 3], 2);
        assert_eq!(cover.pixels(), 25 + 2 * 2 + 2 * 2);
    }
}
