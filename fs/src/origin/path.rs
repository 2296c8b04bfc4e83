//! A plain path as the origin (an NFS mount of the beamline file server). NFS can hang a
//! process in the kernel, so every call runs on a helper thread and is abandoned with an error
//! when the deadline passes; at most `MAX_STUCK` calls may be outstanding at once.

use super::{safe_name, DirEntry, EntryKind, FileMeta, Origin, OriginError, MAX_LISTING_ENTRIES};
use std::fs::{self, File};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime};

/// Calls allowed in flight at once; more means the server is not answering.
const MAX_STUCK: usize = 256;

pub struct PathOrigin {
    root: PathBuf,
    identity: String,
    timeout: Duration,
    in_flight: Arc<AtomicUsize>,
}

impl PathOrigin {
    pub fn new(root: &str, timeout: Duration) -> anyhow::Result<Self> {
        let root = fs::canonicalize(root).map_err(|e| {
            anyhow::anyhow!("origin {root}: {e} (give a directory or an http:// URL)")
        })?;
        anyhow::ensure!(root.is_dir(), "origin {}: not a directory", root.display());
        Ok(Self {
            identity: format!("file://{}", root.display()),
            root,
            timeout,
            in_flight: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Runs `op` on its own thread and waits at most the timeout for it.
    fn bounded<T: Send + 'static>(
        &self,
        what: &str,
        op: impl FnOnce() -> Result<T, OriginError> + Send + 'static,
    ) -> Result<T, OriginError> {
        if self.in_flight.fetch_add(1, Ordering::SeqCst) >= MAX_STUCK {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            return Err(OriginError::Unavailable(format!(
                "{what}: {} has {MAX_STUCK} calls that never returned; the file server is not answering",
                self.root.display()
            )));
        }
        let (tx, rx) = mpsc::sync_channel(1);
        let in_flight = Arc::clone(&self.in_flight);
        std::thread::spawn(move || {
            let _ = tx.send(op());
            in_flight.fetch_sub(1, Ordering::SeqCst);
        });
        rx.recv_timeout(self.timeout).unwrap_or_else(|_| {
            Err(OriginError::Unavailable(format!(
                "{what}: no answer from {} within {:?}",
                self.root.display(),
                self.timeout
            )))
        })
    }
}

fn etag_of(m: &fs::Metadata) -> String {
    format!(
        "\"{:x}-{:x}-{:x}.{:x}\"",
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec()
    )
}

fn io_error(path: &str, e: std::io::Error) -> OriginError {
    if e.kind() == std::io::ErrorKind::NotFound {
        OriginError::NotFound(path.to_string())
    } else {
        OriginError::Unavailable(format!("{path}: {e}"))
    }
}

fn meta_of(m: &fs::Metadata) -> FileMeta {
    FileMeta {
        size: m.size(),
        etag: etag_of(m),
        mtime: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    }
}

impl Origin for PathOrigin {
    fn identity(&self) -> &str {
        &self.identity
    }

    fn stat(&self, path: &str) -> Result<FileMeta, OriginError> {
        let (full, path) = (self.root.join(path), path.to_string());
        self.bounded("stat", move || {
            let m = fs::metadata(&full).map_err(|e| io_error(&path, e))?;
            Ok(meta_of(&m))
        })
    }

    fn list(&self, dir: &str) -> Result<Vec<DirEntry>, OriginError> {
        let (full, dir) = (self.root.join(dir), dir.to_string());
        self.bounded("list", move || {
            let mut out = Vec::new();
            for entry in fs::read_dir(&full).map_err(|e| io_error(&dir, e))? {
                let entry = entry.map_err(|e| io_error(&dir, e))?;
                let Ok(name) = entry.file_name().into_string() else {
                    continue; // not UTF-8: not addressable through a URL-like path
                };
                // Follow symlinks as a reader of the file server would.
                let Ok(m) = fs::metadata(entry.path()) else {
                    continue;
                };
                let kind = if m.is_dir() {
                    EntryKind::Dir
                } else if m.is_file() {
                    EntryKind::File
                } else {
                    continue;
                };
                if safe_name(&name) && out.len() < MAX_LISTING_ENTRIES {
                    out.push(DirEntry {
                        name,
                        kind,
                        size: m.size(),
                        mtime: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    });
                }
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
    }

    fn read(
        &self,
        path: &str,
        etag: &str,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>, OriginError> {
        let (full, path, etag) = (self.root.join(path), path.to_string(), etag.to_string());
        self.bounded("read", move || {
            let file = File::open(&full).map_err(|e| io_error(&path, e))?;
            let check = |file: &File| -> Result<(), OriginError> {
                let found = etag_of(&file.metadata().map_err(|e| io_error(&path, e))?);
                if found == etag {
                    Ok(())
                } else {
                    Err(OriginError::Changed {
                        path: path.clone(),
                        expected: etag.clone(),
                        found,
                    })
                }
            };
            check(&file)?;
            let mut buf = vec![0; len];
            file.read_exact_at(&mut buf, offset)
                .map_err(|e| io_error(&path, e))?;
            // Modified in place while we read: the bytes may mix two versions.
            check(&file)?;
            Ok(buf)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_call_that_never_returns_is_abandoned_at_the_deadline() {
        let origin = PathOrigin::new(".", Duration::from_millis(200)).unwrap();
        let start = Instant::now();
        let r = origin.bounded("stat", || {
            std::thread::sleep(Duration::from_secs(3));
            Ok(())
        });
        assert!(matches!(r, Err(OriginError::Unavailable(m)) if m.contains("no answer")));
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn reads_check_the_version() {
        let dir = std::env::temp_dir().join(format!("roibin-fs-path-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("f"), b"0123456789").unwrap();
        let origin = PathOrigin::new(dir.to_str().unwrap(), Duration::from_secs(5)).unwrap();
        let meta = origin.stat("f").unwrap();
        assert_eq!(origin.read("f", &meta.etag, 2, 3).unwrap(), b"234");
        assert!(matches!(
            origin.read("f", "\"other\"", 0, 1),
            Err(OriginError::Changed { .. })
        ));
        assert!(matches!(
            origin.read("f", &meta.etag, 8, 5),
            Err(OriginError::Unavailable(_))
        ));
        assert!(matches!(
            origin.stat("missing"),
            Err(OriginError::NotFound(_))
        ));
        assert_eq!(origin.list("").unwrap()[0].name, "f");
        fs::remove_dir_all(&dir).unwrap();
    }
}
