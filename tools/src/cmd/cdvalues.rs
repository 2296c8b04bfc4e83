use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Graph spec, e.g. 'bitshuffle|zstd(5)', or @FILE holding one (short cd_values for
    /// h5repack, which takes at most 20 values; the plugin reads FILE at dataset creation)
    spec: String,
}

pub fn run(a: Args) -> Result<()> {
    let _ = roibin_compressors::codec_names();
    // Check the codecs and options (nested graphs too) before printing values a client would store.
    let g: roibin_registry::Graph = roibin_registry::spec::spec_text(&a.spec)?.parse()?;
    roibin_registry::check_graph(&g)?;
    let (tuple, ud) = h5roibin::client_strings(&a.spec)?;
    println!("filter id:  {}", h5roibin::FILTER_ID);
    println!(
        "h5py:       compression={}, compression_opts={tuple}",
        h5roibin::FILTER_ID
    );
    println!("h5repack:   -f {ud}");
    if ud.split(',').count() > 23 {
        eprintln!(
            "note: h5repack 1.10 takes at most 20 cd_values; put the spec in a file and pass @FILE"
        );
    }
    Ok(())
}
