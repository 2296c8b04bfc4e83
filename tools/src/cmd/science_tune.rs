//! `roibin autotune --science`: choose a ROIBIN graph for a dataset by what a crystallographer
//! checks. Candidate graphs (roibin(auto) with several binnings, fixed-window roibin, plain sz)
//! encode a sample of frames at the user's bound; a reference finder (DIALS's
//! `dispersion_extended`, ours, identical to DIALS's spot for spot) runs on the originals and
//! the decoded frames; among the graphs with recall and precision ≥ the target, the one with
//! the highest ratio wins and is written out.

use crate::h5io::{self, File};
use anyhow::{bail, Context, Result};
use roibin_compressors::detector::peaks::{match_peaks, Peak, PeakList};
use roibin_registry::{container, ArrayMeta, DataKind, Pipeline};
use std::time::Instant;

/// What `--science` needs besides the autotune arguments.
pub struct Options<'a> {
    pub input: &'a str,
    pub frames: usize,
    pub bound: f64,
    pub reference: &'a str,
    pub target: f64,
    pub output: Option<&'a std::path::Path>,
    pub json: bool,
}

/// One candidate's figures over the sample.
#[derive(Debug, serde::Serialize)]
pub struct Outcome {
    pub spec: String,
    pub ratio_vs_u16: f64,
    pub write_mb_s: f64,
    pub recall: f64,
    pub precision: f64,
    pub spots: usize,
}

/// The candidate graphs for bound `b`.
pub fn candidates(b: f64) -> Vec<String> {
    let mut v = vec![];
    for bin in [1, 2, 3, 4] {
        let bg = if bin == 1 {
            format!("sz(abs={b})")
        } else {
            format!("bin({bin},{bin})|sz(abs={b})")
        };
        v.push(format!("roibin(auto,background={bg})"));
    }
    for (roi, bin) in [(3, 2), (5, 2), (8, 2), (5, 4)] {
        v.push(format!(
            "roibin(peaks=dispersion(gain=0),roi={roi},background=bin({bin},{bin})|sz(abs={b}))"
        ));
    }
    v.push(format!("sz(abs={b})"));
    v
}

/// Peaks of `a` matched one to one in `b` within 1.5 pixels.
fn matched(a: &[Peak], b: &[Peak]) -> usize {
    match_peaks(a, b, 1.5).len()
}

pub fn run(o: Options<'_>) -> Result<()> {
    let (file, dset) = h5io::split_target(o.input);
    let dset = dset.with_context(|| format!("`{}`: name the dataset as FILE:DATASET", o.input))?;
    h5io::register_filter()?;
    let f = File::open(file)?;
    let d = f.dataset(dset)?;
    if d.shape.len() < 3 {
        bail!("`{}` has shape {:?}: give a stack of frames (frames, rows, cols) or (frames, panels, rows, cols)", o.input, d.shape);
    }
    let n = o.frames.min(d.shape[0]).max(1);
    let frame = ArrayMeta::new(d.dtype, {
        let mut s = vec![1];
        s.extend_from_slice(&d.shape[1..]);
        s
    });
    let finder_meta = ArrayMeta::new(d.dtype, d.shape[1..].to_vec());
    let reference = Pipeline::from_spec(o.reference, &DataKind::Array(finder_meta.clone()))
        .with_context(|| format!("reference finder `{}`", o.reference))?;
    let spots =
        |b: &[u8]| -> Result<Vec<Peak>> { Ok(PeakList::read(&reference.encode(b)?)?.peaks) };
    let mut frames = vec![];
    for i in 0..n {
        let mut start = vec![0; d.shape.len()];
        start[0] = i;
        let mut count = d.shape.clone();
        count[0] = 1;
        let bytes = d.read_box(&start, &count)?;
        let s = spots(&bytes)?;
        frames.push((bytes, s));
    }
    let found: usize = frames.iter().map(|f| f.1.len()).sum();
    eprintln!(
        "{n} frames of {} ({} spots by `{}`), bound {}",
        o.input, found, o.reference, o.bound
    );
    let mut outcomes = vec![];
    for spec in candidates(o.bound) {
        let pipeline = roibin_compressors::pipeline(&spec.parse()?, &frame)?;
        let (mut stored, mut secs, mut m_orig, mut dec_spots, mut m) =
            (0usize, 0f64, 0usize, 0usize, 0usize);
        for (bytes, orig) in &frames {
            let t = Instant::now();
            let enc = container::encode_with(&pipeline, &frame, bytes)?;
            secs += t.elapsed().as_secs_f64();
            stored += enc.len();
            let back = container::decode(&enc)?.1;
            let dec = spots(&back)?;
            m += matched(orig, &dec);
            m_orig += orig.len();
            dec_spots += dec.len();
        }
        let out = Outcome {
            spec: spec.clone(),
            ratio_vs_u16: (n * frame.len() * 2) as f64 / stored as f64,
            write_mb_s: (n * frame.nbytes()) as f64 / 1e6 / secs.max(1e-9),
            recall: if m_orig == 0 {
                1.0
            } else {
                m as f64 / m_orig as f64
            },
            precision: if dec_spots == 0 {
                1.0
            } else {
                m as f64 / dec_spots as f64
            },
            spots: m_orig,
        };
        eprintln!(
            "  {:<80} ratio {:>8.1}  {:>6.0} MB/s  recall {:6.2}%  precision {:6.2}%",
            out.spec,
            out.ratio_vs_u16,
            out.write_mb_s,
            100.0 * out.recall,
            100.0 * out.precision
        );
        outcomes.push(out);
    }
    let best = outcomes
        .iter()
        .filter(|c| c.recall >= o.target && c.precision >= o.target)
        .max_by(|a, b| a.ratio_vs_u16.total_cmp(&b.ratio_vs_u16));
    let Some(best) = best else {
        bail!(
            "no candidate keeps {:.1}% of the reference's spots at bound {}: try a smaller --bound",
            100.0 * o.target,
            o.bound
        );
    };
    eprintln!(
        "chosen: {} (ratio {:.1}, recall {:.2}%, precision {:.2}%)",
        best.spec,
        best.ratio_vs_u16,
        100.0 * best.recall,
        100.0 * best.precision
    );
    if let Some(path) = o.output {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{}\n", best.spec))
            .and_then(|_| std::fs::rename(&tmp, path))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!(
            "written to {} (use it as --spec @{})",
            path.display(),
            path.display()
        );
    }
    if o.json {
        println!(
            "{}",
            serde_json::json!({"chosen": best.spec, "candidates": outcomes})
        );
    } else {
        println!("{}", best.spec);
    }
    Ok(())
}
