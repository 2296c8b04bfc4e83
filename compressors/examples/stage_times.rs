//! Time each graph on raw frames: `cargo run --release --example stage_times FILE.raw ROWS COLS SPEC...`
//! (f32 frames of ROWS×COLS, one chunk per frame). For finding where encode time goes.
use roibin_registry::{container, ArrayMeta, DType, DataKind, Pipeline};
use std::time::Instant;

fn main() {
    roibin_compressors::codec_names();
    let a: Vec<String> = std::env::args().collect();
    let data = std::fs::read(&a[1]).expect("read frames");
    let (rows, cols): (usize, usize) = (a[2].parse().unwrap(), a[3].parse().unwrap());
    let fb = rows * cols * 4;
    let meta = ArrayMeta::new(DType::F32, vec![rows, cols]);
    for spec in &a[4..] {
        let p = Pipeline::from_spec(spec, &DataKind::Array(meta.clone())).expect("spec");
        let mut out = Vec::new();
        let (mut bytes, t) = (0, Instant::now());
        for f in data.chunks_exact(fb) {
            container::encode_into(&p, &meta, f, &mut out).expect("encode");
            bytes += out.len();
        }
        let dt = t.elapsed().as_secs_f64();
        let n = data.len() / fb;
        let t2 = Instant::now();
        let mut back = vec![0u8; fb];
        for f in data.chunks_exact(fb).take(1) {
            container::encode_into(&p, &meta, f, &mut out).expect("encode");
            let h = container::read_header(&out).expect("header");
            container::decode_header_into(&h, &mut back).expect("decode");
        }
        let _ = t2;
        println!(
            "{:>8.1} ms/frame  {:>7.0} MB/s  ratio vs u16 {:>7.1}  {spec}",
            dt * 1e3 / n as f64,
            (n * fb) as f64 / dt / 1e6,
            (n * fb / 2) as f64 / bytes as f64
        );
    }
}
