//! A `roibin`/`roi` chunk opened for analysis in the compressed domain: the background as
//! its bins (never un-binned), the exact pixels (windows and the pixels kept bit-exact) with
//! their values, and the frame facts. A decoded pixel is its bin's value unless it is exact,
//! so any linear reduction of the decoded chunk equals
//! `Σ_bins B_k·(Σ of the weights over bin k) + Σ_exact w_p·(I_p − B_bin(p))`
//! (the STXM engine's compressed-domain path). Reading the parts is as pure as decoding: it
//! builds the codec for decoding from the chunk's own spec.

use super::coverage::{Coverage, RunCursor};
use super::{FrameInfo, Layout, Roibin};
use crate::detector::elems;
use roibin_registry::spec::Graph;
use roibin_registry::{
    container, threads, ArrayMeta, Config, DType, DataKind, Error, Pipeline, Purpose, Result,
};

/// What a decoded background pixel is made of.
#[derive(Debug, Clone, PartialEq)]
pub enum Background {
    /// Bins of `factors` (rows, cols) over each panel plane `[frames·panels, rows, cols]`:
    /// `elements` is `[frames·panels, bin_rows, bin_cols]` little-endian elements of the
    /// chunk's dtype, each the element every pixel of the bin decodes to (sentinel-cleared as
    /// the decoder does). Kept as elements, not f64: a reduction converts them as it streams
    /// (a frame-sized f64 copy cost as much as the sums).
    Binned {
        factors: (usize, usize),
        bin_rows: usize,
        bin_cols: usize,
        elements: Vec<u8>,
    },
    /// `roi`: every pixel outside the windows decodes to `fill`.
    Fill(f64),
    /// Not read ([`parts_with`] without a buffer): the windows and frame facts only.
    Skipped,
}

impl Background {
    /// Bin `i` as f64 (`Binned` only).
    pub fn bin_value(&self, i: usize, dtype: DType) -> f64 {
        match self {
            Background::Binned { elements, .. } => elems::get(elements, dtype, i),
            Background::Fill(v) => *v,
            Background::Skipped => f64::NAN,
        }
    }
}

/// A chunk's parts.
#[derive(Debug, Clone)]
pub struct Parts {
    pub meta: ArrayMeta,
    pub layout: Layout,
    pub infos: Vec<FrameInfo>,
    pub background: Background,
    /// Pixels of the exact list (`exact_above`, sentinels, non-finite): chunk indices, sorted,
    /// no repeats.
    listed_index: Vec<usize>,
    /// Their values, as f64.
    listed_value: Vec<f64>,
    /// Where each frame's listed pixels start (`frames + 1` entries).
    listed_start: Vec<usize>,
    /// The pixels the windows cover, each once, as elements of the chunk's dtype in the
    /// order of `cover`'s runs (converted as they are visited).
    window_elements: Vec<u8>,
    /// The windows' runs, frame by frame.
    cover: Coverage,
}

/// The buffers a chunk's parts are decoded into, handed from chunk to chunk
/// ([`Parts::into_buffers`] → [`parts_with`]) so a chunk loop does not allocate and zero
/// them each time.
#[derive(Debug, Default)]
pub struct Buffers {
    pub bins: Vec<u8>,
    pub windows: Vec<u8>,
}

impl Parts {
    /// The parts' buffers, for the next chunk's [`parts_with`].
    pub fn into_buffers(self) -> Buffers {
        let bins = match self.background {
            Background::Binned { elements, .. } => elements,
            _ => Vec::new(),
        };
        Buffers {
            bins,
            windows: self.window_elements,
        }
    }

    /// Visit each exact pixel of frame `f` once (window pixels, then listed pixels outside
    /// the windows) as (frame row, column, value).
    pub fn for_each_exact(&self, f: usize, visit: impl FnMut(usize, usize, f64)) {
        self.walk(f, true, visit)
    }

    /// [`Parts::for_each_exact`] for a caller that has matched the dtype already (`T` must be
    /// the chunk's element type): one instance per element type, not ten.
    #[inline(always)]
    pub fn for_each_exact_as<T: Element>(&self, f: usize, visit: impl FnMut(usize, usize, f64)) {
        assert_eq!(T::DTYPE, self.meta.dtype, "element type of another chunk");
        // Inlined into the caller with `visit`, whose sums then stay in registers (called
        // through, they went to memory and back for each of a million pixels a frame).
        self.walk_typed::<T>(f, true, visit)
    }

    /// Visit each pixel inside frame `f`'s windows once, as (frame row, column, value).
    pub fn for_each_window_pixel(&self, f: usize, visit: impl FnMut(usize, usize, f64)) {
        self.walk(f, false, visit)
    }

    /// Exact pixels in the whole chunk (a pixel in several windows counts once).
    pub fn exact_count(&self) -> usize {
        (0..self.layout.frames)
            .map(|f| {
                let mut n = 0;
                self.for_each_exact(f, |_, _, _| n += 1);
                n
            })
            .sum()
    }

    fn walk(&self, f: usize, listed: bool, visit: impl FnMut(usize, usize, f64)) {
        crate::with_element_type!(self.meta.dtype, T => self.walk_typed::<T>(f, listed, visit))
    }

    #[inline(always)]
    fn walk_typed<T: Element>(
        &self,
        f: usize,
        listed: bool,
        mut visit: impl FnMut(usize, usize, f64),
    ) {
        for (y, x0, elements) in self.window_runs(f) {
            for (x, e) in (x0..).zip(elements.chunks_exact(T::SIZE)) {
                visit(y, x, T::read_f64(e));
            }
        }
        if listed {
            for (y, x, v) in self.listed_outside_windows(f) {
                visit(y, x, v);
            }
        }
    }

    /// Frame `f`'s window pixels, each once, as runs along its rows: (frame row, first
    /// column, the run's elements of the chunk's dtype), in raster order. A caller that
    /// reduces them can take a row's factors once per run.
    pub fn window_runs(
        &self,
        f: usize,
    ) -> impl Iterator<Item = (usize, usize, &[u8])> + Clone + '_ {
        let es = self.meta.dtype.size();
        let first = self.cover.pixel_start[f];
        self.cover.frame(f).iter().scan(first * es, move |at, run| {
            let n = run.len as usize * es;
            let elements = &self.window_elements[*at..*at + n];
            *at += n;
            Some((run.y as usize, run.x as usize, elements))
        })
    }

    /// Frame `f`'s listed pixels (`exact_above`, sentinels, non-finite, masked) outside its
    /// windows, as (frame row, column, value): a listed pixel inside a window (a stream this
    /// build did not write) takes the window's value, as decoding pastes the windows last.
    pub fn listed_outside_windows(
        &self,
        f: usize,
    ) -> impl Iterator<Item = (usize, usize, f64)> + '_ {
        let (cols, fp) = (self.layout.cols, self.layout.frame_pixels());
        let (lo, hi) = (self.listed_start[f], self.listed_start[f + 1]);
        // Both ascending: the listed indices (sorted when the parts were read) and the runs.
        let mut windows = RunCursor::new(self.cover.frame(f), cols);
        self.listed_index[lo..hi]
            .iter()
            .zip(&self.listed_value[lo..hi])
            .map(move |(&i, &v)| (i - f * fp, v))
            .filter(move |&(local, _)| !windows.covers(local))
            .map(move |(local, v)| (local / cols, local % cols, v))
    }
}

/// `$body` with `$t` the [`Element`] type of `$dtype` (matched once, the body typed).
#[macro_export]
macro_rules! with_element_type {
    ($dtype:expr, $t:ident => $body:expr) => {
        $crate::with_element_type!(@ $dtype, $t, $body; U8 u8, I8 i8, U16 u16, I16 i16,
            U32 u32, I32 i32, F32 f32, U64 u64, I64 i64, F64 f64)
    };
    (@ $dtype:expr, $t:ident, $body:expr; $($d:ident $ty:ty),*) => {
        match $dtype {
            $($crate::__registry::DType::$d => {
                type $t = $ty;
                $body
            })*
        }
    };
}

/// An element type a chunk can hold, read as f64.
pub trait Element {
    const DTYPE: DType;
    const SIZE: usize;
    /// The little-endian element at the start of `b` (`SIZE` bytes) as f64.
    fn read_f64(b: &[u8]) -> f64;
}

macro_rules! element {
    ($($t:ty => $d:ident),*) => {$(
        impl Element for $t {
            const DTYPE: DType = DType::$d;
            const SIZE: usize = std::mem::size_of::<$t>();
            #[inline(always)]
            fn read_f64(b: &[u8]) -> f64 {
                <$t>::from_le_bytes(b.try_into().expect("element")) as f64
            }
        }
    )*};
}
element!(u8 => U8, u16 => U16, u32 => U32, u64 => U64, i8 => I8, i16 => I16, i32 => I32,
    i64 => I64, f32 => F32, f64 => F64);

/// Whether `chunk` is a container of a `roibin` or `roi` graph (cheap: the header only, its
/// checksum not verified: [`parts_with`] verifies it when the chunk is opened).
pub fn is_roibin_chunk(chunk: &[u8]) -> bool {
    container::peek_header(chunk).is_ok_and(|h| {
        !h.raw
            && h.spec.parse::<Graph>().is_ok_and(
                |g| matches!(&g.stages[..], [s] if s.name == "roibin" || s.name == "roi"),
            )
    })
}

/// Open a `roibin`/`roi` chunk container into its parts. Errors (with nothing decoded) for
/// other graphs, for chunks stored raw, for a background graph whose binning mixes frames,
/// and for corrupt chunks.
pub fn parts(chunk: &[u8]) -> Result<Parts> {
    parts_with(chunk, true, Buffers::default())
}

/// [`parts`] decoded into `buffers` (a chunk loop hands back the previous chunk's
/// [`Parts::into_buffers`]); without `read_background` the background is not decoded at all
/// (reductions of the windows alone: it is [`Background::Skipped`]).
pub fn parts_with(chunk: &[u8], read_background: bool, buffers: Buffers) -> Result<Parts> {
    let h = container::read_header(chunk)?;
    if h.raw {
        return Err(Error::Other("chunk stored raw (no windows)".into()));
    }
    let graph: Graph = h.spec.parse::<Graph>()?.without_text();
    let [stage] = &graph.stages[..] else {
        return Err(Error::Other(format!(
            "chunk graph `{}` is not roibin",
            h.spec
        )));
    };
    let (options, background) = match stage.name.as_str() {
        "roibin" => (super::ROIBIN_OPTIONS, true),
        "roi" => (super::ROI_OPTIONS, false),
        _ => {
            return Err(Error::Other(format!(
                "chunk graph `{}` is not roibin",
                h.spec
            )))
        }
    };
    let mut config = Config::from_stage(stage, options, &stage.name)?;
    config.purpose = Purpose::Decode;
    let codec = super::build_roibin(
        &config,
        if background { "roibin" } else { "roi" },
        background,
    )?;
    let section = h.sections.first().copied().unwrap_or(&[]);
    codec_parts(&codec, section, &h.meta, read_background, buffers)
}

fn codec_parts(
    codec: &Roibin,
    data: &[u8],
    m: &ArrayMeta,
    read_background: bool,
    buffers: Buffers,
) -> Result<Parts> {
    let (l, p) = codec.parse(data, m)?;
    let dtype = m.dtype;
    let Buffers { bins, mut windows } = buffers;
    let background = match &codec.background {
        _ if !read_background => Background::Skipped,
        Some(g) => binned(codec, g, p.background, dtype, l, bins)?,
        None => Background::Fill(codec.fill),
    };
    let (mut indices, values) = codec.exact_pixels(&p.exact, dtype)?;
    let mut listed = Vec::with_capacity(indices.len());
    elems::row_f64(&values, dtype, &mut listed);
    if !indices.is_sorted() {
        // Streams write them sorted; an old or crafted one may not.
        let mut pairs: Vec<(usize, f64)> = indices.into_iter().zip(listed).collect();
        pairs.sort_unstable_by_key(|&(i, _)| i);
        (indices, listed) = pairs.into_iter().unzip();
    }
    let len = m.len();
    if indices.iter().any(|&i| i >= len) {
        return Err(Error::corrupt(codec.name, "exact pixel index out of range"));
    }
    let fp = l.frame_pixels();
    let mut listed_start = vec![0usize];
    let (mut listed_index, mut listed_value) = (
        Vec::with_capacity(indices.len()),
        Vec::with_capacity(indices.len()),
    );
    let mut next = 0usize;
    for f in 0..l.frames {
        while next < indices.len() && indices[next] < (f + 1) * fp {
            // Sorted, so a repeated pixel follows its first: keep the first.
            if listed_index.last() != Some(&indices[next]) {
                listed_index.push(indices[next]);
                listed_value.push(listed[next]);
            }
            next += 1;
        }
        listed_start.push(listed_index.len());
    }
    let cover = codec.window_values_into(&p, m, &mut windows)?;
    Ok(Parts {
        meta: m.clone(),
        layout: l,
        infos: p.infos,
        background,
        listed_index,
        listed_value,
        listed_start,
        window_elements: windows,
        cover,
    })
}

/// The background section as bins: the graph after its leading `bin` stage is decoded, the
/// bins are not spread back over their pixels.
fn binned(
    codec: &Roibin,
    g: &Graph,
    data: &[u8],
    dtype: DType,
    l: Layout,
    mut bytes: Vec<u8>,
) -> Result<Background> {
    let planes = l.frames * l.panels;
    let leading_bin = g.stages.first().is_some_and(|s| s.name == "bin");
    let factors = match g.stages.first() {
        Some(s) if leading_bin => crate::detector::bin::factors_of(s)?,
        _ => vec![1],
    };
    let (fr, fc) = match factors[..] {
        [c] => (1, c),
        [r, c] => (r, c),
        [1, r, c] => (r, c),
        _ => {
            return Err(Error::unsupported(
                codec.name,
                format!("background {g}"),
                "its binning mixes frames: decode the chunk instead",
            ))
        }
    };
    let (br, bc) = (l.rows.div_ceil(fr), l.cols.div_ceil(fc));
    let bin_meta = ArrayMeta::new(dtype, vec![planes, br, bc]);
    let rest = Graph {
        stages: g.stages[leading_bin as usize..].to_vec(),
    };
    if rest.stages.is_empty() {
        if data.len() != bin_meta.nbytes() {
            return Err(Error::corrupt(
                codec.name,
                format!("background holds {} bytes, not {bin_meta}", data.len()),
            ));
        }
        bytes.clear();
        bytes.extend_from_slice(data);
    } else {
        let pipe = Pipeline::decoder(&rest, &DataKind::Array(bin_meta.clone()))?;
        // Sized without a zero fill when the buffer is a previous chunk's (the decoder
        // writes every byte or fails).
        bytes.resize(bin_meta.nbytes(), 0);
        threads::install(codec.threads, || pipe.decode_into(data, &mut bytes))?;
    }
    if codec.rules.sentinels {
        elems::clear_sentinels(&mut bytes, dtype);
    }
    Ok(Background::Binned {
        factors: (fr, fc),
        bin_rows: br,
        bin_cols: bc,
        elements: bytes,
    })
}

/// The decoded chunk rebuilt from its parts (what a reduction over the parts must agree
/// with); used by tests.
pub fn assemble(p: &Parts) -> Vec<f64> {
    let l = p.layout;
    let mut out = vec![0f64; p.meta.len()];
    match &p.background {
        Background::Fill(v) => out.iter_mut().for_each(|o| *o = *v),
        Background::Binned {
            factors: (fr, fc),
            bin_rows,
            bin_cols,
            ..
        } => {
            for (plane, rows) in out.chunks_mut(l.rows * l.cols).enumerate() {
                for (y, row) in rows.chunks_mut(l.cols).enumerate() {
                    let base = (plane * bin_rows + y / fr) * bin_cols;
                    for (x, o) in row.iter_mut().enumerate() {
                        *o = p.background.bin_value(base + x / fc, p.meta.dtype);
                    }
                }
            }
        }
        Background::Skipped => out.iter_mut().for_each(|o| *o = f64::NAN),
    }
    let fp = l.frame_pixels();
    for f in 0..l.frames {
        p.for_each_exact(f, |y, x, v| out[f * fp + y * l.cols + x] = v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(n: usize, rows: usize, cols: usize) -> Vec<u8> {
        (0..n * rows * cols)
            .flat_map(|i| {
                let (y, x) = ((i / cols) % rows, i % cols);
                let peak = if (y, x) == (20, 30) || (y, x) == (40, 11) {
                    5000
                } else {
                    0
                };
                ((i * 7919 % 13) as u32 + 10 + peak).to_le_bytes()
            })
            .collect()
    }

    #[test]
    fn parts_rebuild_the_decoded_chunk() {
        let meta = ArrayMeta::new(DType::U32, vec![3, 64, 48]);
        let data = frames(3, 64, 48);
        for spec in [
            "roibin(peaks=pf8(snr=4,min_pix=1),roi=3,background=bin(2,2)|sz(abs=2))",
            "roibin(peaks=pf8(snr=4,min_pix=1),roi=3,background=bin(3,4))",
            "roibin(peaks=pf8(snr=4,min_pix=1),roi=2,background=zstd(1))",
            "roi(peaks=pf8(snr=4,min_pix=1),roi=2)",
            "roibin(auto)",
        ] {
            let chunk = crate::encode_chunk(spec, &meta, &data).unwrap();
            let p = parts(&chunk).unwrap();
            let (_, decoded) = crate::decode_chunk(&chunk).unwrap();
            let mut want = vec![];
            elems::row_f64(&decoded, DType::U32, &mut want);
            assert_eq!(assemble(&p), want, "{spec}");
            assert!(p.exact_count() > 0, "{spec}");
        }
    }

    #[test]
    fn other_graphs_are_refused() {
        let meta = ArrayMeta::new(DType::U16, vec![8, 8]);
        let chunk = crate::encode_chunk("zstd(1)", &meta, &[1u8; 128]).unwrap();
        assert!(!is_roibin_chunk(&chunk));
        assert!(parts(&chunk).is_err());
    }
}
