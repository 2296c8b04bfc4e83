//! `pf8`: peakfinder8 (Cheetah, CrystFEL, OnDA/OM), per panel, mask and radius map honoured.
//!
//! 1. Radial statistics with 5 rounds of sigma clipping per rounded-radius bin give each pixel
//!    an upper threshold `mean + snr·sd`, at least `adc`.
//! 2. Per panel, pixels above threshold seed regions grown with 8-connectivity.
//! 3. Regions are re-integrated against a local background disc and kept when
//!    `total/sd ≥ snr`, their maximum beats the brightest background pixel and their size fits.

use super::peaks::{self, Peak, PeakList, MASK, RADIUS};
use super::radial_pack::{Packed, Packing};
use crate::prefetch::prefetch;

use rayon::prelude::*;
use roibin_registry::options::THREADS;
use roibin_registry::{Accepts, Codec, CodecInfo, Config, OptionSpec, OptionType, Result};
use std::cell::RefCell;

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
    OptionSpec {
        name: "sample",
        ty: OptionType::Int { min: 1, max: 64 },
        default: "1",
        doc: "radial statistics from every Nth row (a bin those rows leave with fewer than 256 pixels from every N/2th, N/4th ... row, down to all of them): faster, thresholds estimated from fewer pixels; 1 = every pixel, as peakfinder8",
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
    /// Radial statistics from every `sample`-th row (1: every pixel).
    pub sample: usize,
}

/// Per-bin upper thresholds and background offsets.
struct Radial {
    /// Per bin (plus the masked bin): background pixels stay below this.
    upper: Vec<f32>,
    /// `upper` where the bin is inside the radius limits, else +∞: peak pixels exceed this.
    seed: Vec<f32>,
    offset: Vec<f32>,
}

/// Per-bin thresholds from 5 rounds of sigma clipping over the frame regrouped by bin (one
/// pass regroups it; each round then sums contiguous runs: see [`super::radial_pack`]).
fn radial_stats<'a>(v: &'a [f32], g: &peaks::Geometry, p: &Pf8Params) -> (Radial, Packed<'a>) {
    let radial = g.radial();
    sigma_clipped(
        |b| radial.packing.pack(v, b),
        &radial.packing,
        radial.key_bins,
        p,
    )
}

/// [`radial_stats`] of the pixels `pack` regroups by `packing` (the frame, or a sample of
/// it), `key_bins` bins.
fn sigma_clipped<'a>(
    pack: impl FnOnce(&[(f32, f32)]) -> Packed<'a>,
    packing: &Packing,
    key_bins: usize,
    p: &Pf8Params,
) -> (Radial, Packed<'a>) {
    // One extra bin for masked pixels: never summed, and its bounds admit nothing.
    let nb = key_bins + 1;
    // (lower, upper) per bin.
    let mut bounds = vec![(f32::NEG_INFINITY, f32::INFINITY); nb];
    let mut offset = vec![0f32; nb];
    // Packing sums the first round; the first call below finds it done.
    let mut packed = pack(&bounds);
    for round in 0..5 {
        let sums = packing.sums(&mut packed, &bounds, nb);
        for (b, &(n, s, s2)) in sums.iter().enumerate().take(key_bins) {
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
    bounds[key_bins] = (f32::INFINITY, f32::NEG_INFINITY);
    let upper: Vec<f32> = bounds.iter().map(|b| b.1.max(p.adc)).collect();
    // Seeds also respect the radius limits, per rounded-radius bin.
    let seed = upper
        .iter()
        .enumerate()
        .map(|(b, &u)| {
            let r = b as f32;
            if b < key_bins && r >= p.min_res && r <= p.max_res {
                u
            } else {
                f32::INFINITY
            }
        })
        .collect();
    let radial = Radial {
        upper,
        seed,
        offset,
    };
    (radial, packed)
}

/// `f` with a mark per pixel of a panel of `n` pixels, all zero, and a list for the places it
/// marks; they are kept by the thread between panels and frames, and only the marked places
/// are cleared after: a fresh zeroed panel-sized buffer (512 KB for a JUNGFRAU module) is a
/// page fault every 4 KB, eight panels a frame.
fn with_marks<R>(n: usize, f: impl FnOnce((&mut [u8], &mut Vec<usize>)) -> R) -> R {
    thread_local! {
        static MARKS: RefCell<(Vec<u8>, Vec<usize>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    }
    MARKS.with(|m| {
        let mut fresh: (Vec<u8>, Vec<usize>) = Default::default();
        let mut guard = m.try_borrow_mut();
        let (mark, marked) = match guard.as_mut() {
            Ok(g) => &mut **g,
            Err(_) => &mut fresh,
        };
        if mark.len() < n {
            mark.resize(n, 0);
        }
        let out = f((&mut mark[..n], marked));
        for &i in marked.iter() {
            mark[i] = 0;
        }
        marked.clear();
        out
    })
}

/// Find peaks in panel `k`, growing regions from `seeds` (its pixels above their bin's
/// seed threshold, in frame order); `mark` is all zero for the panel's pixels, the places it
/// marks are listed in `marked` (see [`with_marks`]).
#[allow(clippy::too_many_arguments)]
fn panel_peaks(
    v: &[f32],
    g: &peaks::Geometry,
    rad: &Radial,
    p: &Pf8Params,
    panels: peaks::Panels,
    k: usize,
    seeds: &[usize],
    (mark, marked): (&mut [u8], &mut Vec<usize>),
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
    let mut out = vec![];
    let mut stack: Vec<(usize, usize)> = vec![];
    let mut region: Vec<(usize, usize)> = vec![];
    if rows < 3 || cols < 3 {
        return out;
    }
    for &i in seeds {
        let (r, c) = ((i - base) / cols, (i - base) % cols);
        if r == 0 || c == 0 || r == rows - 1 || c == cols - 1 || mark[r * cols + c] != 0 {
            continue;
        }
        prefetch_disc(v, g, (mark, base, cols), (r, c), 2 * p.bg_radius + 1);
        region.clear();
        stack.clear();
        stack.push((r, c));
        mark[r * cols + c] = 1;
        marked.push(r * cols + c);
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
                        marked.push(ny * cols + nx);
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
                (v[i] - rad.offset[g.radial().key[i] as usize]) as f64
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
                    || v[i] >= rad.upper[g.radial().key[i] as usize]
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
            (rad.offset[g.radial().key[idx(r, c)] as usize] as f64, 0.01)
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
    out
}

/// Ask for the rows of the local-background disc around pixel `(r, c)` of the panel at `base`
/// (`reach` rows and columns each way) while its region grows: on a frame with thousands of
/// peaks each disc's rows are a cache miss apiece in the frame, the key map, the mask and the
/// marks (a fifth of pf8 on the EIGER 4M frame, waiting on memory).
fn prefetch_disc(
    v: &[f32],
    g: &peaks::Geometry,
    (mark, base, cols): (&[u8], usize, usize),
    (r, c): (usize, usize),
    reach: usize,
) {
    let key = &g.radial().key;
    let (x0, x1) = (c.saturating_sub(reach), (c + reach).min(cols - 1));
    for y in r.saturating_sub(reach)..r + reach + 1 {
        let (a, b) = (y * cols + x0, y * cols + x1);
        prefetch(v, base + a);
        prefetch(v, base + b);
        prefetch(key, base + a);
        prefetch(&g.good, base + a);
        prefetch(mark, a);
    }
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
    let (rad, seeds) = thresholds_and_seeds(v, g, p);
    let n = panels.rows * panels.cols;
    let per_panel = (0..panels.panels)
        .into_par_iter()
        .map(|k| {
            let (from, to) = (
                seeds.partition_point(|&i| i < k * n),
                seeds.partition_point(|&i| i < (k + 1) * n),
            );
            with_marks(n, |marks| {
                panel_peaks(v, g, &rad, p, panels, k, &seeds[from..to], marks)
            })
        })
        .collect();
    PeakList::capped(per_panel, p.max_peaks)
}

/// The per-bin thresholds and the pixels above their bin's seed threshold, in frame order.
fn thresholds_and_seeds(v: &[f32], g: &peaks::Geometry, p: &Pf8Params) -> (Radial, Vec<usize>) {
    let radial = g.radial();
    if p.sample <= 1 {
        let (rad, packed) = radial_stats(v, g, p);
        // Seeds found on the packed frame: one threshold per run of a bin, not a lookup per
        // pixel.
        let seeds = radial.packing.above(&packed, &rad.seed);
        radial.packing.recycle(packed);
        return (rad, seeds);
    }
    // Statistics from the sample; seeds from a scan of the whole frame.
    let sample = g.sample(p.sample);
    let (rad, packed) = sigma_clipped(|b| sample.pack(v, b), &sample.packing, radial.key_bins, p);
    sample.packing.recycle(packed);
    let seeds = sample.above(v, &radial.key, &rad.seed);
    (rad, seeds)
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
        sample: c.get::<i64>("sample")? as usize,
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

    const PARAMS: Pf8Params = Pf8Params {
        adc: 300.0,
        snr: 6.0,
        min_pix: 2,
        max_pix: 200,
        bg_radius: 3,
        max_peaks: 2048,
        min_res: 0.0,
        max_res: 1e9,
        sample: 1,
    };

    /// A frame with what sigma clipping must cope with: a background whose spread grows with
    /// radius, a heavy tail (single photons), bright spots, NaNs, infinities and a masked
    /// stripe; few pixels per bin, so one pixel admitted wrongly moves a threshold visibly.
    fn hard_frame(rows: usize, cols: usize) -> (Vec<f32>, Vec<bool>) {
        let mut rnd = peaks::uniform(99);
        let v = (0..rows * cols)
            .map(|i| {
                let (r, c) = ((i / cols) as f32, (i % cols) as f32);
                let u = rnd();
                match (u * 1000.0) as u32 {
                    0 => f32::NAN,
                    1 => f32::INFINITY,
                    2..=4 => 2000.0 + 5000.0 * rnd(),
                    5..=60 => 150.0 + 30.0 * rnd(),
                    _ => 20.0 + (r + c) * 0.05 * (rnd() - 0.5) + 3.0 * rnd(),
                }
            })
            .collect();
        let good = (0..rows * cols).map(|i| i % cols != 17).collect();
        (v, good)
    }

    /// Five rounds of sigma clipping, each summing every pixel: what `radial_stats` must
    /// equal (it regroups the frame and skips runs whose admitted set cannot change).
    fn five_full_rounds(v: &[f32], g: &peaks::Geometry, snr: f32) -> Vec<(f32, f32)> {
        let r = g.radial();
        let mut bounds = vec![(f32::NEG_INFINITY, f32::INFINITY); r.key_bins + 1];
        for round in 0..5 {
            let mut sums = vec![(0u32, 0f64, 0f64); r.key_bins];
            for (&x, &k) in v.iter().zip(&r.key) {
                let k = k as usize;
                if k < r.key_bins && x > bounds[k].0 && x < bounds[k].1 {
                    sums[k].0 += 1;
                    sums[k].1 += x as f64;
                    sums[k].2 += (x as f64).powi(2);
                }
            }
            for (b, &(n, s, s2)) in sums.iter().enumerate() {
                if n == 0 {
                    if round == 0 {
                        bounds[b] = (f32::NEG_INFINITY, f32::INFINITY);
                    }
                    continue;
                }
                let mean = s / n as f64;
                let sd = (s2 / n as f64 - mean * mean).max(0.0).sqrt();
                bounds[b] = (
                    (mean - snr as f64 * sd) as f32,
                    (mean + snr as f64 * sd) as f32,
                );
            }
        }
        bounds
    }

    /// The regrouped, skipping statistics equal five plain passes (to float summation order:
    /// the same pixels are admitted in every round), and the seeds found on the packed frame
    /// are exactly the pixels above their bin's seed.
    #[test]
    fn radial_stats_equal_five_full_rounds() {
        let p = peaks::Panels {
            panels: 2,
            rows: 150,
            cols: 400,
        };
        let (v, good) = hard_frame(p.panels * p.rows, p.cols);
        let g = peaks::Geometry::of_maps(p, good, None);
        for snr in [2.0, 4.0, 6.0] {
            let params = Pf8Params { snr, ..PARAMS };
            let (rad, packed) = radial_stats(&v, &g, &params);
            let want = five_full_rounds(&v, &g, snr);
            for (b, (&u, w)) in rad
                .upper
                .iter()
                .zip(&want)
                .enumerate()
                .take(g.radial().key_bins)
            {
                let w = w.1.max(params.adc);
                assert!(
                    u == w || (u - w).abs() <= 1e-4 * w.abs().max(1.0),
                    "snr {snr} bin {b}: {u} vs {w}"
                );
            }
            let seeds = g.radial().packing.above(&packed, &rad.seed);
            let r = g.radial();
            let plain: Vec<usize> = (0..v.len())
                .filter(|&i| v[i] > rad.seed[r.key[i] as usize])
                .collect();
            assert_eq!(seeds, plain, "snr {snr}");
            assert!(!seeds.is_empty());
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]
        /// On integer counts (whose sums are exact in any order) the regrouped statistics are
        /// bit-identical to five full rounds, and the seeds to a plain scan, whatever the
        /// frame's size, panels, mask, NaNs, infinities and bright pixels; `find` never panics,
        /// with every pixel or a sample (whose seeds are exactly the pixels above its thresholds).
        #[test]
        fn regrouped_stats_equal_full_rounds_on_counts(
            panels in 1usize..4,
            rows in 1usize..40,
            cols in 1usize..70,
            snr in 0.5f32..8.0,
            seed in proptest::prelude::any::<u64>(),
        ) {
            let p = peaks::Panels { panels, rows, cols };
            let mut s = seed | 1;
            let mut rnd = || {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s
            };
            let v: Vec<f32> = (0..p.pixels())
                .map(|_| match rnd() % 100 {
                    0 => f32::NAN,
                    1 => f32::INFINITY,
                    2 => f32::NEG_INFINITY,
                    3..=5 => (500 + rnd() % 5000) as f32,
                    _ => (rnd() % 40) as f32,
                })
                .collect();
            let good = (0..p.pixels()).map(|_| rnd() % 13 != 0).collect();
            let g = peaks::Geometry::of_maps(p, good, None);
            let params = Pf8Params { snr, adc: 20.0, ..PARAMS };
            let (rad, packed) = radial_stats(&v, &g, &params);
            let want = five_full_rounds(&v, &g, snr);
            let r = g.radial();
            for (b, (u, w)) in rad.upper.iter().zip(&want).enumerate().take(r.key_bins) {
                proptest::prop_assert_eq!(u.to_bits(), w.1.max(params.adc).to_bits(), "bin {}", b);
            }
            let plain: Vec<usize> = (0..v.len()).filter(|&i| v[i] > rad.seed[r.key[i] as usize]).collect();
            proptest::prop_assert_eq!(r.packing.above(&packed, &rad.seed), plain);
            find(&v, p, &g, &params);
            // Sampled statistics on any frame, rows fewer than the step included: seeds are
            // still exactly the pixels above their bin's (sampled) threshold.
            let sampled = Pf8Params { sample: 1 + (seed % 7) as usize, ..params };
            let (rad, seeds) = thresholds_and_seeds(&v, &g, &sampled);
            let plain: Vec<usize> = (0..v.len()).filter(|&i| v[i] > rad.seed[r.key[i] as usize]).collect();
            proptest::prop_assert_eq!(seeds, plain);
            find(&v, p, &g, &sampled);
        }
    }

    /// Statistics from every fourth row find the peaks planted on a noisy radial background,
    /// the same ones every pixel finds, and nothing else; the thresholds agree to a few
    /// percent of the spread.
    #[test]
    fn sampled_statistics_find_the_same_peaks() {
        let p = peaks::Panels {
            panels: 2,
            rows: 256,
            cols: 512,
        };
        let mut rnd = peaks::uniform(7);
        let (h, w) = (p.panels * p.rows, p.cols);
        let mut v: Vec<f32> = (0..p.pixels())
            .map(|i| {
                let (y, x) = (
                    (i / w) as f32 - h as f32 / 2.0,
                    (i % w) as f32 - w as f32 / 2.0,
                );
                let noise: f32 = (0..4).map(|_| rnd()).sum::<f32>() - 2.0;
                400.0 - 0.5 * y.hypot(x) + 20.0 * noise
            })
            .collect();
        let mut planted = vec![];
        for k in 0..24 {
            let (y, x) = (20 + (k * 37) % (h - 40), 20 + (k * 53) % (w - 40));
            for (dy, dx, a) in [
                (0, 0, 3000.0),
                (0, 1, 1500.0),
                (1, 0, 1500.0),
                (1, 1, 800.0),
            ] {
                v[(y + dy) * w + x + dx] += a;
            }
            planted.push((y, x));
        }
        let g = peaks::Geometry::of_maps(p, vec![true; p.pixels()], None);
        let params = Pf8Params { adc: 0.0, ..PARAMS };
        let full = find(&v, p, &g, &params);
        let four = Pf8Params {
            sample: 4,
            ..params
        };
        let sampled = find(&v, p, &g, &four);
        // The sample's sums merge in block order: the same peaks, bit for bit, at any thread
        // count.
        for t in [1, 3] {
            let again = threads::install(t, || find(&v, p, &g, &four));
            assert!(again.peaks == sampled.peaks, "threads={t}");
        }
        let at = |l: &PeakList| {
            let mut c: Vec<(usize, usize)> = l
                .peaks
                .iter()
                .map(|q| (q.y.floor() as usize, q.x.floor() as usize))
                .collect();
            c.sort();
            c
        };
        planted.sort();
        assert_eq!(at(&full), planted);
        assert_eq!(at(&sampled), planted);
        let (all, _) = thresholds_and_seeds(&v, &g, &params);
        let (some, _) = thresholds_and_seeds(
            &v,
            &g,
            &Pf8Params {
                sample: 4,
                ..params
            },
        );
        for b in 5..g.radial().key_bins - 5 {
            let (a, s) = (all.upper[b] - all.offset[b], some.upper[b] - some.offset[b]);
            assert!((a - s).abs() < 0.15 * a, "bin {b}: {a} vs {s}");
        }
    }

    /// Radii past the 16-bit keys (a radius map in metres·10⁶, say) share the last bin and
    /// find peaks there without indexing past the per-bin tables.
    #[test]
    fn radii_past_sixteen_bits_find_peaks() {
        let p = peaks::Panels {
            panels: 1,
            rows: 64,
            cols: 64,
        };
        let mut v = vec![10.0f32; p.pixels()];
        for (i, x) in v.iter_mut().enumerate() {
            *x += (i % 7) as f32;
        }
        for (y, x) in [(20, 20), (20, 21), (21, 20), (21, 21)] {
            v[y * 64 + x] = 5000.0;
        }
        let radius = (0..p.pixels())
            .map(|i| 70_000.0 + i as f32 * 1e-3)
            .collect();
        let g = peaks::Geometry::of_maps(p, vec![true; p.pixels()], Some(radius));
        let found = find(&v, p, &g, &PARAMS);
        assert_eq!(found.peaks.len(), 1);
    }

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
        let mut rnd = peaks::uniform(12345);
        let v: Vec<f32> = (0..p.pixels()).map(|_| 1.0e6 + rnd() * 37.3).collect();
        let g = peaks::GeometrySource::new(Purpose::Encode, "", "")
            .get("pf8", p)
            .unwrap();
        let nb = g.radial().key_bins + 1;
        let open = vec![(f32::NEG_INFINITY, f32::INFINITY); nb];
        let sums = |t: usize| {
            threads::install(t, || {
                let packing = &g.radial().packing;
                packing.sums(&mut packing.pack(&v, &open), &open, nb)
            })
            .iter()
            .map(|&(n, a, b)| (n, a.to_bits(), b.to_bits()))
            .collect::<Vec<_>>()
        };
        let one = sums(1);
        for t in [2, 7] {
            assert!(sums(t) == one, "threads={t}");
        }
        let stats = |t: usize| {
            let r = threads::install(t, || radial_stats(&v, &g, &PARAMS).0);
            (r.upper, r.seed, r.offset)
        };
        assert!(stats(7) == stats(1));
    }
}
