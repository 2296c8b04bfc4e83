//! A dispersion check re-run where a frame changed: `roibin(auto)` pastes windows over a
//! decoded frame and must know DIALS's spots on the result; only pixels within the finder's
//! reach of a pasted window can change class, so the strong mask is recomputed on crops around
//! them and the spots are regrouped from the whole mask. The same functions as the finder
//! codec, so the spots are those a full run gives (tested).

use super::dispersion::{self, DispersionParams, FinderSpare};
use super::elems;
use super::peaks::{Panels, Peak, PeakList};
use rayon::prelude::*;
use roibin_registry::spec::Graph;
use roibin_registry::{Config, DType};
use std::ops::Range;

/// A `dispersion` or `dispersion_extended` check without mask or radius files, with the
/// buffers its codec keeps between frames.
pub struct Recheck<'a> {
    params: DispersionParams,
    panels: Panels,
    spare: &'a FinderSpare,
}

/// Rows and columns of a panel.
struct Crop {
    rows: Range<usize>,
    cols: Range<usize>,
}

/// One frame's check: its pixels as the finder sees them, and per panel the gain (with the
/// boxes' indices of dispersion it was estimated from, for `gain=0`) and the strong-pixel
/// mask.
pub struct FrameCheck {
    v: Vec<f32>,
    good: Vec<bool>,
    gain: Vec<f64>,
    ratios: Vec<Vec<Option<f64>>>,
    strong: Vec<bool>,
}

impl<'a> Recheck<'a> {
    /// The check `graph` for frames of `panels`, if it is a single dispersion-family stage
    /// that reads no files (a mask changes which pixels count: those checks run in full).
    pub fn of(graph: &Graph, panels: Panels, spare: &'a FinderSpare) -> Option<Recheck<'a>> {
        let [stage] = &graph.stages[..] else {
            return None;
        };
        let extended = match stage.name.as_str() {
            "dispersion" => false,
            "dispersion_extended" => true,
            _ => return None,
        };
        let names_a_file = stage
            .args
            .iter()
            .any(|a| matches!(a.name.as_deref(), Some("mask" | "radius")));
        if names_a_file {
            return None;
        }
        let c = Config::from_stage(stage, dispersion::OPTIONS, &stage.name).ok()?;
        let params = dispersion::params(&c, extended).ok()?;
        Some(Recheck {
            params,
            panels,
            spare,
        })
    }

    /// The whole check of `frame` (its bytes).
    pub fn full(&self, frame: &[u8], dtype: DType) -> FrameCheck {
        let mut v = Vec::new();
        elems::to_f32(frame, dtype, &mut v);
        let good = finite(&v);
        let mut fc = FrameCheck {
            v,
            good,
            gain: vec![0.0; self.panels.panels],
            ratios: vec![vec![]; self.panels.panels],
            strong: vec![false; self.panels.pixels()],
        };
        for k in 0..self.panels.panels {
            self.panel(&mut fc, k);
        }
        fc
    }

    /// Recompute panel `k` of `fc` in full.
    fn panel(&self, fc: &mut FrameCheck, k: usize) {
        let (rows, cols) = (self.panels.rows, self.panels.cols);
        let s = k * rows * cols..(k + 1) * rows * cols;
        let (v, good) = (&fc.v[s.clone()], &fc.good[s]);
        fc.gain[k] = dispersion::gain_or(&self.params, || {
            fc.ratios[k] = dispersion::box_ratios(v, good, rows, cols);
            dispersion::gain_from_ratios(&fc.ratios[k])
        });
        self.panel_strong(fc, k);
    }

    /// Recompute the strong mask of panel `k` of `fc` in full, with the gain it holds.
    fn panel_strong(&self, fc: &mut FrameCheck, k: usize) {
        let (rows, cols) = (self.panels.rows, self.panels.cols);
        let s = k * rows * cols..(k + 1) * rows * cols;
        let (v, good) = (&fc.v[s.clone()], &fc.good[s.clone()]);
        let strong =
            dispersion::strong_pixels(v, good, rows, cols, &self.params, fc.gain[k], self.spare);
        fc.strong[s].copy_from_slice(&strong);
        self.spare.give_mask(strong);
    }

    /// `fc` for `frame`, which differs from the frame `fc` was made for only inside `changed`
    /// (rows and columns of the stacked frame, each within one panel).
    pub fn update(
        &self,
        fc: &mut FrameCheck,
        frame: &[u8],
        dtype: DType,
        changed: &[(Range<usize>, Range<usize>)],
    ) {
        let (rows, cols, es) = (self.panels.rows, self.panels.cols, dtype.size());
        let mut row_px = Vec::new();
        for (ys, xs) in changed {
            for y in ys.clone() {
                let i = y * cols;
                elems::to_f32(
                    &frame[(i + xs.start) * es..(i + xs.end) * es],
                    dtype,
                    &mut row_px,
                );
                fc.v[i + xs.start..i + xs.end].copy_from_slice(&row_px);
                for (g, x) in fc.good[i + xs.start..i + xs.end].iter_mut().zip(&row_px) {
                    *g = x.is_finite();
                }
            }
        }
        for k in 0..self.panels.panels {
            let mine: Vec<_> = changed
                .iter()
                .filter(|(ys, _)| ys.start / rows == k)
                .collect();
            if mine.is_empty() {
                continue;
            }
            // The gain from the boxes the windows touched, the others' ratios as they were.
            let s = k * rows * cols..(k + 1) * rows * cols;
            let panel = (&fc.v[s.clone()], &fc.good[s]);
            let ratios = &mut fc.ratios[k];
            let gain = dispersion::gain_or(&self.params, || {
                for (ys, xs) in &mine {
                    let ys = ys.start - k * rows..ys.end - k * rows;
                    dispersion::update_box_ratios(ratios, panel, (rows, cols), (ys, xs.clone()));
                }
                dispersion::gain_from_ratios(ratios)
            });
            // The gain is the panel's: a change anywhere may move every test. Crops around
            // many windows overlap and can cover the panel several times over (thousands of
            // windows a round on an EIGER 4M frame): then one pass over the panel is cheaper.
            // Either way the mask is the one a full run gives.
            if gain != fc.gain[k] || self.crop_area(k, &mine) > rows * cols {
                fc.gain[k] = gain;
                self.panel_strong(fc, k);
                continue;
            }
            self.recompute_near(fc, k, &mine, gain);
        }
    }

    /// Recompute the strong mask of panel `k` of `fc` near each of the `changed` rectangles
    /// (rows of the stacked frame): each window's neighbourhood from its own crop, side by
    /// side (neighbourhoods that overlap agree: a pixel's class depends on the frame within
    /// `reach` of it).
    fn recompute_near(
        &self,
        fc: &mut FrameCheck,
        k: usize,
        changed: &[&(Range<usize>, Range<usize>)],
        gain: f64,
    ) {
        let (rows, cols) = (self.panels.rows, self.panels.cols);
        let recomputed: Vec<_> = changed
            .par_iter()
            .map(|rect| {
                let (near, nearx, crop) = self.near_and_crop(k, rect);
                let strong = self.crop_strong(fc, k, &crop, gain);
                (crop, near, nearx, strong)
            })
            .collect();
        for (crop, near, nearx, strong) in recomputed {
            let w = crop.cols.len();
            for y in near.0..near.1 {
                let src = (y - crop.rows.start) * w + (nearx.0 - crop.cols.start);
                let at = (k * rows + y) * cols;
                fc.strong[at + nearx.0..at + nearx.1]
                    .copy_from_slice(&strong[src..src + (nearx.1 - nearx.0)]);
            }
        }
    }

    /// For a `changed` rectangle of panel `k` (rows of the stacked frame): the panel rows and
    /// columns whose class may change, and the crop that decides them.
    fn near_and_crop(
        &self,
        k: usize,
        (ys, xs): &(Range<usize>, Range<usize>),
    ) -> ((usize, usize), (usize, usize), Crop) {
        let (rows, cols) = (self.panels.rows, self.panels.cols);
        let reach = dispersion::reach(&self.params);
        let (y0, x0) = (ys.start - k * rows, xs.start);
        let (y1, x1) = (ys.end - k * rows, xs.end);
        let near = (y0.saturating_sub(reach), (y1 + reach).min(rows));
        let nearx = (x0.saturating_sub(reach), (x1 + reach).min(cols));
        let crop = Crop {
            rows: near.0.saturating_sub(reach)..(near.1 + reach).min(rows),
            cols: nearx.0.saturating_sub(reach)..(nearx.1 + reach).min(cols),
        };
        (near, nearx, crop)
    }

    /// Pixels the crops of the `changed` rectangles of panel `k` hold in all.
    fn crop_area(&self, k: usize, changed: &[&(Range<usize>, Range<usize>)]) -> usize {
        changed
            .iter()
            .map(|rect| {
                let crop = self.near_and_crop(k, rect).2;
                crop.rows.len() * crop.cols.len()
            })
            .sum()
    }

    /// The strong mask of `crop` of panel `k` of `fc`, the crop taken as a panel of its own.
    fn crop_strong(&self, fc: &FrameCheck, k: usize, crop: &Crop, gain: f64) -> Vec<bool> {
        let (rows, cols) = (self.panels.rows, self.panels.cols);
        let (h, w) = (crop.rows.len(), crop.cols.len());
        let mut v = Vec::with_capacity(h * w);
        let mut good = Vec::with_capacity(h * w);
        for y in crop.rows.clone() {
            let at = (k * rows + y) * cols;
            let span = at + crop.cols.start..at + crop.cols.end;
            v.extend_from_slice(&fc.v[span.clone()]);
            good.extend_from_slice(&fc.good[span]);
        }
        // Crops are small: their buffers are not kept (frame-sized ones would be taken).
        let spare = FinderSpare::default();
        dispersion::strong_pixels(&v, &good, h, w, &self.params, gain, &spare)
    }

    /// What each of `checks` (all for frames of the same panels) finds on `frame`, as their
    /// finder codecs report it: one conversion of the frame, one gain estimate per panel for
    /// all that take the gain from the data, and one pass of box sums for all that share a
    /// kernel. `roibin(auto)`'s finder and its check on the originals are two such.
    pub fn peak_lists(checks: &[&Recheck], frame: &[u8], dtype: DType) -> Vec<PeakList> {
        let Some(first) = checks.first() else {
            return vec![];
        };
        let Panels { panels, rows, cols } = first.panels;
        let mut v = Vec::new();
        elems::to_f32(frame, dtype, &mut v);
        let good = finite(&v);
        let mut found: Vec<Vec<Vec<Peak>>> = vec![Vec::with_capacity(panels); checks.len()];
        for k in 0..panels {
            let s = k * rows * cols..(k + 1) * rows * cols;
            let (v, good) = (&v[s.clone()], &good[s]);
            let estimated = std::cell::OnceCell::new();
            let tests: Vec<dispersion::Test> = checks
                .iter()
                .map(|c| {
                    let estimate = || dispersion::gain_from_data(v, good, rows, cols);
                    let gain = dispersion::gain_or(&c.params, || *estimated.get_or_init(estimate));
                    (&c.params, gain)
                })
                .collect();
            let strong = dispersion::strong_pixels_each(v, good, rows, cols, &tests, first.spare);
            let spots: Vec<Vec<Peak>> = (strong.into_par_iter().zip(checks))
                .map(|(strong, c)| {
                    dispersion::spots_of(v, strong, rows, cols, k * rows, &c.params, first.spare)
                })
                .collect();
            for (list, spots) in found.iter_mut().zip(spots) {
                list.push(spots);
            }
        }
        found
            .into_iter()
            .zip(checks)
            .map(|(per_panel, c)| PeakList::capped(per_panel, c.params.max_peaks))
            .collect()
    }

    /// The spots of `fc`, as the finder codec reports them (the brightest `max_peaks`).
    pub fn spots(&self, fc: &FrameCheck) -> Vec<Peak> {
        let (rows, cols) = (self.panels.rows, self.panels.cols);
        let per_panel = (0..self.panels.panels)
            .map(|k| {
                let s = k * rows * cols..(k + 1) * rows * cols;
                let mut strong = self.spare.mask(rows * cols);
                strong.copy_from_slice(&fc.strong[s.clone()]);
                dispersion::spots_of(
                    &fc.v[s],
                    strong,
                    rows,
                    cols,
                    k * rows,
                    &self.params,
                    self.spare,
                )
            })
            .collect();
        PeakList::capped(per_panel, self.params.max_peaks).peaks
    }
}

/// Whether each pixel is finite (sentinels are NaN by now: see [`elems::to_f32`]).
fn finite(v: &[f32]) -> Vec<bool> {
    v.par_iter()
        .with_min_len(roibin_registry::threads::min_len(4))
        .map(|x| x.is_finite())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use roibin_registry::{ArrayMeta, DataKind, Pipeline};

    /// A noisy two-panel frame with spots, as bytes.
    fn frame(seed: u64, rows: usize, cols: usize) -> Vec<f32> {
        let mut s = seed;
        let mut rnd = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32
        };
        let mut v: Vec<f32> = (0..rows * cols).map(|_| (rnd() * 6.0).floor()).collect();
        for _ in 0..40 {
            let (y, x) = (
                (rnd() * rows as f32) as usize,
                (rnd() * cols as f32) as usize,
            );
            for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                if y + dy < rows && x + dx < cols {
                    v[(y + dy) * cols + x + dx] += 40.0 + 200.0 * rnd();
                }
            }
        }
        v
    }

    fn bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// Pasting other pixels into rectangles and updating gives what a full check of the new
    /// frame gives, mask and spots, and those are the finder codec's spots.
    #[test]
    fn updated_checks_equal_full_ones() {
        let panels = Panels {
            panels: 2,
            rows: 60,
            cols: 80,
        };
        for spec in [
            "dispersion_extended(gain=0,min_pix=1,max_peaks=1048576)",
            "dispersion(gain=1)",
            "dispersion_extended(kernel=2,gain=3)",
        ] {
            let graph: Graph = spec.parse().unwrap();
            let spare = FinderSpare::default();
            let rc = Recheck::of(&graph, panels, &spare).unwrap();
            // Counts, and counts scaled to ADU (an estimated gain far from 1, which the
            // windows move).
            for (seed, scale) in (0..12u64).flat_map(|s| [(s, 1.0), (s, 40.0)]) {
                let scaled = |v: Vec<f32>| v.into_iter().map(|x| x * scale).collect::<Vec<_>>();
                let base = scaled(frame(3 + seed, 120, 80));
                let orig = scaled(frame(1000 + seed, 120, 80));
                // Windows at the corners, the panel border, the middle, overlapping, and
                // some at random: crops that cover the panel more than once, so it is
                // recomputed whole. Then one window alone, recomputed around it.
                let mut many = vec![
                    (0..7, 0..9),
                    (55..60, 30..45),
                    (60..64, 70..80),
                    (30..50, 20..41),
                    (33..36, 18..25),
                ];
                let mut s = seed;
                for _ in 0..4 {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                    let (y, x, r) = (
                        (s >> 33) as usize % 120,
                        (s >> 20) as usize % 80,
                        (s >> 50) as usize % 6,
                    );
                    let top = y / 60 * 60;
                    many.push((
                        y.saturating_sub(r).max(top)..(y + r + 1).min(top + 60),
                        x.saturating_sub(r)..(x + r + 1).min(80),
                    ));
                }
                let one = vec![(33..36, 18..25)];
                assert!(rc.crop_area(0, &one.iter().collect::<Vec<_>>()) < 60 * 80);
                let mut v = base;
                for changed in [one, many] {
                    let mut fc = rc.full(&bytes(&v), DType::F32);
                    for (ys, xs) in &changed {
                        for y in ys.clone() {
                            for x in xs.clone() {
                                v[y * 80 + x] = orig[y * 80 + x];
                            }
                        }
                    }
                    rc.update(&mut fc, &bytes(&v), DType::F32, &changed);
                    let full = rc.full(&bytes(&v), DType::F32);
                    assert_eq!(fc.strong, full.strong, "{spec} seed {seed}");
                    let codec = Pipeline::from_spec(
                        spec,
                        &DataKind::Array(ArrayMeta::new(DType::F32, vec![2, 60, 80])),
                    )
                    .unwrap();
                    let want = PeakList::read(&codec.encode(&bytes(&v)).unwrap())
                        .unwrap()
                        .peaks;
                    assert_eq!(rc.spots(&fc), want, "{spec} seed {seed}");
                    // The frame with every window pasted has spots (the check is not empty).
                    assert!(!want.is_empty() || changed.len() == 1, "{spec}");
                }
            }
        }
        let masked: Graph = "dispersion(mask=\"m.npy\")".parse().unwrap();
        assert!(Recheck::of(&masked, panels, &FinderSpare::default()).is_none());
        assert!(Recheck::of(&"pf8".parse().unwrap(), panels, &FinderSpare::default()).is_none());
    }

    /// Finders run together on a frame (one conversion, one gain estimate, one pass of box
    /// sums where kernels agree) report what each finder codec reports alone.
    #[test]
    fn shared_runs_equal_separate_ones() {
        let panels = Panels {
            panels: 2,
            rows: 60,
            cols: 80,
        };
        let meta = DataKind::Array(ArrayMeta::new(DType::F32, vec![2, 60, 80]));
        let sets: [&[&str]; 3] = [
            // roibin(auto)'s finder and check.
            &[
                "dispersion(gain=0,sigma_background=5,sigma_strong=2.5,max_peaks=1048576)",
                "dispersion_extended(gain=0,min_pix=1,max_peaks=1048576)",
            ],
            // Given and estimated gains, a cap on the peaks, a third test.
            &[
                "dispersion_extended(gain=2,max_peaks=5)",
                "dispersion(gain=0,min_local=30)",
                "dispersion(gain=1,threshold=3)",
            ],
            // Kernels that differ: run one after the other.
            &[
                "dispersion(kernel=2)",
                "dispersion_extended(kernel=4,gain=0)",
            ],
        ];
        let spare = FinderSpare::default();
        for specs in sets {
            let checks: Vec<Recheck> = specs
                .iter()
                .map(|s| Recheck::of(&s.parse().unwrap(), panels, &spare).unwrap())
                .collect();
            let refs: Vec<&Recheck> = checks.iter().collect();
            // Counts, and counts scaled to ADU (an estimated gain of about 40, not 1).
            let frames = (0..6u64).flat_map(|seed| {
                let v = frame(50 + seed, 120, 80);
                let adu: Vec<f32> = v.iter().map(|x| 40.0 * x).collect();
                [bytes(&v), bytes(&adu)]
            });
            for f in frames {
                let lists = Recheck::peak_lists(&refs, &f, DType::F32);
                for (spec, got) in specs.iter().zip(lists) {
                    let codec = Pipeline::from_spec(spec, &meta).unwrap();
                    let want = PeakList::read(&codec.encode(&f).unwrap()).unwrap();
                    assert_eq!((got.found, got.peaks), (want.found, want.peaks), "{spec}");
                }
            }
        }
    }

    /// No change of one pixel moves the strong mask farther than `reach` from it (checked by
    /// changing pixels of frames with spots, each time comparing two full checks).
    #[test]
    fn one_pixel_moves_the_mask_no_farther_than_reach() {
        let (rows, cols) = (48, 48);
        let panels = Panels {
            panels: 1,
            rows,
            cols,
        };
        for spec in ["dispersion_extended(gain=1)", "dispersion(gain=1)"] {
            let spare = FinderSpare::default();
            let rc = Recheck::of(&spec.parse().unwrap(), panels, &spare).unwrap();
            let reach = dispersion::reach(&rc.params) as i64;
            let mut farthest = 0;
            for seed in 0..3u64 {
                let v = frame(seed, rows, cols);
                let before = rc.full(&bytes(&v), DType::F32).strong;
                for p in (0..rows * cols).step_by(5) {
                    for new in [0.0, 25.0, 400.0, 1e5] {
                        let mut w = v.clone();
                        w[p] = new;
                        let after = rc.full(&bytes(&w), DType::F32).strong;
                        for i in (0..rows * cols).filter(|&i| before[i] != after[i]) {
                            let dy = (i / cols) as i64 - (p / cols) as i64;
                            let dx = (i % cols) as i64 - (p % cols) as i64;
                            let d = dy.abs().max(dx.abs());
                            farthest = farthest.max(d);
                        }
                    }
                }
            }
            assert!(farthest <= reach, "{spec}: {farthest} > {reach}");
            assert!(farthest > 0, "{spec}: no change seen");
        }
    }
}
