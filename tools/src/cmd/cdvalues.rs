use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Graph spec, e.g. 'bitshuffle|zstd(5)'
    spec: String,
}

pub fn run(a: Args) -> Result<()> {
    let _ = roibin_compressors::codec_names();
    // Check the codecs and options exist before printing values a client would store.
    let g: roibin_registry::Graph = a.spec.parse()?;
    for s in &g.stages {
        roibin_registry::lookup(&s.name)?;
    }
    let (tuple, ud) = h5roibin::client_strings(&a.spec)?;
    println!("filter id:  {}", h5roibin::FILTER_ID);
    println!(
        "h5py:       compression={}, compression_opts={tuple}",
        h5roibin::FILTER_ID
    );
    println!("h5repack:   -f {ud}");
    Ok(())
}
