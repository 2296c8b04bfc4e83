//! A chunk loop with reused output buffers allocates nothing per chunk after warm-up: codecs
//! keep their scratch (predictor trials, Huffman tables, zstd contexts, block outputs) per
//! thread. Counted with a global allocator, so this file holds this one test (its parts run
//! one after the other).

use roibin_registry::{container, ArrayMeta, DType};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

struct Counting;
static CALLS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Relaxed);
        BYTES.fetch_add(l.size(), Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        CALLS.fetch_add(1, Relaxed);
        BYTES.fetch_add(new.saturating_sub(l.size()), Relaxed);
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Frames with a smooth background, noise and a few bright spots; `k` varies them.
fn frame(meta: &ArrayMeta, k: usize) -> Vec<u8> {
    let n = meta.len();
    let w = *meta.shape.last().unwrap();
    (0..n)
        .map(|i| {
            let (y, x) = ((i / w) as f32, (i % w) as f32);
            let noise = ((i * 2654435761 + k * 97) % 1000) as f32 / 100.0;
            let spot = if (i + k * 131) % 4099 == 0 {
                3000.0
            } else {
                0.0
            };
            45.0 + 10.0 * (y / 30.0).sin() * (x / 40.0).cos() + noise + spot
        })
        .flat_map(f32::to_le_bytes)
        .collect()
}

#[test]
fn chunk_loops_allocate_little_per_chunk_after_warm_up() {
    lossy_chunk_loops_allocate_nothing_per_chunk_after_warm_up();
    roibin_keeps_its_frame_sized_buffers_between_chunks();
}

fn lossy_chunk_loops_allocate_nothing_per_chunk_after_warm_up() {
    let meta = ArrayMeta::new(DType::F32, vec![4, 128, 256]);
    let frames: Vec<Vec<u8>> = (0..8).map(|k| frame(&meta, k)).collect();
    for threads in ["1", "0"] {
        for spec in [
            "sz(abs=1,threads=T)",
            "sz(abs=90,threads=T)",
            "sz(rel=1e-3,predictor=block_mean,threads=T)",
            "zfp(accuracy=1,threads=T)",
            "zfp(rate=8,threads=T)",
            "bin(2,2,threads=T)|sz(abs=90,threads=T)",
        ] {
            let spec = spec.replace('T', threads);
            let p = roibin_compressors::pipeline(&spec.parse().unwrap(), &meta).unwrap();
            let mut out = Vec::new();
            // Warm-up: every frame a few times grows every buffer, on every pool thread, to its
            // working size.
            for f in frames.iter().cycle().take(4 * frames.len()) {
                container::encode_into(&p, &meta, f, &mut out).unwrap();
            }
            let rounds = if threads == "1" { 64 } else { 256 };
            let (c0, b0) = (CALLS.load(Relaxed), BYTES.load(Relaxed));
            for i in 0..rounds {
                container::encode_into(&p, &meta, &frames[i % frames.len()], &mut out).unwrap();
            }
            let calls = (CALLS.load(Relaxed) - c0) as f64 / rounds as f64;
            let bytes = (BYTES.load(Relaxed) - b0) as f64 / rounds as f64;
            // One thread: nothing of the codecs'; rayon's job queue (stages run in pools, even
            // of one thread) takes a ~1.5 kB block once per 63 jobs. A pool of several: each
            // worker keeps its own scratch, grown the first time work stealing hands it a piece
            // bigger than it has seen, which can happen late (seen: up to 0.3 allocations and
            // 3% of the chunk's bytes per chunk, averaged over 256); never per element.
            eprintln!("`{spec}`: {calls:.3} allocations, {bytes:.0} bytes per chunk");
            let (max_calls, max_bytes) = if threads == "1" {
                (0.1, 256.0)
            } else {
                (1.0, meta.nbytes() as f64 / 20.0)
            };
            assert!(
                calls <= max_calls && bytes <= max_bytes,
                "`{spec}`: {calls:.2} allocations and {bytes:.0} bytes per {} kB chunk",
                meta.nbytes() / 1000
            );
        }
    }
}

/// ROIBIN's frame loop allocates peak lists, flagged-pixel lists and the windows' stream per
/// chunk, but no frame-sized buffer: the background's input, its per-pixel flags, pf8's
/// regrouped frame and marks are kept between chunks (a fresh 16 MB buffer is a page fault
/// every 4 KB). Seen: 167 kB per 1 MB chunk (1.2 MB before those were kept).
fn roibin_keeps_its_frame_sized_buffers_between_chunks() {
    let meta = ArrayMeta::new(DType::F32, vec![1, 512, 512]);
    let frames: Vec<Vec<u8>> = (0..4).map(|k| frame(&meta, k)).collect();
    for threads in ["1", "0"] {
        let spec = "roibin(peaks=pf8,exact_above=250,background=bin(2,2)|sz(abs=90),threads=T)"
            .replace('T', threads);
        let p = roibin_compressors::pipeline(&spec.parse().unwrap(), &meta).unwrap();
        let mut out = Vec::new();
        for f in frames.iter().cycle().take(4 * frames.len()) {
            container::encode_into(&p, &meta, f, &mut out).unwrap();
        }
        let rounds = 32;
        let b0 = BYTES.load(Relaxed);
        for i in 0..rounds {
            container::encode_into(&p, &meta, &frames[i % frames.len()], &mut out).unwrap();
        }
        let bytes = (BYTES.load(Relaxed) - b0) as f64 / rounds as f64;
        eprintln!("`{spec}`: {bytes:.0} bytes per chunk");
        assert!(
            bytes < meta.nbytes() as f64 / 4.0,
            "`{spec}`: {bytes:.0} bytes allocated per {} kB chunk",
            meta.nbytes() / 1000
        );
    }
}
