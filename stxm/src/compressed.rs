//! Linear signals of roibin chunks in the compressed domain.
//!
//! A decoded roibin pixel is its bin's value `B_k` unless it is exact (a window pixel or a
//! pixel kept bit-exact), so for a linear detector with per-pixel coefficients `c_p`
//! (weight × [1, x, y] into its label's accumulators):
//! `Σ_p c_p·I_p = Σ_k B_k·(Σ_{p in k} c_p) + Σ_exact c_p·(I_p − B_k(p))`.
//! [`BinForm`] holds `Σ_{p in k} c_p` per bin, computed once per geometry and bin shape; a
//! frame then costs one multiply-add per bin coefficient and per exact pixel instead of a
//! background decode (un-binning) and a pass over every pixel. Equal to decode-then-reduce up
//! to floating-point summation order (tested).

use crate::geometry::{add, row_values_inline, valid, Linear, NONE};
use crate::run_sums::{
    add_copies, labeled_sums, row_sums, Columns, Frame, RowStart, LABEL_PAD, NO_LABEL,
    PREFETCH_RUNS, X_PAD,
};
use crate::{Error, Result};
use rayon::prelude::*;
use roibin_compressors::detector::roibin::parts::{Background, Element, Parts};
use roibin_registry::DType;

/// How a chunk's frames are binned: bins of `fr × fc` over each panel of `panel_rows` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bins {
    pub fr: usize,
    pub fc: usize,
    pub panels: usize,
    pub panel_rows: usize,
    pub cols: usize,
}

impl Bins {
    /// The bins of a chunk's parts (a `roi` chunk's fill, or a background not read, is one
    /// bin per panel).
    pub fn of(p: &Parts) -> Bins {
        let l = p.layout;
        let (fr, fc) = match &p.background {
            Background::Binned { factors, .. } => *factors,
            Background::Fill(_) | Background::Skipped => (l.rows, l.cols),
        };
        Bins {
            fr,
            fc,
            panels: l.panels,
            panel_rows: l.rows,
            cols: l.cols,
        }
    }

    fn bin_rows(&self) -> usize {
        self.panel_rows.div_ceil(self.fr)
    }

    /// The bin row (over all panels) of frame row `y`.
    fn bin_row(&self, y: usize) -> usize {
        (y / self.panel_rows) * self.bin_rows() + (y % self.panel_rows) / self.fr
    }

    fn bin_cols(&self) -> usize {
        self.cols.div_ceil(self.fc)
    }

    /// Bins per frame.
    pub fn per_frame(&self) -> usize {
        self.panels * self.bin_rows() * self.bin_cols()
    }
}

/// Per bin, the sum of its pixels' coefficients, as sparse (accumulator, coefficient) lists,
/// or dense rows when there is one label (every bin feeds the same accumulators).
#[derive(Debug, Clone)]
pub struct BinForm {
    pub bins: Bins,
    /// Several labels: each bin's (accumulator, coefficient) list.
    lists: Option<Lists>,
    /// Several labels, one accumulator each, fewer than 65 535: the raw pixels' labels as
    /// [`labeled_sums`] reads them.
    labels16: Option<Vec<u16>>,
    /// One label: `k` coefficients per bin (accumulators 0..k).
    dense: Option<Vec<f64>>,
    /// One label, and most bins' coefficients products of a row and a column factor (no
    /// weights but a pixel mask): those factors and the other bins' differences. Replaces
    /// `dense`, whose three f64 per bin a frame had to stream (the sums waited on memory).
    separable: Option<Separable>,
    /// Row and column factors of a pixel's coefficients when weights are 1 but the mask's.
    unit: Option<UnitPixels>,
    /// Bin row offset (`(panel·bin_rows + row/fr)·bin_cols`) per frame row, bin column per
    /// column: a pixel's bin without a division.
    row_bin: Vec<u32>,
    col_bin: Vec<u32>,
}

impl BinForm {
    pub fn new(lin: &Linear, bins: Bins) -> Result<BinForm> {
        let g = &lin.geometry;
        if bins.panels * bins.panel_rows != g.height || bins.cols != g.width {
            return Err(Error::Source(format!(
                "roibin chunk frames are {}×{}, the scan's {}×{}",
                bins.panels * bins.panel_rows,
                bins.cols,
                g.height,
                g.width
            )));
        }
        let k = lin.detector.k();
        let (mut lists, mut dense, mut separable) = (None, None, None);
        let mut unit = None;
        if let Some(masked) = lin.unit_weights_except() {
            separable = Some(Separable::masked(lin, bins, k, masked));
            unit = Some(UnitPixels::new(lin));
        } else if lin.detector.n_labels == 1 {
            let d = dense_coefficients(lin, bins, k);
            separable = Separable::new(lin, bins, k, &d);
            dense = separable.is_none().then_some(d);
        } else {
            lists = Some(Lists::new(lin, bins, k));
        }
        let labels16 = lin
            .raw_labels()
            .filter(|_| k == 1 && lin.detector.n_labels < NO_LABEL as usize)
            .map(|raw| {
                let narrow = raw
                    .iter()
                    .map(|&l| if l == NONE { NO_LABEL } else { l as u16 });
                narrow.chain([NO_LABEL; LABEL_PAD]).collect()
            });
        let bc = bins.bin_cols();
        let row_bin = (0..g.height)
            .map(|y| (bins.bin_row(y) * bc) as u32)
            .collect();
        let col_bin = (0..g.width).map(|x| (x / bins.fc) as u32).collect();
        Ok(BinForm {
            bins,
            lists,
            labels16,
            dense,
            separable,
            unit,
            row_bin,
            col_bin,
        })
    }

    /// Accumulators of frame `f` of `parts`: `accs[0]` when its frames are scan frames (its
    /// bins must be this form's), or `accs[j]` for panel `j` when each of its panels is one
    /// (a 4-D chunk holding several scan columns: this form's bins are one panel's).
    pub fn accumulate(
        &self,
        lin: &Linear,
        parts: &Parts,
        f: usize,
        accs: &mut [&mut [f64]],
    ) -> Result<()> {
        let chunk_bins = Bins::of(parts);
        let fits = match accs.len() {
            1 => chunk_bins == self.bins,
            p => {
                chunk_bins.panels == p
                    && Bins {
                        panels: 1,
                        ..chunk_bins
                    } == self.bins
            }
        };
        if !fits || f >= parts.layout.frames {
            return Err(Error::Source(
                "internal: bin form of another chunk layout".into(),
            ));
        }
        let dtype = parts.meta.dtype;
        let n = self.bins.per_frame();
        let frame_bins: &[u8] = match &parts.background {
            Background::Binned { elements, .. } => {
                let (es, per) = (dtype.size(), n * accs.len());
                &elements[f * per * es..(f + 1) * per * es]
            }
            Background::Fill(_) => &[],
            Background::Skipped => {
                return Err(Error::Source(
                    "internal: roibin chunk read without its background".into(),
                ))
            }
        };
        // `roi`: one fill value under every bin.
        let fill = match &parts.background {
            Background::Fill(v) => valid(*v, dtype),
            _ => 0.0,
        };
        for (j, acc) in accs.iter_mut().enumerate() {
            acc.iter_mut()
                .zip(lin.constant())
                .for_each(|(a, c)| *a = -c);
            let bins = match &parts.background {
                Background::Binned { .. } => {
                    let es = dtype.size();
                    FrameBins::Elements(&frame_bins[j * n * es..(j + 1) * n * es], dtype)
                }
                _ => FrameBins::Fill(fill),
            };
            match &self.separable {
                Some(sep) => {
                    let lanes = sep.sums(lin.detector.k(), bins);
                    acc.iter_mut().zip(lanes).for_each(|(a, l)| *a += l);
                }
                None => self.bin_sums(lin.detector.k(), bins, acc),
            }
        }
        roibin_compressors::with_element_type!(dtype, T => {
            self.exact_sums::<T>(lin, parts, f, frame_bins, fill, accs)
        });
        Ok(())
    }

    /// The exact pixels' `Σ c_p·(I_p − B_bin(p))` into `accs` (one per scan frame the chunk
    /// frame holds, stacked along rows: see [`BinForm::accumulate`]), with typed bin reads (a
    /// roibin(auto) chunk holds a quarter of its pixels exact). With unit weights but the
    /// mask, `c_p` comes from the geometry's row and column factors, not from
    /// [`Linear::pixel_at`]. `frame_bins` empty: every bin is `fill`.
    fn exact_sums<E: Element>(
        &self,
        lin: &Linear,
        parts: &Parts,
        f: usize,
        frame_bins: &[u8],
        fill: f64,
        accs: &mut [&mut [f64]],
    ) {
        let x = Exact {
            form: self,
            lin,
            parts,
            f,
            frame: Frame {
                bins: frame_bins,
                fill,
                cols: Columns {
                    bin: &self.col_bin,
                    counts: self.unit.as_ref().map_or(&[], |u| &u.col_counts),
                    x: self.unit.as_ref().map_or(&[], |u| &u.col_x),
                    all_count: self.unit.as_ref().is_some_and(|u| u.all_count),
                },
                weights: lin.geometry.weight.as_deref(),
            },
        };
        match &self.unit {
            Some(unit) => x.unit_sums::<E>(unit, accs),
            None => x.labelled_sums::<E>(accs),
        }
    }
    /// `Σ_k B_k·c_k` into `acc` from the dense or sparse coefficients.
    fn bin_sums(&self, k: usize, bins: FrameBins<'_>, acc: &mut [f64]) {
        match &self.dense {
            Some(d) => {
                let lanes = match k {
                    1 => dense_sums::<1>(bins, self.bins.per_frame(), d),
                    _ => dense_sums::<3>(bins, self.bins.per_frame(), d),
                };
                acc.iter_mut().zip(lanes).for_each(|(a, l)| *a += l);
            }
            None => {
                if let Some(lists) = &self.lists {
                    lists.sums(bins, self.bins.per_frame(), acc);
                }
            }
        }
    }
}

/// Calls `f(first, values)` with the valid values of a frame's `n` bins, a block at a time (a
/// block of f64 stays in L1; a frame of them fits no cache).
#[inline(always)]
fn for_each_block(bins: FrameBins<'_>, n: usize, mut f: impl FnMut(usize, &[f64])) {
    const BLOCK: usize = 1024;
    let mut values = Vec::with_capacity(BLOCK);
    for start in (0..n).step_by(BLOCK) {
        let end = (start + BLOCK).min(n);
        match bins {
            FrameBins::Elements(e, dtype) => {
                let es = dtype.size();
                row_values_inline(&e[start * es..end * es], dtype, &mut values);
            }
            FrameBins::Fill(v) => {
                values.clear();
                values.resize(end - start, v);
            }
        }
        f(start, &values);
    }
}

/// Calls `f(bin, label, weight, x, y)` for every pixel the detector counts, bin by bin in
/// bin order, pixels in raster order inside each bin.
fn for_each_binned_pixel(lin: &Linear, bins: Bins, mut f: impl FnMut(usize, u32, f64, f64, f64)) {
    let width = lin.geometry.width;
    let (br, bc) = (bins.bin_rows(), bins.bin_cols());
    for panel in 0..bins.panels {
        for by in 0..br {
            let y0 = panel * bins.panel_rows + by * bins.fr;
            let y1 = (y0 + bins.fr).min((panel + 1) * bins.panel_rows);
            for bx in 0..bc {
                let b = (panel * br + by) * bc + bx;
                for y in y0..y1 {
                    for x in bx * bins.fc..((bx + 1) * bins.fc).min(bins.cols) {
                        if let Some((l, w, qx, qy)) = lin.pixel_at(y * width + x, y, x) {
                            f(b, l, w, qx, qy);
                        }
                    }
                }
            }
        }
    }
}

/// One chunk frame's exact pixels to sum: the bin form, the frame's bins and its window runs
/// and listed pixels (see [`BinForm::exact_sums`]).
struct Exact<'a> {
    form: &'a BinForm,
    lin: &'a Linear,
    parts: &'a Parts,
    f: usize,
    /// The frame's bins, the bin form's columns and the geometry's weights.
    frame: Frame<'a>,
}

impl Exact<'_> {
    /// The scan frame of chunk row `y`, the row within it, and where its bins start.
    fn split(&self, y: usize) -> (usize, usize, usize) {
        let height = self.lin.geometry.height;
        let j = y / height;
        (j, y - j * height, j * self.form.bins.per_frame())
    }

    /// Bin `b` of the chunk's bins (`fill` where there are none).
    fn bin<E: Element>(&self, b: usize) -> f64 {
        match self.frame.bins.get(b * E::SIZE..(b + 1) * E::SIZE) {
            Some(e) => valid_as::<E>(E::read_f64(e)),
            None => self.frame.fill,
        }
    }

    /// The bin of pixel (`y`, `x`) of the scan frame whose bins start at `first`.
    fn bin_at<E: Element>(&self, first: usize, y: usize, x: usize) -> f64 {
        self.bin::<E>(first + (self.form.row_bin[y] + self.form.col_bin[x]) as usize)
    }

    /// Where chunk row `y` starts (its scan frame's bins and pixels), if `counted` says its
    /// row within the scan frame counts.
    fn row_start(&self, y: usize, counted: impl Fn(usize) -> bool) -> Option<RowStart> {
        let (_, y, first) = self.split(y);
        counted(y).then(|| RowStart {
            bin: first + self.form.row_bin[y] as usize,
            pixel: y * self.lin.geometry.width,
        })
    }

    /// Labels or weights: float32 window pixels of one scan frame with one accumulator a label
    /// eight a step ([`labeled_sums`]), the rest a run at a time through the geometry, then the
    /// listed pixels: the order of [`Parts::for_each_exact_as`].
    fn labelled_sums<E: Element>(&self, accs: &mut [&mut [f64]]) {
        let (lin, parts, f) = (self.lin, self.parts, self.f);
        let width = lin.geometry.width;
        let labeled = match (self.form.labels16.as_deref(), &mut *accs) {
            (Some(labels), [acc]) if E::DTYPE == DType::F32 && !lin.detector.moments => {
                let starts = |y| self.row_start(y, |_| true);
                labeled_sums(parts.window_runs(f), &self.frame, labels, starts, acc)
            }
            _ => false,
        };
        if !labeled {
            // A run at a time (the scan frame, the row, its checks and its bin row found once
            // a run: a division per pixel was a fifth of a radial map's time), labels and
            // weights fetched at both ends of the run a few runs ahead (see
            // [`Linear::prefetch`]; a run spans 1–2 cache lines).
            let mut ahead = parts.window_runs(f).skip(PREFETCH_RUNS);
            for (y, x0, elements) in parts.window_runs(f) {
                if let Some((y, x, e)) = ahead.next() {
                    let (_, y, _) = self.split(y);
                    lin.prefetch(y * width + x);
                    lin.prefetch(y * width + x + (e.len() / E::SIZE).max(1) - 1);
                }
                let (j, y, first) = self.split(y);
                let (acc, row_bin) = (&mut *accs[j], first + self.form.row_bin[y] as usize);
                let n = elements.len() / E::SIZE;
                lin.for_each_in_run(y, x0, n, |i, l, w, qx, qy| {
                    let v = E::read_f64(&elements[i * E::SIZE..(i + 1) * E::SIZE]);
                    let bin = self.bin::<E>(row_bin + self.form.col_bin[x0 + i] as usize);
                    let delta = valid_as::<E>(v) - bin;
                    if delta != 0.0 {
                        add(acc, &lin.detector, l, w * delta, qx, qy);
                    }
                });
            }
        }
        for (y, x, v) in parts.listed_outside_windows(f) {
            let (j, y, first) = self.split(y);
            let delta = valid_as::<E>(v) - self.bin_at::<E>(first, y, x);
            if delta != 0.0 {
                if let Some((l, w, qx, qy)) = lin.pixel_at(y * width + x, y, x) {
                    add(accs[j], &lin.detector, l, w * delta, qx, qy);
                }
            }
        }
    }

    /// Unit weights but the mask: window pixels a row at a time (its factors and bin row once,
    /// its pixels' sums in registers, [`row_sums`]), then the listed pixels.
    fn unit_sums<E: Element>(&self, unit: &UnitPixels, accs: &mut [&mut [f64]]) {
        let (lin, parts, f) = (self.lin, self.parts, self.f);
        assert_eq!(E::DTYPE, parts.meta.dtype, "element type of another chunk");
        let mut s = vec![[0f64; 3]; accs.len()];
        let starts = |y| self.row_start(y, |y| unit.row_w[y] != 0.0);
        let fold = |y: usize, d0: f64, dx: f64| {
            let (j, y, _) = self.split(y);
            s[j][0] += d0;
            s[j][1] += dx;
            s[j][2] += d0 * unit.row_y[y];
        };
        if lin.detector.moments {
            row_sums::<E, true>(parts.window_runs(f), &self.frame, starts, fold);
        } else {
            row_sums::<E, false>(parts.window_runs(f), &self.frame, starts, fold);
        }
        let (width, weight) = (lin.geometry.width, self.frame.weights);
        for (y, x, v) in parts.listed_outside_windows(f) {
            let (j, y, first) = self.split(y);
            let w = unit.row_w[y] * unit.col_w[x] * weight.map_or(1.0, |w| w[y * width + x] as f64);
            if w != 0.0 {
                let d = valid_as::<E>(v) - self.bin_at::<E>(first, y, x);
                s[j][0] += d;
                s[j][1] += d * unit.col_x[x];
                s[j][2] += d * unit.row_y[y];
            }
        }
        let k = lin.detector.k();
        for (acc, s) in accs.iter_mut().zip(s) {
            acc[..k].iter_mut().zip(s).for_each(|(a, s)| *a += s);
        }
    }
}

/// One label's bin coefficients as `row factor × column factor` plus a list of the bins that
/// differ. Without weights, a pixel adds `(1, qx, qy)`, `qx` set by its column and `qy` by its
/// row, so bin `(r, c)` sums to `(n_r·n_c, n_r·X_c, Y_r·n_c)` (counted and summed over the
/// processed rows and columns it covers); a pixel mask changes only the bins it touches.
#[derive(Debug, Clone)]
struct Separable {
    /// Per bin row (all panels): processed rows `n_r` and the sum of their `qy`, `Y_r`.
    rows: Vec<[f64; 2]>,
    /// Per bin column: processed columns `n_c` and the sum of their `qx`, `X_c`.
    cols_n: Vec<f64>,
    cols_x: Vec<f64>,
    /// Bins whose coefficients are not the product: index, sorted, and `k` differences each.
    fix_bin: Vec<u32>,
    fix: Vec<f64>,
}

impl Separable {
    /// The factors of the coefficients `dense` (`k` per bin), or None when more than a
    /// quarter of the bins differ from their product (weights, a sector's labels): then the
    /// dense form streams less.
    fn new(lin: &Linear, bins: Bins, k: usize, dense: &[f64]) -> Option<Separable> {
        let mut s = Separable::factors(lin, bins);
        let bc = bins.bin_cols();
        for (b, c) in dense.chunks_exact(k).enumerate() {
            let model = s.model(b / bc, b % bc);
            if c.iter().zip(model).any(|(c, m)| *c != m) {
                s.fix_bin.push(b as u32);
                s.fix.extend(c.iter().zip(model).map(|(c, m)| c - m));
            }
        }
        (s.fix_bin.len() * 4 <= dense.len() / k).then_some(s)
    }

    /// The coefficients of unit weights but at the `masked` raw pixels (sorted), straight
    /// from the geometry: each masked pixel the request counts takes its `(1, qx, qy)` off
    /// its bin.
    fn masked(lin: &Linear, bins: Bins, k: usize, masked: &[usize]) -> Separable {
        let mut s = Separable::factors(lin, bins);
        let g = &lin.geometry;
        let bc = bins.bin_cols();
        let mut fixes: Vec<(u32, [f64; 3])> = masked
            .iter()
            .filter_map(|&p| {
                let (y, x) = (p / g.width, p % g.width);
                let (qx, qy) = (g.qx(x)?, g.qy(y)?);
                let b = bins.bin_row(y) * bc + x / bins.fc;
                Some((b as u32, [-1.0, -(qx as f64), -(qy as f64)]))
            })
            .collect();
        fixes.sort_by_key(|f| f.0);
        for (b, d) in fixes {
            if s.fix_bin.last() != Some(&b) {
                s.fix_bin.push(b);
                s.fix.extend_from_slice(&[0.0; 3][..k]);
            }
            let at = s.fix.len() - k;
            s.fix[at..].iter_mut().zip(d).for_each(|(f, d)| *f += d);
        }
        s
    }

    /// Bin `(r, c)`'s coefficients without fixes.
    fn model(&self, r: usize, c: usize) -> [f64; 3] {
        let [n_r, y_r] = self.rows[r];
        [
            n_r * self.cols_n[c],
            n_r * self.cols_x[c],
            y_r * self.cols_n[c],
        ]
    }

    /// The row and column factors of the request's ROI and binning, no fixes yet.
    fn factors(lin: &Linear, bins: Bins) -> Separable {
        let g = &lin.geometry;
        let (br, bc) = (bins.bin_rows(), bins.bin_cols());
        let mut rows = vec![[0f64; 2]; bins.panels * br];
        for y in 0..g.height {
            if let Some(q) = g.qy(y) {
                let r = &mut rows[bins.bin_row(y)];
                r[0] += 1.0;
                r[1] += q as f64;
            }
        }
        let (mut cols_n, mut cols_x) = (vec![0f64; bc], vec![0f64; bc]);
        for x in 0..g.width {
            if let Some(q) = g.qx(x) {
                cols_n[x / bins.fc] += 1.0;
                cols_x[x / bins.fc] += q as f64;
            }
        }
        Separable {
            rows,
            cols_n,
            cols_x,
            fix_bin: vec![],
            fix: vec![],
        }
    }

    /// `Σ_k B_k·c_k` per accumulator over a frame's bins.
    fn sums(&self, k: usize, bins: FrameBins<'_>) -> [f64; 3] {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above), all `sums_avx2` asks for.
            return unsafe { self.sums_avx2(k, bins) };
        }
        self.sums_body(k, bins)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn sums_avx2(&self, k: usize, bins: FrameBins<'_>) -> [f64; 3] {
        self.sums_body(k, bins)
    }

    /// Row by row: the row's values (float32 read in place, other types converted into a
    /// buffer that stays in L1), two dot products with the column factors, the row factors
    /// applied, then the row's fixes.
    #[inline(always)]
    fn sums_body(&self, k: usize, bins: FrameBins<'_>) -> [f64; 3] {
        let mut lanes = [0f64; 3];
        let bc = self.cols_n.len();
        let mut values = Vec::with_capacity(bc);
        let mut fixes = self.fix_bin.iter().zip(self.fix.chunks_exact(k)).peekable();
        for (r, &[n_r, y_r]) in self.rows.iter().enumerate() {
            // Float32 bins are read in place; other types converted into `values` first.
            let f32_row = match bins {
                FrameBins::Elements(e, DType::F32) => Some(&e[r * bc * 4..(r + 1) * bc * 4]),
                FrameBins::Elements(e, dtype) => {
                    let es = dtype.size();
                    row_values_inline(&e[r * bc * es..(r + 1) * bc * es], dtype, &mut values);
                    None
                }
                FrameBins::Fill(v) => {
                    values.clear();
                    values.resize(bc, v);
                    None
                }
            };
            let value = |i: usize| match f32_row {
                Some(row) => f32_at(row, i),
                None => values[i],
            };
            let (a, x) = match (k, f32_row) {
                (1, Some(row)) => (f32_dots(row, [&self.cols_n])[0], 0.0),
                (1, None) => (dots(bc, |i| values[i], [&self.cols_n])[0], 0.0),
                (_, Some(row)) => f32_dots(row, [&self.cols_n, &self.cols_x]).into(),
                (_, None) => dots(bc, |i| values[i], [&self.cols_n, &self.cols_x]).into(),
            };
            lanes[0] += n_r * a;
            lanes[1] += n_r * x;
            lanes[2] += y_r * a;
            let end = ((r + 1) * bc) as u32;
            while let Some((&b, d)) = fixes.next_if(|(&b, _)| b < end) {
                let v = value(b as usize - r * bc);
                lanes.iter_mut().zip(d).for_each(|(l, d)| *l += v * d);
            }
        }
        if k == 1 {
            [lanes[0], 0.0, 0.0]
        } else {
            lanes
        }
    }
}

/// A counted pixel's coefficients `(1, qx, qy)` as row and column factors: 1/0 whether its
/// row and column are counted, and their processed coordinates.
#[derive(Debug, Clone)]
struct UnitPixels {
    row_w: Vec<f64>,
    row_y: Vec<f64>,
    col_w: Vec<f64>,
    /// With [`X_PAD`] zeros past the frame's columns.
    col_x: Vec<f64>,
    /// `col_w` as lane masks: all ones where 1.
    col_counts: Vec<u32>,
    /// Every column counts.
    all_count: bool,
}

impl UnitPixels {
    fn new(lin: &Linear) -> UnitPixels {
        let g = &lin.geometry;
        let factors = |q: &dyn Fn(usize) -> Option<usize>, n: usize| -> (Vec<f64>, Vec<f64>) {
            (0..n)
                .map(|i| q(i).map_or((0.0, 0.0), |q| (1.0, q as f64)))
                .unzip()
        };
        let (row_w, row_y) = factors(&|y| g.qy(y), g.height);
        let (col_w, mut col_x) = factors(&|x| g.qx(x), g.width);
        col_x.resize(g.width + X_PAD, 0.0);
        let col_counts = col_w
            .iter()
            .map(|&w| if w != 0.0 { u32::MAX } else { 0 })
            .collect();
        UnitPixels {
            row_w,
            row_y,
            all_count: col_w.iter().all(|&w| w != 0.0),
            col_w,
            col_x,
            col_counts,
        }
    }
}

/// A flag (sentinel, non-finite) of element type `E` reads 0, as [`valid`] makes it.
#[inline(always)]
fn valid_as<E: Element>(v: f64) -> f64 {
    valid(v, E::DTYPE)
}

/// A frame's bins: its elements (of the dtype), or one fill value under every bin (`roi`).
#[derive(Clone, Copy)]
enum FrameBins<'a> {
    Elements(&'a [u8], DType),
    Fill(f64),
}

/// `Σ_i a(i)·c_i` for each of the `K` columns `c` over `i < n`, four lanes each (added as
/// `(l0 + l1) + (l2 + l3)`, then the tail): `a` reads the values where they lie, so float32
/// bins need no converted copy.
#[inline(always)]
fn dots<const K: usize>(n: usize, a: impl Fn(usize) -> f64, cols: [&[f64]; K]) -> [f64; K] {
    let cols = cols.map(|c| &c[..n]);
    let mut l = [[0f64; 4]; K];
    let body = n / 4 * 4;
    for i in (0..body).step_by(4) {
        let v = [a(i), a(i + 1), a(i + 2), a(i + 3)];
        for (l, c) in l.iter_mut().zip(cols) {
            for j in 0..4 {
                l[j] += v[j] * c[i + j];
            }
        }
    }
    let mut out = l.map(|l| (l[0] + l[1]) + (l[2] + l[3]));
    for (o, c) in out.iter_mut().zip(cols) {
        *o += (body..n).map(|i| a(i) * c[i]).sum::<f64>();
    }
    out
}

/// [`dots`] of a row of float32 bins (non-finite ones read 0, as [`valid`] makes them), with
/// AVX2 where the CPU has it: eight bins a step, each half added into the same four lanes in
/// turn, so the same sums, bit for bit.
#[inline(always)]
fn f32_dots<const K: usize>(row: &[u8], cols: [&[f64]; K]) -> [f64; K] {
    let n = row.len() / 4;
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above); `f32_dots_avx2` reads the row's
        // `n` elements and the first `n` of each column (it slices them, so checked).
        let (lanes, body) = unsafe { f32_dots_avx2(row, cols.map(|c| &c[..n])) };
        let mut out = lanes.map(|l| (l[0] + l[1]) + (l[2] + l[3]));
        for (o, c) in out.iter_mut().zip(cols) {
            *o += (body..n).map(|i| f32_at(row, i) * c[i]).sum::<f64>();
        }
        return out;
    }
    dots(n, |i| f32_at(row, i), cols)
}

/// The four lanes of each column's [`dots`] over the first `n / 4 * 4` elements, and that
/// count (the tail is the caller's).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn f32_dots_avx2<const K: usize>(row: &[u8], cols: [&[f64]; K]) -> ([[f64; 4]; K], usize) {
    use std::arch::x86_64::*;
    let n = row.len() / 4;
    let body = n / 4 * 4;
    let abs = _mm_castsi128_ps(_mm_set1_epi32(0x7fff_ffff));
    let inf = _mm_set1_ps(f32::INFINITY);
    let mut acc = [_mm256_setzero_pd(); K];
    for i in (0..body).step_by(4) {
        // SAFETY: elements i..i + 4 ≤ body ≤ n of the row (4 bytes each) and of each column
        // (sliced to n by the caller).
        let v = _mm_loadu_ps(row.as_ptr().add(4 * i) as *const f32);
        let v = _mm_and_ps(v, _mm_cmplt_ps(_mm_and_ps(v, abs), inf));
        let v = _mm256_cvtps_pd(v);
        for (a, c) in acc.iter_mut().zip(cols) {
            *a = _mm256_add_pd(*a, _mm256_mul_pd(v, _mm256_loadu_pd(c.as_ptr().add(i))));
        }
    }
    let mut lanes = [[0f64; 4]; K];
    for (l, a) in lanes.iter_mut().zip(acc) {
        // SAFETY: `l` holds four f64.
        _mm256_storeu_pd(l.as_mut_ptr(), a);
    }
    (lanes, body)
}

/// Element `i` of float32 bytes, 0 if not finite (as [`valid`] makes it).
#[inline(always)]
fn f32_at(bytes: &[u8], i: usize) -> f64 {
    let v = f32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().expect("4 bytes"));
    if v.is_finite() {
        v as f64
    } else {
        0.0
    }
}

/// One label: `k` coefficient sums per bin (1, x, y times the weight). Bin rows in parallel,
/// each walked in raster order: a bin's pixels are added in the same order as bin by bin
/// (row by row inside it), so the sums are the same.
fn dense_coefficients(lin: &Linear, bins: Bins, k: usize) -> Vec<f64> {
    let (width, br, bc) = (lin.geometry.width, bins.bin_rows(), bins.bin_cols());
    let col_bin: Vec<usize> = (0..width).map(|x| x / bins.fc).collect();
    let mut d = vec![0f64; bins.per_frame() * k];
    d.par_chunks_mut(bc * k).enumerate().for_each(|(r, row)| {
        let (panel, by) = (r / br, r % br);
        let y0 = panel * bins.panel_rows + by * bins.fr;
        let y1 = (y0 + bins.fr).min((panel + 1) * bins.panel_rows);
        for y in y0..y1 {
            for (x, &b) in col_bin.iter().enumerate() {
                if let Some((_, w, qx, qy)) = lin.pixel_at(y * width + x, y, x) {
                    let terms = [w, w * qx, w * qy];
                    for (a, c) in row[b * k..(b + 1) * k].iter_mut().zip(terms) {
                        *a += c;
                    }
                }
            }
        }
    });
    d
}

/// Several labels: each bin's (accumulator, coefficient sum) list, bins in order.
#[derive(Debug, Clone)]
enum Lists {
    /// Coefficients that are pixel counts (one accumulator a label, weights 0 or 1, bins of
    /// at most 255 pixels): per bin its list's length, each entry `accumulator << 8 | count`.
    /// A radial map's bins stream 5–9 bytes each a frame instead of 16–32 (offset, index and
    /// coefficient): 21 MB a frame of 1 M bins, where the bins themselves are 4 MB.
    Counts { len: Vec<u8>, entry: Vec<u32> },
    /// Any coefficients, in CSR form.
    General {
        ptr: Vec<u32>,
        idx: Vec<u32>,
        coef: Vec<f64>,
    },
}

impl Lists {
    fn new(lin: &Linear, bins: Bins, k: usize) -> Lists {
        let counts = k == 1
            && lin.weights_are_mask()
            && bins.fr * bins.fc <= u8::MAX as usize
            && lin.detector.n_labels < 1 << 24;
        // Reserved for a bin per label and accumulator (radial rings: most bins lie in one),
        // not grown by doubling (each regrowth a copy into fresh pages, which the kernel
        // clears).
        let n = bins.per_frame();
        if let (true, Some(labels)) = (counts, lin.raw_labels()) {
            return counted_lists(lin, bins, labels);
        }
        let mut entries: Vec<(u32, f64)> = vec![];
        let mut ptr = Vec::with_capacity(n + 1);
        ptr.push(0u32);
        let (mut idx, mut coef) = (Vec::with_capacity(n * k), Vec::with_capacity(n * k));
        for_each_bin_list(lin, bins, k, &mut entries, |list| {
            for &(a, c) in list {
                idx.push(a);
                coef.push(c);
            }
            ptr.push(idx.len() as u32);
        });
        Lists::General { ptr, idx, coef }
    }

    /// `Σ_k B_k·c_k` into `acc` over a frame's `n` bins.
    fn sums(&self, bins: FrameBins<'_>, n: usize, acc: &mut [f64]) {
        match self {
            Lists::Counts { len, entry } => {
                // Four copies of the accumulators in turn, bin by bin: neighbouring bins
                // mostly share a label, and adding each in place waited on the last.
                let stride = acc.len();
                let mut copies = vec![0f64; 4 * stride];
                let mut at = 0;
                for_each_block(bins, n, |start, values| {
                    for (b, &v) in (start..).zip(values) {
                        let (list, copy) = (at..at + len[b] as usize, (b & 3) * stride);
                        at = list.end;
                        // Bins of 0 (most of a frame's after pedestal correction) add nothing.
                        if v != 0.0 {
                            for &e in &entry[list] {
                                copies[copy + (e >> 8) as usize] += v * (e & 0xff) as f64;
                            }
                        }
                    }
                });
                add_copies(&copies, acc);
            }
            Lists::General { ptr, idx, coef } => for_each_block(bins, n, |start, values| {
                for (b, &v) in (start..).zip(values) {
                    if v != 0.0 {
                        for e in ptr[b] as usize..ptr[b + 1] as usize {
                            acc[idx[e] as usize] += v * coef[e];
                        }
                    }
                }
            }),
        }
    }
}

/// [`Lists::Counts`] straight from the raw pixels' labels (none outside the processed rows
/// and columns) and the mask: each bin's labels tallied in a few registers (a bin holds one
/// or two rings), not through [`Linear::pixel_at`] and a list on the heap (a 4 M-pixel frame's
/// radial rings, paid before a request's first frame: ~25 → ~10 ms).
fn counted_lists(lin: &Linear, bins: Bins, labels: &[u32]) -> Lists {
    let (width, br, bc) = (lin.geometry.width, bins.bin_rows(), bins.bin_cols());
    let weight = lin.geometry.weight.as_deref();
    let n = bins.per_frame();
    let (mut len, mut entry) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut tally = Tally::default();
    for r in 0..bins.panels * br {
        let (panel, by) = (r / br, r % br);
        let y0 = panel * bins.panel_rows + by * bins.fr;
        let y1 = (y0 + bins.fr).min((panel + 1) * bins.panel_rows);
        for bx in 0..bc {
            let cols = bx * bins.fc..((bx + 1) * bins.fc).min(bins.cols);
            for y in y0..y1 {
                let p = y * width;
                for (&l, x) in labels[p + cols.start..p + cols.end]
                    .iter()
                    .zip(cols.clone())
                {
                    if l != NONE && weight.is_none_or(|w| w[p + x] != 0.0) {
                        tally.add(l);
                    }
                }
            }
            len.push(tally.len() as u8);
            tally.drain(|l, count| entry.push(l << 8 | count));
        }
    }
    Lists::Counts { len, entry }
}

/// Pixels per label of one bin: the first few labels in an array, the rest (a bin over many
/// rings) in a list.
#[derive(Default)]
struct Tally {
    n: usize,
    first: [(u32, u32); 4],
    more: Vec<(u32, u32)>,
}

impl Tally {
    #[inline(always)]
    fn add(&mut self, l: u32) {
        if let Some(e) = self.first[..self.n].iter_mut().find(|e| e.0 == l) {
            e.1 += 1;
        } else if self.n < self.first.len() {
            self.first[self.n] = (l, 1);
            self.n += 1;
        } else if let Some(e) = self.more.iter_mut().find(|e| e.0 == l) {
            e.1 += 1;
        } else {
            self.more.push((l, 1));
        }
    }

    fn len(&self) -> usize {
        self.n + self.more.len()
    }

    /// Calls `f(label, count)` for each label, first met first, and empties the tally.
    fn drain(&mut self, mut f: impl FnMut(u32, u32)) {
        self.first[..self.n].iter().for_each(|&(l, c)| f(l, c));
        self.more.drain(..).for_each(|(l, c)| f(l, c));
        self.n = 0;
    }
}

/// Calls `f(list)` with each bin's (accumulator, coefficient sum) list, bins in order
/// (`entries`: the list's buffer).
fn for_each_bin_list(
    lin: &Linear,
    bins: Bins,
    k: usize,
    entries: &mut Vec<(u32, f64)>,
    mut f: impl FnMut(&[(u32, f64)]),
) {
    let mut current = 0;
    for_each_binned_pixel(lin, bins, |b, l, w, qx, qy| {
        while current < b {
            f(entries);
            entries.clear();
            current += 1;
        }
        let base = l * k as u32;
        let terms = [(base, w), (base + 1, w * qx), (base + 2, w * qy)];
        for &(a, c) in &terms[..k] {
            match entries.iter_mut().find(|e| e.0 == a) {
                Some(e) => e.1 += c,
                None => entries.push((a, c)),
            }
        }
    });
    while current < bins.per_frame() {
        f(entries);
        entries.clear();
        current += 1;
    }
}

/// `Σ_k B_k·c_k` per accumulator (`K` coefficients per bin: 1 or 3) over a frame's `n` bins,
/// flagged bins counting 0, summed in four interleaved lanes per accumulator so the adds do
/// not wait on each other (one chain ran at an add's latency per bin).
fn dense_sums<const K: usize>(bins: FrameBins<'_>, n: usize, coef: &[f64]) -> [f64; 3] {
    let mut lanes = [[0f64; K]; 4];
    for_each_block(bins, n, |start, values| {
        let c = &coef[start * K..(start + values.len()) * K];
        for (b, c) in values.chunks_exact(4).zip(c.chunks_exact(4 * K)) {
            for i in 0..4 {
                for j in 0..K {
                    lanes[i][j] += b[i] * c[i * K + j];
                }
            }
        }
        let done = values.len() / 4 * 4;
        for (b, c) in values[done..].iter().zip(c[done * K..].chunks_exact(K)) {
            for j in 0..K {
                lanes[0][j] += b * c[j];
            }
        }
    });
    let mut out = [0f64; 3];
    for j in 0..K {
        out[j] = (lanes[0][j] + lanes[1][j]) + (lanes[2][j] + lanes[3][j]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Tally;

    /// Labels past the tally's array (a bin over many rings) are counted like the first, all
    /// in the order first met, and a drained tally starts empty.
    #[test]
    fn tally_counts_each_label_in_first_met_order() {
        let mut t = Tally::default();
        let labels = [7, 3, 7, 9, 1, 5, 3, 8, 5, 5, 2, 7];
        for round in 0..2 {
            labels.iter().for_each(|&l| t.add(l));
            assert_eq!(t.len(), 7, "round {round}");
            let mut got = vec![];
            t.drain(|l, c| got.push((l, c)));
            assert_eq!(
                got,
                [(7, 3), (3, 2), (9, 1), (1, 1), (5, 3), (8, 1), (2, 1)]
            );
            assert_eq!(t.len(), 0);
        }
    }
}
