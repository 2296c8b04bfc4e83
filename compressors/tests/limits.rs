//! Resource limits on specs and on decoding: each case is a crafted input that once crashed,
//! hung or exhausted a reader, and must now fail fast with a message.

use roibin_compressors::{decode_chunk, encode_chunk};
use roibin_registry::container::{assemble, read_header, Header};
use roibin_registry::{ArrayMeta, DType, Graph, Pipeline};

/// Run `f` on a thread with a small stack: recursion that depends on the input would overflow it.
fn on_small_stack<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn deeply_nested_specs_are_refused_without_overflowing_the_stack() {
    // 12 000 levels once overflowed h5py's and h5dump's stacks (SIGSEGV).
    let e = on_small_stack(|| {
        "a(".repeat(12_000)
            .parse::<Graph>()
            .unwrap_err()
            .to_string()
    });
    assert!(e.contains("nested more than 64"), "{e}");
    // 4 300 levels of `chunked` once took 5.9 GB and 52 s to build for one chunk.
    let spec = format!("{}none{}", "chunked(codec=".repeat(4300), ")".repeat(4300));
    let t = std::time::Instant::now();
    let e = on_small_stack(move || spec.parse::<Graph>().unwrap_err().to_string());
    assert!(e.contains("nested more than 64"), "{e}");
    assert!(t.elapsed().as_secs_f64() < 1.0);
    // The deepest accepted nesting builds and round-trips quickly.
    let spec = format!("{}zstd{}", "chunked(codec=".repeat(63), ")".repeat(63));
    let meta = ArrayMeta::new(DType::U16, vec![1000]);
    let data = vec![7u8; 2000];
    let t = std::time::Instant::now();
    let enc = on_small_stack(move || encode_chunk(&spec, &meta, &data).unwrap());
    assert_eq!(decode_chunk(&enc).unwrap().1, vec![7u8; 2000]);
    assert!(t.elapsed().as_secs_f64() < 2.0);
    // Too many stages, or too long a spec.
    let e = vec!["none"; 300].join("|").parse::<Graph>().unwrap_err();
    assert!(e.to_string().contains("more than 256 stages"), "{e}");
    let e = format!("zstd(level={})", "1".repeat(70_000))
        .parse::<Graph>()
        .unwrap_err();
    assert!(e.to_string().contains("longer than"), "{e}");
}

fn process_threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn stored_thread_counts_cannot_multiply_threads() {
    // 64 chunks storing threads=1024…961 once made 32 274 threads (a pool per value).
    let cores = roibin_registry::threads::cores();
    let meta = ArrayMeta::new(DType::U16, vec![64, 64]);
    let data: Vec<u8> = (0..meta.nbytes()).map(|i| (i % 13) as u8).collect();
    for t in 961..=1024 {
        let spec = format!("zstd(block=1024,threads={t})");
        let p =
            Pipeline::from_spec(&spec, &roibin_registry::DataKind::Array(meta.clone())).unwrap();
        let enc = p.encode(&data).unwrap();
        assert_eq!(p.decode(&enc).unwrap(), data);
    }
    // At most one pool per size 1..=cores, each of at most `cores` threads, plus the test's own.
    let bound = cores * (cores + 1) / 2 + 16;
    assert!(process_threads() <= bound, "{} threads", process_threads());
    assert_eq!(roibin_registry::threads::capped(1024), cores.min(1024));
}

#[test]
fn a_chunk_declaring_a_huge_shape_fails_fast() {
    let meta = ArrayMeta::new(DType::U8, vec![16]);
    let enc = encode_chunk("zstd", &meta, &[0; 16]).unwrap();
    let h = read_header(&enc).unwrap();
    // 2^40 elements from a 100-byte chunk.
    let forged = assemble(&Header {
        meta: ArrayMeta::new(DType::U8, vec![1 << 20, 1 << 20]),
        ..h.clone()
    })
    .unwrap();
    assert!(forged.len() < 120);
    let e = decode_chunk(&forged).unwrap_err().to_string();
    assert!(e.contains("too large"), "{e}");
}

fn max_rss_kb() -> i64 {
    // SAFETY: getrusage fills the struct it is given.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u.ru_maxrss
    }
}

#[test]
fn an_intermediate_stream_claiming_a_gigabyte_is_refused_before_allocating() {
    // `zstd|zstd` on 64 bytes: the inner stage's output (opaque bytes) is sized by its stream.
    let meta = ArrayMeta::new(DType::U8, vec![64]);
    let mut payload = (1u64 << 30).to_le_bytes().to_vec(); // total: 1 GiB
    payload.extend_from_slice(&0u32.to_le_bytes()); // one block
    payload.extend_from_slice(&4u32.to_le_bytes());
    payload.extend_from_slice(&[0x28, 0xb5, 0x2f, 0xfd]);
    let forged = assemble(&Header {
        version: 1,
        raw: false,
        meta: meta.clone(),
        spec: "zstd|zstd",
        sections: vec![&payload],
    })
    .unwrap();
    let before = max_rss_kb();
    let e = decode_chunk(&forged).unwrap_err().to_string();
    assert!(e.contains("exceeds"), "{e}");
    assert!(
        max_rss_kb() - before < 64 << 10,
        "grew {} kB",
        max_rss_kb() - before
    );
}

#[test]
fn option_errors_stay_short() {
    let meta = ArrayMeta::new(DType::F32, vec![8]);
    for spec in [
        format!("sz(abs={})", "9".repeat(400)),
        format!("zstd(level={})", "9".repeat(300)),
        "roibin(fill=1e300)".to_string(),
    ] {
        let e = encode_chunk(&spec, &meta, &[0; 32])
            .unwrap_err()
            .to_string();
        assert!(e.len() < 240, "{} characters: {e}", e.len());
        assert!(!e.contains("00000000000"), "{e}");
    }
}

#[test]
fn a_roibin_stream_declaring_a_huge_layout_is_refused_before_allocating() {
    // A valid roibin chunk whose stream then claims 65 535³ pixels per frame and as many
    // exact pixels: the runs buffer it would size must not be allocated.
    let meta = ArrayMeta::new(DType::U16, vec![16, 16]);
    let enc = encode_chunk("roibin(peaks=pf8,background=zstd)", &meta, &[7; 512]).unwrap();
    let h = read_header(&enc).unwrap();
    let mut s = h.sections[0].to_vec();
    for k in 0..3 {
        s[6 + 4 * k..10 + 4 * k].copy_from_slice(&u32::MAX.to_le_bytes()); // panels, rows, cols
    }
    let at = 18 + 9; // one frame record after the 18-byte head
    s[at..at + 8].copy_from_slice(&(u64::MAX / 64).to_le_bytes()); // exact count
    s[at + 8..at + 16].copy_from_slice(&(u64::MAX / 64).to_le_bytes()); // runs length
    let forged = assemble(&Header {
        sections: vec![&s],
        ..h.clone()
    })
    .unwrap();
    let before = max_rss_kb();
    let e = decode_chunk(&forged).unwrap_err().to_string();
    assert!(e.contains("declares"), "{e}");
    assert!(max_rss_kb() - before < 64 << 10);
}
