//! The RAM tier: whole blocks, least recently used evicted past a byte cap.

use super::BlockKey;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

pub struct RamCache {
    cap: u64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    blocks: HashMap<BlockKey, (Arc<Vec<u8>>, u64)>,
    /// last use → key, oldest first.
    order: BTreeMap<u64, BlockKey>,
    used: u64,
    clock: u64,
}

impl RamCache {
    pub fn new(cap: u64) -> Self {
        Self {
            cap,
            state: Mutex::default(),
        }
    }

    pub fn get(&self, key: &BlockKey) -> Option<Arc<Vec<u8>>> {
        let mut s = self.state.lock().unwrap();
        s.clock += 1;
        let now = s.clock;
        let (data, last) = s.blocks.get_mut(key)?;
        let (data, old) = (Arc::clone(data), std::mem::replace(last, now));
        s.order.remove(&old);
        s.order.insert(now, key.clone());
        Some(data)
    }

    /// Whether the block is held, without counting as a use.
    pub fn contains(&self, key: &BlockKey) -> bool {
        self.state.lock().unwrap().blocks.contains_key(key)
    }

    pub fn insert(&self, key: BlockKey, data: Arc<Vec<u8>>) {
        let len = data.len() as u64;
        if len > self.cap {
            return;
        }
        let mut s = self.state.lock().unwrap();
        if s.blocks.contains_key(&key) {
            return;
        }
        while s.used + len > self.cap {
            let Some((_, old)) = s.order.pop_first() else {
                break;
            };
            if let Some((d, _)) = s.blocks.remove(&old) {
                s.used -= d.len() as u64;
            }
        }
        s.clock += 1;
        let now = s.clock;
        s.order.insert(now, key.clone());
        s.blocks.insert(key, (data, now));
        s.used += len;
    }

    /// Drops every block of `url` whose version is not `keep`.
    pub fn remove_versions(&self, url: &str, keep: &str) {
        let mut s = self.state.lock().unwrap();
        let stale: Vec<BlockKey> = s
            .blocks
            .keys()
            .filter(|k| k.is_stale_version(url, keep))
            .cloned()
            .collect();
        for k in stale {
            if let Some((d, last)) = s.blocks.remove(&k) {
                s.used -= d.len() as u64;
                s.order.remove(&last);
            }
        }
    }

    pub fn used(&self) -> u64 {
        self.state.lock().unwrap().used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> BlockKey {
        BlockKey {
            url: Arc::from("u"),
            etag: Arc::from("e"),
            index: i,
        }
    }

    #[test]
    fn least_recently_used_goes_first_and_cap_holds() {
        let ram = RamCache::new(300);
        for i in 0..3 {
            ram.insert(key(i), Arc::new(vec![i as u8; 100]));
        }
        assert!(ram.get(&key(0)).is_some()); // 1 is now the oldest
        ram.insert(key(3), Arc::new(vec![3; 100]));
        assert!(ram.get(&key(1)).is_none());
        assert!(ram.get(&key(0)).is_some() && ram.get(&key(3)).is_some());
        assert!(ram.used() <= 300);
        ram.insert(key(9), Arc::new(vec![0; 301])); // larger than the tier: not kept
        assert!(ram.get(&key(9)).is_none());
    }
}
