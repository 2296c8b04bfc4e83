//! `roibin peaks`: run a peak finder on the frames of a dataset and print what it finds, so
//! a finder can be compared with others (DIALS, CrystFEL) on the same frames.

use crate::h5io::{self, File};
use anyhow::{bail, Context, Result};
use roibin_compressors::detector::peaks::PeakList;
use roibin_registry::{ArrayMeta, DataKind, Pipeline};

#[derive(clap::Args)]
pub struct Args {
    /// Input FILE:DATASET of frames: (frames, rows, cols), (rows, cols) or (frames, panels, rows, cols)
    input: String,
    /// Finder spec, e.g. `dispersion(gain=1)`, `pf8(adc=300,snr=6)`
    #[arg(long, default_value = "dispersion")]
    finder: String,
    /// Frames to run on (default: all)
    #[arg(long)]
    frames: Option<usize>,
    /// Print every peak as JSON (one object per frame) instead of a summary
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    h5io::register_filter()?;
    let (file, dset) = h5io::split_target(&a.input);
    let dset = dset.with_context(|| format!("`{}`: name the dataset as FILE:DATASET", a.input))?;
    let f = File::open(file)?;
    let d = f.dataset(dset)?;
    let (n, frame_shape): (usize, Vec<usize>) = match d.shape.len() {
        2 => (1, d.shape.clone()),
        3 => (d.shape[0], d.shape[1..].to_vec()),
        4 => (d.shape[0], d.shape[1..].to_vec()),
        r => bail!("a dataset of rank {r} is not a stack of frames"),
    };
    let n = a.frames.map_or(n, |k| k.min(n));
    let meta = ArrayMeta::new(d.dtype, frame_shape.clone());
    let finder = Pipeline::from_spec(&a.finder, &DataKind::Array(meta))?;
    let mut out = vec![];
    for i in 0..n {
        let (start, count): (Vec<usize>, Vec<usize>) = if d.shape.len() == 2 {
            (vec![0, 0], d.shape.clone())
        } else {
            let mut s = vec![0; d.shape.len()];
            s[0] = i;
            let mut c = d.shape.clone();
            c[0] = 1;
            (s, c)
        };
        let frame = d.read_box(&start, &count)?;
        let list = PeakList::read(&finder.encode(&frame)?)?;
        if a.json {
            let peaks: Vec<serde_json::Value> = list
                .peaks
                .iter()
                .map(|p| {
                    serde_json::json!({"y": p.y, "x": p.x, "total": p.total, "max": p.max, "npix": p.npix})
                })
                .collect();
            out.push(serde_json::json!({"frame": i, "found": list.found, "peaks": peaks}));
        } else {
            println!(
                "frame {i}: {} peaks ({} kept)",
                list.found,
                list.peaks.len()
            );
        }
    }
    if a.json {
        println!("{}", serde_json::Value::Array(out));
    }
    Ok(())
}
