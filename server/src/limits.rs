//! What one request may ask for: each limit has its own HTTP error.

use std::time::Duration;

/// Per-request and per-server limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Frames one `stxm` request may reduce (413 beyond).
    pub frames: usize,
    /// Pixels of one picture (`show`, `multi`, a map) (413 beyond).
    pub pixels: usize,
    /// Time a request may take before 504 (the work finishes in the background and lands in
    /// the cache).
    pub request_time: Duration,
    /// Requests computed at once; more wait their turn, up to `request_time` (503 beyond).
    pub jobs: usize,
    /// Result cache cap.
    pub cache_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            frames: 1 << 20,
            pixels: 64 << 20,
            request_time: Duration::from_secs(120),
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            cache_bytes: roibin_stxm::cache::DEFAULT_CAP,
        }
    }
}
