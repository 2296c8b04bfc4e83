//! The two cache tiers: RAM (`ram`) and disk (`disk`), both holding whole blocks keyed by
//! [`BlockKey`]; `block_file` is the on-disk format of one block.

pub mod block_file;
pub mod disk;
pub mod ram;

use std::sync::Arc;

/// One block of one version of one origin file. The version is part of the key, so a changed
/// file can never be served from the old version's blocks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BlockKey {
    /// The file's URL at the origin (origin identity + path), never a proxy's.
    pub url: Arc<str>,
    pub etag: Arc<str>,
    pub index: u64,
}

impl BlockKey {
    /// Whether this block belongs to another version of `url` than `keep`.
    pub fn is_stale_version(&self, url: &str, keep: &str) -> bool {
        &*self.url == url && &*self.etag != keep
    }
}
