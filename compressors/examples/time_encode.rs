//! Best-of-N wall time of one encode and one decode of a raw frame file: the quick before/after timer behind
//! `benches/results/roibin_auto_speed_2026-12-03.txt` (criterion's `finders` bench is the
//! steady one).
//!
//! `cargo run --release -p roibin-compressors --example time_encode -- SPEC [N|E/D] [FILE ROWS COLS [DTYPE]]`
//! (`E/D`: E encodes and D decodes, `1/300` to profile decoding)
//! (ROWS may be a comma list of leading axes: `128,128` with COLS 128 times a 128³ volume)
//! (default: the real JUNGFRAU module of `../shared/data`, 512 × 1024 float32).

use roibin_registry::{container, ArrayMeta, DType};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let spec = args
        .first()
        .ok_or("usage: time_encode SPEC [N] [FILE ROWS COLS [DTYPE]]")?;
    // N, or ENCODES/DECODES ("1/300" to profile decoding alone).
    let (n, n_dec): (usize, usize) = match args.get(1).map(|s| s.split_once('/')) {
        None => (20, 20),
        Some(Some((e, d))) => (e.parse()?, d.parse()?),
        Some(None) => {
            let n = args[1].parse()?;
            (n, n)
        }
    };
    let (path, rows, cols) = match args.get(2..).unwrap_or_default() {
        [p, r, c, ..] => (p.clone(), r.clone(), c.parse()?),
        _ => (
            "../shared/data/jungfrau_module_conv0.f32".to_string(),
            "512".to_string(),
            1024,
        ),
    };
    let bytes = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
    let dtype = args.get(5).map_or(Ok(DType::F32), |s| DType::parse(s))?;
    // ROWS may list several leading axes, comma separated ("128,128" for a 128³ volume).
    let mut shape = rows
        .split(',')
        .map(str::parse)
        .collect::<Result<Vec<usize>, _>>()?;
    shape.push(cols);
    let meta = ArrayMeta::new(dtype, shape);
    let p = roibin_compressors::pipeline(&spec.parse()?, &meta)?;
    let (mut best, mut chunk) = (f64::MAX, vec![]);
    for _ in 0..n {
        let t = std::time::Instant::now();
        chunk = container::encode_with(&p, &meta, &bytes)?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    // Finders encode to a peak list that does not decode: time the encode only.
    let decodes = container::decode(&chunk).is_ok();
    let (mut best_dec, mut back) = (f64::INFINITY, vec![]);
    for _ in 0..if decodes { n_dec } else { 0 } {
        let t = std::time::Instant::now();
        back = container::decode(&chunk)?.1;
        best_dec = best_dec.min(t.elapsed().as_secs_f64());
    }
    // Hashes of the chunk and of the decoded frame: a change that must not move the bytes
    // (a faster decoder, say) shows here.
    let hash = |b: &[u8]| {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        b.hash(&mut h);
        h.finish()
    };
    println!(
        "{spec}: encode best {:.2} ms, {} bytes (hash {:016x}); decode best {:.2} ms (hash {:016x})",
        best * 1e3,
        chunk.len(),
        hash(&chunk),
        best_dec * 1e3,
        hash(&back)
    );
    Ok(())
}
