//! `roibin bench --science`: does a lossy graph keep the science? Runs the peak finder on the
//! original and on the decoded frames and reports what crystallographers look at: recall and
//! precision of the peaks, integrated-intensity error of matched peaks, what happened to the
//! true weak peaks that no finder saw (they lived in the background), background PSNR and mean
//! pixel error, ratio vs the uint16 raw size and vs the input, and encode/decode speed.

use crate::cmd::synth as synth_cmd;
use crate::cxi::Detector;
use crate::h5io::File;
use anyhow::{bail, Context, Result};
use roibin_compressors::detector::peaks::{match_peaks, Peak, PeakList};
use roibin_compressors::detector::roibin::frames as roibin_frames;
use roibin_registry::{container, ArrayMeta, DType, DataKind, Pipeline};
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Run the science check (the only bench mode; kernels are in `cargo bench`)
    #[arg(long)]
    science: bool,
    /// CXI FILE (default: JUNGFRAU-like frames made with `roibin synth` in --out)
    input: Option<String>,
    /// Dataset of calibrated frames (frames × rows × cols)
    #[arg(long, default_value = "/entry_1/data_1/data")]
    dataset: String,
    /// Graph to check (default: roibin with the finder below, 2×2 binning, sz abs 90)
    #[arg(long)]
    spec: Option<String>,
    /// Finder run on original and decoded frames (default: pf8 with the input's sidecar mask and radius map)
    #[arg(long)]
    finder: Option<String>,
    /// Rows per panel (default: 512 for 4096-row frames, 185 for 5920, else the frame)
    #[arg(long)]
    panel_rows: Option<usize>,
    /// Frames to check (default: all)
    #[arg(long)]
    frames: Option<usize>,
    /// Folder for the default sample data
    #[arg(long, default_value = "bench-out")]
    out: String,
    /// Compare with frames another codec decoded (FILE:DATASET, same shape) instead of
    /// encoding with --spec: the same science check for any compressor's output
    #[arg(long)]
    decoded: Option<String>,
    /// Print every lost and invented peak
    #[arg(long)]
    verbose: bool,
    /// Also write the figures as JSON to this file
    #[arg(long)]
    json: Option<String>,
}

/// Peaks closer than this (pixels) are the same peak.
const MATCH_PX: f32 = 1.5;

fn floats(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
        .collect()
}

/// True peaks: `[y, x, adu]` per frame, when the file has `/entry_1/truth_1`.
fn truth(file: &str) -> Option<Vec<Vec<[f32; 3]>>> {
    let f = hdf5::File::open(file).ok()?;
    let g = f.group("/entry_1/truth_1").ok()?;
    let n: Vec<i64> = g.dataset("nPeaks").ok()?.read_raw().ok()?;
    let ys = g.dataset("peakYPosRaw").ok()?;
    let w = *ys.shape().get(1)?;
    let y: Vec<f32> = ys.read_raw().ok()?;
    let x: Vec<f32> = g.dataset("peakXPosRaw").ok()?.read_raw().ok()?;
    let a: Vec<f32> = g.dataset("peakTotalIntensity").ok()?.read_raw().ok()?;
    Some(
        n.iter()
            .enumerate()
            .map(|(i, &k)| {
                (0..k.max(0) as usize)
                    .map(|j| [y[i * w + j], x[i * w + j], a[i * w + j]])
                    .collect()
            })
            .collect(),
    )
}

/// The science figures of one run.
#[derive(Debug, Default, serde::Serialize)]
pub struct Science {
    pub spec: String,
    pub frames: usize,
    pub peaks_original: usize,
    pub peaks_decoded: usize,
    pub recall: f64,
    pub precision: f64,
    pub intensity_err_median: f64,
    pub intensity_err_max: f64,
    pub weak_true_peaks: usize,
    pub weak_err_photons_mean: f64,
    pub weak_err_photons_max: f64,
    pub background_psnr_db: f64,
    pub background_mpe_adu: f64,
    /// Whether every window pixel came back bit-exact; `None` when no window was checked
    /// (a graph without windows, or no peaks), never a vacuous `true`.
    pub window_pixels_exact: Option<bool>,
    /// Window pixels compared.
    pub window_pixels_checked: usize,
    pub ratio_vs_u16: f64,
    pub ratio_vs_input: f64,
    pub write_mb_s: f64,
    pub read_mb_s: f64,
}

impl Args {
    /// The science check of `spec` (the default ROIBIN graph when `None`) on `input`'s
    /// calibrated frames, as `roibin bench --science --spec SPEC input` runs it.
    pub fn science_of(input: &str, spec: Option<&str>) -> Args {
        Args {
            science: true,
            input: Some(input.to_string()),
            dataset: "/entry_1/data_1/data".into(),
            spec: spec.map(str::to_string),
            finder: None,
            panel_rows: None,
            frames: None,
            out: "bench-out".into(),
            decoded: None,
            verbose: false,
            json: None,
        }
    }
}

pub fn run(a: Args) -> Result<()> {
    if !a.science {
        bail!("`roibin bench` runs the science check: add --science (kernel benchmarks are `cargo bench`)");
    }
    let (s, finder_spec, input, has_truth) = science(&a)?;
    print_science(&s, &finder_spec, &input, has_truth);
    if let Some(j) = &a.json {
        std::fs::write(j, serde_json::to_string_pretty(&s)?)?;
    }
    Ok(())
}

/// Runs the check; returns the figures, the finder used, the input file and whether it had
/// true peaks.
pub fn science(a: &Args) -> Result<(Science, String, String, bool)> {
    let _ = roibin_compressors::codec_names();
    let input = match &a.input {
        Some(f) => f.clone(),
        None => {
            std::fs::create_dir_all(&a.out)?;
            let f = format!("{}/jungfrau.h5", a.out);
            if !std::path::Path::new(&f).exists() {
                eprintln!(
                    "{}",
                    synth_cmd::write_cxi(&f, &Detector::JUNGFRAU_4M, 8, 1, 1)?
                );
            }
            f
        }
    };
    let src = File::open(&input)?.dataset(&a.dataset)?;
    if src.dtype != DType::F32 || src.shape.len() != 3 {
        bail!(
            "{input}:{} is {} {:?}: the science check takes calibrated f32 frames (frames × rows × cols)",
            a.dataset,
            src.dtype,
            src.shape
        );
    }
    let (n_all, h, w) = (src.shape[0], src.shape[1], src.shape[2]);
    let n = a.frames.unwrap_or(n_all).min(n_all);
    let prows = a.panel_rows.unwrap_or(match h {
        4096 => 512,
        5920 => 185,
        _ => h,
    });
    if h % prows != 0 {
        bail!("--panel-rows {prows} does not divide the frame's {h} rows");
    }
    let finder_spec = a
        .finder
        .clone()
        .unwrap_or_else(|| synth_cmd::finder_spec(&input));
    let spec = a.spec.clone().unwrap_or_else(|| {
        format!("roibin(peaks={finder_spec},panel_rows={prows},exact_above=250,background=bin(2,2)|sz(abs=90))")
    });
    let frame_meta = ArrayMeta::new(DType::F32, vec![h, w]);
    let pipe = Pipeline::from_spec(
        &roibin_registry::spec::spec_text(&spec)?,
        &DataKind::Array(frame_meta.clone()),
    )?;
    let finder = Pipeline::from_spec(
        &finder_spec,
        &DataKind::Array(ArrayMeta::new(DType::F32, vec![h / prows, prows, w])),
    )
    .context("building the finder")?;
    let truth = truth(&input);
    let other = match &a.decoded {
        Some(t) => {
            let (f, d) = crate::h5io::split_target(t);
            let ds = File::open(f)?.dataset(d.unwrap_or(&a.dataset))?;
            if ds.dtype != DType::F32 || ds.shape[..] != src.shape[..] {
                bail!(
                    "{t} is {} {:?}, the input {:?} f32",
                    ds.dtype,
                    ds.shape,
                    src.shape
                );
            }
            Some(ds)
        }
        None => None,
    };
    let pb = crate::transcode::progress(n, "science");
    let (mut enc_s, mut dec_s, mut stored) = (0f64, 0f64, 0usize);
    let (mut n_orig, mut n_dec, mut n_match) = (0usize, 0usize, 0usize);
    let mut ierr: Vec<f64> = vec![];
    let mut weak: Vec<f64> = vec![];
    let (mut bg_se, mut bg_ae, mut bg_n) = (0f64, 0f64, 0usize);
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    let mut exact = true;
    let mut checked = 0usize;
    let mut out = Vec::new();
    let mut back = vec![0u8; frame_meta.nbytes()];
    for i in 0..n {
        let data = src.read_box(&[i, 0, 0], &[1, h, w])?;
        if let Some(ds) = &other {
            back = ds.read_box(&[i, 0, 0], &[1, h, w])?;
            out.clear();
        } else {
            let t = Instant::now();
            container::encode_into(&pipe, &frame_meta, &data, &mut out)?;
            enc_s += t.elapsed().as_secs_f64();
            stored += out.len();
            let t = Instant::now();
            let hdr = container::read_header(&out)?;
            container::decode_header_into(&hdr, &mut back)?;
            dec_s += t.elapsed().as_secs_f64();
        }
        let po = PeakList::read(&finder.encode(&data)?)?;
        let pd = PeakList::read(&finder.encode(&back)?)?;
        let m = match_peaks(&po.peaks, &pd.peaks, MATCH_PX);
        if a.verbose {
            let show = |what: &str, p: &Peak| {
                eprintln!(
                    "  frame {i}: {what} peak at ({:.1}, {:.1}) total {:.0} max {:.0} npix {}",
                    p.y, p.x, p.total, p.max, p.npix
                )
            };
            for (k, p) in po.peaks.iter().enumerate() {
                if !m.iter().any(|x| x.0 == k) {
                    show("lost", p);
                }
            }
            for (k, p) in pd.peaks.iter().enumerate() {
                if !m.iter().any(|x| x.1 == k) {
                    show("invented", p);
                }
            }
        }
        n_orig += po.peaks.len();
        n_dec += pd.peaks.len();
        n_match += m.len();
        for &(a, b) in &m {
            let (x, y) = (po.peaks[a].total as f64, pd.peaks[b].total as f64);
            ierr.push((y - x).abs() / x.abs().max(1.0));
        }
        let (o, d) = (floats(&data), floats(&back));
        // Window pixels (what roibin kept) must be exact; the rest is background.
        let mut in_win = vec![false; h * w];
        if let Ok(info) = roibin_frames(&out) {
            for win in &info[0].windows {
                let r = win.r as i64;
                let panel = win.y as usize / prows;
                for dy in -r..=r {
                    for dx in -r..=r {
                        let (y, x) = (win.y as i64 + dy, win.x as i64 + dx);
                        if y >= (panel * prows) as i64
                            && y < ((panel + 1) * prows) as i64
                            && x >= 0
                            && x < w as i64
                        {
                            let k = y as usize * w + x as usize;
                            in_win[k] = true;
                            exact &= o[k].to_bits() == d[k].to_bits();
                            checked += 1;
                        }
                    }
                }
            }
        }
        for k in 0..h * w {
            if !in_win[k] && o[k].is_finite() {
                let e = (o[k] - d[k]) as f64;
                bg_se += e * e;
                bg_ae += e.abs();
                bg_n += 1;
                lo = lo.min(o[k] as f64);
                hi = hi.max(o[k] as f64);
            }
        }
        // True peaks the finder did not see on the original: their signal lived in the
        // background; compare the 5×5 box sums (photons) of original and decoded.
        if let Some(t) = &truth {
            for p in t.get(i).map(|v| v.as_slice()).unwrap_or(&[]) {
                let seen = po
                    .peaks
                    .iter()
                    .any(|q| (q.y - p[0]).hypot(q.x - p[1]) <= MATCH_PX);
                if seen {
                    continue;
                }
                let (cy, cx) = (p[0].round() as i64, p[1].round() as i64);
                let mut diff = 0f64;
                for dy in -2..=2 {
                    for dx in -2..=2 {
                        let (y, x) = (cy + dy, cx + dx);
                        if y >= 0 && x >= 0 && (y as usize) < h && (x as usize) < w {
                            let k = y as usize * w + x as usize;
                            diff += (d[k] - o[k]) as f64;
                        }
                    }
                }
                weak.push(diff.abs() / 45.0);
            }
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    ierr.sort_by(f64::total_cmp);
    let mb = (n * h * w * 4) as f64 / 1e6;
    let mse = bg_se / bg_n.max(1) as f64;
    let s = Science {
        spec: match &a.decoded {
            Some(d) => format!("decoded frames {d}"),
            None => pipe.canonical().to_string(),
        },
        frames: n,
        peaks_original: n_orig,
        peaks_decoded: n_dec,
        recall: n_match as f64 / n_orig.max(1) as f64,
        precision: n_match as f64 / n_dec.max(1) as f64,
        intensity_err_median: ierr.get(ierr.len() / 2).copied().unwrap_or(0.0),
        intensity_err_max: ierr.last().copied().unwrap_or(0.0),
        weak_true_peaks: weak.len(),
        weak_err_photons_mean: weak.iter().sum::<f64>() / weak.len().max(1) as f64,
        weak_err_photons_max: weak.iter().cloned().fold(0.0, f64::max),
        background_psnr_db: if mse > 0.0 {
            20.0 * (hi - lo).log10() - 10.0 * mse.log10()
        } else {
            f64::INFINITY
        },
        background_mpe_adu: bg_ae / bg_n.max(1) as f64,
        window_pixels_exact: (checked > 0).then_some(exact),
        window_pixels_checked: checked,
        ratio_vs_u16: (n * h * w * 2) as f64 / stored as f64,
        ratio_vs_input: (n * h * w * 4) as f64 / stored as f64,
        write_mb_s: mb / enc_s,
        read_mb_s: mb / dec_s,
    };
    let has_truth = truth.is_some();
    Ok((s, finder_spec, input, has_truth))
}

fn print_science(s: &Science, finder_spec: &str, input: &str, has_truth: bool) {
    println!(
        "science check of `{}` on {} frames of {input}",
        s.spec, s.frames
    );
    println!("  finder: {finder_spec}");
    println!(
        "  peaks: {} on the originals, {} on the decoded frames; recall {:.2}%, precision {:.2}%",
        s.peaks_original,
        s.peaks_decoded,
        100.0 * s.recall,
        100.0 * s.precision
    );
    println!(
        "  integrated intensity of matched peaks: median error {:.4}%, max {:.4}%",
        100.0 * s.intensity_err_median,
        100.0 * s.intensity_err_max
    );
    if has_truth {
        println!(
            "  {} true weak peaks the finder missed (in the background): 5×5 box sum error mean {:.2} photons, max {:.2}",
            s.weak_true_peaks, s.weak_err_photons_mean, s.weak_err_photons_max
        );
    }
    let windows = match s.window_pixels_exact {
        Some(e) => format!("{e} ({} pixels checked)", s.window_pixels_checked),
        None => "unknown (no window pixels to check)".into(),
    };
    println!(
        "  background: PSNR {:.1} dB, mean pixel error {:.2} ADU; window pixels bit-exact: {windows}",
        s.background_psnr_db, s.background_mpe_adu
    );
    println!(
        "  ratio {:.1} vs uint16 raw, {:.1} vs input; encode {:.0} MB/s, decode {:.0} MB/s (one frame at a time, all cores)",
        s.ratio_vs_u16, s.ratio_vs_input, s.write_mb_s, s.read_mb_s
    );
}
