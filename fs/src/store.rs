//! The block store: RAM tier, then disk tier, then the origin, with one upstream request per
//! block however many readers want it at once (single flight).

use crate::cache::disk::{DiskCache, Miss};
use crate::cache::ram::RamCache;
use crate::cache::BlockKey;
use crate::origin::{Origin, OriginError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// One open version of one origin file.
#[derive(Clone, Debug)]
pub struct FileRef {
    /// Origin-relative path.
    pub path: String,
    /// Origin identity + path: what blocks are keyed by.
    pub url: Arc<str>,
    pub etag: Arc<str>,
    pub size: u64,
    /// Named like an HDF5 file: blocks fetched from the origin are searched for chunk indexes.
    pub hdf5: bool,
}

/// Extensions of HDF5 files (NeXus, CXI and netCDF-4 files are HDF5 files).
const HDF5_EXTENSIONS: &[&str] = &["h5", "hdf5", "hdf", "he5", "nxs", "nx5", "cxi", "nc", "nc4"];

/// Whether `path` is named like an HDF5 file.
pub fn looks_like_hdf5(path: &str) -> bool {
    path.rsplit_once('.')
        .is_some_and(|(_, ext)| HDF5_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
}

impl FileRef {
    pub fn key(&self, index: u64) -> BlockKey {
        BlockKey {
            url: Arc::clone(&self.url),
            etag: Arc::clone(&self.etag),
            index,
        }
    }
}

/// Where a block was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    Ram,
    Disk,
    Origin,
}

/// Counters a mount reports (`stats.json`, `roibin-fs status`).
#[derive(Default, serde::Serialize)]
pub struct Stats {
    pub ram_hits: AtomicU64,
    pub disk_hits: AtomicU64,
    pub origin_gets: AtomicU64,
    /// Small random reads sent to the origin as they are, their block fetched behind them.
    pub origin_range_gets: AtomicU64,
    pub origin_bytes: AtomicU64,
    /// Readers that waited for another reader's request for the same block.
    pub joined_flights: AtomicU64,
    /// Cached blocks that failed their checks and were fetched again.
    pub corrupt_blocks: AtomicU64,
    pub origin_errors: AtomicU64,
    pub prefetch_queued: AtomicU64,
    pub hdf5_chunks_hinted: AtomicU64,
    pub disk_write_errors: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

type Fetched = Result<Arc<Vec<u8>>, OriginError>;

#[derive(Default)]
struct Flight {
    done: Mutex<Option<Fetched>>,
    cv: Condvar,
}

pub struct BlockStore {
    origin: Arc<dyn Origin>,
    pub disk: DiskCache,
    pub ram: RamCache,
    pub block_size: u64,
    flights: Mutex<HashMap<BlockKey, Arc<Flight>>>,
    pub stats: Stats,
    /// How long a reader waits for another's request: past it, the request is as good as lost.
    wait_limit: Duration,
}

impl BlockStore {
    pub fn new(
        origin: Arc<dyn Origin>,
        disk: DiskCache,
        ram: RamCache,
        block_size: u64,
        timeout: Duration,
    ) -> Self {
        Self {
            origin,
            disk,
            ram,
            block_size,
            flights: Mutex::default(),
            stats: Stats::default(),
            wait_limit: timeout * 2 + Duration::from_secs(1),
        }
    }

    pub fn origin(&self) -> &dyn Origin {
        &*self.origin
    }

    /// Number of blocks of a file of `size` bytes.
    pub fn blocks_of(&self, size: u64) -> u64 {
        size.div_ceil(self.block_size)
    }

    /// Whether the block is in RAM (a question: it does not refresh the block's recency).
    pub fn is_in_ram(&self, key: &BlockKey) -> bool {
        self.ram.contains(key)
    }

    /// Whether a read of this block would be served without a new request to the origin.
    pub fn is_cached_or_coming(&self, key: &BlockKey) -> bool {
        self.is_in_ram(key)
            || self.disk.contains(key)
            || self.flights.lock().unwrap().contains_key(key)
    }

    /// Exactly `len` bytes at `offset` straight from the origin, cached nowhere: a small
    /// random read should not wait for a whole block.
    pub fn read_through(
        &self,
        file: &FileRef,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>, OriginError> {
        self.fetch_origin(file, offset, len, &self.stats.origin_range_gets)
    }

    /// `len` bytes at `offset` from the origin, counted under `requests`.
    fn fetch_origin(
        &self,
        file: &FileRef,
        offset: u64,
        len: usize,
        requests: &AtomicU64,
    ) -> Result<Vec<u8>, OriginError> {
        let data = self
            .origin
            .read(&file.path, &file.etag, offset, len)
            .inspect_err(|_| bump(&self.stats.origin_errors, 1))?;
        bump(requests, 1);
        bump(&self.stats.origin_bytes, len as u64);
        Ok(data)
    }

    /// Block `index` of `file`, and where it came from.
    pub fn block(&self, file: &FileRef, index: u64) -> Result<(Arc<Vec<u8>>, Tier), OriginError> {
        let key = file.key(index);
        if let Some(data) = self.ram.get(&key) {
            bump(&self.stats.ram_hits, 1);
            return Ok((data, Tier::Ram));
        }
        let (flight, leader) = {
            let mut flights = self.flights.lock().unwrap();
            match flights.get(&key) {
                Some(f) => (Arc::clone(f), false),
                None => {
                    let f = Arc::new(Flight::default());
                    flights.insert(key.clone(), Arc::clone(&f));
                    (f, true)
                }
            }
        };
        if !leader {
            bump(&self.stats.joined_flights, 1);
            let done = flight.done.lock().unwrap();
            let (done, _) = flight
                .cv
                .wait_timeout_while(done, self.wait_limit, |d| d.is_none())
                .unwrap();
            return match &*done {
                Some(result) => result.clone().map(|d| (d, Tier::Ram)),
                None => Err(OriginError::Unavailable(format!(
                    "{}: block {index} still not fetched after {:?}",
                    file.path, self.wait_limit
                ))),
            };
        }
        let result = self.fill(file, &key);
        *flight.done.lock().unwrap() = Some(
            result
                .as_ref()
                .map(|(d, _)| Arc::clone(d))
                .map_err(Clone::clone),
        );
        flight.cv.notify_all();
        self.flights.lock().unwrap().remove(&key);
        result
    }

    /// The leader's work: RAM again (another flight may just have landed), disk, origin.
    fn fill(&self, file: &FileRef, key: &BlockKey) -> Result<(Arc<Vec<u8>>, Tier), OriginError> {
        if let Some(data) = self.ram.get(key) {
            bump(&self.stats.ram_hits, 1);
            return Ok((data, Tier::Ram));
        }
        match self.disk.get(key) {
            Ok(data) => {
                bump(&self.stats.disk_hits, 1);
                let data = Arc::new(data);
                self.ram.insert(key.clone(), Arc::clone(&data));
                return Ok((data, Tier::Disk));
            }
            Err(Miss::Corrupt(why)) => {
                bump(&self.stats.corrupt_blocks, 1);
                eprintln!("roibin-fs: cached block failed its check ({why}); fetching it again");
            }
            Err(Miss::Absent) => {}
        }
        let offset = key.index * self.block_size;
        if offset >= file.size {
            return Ok((Arc::new(Vec::new()), Tier::Ram));
        }
        let len = (file.size - offset).min(self.block_size) as usize;
        let data = self.fetch_origin(file, offset, len, &self.stats.origin_gets)?;
        if let Err(e) = self.disk.insert(key, &data) {
            // A full or failing cache disk costs speed, not correctness: serve the bytes.
            if self.stats.disk_write_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                eprintln!("roibin-fs: cannot write to the cache directory ({e}); serving uncached");
            }
        }
        let data = Arc::new(data);
        self.ram.insert(key.clone(), Arc::clone(&data));
        Ok((data, Tier::Origin))
    }

    /// Forgets every cached block of `url` but those of version `keep`.
    pub fn drop_other_versions(&self, url: &str, keep: &str) {
        self.ram.remove_versions(url, keep);
        self.disk.remove_versions(url, keep);
    }

    /// The counters and the tiers' usage, for `stats.json`.
    pub fn report(&self) -> serde_json::Value {
        let (blocks, bytes) = self.disk.usage();
        let mut v = serde_json::to_value(&self.stats).unwrap_or_default();
        v["disk_blocks"] = blocks.into();
        v["disk_bytes"] = bytes.into();
        v["disk_cap"] = self.disk.cap().into();
        v["ram_bytes"] = self.ram.used().into();
        v["origin"] = self.origin.identity().into();
        v
    }
}
