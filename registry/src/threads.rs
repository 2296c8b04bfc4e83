//! Thread pools for the `threads` option, built once per size and reused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Spec text of the `threads` option every multi-threaded codec declares.
pub const THREADS_DOC: &str = "worker threads inside one chunk (0 = all cores, 1 = none)";

/// Run `f` on a pool of `threads` workers (0 = rayon's global pool, sized to the machine).
///
/// Pools are created lazily on first use, never at load time, and cached: a plugin loaded
/// into a host process starts no thread until it compresses something.
pub fn install<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    if threads == 0 {
        return f();
    }
    pool(threads).install(f)
}

fn pool(threads: usize) -> Arc<rayon::ThreadPool> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let pools = POOLS.get_or_init(Default::default);
    let mut map = pools.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(threads)
        .or_insert_with(|| {
            Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("roibin-{i}"))
                    .build()
                    .expect("thread pool"),
            )
        })
        .clone()
}

/// Smallest amount of work worth a parallel task: splitting finer costs more in scheduling
/// than it gains (a 64 KiB block inside `chunked` should run on one thread).
pub const MIN_TASK_BYTES: usize = 256 << 10;

/// `with_min_len` for a parallel iterator whose items are `item_bytes` each.
pub fn min_len(item_bytes: usize) -> usize {
    (MIN_TASK_BYTES / item_bytes.max(1)).max(1)
}
