use crate::grid::Grid;
use crate::h5io::File;
use crate::synth;
use crate::transcode::progress;
use anyhow::{bail, Result};
use rayon::prelude::*;
use roibin_registry::DType;

#[derive(clap::Args)]
pub struct Args {
    /// Output FILE[:DATASET] (default dataset /entry/data/data; CXI layouts use /entry_1/data_1/data)
    output: String,
    /// eiger (photon-counting Eiger 4M), stxm (a raster scan over a sample with known truth
    /// maps, see --scan and --frame), or a CXI serial-crystallography layout: jungfrau
    /// (8×512×1024) or cspad (32×185×388), calibrated float32 with peak lists and truth
    #[arg(long, default_value = "eiger")]
    layout: String,
    /// stxm: scan shape ROWSxCOLS
    #[arg(long, default_value = "32x32")]
    scan: String,
    /// stxm: frame shape HEIGHTxWIDTH
    #[arg(long, default_value = "128x128")]
    frame: String,
    /// stxm: store the frames with bitshuffle-LZ4 (HDF5 filter 32008, as DECTRIS detectors
    /// write them; chunks encoded by roibin, readable with hdf5plugin)
    #[arg(long)]
    bslz4: bool,
    /// Frames per chunk of the written dataset (CXI layouts)
    #[arg(long, default_value_t = 1)]
    chunk_frames: usize,
    /// u16 or u32 photon counts, or f32 calibrated ADU (45 per photon); default u16 (stxm: u32)
    #[arg(long)]
    dtype: Option<String>,
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

fn shape2(what: &str, s: &str) -> Result<(usize, usize)> {
    let (a, b) = s
        .split_once('x')
        .ok_or_else(|| anyhow::anyhow!("--{what} {s}: give AxB, e.g. 32x32"))?;
    let (a, b): (usize, usize) = (a.parse()?, b.parse()?);
    if a == 0 || b == 0 || a * b > 1 << 24 {
        bail!("--{what} {s}: each side at least 1, at most 16 M in all");
    }
    Ok((a, b))
}

/// Write a synthetic STXM scan (see [`crate::scan`]): frames `[rows·cols, h, w]` at
/// `dset`, the DECTRIS pixel mask, and the truth maps under `/truth`.
pub fn write_stxm(
    file: &str,
    dset: &str,
    scan: &crate::scan::Scan,
    dtype: DType,
    bslz4: bool,
) -> Result<String> {
    if !matches!(dtype, DType::U16 | DType::U32) {
        bail!("stxm scans are u16 or u32 photon counts, not {dtype}");
    }
    if std::path::Path::new(file).exists() {
        std::fs::remove_file(file)?;
    }
    let (h, w) = (scan.height, scan.width);
    let n = scan.rows * scan.cols;
    let f = File::open_rw(file)?;
    // bitshuffle's cd_values as DECTRIS writes them: (0, 3, element size, 0 = default block, 2 = LZ4).
    let filters = if bslz4 {
        vec![(
            roibin_stxm::bslz4::FILTER_ID,
            vec![0, 3, dtype.size() as u32, 0, 2],
        )]
    } else {
        vec![]
    };
    let d = f.create_dataset(dset, dtype, &[n, h, w], &[1, h, w], &filters)?;
    let pb = progress(n, "synth");
    for first in (0..n).step_by(16) {
        let idx: Vec<usize> = (first..(first + 16).min(n)).collect();
        let frames: Vec<Vec<u8>> = idx
            .par_iter()
            .map(|&k| {
                let raw = scan.frame(k / scan.cols, k % scan.cols, dtype);
                if bslz4 {
                    roibin_stxm::bslz4::encode(&raw, dtype.size())
                } else {
                    raw
                }
            })
            .collect();
        for (k, bytes) in idx.iter().zip(frames) {
            d.write_raw_chunk(&[*k, 0, 0], &bytes)?;
            pb.inc(1);
        }
    }
    drop(d);
    f.close()?;
    pb.finish_and_clear();
    let hf = hdf5::File::open_rw(file)?;
    let mut mask = vec![0u32; h * w];
    mask[scan.gap_row() * w..(scan.gap_row() + 1) * w].fill(1);
    hf.create_group("/entry/instrument")?
        .create_group("detector")?
        .create_group("detectorSpecific")?
        .new_dataset::<u32>()
        .shape([h, w])
        .create("pixel_mask")?
        .write_raw(&mask)?;
    let truth = hf.create_group("truth")?;
    let points: Vec<crate::scan::Truth> = (0..n)
        .map(|k| scan.truth(k / scan.cols, k % scan.cols))
        .collect();
    let map = |name: &str, v: Vec<f64>| -> Result<()> {
        truth
            .new_dataset::<f64>()
            .shape([scan.rows, scan.cols])
            .create(name)?
            .write_raw(&v)?;
        Ok(())
    };
    map(
        "transmission",
        points.iter().map(|t| t.transmission).collect(),
    )?;
    map("shift_x", points.iter().map(|t| t.shift_x).collect())?;
    map("shift_y", points.iter().map(|t| t.shift_y).collect())?;
    map("grain", points.iter().map(|t| t.grain as f64).collect())?;
    let peaks: Vec<f64> = scan
        .grains()
        .iter()
        .flat_map(|g| [g.1 .0, g.1 .1])
        .collect();
    truth
        .new_dataset::<f64>()
        .shape([peaks.len() / 2, 2])
        .create("grain_peaks")?
        .write_raw(&peaks)?;
    let (cx, cy) = scan.centre();
    truth
        .new_dataset::<f64>()
        .shape([2])
        .create("beam_centre")?
        .write_raw(&[cx, cy])?;
    Ok(format!(
        "wrote a {}x{} STXM scan of {h}×{w} {dtype} frames to {file}:{dset}, pixel mask, truth maps in /truth\n  \
         try: roibin stxm {file} --scan {}x{} --signal comh --out comh.png",
        scan.rows, scan.cols, scan.rows, scan.cols
    ))
}

pub fn run(a: Args) -> Result<()> {
    let (file, dset) = crate::h5io::split_target(&a.output);
    if a.layout == "stxm" {
        let (rows, cols) = shape2("scan", &a.scan)?;
        let (height, width) = shape2("frame", &a.frame)?;
        let scan = crate::scan::Scan {
            rows,
            cols,
            height,
            width,
            seed: a.seed,
        };
        let dtype = DType::parse(a.dtype.as_deref().unwrap_or("u32"))?;
        let s = write_stxm(
            file,
            dset.unwrap_or("/entry/data/data"),
            &scan,
            dtype,
            a.bslz4,
        )?;
        crate::note!("{s}");
        return Ok(());
    }
    let dtype_name = a.dtype.as_deref().unwrap_or("u16");
    if a.layout != "eiger" {
        let det = crate::cxi::Detector::by_name(&a.layout).ok_or_else(|| {
            anyhow::anyhow!(
                "unknown layout `{}`: use eiger, jungfrau or cspad",
                a.layout
            )
        })?;
        if dtype_name != "u16" && dtype_name != "f32" {
            bail!("CXI layouts are calibrated float32 (--dtype f32)");
        }
        let s = write_cxi(file, &det, a.frames, a.chunk_frames, a.seed)?;
        crate::note!("{s}");
        return Ok(());
    }
    let dtype = DType::parse(dtype_name)?;
    write(
        file,
        dset.unwrap_or("/entry/data/data"),
        dtype,
        a.frames,
        a.seed,
    )?;
    crate::note!(
        "wrote {} Eiger-4M-like {dtype} frames to {}",
        a.frames,
        a.output
    );
    Ok(())
}

/// Write a CXI file of `frames` calibrated frames of `det`: data, mask, peak lists found by
/// pf8 on the originals (`/entry_1/result_1`), the true peaks (`/entry_1/truth_1`), and the
/// mask and radius map as .npy files next to it for finder specs. Returns a summary.
pub fn write_cxi(
    file: &str,
    det: &crate::cxi::Detector,
    frames: usize,
    chunk_frames: usize,
    seed: u64,
) -> Result<String> {
    use roibin_compressors::detector::peaks::{write_npy, NpyData, PeakList};
    if frames == 0 || chunk_frames == 0 {
        bail!("--frames and --chunk-frames must be at least 1");
    }
    let (h, w) = (det.frame_rows(), det.cols);
    let mask = det.mask(seed);
    let radius = det.radius_map();
    let (mask_path, radius_path) = sidecars(file);
    write_npy(
        std::path::Path::new(&mask_path),
        &[h, w],
        NpyData::U8(&mask),
    )?;
    write_npy(
        std::path::Path::new(&radius_path),
        &[h, w],
        NpyData::F32(&radius),
    )?;
    let finder_spec = finder_spec(file);
    let finder = roibin_registry::Pipeline::from_spec(
        &finder_spec,
        &roibin_registry::DataKind::Array(roibin_registry::ArrayMeta::new(
            DType::F32,
            vec![det.panels, det.rows, w],
        )),
    )?;
    if std::path::Path::new(file).exists() {
        std::fs::remove_file(file)?;
    }
    let cf = chunk_frames.min(frames);
    let shape = vec![frames, h, w];
    let f = File::open_rw(file)?;
    let d = f.create_dataset("/entry_1/data_1/data", DType::F32, &shape, &[cf, h, w], &[])?;
    let pb = progress(frames, "synth");
    let mut found: Vec<PeakList> = Vec::with_capacity(frames);
    let mut truth = Vec::with_capacity(frames);
    for first in (0..frames).step_by(cf) {
        let idx: Vec<usize> = (first..(first + cf).min(frames)).collect();
        let made: Vec<(Vec<f32>, Vec<crate::cxi::TruePeak>, Result<PeakList>)> = idx
            .par_iter()
            .map(|&i| {
                let (v, t) = crate::cxi::frame(det, seed, i, &mask, &radius);
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                let p = finder
                    .encode(&bytes)
                    .and_then(|b| PeakList::read(&b))
                    .map_err(anyhow::Error::from);
                (v, t, p)
            })
            .collect();
        // A partial last chunk is padded with zeros (HDF5 ignores what lies past the extent).
        let mut chunk: Vec<u8> = Vec::with_capacity(cf * h * w * 4);
        for (v, t, p) in made {
            chunk.extend(v.iter().flat_map(|x| x.to_le_bytes()));
            truth.push(t);
            found.push(p?);
            pb.inc(1);
        }
        chunk.resize(cf * h * w * 4, 0);
        d.write_raw_chunk(&[first, 0, 0], &chunk)?;
    }
    drop(d);
    drop(f);
    pb.finish_and_clear();
    let hf = hdf5::File::open_rw(file)?;
    let data_1 = hf.group("/entry_1/data_1")?;
    data_1
        .new_dataset::<u8>()
        .shape([h, w])
        .create("mask")?
        .write_raw(&mask)?;
    let lists = |g: &str, rows: Vec<Vec<(f32, f32, f32)>>| -> Result<()> {
        let grp = hf.create_group(g)?;
        let width = 2048usize;
        let n: Vec<i32> = rows.iter().map(|r| r.len().min(width) as i32).collect();
        grp.new_dataset::<i32>()
            .shape([frames])
            .create("nPeaks")?
            .write_raw(&n)?;
        for (k, name) in ["peakYPosRaw", "peakXPosRaw", "peakTotalIntensity"]
            .iter()
            .enumerate()
        {
            let mut a = vec![0f32; frames * width];
            for (i, r) in rows.iter().enumerate() {
                for (j, p) in r.iter().take(width).enumerate() {
                    a[i * width + j] = [p.0, p.1, p.2][k];
                }
            }
            grp.new_dataset::<f32>()
                .shape([frames, width])
                .create(*name)?
                .write_raw(&a)?;
        }
        Ok(())
    };
    lists(
        "/entry_1/result_1",
        found
            .iter()
            .map(|l| l.peaks.iter().map(|p| (p.y, p.x, p.total)).collect())
            .collect(),
    )?;
    lists(
        "/entry_1/truth_1",
        truth
            .iter()
            .map(|t| t.iter().map(|p| (p.y, p.x, p.adu)).collect())
            .collect(),
    )?;
    let nf: usize = found.iter().map(|l| l.found).sum();
    let nt: usize = truth.iter().map(|t| t.len()).sum();
    Ok(format!(
        "wrote {frames} {} frames ({}×{}×{} f32, chunk {cf} frame(s)) to {file}:/entry_1/data_1/data\n  \
         true peaks {nt} ({:.1}/frame), found by pf8 {nf} ({:.1}/frame) in /entry_1/result_1, truth in /entry_1/truth_1\n  \
         mask {mask_path}, radius map {radius_path}\n  \
         finder spec: {finder_spec}",
        det.name,
        det.panels,
        det.rows,
        det.cols,
        nt as f64 / frames as f64,
        nf as f64 / frames as f64,
    ))
}

/// The mask and radius-map files `write_cxi` puts next to `file`.
pub fn sidecars(file: &str) -> (String, String) {
    let stem = file
        .strip_suffix(".h5")
        .or(file.strip_suffix(".cxi"))
        .unwrap_or(file);
    (format!("{stem}.mask.npy"), format!("{stem}.radius.npy"))
}

/// The pf8 spec that uses `file`'s sidecar mask and radius map.
pub fn finder_spec(file: &str) -> String {
    let (m, r) = sidecars(file);
    let abs = |p: String| {
        std::fs::canonicalize(&p)
            .map(|p| p.display().to_string())
            .unwrap_or(p)
    };
    format!("pf8(mask=\"{}\",radius=\"{}\")", abs(m), abs(r))
}
