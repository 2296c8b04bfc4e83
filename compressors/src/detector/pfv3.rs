//! `pfv3`: psana's peak_finder_v3r3 ("ranker"), per panel, mask honoured.
//!
//! Local maxima within a (2·rank+1)² square seed peaks; each seed's background is the mean and
//! rms of a ring (r0..r0+dr) of good pixels that are neither local maxima nor minima; pixels at
//! least `mean + nsigm·rms` and 4-connected to the seed inside its rank box form the peak.

use super::peaks::{self, Peak, PeakList, MASK, RADIUS};
use roibin_registry::options::THREADS;
use roibin_registry::{Accepts, Codec, CodecInfo, Config, OptionSpec, OptionType, Result};

const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "rank",
        ty: OptionType::Int { min: 1, max: 32 },
        default: "3",
        doc: "half-size of the local-maximum square and of the peak's box",
    },
    OptionSpec {
        name: "r0",
        ty: OptionType::Float {
            min: 1.0,
            max: 64.0,
        },
        default: "3",
        doc: "inner radius of the background ring",
    },
    OptionSpec {
        name: "dr",
        ty: OptionType::Float {
            min: 0.5,
            max: 64.0,
        },
        default: "2",
        doc: "width of the background ring",
    },
    OptionSpec {
        name: "nsigm",
        ty: OptionType::Float { min: 0.0, max: 1e3 },
        default: "3",
        doc: "peak pixels are at least ring mean + nsigm·rms",
    },
    OptionSpec {
        name: "son_min",
        ty: OptionType::Float { min: 0.0, max: 1e9 },
        default: "10",
        doc: "smallest signal over noise: amp_tot / (rms·√npix)",
    },
    OptionSpec {
        name: "npix_min",
        ty: OptionType::Int {
            min: 1,
            max: 1 << 20,
        },
        default: "2",
        doc: "smallest peak in pixels",
    },
    OptionSpec {
        name: "npix_max",
        ty: OptionType::Int {
            min: 1,
            max: 1 << 20,
        },
        default: "30",
        doc: "largest peak in pixels",
    },
    OptionSpec {
        name: "amax_thr",
        ty: OptionType::Float {
            min: -1e30,
            max: 1e30,
        },
        default: "300",
        doc: "smallest seed amplitude above the ring mean (ADU)",
    },
    OptionSpec {
        name: "atot_thr",
        ty: OptionType::Float {
            min: -1e30,
            max: 1e30,
        },
        default: "600",
        doc: "smallest total amplitude above the ring mean (ADU)",
    },
    OptionSpec {
        name: "max_peaks",
        ty: OptionType::Int {
            min: 1,
            max: 1 << 20,
        },
        default: "2048",
        doc: "keep the brightest this many, by integrated intensity (all are counted)",
    },
    MASK,
    RADIUS,
    THREADS,
];

/// peak_finder_v3r3 settings.
#[derive(Debug, Clone)]
pub struct Pfv3Params {
    pub rank: usize,
    pub r0: f64,
    pub dr: f64,
    pub nsigm: f64,
    pub son_min: f64,
    pub npix_min: usize,
    pub npix_max: usize,
    pub amax_thr: f64,
    pub atot_thr: f64,
    pub max_peaks: usize,
}

/// Separable running max (or min, with `pick = f32::min`) over ±`rank` in rows, then columns.
fn square_extreme(
    v: &[f32],
    rows: usize,
    cols: usize,
    rank: usize,
    empty: f32,
    pick: fn(f32, f32) -> f32,
) -> Vec<f32> {
    let mut rowx = vec![empty; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            let (a, b) = (c.saturating_sub(rank), (c + rank).min(cols - 1));
            rowx[r * cols + c] = v[r * cols + a..=r * cols + b]
                .iter()
                .fold(empty, |m, &x| pick(m, x));
        }
    }
    let mut sq = vec![empty; rows * cols];
    for r in 0..rows {
        let (a, b) = (r.saturating_sub(rank), (r + rank).min(rows - 1));
        for c in 0..cols {
            sq[r * cols + c] = (a..=b).fold(empty, |m, y| pick(m, rowx[y * cols + c]));
        }
    }
    sq
}

fn panel_peaks(
    v: &[f32],
    good: &[bool],
    rows: usize,
    cols: usize,
    row0: usize,
    p: &Pfv3Params,
) -> Vec<Peak> {
    let n = rows * cols;
    // Bad pixels never win or lose a comparison.
    let vmax: Vec<f32> = (0..n)
        .map(|i| if good[i] { v[i] } else { f32::NEG_INFINITY })
        .collect();
    let vmin: Vec<f32> = (0..n)
        .map(|i| if good[i] { v[i] } else { f32::INFINITY })
        .collect();
    let smax = square_extreme(&vmax, rows, cols, p.rank, f32::NEG_INFINITY, f32::max);
    let smin = square_extreme(&vmin, rows, cols, p.rank, f32::INFINITY, f32::min);
    let is_max = |i: usize| good[i] && v[i] >= smax[i];
    let is_min = |i: usize| good[i] && v[i] <= smin[i];
    let rmax = (p.r0 + p.dr).ceil() as i64;
    let ring: Vec<(i64, i64)> = (-rmax..=rmax)
        .flat_map(|y| (-rmax..=rmax).map(move |x| (y, x)))
        .filter(|&(y, x)| {
            let d = ((y * y + x * x) as f64).sqrt();
            d >= p.r0 && d <= p.r0 + p.dr
        })
        .collect();
    let rank = p.rank as i64;
    let mut taken = vec![false; n];
    let mut out = vec![];
    let mut stack = vec![];
    let mut region: Vec<(usize, usize)> = vec![];
    for r in 0..rows {
        for c in 0..cols {
            let i = r * cols + c;
            if !is_max(i) || taken[i] {
                continue;
            }
            let (mut bn, mut bs, mut bs2) = (0usize, 0f64, 0f64);
            for &(dy, dx) in &ring {
                let (y, x) = (r as i64 + dy, c as i64 + dx);
                if y < 0 || x < 0 || y >= rows as i64 || x >= cols as i64 {
                    continue;
                }
                let j = y as usize * cols + x as usize;
                if good[j] && !is_max(j) && !is_min(j) {
                    bn += 1;
                    bs += v[j] as f64;
                    bs2 += (v[j] as f64).powi(2);
                }
            }
            if bn == 0 {
                continue;
            }
            let mean = bs / bn as f64;
            let rms = (bs2 / bn as f64 - mean * mean).max(0.0).sqrt().max(1e-6);
            let amax = v[i] as f64 - mean;
            if amax < p.amax_thr {
                continue;
            }
            let thr = mean + p.nsigm * rms;
            region.clear();
            stack.clear();
            stack.push((r, c));
            taken[i] = true;
            while let Some((y, x)) = stack.pop() {
                region.push((y, x));
                for (dy, dx) in [(-1i64, 0i64), (1, 0), (0, -1), (0, 1)] {
                    let (ny, nx) = (y as i64 + dy, x as i64 + dx);
                    if ny < 0 || nx < 0 || ny >= rows as i64 || nx >= cols as i64 {
                        continue;
                    }
                    if (ny - r as i64).abs() > rank || (nx - c as i64).abs() > rank {
                        continue;
                    }
                    let j = ny as usize * cols + nx as usize;
                    if !taken[j] && good[j] && v[j] as f64 >= thr {
                        taken[j] = true;
                        stack.push((ny as usize, nx as usize));
                    }
                }
            }
            let npix = region.len();
            let atot: f64 = region
                .iter()
                .map(|&(y, x)| v[y * cols + x] as f64 - mean)
                .sum();
            let son = atot / (rms * (npix as f64).sqrt());
            if npix < p.npix_min || npix > p.npix_max || atot < p.atot_thr || son < p.son_min {
                continue;
            }
            let (cy, cx) = super::pf8::centroid(v, &region, |y, x| y * cols + x);
            out.push(Peak::of_region(&region, (cy, cx), row0, atot, amax));
        }
    }
    out
}

/// Run peak_finder_v3r3 on pixels `v` of a frame of `panels`.
pub fn find(v: &[f32], panels: peaks::Panels, g: &peaks::Geometry, p: &Pfv3Params) -> PeakList {
    peaks::per_panel(v, panels, g, p.max_peaks, |v, good, rows, cols, row0| {
        panel_peaks(v, good, rows, cols, row0, p)
    })
}

fn build(c: &Config) -> Result<Box<dyn Codec>> {
    let params = Pfv3Params {
        rank: c.get::<i64>("rank")? as usize,
        r0: c.get::<f64>("r0")?,
        dr: c.get::<f64>("dr")?,
        nsigm: c.get::<f64>("nsigm")?,
        son_min: c.get::<f64>("son_min")?,
        npix_min: c.get::<i64>("npix_min")? as usize,
        npix_max: c.get::<i64>("npix_max")? as usize,
        amax_thr: c.get::<f64>("amax_thr")?,
        atot_thr: c.get::<f64>("atot_thr")?,
        max_peaks: c.get::<i64>("max_peaks")? as usize,
    };
    peaks::Finder::build("pfv3", c, params, false, find)
}

inventory::submit! {
    CodecInfo {
        name: "pfv3",
        version: 1,
        doc: "psana peak_finder_v3r3 (ranker): local maxima, ring background, 4-connected peak in the rank box, S/N selection; a frame in, a peak list out",
        options: OPTIONS,
        accepts: Accepts { dtypes: &[], ranks: (2, 3), bytes: false },
        thread_safe: true,
        build,
    }
}
