//! What the CLI says beyond its results. `roibin --quiet` (or `ROIBIN_QUIET=1`) silences
//! progress bars, summaries and hints; results (listings, `--json`, files) and errors are
//! untouched. Progress bars draw only on a terminal in any case.
//!
//! One process-wide switch, set once by `main` before any command runs: output verbosity is a
//! property of the invocation, as a logger's level is.

use indicatif::{ProgressBar, ProgressStyle};
use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Set by `main` from `--quiet` or `ROIBIN_QUIET`.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether summaries and progress are silenced.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// A progress bar of `len` steps with `template` (indicatif syntax), hidden when quiet.
pub fn bar(len: usize, template: &str) -> ProgressBar {
    if quiet() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template(template)
            .expect("template")
            .progress_chars("=> "),
    );
    pb
}

/// A summary or hint line on stderr, unless quiet.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        if !$crate::ui::quiet() {
            eprintln!($($arg)*);
        }
    };
}
