//! `shuffle(threads)`: byte shuffle, so byte k of every element sits next to byte k of the others.

use crate::permute::{Permutation, Permute};
use rayon::prelude::*;
use roibin_registry::options::THREADS;
use roibin_registry::{threads, Accepts, CodecInfo};

/// Byte-shuffle configuration.
#[derive(Debug, Clone)]
pub struct Shuffle {
    pub threads: usize,
}

/// Byte-shuffle `data` of `elem`-byte elements into `out` (same length).
pub fn shuffle(data: &[u8], elem: usize, out: &mut [u8]) {
    let n = data.len() / elem;
    let tail = n * elem;
    out.par_chunks_mut(n.max(1))
        .take(elem)
        .with_min_len(threads::min_len(n))
        .enumerate()
        .for_each(|(b, plane)| {
            for (i, o) in plane.iter_mut().enumerate() {
                *o = data[i * elem + b];
            }
        });
    out[tail..].copy_from_slice(&data[tail..]);
}

/// Inverse of [`shuffle`].
pub fn unshuffle(data: &[u8], elem: usize, out: &mut [u8]) {
    let n = data.len() / elem;
    let tail = n * elem;
    // Parallel over runs of elements: each writes its own slice of the output.
    out[..tail]
        .par_chunks_mut(elem * 4096)
        .with_min_len(threads::min_len(elem * 4096))
        .enumerate()
        .for_each(|(c, dst)| {
            let first = c * 4096;
            for (j, e) in dst.chunks_exact_mut(elem).enumerate() {
                for (b, v) in e.iter_mut().enumerate() {
                    *v = data[b * n + first + j];
                }
            }
        });
    out[tail..].copy_from_slice(&data[tail..]);
}

impl Permutation for Shuffle {
    const NAME: &'static str = "shuffle";
    fn forward(&self, data: &[u8], elem: usize, dst: &mut [u8]) {
        threads::install(self.threads, || shuffle(data, elem, dst));
    }
    fn inverse(&self, data: &[u8], elem: usize, dst: &mut [u8]) {
        threads::install(self.threads, || unshuffle(data, elem, dst));
    }
}

inventory::submit! {
    CodecInfo {
        name: "shuffle",
        version: 1,
        doc: "byte shuffle (lossless): groups byte k of every element; helps zstd/lz4 on multi-byte data",
        options: &[THREADS],
        accepts: Accepts::ANY,
        thread_safe: true,
        build: |c| Ok(Box::new(Permute(Shuffle { threads: c.threads()? }))),
    }
}
