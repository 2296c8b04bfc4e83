//! Tuning files: the thread and task allocation `roibin autotune` found best, per spec, dtype,
//! chunk shape and host. `roibin compress` reads them (`--tuning FILE`), and so does the HDF5
//! plugin when `ROIBIN_TUNING` names one.
//!
//! An allocation never changes the bytes written (chunks store their spec without `threads`),
//! so a tuning file is advice: a host that has none, or a different one, reads and writes the
//! same files.
//!
//! ```
//! use roibin_registry::tuning::{Entry, TuningFile};
//! use roibin_registry::{DType, Graph};
//! let mut file = TuningFile::default();
//! file.upsert(Entry {
//!     spec: "sz(abs=1)".into(), dtype: "f32".into(), chunk: vec![4, 512, 512],
//!     host: "beamline-7".into(), tasks: 2, threads: [("sz".to_string(), 1)].into(), ..Entry::default()
//! });
//! let found = file.find("sz(abs=1)", DType::F32, &[4, 512, 512], "beamline-7").unwrap();
//! let mut g: Graph = "sz(abs=1)".parse().unwrap();
//! found.apply(&mut g).unwrap();
//! assert_eq!(g.to_string(), "sz(abs=1,threads=1)");
//! ```

use crate::spec::{Graph, Value};
use crate::{DType, Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The environment variable the plugin reads a tuning file's path from.
pub const ENV: &str = "ROIBIN_TUNING";

/// One tuned allocation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The canonical spec without `threads` (what chunks store).
    pub spec: String,
    /// Element type name (`f32`, `u16`, …).
    pub dtype: String,
    /// Chunk shape tuned for (its first axis is frames per chunk for rank ≥ 3).
    pub chunk: Vec<usize>,
    /// Host name the timings were taken on.
    pub host: String,
    /// Cores the host had.
    #[serde(default)]
    pub cores: usize,
    /// Chunks encoded at once by `roibin compress`.
    pub tasks: usize,
    /// `threads` per stage path (`roibin/background/sz` …); stages not named keep theirs.
    #[serde(default)]
    pub threads: BTreeMap<String, usize>,
    /// Measured seconds per frame (or per chunk for rank < 3) with this allocation.
    #[serde(default)]
    pub seconds_per_frame: f64,
    /// Measured seconds per frame with the default allocation, same run.
    #[serde(default)]
    pub default_seconds_per_frame: f64,
    /// Ratio (input bytes / stored bytes) on the tuning sample.
    #[serde(default)]
    pub ratio: f64,
}

impl Entry {
    /// Set this entry's `threads` options in `graph` (a canonical graph: nested defaults
    /// spelled), except where the graph sets a stage's `threads` itself: what a user wrote wins.
    pub fn apply(&self, graph: &mut Graph) -> Result<()> {
        for (path, n) in &self.threads {
            let option = format!("{path}:threads");
            if graph.option(&option).is_none() {
                graph.set_option(&option, Value::Number(n.to_string()))?;
            }
        }
        Ok(())
    }
}

/// A tuning file: entries, one per (spec, dtype, chunk, host).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TuningFile {
    /// Format version (1).
    pub version: u32,
    pub entries: Vec<Entry>,
}

impl TuningFile {
    /// Read a tuning file; a missing or malformed file is an error that names it.
    pub fn load(path: &Path) -> Result<TuningFile> {
        // A regular file only, of bounded size: `ROIBIN_TUNING` pointing at a FIFO or a
        // device must cost a warning, never a hung or exhausted writer.
        let text =
            crate::spec::read_small_file(&path.to_string_lossy(), 16 << 20).map_err(|e| {
                Error::Other(format!("cannot read tuning file {}: {e}", path.display()))
            })?;
        let file: TuningFile = serde_json::from_str(&text).map_err(|e| {
            Error::Other(format!(
                "tuning file {} is not a roibin tuning file: {e}",
                path.display()
            ))
        })?;
        if file.version != 1 {
            return Err(Error::Other(format!(
                "tuning file {} has version {}; this roibin reads version 1",
                path.display(),
                file.version
            )));
        }
        Ok(file)
    }

    /// Read `path` if it exists, else start an empty file.
    pub fn load_or_default(path: &Path) -> Result<TuningFile> {
        if path.exists() {
            TuningFile::load(path)
        } else {
            Ok(TuningFile {
                version: 1,
                entries: vec![],
            })
        }
    }

    /// Write atomically (a reader never sees half a file).
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Other(e.to_string()))?;
        std::fs::write(&tmp, text + "\n")
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| Error::Other(format!("cannot write {}: {e}", path.display())))
    }

    /// Add `entry`, replacing one with the same key.
    pub fn upsert(&mut self, entry: Entry) {
        self.version = 1;
        self.entries.retain(|e| {
            (&e.spec, &e.dtype, &e.chunk, &e.host)
                != (&entry.spec, &entry.dtype, &entry.chunk, &entry.host)
        });
        self.entries.push(entry);
    }

    /// The entry for exactly this chunk shape, else one for the same frame shape (chunk
    /// without its first axis, rank ≥ 3) on this host, spec and dtype.
    pub fn find(&self, spec: &str, dtype: DType, chunk: &[usize], host: &str) -> Option<&Entry> {
        let mine = self
            .entries
            .iter()
            .filter(|e| e.spec == spec && e.dtype == dtype.name() && e.host == host);
        let frame = |c: &[usize]| c.len() >= 3 && c.len() == chunk.len() && c[1..] == chunk[1..];
        mine.clone()
            .find(|e| e.chunk == chunk)
            .or_else(|| mine.into_iter().find(|e| frame(&e.chunk)))
    }
}

/// This machine's host name (`/proc/sys/kernel/hostname`, or `unknown`).
pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The tuning file `ROIBIN_TUNING` names, read once per (path, modification time).
///
/// `None` when the variable is unset; an unreadable file is an error the caller reports (the
/// plugin warns once and encodes with the spec as given).
pub fn from_env() -> Option<Result<Arc<TuningFile>>> {
    type Cached = Option<(String, Option<std::time::SystemTime>, Arc<TuningFile>)>;
    static CACHE: Mutex<Cached> = Mutex::new(None);
    let path = std::env::var(ENV).ok().filter(|p| !p.is_empty())?;
    let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((p, t, f)) = cache.as_ref() {
        if *p == path && *t == mtime {
            return Some(Ok(f.clone()));
        }
    }
    Some(TuningFile::load(Path::new(&path)).map(|f| {
        let f = Arc::new(f);
        *cache = Some((path, mtime, f.clone()));
        f
    }))
}
