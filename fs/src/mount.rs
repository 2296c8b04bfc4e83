//! The FUSE filesystem: a read-only view of the origin's tree whose reads go through the block
//! store. Requests are handled by several threads at once (fuser's `n_threads`).

use crate::meta::{Current, MetaCache};
use crate::origin::{join, EntryKind, OriginError};
use crate::prefetch::{Prefetcher, Readahead};
use crate::store::{BlockStore, FileRef, Tier};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, Request,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

pub struct CacheFs {
    store: Arc<BlockStore>,
    prefetch: Arc<Prefetcher>,
    /// Fetches the blocks of small out-of-order reads served straight from the origin.
    fill_behind: Arc<Prefetcher>,
    meta: MetaCache,
    inodes: Mutex<Inodes>,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    next_handle: AtomicU64,
    /// Most blocks sequential readahead runs ahead of a reader (0: no readahead).
    readahead_blocks: u64,
    /// How long the kernel may trust attributes and names we hand it.
    attr_ttl: Duration,
}

/// Inode numbers handed to the kernel: ino = index + 1 (1 is the root, path "").
#[derive(Default)]
struct Inodes {
    nodes: Vec<(String, EntryKind)>,
    by_path: HashMap<String, u64>,
    /// The version each file was last opened at: reopening the same version keeps the kernel's
    /// page cache, a new one drops it.
    opened_etag: HashMap<u64, Arc<str>>,
}

impl Inodes {
    fn intern(&mut self, path: String, kind: EntryKind) -> u64 {
        if let Some(&ino) = self.by_path.get(&path) {
            self.nodes[ino as usize - 1].1 = kind;
            return ino;
        }
        self.nodes.push((path.clone(), kind));
        let ino = self.nodes.len() as u64;
        self.by_path.insert(path, ino);
        ino
    }
    fn get(&self, ino: INodeNo) -> Option<(String, EntryKind)> {
        self.nodes.get((ino.0 as usize).checked_sub(1)?).cloned()
    }
}

/// The bytes of one read: a range of a cached block, or bytes of their own.
enum Served {
    Slice(Arc<Vec<u8>>, std::ops::Range<usize>),
    Owned(Vec<u8>),
}

impl Served {
    fn bytes(&self) -> &[u8] {
        match self {
            Served::Slice(data, range) => &data[range.clone()],
            Served::Owned(bytes) => bytes,
        }
    }
}

struct Handle {
    file: Arc<FileRef>,
    readahead: Mutex<Readahead>,
}

fn errno(e: &OriginError) -> Errno {
    match e {
        OriginError::NotFound(_) => Errno::ENOENT,
        _ => Errno::EIO,
    }
}

fn attr(ino: u64, kind: EntryKind, size: u64, mtime: SystemTime, blksize: u32) -> FileAttr {
    let (kind, perm, nlink) = match kind {
        EntryKind::Dir => (FileType::Directory, 0o555, 2),
        EntryKind::File => (FileType::RegularFile, 0o444, 1),
    };
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: mtime,
        mtime,
        ctime: mtime,
        crtime: mtime,
        kind,
        perm,
        nlink,
        // SAFETY: getuid/getgid cannot fail and touch no memory.
        uid: unsafe { libc::getuid() },
        // SAFETY: as above.
        gid: unsafe { libc::getgid() },
        rdev: 0,
        flags: 0,
        blksize,
    }
}

impl CacheFs {
    pub fn new(
        store: Arc<BlockStore>,
        prefetch: Arc<Prefetcher>,
        fill_behind: Arc<Prefetcher>,
        meta: MetaCache,
        readahead_blocks: u64,
    ) -> Self {
        let mut inodes = Inodes::default();
        inodes.intern(String::new(), EntryKind::Dir);
        let attr_ttl = if meta.immutable {
            Duration::from_secs(3600)
        } else {
            meta.ttl
        };
        Self {
            store,
            prefetch,
            fill_behind,
            meta,
            inodes: Mutex::new(inodes),
            handles: Mutex::default(),
            next_handle: AtomicU64::new(1),
            readahead_blocks,
            attr_ttl,
        }
    }

    fn blksize(&self) -> u32 {
        self.store.block_size.min(1 << 24) as u32
    }

    fn url_of(&self, path: &str) -> Arc<str> {
        Arc::from(format!("{}/{path}", self.store.origin().identity()))
    }

    /// The file's current version; a changed one drops the old version's cached blocks.
    fn current(&self, path: &str) -> Result<FileRef, OriginError> {
        let Current { meta, replaced } = self.meta.file(self.store.origin(), path)?;
        let file = FileRef {
            path: path.to_string(),
            url: self.url_of(path),
            etag: Arc::from(meta.etag.as_str()),
            size: meta.size,
            hdf5: crate::store::looks_like_hdf5(path),
        };
        if replaced.is_some() {
            self.store.drop_other_versions(&file.url, &file.etag);
        }
        Ok(file)
    }

    fn attr_of(&self, ino: u64, path: &str, kind: EntryKind) -> Result<FileAttr, OriginError> {
        Ok(match kind {
            EntryKind::Dir => attr(ino, kind, 0, SystemTime::UNIX_EPOCH, self.blksize()),
            EntryKind::File => {
                let Current { meta, .. } = self.meta.file(self.store.origin(), path)?;
                attr(ino, kind, meta.size, meta.mtime, self.blksize())
            }
        })
    }

    fn read_range(&self, handle: &Handle, offset: u64, size: u32) -> Result<Served, OriginError> {
        let file = &handle.file;
        if offset >= file.size {
            return Ok(Served::Owned(Vec::new()));
        }
        let end = (offset + u64::from(size)).min(file.size);
        let bs = self.store.block_size;
        let (ahead, in_order) = {
            let mut ra = handle.readahead.lock().unwrap();
            let ahead = ra.after_read(offset, end - offset, bs, self.readahead_blocks);
            (ahead, ra.in_order)
        };
        if self.readahead_blocks > 0 && !ahead.is_empty() {
            self.prefetch.submit(&self.store, file, ahead);
        }
        // A small read out of order, inside one block nobody has or is fetching: ask the origin
        // for just these bytes and let a prefetch thread bring the block for the next reads.
        let first = offset / bs;
        if !in_order
            && end - offset <= bs / 32
            && (end - 1) / bs == first
            && !self.store.is_cached_or_coming(&file.key(first))
        {
            self.fill_behind.submit(&self.store, file, first..first + 1);
            let bytes = self
                .store
                .read_through(file, offset, (end - offset) as usize)?;
            return Ok(Served::Owned(bytes));
        }
        let mut pieces = Vec::with_capacity(2);
        for index in first..end.div_ceil(bs) {
            let (data, tier) = self.store.block(file, index)?;
            if tier == Tier::Origin {
                self.prefetch.hint(&self.store, file, &data);
            }
            let block_start = index * bs;
            let from = (offset.max(block_start) - block_start) as usize;
            let to = ((end - block_start) as usize).min(data.len());
            pieces.push((data, from.min(to)..to));
        }
        // Most reads lie inside one block: answer from it without copying.
        if pieces.len() == 1 {
            let (data, range) = pieces.pop().unwrap();
            return Ok(Served::Slice(data, range));
        }
        let mut out = Vec::with_capacity((end - offset) as usize);
        for (data, range) in pieces {
            out.extend_from_slice(&data[range]);
        }
        Ok(Served::Owned(out))
    }
}

impl Filesystem for CacheFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Larger kernel readahead means fewer, larger requests; the kernel caps both.
        let _ = config.set_max_readahead(1 << 20);
        let _ = config.set_max_background(64);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let Some((dir, EntryKind::Dir)) = self.inodes.lock().unwrap().get(parent) else {
            return reply.error(Errno::ENOTDIR);
        };
        let Some(name) = name.to_str() else {
            return reply.error(Errno::ENOENT);
        };
        let find = |age| {
            let entries = self.meta.dir_younger_than(self.store.origin(), &dir, age)?;
            Ok::<_, OriginError>(entries.iter().find(|e| e.name == name).cloned())
        };
        let found = match find(self.meta.ttl) {
            Ok(None) => find(Duration::from_secs(1)),
            other => other,
        };
        let entry = match found {
            Ok(Some(entry)) => entry,
            Ok(None) => return reply.error(Errno::ENOENT),
            Err(e) => {
                eprintln!("roibin-fs: listing /{dir}: {e}");
                return reply.error(errno(&e));
            }
        };
        let path = join(&dir, name);
        let ino = self.inodes.lock().unwrap().intern(path, entry.kind);
        let size = if entry.kind == EntryKind::File {
            entry.size
        } else {
            0
        };
        let a = attr(ino, entry.kind, size, entry.mtime, self.blksize());
        reply.entry(&self.attr_ttl, &a, Generation(0));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let Some((path, kind)) = self.inodes.lock().unwrap().get(ino) else {
            return reply.error(Errno::ENOENT);
        };
        match self.attr_of(ino.0, &path, kind) {
            Ok(a) => reply.attr(&self.attr_ttl, &a),
            Err(e) => {
                eprintln!("roibin-fs: stat /{path}: {e}");
                reply.error(errno(&e))
            }
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        let Some((path, EntryKind::File)) = self.inodes.lock().unwrap().get(ino) else {
            return reply.error(Errno::EISDIR);
        };
        let file = match self.current(&path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("roibin-fs: open /{path}: {e}");
                return reply.error(errno(&e));
            }
        };
        let same_version = {
            let mut inodes = self.inodes.lock().unwrap();
            let previous = inodes.opened_etag.insert(ino.0, Arc::clone(&file.etag));
            previous.is_some_and(|p| p == file.etag)
        };
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        let handle = Arc::new(Handle {
            file: Arc::new(file),
            readahead: Mutex::default(),
        });
        self.handles.lock().unwrap().insert(fh, handle);
        let flags = if same_version {
            FopenFlags::FOPEN_KEEP_CACHE
        } else {
            FopenFlags::empty()
        };
        reply.opened(FileHandle(fh), flags);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(handle) = self.handles.lock().unwrap().get(&fh.0).cloned() else {
            return reply.error(Errno::EBADF);
        };
        // A bug must cost this read (EIO), not the thread: a request never answered would
        // hang its reader.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.read_range(&handle, offset, size)
        }))
        .unwrap_or_else(|_| {
            Err(OriginError::Unavailable(
                "internal error (a bug: please report it)".into(),
            ))
        });
        match result {
            Ok(served) => reply.data(served.bytes()),
            Err(e) => {
                eprintln!("roibin-fs: read /{} at {offset}: {e}", handle.file.path);
                if matches!(e, OriginError::Changed { .. }) {
                    self.meta.forget(&handle.file.path);
                }
                reply.error(errno(&e))
            }
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.handles.lock().unwrap().remove(&fh.0);
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some((dir, EntryKind::Dir)) = self.inodes.lock().unwrap().get(ino) else {
            return reply.error(Errno::ENOTDIR);
        };
        let entries = match self.meta.dir(self.store.origin(), &dir) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("roibin-fs: listing /{dir}: {e}");
                return reply.error(errno(&e));
            }
        };
        let mut all = vec![
            (ino.0, FileType::Directory, ".".to_string()),
            (ino.0, FileType::Directory, "..".to_string()),
        ];
        {
            let mut inodes = self.inodes.lock().unwrap();
            for e in entries.iter() {
                let child = inodes.intern(join(&dir, &e.name), e.kind);
                let kind = match e.kind {
                    EntryKind::Dir => FileType::Directory,
                    EntryKind::File => FileType::RegularFile,
                };
                all.push((child, kind, e.name.clone()));
            }
        }
        for (i, (child, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let (blocks, used) = self.store.disk.usage();
        let cap = self.store.disk.cap();
        let files = self.inodes.lock().unwrap().nodes.len() as u64;
        reply.statfs(
            cap / 4096,
            cap.saturating_sub(used) / 4096,
            cap.saturating_sub(used) / 4096,
            files.max(blocks as u64),
            0,
            4096,
            255,
            4096,
        );
    }
}
