//! The second half of `roibin demo`: the ROIBIN graph on CXI JUNGFRAU-like frames, against
//! the same frames through plain `sz` at the same bound, judged by the peaks pf8 finds on the
//! originals; and the pictures: a frame before and after, their difference, ratio vs speed.

use crate::cmd::bench::{self, Science};
use crate::cmd::synth as synth_cmd;
use crate::cxi::Detector;
use crate::h5io::File;
use anyhow::Result;
use roibin_registry::{container, ArrayMeta, DType, DataKind, Pipeline};
use roibin_stxm::output::{png_of, Style};

/// A point of the ratio-vs-speed chart: label, ratio vs uint16 raw, write MB/s, lossy?
pub type Point = (String, f64, f64, bool);

/// The lossy graphs compared: ROIBIN as `roibin bench --science` runs it (masked pixels kept
/// bit-exact, the default), the same with masked pixels filled from their neighbours, and
/// plain `sz` at the same bound.
fn graphs(input: &str) -> [(&'static str, String); 3] {
    let roibin = |extra: &str| {
        format!(
            "roibin(peaks={},panel_rows=512,exact_above=250{extra},background=bin(2,2)|sz(abs=90))",
            synth_cmd::finder_spec(input)
        )
    };
    [
        ("roibin", roibin("")),
        ("roibin fill", roibin(",masked=fill")),
        ("sz abs 90", "sz(abs=90)".into()),
    ]
}

pub fn run(out: &str, frames: usize, mut points: Vec<Point>) -> Result<()> {
    let input = format!("{out}/jungfrau.h5");
    let _ = std::fs::remove_file(&input);
    synth_cmd::write_cxi(&input, &Detector::JUNGFRAU_4M, frames, 1, 1)?;
    println!(
        "\nROIBIN on {frames} JUNGFRAU-like frames (4096×1024 calibrated f32, CXI, {input}); peaks: pf8 on the originals"
    );
    println!(
        "{:<12} {:>9} {:>11} {:>10} {:>8} {:>10} {:>16}  spec",
        "graph", "ratio u16", "write MB/s", "read MB/s", "recall", "precision", "windows exact"
    );
    let mut roibin_spec = String::new();
    for (label, spec) in graphs(&input) {
        let (s, ..) = bench::science(&bench::Args::science_of(&input, Some(&spec)))?;
        print_row(label, &s);
        if label == "roibin" {
            roibin_spec = s.spec.clone();
        }
        points.push((label.to_string(), s.ratio_vs_u16, s.write_mb_s, true));
    }
    let (frame_png, diff_png) = pictures(&input, &roibin_spec, out)?;
    let chart = format!("{out}/ratio_vs_speed.svg");
    std::fs::write(&chart, chart_svg(&points))?;
    println!("\npictures: {frame_png} (a frame: original | decoded, log scale),");
    println!(
        "          {diff_png} (|original − decoded|, 0 to the bound), {chart} (every graph above)"
    );
    Ok(())
}

fn print_row(label: &str, s: &Science) {
    let windows = match s.window_pixels_exact {
        Some(true) => format!("yes ({} px)", s.window_pixels_checked),
        Some(false) => "NO".into(),
        None => "no windows".into(),
    };
    println!(
        "{label:<12} {:>9.1} {:>11.0} {:>10.0} {:>7.2}% {:>9.2}% {windows:>16}  {}",
        s.ratio_vs_u16,
        s.write_mb_s,
        s.read_mb_s,
        100.0 * s.recall,
        100.0 * s.precision,
        s.spec
    );
}

/// Frame 0 before and after `spec`, side by side, and their difference, downsampled 4×4 by
/// taking the maximum (so that peaks stay visible).
fn pictures(input: &str, spec: &str, out: &str) -> Result<(String, String)> {
    let src = File::open(input)?.dataset("/entry_1/data_1/data")?;
    let (h, w) = (src.shape[1], src.shape[2]);
    let raw = src.read_box(&[0, 0, 0], &[1, h, w])?;
    let meta = ArrayMeta::new(DType::F32, vec![h, w]);
    let pipe = Pipeline::from_spec(spec, &DataKind::Array(meta.clone()))?;
    let mut encoded = Vec::new();
    container::encode_into(&pipe, &meta, &raw, &mut encoded)?;
    let mut back = vec![0u8; meta.nbytes()];
    container::decode_header_into(&container::read_header(&encoded)?, &mut back)?;
    let floats = |b: &[u8]| -> Vec<f64> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect()
    };
    let (orig, dec) = (floats(&raw), floats(&back));
    let diff: Vec<f64> = orig.iter().zip(&dec).map(|(a, b)| (a - b).abs()).collect();
    let (sh, sw) = (h / 4, w / 4);
    // On the log scale a background quantised to 0 (the bound is 2 photons) shows as the
    // darkest colour, not as a hole.
    let floor = |v: Vec<f64>| v.into_iter().map(|x| x.max(1.0)).collect::<Vec<_>>();
    let (o, d, e) = (
        floor(pool(&orig, h, w)),
        floor(pool(&dec, h, w)),
        pool(&diff, h, w),
    );
    // Original | gap | decoded, one picture.
    let gap = 8;
    let mut both = vec![f64::NAN; sh * (2 * sw + gap)];
    for y in 0..sh {
        let row = y * (2 * sw + gap);
        both[row..row + sw].copy_from_slice(&o[y * sw..(y + 1) * sw]);
        both[row + sw + gap..row + 2 * sw + gap].copy_from_slice(&d[y * sw..(y + 1) * sw]);
    }
    let frame_style = Style {
        palette: "viridis".into(),
        log: true,
        cmin: Some(10.0),
        cmax: Some(1e5),
    };
    let frame_png = format!("{out}/roibin_frame.png");
    std::fs::write(
        &frame_png,
        png_of(&both, sh, 2 * sw + gap, &frame_style, spec)?,
    )?;
    let diff_style = Style {
        palette: "magma".into(),
        log: false,
        cmin: Some(0.0),
        cmax: Some(90.0),
    };
    let diff_png = format!("{out}/roibin_difference.png");
    std::fs::write(&diff_png, png_of(&e, sh, sw, &diff_style, spec)?)?;
    Ok((frame_png, diff_png))
}

/// 4×4 max pooling (NaN ignored).
fn pool(v: &[f64], h: usize, w: usize) -> Vec<f64> {
    let (sh, sw) = (h / 4, w / 4);
    let mut out = vec![f64::NAN; sh * sw];
    for y in 0..sh * 4 {
        for x in 0..sw * 4 {
            let o = &mut out[(y / 4) * sw + x / 4];
            let val = v[y * w + x];
            // `o` starts as NaN: the first number replaces it.
            if !val.is_nan() && (o.is_nan() || val > *o) {
                *o = val;
            }
        }
    }
    out
}

/// Ratio (log scale) against write speed for every graph the demo ran, as an SVG chart.
pub fn chart_svg(points: &[Point]) -> String {
    let (width, height, left, bottom) = (720.0, 440.0, 70.0, 50.0);
    let max_speed = points.iter().map(|p| p.2).fold(1.0, f64::max) * 1.1;
    let (lo, hi) = points.iter().fold((f64::INFINITY, 0f64), |(lo, hi), p| {
        (lo.min(p.1.max(0.1)), hi.max(p.1))
    });
    let (lo, hi) = ((lo.log10() - 0.2).floor(), (hi.log10() + 0.2).ceil());
    let x = |s: f64| left + (width - left - 20.0) * s / max_speed;
    let y = |r: f64| {
        (height - bottom) - (height - bottom - 20.0) * (r.max(0.1).log10() - lo) / (hi - lo)
    };
    let mut svg = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-family='sans-serif' font-size='12'>\
<rect width='100%' height='100%' fill='white'/>\
<line x1='{left}' y1='{b}' x2='{r}' y2='{b}' stroke='black'/><line x1='{left}' y1='20' x2='{left}' y2='{b}' stroke='black'/>\
<text x='{cx}' y='{ly}' text-anchor='middle'>write MB/s (this machine)</text>\
<text x='16' y='{cy}' transform='rotate(-90 16 {cy})' text-anchor='middle'>ratio vs uint16 raw (log)</text>",
        b = height - bottom,
        r = width - 20.0,
        cx = (width + left) / 2.0,
        ly = height - 12.0,
        cy = (height - bottom) / 2.0
    );
    for decade in lo as i32..=hi as i32 {
        let r = 10f64.powi(decade);
        svg += &format!(
            "<line x1='{left}' y1='{yy}' x2='{r2}' y2='{yy}' stroke='#ddd'/><text x='{tx}' y='{ty}' text-anchor='end'>{r}</text>",
            yy = y(r),
            r2 = width - 20.0,
            tx = left - 6.0,
            ty = y(r) + 4.0
        );
    }
    for (label, ratio, speed, lossy) in points {
        let colour = if *lossy { "#c0392b" } else { "#2c7fb8" };
        svg += &format!(
            "<circle cx='{:.1}' cy='{:.1}' r='5' fill='{colour}'/><text x='{:.1}' y='{:.1}'>{label}</text>",
            x(*speed),
            y(*ratio),
            x(*speed) + 7.0,
            y(*ratio) - 6.0
        );
    }
    svg + "</svg>\n"
}
