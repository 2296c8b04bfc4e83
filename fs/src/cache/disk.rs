//! The on-disk tier: one file per block under `<cache-dir>/blocks/`, a hard cap on the real
//! disk usage (`st_blocks`), LRU eviction to a low-water mark, and an index rebuilt from the
//! block headers at every mount, so a crash or `kill -9` leaves a cache the next mount uses.
//!
//! Writes go to a temporary file that is renamed into place, so a block file is either absent
//! or whole; a torn or flipped one fails its CRC when read, is deleted and fetched again.

use super::block_file::{self, Header};
use super::BlockKey;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The cache is evicted down to this fraction of its cap when full, so that eviction runs
/// once per many inserts, not on each.
const LOW_WATER: f64 = 0.9;
/// Longest header a block file can have (two u16-long fields and fixed fields).
const MAX_HEADER: usize = 2 * 65_535 + 64;
/// Largest block (blocks are read whole into memory): a file in the cache directory that
/// claims more is not ours and is dropped at mount.
pub const MAX_BLOCK: u64 = 64 << 20;

pub struct DiskCache {
    blocks_dir: PathBuf,
    cap: u64,
    state: Mutex<State>,
    /// Held for the life of the mount: two mounts on one cache directory would fight.
    _lock: File,
}

#[derive(Default)]
struct State {
    entries: HashMap<BlockKey, Entry>,
    /// Real disk bytes of every entry plus the reservations of writes in progress.
    used: u64,
    clock: u64,
}

struct Entry {
    path: PathBuf,
    disk_bytes: u64,
    last_use: u64,
}

/// What `open` found in the cache directory.
#[derive(Debug, Default, serde::Serialize)]
pub struct Rebuild {
    pub blocks: usize,
    pub bytes: u64,
    /// Block files that were torn, foreign, misnamed or duplicated: deleted.
    pub dropped: usize,
    /// Leftover temporary files of writes a crash interrupted: deleted.
    pub temp_removed: usize,
    /// Evicted because the cache was over a (new, smaller) cap.
    pub evicted: usize,
}

/// Why a cached block was not served.
#[derive(Debug)]
pub enum Miss {
    Absent,
    /// It was there but failed its checks: deleted, to be fetched again.
    Corrupt(String),
}

/// Real disk usage of a file, as `du` counts it.
pub fn disk_bytes(m: &fs::Metadata) -> u64 {
    m.blocks() * 512
}

/// Where `key`'s block lives: `blocks/<2 hex>/<16 hex of url+etag>-<index hex>.blk`.
fn block_path(blocks_dir: &Path, key: &BlockKey) -> PathBuf {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(key.url.as_bytes());
    h.update(&[0]);
    h.update(key.etag.as_bytes());
    let name = format!("{:016x}", h.digest());
    blocks_dir
        .join(&name[..2])
        .join(format!("{name}-{:x}.blk", key.index))
}

/// Reads the header of a block file and checks that the file is exactly as long as it says.
fn read_header(path: &Path) -> Result<(Header, fs::Metadata), String> {
    let mut f = File::open(path).map_err(|e| e.to_string())?;
    let m = f.metadata().map_err(|e| e.to_string())?;
    let mut prefix = Vec::with_capacity(4096);
    (&mut f)
        .take(MAX_HEADER as u64)
        .read_to_end(&mut prefix)
        .map_err(|e| e.to_string())?;
    let h = block_file::parse_header(&prefix).map_err(|e| e.to_string())?;
    if m.len() != (h.header_len + h.data_len) as u64 {
        return Err(format!(
            "{} bytes long, header says {}",
            m.len(),
            h.header_len + h.data_len
        ));
    }
    Ok((h, m))
}

/// A block file and its header (or why it has none).
pub type Scanned = (PathBuf, Result<(Header, fs::Metadata), String>);

/// Every block file under `blocks_dir` with its header (or why it has none), and temp files.
pub fn scan(blocks_dir: &Path) -> (Vec<Scanned>, Vec<PathBuf>) {
    let (mut blocks, mut temps) = (Vec::new(), Vec::new());
    let Ok(subdirs) = fs::read_dir(blocks_dir) else {
        return (blocks, temps);
    };
    for sub in subdirs.flatten() {
        let Ok(files) = fs::read_dir(sub.path()) else {
            continue;
        };
        for f in files.flatten() {
            let path = f.path();
            if path.extension().is_some_and(|e| e == "blk") {
                let header = read_header(&path);
                blocks.push((path, header));
            } else {
                temps.push(path);
            }
        }
    }
    (blocks, temps)
}

impl DiskCache {
    /// Opens (creating) the cache under `root`, takes its lock and rebuilds the index.
    pub fn open(root: &Path, cap: u64) -> anyhow::Result<(Self, Rebuild)> {
        let blocks_dir = root.join("blocks");
        fs::create_dir_all(&blocks_dir)
            .map_err(|e| anyhow::anyhow!("cache directory {}: {e}", root.display()))?;
        let lock = lock(root)?;
        let mut report = Rebuild::default();
        let (blocks, temps) = scan(&blocks_dir);
        for t in temps {
            if fs::remove_file(&t).is_ok() {
                report.temp_removed += 1;
            }
        }
        let mut found: Vec<(BlockKey, PathBuf, u64, i64)> = Vec::new();
        for (path, header) in blocks {
            match header {
                Ok((h, m))
                    if block_path(&blocks_dir, &h.key) == path
                        && h.data_len as u64 <= MAX_BLOCK =>
                {
                    found.push((h.key, path, disk_bytes(&m), m.mtime()));
                }
                _ => {
                    let _ = fs::remove_file(&path);
                    report.dropped += 1;
                }
            }
        }
        // Oldest written first: the recency order survives a restart as well as mtime tells it.
        found.sort_by_key(|f| f.3);
        let mut state = State::default();
        for (key, path, disk_bytes, _) in found {
            state.clock += 1;
            state.used += disk_bytes;
            report.blocks += 1;
            report.bytes += disk_bytes;
            let last_use = state.clock;
            state.entries.insert(
                key,
                Entry {
                    path,
                    disk_bytes,
                    last_use,
                },
            );
        }
        let cache = Self {
            blocks_dir,
            cap,
            state: Mutex::new(state),
            _lock: lock,
        };
        report.evicted = cache.evict_to((cap as f64 * LOW_WATER) as u64, cap);
        Ok((cache, report))
    }

    /// The block's bytes if cached and intact. A block that fails any check is deleted.
    pub fn get(&self, key: &BlockKey) -> Result<Vec<u8>, Miss> {
        let path = {
            let mut s = self.state.lock().unwrap();
            s.clock += 1;
            let now = s.clock;
            let e = s.entries.get_mut(key).ok_or(Miss::Absent)?;
            e.last_use = now;
            e.path.clone()
        };
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            // Evicted between the lookup and the read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Miss::Absent),
            Err(e) => return Err(self.drop_corrupt(key, format!("{}: {e}", path.display()))),
        };
        match block_file::decode(&bytes, key) {
            Ok(data) => Ok(data.to_vec()),
            Err(e) => Err(self.drop_corrupt(key, format!("{}: {e}", path.display()))),
        }
    }

    fn drop_corrupt(&self, key: &BlockKey, why: String) -> Miss {
        let mut s = self.state.lock().unwrap();
        if let Some(e) = s.entries.remove(key) {
            s.used -= e.disk_bytes;
            let _ = fs::remove_file(&e.path);
        }
        Miss::Corrupt(why)
    }

    /// Stores a block. Room is made first (evicting to the low-water mark) and reserved, so
    /// the cache's real usage never exceeds the cap by more than one block's rounding.
    pub fn insert(&self, key: &BlockKey, data: &[u8]) -> std::io::Result<()> {
        let header = block_file::header(key, data);
        let reserve = ((header.len() + data.len()) as u64).div_ceil(4096) * 4096;
        let path = block_path(&self.blocks_dir, key);
        {
            let mut s = self.state.lock().unwrap();
            if s.entries.contains_key(key) {
                return Ok(());
            }
            if s.used + reserve > self.cap {
                let low =
                    ((self.cap as f64 * LOW_WATER) as u64).min(self.cap.saturating_sub(reserve));
                Self::evict_locked(&mut s, low.saturating_sub(reserve));
            }
            if s.used + reserve > self.cap {
                return Ok(()); // a block larger than the whole cache: served, not kept
            }
            s.used += reserve;
        }
        let written = write_atomically(&path, &[&header, data]);
        let mut s = self.state.lock().unwrap();
        s.used -= reserve;
        let disk = written?;
        s.used += disk;
        s.clock += 1;
        let last_use = s.clock;
        s.entries.insert(
            key.clone(),
            Entry {
                path,
                disk_bytes: disk,
                last_use,
            },
        );
        Ok(())
    }

    /// Removes least recently used blocks until usage is at most `target`; returns how many.
    fn evict_locked(s: &mut State, target: u64) -> usize {
        if s.used <= target {
            return 0;
        }
        let mut by_age: Vec<(u64, BlockKey)> = s
            .entries
            .iter()
            .map(|(k, e)| (e.last_use, k.clone()))
            .collect();
        by_age.sort_unstable_by_key(|(t, _)| *t);
        let mut n = 0;
        for (_, key) in by_age {
            if s.used <= target {
                break;
            }
            if let Some(e) = s.entries.remove(&key) {
                let _ = fs::remove_file(&e.path);
                s.used -= e.disk_bytes;
                n += 1;
            }
        }
        n
    }

    /// Evicts to `target` if usage is over `trigger`.
    pub fn evict_to(&self, target: u64, trigger: u64) -> usize {
        let mut s = self.state.lock().unwrap();
        if s.used > trigger {
            Self::evict_locked(&mut s, target)
        } else {
            0
        }
    }

    /// Drops every block of `url` whose version is not `keep` (its file changed).
    pub fn remove_versions(&self, url: &str, keep: &str) -> usize {
        let mut s = self.state.lock().unwrap();
        let stale: Vec<BlockKey> = s
            .entries
            .keys()
            .filter(|k| k.is_stale_version(url, keep))
            .cloned()
            .collect();
        for k in &stale {
            if let Some(e) = s.entries.remove(k) {
                let _ = fs::remove_file(&e.path);
                s.used -= e.disk_bytes;
            }
        }
        stale.len()
    }

    pub fn contains(&self, key: &BlockKey) -> bool {
        self.state.lock().unwrap().entries.contains_key(key)
    }

    /// (blocks, real disk bytes).
    pub fn usage(&self) -> (usize, u64) {
        let s = self.state.lock().unwrap();
        (s.entries.len(), s.used)
    }

    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// Reads every block and checks it; bad ones are deleted. Returns (checked, bad).
    pub fn verify(&self) -> (usize, Vec<String>) {
        let keys: Vec<BlockKey> = self.state.lock().unwrap().entries.keys().cloned().collect();
        let mut bad = Vec::new();
        for key in &keys {
            if let Err(Miss::Corrupt(why)) = self.get(key) {
                bad.push(why);
            }
        }
        (keys.len(), bad)
    }
}

/// Writes `parts` to a temporary file beside `path` and renames it into place; returns the
/// file's real disk usage.
fn write_atomically(path: &Path, parts: &[&[u8]]) -> std::io::Result<u64> {
    let dir = path.parent().expect("block paths have a parent");
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.{:?}.tmp",
        path.file_name().unwrap().to_string_lossy(),
        std::process::id(),
        std::thread::current().id()
    ));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        for part in parts {
            f.write_all(part)?;
        }
        let disk = disk_bytes(&f.metadata()?);
        fs::rename(&tmp, path)?;
        Ok(disk)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Takes `<root>/lock`, naming the holder's pid when it is taken.
fn lock(root: &Path) -> anyhow::Result<File> {
    let path = root.join("lock");
    let mut f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if f.try_lock().is_err() {
        let holder = fs::read_to_string(&path).unwrap_or_default();
        anyhow::bail!(
            "cache directory {} is in use by another roibin-fs (pid {}); unmount it first or give another --cache-dir",
            root.display(),
            holder.trim()
        );
    }
    f.set_len(0)?;
    write!(f, "{}", std::process::id())?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn key(i: u64) -> BlockKey {
        BlockKey {
            url: Arc::from("http://o/f"),
            etag: Arc::from("\"e1\""),
            index: i,
        }
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("roibin-fs-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn cap_holds_while_filling_three_times_over() {
        let d = tmpdir("cap");
        let cap = 1 << 20;
        let (cache, _) = DiskCache::open(&d, cap).unwrap();
        let block = vec![7u8; 64 << 10];
        for i in 0..48 {
            cache.insert(&key(i), &block).unwrap();
            let real: u64 = scan(&d.join("blocks"))
                .0
                .iter()
                .map(|(p, _)| disk_bytes(&fs::metadata(p).unwrap()))
                .sum();
            assert!(real <= cap + (68 << 10), "{real} bytes on disk");
            assert_eq!(cache.usage().1, real);
        }
        // The newest block survives, the oldest went.
        assert_eq!(cache.get(&key(47)).unwrap(), block);
        assert!(matches!(cache.get(&key(0)), Err(Miss::Absent)));
        drop(cache);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_block_file_claiming_more_than_the_largest_block_is_dropped() {
        let d = tmpdir("huge");
        let (cache, _) = DiskCache::open(&d, 1 << 40).unwrap();
        drop(cache);
        let data = vec![0u8; MAX_BLOCK as usize + 1];
        let header = block_file::header(&key(9), &data);
        let path = block_path(&d.join("blocks"), &key(9));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let f = File::create(&path).unwrap();
        (&f).write_all(&header).unwrap();
        f.set_len((header.len() + data.len()) as u64).unwrap(); // sparse: costs no disk
        let (cache, report) = DiskCache::open(&d, 1 << 40).unwrap();
        assert_eq!((report.blocks, report.dropped), (0, 1));
        assert!(matches!(cache.get(&key(9)), Err(Miss::Absent)));
        drop(cache);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn reopen_keeps_good_blocks_and_drops_bad_ones() {
        let d = tmpdir("reopen");
        let (cache, _) = DiskCache::open(&d, 1 << 30).unwrap();
        for i in 0..4 {
            cache.insert(&key(i), &vec![i as u8; 10_000]).unwrap();
        }
        // A second mount on the same directory is refused while the first holds it.
        let err = DiskCache::open(&d, 1 << 30).err().unwrap().to_string();
        assert!(err.contains("in use"), "{err}");
        drop(cache);
        let p1 = block_path(&d.join("blocks"), &key(1));
        let p2 = block_path(&d.join("blocks"), &key(2));
        let mut bytes = fs::read(&p1).unwrap();
        bytes.truncate(bytes.len() - 10); // torn write
        fs::write(&p1, bytes).unwrap();
        let mut bytes = fs::read(&p2).unwrap();
        let n = bytes.len();
        bytes[n - 5] ^= 1; // flipped bit: found on read, not at open
        fs::write(&p2, bytes).unwrap();
        fs::write(p1.with_file_name(".x.tmp"), b"partial").unwrap();
        let (cache, report) = DiskCache::open(&d, 1 << 30).unwrap();
        assert_eq!(
            (report.blocks, report.dropped, report.temp_removed),
            (3, 1, 1)
        );
        assert_eq!(cache.get(&key(0)).unwrap(), vec![0u8; 10_000]);
        assert!(matches!(cache.get(&key(2)), Err(Miss::Corrupt(_))));
        assert!(matches!(cache.get(&key(2)), Err(Miss::Absent)));
        assert_eq!(cache.usage().0, 2);
        drop(cache);
        fs::remove_dir_all(&d).unwrap();
    }
}
