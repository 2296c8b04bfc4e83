//! What peak finders share: the peak record and its byte form, the panel view of a frame,
//! and the per-pixel mask and radius maps they honour.
//!
//! A finder is a registered codec whose encoder turns one frame (`[panels, rows, cols]` or
//! `[rows, cols]`, any numeric dtype) into a peak list. That keeps finders in the registry
//! with typed, documented options, and lets `roibin(peaks=pf8(snr=6))` treat them as data.
//! Peak lists are results, not encodings: a finder's decoder refuses with an explanation.

use super::elems;
use super::radial_pack::Packing;
use super::radial_sample::Sample;
use rayon::prelude::*;
use roibin_registry::stream::Reader;
use roibin_registry::{
    ArrayMeta, Codec, Config, DType, DataKind, Error, OptionSpec, OptionType, Purpose, Result,
};
use std::sync::{Arc, Mutex, OnceLock};

/// One peak, in the frame's raw (unassembled, panels stacked along rows) coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peak {
    /// Centroid row in the stacked frame (panel · rows + row).
    pub y: f32,
    /// Centroid column.
    pub x: f32,
    /// Integrated intensity above the local background.
    pub total: f32,
    /// Largest pixel above the local background.
    pub max: f32,
    /// Pixels in the peak.
    pub npix: u32,
    /// Chebyshev distance from the rounded centre to the farthest peak pixel.
    pub extent: u32,
}

impl Peak {
    /// The peak of the panel pixels `region` (row, column) with centroid `(cy, cx)` in panel
    /// coordinates; `row0` is the panel's first row in the stacked frame.
    pub fn of_region(
        region: &[(usize, usize)],
        (cy, cx): (f64, f64),
        row0: usize,
        total: f64,
        max: f64,
    ) -> Peak {
        let (ry, rx) = (cy.round() as i64, cx.round() as i64);
        let extent = region
            .iter()
            .map(|&(y, x)| (y as i64 - ry).abs().max((x as i64 - rx).abs()))
            .max()
            .unwrap_or(0) as u32;
        Peak {
            y: (row0 as f64 + cy) as f32,
            x: cx as f32,
            total: total as f32,
            max: max as f32,
            npix: region.len() as u32,
            extent,
        }
    }
}

/// A finder's result for one frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeakList {
    /// Peaks that passed every test, including those beyond the cap.
    pub found: usize,
    /// The first `max_peaks` of them, in scan order.
    pub peaks: Vec<Peak>,
}

impl PeakList {
    /// Byte form: `u32 found · u32 n · n × (f32 y, f32 x, f32 total, f32 max, u32 npix, u32 extent)`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.found as u32).to_le_bytes());
        out.extend_from_slice(&(self.peaks.len() as u32).to_le_bytes());
        for p in &self.peaks {
            for v in [p.y, p.x, p.total, p.max] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&p.npix.to_le_bytes());
            out.extend_from_slice(&p.extent.to_le_bytes());
        }
    }

    /// Peaks of every panel, the brightest `max` kept (by integrated intensity; all counted),
    /// in scan order: a sensitive finder on a crowded frame must not lose the bright peaks at
    /// the bottom of the frame to weak ones at the top.
    pub fn capped(per_panel: Vec<Vec<Peak>>, max: usize) -> PeakList {
        let mut all: Vec<(usize, Peak)> = per_panel.into_iter().flatten().enumerate().collect();
        let found = all.len();
        if found > max {
            all.sort_by(|a, b| b.1.total.total_cmp(&a.1.total).then(a.0.cmp(&b.0)));
            all.truncate(max);
            all.sort_by_key(|a| a.0);
        }
        PeakList {
            found,
            peaks: all.into_iter().map(|(_, p)| p).collect(),
        }
    }

    /// Parse [`PeakList::write`]'s output.
    pub fn read(bytes: &[u8]) -> Result<PeakList> {
        let mut r = Reader::new(bytes, "peaks");
        let found = r.u32()? as usize;
        let n = r.u32()? as usize;
        if n > bytes.len() / 24 {
            return Err(Error::corrupt("peaks", "peak count exceeds the data"));
        }
        let mut peaks = Vec::with_capacity(n);
        for _ in 0..n {
            let f = |r: &mut Reader| r.u32().map(f32::from_bits);
            peaks.push(Peak {
                y: f(&mut r)?,
                x: f(&mut r)?,
                total: f(&mut r)?,
                max: f(&mut r)?,
                npix: r.u32()?,
                extent: r.u32()?,
            });
        }
        Ok(PeakList { found, peaks })
    }
}

/// One-to-one matching of two peak lists, as spot finders are compared: each peak of `a`, in
/// order, takes the nearest free peak of `b` within `tol` pixels. Returns the (a, b) index
/// pairs.
pub fn match_peaks(a: &[Peak], b: &[Peak], tol: f32) -> Vec<(usize, usize)> {
    // Candidates by row, so each peak looks only at the band within `tol` of it (an EIGER
    // frame has 3000 spots: all pairs cost 10⁷ distances); the nearest wins, ties to the
    // lower index, as a scan of all of `b` in order would choose.
    let mut by_row: Vec<usize> = (0..b.len()).collect();
    by_row.sort_by(|&i, &j| b[i].y.total_cmp(&b[j].y).then(i.cmp(&j)));
    let mut used = vec![false; b.len()];
    let mut out = vec![];
    for (i, p) in a.iter().enumerate() {
        // The band a little wider than `tol`: f32 rounding of y ± tol must not drop a peak
        // whose distance rounds to within it; the distance test below decides.
        let band = tol * 1.001 + 1e-3;
        let lo = by_row.partition_point(|&j| b[j].y < p.y - band);
        let best = by_row[lo..]
            .iter()
            .take_while(|&&j| b[j].y <= p.y + band)
            .filter(|&&j| !used[j])
            .map(|&j| (j, (b[j].y - p.y).hypot(b[j].x - p.x)))
            .filter(|&(_, d)| d <= tol)
            .min_by(|x, y| x.1.total_cmp(&y.1).then(x.0.cmp(&y.0)));
        if let Some((j, _)) = best {
            used[j] = true;
            out.push((i, j));
        }
    }
    out
}

/// A frame seen as `panels` panels of `rows × cols`, stacked along rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Panels {
    pub panels: usize,
    pub rows: usize,
    pub cols: usize,
}

impl Panels {
    /// The panel view of a finder's input: `[rows, cols]` is one panel, `[panels, rows, cols]` many.
    pub fn of(codec: &str, m: &ArrayMeta) -> Result<Panels> {
        let s = &m.shape;
        let p = match s.len() {
            2 => Panels {
                panels: 1,
                rows: s[0],
                cols: s[1],
            },
            3 => Panels {
                panels: s[0],
                rows: s[1],
                cols: s[2],
            },
            r => {
                return Err(Error::unsupported(
                    codec,
                    format!("rank {r}"),
                    "a finder takes one frame: [rows, cols] or [panels, rows, cols]",
                ))
            }
        };
        if m.dtype.size() > 8 || p.pixels() == 0 {
            return Err(Error::unsupported(codec, format!("{m}"), "an empty frame"));
        }
        Ok(p)
    }

    pub fn pixels(&self) -> usize {
        self.panels * self.rows * self.cols
    }
}

/// Codecs whose output is a peak list (not decodable): `roibin(peaks=...)` takes them; a
/// dataset's filter cannot be one.
pub const FINDERS: &[&str] = &["pf8", "pfv3", "dispersion", "dispersion_extended", "given"];

/// The mask and radius options every finder has.
pub const MASK: OptionSpec = OptionSpec {
    name: "mask",
    ty: OptionType::Text,
    default: "",
    doc: "path of a .npy mask of one frame in raw layout (nonzero = good pixel); non-finite pixels are always bad",
};
pub const RADIUS: OptionSpec = OptionSpec {
    name: "radius",
    ty: OptionType::Text,
    default: "",
    doc: "path of a .npy map of each pixel's distance from the beam in pixels (raw layout); default: distance from the frame's centre",
};

/// Per-pixel facts of one frame layout: good pixels, and radius bins for the finders that
/// use radial statistics (worked out on first use: dispersion and pfv3 never need them).
#[derive(Debug)]
pub struct Geometry {
    pub good: Vec<bool>,
    panels: Panels,
    /// The `radius` file's map; None: distance from the frame's centre.
    radius: Option<Vec<f32>>,
    radial: OnceLock<RadialBins>,
    /// Frame samples for radial statistics, one per step asked for (see [`Geometry::sample`]).
    samples: Mutex<Vec<Arc<Sample>>>,
}

/// Each pixel's rounded radius, the bin of radial statistics.
#[derive(Debug)]
pub struct RadialBins {
    pub bin: Vec<u32>,
    pub nbins: usize,
    /// `bin` for good pixels, `key_bins` for masked ones: per-bin tables get one extra entry
    /// that never passes a test, so the hot loops need no mask branch. 16 bits: a pass over a
    /// frame streams 6 bytes a pixel, not 8.
    pub key: Vec<u16>,
    /// Bins `key` tells apart: `nbins`, capped at 65 535 (radii past 65 534 pixels, larger than
    /// any detector's, share the last bin).
    pub key_bins: usize,
    /// Where a frame's pixels go when regrouped by `key`.
    pub packing: Packing,
}

impl Geometry {
    /// A geometry from maps in memory (`radius` None: distance from the frame's centre).
    #[cfg(test)]
    pub(crate) fn of_maps(panels: Panels, good: Vec<bool>, radius: Option<Vec<f32>>) -> Geometry {
        Geometry {
            good,
            panels,
            radius,
            radial: OnceLock::new(),
            samples: Mutex::default(),
        }
    }

    /// The sample of every `step`-th row for radial statistics, built on first call for
    /// that step and kept (a finder asks for one step, so one is built).
    pub fn sample(&self, step: usize) -> Arc<Sample> {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = samples.iter().find(|s| s.step == step) {
            return s.clone();
        }
        let r = self.radial();
        let s = Arc::new(Sample::new(
            &r.key,
            self.panels.cols,
            step,
            r.key_bins as u16,
            r.key_bins + 1,
        ));
        samples.push(s.clone());
        s
    }

    /// The radius bins, computed on first call.
    pub fn radial(&self) -> &RadialBins {
        self.radial.get_or_init(|| {
            let p = self.panels;
            let (h, w) = ((p.panels * p.rows) as f32, p.cols as f32);
            let radius = |i: usize| match &self.radius {
                Some(map) => map[i],
                None => {
                    let (y, x) = ((i / p.cols) as f32, (i % p.cols) as f32);
                    ((y - (h - 1.0) / 2.0).powi(2) + (x - (w - 1.0) / 2.0).powi(2)).sqrt()
                }
            };
            // In parallel: a 4 M-pixel frame's bins took 20 ms, serial at the start of a run.
            let bin: Vec<u32> = (0..p.pixels())
                .into_par_iter()
                .map(|i| {
                    let r = radius(i);
                    if r.is_finite() && r >= 0.0 {
                        r.round().min(1e6) as u32
                    } else {
                        0
                    }
                })
                .collect();
            let nbins = bin.par_iter().copied().max().unwrap_or(0) as usize + 1;
            let key_bins = nbins.min(u16::MAX as usize);
            let key: Vec<u16> = bin
                .par_iter()
                .zip(&self.good)
                .map(|(&b, &ok)| {
                    if ok {
                        (b as usize).min(key_bins - 1) as u16
                    } else {
                        key_bins as u16
                    }
                })
                .collect();
            let packing = Packing::new(&key, key_bins as u16, key_bins + 1);
            RadialBins {
                bin,
                nbins,
                key,
                key_bins,
                packing,
            }
        })
    }
}

/// Mask and radius files, resolved lazily against the first frame's layout and kept.
/// Encode-time inputs: a source built for decoding never opens them.
#[derive(Debug)]
pub struct GeometrySource {
    purpose: Purpose,
    mask: String,
    radius: String,
    /// The finder uses radial statistics: their bins are built with the geometry, when it is
    /// first loaded (at dataset creation, every worker idle), not by the first frame's worker
    /// while the others wait on it.
    radial: bool,
    loaded: Mutex<Option<(Panels, Arc<Geometry>)>>,
}

impl GeometrySource {
    pub fn new(purpose: Purpose, mask: &str, radius: &str) -> Self {
        GeometrySource {
            purpose,
            mask: mask.to_string(),
            radius: radius.to_string(),
            radial: false,
            loaded: Mutex::new(None),
        }
    }

    /// Build the radial statistics' bins with the geometry (see the field).
    pub fn with_radial_bins(mut self) -> Self {
        self.radial = true;
        self
    }

    /// The geometry for frames of `p`; errors name the file and the sizes that disagree.
    pub fn get(&self, codec: &str, p: Panels) -> Result<Arc<Geometry>> {
        if self.purpose == Purpose::Decode {
            return Err(refuse_decode(codec));
        }
        let mut g = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((lp, geo)) = g.as_ref() {
            if *lp == p {
                return Ok(geo.clone());
            }
        }
        // On the process's pool (the caller's, or all cores at dataset creation).
        let geo = roibin_registry::threads::install(0, || self.load(codec, p))?;
        *g = Some((p, geo.clone()));
        Ok(geo)
    }

    fn load(&self, codec: &str, p: Panels) -> Result<Arc<Geometry>> {
        let n = p.pixels();
        let good = if self.mask.is_empty() {
            vec![true; n]
        } else {
            let m = super::npy::read_map(codec, &self.mask, p)?;
            m.par_iter().map(|&v| v != 0.0).collect()
        };
        // Read now, so that a missing or wrong-shaped file fails when the dataset is created.
        let radius = if self.radius.is_empty() {
            None
        } else {
            Some(
                super::npy::read_map(codec, &self.radius, p)?
                    .par_iter()
                    .map(|&v| v as f32)
                    .collect(),
            )
        };
        let geo = Arc::new(Geometry {
            good,
            panels: p,
            radius,
            radial: OnceLock::new(),
            samples: Mutex::default(),
        });
        if self.radial {
            geo.radial();
        }
        Ok(geo)
    }
}

pub use super::npy::{write_npy, NpyData};

/// A peak finder as a codec: its parameters, the geometry it loads (mask, radius map), its
/// threads, and the algorithm. `pf8` and `pfv3` are this with their own `find`; the output is a
/// peak list, so decoding is refused.
pub struct Finder<P> {
    name: &'static str,
    params: P,
    geo: GeometrySource,
    threads: usize,
    find: fn(&[f32], Panels, &Geometry, &P) -> PeakList,
}

impl<P: Send + Sync + 'static> Finder<P> {
    /// The codec for `params`, with the geometry and threads options every finder declares.
    /// `radial`: `find` uses radial statistics ([`Geometry::radial`]).
    pub fn build(
        name: &'static str,
        c: &Config,
        params: P,
        radial: bool,
        find: fn(&[f32], Panels, &Geometry, &P) -> PeakList,
    ) -> Result<Box<dyn Codec>> {
        let geo = GeometrySource::new(
            c.purpose,
            &c.get_opt::<String>("mask")?.unwrap_or_default(),
            &c.get_opt::<String>("radius")?.unwrap_or_default(),
        );
        Ok(Box::new(Finder {
            name,
            params,
            geo: if radial { geo.with_radial_bins() } else { geo },
            threads: c.threads()?,
            find,
        }))
    }
}

impl<P: Send + Sync> Codec for Finder<P> {
    fn output(&self, input: &DataKind) -> Result<DataKind> {
        check_input(self.name, input, &self.geo)
    }

    /// Pixels as f32, the geometry for the frame's panels, then `find` on the finder's threads.
    fn encode(&self, data: &[u8], input: &DataKind, out: &mut Vec<u8>) -> Result<()> {
        let m = input.array(self.name)?;
        let p = Panels::of(self.name, m)?;
        let g = self.geo.get(self.name, p)?;
        let mut converted = Vec::new();
        // Float32 frames as they are when aligned (a 4 M-pixel frame's copy was 16 MB a frame
        // to allocate, fault in and fill); other types converted, integer sentinels (gaps,
        // bad pixels, overloads) becoming NaN.
        let pixels: &[f32] = match bytemuck::try_cast_slice::<u8, f32>(data) {
            Ok(v) if m.dtype == DType::F32 && cfg!(target_endian = "little") => v,
            _ => {
                elems::to_f32(data, m.dtype, &mut converted);
                &converted
            }
        };
        roibin_registry::threads::install(self.threads, || {
            (self.find)(pixels, p, &g, &self.params)
        })
        .write(out);
        Ok(())
    }

    fn decode(&self, _: &[u8], _: &DataKind, _: &mut Vec<u8>) -> Result<()> {
        Err(refuse_decode(self.name))
    }
}

/// Run `panel_peaks(pixels, good, rows, cols, first_row)` on every panel of a frame in
/// parallel and keep the brightest `max_peaks` of all: the frame loop of finders that work
/// panel by panel (pfv3, dispersion).
pub fn per_panel(
    v: &[f32],
    panels: Panels,
    g: &Geometry,
    max_peaks: usize,
    panel_peaks: impl Fn(&[f32], &[bool], usize, usize, usize) -> Vec<Peak> + Sync,
) -> PeakList {
    let per = panels.rows * panels.cols;
    let found = (0..panels.panels)
        .into_par_iter()
        .map(|k| {
            let s = k * per..(k + 1) * per;
            let good: Vec<bool> = (v[s.clone()].iter().zip(&g.good[s.clone()]))
                .map(|(&x, &ok)| ok & x.is_finite())
                .collect();
            panel_peaks(&v[s], &good, panels.rows, panels.cols, k * panels.rows)
        })
        .collect();
    PeakList::capped(found, max_peaks)
}

/// Pixel `i` may take part in a peak or a background estimate.
#[inline]
pub fn usable(g: &Geometry, v: &[f32], i: usize) -> bool {
    g.good[i] && v[i].is_finite()
}

/// The decoder of every finder: peak lists are results, not encodings.
pub fn refuse_decode(codec: &str) -> Error {
    Error::unsupported(
        codec,
        "decoding",
        "a peak finder produces a peak list, not an encoding; use it inside roibin(peaks=...) or run `roibin peaks`",
    )
}

/// Finder output kind check shared by every finder. Loads the mask and radius map now, so a
/// missing or wrong-shaped file fails when the dataset is created (HDF5 filters are optional
/// in h5py: an error while writing would store the chunk uncompressed instead).
pub fn check_input(codec: &str, input: &DataKind, geo: &GeometrySource) -> Result<DataKind> {
    let p = Panels::of(codec, input.array(codec)?)?;
    if geo.purpose == Purpose::Encode {
        geo.get(codec, p)?;
    }
    Ok(DataKind::Bytes)
}

/// Test frames' random numbers: uniform in [0, 1), the same sequence for a seed (a 64-bit
/// LCG's top 24 bits).
#[cfg(test)]
pub(crate) fn uniform(seed: u64) -> impl FnMut() -> f32 {
    let mut s = seed;
    move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 40) as f32 / (1u64 << 24) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys fit 16 bits: radii past 65 534 pixels share the last bin, masked pixels get the
    /// extra one, and small maps keep one bin per rounded radius.
    #[test]
    fn radial_keys_fit_sixteen_bits() {
        let panels = Panels {
            panels: 1,
            rows: 2,
            cols: 3,
        };
        let geometry = |radius: Vec<f32>| {
            Geometry::of_maps(
                panels,
                vec![true, true, true, true, false, true],
                Some(radius),
            )
        };
        let far = geometry(vec![0.0, 2.4, 70_000.0, 900_000.0, 5.0, 65_533.6]);
        let r = far.radial();
        assert_eq!((r.nbins, r.key_bins), (900_001, 65_535));
        assert_eq!(r.key, [0, 2, 65_534, 65_534, 65_535, 65_534]);
        let near = geometry(vec![0.0, 2.4, 7.0, 9.0, 5.0, 3.6]);
        let r = near.radial();
        assert_eq!((r.nbins, r.key_bins), (10, 10));
        assert_eq!(r.key, [0, 2, 7, 9, 10, 4]);
    }

    /// The banded matcher pairs exactly as a scan of every pair in order does.
    #[test]
    fn banded_matching_equals_all_pairs() {
        let mut rnd = uniform(3);
        let peak = |y: f32, x: f32| Peak {
            y,
            x,
            total: 1.0,
            max: 1.0,
            npix: 1,
            extent: 0,
        };
        let a: Vec<Peak> = (0..400).map(|_| peak(rnd() * 60.0, rnd() * 60.0)).collect();
        let mut b: Vec<Peak> = a
            .iter()
            .map(|p| peak(p.y + rnd() * 2.0 - 1.0, p.x + rnd() * 2.0 - 1.0))
            .collect();
        b.push(peak(a[0].y, a[0].x)); // a tie-prone duplicate
        b.push(peak(f32::NAN, 3.0));
        let all_pairs = |a: &[Peak], b: &[Peak], tol: f32| {
            let mut used = vec![false; b.len()];
            let mut out = vec![];
            for (i, p) in a.iter().enumerate() {
                let best = b
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| !used[*j])
                    .map(|(j, q)| (j, (q.y - p.y).hypot(q.x - p.x)))
                    .filter(|&(_, d)| d <= tol)
                    .min_by(|x, y| x.1.total_cmp(&y.1));
                if let Some((j, _)) = best {
                    used[j] = true;
                    out.push((i, j));
                }
            }
            out
        };
        for tol in [0.5, 1.5, 3.0] {
            assert_eq!(
                match_peaks(&a, &b, tol),
                all_pairs(&a, &b, tol),
                "tol {tol}"
            );
        }
    }
}
