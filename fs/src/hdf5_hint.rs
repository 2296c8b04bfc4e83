//! HDF5-aware prefetch. An HDF5 reader opening a chunked dataset first reads the dataset's
//! chunk index, then the chunks it lists. When a block fetched from the origin holds a leaf
//! node of a version-1 B-tree of raw-data chunks (HDF5's default chunk index, `TREE`, node
//! type 1, level 0), the chunk addresses and sizes it lists are the reads about to come.
//!
//! The node layout (HDF5 file format spec, "Version 1 B-trees"), with 8-byte addresses:
//! `"TREE" | type u8 | level u8 | entries u16 | left u64 | right u64 |` then `entries` times
//! `key child` and a final key, a key of type 1 being `chunk size u32 | filter mask u32 |
//! offsets u64 × (rank + 1)`. The rank is not in the node, so each rank is tried and kept only
//! if every entry is plausible (a child's key ends in offset 0, keys strictly ascend, chunks
//! lie inside the file, past its start, without overlapping). A wrong guess would cost bandwidth, never bytes: the hint only schedules prefetches.

/// Most entries a node of a file written with sane settings holds (2K, K ≤ 32767 by the format,
/// 32 by default).
const MAX_ENTRIES: usize = 4096;
const UNDEF: u64 = u64::MAX;

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// (address, size) of every chunk listed by a chunk-index leaf node found in `bytes`.
pub fn chunk_extents(bytes: &[u8], file_size: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for at in memchr::memmem::find_iter(bytes, b"TREE") {
        if let Some(extents) = leaf_node(&bytes[at..], file_size) {
            out.extend(extents);
        }
    }
    out
}

fn leaf_node(node: &[u8], file_size: u64) -> Option<Vec<(u64, u64)>> {
    if node.len() < 24 || node[4] != 1 || node[5] != 0 {
        return None;
    }
    let entries = u16::from_le_bytes([node[6], node[7]]) as usize;
    if entries == 0 || entries > MAX_ENTRIES {
        return None;
    }
    for sibling in [u64_at(node, 8)?, u64_at(node, 16)?] {
        if sibling != UNDEF && sibling >= file_size {
            return None;
        }
    }
    (1..=32).find_map(|dims| entries_with_rank(node, entries, dims, file_size))
}

/// The node's extents read with keys of `dims` offsets, if every entry is plausible.
fn entries_with_rank(
    node: &[u8],
    entries: usize,
    dims: usize,
    file_size: u64,
) -> Option<Vec<(u64, u64)>> {
    let key_len = 8 + 8 * dims;
    let stride = key_len + 8;
    if node.len() < 24 + entries * stride + key_len {
        return None;
    }
    let mut out = Vec::with_capacity(entries);
    let mut previous: Option<Vec<u64>> = None;
    for i in 0..=entries {
        let key = 24 + i * stride;
        let offsets: Vec<u64> = (0..dims)
            .map(|d| u64_at(node, key + 8 + 8 * d))
            .collect::<Option<_>>()?;
        if previous.as_ref().is_some_and(|p| *p >= offsets) {
            return None;
        }
        previous = Some(offsets);
        if i == entries {
            // The final key bounds the node (HDF5 writes the dataset's extent and the element
            // size there); no child follows it.
            break;
        }
        if previous.as_ref().and_then(|p| p.last()) != Some(&0) {
            return None;
        }
        let size = u64::from(u32_at(node, key)?);
        let address = u64_at(node, key + key_len)?;
        if size == 0 || address == 0 || address.checked_add(size)? > file_size {
            return None;
        }
        out.push((address, size));
    }
    // Chunks never overlap.
    let mut sorted = out.clone();
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[0].0 + w[0].1 > w[1].0) {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A leaf node as HDF5 writes it for a rank-`rank` dataset with the given chunks.
    fn node(rank: usize, chunks: &[(u64, u32)]) -> Vec<u8> {
        let mut b = b"TREE".to_vec();
        b.extend_from_slice(&[1, 0]);
        b.extend_from_slice(&(chunks.len() as u16).to_le_bytes());
        b.extend_from_slice(&UNDEF.to_le_bytes());
        b.extend_from_slice(&UNDEF.to_le_bytes());
        let key = |b: &mut Vec<u8>, size: u32, first: u64| {
            b.extend_from_slice(&size.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            b.extend_from_slice(&first.to_le_bytes());
            for _ in 1..rank {
                b.extend_from_slice(&0u64.to_le_bytes());
            }
            b.extend_from_slice(&0u64.to_le_bytes()); // the element dimension
        };
        for (i, (addr, size)) in chunks.iter().enumerate() {
            key(&mut b, *size, i as u64);
            b.extend_from_slice(&addr.to_le_bytes());
        }
        // The final key as HDF5 1.10/2.0 write it (seen in h5py files): the last chunk's first
        // offset, the frame's extent, then the element size (2 for u16) where 0 would be.
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&(chunks.len() as u64 - 1).to_le_bytes());
        for _ in 1..rank {
            b.extend_from_slice(&96u64.to_le_bytes());
        }
        b.extend_from_slice(&2u64.to_le_bytes());
        b
    }

    #[test]
    fn finds_the_chunks_a_leaf_lists() {
        let chunks = [(4096, 1000), (5096, 2000), (9000, 500)];
        for rank in [1, 3, 4] {
            let mut block = vec![0x55; 333];
            block.extend(node(rank, &chunks));
            block.extend([0u8; 100]);
            let found = chunk_extents(&block, 1 << 20);
            let want: Vec<(u64, u64)> = chunks.iter().map(|&(a, s)| (a, s as u64)).collect();
            assert_eq!(found, want, "rank {rank}");
        }
    }

    #[test]
    fn implausible_nodes_give_nothing() {
        let good = node(3, &[(4096, 1000), (5096, 2000)]);
        // Chunks past the end of the file.
        assert!(chunk_extents(&good, 5000).is_empty());
        // Cut short.
        assert!(chunk_extents(&good[..good.len() - 9], 1 << 20).is_empty());
        // An internal node (level 1) or a group node (type 0).
        for (at, v) in [(5, 1u8), (4, 0u8)] {
            let mut n = good.clone();
            n[at] = v;
            assert!(chunk_extents(&n, 1 << 20).is_empty());
        }
        // Text that merely says TREE.
        assert!(chunk_extents(b"a TREE grows here, and TREE again", 1 << 20).is_empty());
    }
}
