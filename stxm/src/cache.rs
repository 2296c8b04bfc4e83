//! The result cache: an embedded on-disk store (redb) of whole results and line results,
//! keyed by the source's identity (paths, sizes, modification times, chunk index) and the
//! canonical request, so a changed file never serves a stale map. Entries past the size cap
//! are evicted least recently used first.

use crate::{Error, Result};
use redb::{Database, ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};

const VALUES: TableDefinition<&str, &[u8]> = TableDefinition::new("values");
/// key → (last use in ns since the epoch, size in bytes)
const USED: TableDefinition<&str, (u64, u64)> = TableDefinition::new("used");

/// Default cap: 1 GiB.
pub const DEFAULT_CAP: u64 = 1 << 30;

/// A result cache.
pub struct Cache {
    db: Database,
    cap: u64,
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::Source(format!("result cache: {e}"))
}

impl Cache {
    /// `$XDG_CACHE_HOME/roibin/stxm` (or `~/.cache/roibin/stxm`).
    pub fn default_dir() -> PathBuf {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir)
            .join("roibin")
            .join("stxm")
    }

    /// Open (creating) the cache in `dir`, holding at most `cap` bytes of values.
    pub fn open(dir: &Path, cap: u64) -> Result<Cache> {
        std::fs::create_dir_all(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
        let db = Database::create(dir.join("results.redb")).map_err(err)?;
        let w = db.begin_write().map_err(err)?;
        w.open_table(VALUES).map_err(err)?;
        w.open_table(USED).map_err(err)?;
        w.commit().map_err(err)?;
        Ok(Cache { db, cap })
    }

    /// The value under `key`, marked as just used.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let v = {
            let r = self.db.begin_read().ok()?;
            let t = r.open_table(VALUES).ok()?;
            let v = t.get(key).ok()??.value().to_vec();
            v
        };
        if let Ok(w) = self.db.begin_write() {
            if let Ok(mut t) = w.open_table(USED) {
                let _ = t.insert(key, (now_ns(), v.len() as u64));
            }
            let _ = w.commit();
        }
        Some(v)
    }

    /// Store `value` under `key`, then evict the least recently used entries past the cap. A
    /// failure to store is not an error of the run (the result is still returned).
    pub fn put(&self, key: &str, value: &[u8]) {
        self.put_many(&[(key.to_string(), value.to_vec())]);
    }

    /// [`Cache::put`] for several entries in one transaction (one sync to disk).
    pub fn put_many(&self, entries: &[(String, Vec<u8>)]) {
        let _ = self.try_put(entries);
    }

    fn try_put(&self, entries: &[(String, Vec<u8>)]) -> Result<()> {
        let w = self.db.begin_write().map_err(err)?;
        {
            let mut values = w.open_table(VALUES).map_err(err)?;
            let mut used = w.open_table(USED).map_err(err)?;
            for (key, value) in entries.iter().filter(|(_, v)| v.len() as u64 <= self.cap) {
                values.insert(key.as_str(), value.as_slice()).map_err(err)?;
                used.insert(key.as_str(), (now_ns(), value.len() as u64))
                    .map_err(err)?;
            }
            let mut all: Vec<(String, u64, u64)> = used
                .iter()
                .map_err(err)?
                .filter_map(|e| e.ok())
                .map(|(k, v)| {
                    let (t, s) = v.value();
                    (k.value().to_string(), t, s)
                })
                .collect();
            let mut total: u64 = all.iter().map(|e| e.2).sum();
            all.sort_by_key(|e| e.1);
            for (k, _, s) in all {
                if total <= self.cap {
                    break;
                }
                values.remove(k.as_str()).map_err(err)?;
                used.remove(k.as_str()).map_err(err)?;
                total -= s;
            }
        }
        w.commit().map_err(err)?;
        Ok(())
    }

    /// Bytes of values held.
    pub fn size(&self) -> u64 {
        let Ok(r) = self.db.begin_read() else {
            return 0;
        };
        let Ok(t) = r.open_table(USED) else { return 0 };
        t.iter()
            .map(|it| it.filter_map(|e| e.ok()).map(|(_, v)| v.value().1).sum())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_used_entries_go_first() {
        let dir = std::env::temp_dir().join(format!("roibin-cache-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let c = Cache::open(&dir, 250).unwrap();
        c.put("a", &[1; 100]);
        c.put("b", &[2; 100]);
        assert!(c.get("a").is_some()); // a is now newer than b
        c.put("c", &[3; 100]);
        assert!(c.get("b").is_none());
        assert_eq!(c.get("a").unwrap(), vec![1; 100]);
        assert_eq!(c.get("c").unwrap(), vec![3; 100]);
        assert!(c.size() <= 250);
        drop(c);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
