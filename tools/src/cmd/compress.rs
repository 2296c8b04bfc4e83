use crate::grid::Grid;
use crate::h5io::{self, File};
use crate::transcode::{self, Transform};
use anyhow::{bail, Context, Result};
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
    h5io::register_filter()?;
    let (fi, di, fo, dout) = targets(&a.input, &a.output)?;
    let graph = apply_sets(&a.spec, &a.set)?;
    let (report, canonical) = compress_dataset(&fi, &di, &fo, &dout, &graph, a.chunk, a.tasks)?;
    eprintln!("{fi}:{di} → {fo}:{dout} with `{canonical}`");
    report.print("compressed");
    Ok(())
}

/// Compress `fi:di` into a new dataset `fo:dout` with `graph`; returns the report and the canonical spec.
pub fn compress_dataset(
    fi: &str,
    di: &str,
    fo: &str,
    dout: &str,
    graph: &Graph,
    chunk: Option<Vec<usize>>,
    tasks: usize,
) -> Result<(transcode::Report, String)> {
    if fo == fi {
        bail!("write the output to another file than the input");
    }
    let inf = File::open(fi)?;
    let src = inf.dataset(di)?;
    let chunk = chunk.unwrap_or_else(|| default_chunk(&src.shape, src.chunk.as_deref()));
    if chunk.len() != src.shape.len() || chunk.contains(&0) {
        bail!(
            "--chunk {chunk:?} does not fit a dataset of shape {:?}",
            src.shape
        );
    }
    let chunk_meta = roibin_registry::ArrayMeta::new(src.dtype, chunk.clone());
    let pipeline = roibin_compressors::pipeline(graph, &chunk_meta)?;
    let cd = h5roibin::cdvalues::resolve(&graph.to_string(), &chunk_meta)?.to_words()?;
    let out = File::open_rw(fo)?;
    let dst = out.create_dataset(
        dout,
        src.dtype,
        &src.shape,
        &chunk,
        &[(h5roibin::FILTER_ID, cd)],
    )?;
    let report = transcode::run(
        &src,
        &dst,
        &Grid::new(&src.shape, &chunk),
        Transform::Encode(&pipeline),
        tasks,
    )?;
    Ok((report, pipeline.canonical().to_string()))
}

pub fn decompress(a: DecompressArgs) -> Result<()> {
    h5io::register_filter()?;
    let (fi, di, fo, dout) = targets(&a.input, &a.output)?;
    if fo == fi {
        bail!("write the output to another file than the input");
    }
    let inf = File::open(&fi)?;
    let src = inf.dataset(&di)?;
    let chunk = default_chunk(&src.shape, src.chunk.as_deref());
    let out = File::open_rw(&fo)?;
    let dst = out.create_dataset(&dout, src.dtype, &src.shape, &chunk, &[])?;
    let report = transcode::run(
        &src,
        &dst,
        &Grid::new(&src.shape, &chunk),
        Transform::Plain,
        a.tasks,
    )?;
    report.print("decompressed");
    Ok(())
}
