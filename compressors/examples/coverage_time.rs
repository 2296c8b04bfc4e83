//! Time `coverage::of` (the runs a chunk's windows cover, made on every decode of a `roibin`
//! chunk) on the windows of saved chunks: `coverage_time CHUNK...`, each file one chunk's
//! bytes as `read_direct_chunk` returns them. Prints the best time a chunk and a hash of the
//! first chunk's runs (a change that must keep them checks it).
use roibin_compressors::detector::roibin::{coverage, parts};
use std::time::Instant;

fn main() {
    let mut all = vec![];
    for path in std::env::args().skip(1) {
        let chunk = std::fs::read(&path).expect("read chunk");
        let p = parts::parts(&chunk).expect("roibin chunk");
        all.push((p.layout, p.infos));
    }
    let mut runs = 0;
    let mut best = f64::MAX;
    for _ in 0..20 {
        let t = Instant::now();
        for _ in 0..10 {
            for (l, infos) in &all {
                runs += coverage::of(*l, infos).runs.len();
            }
        }
        best = best.min(t.elapsed().as_secs_f64() / (10 * all.len()) as f64);
    }
    let c = coverage::of(all[0].0, &all[0].1);
    let h = c.runs.iter().fold(0u64, |h, r| {
        h.wrapping_mul(1_000_003) ^ ((r.y as u64) << 40 | (r.x as u64) << 20 | r.len as u64)
    });
    println!(
        "{:.3} ms a chunk (best of 20), {} runs, hash {h:x} ({runs})",
        best * 1e3,
        c.runs.len()
    );
}
