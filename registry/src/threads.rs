//! Thread pools for the `threads` option, built once per size and reused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Spec text of the `threads` option every multi-threaded codec declares.
pub const THREADS_DOC: &str = "worker threads inside one chunk (0 = the caller's pool: all cores, or the task's share under `roibin compress --tasks`; 1 = none); never changes the bytes; capped at the core count";

/// Run `f` on a pool of `threads` workers (0 = one per core).
///
/// Inside a pool already (a nested stage, or `chunked`'s blocks) `threads = 0` stays in it.
/// Pools are created lazily on first use, never at load time, and cached per process: a plugin
/// loaded into a host starts no thread until it compresses something, and a child forked after
/// that (Python's multiprocessing) gets pools of its own instead of the parent's dead threads.
///
/// Sizes are capped at the core count, so at most one pool per size `1..=cores` ever exists,
/// whatever values files or tuning files hold. Thread counts never change the bytes, so when
/// the system refuses a pool (thread or memory limits) `f` runs on the caller's thread instead
/// of failing: a thread count is advice.
pub fn install<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    if threads == 0 && rayon::current_thread_index().is_some() {
        return f();
    }
    let n = if threads == 0 {
        cores()
    } else {
        capped(threads)
    };
    match pool(n) {
        Some(p) => p.install(f),
        None => f(),
    }
}

/// `threads` capped at the cores this process may use (0, "the caller's pool", stays 0).
pub fn capped(threads: usize) -> usize {
    threads.min(cores())
}

/// Cores this process may use, asked once: `available_parallelism` reads cgroup files (and
/// allocates) on every call, which a per-chunk, per-stage call must not.
pub fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn pool(threads: usize) -> Option<Arc<rayon::ThreadPool>> {
    type Pools = (u32, HashMap<usize, Arc<rayon::ThreadPool>>);
    static POOLS: OnceLock<Mutex<Pools>> = OnceLock::new();
    let pools = POOLS.get_or_init(Default::default);
    let mut guard = pools.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    if guard.0 != pid {
        // Forked: the parent's workers do not exist here. Leak their handles (dropping would
        // wait for threads that will never answer) and start afresh.
        std::mem::forget(std::mem::take(&mut guard.1));
        guard.0 = pid;
    }
    if let Some(p) = guard.1.get(&threads) {
        return Some(p.clone());
    }
    let p = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("roibin-{i}"))
        .build()
        .ok()?;
    let p = Arc::new(p);
    guard.1.insert(threads, p.clone());
    Some(p)
}

/// Smallest amount of work worth a parallel task: splitting finer costs more in scheduling
/// than it gains (a 64 KiB block inside `chunked` should run on one thread).
pub const MIN_TASK_BYTES: usize = 256 << 10;

/// `with_min_len` for a parallel iterator whose items are `item_bytes` each.
pub fn min_len(item_bytes: usize) -> usize {
    (MIN_TASK_BYTES / item_bytes.max(1)).max(1)
}
