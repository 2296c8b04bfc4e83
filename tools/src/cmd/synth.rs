use crate::grid::Grid;
use crate::h5io::File;
use crate::synth;
use crate::transcode::progress;
use anyhow::{bail, Result};
use rayon::prelude::*;
use roibin_registry::DType;

#[derive(clap::Args)]
pub struct Args {
    /// Output FILE[:DATASET] (default dataset /entry/data/data)
    output: String,
    /// u16 or u32 photon counts, or f32 calibrated ADU (45 per photon)
    #[arg(long, default_value = "u16")]
    dtype: String,
    /// Number of frames
    #[arg(long, default_value_t = 8)]
    frames: usize,
    /// Seed: the same seed gives the same frames
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Write `frames` Eiger-like frames of `dtype` to FILE:DATASET, uncompressed, chunk = one frame.
pub fn write(file: &str, dset: &str, dtype: DType, frames: usize, seed: u64) -> Result<()> {
    if !matches!(dtype, DType::U16 | DType::U32 | DType::F32) {
        bail!("synth makes u16, u32 or f32 frames, not {dtype}");
    }
    let shape = vec![frames, synth::EIGER_ROWS, synth::EIGER_COLS];
    let chunk = vec![1, synth::EIGER_ROWS, synth::EIGER_COLS];
    let f = File::open_rw(file)?;
    let d = f.create_dataset(dset, dtype, &shape, &chunk, &[])?;
    let grid = Grid::new(&shape, &chunk);
    let pb = progress(frames, "synth");
    for first in (0..frames).step_by(8) {
        let batch: Vec<usize> = (first..(first + 8).min(frames)).collect();
        let data: Vec<Vec<u8>> = batch
            .par_iter()
            .map(|&i| synth::eiger_frame(seed, i, dtype))
            .collect();
        for (i, bytes) in batch.iter().zip(data) {
            d.write_raw_chunk(&grid.offset(*i), &bytes)?;
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    Ok(())
}

pub fn run(a: Args) -> Result<()> {
    let (file, dset) = crate::h5io::split_target(&a.output);
    let dtype = DType::parse(&a.dtype)?;
    write(
        file,
        dset.unwrap_or("/entry/data/data"),
        dtype,
        a.frames,
        a.seed,
    )?;
    eprintln!(
        "wrote {} Eiger-4M-like {dtype} frames to {}",
        a.frames, a.output
    );
    Ok(())
}
