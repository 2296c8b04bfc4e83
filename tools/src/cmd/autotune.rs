//! `roibin autotune`: search tasks, per-stage threads and frames per chunk for a spec on a
//! sample of the input, OptZConfig-style, and write the best allocation to a tuning file.
//!
//! The objective is the wall time to encode the sample (chunks in parallel over `tasks`, each
//! stage with its `threads`), per frame, measured in memory so disk and HDF5 do not blur it.
//! The search is [`crate::maxlipo`] on log time; every candidate runs once, and again up to
//! `--repeats` times (median) when it comes near the best, so one lucky run cannot win.

use crate::cmd::compress::{apply_sets, default_chunk};
use crate::h5io::{self, File};
use crate::maxlipo::{ladder, Dim, Search};
use crate::world::World;
use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use rayon::prelude::*;
use roibin_registry::spec::Value;
use roibin_registry::tuning::{self, Entry, TuningFile};
use roibin_registry::{container, threads, ArrayMeta, DType, Graph, Pipeline};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// Input FILE:DATASET of frames (rank ≥ 3: frame, …)
    input: String,
    /// Graph spec to tune (see `roibin list`)
    #[arg(long, default_value = "auto")]
    spec: String,
    /// Set an option by path, e.g. `--set roibin/background/sz:abs=45` (repeatable)
    #[arg(long = "set", value_name = "PATH=VALUE")]
    set: Vec<String>,
    /// Frames of the input to tune on (frames per chunk go up to half of them)
    #[arg(long, default_value_t = 32)]
    frames: usize,
    /// Wall-clock budget for the search, in seconds
    #[arg(long, default_value_t = 60.0)]
    budget: f64,
    /// Stop after this many candidate allocations
    #[arg(long, default_value_t = 200)]
    max_evals: usize,
    /// Runs per promising candidate (the median counts)
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Largest number of tasks tried (default: twice the cores)
    #[arg(long)]
    max_tasks: Option<usize>,
    /// Only allocations whose chunks compress at least this much (input bytes / stored bytes)
    #[arg(long)]
    min_ratio: Option<f64>,
    /// Only allocations whose chunk holding one frame decodes within this many milliseconds
    /// (interactive viewers read one frame at a time)
    #[arg(long)]
    max_decode_ms: Option<f64>,
    /// Tuning file to add the result to (default: $ROIBIN_TUNING, else roibin-tuning.json)
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Seed of the search
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also print the result as JSON on stdout
    #[arg(long)]
    json: bool,
    /// Choose the graph instead of the threads: candidate ROIBIN graphs at --bound, the one with
    /// the highest ratio whose recall and precision against --reference reach --target
    #[arg(long)]
    science: bool,
    /// With --science: the error bound of the background (sz abs, in the data's units)
    #[arg(long)]
    bound: Option<f64>,
    /// With --science: the finder the decoded frames are judged by (ours equals DIALS's)
    #[arg(long, default_value = "dispersion_extended(gain=0,max_peaks=1048576)")]
    reference: String,
    /// With --science: the least recall and precision, as a fraction
    #[arg(long, default_value_t = 0.995)]
    target: f64,
}

/// Frames read once into memory.
pub struct Sample {
    pub dtype: DType,
    /// Shape of one frame (the dataset's shape without its first axis).
    pub frame: Vec<usize>,
    pub frames: usize,
    pub bytes: Vec<u8>,
    /// Frames per chunk `roibin compress` would use without tuning.
    pub default_fpc: usize,
}

impl Sample {
    /// Read the first `frames` frames of `file:dset`.
    pub fn read(file: &str, dset: &str, frames: usize) -> Result<Sample> {
        h5io::register_filter()?;
        let f = File::open(file)?;
        let d = f.dataset(dset)?;
        if d.shape.len() < 3 {
            bail!(
                "`{file}:{dset}` has shape {:?}: autotune tunes stacks of frames (rank ≥ 3); \
                 for a single image choose --tasks and threads by hand",
                d.shape
            );
        }
        let frames = frames.min(d.shape[0]);
        if frames < 2 {
            bail!(
                "autotune needs at least 2 frames; `{file}:{dset}` has {}",
                d.shape[0]
            );
        }
        let mut count = d.shape.clone();
        count[0] = frames;
        let bytes = d.read_box(&vec![0; count.len()], &count)?;
        // A sample smaller than the input's chunks is tuned with chunks of the whole sample.
        let default_fpc = default_chunk(&d.shape, d.chunk.as_deref())[0].min(frames);
        Ok(Sample {
            dtype: d.dtype,
            frame: d.shape[1..].to_vec(),
            frames,
            bytes,
            default_fpc,
        })
    }

    fn frame_bytes(&self) -> usize {
        self.frame.iter().product::<usize>() * self.dtype.size()
    }

    /// Chunk meta for `fpc` frames per chunk.
    pub fn chunk(&self, fpc: usize) -> ArrayMeta {
        let mut shape = vec![fpc];
        shape.extend_from_slice(&self.frame);
        ArrayMeta::new(self.dtype, shape)
    }
}

/// One point of the search space, in values.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    pub tasks: usize,
    /// `threads` per stage path (0: the stage runs in its task's pool).
    pub threads: Vec<(String, usize)>,
    pub fpc: usize,
}

impl Allocation {
    /// The graph with these stage threads set.
    pub fn graph(&self, canonical: &Graph) -> Result<Graph> {
        let mut g = canonical.clone();
        for (path, n) in &self.threads {
            g.set_option(&format!("{path}:threads"), Value::Number(n.to_string()))?;
        }
        Ok(g)
    }
}

impl std::fmt::Display for Allocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} frames/chunk, {} tasks", self.fpc, self.tasks)?;
        for (path, n) in &self.threads {
            write!(f, ", {path} threads={n}")?;
        }
        Ok(())
    }
}

/// What one allocation measured.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    /// Median wall seconds per frame.
    pub secs_per_frame: f64,
    /// Input bytes / stored bytes over the sample.
    pub ratio: f64,
    /// Median milliseconds to decode the chunk holding one frame (when asked for).
    pub decode_ms: Option<f64>,
    pub runs: usize,
}

/// Encode the sample's whole chunks with `alloc` once; wall time per frame and the ratio.
fn encode_once(sample: &Sample, pipeline: &Pipeline, alloc: &Allocation) -> Result<(f64, f64)> {
    let meta = sample.chunk(alloc.fpc);
    let chunk_bytes = sample.frame_bytes() * alloc.fpc;
    let chunks = sample.frames / alloc.fpc;
    let t = Instant::now();
    let stored: Vec<usize> = threads::install(alloc.tasks, || {
        sample.bytes[..chunks * chunk_bytes]
            .par_chunks(chunk_bytes)
            .map(|c| container::encode_with(pipeline, &meta, c).map(|e| e.len()))
            .collect::<roibin_registry::Result<Vec<_>>>()
    })?;
    let secs = t.elapsed().as_secs_f64();
    let frames = (chunks * alloc.fpc) as f64;
    let ratio = (chunks * chunk_bytes) as f64 / stored.iter().sum::<usize>().max(1) as f64;
    Ok((secs / frames, ratio))
}

/// Decode the first chunk as a reader would (its stored spec, default threads); median of 3.
fn decode_ms(sample: &Sample, pipeline: &Pipeline, fpc: usize) -> Result<f64> {
    let meta = sample.chunk(fpc);
    let enc = container::encode_with(pipeline, &meta, &sample.bytes[..meta.nbytes()])?;
    let mut runs: Vec<f64> = (0..3)
        .map(|_| {
            let t = Instant::now();
            container::decode(&enc).map(|_| t.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<roibin_registry::Result<_>>()?;
    runs.sort_by(f64::total_cmp);
    Ok(runs[1])
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Measure `alloc`: one run, then up to `repeats` when `near` says the first is promising.
pub fn measure(
    sample: &Sample,
    canonical: &Graph,
    alloc: &Allocation,
    repeats: usize,
    near: impl Fn(f64) -> bool,
    with_decode: bool,
) -> Result<Measured> {
    let meta = sample.chunk(alloc.fpc);
    let pipeline = roibin_compressors::pipeline(&alloc.graph(canonical)?, &meta)?;
    let (first, ratio) = encode_once(sample, &pipeline, alloc)?;
    let mut runs = vec![first];
    if near(first) {
        for _ in 1..repeats.max(1) {
            runs.push(encode_once(sample, &pipeline, alloc)?.0);
        }
    }
    let decode_ms = if with_decode {
        Some(decode_ms(sample, &pipeline, alloc.fpc)?)
    } else {
        None
    };
    Ok(Measured {
        runs: runs.len(),
        secs_per_frame: median(&mut runs),
        ratio,
        decode_ms,
    })
}

/// Stage paths of `canonical` whose codec has a `threads` option.
pub fn threaded_stages(canonical: &Graph) -> Vec<String> {
    canonical
        .stage_paths()
        .into_iter()
        .filter(|p| {
            let name = p.rsplit('/').next().unwrap_or(p);
            roibin_registry::lookup(name)
                .map(|c| c.options.iter().any(|o| o.name == "threads"))
                .unwrap_or(false)
        })
        .collect()
}

/// The lattice searched: tasks, one threads axis per threaded stage, frames per chunk.
pub struct Space {
    pub stages: Vec<String>,
    pub dims: Vec<Dim>,
}

impl Space {
    pub fn new(stages: Vec<String>, cores: usize, max_tasks: usize, sample: &Sample) -> Space {
        let mut dims = vec![Dim::of("tasks", ladder(max_tasks.max(1)))];
        for s in &stages {
            // 0 first: "run in the task's pool", the default.
            let values = std::iter::once(0).chain(ladder(cores)).collect();
            dims.push(Dim::of(&format!("{s} threads"), values));
        }
        let mut fpc: Vec<usize> = ladder(64)
            .into_iter()
            .filter(|&f| f <= (sample.frames / 2).max(1))
            .collect();
        if !fpc.contains(&sample.default_fpc) && sample.default_fpc <= sample.frames {
            fpc.push(sample.default_fpc);
            fpc.sort_unstable();
        }
        dims.push(Dim::of("frames per chunk", fpc));
        Space { stages, dims }
    }

    pub fn allocation(&self, search: &Search, p: &[usize]) -> Allocation {
        let last = self.dims.len() - 1;
        Allocation {
            tasks: search.value(p, 0),
            threads: self
                .stages
                .iter()
                .enumerate()
                .map(|(i, s)| (s.clone(), search.value(p, 1 + i)))
                .collect(),
            fpc: search.value(p, last),
        }
    }

    /// The allocation with these values, in [`Space::values`] order.
    pub fn from_values(&self, v: &[usize]) -> Allocation {
        Allocation {
            tasks: v[0],
            threads: self
                .stages
                .iter()
                .zip(&v[1..])
                .map(|(s, &n)| (s.clone(), n))
                .collect(),
            fpc: v[v.len() - 1],
        }
    }

    pub fn values(&self, a: &Allocation) -> Vec<usize> {
        std::iter::once(a.tasks)
            .chain(a.threads.iter().map(|t| t.1))
            .chain(std::iter::once(a.fpc))
            .collect()
    }
}

/// What a finished search reports.
#[derive(Debug, serde::Serialize)]
pub struct Outcome {
    pub evaluations: usize,
    pub lattice: usize,
    pub search_seconds: f64,
    pub default: String,
    pub best: String,
    pub default_secs_per_frame: f64,
    pub best_secs_per_frame: f64,
    pub speedup: f64,
    pub ratio: f64,
    pub decode_ms: Option<f64>,
    pub tuning_file: String,
}

pub fn run(a: Args) -> Result<()> {
    if a.science {
        let bound = a
            .bound
            .context("--science needs --bound: the background's error bound in the data's units")?;
        return super::science_tune::run(super::science_tune::Options {
            input: &a.input,
            frames: a.frames,
            bound,
            reference: &a.reference,
            target: a.target,
            output: a.output.as_deref(),
            json: a.json,
        });
    }
    World::run(|world| run_on(a, world))
}

fn run_on(a: Args, world: &World) -> Result<()> {
    let (file, dset) = h5io::split_target(&a.input);
    let dset = dset.with_context(|| format!("`{}`: name the dataset as FILE:DATASET", a.input))?;
    let graph = apply_sets(&a.spec, &a.set)?;
    if graph.uses("given") {
        bail!("autotune runs the peak finder itself: tune with pf8 or pfv3, not peaks=given");
    }
    let sample = Sample::read(file, dset, a.frames)?;
    let cores = roibin_registry::threads::cores();
    let canonical = roibin_compressors::pipeline(&graph, &sample.chunk(sample.default_fpc))?
        .canonical()
        .clone();
    let stages = threaded_stages(&canonical);
    let space = Space::new(
        stages.clone(),
        cores,
        a.max_tasks.unwrap_or(2 * cores),
        &sample,
    );
    let default = Allocation {
        tasks: cores,
        threads: stages.iter().map(|s| (s.clone(), 0)).collect(),
        fpc: sample.default_fpc,
    };
    let mut search = Search::new(space.dims.clone(), a.seed);
    if world.is_root() {
        eprintln!(
            "tuning `{canonical}` on {} frames of {:?} {} ({} MB) over {} allocations \
             (tasks × {} stage threads × frames per chunk), budget {:.0} s{}",
            sample.frames,
            sample.frame,
            sample.dtype,
            sample.bytes.len() / 1_000_000,
            search.size(),
            stages.len(),
            a.budget,
            match world.size() {
                1 => String::new(),
                n => format!(", {n} candidates at a time over {n} ranks"),
            }
        );
    }

    let with_decode = a.max_decode_ms.is_some();
    let feasible = |m: &Measured| {
        a.min_ratio.is_none_or(|r| m.ratio >= r)
            && a.max_decode_ms
                .is_none_or(|ms| m.decode_ms.is_some_and(|d| d <= ms))
    };
    // Infeasible allocations score ten times their time: worse than any feasible neighbour,
    // still ordered so the search can walk out of the infeasible region.
    let score = |m: &Measured| m.secs_per_frame.ln() + if feasible(m) { 0.0 } else { 10f64.ln() };

    // Warm up (pools, the finder's geometry files, page faults), then the default first.
    measure(&sample, &canonical, &default, 1, |_| false, false)?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(a.budget);
    let pb = match world.is_root() {
        true => crate::ui::bar(a.max_evals, "autotune [{bar:30}] {pos}/{len} {msg}"),
        false => ProgressBar::hidden(),
    };
    let mut best: Option<(Allocation, Measured)> = None;
    let p0 = search
        .point_of(&space.values(&default))
        .context("default allocation outside the searched lattice")?;
    // Rounds: rank 0 asks one candidate per rank (the default first), every rank measures its
    // own, all results come back to rank 0's search. One process: one candidate a round.
    let mut pending = Some(p0);
    loop {
        let mut points: Vec<Vec<usize>> = vec![];
        let mut msg: Vec<f64> = vec![];
        if world.is_root() {
            let open = search.evaluated() < a.max_evals && Instant::now() < deadline;
            while open && points.len() < world.size() {
                match pending.take().or_else(|| search.ask()) {
                    Some(p) => points.push(p),
                    None => break,
                }
            }
            let bar = best.as_ref().map_or(f64::INFINITY, |b| b.1.secs_per_frame);
            msg = vec![points.len() as f64, bar];
            for p in &points {
                let alloc = space.allocation(&search, p);
                msg.extend(space.values(&alloc).iter().map(|&v| v as f64));
            }
        }
        world.broadcast(&mut msg);
        let (n, bar) = (msg[0] as usize, msg[1]);
        if n == 0 {
            break;
        }
        let width = space.dims.len();
        let mine = (world.rank() < n).then(|| {
            let at = 2 + world.rank() * width;
            let values: Vec<usize> = msg[at..at + width].iter().map(|&v| v as usize).collect();
            space.from_values(&values)
        });
        let mut result = [f64::NAN; 4];
        if let Some(alloc) = &mine {
            let m = measure(
                &sample,
                &canonical,
                alloc,
                a.repeats,
                |t| t < bar * 1.15,
                with_decode,
            )?;
            result = [
                m.secs_per_frame,
                m.ratio,
                m.decode_ms.unwrap_or(f64::NAN),
                m.runs as f64,
            ];
        }
        let all = world.all_gather(&result);
        for (k, p) in points.into_iter().enumerate() {
            let r = &all[4 * k..4 * k + 4];
            let m = Measured {
                secs_per_frame: r[0],
                ratio: r[1],
                decode_ms: (!r[2].is_nan()).then_some(r[2]),
                runs: r[3] as usize,
            };
            let alloc = space.allocation(&search, &p);
            search.tell(p, score(&m));
            if best.as_ref().is_none_or(|(_, b)| score(&m) < score(b)) {
                pb.set_message(format!(
                    "best {:.1} ms/frame: {alloc}",
                    m.secs_per_frame * 1e3
                ));
                best = Some((alloc, m));
            }
            pb.inc(1);
        }
    }
    if !world.is_root() {
        return Ok(());
    }
    pb.finish_and_clear();
    let search_seconds = start.elapsed().as_secs_f64();
    let evaluations = search.evaluated();
    let (best_alloc, _) = best.context("no allocation was measured")?;

    // Tuned vs default, interleaved so drifts in machine load hit both alike. When the search
    // found nothing better than the default, the default stands and the speed-up is 1.
    let confirm = a.repeats.max(3) + 2;
    let (mut d_runs, mut b_runs) = (vec![], vec![]);
    let (mut d_m, mut b_m) = (None, None);
    for _ in 0..confirm {
        let m = measure(&sample, &canonical, &default, 1, |_| false, with_decode)?;
        d_runs.push(m.secs_per_frame);
        d_m = Some(m);
        if best_alloc != default {
            let m = measure(&sample, &canonical, &best_alloc, 1, |_| false, with_decode)?;
            b_runs.push(m.secs_per_frame);
            b_m = Some(m);
        }
    }
    let d = median(&mut d_runs);
    let d_m = d_m.expect("confirm runs at least once");
    let (chosen, chosen_spf, best_m) = match b_m {
        Some(m) if median(&mut b_runs) < d && feasible(&m) => (best_alloc, median(&mut b_runs), m),
        _ => (default.clone(), d, d_m),
    };

    let path = a
        .output
        .or_else(|| std::env::var_os(tuning::ENV).map(Into::into))
        .unwrap_or_else(|| "roibin-tuning.json".into());
    let meta = sample.chunk(chosen.fpc);
    let stored = roibin_compressors::pipeline(&chosen.graph(&canonical)?, &meta)?
        .stored_spec()
        .to_string();
    let mut file = TuningFile::load_or_default(&path)?;
    file.upsert(Entry {
        spec: stored,
        dtype: sample.dtype.name().into(),
        chunk: meta.shape.clone(),
        host: tuning::host(),
        cores,
        tasks: chosen.tasks,
        threads: chosen.threads.iter().cloned().collect(),
        seconds_per_frame: chosen_spf,
        default_seconds_per_frame: d,
        ratio: best_m.ratio,
    });
    file.save(&path)?;

    let out = Outcome {
        evaluations,
        lattice: search.size(),
        search_seconds,
        default: default.to_string(),
        best: chosen.to_string(),
        default_secs_per_frame: d,
        best_secs_per_frame: chosen_spf,
        speedup: d / chosen_spf,
        ratio: best_m.ratio,
        decode_ms: best_m.decode_ms,
        tuning_file: path.display().to_string(),
    };
    eprintln!(
        "searched {evaluations} of {} allocations in {search_seconds:.1} s",
        out.lattice
    );
    eprintln!("  default: {} → {:.2} ms/frame", out.default, d * 1e3);
    eprintln!("  best:    {} → {:.2} ms/frame", out.best, chosen_spf * 1e3);
    eprintln!(
        "  tuned vs default: {:.2}× ({:+.1}%), ratio {:.1}{}",
        out.speedup,
        (out.speedup - 1.0) * 100.0,
        out.ratio,
        out.decode_ms
            .map(|ms| format!(", one-frame read {ms:.1} ms"))
            .unwrap_or_default()
    );
    eprintln!("  written to {}", out.tuning_file);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}
