//! Work ahead of the reader: sequential readahead whose window doubles while a reader keeps
//! reading in order, and HDF5 chunk hints (`hdf5_hint`); both feed a bounded queue drained by a
//! few threads that fetch through the block store (so a prefetch and a read of the same block
//! are still one upstream request).

use crate::store::{BlockStore, FileRef, Tier};
use std::collections::HashSet;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

struct Job {
    file: Arc<FileRef>,
    index: u64,
}

pub struct Prefetcher {
    tx: SyncSender<Job>,
    queued: Mutex<HashSet<(Arc<str>, u64)>>,
    /// Bytes of chunks one index node may schedule.
    hint_budget: u64,
}

impl Prefetcher {
    /// `threads` fetching from a queue of at most `queue` jobs (past it new prefetches are
    /// dropped: they are only hints).
    pub fn start(
        store: Arc<BlockStore>,
        threads: usize,
        queue: usize,
        hint_budget: u64,
    ) -> Arc<Self> {
        let (tx, rx) = sync_channel(queue);
        let me = Arc::new(Self {
            tx,
            queued: Mutex::default(),
            hint_budget,
        });
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let (me, rx, store) = (Arc::clone(&me), Arc::clone(&rx), Arc::clone(&store));
            std::thread::Builder::new()
                .name(format!("prefetch-{i}"))
                .spawn(move || me.work(&rx, &store))
                .expect("spawning a prefetch thread");
        }
        me
    }

    fn work(&self, rx: &Mutex<Receiver<Job>>, store: &BlockStore) {
        loop {
            let job = match rx.lock().unwrap().recv() {
                Ok(job) => job,
                Err(_) => return,
            };
            self.queued
                .lock()
                .unwrap()
                .remove(&(Arc::clone(&job.file.url), job.index));
            // Errors are the reader's to see when it gets there; a prefetch just stops.
            if let Ok((data, Tier::Origin)) = store.block(&job.file, job.index) {
                self.hint(store, &job.file, &data);
            }
        }
    }

    /// Queues blocks `range` of `file` unless already cached in RAM or queued.
    pub fn submit(&self, store: &BlockStore, file: &Arc<FileRef>, range: Range<u64>) {
        let end = range.end.min(store.blocks_of(file.size));
        for index in range.start..end {
            if store.is_in_ram(&file.key(index)) {
                continue;
            }
            if !self
                .queued
                .lock()
                .unwrap()
                .insert((Arc::clone(&file.url), index))
            {
                continue;
            }
            let job = Job {
                file: Arc::clone(file),
                index,
            };
            if self.tx.try_send(job).is_err() {
                self.queued
                    .lock()
                    .unwrap()
                    .remove(&(Arc::clone(&file.url), index));
                return;
            }
            store.stats.prefetch_queued.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Called with every block fetched from the origin: schedules the chunks an HDF5 chunk
    /// index in it lists.
    pub fn hint(&self, store: &BlockStore, file: &FileRef, block: &[u8]) {
        if !file.hdf5 || self.hint_budget == 0 {
            return;
        }
        let extents = crate::hdf5_hint::chunk_extents(block, file.size);
        if extents.is_empty() {
            return;
        }
        store
            .stats
            .hdf5_chunks_hinted
            .fetch_add(extents.len() as u64, Ordering::Relaxed);
        let file = Arc::new(file.clone());
        let mut budget = self.hint_budget;
        for (address, size) in extents {
            if budget == 0 {
                break;
            }
            let size = size.min(budget);
            budget -= size;
            let first = address / store.block_size;
            let last = (address + size - 1) / store.block_size;
            self.submit(store, &file, first..last + 1);
        }
    }
}

/// Per open file: is the reader going in order, and how far ahead to fetch.
#[derive(Default)]
pub struct Readahead {
    /// Whether the last read continued the one before it.
    pub in_order: bool,
    next_offset: u64,
    window: u64,
    /// Blocks before this index were already scheduled.
    scheduled_to: u64,
}

impl Readahead {
    /// Blocks to prefetch after a read of `len` bytes at `offset` (none when `max_window` is
    /// 0). The kernel splits and may
    /// reorder a sequential stream a little, so "in order" allows one block of slack.
    pub fn after_read(
        &mut self,
        offset: u64,
        len: u64,
        block_size: u64,
        max_window: u64,
    ) -> Range<u64> {
        let in_order = offset.abs_diff(self.next_offset) <= block_size;
        self.in_order = in_order;
        self.next_offset = offset + len;
        if !in_order {
            self.window = 0;
            self.scheduled_to = 0;
            return 0..0;
        }
        self.window = (self.window * 2).max(2).min(max_window);
        let next_block = (offset + len).div_ceil(block_size);
        let start = next_block.max(self.scheduled_to);
        let end = next_block + self.window;
        self.scheduled_to = self.scheduled_to.max(end);
        start..end.max(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_grows_in_order_and_resets_on_a_jump() {
        let mut ra = Readahead::default();
        let bs = 1 << 20;
        // The first read (at 0) counts as in order; the window starts at 2 blocks.
        assert_eq!(ra.after_read(0, 128 << 10, bs, 16), 1..3);
        assert_eq!(ra.after_read(128 << 10, 128 << 10, bs, 16), 3..5);
        assert_eq!(ra.after_read(256 << 10, 128 << 10, bs, 16), 5..9);
        assert_eq!(ra.after_read(384 << 10, 128 << 10, bs, 16), 9..17);
        assert_eq!(ra.after_read(512 << 10, 128 << 10, bs, 16), 17..17);
        assert_eq!(ra.after_read(640 << 10, 128 << 10, bs, 16), 17..17);
        // A random read stops readahead.
        assert_eq!(ra.after_read(900 << 20, 4096, bs, 16), 0..0);
        let mut off = Readahead::default();
        assert!(off.after_read(0, 4096, bs, 0).is_empty());
        assert!(off.after_read(4096, 4096, bs, 0).is_empty());
    }
}
