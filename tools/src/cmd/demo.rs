use crate::cmd::{compress, synth as synth_cmd};
use crate::grid::Grid;
use crate::h5io::{self, File};
use anyhow::{bail, Result};
use roibin_registry::{DType, Graph};
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Folder for the sample data and the compressed files
    #[arg(long, default_value = "demo-out")]
    out: String,
    /// Frames per sample dataset
    #[arg(long, default_value_t = 8)]
    frames: usize,
}

const GRAPHS: &[(&str, &str)] = &[
    ("auto", "auto"),
    ("fast", "fast"),
    ("strong", "strong"),
    ("plain", "shuffle|zstd(3)"),
];

pub fn run(a: Args) -> Result<()> {
    h5io::register_filter()?;
    std::fs::create_dir_all(&a.out)?;
    println!(
        "roibin demo: {} Eiger-4M-like frames per dtype, chunk = 1 frame, written in {}/\n",
        a.frames, a.out
    );
    println!(
        "{:<7} {:<8} {:<24} {:>8} {:>11} {:>10}  read back",
        "dtype", "graph", "spec", "ratio", "write MB/s", "read MB/s"
    );
    let mut points = Vec::new();
    for dtype in [DType::U16, DType::U32, DType::F32] {
        let input = format!("{}/eiger_{}.h5", a.out, dtype.name());
        let _ = std::fs::remove_file(&input);
        synth_cmd::write(&input, "/entry/data/data", dtype, a.frames, 1)?;
        let src = File::open(&input)?.dataset("/entry/data/data")?;
        let shape = src.shape.clone();
        for (label, spec) in GRAPHS {
            let output = format!("{}/eiger_{}_{label}.h5", a.out, dtype.name());
            let _ = std::fs::remove_file(&output);
            let graph: Graph = spec.parse()?;
            let (rep, _) = compress::compress_dataset(
                &input,
                "/entry/data/data",
                &output,
                "/entry/data/data",
                &graph,
                compress::Layout::default(),
            )?;
            // Read back through libhdf5's own pipeline (our filter), frame by frame, and compare.
            let dst = File::open(&output)?.dataset("/entry/data/data")?;
            let grid = Grid::new(&shape, &dst.chunk.clone().unwrap_or(shape.clone()));
            let t = Instant::now();
            let mut exact = true;
            for i in 0..grid.len() {
                let off = grid.offset(i);
                let ext = grid.extent(&off);
                let got = dst.read_box(&off, &ext)?;
                exact &= got == src.read_box(&off, &ext)?;
            }
            let read_s = t.elapsed().as_secs_f64();
            let mb = rep.raw_bytes as f64 / 1e6;
            println!(
                "{:<7} {:<8} {:<24} {:>8.2} {:>11.0} {:>10.0}  {}",
                dtype.name(),
                label,
                spec,
                rep.raw_bytes as f64 / rep.stored_bytes as f64,
                mb / rep.total.as_secs_f64(),
                mb / read_s,
                if exact { "bit-exact" } else { "MISMATCH" }
            );
            if !exact {
                bail!("{output}: read-back differs from the input");
            }
            if dtype == DType::U16 {
                let ratio = rep.raw_bytes as f64 / rep.stored_bytes as f64;
                points.push((
                    label.to_string(),
                    ratio,
                    mb / rep.total.as_secs_f64(),
                    false,
                ));
            }
        }
    }
    println!(
        "\nread MB/s includes the comparison read of the input. Open the files from h5py with"
    );
    println!("  HDF5_PLUGIN_PATH=<folder of libh5roibin.so> python3 -c \"import h5py; print(h5py.File('{}/eiger_u16_fast.h5')['/entry/data/data'][0].sum())\"", a.out);
    crate::cmd::demo_roibin::run(&a.out, a.frames, points)
}
