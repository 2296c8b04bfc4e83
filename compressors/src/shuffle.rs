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

/// Elements moved per block by the fixed-size kernels: constant loop bounds let the compiler
/// drop bounds checks and use vector shuffles (the runtime-`elem` loop ran at ~0.5 GB/s).
const BLOCK: usize = 64;

/// Byte-shuffle `data` of `elem`-byte elements into `out` (same length).
pub fn shuffle(data: &[u8], elem: usize, out: &mut [u8]) {
    let n = data.len() / elem;
    let tail = n * elem;
    // Parallel over runs of elements: each writes its own part of every plane.
    let run = 4096;
    let mut planes: Vec<&mut [u8]> = out[..tail].chunks_mut(n.max(1)).collect();
    let mut parts: Vec<Vec<&mut [u8]>> = (0..n.div_ceil(run)).map(|_| Vec::new()).collect();
    for plane in planes.iter_mut() {
        for (c, piece) in std::mem::take(plane).chunks_mut(run).enumerate() {
            parts[c].push(piece);
        }
    }
    parts
        .into_par_iter()
        .with_min_len(threads::min_len(elem * run))
        .enumerate()
        .for_each(|(c, mut dst)| {
            let src = &data[c * run * elem..((c + 1) * run).min(n) * elem];
            match elem {
                2 => split::<2>(src, &mut dst),
                4 => split::<4>(src, &mut dst),
                8 => split::<8>(src, &mut dst),
                _ => {
                    for (b, plane) in dst.iter_mut().enumerate() {
                        for (i, o) in plane.iter_mut().enumerate() {
                            *o = src[i * elem + b];
                        }
                    }
                }
            }
        });
    out[tail..].copy_from_slice(&data[tail..]);
}

/// Byte `b` of each `E`-byte element of `src` into `planes[b]`.
fn split<const E: usize>(src: &[u8], planes: &mut [&mut [u8]]) {
    let m = src.len() / E;
    let full = m / BLOCK * BLOCK;
    for k in (0..full).step_by(BLOCK) {
        let s = &src[k * E..(k + BLOCK) * E];
        for (b, plane) in planes.iter_mut().enumerate().take(E) {
            let o = &mut plane[k..k + BLOCK];
            for j in 0..BLOCK {
                o[j] = s[j * E + b];
            }
        }
    }
    for (b, plane) in planes.iter_mut().enumerate().take(E) {
        for j in full..m {
            plane[j] = src[j * E + b];
        }
    }
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
            match elem {
                2 => join::<2>(data, n, first, dst),
                4 => join::<4>(data, n, first, dst),
                8 => join::<8>(data, n, first, dst),
                _ => {
                    for (j, e) in dst.chunks_exact_mut(elem).enumerate() {
                        for (b, v) in e.iter_mut().enumerate() {
                            *v = data[b * n + first + j];
                        }
                    }
                }
            }
        });
    out[tail..].copy_from_slice(&data[tail..]);
}

/// Elements `first..` of the `E` planes (each `n` bytes) of `data`, interleaved into `dst`.
fn join<const E: usize>(data: &[u8], n: usize, first: usize, dst: &mut [u8]) {
    let m = dst.len() / E;
    let planes: [&[u8]; E] = std::array::from_fn(|b| &data[b * n + first..][..m]);
    #[cfg(target_arch = "x86_64")]
    let done = if E == 4 {
        join4_sse2([planes[0], planes[1], planes[2], planes[3]], dst)
    } else {
        0
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    let full = done + (m - done) / BLOCK * BLOCK;
    for k in (done..full).step_by(BLOCK) {
        let o = &mut dst[k * E..(k + BLOCK) * E];
        for (b, plane) in planes.iter().enumerate() {
            let s = &plane[k..k + BLOCK];
            for j in 0..BLOCK {
                o[j * E + b] = s[j];
            }
        }
    }
    for j in full..m {
        for (b, plane) in planes.iter().enumerate() {
            dst[j * E + b] = plane[j];
        }
    }
}

/// The first `m / 16 · 16` elements of four byte planes (each `m = dst.len() / 4` bytes long)
/// interleaved into `dst`, 16 at a time with SSE2's byte and word unpacks: the portable loop
/// stores a byte at a time (4-byte elements are what `shuffle|zstd` windows and floats use).
/// Returns how many elements it wrote.
#[cfg(target_arch = "x86_64")]
fn join4_sse2(planes: [&[u8]; 4], dst: &mut [u8]) -> usize {
    use std::arch::x86_64::{
        __m128i, _mm_loadu_si128, _mm_storeu_si128, _mm_unpackhi_epi16, _mm_unpackhi_epi8,
        _mm_unpacklo_epi16, _mm_unpacklo_epi8,
    };
    let m = dst.len() / 4;
    assert!(
        planes.iter().all(|p| p.len() >= m),
        "planes shorter than the output"
    );
    let full = m / 16 * 16;
    for k in (0..full).step_by(16) {
        // SAFETY: SSE2 is part of every x86_64 CPU. The loads read bytes k..k+16 of each plane
        // (k + 16 <= full <= m <= its length, asserted above) and the stores write bytes
        // 4k..4k+64 of `dst` (4(k + 16) <= 4m <= its length); both are unaligned operations.
        unsafe {
            let load = |p: &[u8]| _mm_loadu_si128(p.as_ptr().add(k) as *const __m128i);
            let (p0, p1, p2, p3) = (
                load(planes[0]),
                load(planes[1]),
                load(planes[2]),
                load(planes[3]),
            );
            // Bytes of planes 0/1 and 2/3 paired, then the pairs joined into elements.
            let (lo01, lo23) = (_mm_unpacklo_epi8(p0, p1), _mm_unpacklo_epi8(p2, p3));
            let (hi01, hi23) = (_mm_unpackhi_epi8(p0, p1), _mm_unpackhi_epi8(p2, p3));
            let o = dst.as_mut_ptr().add(4 * k) as *mut __m128i;
            _mm_storeu_si128(o, _mm_unpacklo_epi16(lo01, lo23));
            _mm_storeu_si128(o.add(1), _mm_unpackhi_epi16(lo01, lo23));
            _mm_storeu_si128(o.add(2), _mm_unpacklo_epi16(hi01, hi23));
            _mm_storeu_si128(o.add(3), _mm_unpackhi_epi16(hi01, hi23));
        }
    }
    full
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout by definition: byte `b` of element `i` at `b·n + i`, the tail bytes last.
    fn naive(data: &[u8], elem: usize) -> Vec<u8> {
        let n = data.len() / elem;
        let mut out: Vec<u8> = (0..elem)
            .flat_map(|b| (0..n).map(move |i| data[i * elem + b]))
            .collect();
        out.extend_from_slice(&data[n * elem..]);
        out
    }

    #[test]
    fn shuffle_is_the_byte_planes_and_unshuffle_inverts_it() {
        for elem in [1, 2, 3, 4, 8] {
            // Lengths around the block and run sizes, with and without a partial element.
            for len in [
                0,
                1,
                7,
                64 * elem + 3,
                4096 * elem,
                4096 * elem * 2 + 130 * elem + 1,
            ] {
                let data: Vec<u8> = (0..len).map(|i| (i * 131 % 251) as u8).collect();
                let mut s = vec![0u8; len];
                shuffle(&data, elem, &mut s);
                assert_eq!(s, naive(&data, elem), "elem {elem}, len {len}");
                let mut back = vec![0u8; len];
                unshuffle(&s, elem, &mut back);
                assert_eq!(back, data, "elem {elem}, len {len}");
            }
        }
    }
}
