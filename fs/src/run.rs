//! Mounting (wiring the tiers, the origin and the FUSE session together, clean unmount on
//! SIGTERM/SIGINT/SIGHUP) and the offline commands on a cache directory.

use crate::cache::disk::{self, DiskCache};
use crate::cache::ram::RamCache;
use crate::meta::MetaCache;
use crate::mount::CacheFs;
use crate::prefetch::Prefetcher;
use crate::store::BlockStore;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use crate::cache::disk::MAX_BLOCK;

fn size(text: &str) -> Result<u64, String> {
    crate::parse_size(text)
}

fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("'{text}': {e} (e.g. 60s, 5m)"))
}

/// What `roibin-fs mount` is given (its command-line arguments).
#[derive(clap::Args)]
pub struct MountOptions {
    /// The origin: an http(s):// URL answering range requests, or a directory (NFS)
    pub origin: String,
    /// Where to mount it (an existing directory)
    pub mountpoint: PathBuf,
    /// Directory of the on-disk block cache (kept across mounts)
    #[arg(long)]
    pub cache_dir: PathBuf,
    /// Hard cap on the cache's real disk usage
    #[arg(long, value_parser = size)]
    pub cache_size: u64,
    /// RAM tier size
    #[arg(long, value_parser = size, default_value = "512M")]
    pub ram: u64,
    /// Block size (a power of two, 4K to 64M)
    #[arg(long, value_parser = size, default_value = "1M")]
    pub block: u64,
    /// How long a file's version and a listing are trusted before asking the origin again
    #[arg(long, value_parser = duration, default_value = "60s", conflicts_with = "immutable")]
    pub ttl: Duration,
    /// Files never change once written (closed beamline files): never revalidate them
    #[arg(long)]
    pub immutable: bool,
    /// Servers to ask instead of the origin's host, in order, failing over:
    /// "http://proxyA:3128|http://proxyB:3128" (scheme://host:port; the origin's path is kept)
    #[arg(long = "upstream", value_parser = upstream_list, default_value = "", hide_default_value = true)]
    pub upstreams: Upstreams,
    /// Deadline for any call to the origin: past it the read fails with EIO
    #[arg(long, value_parser = duration, default_value = "10s")]
    pub timeout: Duration,
    /// Threads serving FUSE requests (and as many prefetching)
    #[arg(long, default_value_t = 8)]
    pub threads: usize,
    /// Furthest sequential readahead runs ahead of a reader (0: off)
    #[arg(long, value_parser = size, default_value = "32M")]
    pub readahead: u64,
    /// Bytes of chunks one HDF5 chunk-index node may prefetch (0: off)
    #[arg(long, value_parser = size, default_value = "256M")]
    pub hdf5_prefetch: u64,
}

/// `--upstream "A|B"`, split.
#[derive(Clone, Debug, Default)]
pub struct Upstreams(pub Vec<String>);

fn upstream_list(text: &str) -> Result<Upstreams, String> {
    Ok(Upstreams(
        text.split('|')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    ))
}

/// Mounts and serves until unmounted (`fusermount3 -u`, or a signal).
pub fn mount(o: MountOptions) -> anyhow::Result<()> {
    anyhow::ensure!(
        (4096..=MAX_BLOCK).contains(&o.block) && o.block.is_power_of_two(),
        "--block {}: give a power of two from 4K to 64M",
        o.block
    );
    anyhow::ensure!(
        o.cache_size >= 4 * o.block,
        "--cache-size must hold at least four blocks"
    );
    anyhow::ensure!(
        (1..=256).contains(&o.threads),
        "--threads {}: give 1 to 256",
        o.threads
    );
    anyhow::ensure!(
        o.mountpoint.is_dir(),
        "mount point {} is not a directory",
        o.mountpoint.display()
    );
    let origin: Arc<dyn crate::origin::Origin> =
        Arc::from(crate::origin::open(&o.origin, &o.upstreams.0, o.timeout)?);
    if let Err(e) = origin.list("") {
        eprintln!("roibin-fs: warning: the origin does not answer yet ({e}); mounting anyway");
    }
    let (disk, rebuilt) = DiskCache::open(&o.cache_dir, o.cache_size)?;
    eprintln!(
        "roibin-fs: cache {}: {} blocks ({} MiB) kept from before, {} bad dropped, {} partial writes removed, {} evicted",
        o.cache_dir.display(),
        rebuilt.blocks,
        rebuilt.bytes >> 20,
        rebuilt.dropped,
        rebuilt.temp_removed,
        rebuilt.evicted
    );
    let store = Arc::new(BlockStore::new(
        origin,
        disk,
        RamCache::new(o.ram),
        o.block,
        o.timeout,
    ));
    let prefetch = Prefetcher::start(Arc::clone(&store), o.threads, 4096, o.hdf5_prefetch);
    // Blocks behind small random reads: one thread and a short queue, so that filling the
    // cache never crowds out the reads themselves at the origin.
    let fill_behind = Prefetcher::start(Arc::clone(&store), 1, 4, o.hdf5_prefetch);
    let fs = CacheFs::new(
        Arc::clone(&store),
        prefetch,
        fill_behind,
        MetaCache::new(o.ttl, o.immutable),
        o.readahead / o.block,
    );

    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::FSName(format!("roibin-fs:{}", o.origin)),
        fuser::MountOption::Subtype("roibin-fs".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } == 0 {
        // fusermount3 unmounts for us if we die (kill -9), so no mount is left dangling.
        config.mount_options.push(fuser::MountOption::AutoUnmount);
        config.acl = fuser::SessionACL::All;
    }
    config.n_threads = Some(o.threads);
    config.clone_fd = true;
    let mut session = fuser::Session::new(fs, &o.mountpoint, &config)
        .with_context(|| format!("mounting at {}", o.mountpoint.display()))?;
    let mut unmounter = session.unmount_callable();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])?;
    let mountpoint = o.mountpoint.clone();
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            let _ = unmounter.unmount();
            // With auto-unmount, fuser hands unmounting to fusermount3, which leaves the mount
            // in place while we live; detach it ourselves so that the session ends now.
            let _ = std::process::Command::new("fusermount3")
                .arg("-u")
                .arg("-z")
                .arg(&mountpoint)
                .stderr(std::process::Stdio::null())
                .status();
        }
    });
    let stats_path = o.cache_dir.join("stats.json");
    {
        let (store, stats_path) = (Arc::clone(&store), stats_path.clone());
        std::thread::spawn(move || loop {
            write_stats(&stats_path, &store);
            std::thread::sleep(Duration::from_millis(500));
        });
    }
    eprintln!(
        "roibin-fs: {} mounted at {}",
        o.origin,
        o.mountpoint.display()
    );
    session.run().context("serving the mount")?;
    write_stats(&stats_path, &store);
    eprintln!("roibin-fs: unmounted {}", o.mountpoint.display());
    Ok(())
}

/// Writes the mount's counters atomically, for `status` and for tests.
fn write_stats(path: &Path, store: &BlockStore) {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(&store.report()).unwrap_or_default();
    if std::fs::write(&tmp, text).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

/// What a cache directory holds, read without taking it from a live mount.
pub fn status(cache_dir: &Path) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(
        cache_dir.join("blocks").is_dir(),
        "{} is not a roibin-fs cache directory (no blocks/)",
        cache_dir.display()
    );
    let (blocks, temps) = disk::scan(&cache_dir.join("blocks"));
    let (mut good, mut bytes, mut bad) = (0u64, 0u64, 0u64);
    let mut files = std::collections::BTreeMap::<String, (u64, u64)>::new();
    for (_, header) in &blocks {
        match header {
            Ok((h, m)) => {
                good += 1;
                let disk = disk::disk_bytes(m);
                bytes += disk;
                let f = files.entry(h.key.url.to_string()).or_default();
                f.0 += 1;
                f.1 += disk;
            }
            Err(_) => bad += 1,
        }
    }
    let live = std::fs::read_to_string(cache_dir.join("stats.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    let mounted = std::fs::OpenOptions::new()
        .write(true)
        .open(cache_dir.join("lock"))
        .map(|f| f.try_lock().is_err())
        .unwrap_or(false);
    Ok(serde_json::json!({
        "cache_dir": cache_dir.display().to_string(),
        "mounted": mounted,
        "blocks": good,
        "bytes": bytes,
        "unreadable_blocks": bad,
        "temporary_files": temps.len(),
        "files": files.iter().map(|(url, (n, b))| serde_json::json!({"url": url, "blocks": n, "bytes": b})).collect::<Vec<_>>(),
        "last_mount_counters": live,
    }))
}

/// Evicts least recently used blocks down to `target` bytes (0: empty the cache).
pub fn evict(cache_dir: &Path, target: u64) -> anyhow::Result<(usize, u64)> {
    let (cache, _) = DiskCache::open(cache_dir, u64::MAX)?;
    let n = cache.evict_to(target, target);
    Ok((n, cache.usage().1))
}

/// Checks every block's header and CRC; bad blocks are deleted. (checked, problems)
pub fn verify(cache_dir: &Path) -> anyhow::Result<(usize, Vec<String>)> {
    anyhow::ensure!(
        cache_dir.join("blocks").is_dir(),
        "{} is not a roibin-fs cache directory (no blocks/)",
        cache_dir.display()
    );
    let (cache, rebuilt) = DiskCache::open(cache_dir, u64::MAX)?;
    let (checked, mut bad) = cache.verify();
    if rebuilt.dropped > 0 {
        bad.push(format!("{} torn or foreign block files", rebuilt.dropped));
    }
    Ok((checked + rebuilt.dropped, bad))
}
