//! Best-of-N wall time of one encode of a raw frame file: the quick before/after timer behind
//! `benches/results/roibin_auto_speed_2026-12-03.txt` (criterion's `finders` bench is the
//! steady one).
//!
//! `cargo run --release -p roibin-compressors --example time_encode -- SPEC [N] [FILE ROWS COLS]`
//! (default: the real JUNGFRAU module of `../shared/data`, 512 × 1024 float32).

use roibin_registry::{container, ArrayMeta, DType};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let spec = args
        .first()
        .ok_or("usage: time_encode SPEC [N] [FILE ROWS COLS]")?;
    let n: usize = args.get(1).map_or(Ok(20), |s| s.parse())?;
    let (path, rows, cols) = match args.get(2..).unwrap_or_default() {
        [p, r, c, ..] => (p.clone(), r.parse()?, c.parse()?),
        _ => (
            "../shared/data/jungfrau_module_conv0.f32".to_string(),
            512,
            1024,
        ),
    };
    let bytes = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
    let meta = ArrayMeta::new(DType::F32, vec![rows, cols]);
    let p = roibin_compressors::pipeline(&spec.parse()?, &meta)?;
    let (mut best, mut len) = (f64::MAX, 0);
    for _ in 0..n {
        let t = std::time::Instant::now();
        len = container::encode_with(&p, &meta, &bytes)?.len();
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("{spec}: best {:.2} ms, {len} bytes", best * 1e3);
    Ok(())
}
