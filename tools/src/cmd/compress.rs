use crate::grid::Grid;
use crate::h5io::{self, AtomicOutput, Dataset, File};
use crate::transcode::{self, Transform};
use crate::world::World;
use anyhow::{bail, Context, Result};
use roibin_registry::tuning::{self, TuningFile};
use roibin_registry::{spec::Value, Graph};

#[derive(clap::Args)]
pub struct CompressArgs {
    /// Input FILE:DATASET (any HDF5 dataset HDF5 can read; set HDF5_PLUGIN_PATH for its filters)
    input: String,
    /// Output FILE:DATASET (the file is created if missing; defaults to the input's dataset name)
    output: String,
    /// Graph spec (see `roibin list`)
    #[arg(long, default_value = "auto")]
    spec: String,
    /// Set an option by path, e.g. `--set zstd:level=5` (repeatable)
    #[arg(long = "set", value_name = "PATH=VALUE")]
    set: Vec<String>,
    /// Chunk shape, comma separated (default: the input's, or one frame for rank ≥ 3)
    #[arg(long, value_delimiter = ',')]
    chunk: Option<Vec<usize>>,
    /// Chunks encoded at once (0 = one per core)
    #[arg(long, default_value_t = 0)]
    tasks: usize,
    /// CXI peak-list group in the input file (nPeaks, peakXPosRaw, peakYPosRaw), e.g.
    /// /entry_1/result_1: roibin keeps windows around these centres instead of running a finder
    #[arg(long, value_name = "GROUP")]
    peaks: Option<String>,
    /// Tuning file from `roibin autotune` (default: $ROIBIN_TUNING): its frames per chunk, tasks
    /// and stage threads for this spec, dtype and host, where --chunk, --tasks and the spec do
    /// not say otherwise
    #[arg(long, value_name = "FILE")]
    tuning: Option<std::path::PathBuf>,
    /// Print the summary as JSON on stdout (ratio, speed, time per stage)
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct DecompressArgs {
    /// Input FILE:DATASET
    input: String,
    /// Output FILE:DATASET
    output: String,
    /// Chunks decoded at once (0 = one per core)
    #[arg(long, default_value_t = 0)]
    tasks: usize,
    /// Print the summary as JSON on stdout
    #[arg(long)]
    json: bool,
}

fn targets(input: &str, output: &str) -> Result<(String, String, String, String)> {
    let (fi, di) = h5io::split_target(input);
    let di = di.with_context(|| format!("`{input}`: name the dataset as FILE:DATASET"))?;
    let (fo, dout) = h5io::split_target(output);
    Ok((fi.into(), di.into(), fo.into(), dout.unwrap_or(di).into()))
}

pub fn default_chunk(shape: &[usize], input_chunk: Option<&[usize]>) -> Vec<usize> {
    if let Some(c) = input_chunk {
        return c.to_vec();
    }
    match shape.len() {
        0..=2 => shape.iter().map(|&d| d.max(1)).collect(),
        _ => std::iter::once(1)
            .chain(shape[1..].iter().copied())
            .collect(),
    }
}

/// Apply `--set path=value` overrides to a spec.
pub fn apply_sets(spec: &str, sets: &[String]) -> Result<Graph> {
    let mut g: Graph = roibin_registry::spec::spec_text(spec)?.parse()?;
    for s in sets {
        let (path, value) = s
            .split_once('=')
            .with_context(|| format!("`--set {s}`: expected PATH=VALUE"))?;
        let v: Graph = format!("x({value})")
            .parse()
            .with_context(|| format!("`--set {s}`: bad value"))?;
        let value: Value = v.stages[0].args[0].value.clone();
        g.set_option(path, value)?;
    }
    Ok(g)
}

pub fn compress(a: CompressArgs) -> Result<()> {
    World::run(|world| compress_on(a, world))
}

fn compress_on(a: CompressArgs, world: &World) -> Result<()> {
    h5io::register_filter()?;
    let (fi, di, fo, dout) = targets(&a.input, &a.output)?;
    let mut graph = apply_sets(&a.spec, &a.set)?;
    let peaks = match &a.peaks {
        Some(group) => {
            let top = graph
                .stages
                .first()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            if graph.stages.len() != 1 || (top != "roibin" && top != "roi") {
                bail!("--peaks needs a roibin(...) or roi(...) spec, not `{graph}`");
            }
            graph.set_option(&format!("{top}:peaks"), Value::Graph(Graph::word("given")))?;
            roibin_compressors::detector::roibin::allow_given_centres();
            Some(read_cxi_peaks(&fi, group)?)
        }
        None => None,
    };
    let tuning = match a
        .tuning
        .or_else(|| std::env::var_os(tuning::ENV).map(Into::into))
    {
        Some(path) => Some(TuningFile::load(&path)?),
        None => None,
    };
    let (report, canonical) = compress_dataset(
        &fi,
        &di,
        &fo,
        &dout,
        &graph,
        Layout {
            chunk: a.chunk,
            tasks: a.tasks,
            peaks: peaks.as_deref(),
            tuning: tuning.as_ref(),
            world: Some(world),
        },
    )?;
    if world.is_root() {
        if a.json {
            let mut v = report.to_json(&format!("{fi}:{di}"), &format!("{fo}:{dout}"), &canonical);
            v["ranks"] = world.size().into();
            println!("{v}");
            return Ok(());
        }
        crate::note!("{fi}:{di} → {fo}:{dout} with `{canonical}`");
        if world.size() > 1 {
            crate::note!("  {} ranks; times are rank 0's", world.size());
        }
        report.print("compressed");
    }
    Ok(())
}

/// How `compress_dataset` lays chunks out and encodes them.
#[derive(Default)]
pub struct Layout<'a> {
    /// Chunk shape (default: the input's, or one frame).
    pub chunk: Option<Vec<usize>>,
    /// Chunks encoded at once (0 = one per core).
    pub tasks: usize,
    /// Writer-supplied peak centres per frame, for `peaks=given`.
    pub peaks: Option<&'a [Vec<[f32; 2]>]>,
    /// Tuned allocations to pick from (frames per chunk, tasks, stage threads).
    pub tuning: Option<&'a TuningFile>,
    /// The ranks sharing the work (rank 0 writes); `None`: this process alone.
    pub world: Option<&'a World>,
}

/// Compress `fi:di` into a new dataset `fo:dout` with `graph`; returns the report and the canonical spec.
pub fn compress_dataset(
    fi: &str,
    di: &str,
    fo: &str,
    dout: &str,
    graph: &Graph,
    how: Layout<'_>,
) -> Result<(transcode::Report, String)> {
    let Layout {
        chunk,
        mut tasks,
        peaks,
        tuning,
        world,
    } = how;
    let single = World::init_single();
    let world = world.unwrap_or(&single);
    if fo == fi {
        bail!("write the output to another file than the input");
    }
    let inf = File::open(fi)?;
    let src = inf.dataset(di)?;
    let given_chunk = chunk.is_some();
    let mut chunk = chunk.unwrap_or_else(|| default_chunk(&src.shape, src.chunk.as_deref()));
    if chunk.len() != src.shape.len() || chunk.contains(&0) {
        bail!(
            "--chunk {chunk:?} does not fit a dataset of shape {:?}",
            src.shape
        );
    }
    let mut chunk_meta = roibin_registry::ArrayMeta::new(src.dtype, chunk.clone());
    let mut pipeline = roibin_compressors::pipeline(graph, &chunk_meta)?;
    let host = tuning::host();
    if let Some(entry) =
        tuning.and_then(|t| t.find(pipeline.stored_spec(), src.dtype, &chunk, &host))
    {
        if !given_chunk && entry.chunk != chunk {
            chunk = entry.chunk.clone();
            chunk[0] = chunk[0].min(src.shape[0]).max(1);
            chunk_meta = roibin_registry::ArrayMeta::new(src.dtype, chunk.clone());
        }
        if tasks == 0 {
            tasks = entry.tasks;
        }
        let mut tuned = pipeline.canonical().clone();
        entry.apply(&mut tuned)?;
        pipeline = roibin_compressors::pipeline(&tuned, &chunk_meta)?;
        if world.is_root() {
            crate::note!(
                "tuned for {host}: chunk {chunk:?}, {tasks} tasks, `{}`",
                pipeline.canonical()
            );
        }
    }
    // The dataset keeps the spec without run-time options: the file is the same whatever
    // allocation wrote it, and readers/appenders pick their own threads.
    let cd =
        h5roibin::cdvalues::resolve(&graph.without_option("threads").to_string(), &chunk_meta)?
            .to_words()?;
    // Rank 0 alone creates and writes the output (under a temporary name, renamed when all
    // went well); the others only read and encode.
    let atomic = match world.is_root() {
        true => Some(AtomicOutput::begin(fo)?),
        false => None,
    };
    let out = match &atomic {
        Some(a) => Some(File::open_rw(&a.tmp_path())?),
        None => None,
    };
    let dst = match &out {
        Some(out) => Some(out.create_dataset(
            dout,
            src.dtype,
            &src.shape,
            &chunk,
            &[(h5roibin::FILTER_ID, cd)],
        )?),
        None => None,
    };
    let report = transcode::run(
        &src,
        dst.as_ref(),
        &Grid::new(&src.shape, &chunk),
        Transform::Encode(&pipeline),
        tasks,
        peaks,
        world,
    )?;
    finish(dst, out, atomic)?;
    Ok((report, pipeline.canonical().to_string()))
}

/// Close the written dataset and file (flushing: a full disk fails here, not at exit) and
/// give the output its name.
fn finish(dst: Option<Dataset>, out: Option<File>, atomic: Option<AtomicOutput>) -> Result<()> {
    drop(dst);
    if let Some(out) = out {
        out.close()?;
    }
    if let Some(a) = atomic {
        a.commit()?;
    }
    Ok(())
}

pub fn decompress(a: DecompressArgs) -> Result<()> {
    World::run(|world| decompress_on(a, world))
}

fn decompress_on(a: DecompressArgs, world: &World) -> Result<()> {
    h5io::register_filter()?;
    let (fi, di, fo, dout) = targets(&a.input, &a.output)?;
    if fo == fi {
        bail!("write the output to another file than the input");
    }
    let inf = File::open(&fi)?;
    let src = inf.dataset(&di)?;
    let chunk = default_chunk(&src.shape, src.chunk.as_deref());
    let atomic = match world.is_root() {
        true => Some(AtomicOutput::begin(&fo)?),
        false => None,
    };
    let out = match &atomic {
        Some(a) => Some(File::open_rw(&a.tmp_path())?),
        None => None,
    };
    let dst = match &out {
        Some(out) => Some(out.create_dataset(&dout, src.dtype, &src.shape, &chunk, &[])?),
        None => None,
    };
    let report = transcode::run(
        &src,
        dst.as_ref(),
        &Grid::new(&src.shape, &chunk),
        Transform::Plain,
        a.tasks,
        None,
        world,
    )?;
    finish(dst, out, atomic)?;
    if world.is_root() && a.json {
        println!(
            "{}",
            report.to_json(&format!("{fi}:{di}"), &format!("{fo}:{dout}"), "")
        );
    } else if world.is_root() {
        report.print("decompressed");
    }
    Ok(())
}

/// Peak centres `[y, x]` per frame from a CXI peak-list group.
pub fn read_cxi_peaks(file: &str, group: &str) -> Result<Vec<Vec<[f32; 2]>>> {
    let f = hdf5::File::open(file).with_context(|| format!("open {file}"))?;
    let g = f
        .group(group)
        .with_context(|| format!("`{file}` has no peak-list group `{group}`"))?;
    let need = |name: &str| {
        g.dataset(name).with_context(|| {
            format!(
                "`{group}` has no `{name}` (CXI peak lists need nPeaks, peakXPosRaw, peakYPosRaw)"
            )
        })
    };
    let n: Vec<i64> = need("nPeaks")?.read_raw::<i64>()?;
    let ys = need("peakYPosRaw")?;
    let xs = need("peakXPosRaw")?;
    let width = ys.shape().get(1).copied().unwrap_or(0);
    let (y, x): (Vec<f32>, Vec<f32>) = (ys.read_raw()?, xs.read_raw()?);
    if y.len() != n.len() * width || x.len() != y.len() {
        bail!("`{group}`: peakYPosRaw/peakXPosRaw do not have one row per frame of nPeaks");
    }
    Ok(n.iter()
        .enumerate()
        .map(|(i, &k)| {
            (0..(k.max(0) as usize).min(width))
                .map(|j| [y[i * width + j], x[i * width + j]])
                .collect()
        })
        .collect())
}
