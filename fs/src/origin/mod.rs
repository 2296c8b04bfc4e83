//! Where the bytes come from: an HTTP server answering range requests (nginx, Apache, an
//! S3-compatible store, or a proxy tier in front of one) or a plain, slow path (NFS).
//!
//! An origin is untrusted and may be slow, down or changing under us: every call is bounded by
//! the timeout it was built with, every answer is checked (lengths, ranges, ETags), and a file
//! whose copy changed is reported as such so that no block of two versions is ever mixed.

mod http;
mod path;

pub use http::HttpOrigin;
pub use path::PathOrigin;

use std::time::{Duration, SystemTime};

/// What the origin says about one file: its size and the version tag that keys its blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMeta {
    pub size: u64,
    /// A strong version tag: the HTTP `ETag`, or inode/size/mtime for a path origin.
    pub etag: String,
    pub mtime: SystemTime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub kind: EntryKind,
    pub size: u64,
    pub mtime: SystemTime,
}

/// The answer to "is my copy still current?".
#[derive(Debug)]
pub enum Revalidated {
    Unchanged,
    Changed(FileMeta),
}

#[derive(thiserror::Error, Debug, Clone)]
pub enum OriginError {
    #[error("{0}: not found at the origin")]
    NotFound(String),
    #[error("{path}: the origin's copy changed while it was read (ETag {expected} is now {found}); reopen the file")]
    Changed {
        path: String,
        expected: String,
        found: String,
    },
    #[error("{0}")]
    Unavailable(String),
}

/// A read-only file server. Paths are relative to the origin's root, `/`-separated, without a
/// leading slash (`""` is the root directory).
pub trait Origin: Send + Sync {
    /// The origin's identity (its URL or path): blocks are keyed by it, never by the proxy
    /// that served them, so a failover does not cool the cache.
    fn identity(&self) -> &str;
    fn stat(&self, path: &str) -> Result<FileMeta, OriginError>;
    /// Is `known` still the current version of `path`? HTTP asks with `If-None-Match`.
    fn revalidate(&self, path: &str, known: &FileMeta) -> Result<Revalidated, OriginError> {
        let now = self.stat(path)?;
        Ok(if now.etag == known.etag && now.size == known.size {
            Revalidated::Unchanged
        } else {
            Revalidated::Changed(now)
        })
    }
    fn list(&self, dir: &str) -> Result<Vec<DirEntry>, OriginError>;
    /// Exactly `len` bytes at `offset` of the version `etag` of `path`; a different version
    /// is `OriginError::Changed`, a short answer `Unavailable`.
    fn read(&self, path: &str, etag: &str, offset: u64, len: usize)
        -> Result<Vec<u8>, OriginError>;
}

/// A name from a listing becomes a path component only if it cannot climb out of its directory.
pub(crate) fn safe_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

/// `dir` joined with `name`, both origin-relative.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Most entries a directory listing may carry (a crafted listing must not exhaust memory).
pub const MAX_LISTING_ENTRIES: usize = 1_000_000;

/// Builds the origin a `mount` argument names: an `http://`/`https://` URL, or a local path.
pub fn open(
    spec: &str,
    upstreams: &[String],
    timeout: Duration,
) -> anyhow::Result<Box<dyn Origin>> {
    if spec.starts_with("http://") || spec.starts_with("https://") {
        Ok(Box::new(HttpOrigin::new(spec, upstreams, timeout)?))
    } else {
        anyhow::ensure!(
            upstreams.is_empty(),
            "--upstream applies to an HTTP origin only; {spec} is a path"
        );
        Ok(Box::new(PathOrigin::new(spec, timeout)?))
    }
}
