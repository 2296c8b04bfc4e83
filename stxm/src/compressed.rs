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

use crate::geometry::{add, flagged, valid, Linear};
use crate::{Error, Result};
use roibin_compressors::detector::roibin::parts::{Background, Parts};
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
    /// The bins of a chunk's parts (a `roi` chunk's fill is one bin per panel).
    pub fn of(p: &Parts) -> Bins {
        let l = p.layout;
        let (fr, fc) = match &p.background {
            Background::Binned { factors, .. } => *factors,
            Background::Fill(_) => (l.rows, l.cols),
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
    ptr: Vec<u32>,
    idx: Vec<u32>,
    coef: Vec<f64>,
    /// One label: `k` coefficients per bin (accumulators 0..k).
    dense: Option<Vec<f64>>,
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
        let (ptr, idx, coef, dense) = if lin.detector.n_labels == 1 {
            (
                vec![],
                vec![],
                vec![],
                Some(dense_coefficients(lin, bins, k)),
            )
        } else {
            let (ptr, idx, coef) = sparse_coefficients(lin, bins, k);
            (ptr, idx, coef, None)
        };
        let (br, bc) = (bins.bin_rows(), bins.bin_cols());
        let row_bin = (0..g.height)
            .map(|y| {
                let (panel, yy) = (y / bins.panel_rows, y % bins.panel_rows);
                ((panel * br + yy / bins.fr) * bc) as u32
            })
            .collect();
        let col_bin = (0..g.width).map(|x| (x / bins.fc) as u32).collect();
        Ok(BinForm {
            bins,
            ptr,
            idx,
            coef,
            dense,
            row_bin,
            col_bin,
        })
    }

    /// Accumulators of frame `f` of `parts` (whose bins must be this form's); `seen` is
    /// scratch reused between frames.
    pub fn accumulate(
        &self,
        lin: &Linear,
        parts: &Parts,
        f: usize,
        acc: &mut [f64],
        seen: &mut Vec<u64>,
    ) -> Result<()> {
        if Bins::of(parts) != self.bins || f >= parts.layout.frames {
            return Err(Error::Source(
                "internal: bin form of another chunk layout".into(),
            ));
        }
        let dtype = parts.meta.dtype;
        let n = self.bins.per_frame();
        let fill;
        let bins: &[f64] = match &parts.background {
            Background::Binned { values, .. } => &values[f * n..(f + 1) * n],
            Background::Fill(v) => {
                fill = vec![*v; n];
                &fill
            }
        };
        acc.iter_mut()
            .zip(lin.constant())
            .for_each(|(a, c)| *a = -c);
        match &self.dense {
            Some(d) => {
                // The dtype's flag test picked once, outside the loop over every bin: with
                // the dtype a constant, `flagged` folds to one comparison.
                let k = lin.detector.k();
                let lanes = match dtype {
                    DType::U16 => dense_sums(k, bins, d, |v| flagged(v, DType::U16)),
                    DType::U32 => dense_sums(k, bins, d, |v| flagged(v, DType::U32)),
                    DType::F32 => dense_sums(k, bins, d, |v| flagged(v, DType::F32)),
                    _ => dense_sums(k, bins, d, |v| flagged(v, dtype)),
                };
                acc.iter_mut().zip(lanes).for_each(|(a, l)| *a += l);
            }
            None => {
                for (k, &b) in bins.iter().enumerate() {
                    let b = valid(b, dtype);
                    if b != 0.0 {
                        for e in self.ptr[k] as usize..self.ptr[k + 1] as usize {
                            acc[self.idx[e] as usize] += b * self.coef[e];
                        }
                    }
                }
            }
        }
        parts.for_each_exact(f, seen, |y, x, v| {
            let b = bins[(self.row_bin[y] + self.col_bin[x]) as usize];
            let delta = valid(v, dtype) - valid(b, dtype);
            if delta != 0.0 {
                if let Some((l, w, qx, qy)) = lin.pixel_at(y * lin.geometry.width + x, y, x) {
                    add(acc, &lin.detector, l, w * delta, qx, qy);
                }
            }
        });
        Ok(())
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

/// One label: `k` coefficient sums per bin (1, x, y times the weight).
fn dense_coefficients(lin: &Linear, bins: Bins, k: usize) -> Vec<f64> {
    let mut d = vec![0f64; bins.per_frame() * k];
    for_each_binned_pixel(lin, bins, |b, _, w, qx, qy| {
        let terms = [w, w * qx, w * qy];
        for (a, c) in d[b * k..(b + 1) * k].iter_mut().zip(terms) {
            *a += c;
        }
    });
    d
}

/// Several labels: per bin, (accumulator, coefficient sum) lists in CSR form.
fn sparse_coefficients(lin: &Linear, bins: Bins, k: usize) -> (Vec<u32>, Vec<u32>, Vec<f64>) {
    let mut ptr = vec![0u32];
    let (mut idx, mut coef) = (vec![], vec![]);
    let mut entries: Vec<(u32, f64)> = vec![];
    let mut current = 0;
    let flush = |entries: &mut Vec<(u32, f64)>, idx: &mut Vec<u32>, coef: &mut Vec<f64>| {
        for &(a, c) in entries.iter() {
            idx.push(a);
            coef.push(c);
        }
        entries.clear();
    };
    for_each_binned_pixel(lin, bins, |b, l, w, qx, qy| {
        while current < b {
            flush(&mut entries, &mut idx, &mut coef);
            ptr.push(idx.len() as u32);
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
        flush(&mut entries, &mut idx, &mut coef);
        ptr.push(idx.len() as u32);
        current += 1;
    }
    (ptr, idx, coef)
}

/// `Σ_k B_k·c_k` per accumulator (`k` coefficients per bin: 1 or 3), flagged bins counting 0.
#[inline(always)]
fn dense_sums(k: usize, bins: &[f64], coef: &[f64], flag: impl Fn(f64) -> bool) -> [f64; 3] {
    match k {
        1 => dense_sums_k::<1>(bins, coef, flag),
        _ => dense_sums_k::<3>(bins, coef, flag),
    }
}

#[inline(always)]
fn dense_sums_k<const K: usize>(
    bins: &[f64],
    coef: &[f64],
    flag: impl Fn(f64) -> bool,
) -> [f64; 3] {
    let mut lanes = [0f64; 3];
    for (&b, c) in bins.iter().zip(coef.chunks_exact(K)) {
        let b = if flag(b) { 0.0 } else { b };
        for j in 0..K {
            lanes[j] += b * c[j];
        }
    }
    lanes
}
