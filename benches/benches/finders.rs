//! Peak finders and `roibin(auto)` on one frame, one thread and all cores: the real JUNGFRAU
//! module of `../shared/data` where it is present (512 × 1024 f32), else an EIGER-4M-like
//! synthetic frame.
//!
//! `cargo bench -p roibin-benches --bench finders` — compare the stages to each other and to
//! `lz4` (about one streaming pass over the frame), not to other machines.

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use roibin_registry::{container, ArrayMeta, DType};
use roibin_tools::synth;

const SPECS: &[&str] = &[
    "lz4",
    "dispersion",
    "dispersion(gain=0,sigma_background=5,sigma_strong=2.5,max_peaks=1048576)",
    "dispersion_extended(gain=0,min_pix=1,max_peaks=1048576)",
    "pf8",
    "pf8(sample=8)",
    "bin(2,2)|sz(abs=1)",
    "roibin(auto,background=bin(2,2)|sz(abs=1))",
];

/// The frame and its shape: the real module where present.
fn frame() -> (String, ArrayMeta, Vec<u8>) {
    let real = "../shared/data/jungfrau_module_conv0.f32";
    match std::fs::read(real).or_else(|_| std::fs::read(format!("../{real}"))) {
        Ok(b) => (
            "jungfrau".into(),
            ArrayMeta::new(DType::F32, vec![512, 1024]),
            b,
        ),
        Err(_) => (
            "eiger-synthetic".into(),
            ArrayMeta::new(DType::F32, vec![synth::EIGER_ROWS, synth::EIGER_COLS]),
            synth::eiger_frame(7, 0, DType::F32),
        ),
    }
}

fn bench(c: &mut Criterion) {
    let (name, meta, data) = frame();
    for threads in [1, 0] {
        let mut g = c.benchmark_group(format!("{name}-threads{threads}"));
        g.throughput(Throughput::Bytes(data.len() as u64))
            .sample_size(10);
        for spec in SPECS {
            let spec = common::with_threads(spec, threads);
            let p = roibin_compressors::pipeline(&spec.parse().unwrap(), &meta).unwrap();
            g.bench_with_input(BenchmarkId::new("encode", &spec), &data, |b, d| {
                b.iter(|| container::encode_with(&p, &meta, d).unwrap())
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
