//! `roibin stxm`: reduce a raster scan to a map (dada's request grammar; see `roibin_stxm`).
//! Under `mpirun -n N` the ranks split the scan lines and rank 0 writes the map.

use crate::world::{pack, unpack, World};
use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use roibin_stxm::cache::{Cache, DEFAULT_CAP};
use roibin_stxm::output::{self, Style};
use roibin_stxm::{source, Reduction, Request, RunOptions};

#[derive(clap::Args)]
pub struct Args {
    /// The scan: FILE.h5[:/dataset] (default /entry/data/data, or a DECTRIS master's
    /// data_NNNNNN links), or a Merlin FILE.mib
    scan_file: Option<String>,
    /// Scan shape ROWSxCOLS (default: a 4-D dataset's own, else one row)
    #[arg(long)]
    scan: Option<String>,
    /// First frame of the scan in the file
    #[arg(long)]
    first: Option<String>,
    /// Algorithm: brightfield, polarroi, radial, gridroi, hits, bragg (`--list` shows all)
    #[arg(long, default_value = "brightfield")]
    algo: String,
    /// Signal of the algorithm (brightfield: Itot, Imax, comh, comv, dpc)
    #[arg(long)]
    signal: Option<String>,
    /// Rectangular ROI x,y,w,h (pixels; x along columns)
    #[arg(long)]
    roi: Option<String>,
    /// Integer binning bx,by
    #[arg(long)]
    binning: Option<String>,
    /// Pixel mask: auto (the detector's pixel_mask), none, FILE.npy or FILE.h5:/dataset
    #[arg(long)]
    mask: Option<String>,
    /// Empty-beam image to divide by: a frame number of the scan, FILE.npy or FILE.h5:/dataset
    #[arg(long)]
    empty: Option<String>,
    /// Image to subtract (after the division): a frame number, FILE.npy or FILE.h5:/dataset
    #[arg(long)]
    difference: Option<String>,
    /// Polar sector "cx,cy;qmin,qmax;phimin,phimax" (processed pixels, degrees)
    #[arg(long, allow_hyphen_values = true)]
    polarroi: Option<String>,
    /// Rings "cx,cy;qmin,qmax;nq"
    #[arg(long, allow_hyphen_values = true)]
    radial: Option<String>,
    /// Grid of ROIs "x,y,w,h;nx,ny[;dx,dy]"
    #[arg(long)]
    gridroi: Option<String>,
    /// Output: map.h5 (NXdata), map.png, map.tiff (32-bit float), map.json, map.txt
    #[arg(long, short)]
    out: Option<String>,
    /// PNG palette: gray, wb, viridis, magma, inferno, plasma, cividis, turbo
    #[arg(long, default_value = "viridis")]
    palette: String,
    /// PNG on a log scale
    #[arg(long)]
    log: bool,
    /// PNG colour range
    #[arg(long, allow_hyphen_values = true)]
    cmin: Option<f64>,
    #[arg(long, allow_hyphen_values = true)]
    cmax: Option<f64>,
    /// Decode roibin chunks even where the compressed domain would do (for comparisons)
    #[arg(long)]
    decode: bool,
    /// Read every dataset through HDF5's own filters and plugins, never as raw chunks
    /// (to compare roibin's decoders with the plugins')
    #[arg(long)]
    hdf5_read: bool,
    /// Neither read nor write the result cache
    #[arg(long)]
    no_cache: bool,
    /// Result cache folder (default $XDG_CACHE_HOME/roibin/stxm)
    #[arg(long)]
    cache_dir: Option<String>,
    /// Result cache cap in MiB (least recently used results go first)
    #[arg(long, default_value_t = DEFAULT_CAP >> 20)]
    cache_mib: u64,
    /// Worker threads (default: every core)
    #[arg(long)]
    threads: Option<usize>,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
    /// List the algorithms and their signals
    #[arg(long)]
    list: bool,
}

impl Args {
    /// The request the options spell (the same words as the HTTP API's).
    fn request(&self) -> Result<Request, roibin_stxm::Error> {
        let mut r = Request::default();
        r.set("algo", &self.algo)?;
        let opts = [
            ("signal", &self.signal),
            ("scan", &self.scan),
            ("first", &self.first),
            ("roi", &self.roi),
            ("binning", &self.binning),
            ("mask", &self.mask),
            ("empty", &self.empty),
            ("difference", &self.difference),
            ("polarroi", &self.polarroi),
            ("radial", &self.radial),
            ("gridroi", &self.gridroi),
        ];
        for (k, v) in opts {
            if let Some(v) = v {
                r.set(k, v)?;
            }
        }
        Ok(r)
    }
}

fn list() {
    for a in roibin_stxm::algo::algorithms() {
        println!(
            "{:<12} signals {:<28} {}",
            a.name,
            a.signals.join(","),
            a.doc
        );
    }
}

fn bar(frames: usize, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    crate::ui::bar(
        frames,
        "stxm [{bar:30}] {pos}/{len} frames, {per_sec}, eta {eta}",
    )
}

/// Combine the ranks' line results into rank 0's.
fn gather(world: &World, mine: Reduction, lines: &[Vec<usize>]) -> Result<Option<Reduction>> {
    if !world.is_root() {
        world.send(0, &pack(&[mine.to_bytes()]));
        return Ok(None);
    }
    let mut all = mine;
    let per_line = all.scan.1 * all.per_point();
    for (rank, rank_lines) in lines.iter().enumerate().skip(1) {
        let msg = unpack(&world.receive(rank))?;
        let r = msg
            .first()
            .and_then(|b| Reduction::from_bytes(b))
            .context("a rank sent a malformed result")?;
        for &l in rank_lines {
            all.values[l * per_line..(l + 1) * per_line]
                .copy_from_slice(&r.values[l * per_line..(l + 1) * per_line]);
        }
        all.failed.extend(r.failed);
        let (s, o) = (&mut all.stats, r.stats);
        s.frames += o.frames;
        s.bytes_read += o.bytes_read;
        s.compressed_domain_frames += o.compressed_domain_frames;
        s.read_s = s.read_s.max(o.read_s);
        s.reduce_s = s.reduce_s.max(o.reduce_s);
    }
    all.failed.sort_by_key(|f| f.0);
    Ok(Some(all))
}

pub fn run(a: Args) -> Result<()> {
    if a.list {
        list();
        return Ok(());
    }
    let Some(target) = a.scan_file.clone() else {
        bail!("give the scan file (roibin stxm SCAN.h5 --scan 32x32 --out map.png); --list shows the algorithms");
    };
    let out = a
        .out
        .clone()
        .context("give --out map.h5|map.png|map.tiff|map.json|map.txt")?;
    let style = Style {
        palette: a.palette.clone(),
        log: a.log,
        cmin: a.cmin,
        cmax: a.cmax,
    };
    let req = a.request()?;
    if let Some(t) = a.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(roibin_registry::threads::capped(t))
            .build_global()
            .ok();
    }
    World::run(|world| {
        let mut src = source::open_with(&target, a.hdf5_read)?;
        let t0 = std::time::Instant::now();
        let cache = if a.no_cache || !world.is_root() {
            None
        } else {
            let dir = a
                .cache_dir
                .clone()
                .map(Into::into)
                .unwrap_or_else(Cache::default_dir);
            match Cache::open(&dir, a.cache_mib << 20) {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!("warning: {e}; running without the cache");
                    None
                }
            }
        };
        // Alone, a cached result needs no plan (masks, weights) at all.
        let lookup = RunOptions {
            decode: a.decode,
            cache: cache.as_ref(),
            ..RunOptions::default()
        };
        if world.size() == 1 {
            if let Some(r) = roibin_stxm::engine::cached(&req, src.info(), &lookup, t0) {
                output::write(&r, std::path::Path::new(&out), &style)?;
                summary(&r, &out, 1, a.json);
                return Ok(());
            }
        }
        // Every rank checks the request the same way before any work.
        let plan = roibin_stxm::engine::Plan::new(&req, src.as_mut())?;
        let (rows, cols) = plan.scan;
        let lines: Vec<Vec<usize>> = (0..world.size())
            .map(|r| (r..rows).step_by(world.size()).collect())
            .collect();
        let pb = bar(lines[world.rank()].len() * cols, a.json || !world.is_root());
        let progress = |n: usize| pb.inc(n as u64);
        let opts = RunOptions {
            lines: (world.size() > 1).then(|| lines[world.rank()].clone()),
            decode: a.decode,
            progress: Some(&progress),
            cache: cache.as_ref(),
        };
        let mine = roibin_stxm::engine::run_plan(&plan, src.as_mut(), &opts, t0)?;
        pb.finish_and_clear();
        let Some(r) = gather(world, mine, &lines)? else {
            return Ok(());
        };
        output::write(&r, std::path::Path::new(&out), &style)?;
        summary(&r, &out, world.size(), a.json);
        Ok(())
    })
}

fn summary(r: &Reduction, out: &str, ranks: usize, json: bool) {
    let s = &r.stats;
    let fps = s.frames as f64 / s.total_s.max(1e-9);
    let mbs = s.bytes_read as f64 / 1e6 / s.total_s.max(1e-9);
    if json {
        let v = serde_json::json!({
            "out": out,
            "request": r.request,
            "scan": [r.scan.0, r.scan.1],
            "value_shape": r.value_shape,
            "ranks": ranks,
            "frames_per_s": fps,
            "stored_mb_per_s": mbs,
            "failed": r.failed.iter().map(|(f, m)| serde_json::json!({"frame": f, "error": m})).collect::<Vec<_>>(),
            "stats": s,
        });
        println!("{v}");
        return;
    }
    if crate::ui::quiet() {
        return;
    }
    if s.cached {
        eprintln!(
            "{out}: {}x{} map from the result cache in {:.3} s",
            r.scan.0, r.scan.1, s.total_s
        );
    } else {
        eprintln!(
            "{out}: {}x{} map of {} {}; {} frames in {:.2} s ({fps:.1} frames/s, {mbs:.1} MB/s stored) on {ranks} rank(s); read {:.2} s, decode+reduce {:.2} s; {} frames in the compressed domain, {} lines from the cache; path: {}",
            r.scan.0, r.scan.1, r.algo, r.signal, s.frames, s.total_s, s.read_s, s.reduce_s, s.compressed_domain_frames, s.cached_lines, s.read_path
        );
    }
    for (f, m) in r.failed.iter().take(10) {
        eprintln!("frame {f} failed (NaN in the map): {m}");
    }
    if r.failed.len() > 10 {
        eprintln!("… and {} more failed frames", r.failed.len() - 10);
    }
}
