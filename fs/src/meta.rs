//! What the mount knows about files and directories, and for how long it trusts it: a file's
//! version (size + ETag) is revalidated with the origin once its TTL has passed (unless the
//! mount is `--immutable`), a directory listing is fetched again.

use crate::origin::{DirEntry, FileMeta, Origin, OriginError, Revalidated};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A directory's entries and when they were fetched.
type Listing = (Arc<Vec<DirEntry>>, Instant);

pub struct MetaCache {
    pub ttl: Duration,
    /// Closed beamline files never change: once seen, a file's version is trusted forever.
    pub immutable: bool,
    files: Mutex<HashMap<String, (FileMeta, Instant)>>,
    dirs: Mutex<HashMap<String, Listing>>,
}

/// A file's current version, and the version it replaced if the origin's copy changed.
pub struct Current {
    pub meta: FileMeta,
    pub replaced: Option<FileMeta>,
}

impl MetaCache {
    pub fn new(ttl: Duration, immutable: bool) -> Self {
        Self {
            ttl,
            immutable,
            files: Mutex::default(),
            dirs: Mutex::default(),
        }
    }

    pub fn file(&self, origin: &dyn Origin, path: &str) -> Result<Current, OriginError> {
        let known = self.files.lock().unwrap().get(path).cloned();
        let current = match known {
            Some((meta, at)) if self.immutable || at.elapsed() < self.ttl => Current {
                meta,
                replaced: None,
            },
            Some((meta, _)) => match origin.revalidate(path, &meta) {
                Ok(Revalidated::Unchanged) => Current {
                    meta,
                    replaced: None,
                },
                Ok(Revalidated::Changed(new)) => Current {
                    meta: new,
                    replaced: Some(meta),
                },
                Err(e) => {
                    if matches!(e, OriginError::NotFound(_)) {
                        self.files.lock().unwrap().remove(path);
                    }
                    return Err(e);
                }
            },
            None => Current {
                meta: origin.stat(path)?,
                replaced: None,
            },
        };
        self.files
            .lock()
            .unwrap()
            .insert(path.to_string(), (current.meta.clone(), Instant::now()));
        Ok(current)
    }

    /// Forgets a file's version (a read found the origin's copy changed).
    pub fn forget(&self, path: &str) {
        self.files.lock().unwrap().remove(path);
    }

    pub fn dir(&self, origin: &dyn Origin, path: &str) -> Result<Arc<Vec<DirEntry>>, OriginError> {
        self.dir_younger_than(origin, path, self.ttl)
    }

    /// The listing of `path` if fetched less than `age` ago, else a new one. A name missing
    /// from a listing older than a second is looked up again: files appear at a beamline.
    pub fn dir_younger_than(
        &self,
        origin: &dyn Origin,
        path: &str,
        age: Duration,
    ) -> Result<Arc<Vec<DirEntry>>, OriginError> {
        if let Some((entries, at)) = self.dirs.lock().unwrap().get(path) {
            if at.elapsed() < age.min(self.ttl) {
                return Ok(Arc::clone(entries));
            }
        }
        let entries = Arc::new(origin.list(path)?);
        self.dirs
            .lock()
            .unwrap()
            .insert(path.to_string(), (Arc::clone(&entries), Instant::now()));
        Ok(entries)
    }
}
