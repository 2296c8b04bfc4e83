use crate::h5io::{self, Dataset, File};
use anyhow::Result;
use h5roibin::{CdValues, FILTER_ID};
use roibin_registry::container;

#[derive(clap::Args)]
pub struct Args {
    /// FILE or FILE:DATASET (a dataset gets a per-chunk table)
    target: String,
}

fn filter_name(id: i32) -> &'static str {
    match id {
        1 => "deflate",
        2 => "shuffle",
        3 => "fletcher32",
        4 => "szip",
        5 => "nbit",
        6 => "scaleoffset",
        307 => "bzip2",
        32001 => "blosc",
        32004 => "lz4",
        32008 => "bitshuffle",
        32013 => "zfp",
        32015 => "zstd",
        32017 => "sz",
        32024 => "sz3",
        FILTER_ID => "roibin",
        _ => "?",
    }
}

fn describe(name: &str, d: &Dataset, per_chunk: bool) -> Result<()> {
    match &d.chunk {
        Some(c) => println!("{name}: {} {:?} chunks {c:?}", d.dtype, d.shape),
        None => println!("{name}: {} {:?} not chunked", d.dtype, d.shape),
    }
    for (id, cd) in &d.filters {
        if *id == FILTER_ID {
            match CdValues::from_words(cd) {
                Ok(c) => println!("  filter {id} (roibin): spec `{}`", c.spec()),
                Err(e) => println!("  filter {id} (roibin): unreadable cd_values: {e}"),
            }
        } else {
            println!("  filter {id} ({}) cd_values {cd:?}", filter_name(*id));
        }
    }
    let Some(chunk) = &d.chunk else { return Ok(()) };
    let raw = (chunk.iter().product::<usize>() * d.dtype.size()) as f64;
    let sizes = d.chunk_sizes()?;
    if sizes.is_empty() {
        println!("  no chunks written");
        return Ok(());
    }
    let mut ratios: Vec<f64> = sizes
        .iter()
        .map(|(_, s)| raw / (*s).max(1) as f64)
        .collect();
    let stored: u64 = sizes.iter().map(|(_, s)| s).sum();
    // roibin chunks are read once (they are small): the table shows their specs, and roibin/roi
    // chunks carry their peak counts.
    let chunks: Vec<Vec<u8>> = if d.is_roibin_only() {
        sizes
            .iter()
            .map(|(off, _)| d.read_raw_chunk(off).map(|c| c.0))
            .collect::<Result<_>>()?
    } else {
        vec![]
    };
    if per_chunk {
        println!(
            "  {:<24} {:>12} {:>9}  spec",
            "chunk offset", "bytes", "ratio"
        );
        for (k, ((off, size), r)) in sizes.iter().zip(&ratios).enumerate() {
            let spec = if let Some(bytes) = chunks.get(k) {
                match container::read_header(bytes) {
                    Ok(h) if h.raw => "(stored raw)".to_string(),
                    Ok(h) => h.spec.to_string(),
                    Err(e) => format!("CORRUPT: {e}"),
                }
            } else {
                String::new()
            };
            println!(
                "  {:<24} {:>12} {:>9.2}  {spec}",
                format!("{off:?}"),
                size,
                r
            );
        }
    }
    if !chunks.is_empty() {
        roibin_frames(d, &sizes, &chunks);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "  {} chunks, {} bytes stored, ratio {:.2} (per chunk min {:.2}, median {:.2}, max {:.2})",
        sizes.len(),
        stored,
        raw * sizes.len() as f64 / stored.max(1) as f64,
        ratios[0],
        ratios[ratios.len() / 2],
        ratios[ratios.len() - 1]
    );
    Ok(())
}

/// For `roibin`/`roi` chunks: peaks per frame and the frames flagged as non-hits
/// (`min_peaks`), read from the chunks' own sections without decoding pixels.
fn roibin_frames(d: &Dataset, sizes: &[(Vec<usize>, u64)], chunks: &[Vec<u8>]) {
    let (mut frames, mut found, mut windows) = (0usize, 0usize, 0usize);
    let (mut least, mut most) = (usize::MAX, 0usize);
    let mut non_hits = vec![];
    for ((off, _), bytes) in sizes.iter().zip(chunks) {
        let Ok(info) = roibin_compressors::detector::roibin::frames(bytes) else {
            return; // not a roibin/roi graph (or stored raw): nothing to add
        };
        let first = if d.shape.len() >= 3 { off[0] } else { 0 };
        for (k, f) in info.iter().enumerate() {
            if first + k >= d.shape[0] && d.shape.len() >= 3 {
                break; // padding frames of a partial last chunk
            }
            frames += 1;
            found += f.found;
            windows += f.windows.len();
            least = least.min(f.found);
            most = most.max(f.found);
            if f.non_hit {
                non_hits.push(first + k);
            }
        }
    }
    if frames == 0 {
        return;
    }
    println!(
        "  ROIBIN: {frames} frames, {found} peaks ({:.1}/frame, min {least}, max {most}), {windows} windows, {} non-hit frames{}",
        found as f64 / frames as f64,
        non_hits.len(),
        if non_hits.is_empty() {
            String::new()
        } else {
            let shown: Vec<String> = non_hits.iter().take(20).map(|i| i.to_string()).collect();
            format!(
                ": {}{}",
                shown.join(", "),
                if non_hits.len() > 20 { ", …" } else { "" }
            )
        }
    );
}

pub fn run(a: Args) -> Result<()> {
    h5io::register_filter()?;
    let (file, dset) = h5io::split_target(&a.target);
    let f = File::open(file)?;
    match dset {
        Some(d) => describe(d, &f.dataset(d)?, true),
        None => {
            for name in f.dataset_names()? {
                match f.dataset(&name) {
                    Ok(d) => describe(&name, &d, false)?,
                    Err(e) => println!("{name}: {e}"),
                }
            }
            Ok(())
        }
    }
}
