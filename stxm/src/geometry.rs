//! dada's pre-processing, in its order: rectangular ROI, integer binning, pixel mask,
//! empty-beam division, difference to an image. All of it is linear in the frame, so it folds
//! into per-pixel weights: a processed pixel `q` is
//! `P_q = (Σ_{p in q} m_p·I_p) / E_q − D_q`, and a linear detector `Σ_q V_q·P_q` is
//! `Σ_p (V_q(p)·m_p/E_q(p))·I_p − Σ_q V_q·D_q`: one pass over the raw frame, no processed
//! frame built. Binning sums pixels; bins past the ROI's edge that are not full are dropped
//! (numpy's `reshape(h, by, w, bx).sum((1, 3))`).
//!
//! Pixel values: NaN/±Inf, the all-ones value of 16- and 32-bit unsigned data (DECTRIS gaps
//! and overflows) and negative values of signed integers (PILATUS flags) count as 0.

use crate::request::{Image, Rect, Request};
use crate::{Error, Result};
use rayon::prelude::*;
use roibin_compressors::prefetch::prefetch;
use roibin_registry::DType;

/// Label of a pixel that no output uses.
pub const NONE: u32 = u32::MAX;

/// A pixel's value as the reduction sees it (see the module doc).
#[inline]
pub fn valid(v: f64, dtype: DType) -> f64 {
    if flagged(v, dtype) {
        0.0
    } else {
        v
    }
}

/// Whether `v` is a flag of `dtype` (a sentinel or a non-finite value), not a count.
#[inline(always)]
pub fn flagged(v: f64, dtype: DType) -> bool {
    match dtype {
        DType::U16 => v == u16::MAX as f64,
        DType::U32 => v == u32::MAX as f64,
        DType::I8 | DType::I16 | DType::I32 | DType::I64 => v < 0.0,
        _ => !v.is_finite(),
    }
}

/// One row of raw elements as valid f64 values, into a reused buffer.
pub fn row_values(bytes: &[u8], dtype: DType, out: &mut Vec<f64>) {
    row_values_inline(bytes, dtype, out)
}

#[inline(always)]
pub(crate) fn row_values_inline(bytes: &[u8], dtype: DType, out: &mut Vec<f64>) {
    out.clear();
    match dtype {
        DType::U32 => out.extend(bytes.chunks_exact(4).map(|c| {
            let v = u32::from_le_bytes(c.try_into().expect("4"));
            // Exact u32 → f64 with integer operations (vectorises; `as` does not).
            let f = f64::from_bits(0x4330_0000_0000_0000 | v as u64) - 4_503_599_627_370_496.0;
            if v == u32::MAX {
                0.0
            } else {
                f
            }
        })),
        DType::U16 => out.extend(bytes.chunks_exact(2).map(|c| {
            let v = u16::from_le_bytes(c.try_into().expect("2"));
            if v == u16::MAX {
                0.0
            } else {
                v as f64
            }
        })),
        DType::U8 => out.extend(bytes.iter().map(|&b| b as f64)),
        DType::F32 => out.extend(bytes.chunks_exact(4).map(|c| {
            let v = f32::from_le_bytes(c.try_into().expect("4"));
            if v.is_finite() {
                v as f64
            } else {
                0.0
            }
        })),
        _ => {
            roibin_registry::metrics::to_f64_into(bytes, dtype, out);
            out.iter_mut().for_each(|v| *v = valid(*v, dtype));
        }
    }
}

/// The frame geometry after pre-processing: which raw pixel lands in which processed pixel,
/// with which weight.
#[derive(Debug, Clone)]
pub struct Geometry {
    /// Raw frame (rows, cols).
    pub height: usize,
    pub width: usize,
    /// The ROI (the whole frame when none was asked).
    pub crop: Rect,
    /// (bx, by).
    pub binning: (usize, usize),
    /// Processed frame (rows, cols).
    pub out_h: usize,
    pub out_w: usize,
    /// Raw pixel weight `m_p / E_q(p)` (None: 1 for every pixel in the binned ROI).
    pub weight: Option<Vec<f32>>,
    /// `D_q` (processed), when a difference was asked.
    pub difference: Option<Vec<f64>>,
}

impl Geometry {
    /// Check the request's ROI and binning against a `height × width` frame.
    pub fn new(req: &Request, height: usize, width: usize) -> Result<Geometry> {
        let crop = req.roi.unwrap_or(Rect {
            x: 0,
            y: 0,
            w: width,
            h: height,
        });
        if crop.x + crop.w > width || crop.y + crop.h > height {
            return Err(Error::request(
                "roi",
                format!(
                    "{},{},{},{} reaches past the {width}×{height} frame (x,y,w,h: columns first)",
                    crop.x, crop.y, crop.w, crop.h
                ),
            ));
        }
        let (bx, by) = req.binning;
        if bx > crop.w || by > crop.h {
            return Err(Error::request(
                "binning",
                format!("{bx},{by} is larger than the {}×{} ROI", crop.w, crop.h),
            ));
        }
        Ok(Geometry {
            height,
            width,
            crop,
            binning: (bx, by),
            out_h: crop.h / by,
            out_w: crop.w / bx,
            weight: None,
            difference: None,
        })
    }

    /// Processed column of raw column `x` (None outside).
    #[inline]
    pub fn qx(&self, x: usize) -> Option<usize> {
        let q = x.checked_sub(self.crop.x)? / self.binning.0;
        (q < self.out_w).then_some(q)
    }

    /// Processed row of raw row `y` (None outside).
    #[inline]
    pub fn qy(&self, y: usize) -> Option<usize> {
        let q = y.checked_sub(self.crop.y)? / self.binning.1;
        (q < self.out_h).then_some(q)
    }

    /// Raw rows and columns that land in the processed frame.
    pub fn used(&self) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        (
            self.crop.y..self.crop.y + self.out_h * self.binning.1,
            self.crop.x..self.crop.x + self.out_w * self.binning.0,
        )
    }

    /// Weight of raw pixel `p` (0 outside the binned ROI).
    #[inline]
    pub fn weight_of(&self, p: usize) -> f64 {
        let (y, x) = (p / self.width, p % self.width);
        if self.qx(x).is_none() || self.qy(y).is_none() {
            return 0.0;
        }
        self.weight.as_ref().map_or(1.0, |w| w[p] as f64)
    }

    /// Apply a pixel mask (`true` = bad, raw frame size).
    pub fn set_mask(&mut self, bad: &[bool]) -> Result<()> {
        if bad.len() != self.height * self.width {
            return Err(Error::request(
                "mask",
                format!(
                    "the mask has {} pixels, the frames {}×{}",
                    bad.len(),
                    self.height,
                    self.width
                ),
            ));
        }
        if !bad.par_iter().any(|&b| b) {
            return Ok(());
        }
        // Frame-sized passes in parallel: setting up a 4 M-pixel mask was most of the serial
        // start of a run (page faults included), which caps its scaling on many cores.
        let w = match self.weight.take() {
            Some(mut w) => {
                w.par_iter_mut().zip(bad).for_each(|(w, &b)| {
                    if b {
                        *w = 0.0;
                    }
                });
                w
            }
            None => bad.par_iter().map(|&b| if b { 0.0 } else { 1.0 }).collect(),
        };
        self.weight = Some(w);
        Ok(())
    }

    /// The processed frame of a raw frame (`values`: valid raw pixel values).
    pub fn process(&self, values: &[f64]) -> Vec<f64> {
        let mut out = vec![0f64; self.out_h * self.out_w];
        let (rows, cols) = self.used();
        // Processed column of every used raw column, once (not a division per pixel).
        let qx: Vec<usize> = cols
            .clone()
            .map(|x| self.qx(x).expect("used column"))
            .collect();
        for y in rows {
            let qy = self.qy(y).expect("used row");
            let dst = &mut out[qy * self.out_w..(qy + 1) * self.out_w];
            let row = y * self.width + cols.start..y * self.width + cols.end;
            let v = &values[row.clone()];
            match &self.weight {
                None => v.iter().zip(&qx).for_each(|(v, &q)| dst[q] += v),
                Some(w) => v
                    .iter()
                    .zip(&w[row])
                    .zip(&qx)
                    .for_each(|((v, &w), &q)| dst[q] += w as f64 * v),
            }
        }
        if let Some(d) = &self.difference {
            out.iter_mut().zip(d).for_each(|(o, d)| *o -= d);
        }
        out
    }

    /// Divide by an empty-beam image (raw frame, valid values): processed pixels whose empty
    /// sum is not positive are left out (weight 0).
    pub fn set_empty(&mut self, empty: &[f64]) {
        let e = self.process(empty);
        let mut w = self
            .weight
            .take()
            .unwrap_or_else(|| vec![1.0; self.height * self.width]);
        for (p, w) in w.iter_mut().enumerate() {
            let (y, x) = (p / self.width, p % self.width);
            if let (Some(qy), Some(qx)) = (self.qy(y), self.qx(x)) {
                let eq = e[qy * self.out_w + qx];
                *w = if eq > 0.0 {
                    (*w as f64 / eq) as f32
                } else {
                    0.0
                };
            }
        }
        self.weight = Some(w);
    }

    /// Subtract an image (raw frame, valid values), pre-processed like every frame.
    pub fn set_difference(&mut self, image: &[f64]) {
        self.difference = None;
        self.difference = Some(self.process(image));
    }
}

/// Where the images a request names (`empty`, `difference`) come from: a frame of the scan
/// or a file.
pub fn image_param(req: &Request) -> [(&'static str, Option<&Image>); 2] {
    [
        ("empty", req.empty.as_ref()),
        ("difference", req.difference.as_ref()),
    ]
}

/// Pixels (y, x0..) of one row, as raw elements.
#[derive(Clone, Copy)]
struct Segment<'a> {
    bytes: &'a [u8],
    dtype: DType,
    y: usize,
    x0: usize,
}

/// A linear detector over the processed frame: every processed pixel belongs to at most one
/// label; per label it sums `S = Σ P_q`, and with `moments` also `Σ x_q·P_q`, `Σ y_q·P_q`
/// (x, y: processed column and row).
#[derive(Debug, Clone)]
pub struct Detector {
    /// Label per processed pixel ([`NONE`]: unused); None: every processed pixel is label 0.
    pub labels: Option<Vec<u32>>,
    pub n_labels: usize,
    pub moments: bool,
}

impl Detector {
    /// Accumulators per label.
    pub fn k(&self) -> usize {
        if self.moments {
            3
        } else {
            1
        }
    }

    /// Number of accumulators.
    pub fn len(&self) -> usize {
        self.n_labels * self.k()
    }

    pub fn is_empty(&self) -> bool {
        self.n_labels == 0
    }

    #[inline]
    fn label(&self, q: usize) -> u32 {
        self.labels.as_ref().map_or(0, |l| l[q])
    }
}

/// A detector compiled against a geometry: raw-pixel labels and weights, so one pass over a
/// raw frame gives its accumulators.
#[derive(Debug, Clone)]
pub struct Linear {
    pub geometry: Geometry,
    /// The detector's shape (label count, moments); its labels are in `raw_labels`.
    pub detector: Detector,
    /// Processed column / row per raw column / row ([`NONE`] outside).
    col_q: Vec<u32>,
    /// Processed column per raw column as a float (the moment's weight).
    col_x: Vec<f64>,
    row_q: Vec<u32>,
    /// Raw-pixel labels (None: all 0 inside the binned ROI).
    raw_labels: Option<Vec<u32>>,
    /// Accumulators of the difference image, subtracted from every frame's.
    constant: Vec<f64>,
    /// When every weight is 0 or 1 and few are 0 (a pixel mask, no division): the sorted
    /// masked pixels, subtracted after an unweighted sum (cheaper than weighting every pixel).
    zeroed: Option<Vec<usize>>,
    /// `zeroed` as a bitmap of the raw frame (a bit per pixel, set when masked).
    mask_bits: Option<Vec<u8>>,
}

impl Linear {
    /// `detector`'s labels are compiled into raw-pixel labels; the `Linear` keeps its shape
    /// (label count, moments) without them, not a second copy of a frame-sized array.
    pub fn new(geometry: Geometry, detector: &Detector) -> Linear {
        let g = &geometry;
        let col_q: Vec<u32> = (0..g.width)
            .map(|x| g.qx(x).map_or(NONE, |q| q as u32))
            .collect();
        let row_q: Vec<u32> = (0..g.height)
            .map(|y| g.qy(y).map_or(NONE, |q| q as u32))
            .collect();
        let raw_labels = detector.labels.as_ref().map(|l| {
            let mut raw = vec![NONE; g.height * g.width];
            for (y, &qy) in row_q.iter().enumerate() {
                for (x, &qx) in col_q.iter().enumerate() {
                    if qy != NONE && qx != NONE {
                        raw[y * g.width + x] = l[qy as usize * g.out_w + qx as usize];
                    }
                }
            }
            raw
        });
        let mut constant = vec![0f64; detector.len()];
        if let Some(d) = &g.difference {
            for (q, &v) in d.iter().enumerate() {
                let l = detector.label(q);
                if l != NONE {
                    add(
                        &mut constant,
                        detector,
                        l,
                        v,
                        (q % g.out_w) as f64,
                        (q / g.out_w) as f64,
                    );
                }
            }
        }
        let zeroed = g.weight.as_ref().and_then(|w| {
            let binary = w.par_iter().all(|&x| x == 0.0 || x == 1.0);
            let z: Vec<usize> = w
                .par_iter()
                .enumerate()
                .filter(|(_, &x)| x == 0.0)
                .map(|(p, _)| p)
                .collect();
            (binary && z.len() <= w.len() / 20).then_some(z)
        });
        let mask_bits = zeroed.as_ref().map(|z| {
            let mut bits = vec![0u8; (g.height * g.width).div_ceil(8)];
            z.iter().for_each(|&p| bits[p / 8] |= 1 << (p % 8));
            bits
        });
        Linear {
            mask_bits,
            zeroed,
            geometry,
            detector: Detector {
                labels: None,
                n_labels: detector.n_labels,
                moments: detector.moments,
            },
            col_x: col_q
                .iter()
                .map(|&q| if q == NONE { 0.0 } else { q as f64 })
                .collect(),
            col_q,
            row_q,
            raw_labels,
            constant,
        }
    }

    /// Accumulators of one raw frame (`frame`: its elements; `row`: a reused buffer).
    pub fn accumulate(&self, frame: &[u8], dtype: DType, acc: &mut [f64], row: &mut Vec<f64>) {
        self.begin(acc);
        self.accumulate_range(frame, dtype, 0, acc, row);
    }

    /// Whether the accumulators are the plain sum of every pixel of a frame of `dtype`, masked
    /// pixels (a 0/1 mask) left out and sentinels counting 0: `Itot` with no ROI, labels or
    /// weights. Then bitshuffled blocks can be summed from their bit planes.
    pub fn is_plain_sum(&self, dtype: DType) -> bool {
        let g = &self.geometry;
        matches!(dtype, DType::U16 | DType::U32)
            && !self.detector.moments
            && self.detector.n_labels == 1
            && self.raw_labels.is_none()
            && (g.weight.is_none() || self.zeroed.is_some())
            && g.used() == (0..g.height, 0..g.width)
    }

    /// Whether every weight is 0 or 1 (no weights, or a pixel mask's).
    pub fn weights_are_mask(&self) -> bool {
        self.geometry.weight.is_none() || self.zeroed.is_some()
    }

    /// With one label and every counted pixel weighing 1 but the masked ones (a 0/1 mask, or
    /// none): the masked raw pixels, sorted (empty without a mask). None with weights or
    /// labels.
    pub fn unit_weights_except(&self) -> Option<&[usize]> {
        if self.detector.n_labels != 1 || self.raw_labels.is_some() {
            return None;
        }
        match (&self.geometry.weight, &self.zeroed) {
            (None, _) => Some(&[]),
            (Some(_), Some(z)) => Some(z),
            (Some(_), None) => None,
        }
    }

    /// The 0/1 mask's bits for raw pixels `first..first + n` (`first` and `n` multiples of
    /// 8): pixel `first + j` at bit `j % 8` of byte `j / 8`, set when masked. None: no mask.
    pub fn mask_bits(&self, first: usize, n: usize) -> Option<&[u8]> {
        self.mask_bits
            .as_ref()
            .map(|b| &b[first / 8..(first + n) / 8])
    }

    /// Start a frame's accumulators (at minus the difference image's).
    pub fn begin(&self, acc: &mut [f64]) {
        acc.iter_mut()
            .zip(&self.constant)
            .for_each(|(a, c)| *a = -c);
    }

    /// Add the frame's pixels `start..` (`elems`: their elements, any count, e.g. one decoded
    /// block) to `acc`.
    pub fn accumulate_range(
        &self,
        elems: &[u8],
        dtype: DType,
        start: usize,
        acc: &mut [f64],
        row: &mut Vec<f64>,
    ) {
        let g = &self.geometry;
        let es = dtype.size();
        let end = start + elems.len() / es;
        let (rows, cols) = g.used();
        let mut p = start;
        while p < end {
            let y = p / g.width;
            let row_start = y * g.width;
            let seg_end = (row_start + g.width).min(end);
            if rows.contains(&y) {
                let x0 = (p - row_start).max(cols.start);
                let x1 = (seg_end - row_start).min(cols.end);
                if x0 < x1 {
                    let b = &elems[(row_start + x0 - start) * es..(row_start + x1 - start) * es];
                    self.segment(
                        Segment {
                            bytes: b,
                            dtype,
                            y,
                            x0,
                        },
                        acc,
                        row,
                    );
                }
            }
            p = seg_end;
        }
    }

    /// Add pixels (y, x0..) of one row: with AVX2 where the CPU has it (the same code,
    /// compiled for wider vectors).
    fn segment(&self, seg: Segment<'_>, acc: &mut [f64], row: &mut Vec<f64>) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above), all `segment_avx2` asks for.
            unsafe { self.segment_avx2(seg, acc, row) };
            return;
        }
        self.segment_body(seg, acc, row);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn segment_avx2(&self, seg: Segment<'_>, acc: &mut [f64], row: &mut Vec<f64>) {
        self.segment_body(seg, acc, row);
    }

    #[inline(always)]
    fn segment_body(&self, seg: Segment<'_>, acc: &mut [f64], row: &mut Vec<f64>) {
        let Segment {
            bytes,
            dtype,
            y,
            x0,
        } = seg;
        let g = &self.geometry;
        // Integer sums cannot overflow below 2^16 columns (see `count_moments`).
        if self.raw_labels.is_none()
            && (g.weight.is_none() || self.zeroed.is_some())
            && g.width < 1 << 16
        {
            let counts = match dtype {
                DType::U32 => Some(self.count_moments::<4>(bytes, y, x0, |b| {
                    let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    if v == u32::MAX {
                        0
                    } else {
                        v as u64
                    }
                })),
                DType::U16 => Some(self.count_moments::<2>(bytes, y, x0, |b| {
                    let v = u16::from_le_bytes([b[0], b[1]]);
                    if v == u16::MAX {
                        0
                    } else {
                        v as u64
                    }
                })),
                DType::U8 => Some(self.count_moments::<1>(bytes, y, x0, |b| b[0] as u64)),
                _ => None,
            };
            if let Some((s, sx)) = counts {
                acc[0] += s as f64;
                if self.detector.moments {
                    acc[1] += sx as f64;
                    acc[2] += self.row_q[y] as f64 * s as f64;
                }
                return;
            }
        }
        let len = bytes.len() / dtype.size();
        row_values_inline(bytes, dtype, row);
        let start = y * g.width + x0;
        let yq = self.row_q[y] as f64;
        let xq = &self.col_q[x0..x0 + len];
        let w = g.weight.as_ref().map(|w| &w[start..start + len]);
        match &self.raw_labels {
            None => {
                let xq = &self.col_x[x0..x0 + len];
                let (mut s, mut sx) = match &self.zeroed {
                    // A 0/1 mask: sum everything, then take the masked pixels back out.
                    Some(_) => moments_row(row, xq, None),
                    None => moments_row(row, xq, w),
                };
                if let Some(z) = &self.zeroed {
                    let lo = z.partition_point(|&p| p < start);
                    let hi = z.partition_point(|&p| p < start + len);
                    for &p in &z[lo..hi] {
                        let v = row[p - start];
                        s -= v;
                        sx -= v * xq[p - start];
                    }
                }
                acc[0] += s;
                if self.detector.moments {
                    acc[1] += sx;
                    acc[2] += yq * s;
                }
            }
            Some(labels) => {
                let labels = &labels[start..start + len];
                for (i, (&v, &l)) in row.iter().zip(labels).enumerate() {
                    if l != NONE {
                        let v = w.map_or(v, |w| v * w[i] as f64);
                        add(acc, &self.detector, l, v, xq[i] as f64, yq);
                    }
                }
            }
        }
    }

    /// `Σ v` and `Σ v·x` of a row segment of unsigned counts, in integers: exact, and the
    /// widest vectors (no float conversion per pixel). With fewer than 2^16 columns neither
    /// can overflow: `Σ v·x < 2^16 · 2^32 · 2^16 = 2^64`. Masked pixels (a 0/1 mask) are taken
    /// back out.
    #[inline(always)]
    fn count_moments<const N: usize>(
        &self,
        bytes: &[u8],
        y: usize,
        x0: usize,
        get: impl Fn(&[u8]) -> u64,
    ) -> (u64, u64) {
        let len = bytes.len() / N;
        let xs = &self.col_q[x0..x0 + len];
        let (mut s, mut sx) = (0u64, 0u64);
        for (b, &x) in bytes.chunks_exact(N).zip(xs) {
            let v = get(b);
            s += v;
            sx += v * x as u64;
        }
        if let Some(z) = &self.zeroed {
            let start = y * self.geometry.width + x0;
            let lo = z.partition_point(|&p| p < start);
            let hi = z.partition_point(|&p| p < start + len);
            for &p in &z[lo..hi] {
                let i = p - start;
                let v = get(&bytes[i * N..i * N + N]);
                s -= v;
                sx -= v * xs[i] as u64;
            }
        }
        (s, sx)
    }

    /// What raw pixel `p` adds per unit of value: (label, weight, x, y), None when unused.
    #[inline]
    pub fn pixel(&self, p: usize) -> Option<(u32, f64, f64, f64)> {
        let g = &self.geometry;
        self.pixel_at(p, p / g.width, p % g.width)
    }

    /// [`Linear::pixel`] for pixel `p` at row `y`, column `x` (known to the caller).
    #[inline]
    pub fn pixel_at(&self, p: usize, y: usize, x: usize) -> Option<(u32, f64, f64, f64)> {
        let g = &self.geometry;
        let (qy, qx) = (self.row_q[y], self.col_q[x]);
        if qy == NONE || qx == NONE {
            return None;
        }
        let l = self.raw_labels.as_ref().map_or(0, |l| l[p]);
        let w = g.weight.as_ref().map_or(1.0, |w| w[p] as f64);
        (l != NONE && w != 0.0).then_some((l, w, qx as f64, qy as f64))
    }

    /// [`Linear::pixel_at`] for the `n` pixels of row `y` from column `x0`: `f(i, label,
    /// weight, x, y)` for each used pixel `x0 + i`, in column order, with the row's checks and
    /// slices taken once (the compressed domain's window runs, pixel by pixel, spent a third
    /// of a radial map's exact-pixel time on them).
    #[inline(always)]
    pub fn for_each_in_run(
        &self,
        y: usize,
        x0: usize,
        n: usize,
        mut f: impl FnMut(usize, u32, f64, f64, f64),
    ) {
        let qy = self.row_q[y];
        if qy == NONE {
            return;
        }
        let p0 = y * self.geometry.width + x0;
        let labels = self.raw_labels.as_deref().map(|l| &l[p0..p0 + n]);
        let weights = self.geometry.weight.as_deref().map(|w| &w[p0..p0 + n]);
        for (i, &qx) in self.col_q[x0..x0 + n].iter().enumerate() {
            let l = labels.map_or(0, |l| l[i]);
            let w = weights.map_or(1.0, |w| w[i] as f64);
            if qx != NONE && l != NONE && w != 0.0 {
                f(i, l, w, qx as f64, qy as f64);
            }
        }
    }

    /// Ask the CPU to fetch pixel `p`'s label and weight into its caches: the compressed
    /// domain visits a frame's exact pixels a run at a time, runs scattered over frame-sized
    /// arrays (16 MB of labels for a 4 M-pixel frame) that the hardware prefetcher cannot
    /// follow; a radial map spent most of its exact-pixel time waiting on those loads.
    #[inline(always)]
    pub fn prefetch(&self, p: usize) {
        if let Some(l) = self.raw_labels.as_deref() {
            prefetch(l, p);
        }
        if let Some(w) = self.geometry.weight.as_deref() {
            prefetch(w, p);
        }
    }

    /// Each raw pixel's label ([`NONE`]: not counted), when the detector has labels.
    pub fn raw_labels(&self) -> Option<&[u32]> {
        self.raw_labels.as_deref()
    }

    /// The difference image's accumulators (subtracted from every frame's).
    pub fn constant(&self) -> &[f64] {
        &self.constant
    }
}

/// `Σ w_i·v_i` and `Σ w_i·v_i·x_i` over a row (`w` None: all 1), in eight independent lanes
/// so the additions pipeline and vectorise (one running sum would wait on every add).
#[inline(always)]
fn moments_row(v: &[f64], x: &[f64], w: Option<&[f32]>) -> (f64, f64) {
    let (mut s, mut sx) = ([0f64; 8], [0f64; 8]);
    let n = v.len() / 8 * 8;
    match w {
        None => {
            for (vc, xc) in v[..n].chunks_exact(8).zip(x[..n].chunks_exact(8)) {
                for k in 0..8 {
                    s[k] += vc[k];
                    sx[k] += vc[k] * xc[k];
                }
            }
        }
        Some(w) => {
            for ((vc, xc), wc) in v[..n]
                .chunks_exact(8)
                .zip(x[..n].chunks_exact(8))
                .zip(w[..n].chunks_exact(8))
            {
                for k in 0..8 {
                    let a = vc[k] * wc[k] as f64;
                    s[k] += a;
                    sx[k] += a * xc[k];
                }
            }
        }
    }
    let (mut s1, mut sx1) = (s.iter().sum::<f64>(), sx.iter().sum::<f64>());
    for i in n..v.len() {
        let a = v[i] * w.map_or(1.0, |w| w[i] as f64);
        s1 += a;
        sx1 += a * x[i];
    }
    (s1, sx1)
}

/// Add `v` at processed (x, y) to label `l`'s accumulators.
#[inline]
pub fn add(acc: &mut [f64], d: &Detector, l: u32, v: f64, x: f64, y: f64) {
    let k = d.k();
    let a = &mut acc[l as usize * k..l as usize * k + k];
    a[0] += v;
    if k == 3 {
        a[1] += v * x;
        a[2] += v * y;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(h: usize, w: usize) -> Vec<u8> {
        (0..h * w)
            .flat_map(|i| ((i * 37 % 101) as u32).to_le_bytes())
            .collect()
    }

    fn values(b: &[u8]) -> Vec<f64> {
        let mut v = vec![];
        row_values(b, DType::U32, &mut v);
        v
    }

    #[test]
    fn one_pass_equals_processing_then_summing() {
        let (h, w) = (20, 30);
        let req = Request::from_query("roi=3,2,25,17&binning=2,3").unwrap();
        let mut g = Geometry::new(&req, h, w).unwrap();
        let mut bad = vec![false; h * w];
        bad[5 * w + 7] = true;
        g.set_mask(&bad).unwrap();
        let empty: Vec<f64> = (0..h * w).map(|i| 1.0 + (i % 3) as f64).collect();
        g.set_empty(&empty);
        let diff = values(&frame(h, w))
            .iter()
            .map(|v| v / 7.0)
            .collect::<Vec<_>>();
        g.set_difference(&diff);
        let (oh, ow) = (g.out_h, g.out_w);
        assert_eq!((oh, ow), (5, 12));
        let labels: Vec<u32> = (0..oh * ow)
            .map(|q| if q % 5 == 0 { NONE } else { (q % 3) as u32 })
            .collect();
        for det in [
            Detector {
                labels: None,
                n_labels: 1,
                moments: true,
            },
            Detector {
                labels: Some(labels.clone()),
                n_labels: 3,
                moments: true,
            },
        ] {
            let lin = Linear::new(g.clone(), &det);
            let raw = frame(h, w);
            let mut acc = vec![0.0; det.len()];
            lin.accumulate(&raw, DType::U32, &mut acc, &mut vec![]);
            let p = g.process(&values(&raw));
            let mut want = vec![0.0; det.len()];
            for (q, &v) in p.iter().enumerate() {
                let l = det.label(q);
                if l != NONE {
                    add(&mut want, &det, l, v, (q % ow) as f64, (q / ow) as f64);
                }
            }
            for (a, b) in acc.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{a} {b}");
            }
        }
    }

    #[test]
    fn integer_sums_with_a_pixel_mask_equal_processing() {
        let (h, w) = (20, 30);
        for q in ["", "roi=3,2,25,17&binning=2,3"] {
            let mut g = Geometry::new(&Request::from_query(q).unwrap(), h, w).unwrap();
            let mut bad = vec![false; h * w];
            bad[5 * w + 7] = true;
            bad[6 * w + 2] = true;
            g.set_mask(&bad).unwrap();
            let mut raw = frame(h, w);
            raw[(4 * w + 9) * 4..(4 * w + 10) * 4].copy_from_slice(&u32::MAX.to_le_bytes());
            let det = Detector {
                labels: None,
                n_labels: 1,
                moments: true,
            };
            let lin = Linear::new(g.clone(), &det);
            assert!(lin.zeroed.is_some());
            let mut acc = vec![0.0; 3];
            lin.accumulate(&raw, DType::U32, &mut acc, &mut vec![]);
            let p = g.process(&values(&raw));
            let mut want = vec![0.0; 3];
            for (k, &v) in p.iter().enumerate() {
                add(
                    &mut want,
                    &det,
                    0,
                    v,
                    (k % g.out_w) as f64,
                    (k / g.out_w) as f64,
                );
            }
            assert_eq!(acc, want, "{q}");
        }
    }

    #[test]
    fn roi_and_binning_are_checked() {
        let r = Request::from_query("roi=10,0,30,5").unwrap();
        assert!(
            matches!(Geometry::new(&r, 20, 30), Err(Error::Request { param, .. }) if param == "roi")
        );
        let r = Request::from_query("binning=40,1").unwrap();
        assert!(
            matches!(Geometry::new(&r, 20, 30), Err(Error::Request { param, .. }) if param == "binning")
        );
    }

    #[test]
    fn flags_count_as_zero() {
        assert_eq!(valid(u32::MAX as f64, DType::U32), 0.0);
        assert_eq!(valid(-2.0, DType::I32), 0.0);
        assert_eq!(valid(f64::NAN, DType::F32), 0.0);
        assert_eq!(valid(255.0, DType::U8), 255.0);
    }
}
