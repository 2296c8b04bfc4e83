//! Time spent per stage, summed over every chunk and thread, for the CLI's final summary.
//!
//! Off unless a tool turns it on ([`enable`]): the plugin and library users pay one relaxed
//! atomic load per stage call.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ON: AtomicBool = AtomicBool::new(false);
static TOTALS: Mutex<BTreeMap<&'static str, (Duration, u64)>> = Mutex::new(BTreeMap::new());

/// Start recording stage times (and clear what was recorded).
pub fn enable() {
    take();
    ON.store(true, Ordering::Relaxed);
}

/// Run `f` as stage `name`, adding its wall time to the stage's total when recording.
pub fn timed<R>(name: &'static str, f: impl FnOnce() -> R) -> R {
    if !ON.load(Ordering::Relaxed) {
        return f();
    }
    let t = Instant::now();
    let r = f();
    let dt = t.elapsed();
    let mut m = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    let e = m.entry(name).or_default();
    e.0 += dt;
    e.1 += 1;
    r
}

/// The totals so far, per stage name: (time summed over threads, calls); clears them.
///
/// ```
/// use roibin_registry::profile;
/// profile::enable();
/// profile::timed("demo", || std::thread::sleep(std::time::Duration::from_millis(2)));
/// let t = profile::take();
/// assert_eq!(t[0].0, "demo");
/// assert!(t[0].1 >= std::time::Duration::from_millis(2) && t[0].2 == 1);
/// ```
pub fn take() -> Vec<(&'static str, Duration, u64)> {
    let mut m = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    std::mem::take(&mut *m)
        .into_iter()
        .map(|(k, (d, n))| (k, d, n))
        .collect()
}
