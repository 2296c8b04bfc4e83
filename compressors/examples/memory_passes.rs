//! How well plain streaming passes over 16 MB frames scale with the thread count: the ceiling
//! any memory-bound stage of `roibin compress` meets on a machine (`docs/tuning.md`).
//!
//! Each of T threads (pinned to cores 0..T) owns FRAMES frames of 4 M f32 (16 MB each, so no
//! cache holds them) and streams them ROUNDS times, all threads at once, for three kinds of
//! pass: `sum` (read), `copy` (read one frame, write another) and `scale` (read, write back in
//! place). Prints, per kind and thread count, the aggregate GB/s of frame bytes streamed and
//! the speed-up over one thread.
//!
//! `cargo run --release -p roibin-compressors --example memory_passes -- [THREADS,..] [FRAMES] [ROUNDS]`

use std::sync::{Arc, Barrier};
use std::time::Instant;

const FRAME: usize = 4 << 20;

#[derive(Clone, Copy, Debug)]
enum Pass {
    Sum,
    Copy,
    Scale,
}

/// Pin the calling thread to `core` (best effort: a failure leaves it unpinned).
fn pin(core: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it for a core
    // below CPU_SETSIZE (checked), and sched_setaffinity reads it for this thread (pid 0).
    unsafe {
        if core >= libc::CPU_SETSIZE as usize {
            return;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// One pass of `kind` over `frame` (`other`: the copy's destination). Returns a value the
/// compiler must compute.
fn pass(kind: Pass, frame: &mut [f32], other: &mut [f32]) -> f32 {
    match kind {
        Pass::Sum => {
            // 32 lanes (four AVX2 registers), so the adds are not one dependent chain.
            let mut acc = [0f32; 32];
            for c in frame.chunks_exact(32) {
                for (a, &v) in acc.iter_mut().zip(c) {
                    *a += v;
                }
            }
            acc.iter().sum()
        }
        Pass::Copy => {
            other.copy_from_slice(frame);
            other[0]
        }
        Pass::Scale => {
            for v in frame.iter_mut() {
                *v *= 1.0000001;
            }
            frame[0]
        }
    }
}

/// Wall seconds for `threads` threads to each stream their `frames` frames `rounds` times.
fn run(kind: Pass, threads: usize, frames: usize, rounds: usize) -> f64 {
    let start = Arc::new(Barrier::new(threads + 1));
    let done = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (start, done) = (start.clone(), done.clone());
            std::thread::spawn(move || {
                pin(t);
                // Written here, so each thread's pages are its own (first touch).
                let mut own: Vec<Vec<f32>> = (0..frames)
                    .map(|f| (0..FRAME).map(|i| (i ^ f) as f32).collect())
                    .collect();
                let mut other = vec![1f32; FRAME];
                start.wait();
                let mut keep = 0f32;
                for _ in 0..rounds {
                    for frame in own.iter_mut() {
                        keep += pass(kind, frame, &mut other);
                    }
                }
                done.wait();
                std::hint::black_box(keep);
            })
        })
        .collect();
    start.wait();
    let t = Instant::now();
    done.wait();
    let wall = t.elapsed().as_secs_f64();
    for h in handles {
        h.join().expect("a pass thread panicked");
    }
    wall
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cores = std::thread::available_parallelism()?.get();
    let threads: Vec<usize> = match args.first() {
        Some(s) => s.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => [1, 2, 4, 8, 16]
            .into_iter()
            .filter(|&t| t <= cores)
            .collect(),
    };
    let frames: usize = args.get(1).map_or(Ok(8), |s| s.parse())?;
    let rounds: usize = args.get(2).map_or(Ok(8), |s| s.parse())?;
    println!(
        "# memory_passes: {cores} cores, {frames} frames of 16 MB per thread, {rounds} rounds"
    );
    println!("pass  threads  ms/frame/thread  aggregate GB/s  speed-up");
    for kind in [Pass::Sum, Pass::Copy, Pass::Scale] {
        let mut one = None;
        for &t in &threads {
            let wall = run(kind, t, frames, rounds);
            let gbs = (t * frames * rounds * FRAME * 4) as f64 / wall / 1e9;
            let one_gbs = *one.get_or_insert(gbs / t as f64);
            let per_frame_ms = wall * 1e3 / (frames * rounds) as f64;
            println!(
                "{:<5} {t:>7}  {per_frame_ms:>15.3}  {gbs:>14.1}  {:>7.2}x",
                format!("{kind:?}").to_lowercase(),
                gbs / one_gbs
            );
        }
    }
    Ok(())
}
