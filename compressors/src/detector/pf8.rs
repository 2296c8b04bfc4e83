//! `pf8`: peakfinder8 (Cheetah, CrystFEL, OnDA/OM), per panel, mask and radius map honoured.
//!
//! 1. Radial statistics with 5 rounds of sigma clipping per rounded-radius bin give each pixel
//!    an upper threshold `mean + snr·sd`, at least `adc`.
//! 2. Per panel, pixels above threshold seed regions grown with 8-connectivity.
//! 3. Regions are re-integrated against a local background disc and kept when
//!    `total/sd ≥ snr`, their maximum beats the brightest background pixel and their size fits.

use super::peaks::{self, Peak, PeakList, MASK, RADIUS};
use rayon::prelude::*;
use roibin_registry::options::THREADS;
use roibin_registry::{Accepts, Codec, CodecInfo, Config, OptionSpec, OptionType, Result};

const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "adc",
        ty: OptionType::Float { min: -1e30, max: 1e30 },
        default: "300",
        doc: "adc_threshold: no pixel below this seeds or grows a peak (ADU)",
    },
    OptionSpec {
        name: "snr",
        ty: OptionType::Float { min: 0.0, max: 1e6 },
        default: "6",
        doc: "min_snr: thresholds at mean + snr·sd of the radial background; peaks need total/sd >= snr",
    },
    OptionSpec {
        name: "min_pix",
        ty: OptionType::Int { min: 1, max: 1 << 20 },
        default: "2",
        doc: "min_pix_count: smallest peak in pixels",
    },
    OptionSpec {
        name: "max_pix",
        ty: OptionType::Int { min: 1, max: 1 << 20 },
        default: "200",
        doc: "max_pix_count: largest peak in pixels",
    },
    OptionSpec {
        name: "bg_radius",
        ty: OptionType::Int { min: 1, max: 64 },
        default: "3",
        doc: "local_bg_radius: the local background is a disc of twice this radius",
    },
    OptionSpec {
        name: "max_peaks",
        ty: OptionType::Int { min: 1, max: 1 << 20 },
        default: "2048",
        doc: "max_num_peaks: keep the brightest this many, by integrated intensity (all are counted)",
    },
    OptionSpec {
        name: "min_res",
        ty: OptionType::Float { min: 0.0, max: 1e9 },
        default: "0",
        doc: "ignore pixels closer to the beam than this radius (pixels)",
    },
    OptionSpec {
        name: "max_res",
        ty: OptionType::Float { min: 0.0, max: 1e9 },
        default: "1e9",
        doc: "ignore pixels farther from the beam than this radius (pixels)",
    },
    MASK,
    RADIUS,
    THREADS,
];

/// peakfinder8 settings.
#[derive(Debug, Clone)]
pub struct Pf8Params {
    pub adc: f32,
    pub snr: f32,
    pub min_pix: usize,
    pub max_pix: usize,
    pub bg_radius: usize,
    pub max_peaks: usize,
    pub min_res: f32,
    pub max_res: f32,
}

/// Per-bin upper thresholds and background offsets.
struct Radial {
    /// Per bin (plus the masked bin): background pixels stay below this.
    upper: Vec<f32>,
    /// `upper` where the bin is inside the radius limits, else +∞: peak pixels exceed this.
    seed: Vec<f32>,
    offset: Vec<f32>,
}

/// Count, sum and sum of squares of the pixels inside `bounds`, per bin (`nb` bins, the last
/// for masked pixels).
///
/// Sums per fixed block of pixels, in parallel, then merged in block order: float sums depend
/// on their order, and this one depends on neither the thread count nor the scheduling, so
/// the peaks (and the file) are the same under any allocation.
fn bin_sums(
    v: &[f32],
    g: &peaks::Geometry,
    bounds: &[(f32, f32)],
    nb: usize,
) -> Vec<(u32, f64, f64)> {
    let chunk = 1 << 16;
    type Acc = Vec<(u32, f64, f64)>;
    let blocks: Vec<Acc> = v
        .par_chunks(chunk)
        .enumerate()
        .map(|(ci, c)| {
            // Two accumulator sets, alternating by pixel, so neighbouring pixels of the
            // same bin do not wait on each other's store.
            let (mut a0, mut a1) = (vec![(0u32, 0f64, 0f64); nb], vec![(0u32, 0f64, 0f64); nb]);
            let keys = &g.radial().key[ci * chunk..ci * chunk + c.len()];
            for (k, (&x, &b)) in c.iter().zip(keys).enumerate() {
                let (lo, hi) = bounds[b as usize];
                if x > lo && x < hi {
                    let a = if k & 1 == 0 {
                        &mut a0[b as usize]
                    } else {
                        &mut a1[b as usize]
                    };
                    a.0 += 1;
                    a.1 += x as f64;
                    a.2 += (x as f64) * (x as f64);
                }
            }
            merge(&mut a0, &a1);
            a0
        })
        .collect();
    let mut sums = vec![(0u32, 0f64, 0f64); nb];
    for b in &blocks {
        merge(&mut sums, b);
    }
    sums
}

fn radial_stats(v: &[f32], g: &peaks::Geometry, p: &Pf8Params) -> Radial {
    // One extra bin collects masked pixels; its bounds never admit anything.
    let nb = g.radial().key_bins + 1;
    // (lower, upper) per bin: one cache line holds both for the hot compare.
    let mut bounds = vec![(f32::NEG_INFINITY, f32::INFINITY); nb];
    let mut offset = vec![0f32; nb];
    for round in 0..5 {
        let sums = bin_sums(v, g, &bounds, nb);
        for (b, &(n, s, s2)) in sums.iter().enumerate().take(g.radial().key_bins) {
            // A bin whose values are all equal (sd 0, as in a quantised or binned background)
            // clips itself empty in the next round: keep what the last round found instead
            // of declaring it empty, which would blind the finder in that bin.
            if n == 0 && round > 0 {
                continue;
            }
            if n == 0 {
                offset[b] = 0.0;
                bounds[b] = (f32::NEG_INFINITY, f32::INFINITY);
                continue;
            }
            let mean = s / n as f64;
            let sd = (s2 / n as f64 - mean * mean).max(0.0).sqrt();
            offset[b] = mean as f32;
            bounds[b] = (
                (mean - p.snr as f64 * sd) as f32,
                (mean + p.snr as f64 * sd) as f32,
            );
        }
    }
    bounds[g.radial().key_bins] = (f32::INFINITY, f32::NEG_INFINITY);
    let upper: Vec<f32> = bounds.iter().map(|b| b.1.max(p.adc)).collect();
    // Seeds also respect the radius limits, per rounded-radius bin.
    let seed = upper
        .iter()
        .enumerate()
        .map(|(b, &u)| {
            let r = b as f32;
            if b < g.radial().key_bins && r >= p.min_res && r <= p.max_res {
                u
            } else {
                f32::INFINITY
            }
        })
        .collect();
    Radial {
        upper,
        seed,
        offset,
    }
}

fn merge(a: &mut [(u32, f64, f64)], b: &[(u32, f64, f64)]) {
    for (x, y) in a.iter_mut().zip(b) {
        x.0 += y.0;
        x.1 += y.1;
        x.2 += y.2;
    }
}

/// Find peaks in one panel (`base` is the panel's first pixel in the frame).
fn panel_peaks(
    v: &[f32],
    g: &peaks::Geometry,
    rad: &Radial,
    p: &Pf8Params,
    panels: peaks::Panels,
    k: usize,
) -> Vec<Peak> {
    let (rows, cols) = (panels.rows, panels.cols);
    let (n, panel_row0) = (rows * cols, k * rows);
    let base = k * n;
    let idx = |r: usize, c: usize| base + r * cols + c;
    let key = &g.radial().key[base..base + n];
    let vp = &v[base..base + n];
    // NaN compares false, so non-finite pixels never join a peak.
    let above = |i: usize| vp[i - base] > rad.seed[key[i - base] as usize];
    // 0 untouched, 1 in some grown region.
    let mut mark = vec![0u8; n];
    let mut out = vec![];
    let mut stack: Vec<(usize, usize)> = vec![];
    let mut region: Vec<(usize, usize)> = vec![];
    if rows < 3 || cols < 3 {
        return out;
    }
    for r in 1..rows - 1 {
        let (rv, rk) = (
            &vp[r * cols..(r + 1) * cols],
            &key[r * cols..(r + 1) * cols],
        );
        for c in 1..cols - 1 {
            // Most pixels fail the first, cheap test.
            if rv[c] <= rad.seed[rk[c] as usize] || rv[c].is_nan() || mark[r * cols + c] != 0 {
                continue;
            }
            region.clear();
            stack.clear();
            stack.push((r, c));
            mark[r * cols + c] = 1;
            while let Some((y, x)) = stack.pop() {
                region.push((y, x));
                for dy in -1i64..=1 {
                    for dx in -1i64..=1 {
                        let (ny, nx) = (y as i64 + dy, x as i64 + dx);
                        if ny < 0 || nx < 0 || ny >= rows as i64 || nx >= cols as i64 {
                            continue;
                        }
                        let (ny, nx) = (ny as usize, nx as usize);
                        if mark[ny * cols + nx] == 0 && above(idx(ny, nx)) {
                            mark[ny * cols + nx] = 1;
                            stack.push((ny, nx));
                        }
                    }
                }
            }
            let npix = region.len();
            if npix < p.min_pix || npix > p.max_pix {
                continue;
            }
            let raw_total: f64 = region
                .iter()
                .map(|&(y, x)| {
                    let i = idx(y, x);
                    (v[i] - rad.offset[g.radial().bin[i] as usize]) as f64
                })
                .sum();
            if raw_total <= 0.0 {
                continue;
            }
            // Centroid weighted by value, for the background disc.
            let (cy, cx) = centroid(v, &region, idx);
            // Local background: disc of 2·bg_radius, good, below threshold, not in a region.
            let rr = 2 * p.bg_radius as i64;
            let (mut bn, mut bs, mut bs2, mut bmax) = (0usize, 0f64, 0f64, f32::NEG_INFINITY);
            let (ry, rx) = (cy.round() as i64, cx.round() as i64);
            for dy in -rr..=rr {
                for dx in -rr..=rr {
                    if dy * dy + dx * dx > rr * rr {
                        continue;
                    }
                    let (y, x) = (ry + dy, rx + dx);
                    if y < 0 || x < 0 || y >= rows as i64 || x >= cols as i64 {
                        continue;
                    }
                    let (y, x) = (y as usize, x as usize);
                    let i = idx(y, x);
                    if mark[y * cols + x] != 0
                        || !peaks::usable(g, v, i)
                        || v[i] >= rad.upper[g.radial().bin[i] as usize]
                    {
                        continue;
                    }
                    bn += 1;
                    bs += v[i] as f64;
                    bs2 += (v[i] as f64).powi(2);
                    bmax = bmax.max(v[i]);
                }
            }
            let (lm, lsd) = if bn > 0 {
                let m = bs / bn as f64;
                (m, (bs2 / bn as f64 - m * m).max(0.0).sqrt())
            } else {
                (rad.offset[g.radial().bin[idx(r, c)] as usize] as f64, 0.01)
            };
            let lsd = if lsd > 0.0 { lsd } else { 0.01 };
            let mut total = 0f64;
            let mut vmax = f64::NEG_INFINITY;
            for &(y, x) in &region {
                let a = v[idx(y, x)] as f64 - lm;
                total += a;
                vmax = vmax.max(a);
            }
            let bg_peak = if bn > 0 { bmax as f64 - lm } else { 0.0 };
            if total / lsd < p.snr as f64 || vmax < bg_peak {
                continue;
            }
            if cy < 0.0 || cx < 0.0 || cy > (rows - 1) as f64 || cx > (cols - 1) as f64 {
                continue;
            }
            out.push(Peak::of_region(&region, (cy, cx), panel_row0, total, vmax));
        }
    }
    out
}

/// Value-weighted centroid of `region` (unweighted when the weights do not sum positive).
pub(crate) fn centroid(
    v: &[f32],
    region: &[(usize, usize)],
    idx: impl Fn(usize, usize) -> usize,
) -> (f64, f64) {
    let (mut w, mut sy, mut sx) = (0f64, 0f64, 0f64);
    for &(y, x) in region {
        let a = v[idx(y, x)].max(0.0) as f64;
        w += a;
        sy += a * y as f64;
        sx += a * x as f64;
    }
    if w > 0.0 {
        (sy / w, sx / w)
    } else {
        let n = region.len().max(1) as f64;
        (
            region.iter().map(|r| r.0 as f64).sum::<f64>() / n,
            region.iter().map(|r| r.1 as f64).sum::<f64>() / n,
        )
    }
}

/// Run peakfinder8 on pixels `v` of a frame of `panels`.
pub fn find(v: &[f32], panels: peaks::Panels, g: &peaks::Geometry, p: &Pf8Params) -> PeakList {
    let rad = radial_stats(v, g, p);
    let per_panel = (0..panels.panels)
        .into_par_iter()
        .map(|k| panel_peaks(v, g, &rad, p, panels, k))
        .collect();
    PeakList::capped(per_panel, p.max_peaks)
}

fn build(c: &Config) -> Result<Box<dyn Codec>> {
    let params = Pf8Params {
        adc: c.get::<f64>("adc")? as f32,
        snr: c.get::<f64>("snr")? as f32,
        min_pix: c.get::<i64>("min_pix")? as usize,
        max_pix: c.get::<i64>("max_pix")? as usize,
        bg_radius: c.get::<i64>("bg_radius")? as usize,
        max_peaks: c.get::<i64>("max_peaks")? as usize,
        min_res: c.get::<f64>("min_res")? as f32,
        max_res: c.get::<f64>("max_res")? as f32,
    };
    peaks::Finder::build("pf8", c, params, true, find)
}

inventory::submit! {
    CodecInfo {
        name: "pf8",
        version: 1,
        doc: "peakfinder8 (Cheetah/CrystFEL/OM): radial sigma-clipped thresholds, 8-connected regions, local-background SNR test; a frame in, a peak list out",
        options: OPTIONS,
        accepts: Accepts { dtypes: &[], ranks: (2, 3), bytes: false },
        thread_safe: true,
        build,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roibin_registry::{threads, Purpose};

    /// The per-bin sums of an f32 frame are bit-identical at 1 and 7 threads (float sums
    /// depend on their order; the blocks are merged in a fixed one), and so are the
    /// statistics built on them.
    #[test]
    fn radial_sums_are_the_same_at_any_thread_count() {
        let p = peaks::Panels {
            panels: 1,
            rows: 700,
            cols: 300,
        };
        let mut s = 12345u64;
        let v: Vec<f32> = (0..p.pixels())
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                1.0e6 + ((s >> 40) as f32 / (1u64 << 24) as f32) * 37.3
            })
            .collect();
        let g = peaks::GeometrySource::new(Purpose::Encode, "", "")
            .get("pf8", p)
            .unwrap();
        let nb = g.radial().key_bins + 1;
        let open = vec![(f32::NEG_INFINITY, f32::INFINITY); nb];
        let sums = |t: usize| {
            threads::install(t, || bin_sums(&v, &g, &open, nb))
                .iter()
                .map(|&(n, a, b)| (n, a.to_bits(), b.to_bits()))
                .collect::<Vec<_>>()
        };
        let one = sums(1);
        for t in [2, 7] {
            assert!(sums(t) == one, "threads={t}");
        }
        let params = Pf8Params {
            adc: 300.0,
            snr: 6.0,
            min_pix: 2,
            max_pix: 200,
            bg_radius: 3,
            max_peaks: 2048,
            min_res: 0.0,
            max_res: 1e9,
        };
        let stats = |t: usize| {
            let r = threads::install(t, || radial_stats(&v, &g, &params));
            (r.upper, r.seed, r.offset)
        };
        assert!(stats(7) == stats(1));
    }
}
