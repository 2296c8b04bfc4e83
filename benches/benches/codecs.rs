//! Encode and decode throughput of every lossless graph on one Eiger-4M-like frame
//! (u16 counts and f32 calibrated ADU), one thread and all cores.
//!
//! `cargo bench -p roibin-benches` — compare graphs to each other, not to other machines.

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use roibin_registry::{container, ArrayMeta, DType};
use roibin_tools::synth;

const GRAPHS: &[&str] = &[
    "shuffle",
    "bitshuffle",
    "delta",
    "lz4",
    "zstd(level=1)",
    "bitshuffle|lz4",
    "bitshuffle|zstd(level=1)",
    "bitshuffle|zstd(level=5)",
    "shuffle|zstd(level=3)",
    "bzip2(level=9)",
    "chunked(codec=bitshuffle|lz4)",
    "chunked(block=1048576,codec=bitshuffle(block=262144)|zstd(level=6))",
    "sz(abs=1)",
    "sz(abs=90)",
    "zfp(accuracy=1)",
    "zfp(rate=8)",
];

fn bench(c: &mut Criterion) {
    for dtype in [DType::U16, DType::F32] {
        let meta = ArrayMeta::new(dtype, vec![synth::EIGER_ROWS, synth::EIGER_COLS]);
        let data = synth::eiger_frame(7, 0, dtype);
        for threads in [1, 0] {
            let mut g = c.benchmark_group(format!("{}-threads{threads}", dtype.name()));
            g.throughput(Throughput::Bytes(data.len() as u64))
                .sample_size(10);
            for spec in GRAPHS {
                if spec.starts_with("bzip2") && threads == 0 {
                    continue;
                }
                let graph = common::with_threads(spec, threads);
                // Codecs that do not take this dtype (zfp on u16) are skipped.
                let Ok(p) = roibin_compressors::pipeline(&graph.parse().unwrap(), &meta) else {
                    continue;
                };
                // Encoded lazily: criterion's filter then skips the setup of unselected graphs.
                let enc = std::cell::OnceCell::new();
                g.bench_with_input(BenchmarkId::new("encode", spec), &data, |b, d| {
                    b.iter(|| container::encode_with(&p, &meta, d).unwrap())
                });
                g.bench_function(BenchmarkId::new("decode", spec), |b| {
                    let e = enc.get_or_init(|| container::encode_with(&p, &meta, &data).unwrap());
                    let mut out = vec![0u8; data.len()];
                    b.iter(|| {
                        let h = container::read_header(e).unwrap();
                        container::decode_header_into(&h, &mut out).unwrap()
                    })
                });
            }
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
