//! What the background graph of a ROIBIN chunk sees: the chunk with its window pixels
//! replaced by their rim's mean (bins that straddle a window stay background-like) and its
//! exact and masked pixels replaced by the mean of their usable 3×3 neighbours (a hot pixel,
//! a gap or a sentinel cannot smear into the bins of trusted pixels).

use super::exact::{self, Rules};
use super::parts::Element;
use super::{window_pixels, FrameInfo, Layout};
#[cfg(test)]
use crate::detector::bin::Bin;
use crate::detector::elems;
use crate::prefetch::prefetch;
use rayon::prelude::*;
use roibin_registry::DType;

/// A chunk's flagged pixels and, when asked for one, the buffer of the background's input,
/// holding a copy of the chunk made in the same pass.
pub struct Flagged {
    /// Sorted chunk indices, windows included.
    pub pixels: Vec<usize>,
    /// The chunk's bytes, for [`prepare`] (one-frame chunks only: several frames are scanned
    /// in parallel, and [`prepare`] copies them itself into this buffer, then empty).
    pub copy: Option<Vec<u8>>,
    /// A flag per pixel for [`prepare`], all false (a buffer kept between chunks; grown there).
    pub excluded: Vec<bool>,
}

/// Sorted chunk indices of the flagged pixels (see [`exact::select`]), windows included,
/// frames in parallel: none of them may take part in a bin or a window's rim mean. With a
/// `copy` buffer (whatever it holds; its allocation is what is wanted), a one-frame chunk is
/// also copied into it in the same pass. `excluded` (all false) goes on to [`prepare`].
pub fn flagged_pixels(
    data: &[u8],
    dtype: DType,
    l: Layout,
    masked: &[usize],
    rules: Rules,
    from_noise: bool,
    (copy, excluded): (Option<Vec<u8>>, Vec<bool>),
) -> Flagged {
    let fp = l.frame_pixels();
    let fb = fp * dtype.size();
    let frame_rules = |frame: &[u8]| {
        // No f64 copy of the frame (36 MB for an EIGER 4M u32 frame): the noise takes a
        // sample, the selection reads the elements in place.
        if from_noise {
            let sample: Vec<f64> = (0..fp)
                .step_by(7)
                .map(|i| elems::get(frame, dtype, i))
                .collect();
            noise_rules(&sample, rules, !dtype.is_float())
        } else {
            rules
        }
    };
    let copy = match copy {
        Some(mut bytes) if data.len() == fb => {
            bytes.clear();
            let pixels = exact::select(data, dtype, masked, frame_rules(data), Some(&mut bytes));
            return Flagged {
                pixels,
                copy: Some(bytes),
                excluded,
            };
        }
        // Emptied: [`prepare`] copies the frames into it (a kept buffer holds an earlier
        // chunk, which must not pass for this one).
        copy => copy.map(|mut bytes| {
            bytes.clear();
            bytes
        }),
    };
    let pixels = data
        .par_chunks(fb)
        .enumerate()
        .map(|(f, frame)| {
            exact::select(frame, dtype, masked, frame_rules(frame), None)
                .into_iter()
                .map(|k| f * fp + k)
                .collect::<Vec<_>>()
        })
        .flatten()
        .collect();
    Flagged {
        pixels,
        copy,
        excluded,
    }
}

/// The mean of the finite 3×3 neighbours (the pixel itself included) that are not
/// `excluded` of each of `pixels` in `frame` (`fh × fw` elements of type `E`), or `fill` where
/// there are none; in parallel. Typed reads: no element-type match per neighbour.
fn neighbour_means<E: Element>(
    frame: &[u8],
    (fh, fw): (usize, usize),
    excluded: &[bool],
    pixels: &[usize],
    fill: f64,
) -> Vec<f64> {
    let mean = |k: usize| {
        let (y, x) = (k / fw, k % fw);
        let (mut s, mut n) = (0f64, 0usize);
        for yy in y.saturating_sub(1)..(y + 2).min(fh) {
            for xx in x.saturating_sub(1)..(x + 2).min(fw) {
                let j = yy * fw + xx;
                let v = E::read_f64(&frame[j * E::SIZE..(j + 1) * E::SIZE]);
                if !excluded[j] && v.is_finite() {
                    s += v;
                    n += 1;
                }
            }
        }
        if n > 0 {
            s / n as f64
        } else {
            fill
        }
    };
    let mut means = vec![0f64; pixels.len()];
    means
        .par_chunks_mut(1024)
        .zip(pixels.par_chunks(1024))
        .for_each(|(out, pixels)| {
            for (i, (o, &k)) in out.iter_mut().zip(pixels).enumerate() {
                // Most of these pixels are scattered bad ones, their three rows a cache miss
                // each: fetched sixteen pixels ahead (the means' time a third less on JUNGFRAU).
                if let Some(&ahead) = pixels.get(i + 16) {
                    for row in [ahead.saturating_sub(fw), ahead, ahead + fw] {
                        prefetch(frame, row * E::SIZE);
                        prefetch(excluded, row);
                    }
                }
                *o = mean(k);
            }
        });
    means
}

/// The background graph's input: `data` with the replacements written in, into `copy` (a
/// copy of `data` already, or a buffer to reuse).
pub fn prepare(data: &[u8], replaced: &Replacements, copy: Option<Vec<u8>>) -> Vec<u8> {
    let es = replaced.dtype.size();
    // Copied in parallel: the copy of a 16 MB frame was the largest serial step of the encode.
    let mut bg = copy.unwrap_or_default();
    if bg.len() != data.len() {
        // Extended in place from an indexed iterator: no zero fill first (16 MB of memset).
        bg.clear();
        bg.par_extend(data.par_iter().copied().with_min_len(COPY_BLOCK));
    }
    for &(i, v) in &replaced.values {
        elems::put(v, replaced.dtype, &mut bg[i * es..(i + 1) * es]);
    }
    bg
}

/// The pixels the background graph must not see as they are, ascending (chunk indices), with
/// the values it sees instead: exact and masked pixels get the mean of their usable 3×3
/// neighbours, window pixels their rim's mean (read after those means, and after earlier
/// windows' rims, as if written in that order into a copy of the chunk).
pub struct Replacements {
    pub values: Vec<(usize, f64)>,
    /// Where each row of the chunk (`frames × panels × rows` of them) starts in `values`.
    row_start: Vec<usize>,
    dtype: DType,
}

impl crate::detector::bin::RowPatch for Replacements {
    fn changes(&self, row: usize) -> &[(usize, f64)] {
        &self.values[self.row_start[row]..self.row_start[row + 1]]
    }
}

/// See [`Replacements`].
pub fn replacements(
    data: &[u8],
    dtype: DType,
    l: Layout,
    infos: &[FrameInfo],
    flagged: &mut Flagged,
    masked: &[usize],
    fill: f64,
) -> Replacements {
    let exact = &flagged.pixels[..];
    let es = dtype.size();
    let fp = l.frame_pixels();
    let (fh, fw) = (l.panels * l.rows, l.cols);
    let mut means: Vec<(usize, f64)> = Vec::new();
    for f in 0..l.frames {
        // Pixels that must not take part in a neighbour mean: exact and masked ones (both
        // lists sorted: merged, not sorted again).
        let lo = exact.partition_point(|&i| i < f * fp);
        let hi = exact.partition_point(|&i| i < (f + 1) * fp);
        let replace = merge_sorted(exact[lo..hi].iter().map(|&i| i - f * fp), masked);
        // A flag per pixel, not a search per neighbour: an EIGER 4M frame has 251 302 gap
        // pixels, each looking at 8 neighbours, in every encoding roibin(auto) tries. The
        // buffer is kept all false between frames (a fresh one is a page fault every 4 KB).
        let excluded = &mut flagged.excluded;
        if !replace.is_empty() && excluded.len() < fp {
            excluded.resize(fp, false);
        }
        for &k in &replace {
            excluded[k] = true;
        }
        // Each mean reads the original frame only: all of them in parallel.
        let frame = &data[f * fp * es..(f + 1) * fp * es];
        let m = crate::with_element_type!(dtype, T => {
            neighbour_means::<T>(frame, (fh, fw), excluded, &replace, fill)
        });
        for &k in &replace {
            excluded[k] = false;
        }
        means.extend(replace.iter().zip(m).map(|(&k, v)| (f * fp + k, v)));
    }
    // What a copy of the chunk holds at `i` once the means (and the windows so far) are in:
    // a replaced value as its element type stores it.
    let stored = |v: f64| {
        let mut b = [0u8; 8];
        elems::put(v, dtype, &mut b[..es]);
        elems::get(&b[..es], dtype, 0)
    };
    // Keyed by pixel index with rustc's multiplicative hash: std's SipHash (a defence against
    // crafted keys, which pixel indices of windows we placed are not) was a tenth of a frame's
    // encode where pf8 places many windows.
    let mut windows: rustc_hash::FxHashMap<usize, f64> = rustc_hash::FxHashMap::default();
    for (f, info) in infos.iter().enumerate() {
        let base = f * fp;
        for &w in &info.windows {
            let (mut s, mut n) = (0f64, 0usize);
            let r = w.r as i64;
            for (k, px) in window_pixels(w, l).enumerate() {
                let (dy, dx) = ((k as i64) / (2 * r + 1) - r, (k as i64) % (2 * r + 1) - r);
                if let Some((y, x)) = px {
                    if dy.abs() == r || dx.abs() == r {
                        let i = base + y * l.cols + x;
                        let v = match windows.get(&i) {
                            Some(&v) => stored(v),
                            None => match means.binary_search_by_key(&i, |e| e.0) {
                                Ok(at) => stored(means[at].1),
                                Err(_) => elems::get(data, dtype, i),
                            },
                        };
                        if v.is_finite() {
                            s += v;
                            n += 1;
                        }
                    }
                }
            }
            let rim = if n > 0 { s / n as f64 } else { fill };
            for (y, x) in window_pixels(w, l).flatten() {
                windows.insert(base + y * l.cols + x, rim);
            }
        }
    }
    // The window pixels (a few thousand) sorted, then merged into the means (tens of
    // thousands, sorted already); a window's value wins.
    let mut windows: Vec<(usize, f64)> = windows.into_iter().collect();
    windows.sort_unstable_by_key(|e| e.0);
    let mut values = Vec::with_capacity(means.len() + windows.len());
    let mut means = means.into_iter().peekable();
    for w in windows {
        while let Some(m) = means.next_if(|m| m.0 <= w.0) {
            if m.0 < w.0 {
                values.push(m);
            }
        }
        values.push(w);
    }
    values.extend(means);
    let rows = l.frames * l.panels * l.rows;
    let mut row_start = Vec::with_capacity(rows + 1);
    let mut at = 0;
    for row in 0..=rows {
        while at < values.len() && values[at].0 < row * l.cols {
            at += 1;
        }
        row_start.push(at);
    }
    Replacements {
        values,
        row_start,
        dtype,
    }
}

/// Bytes per task of the background's copy.
const COPY_BLOCK: usize = 1 << 20;

/// The union of two ascending index lists, ascending, each index once.
fn merge_sorted(a: impl Iterator<Item = usize>, b: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(b.len());
    let (mut a, mut b) = (a.peekable(), b.iter().copied().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(&x), Some(&y)) if x <= y => a.next(),
            (_, Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, None) => return out,
        };
        if let Some(k) = next.filter(|&k| out.last() != Some(&k)) {
            out.push(k);
        }
    }
}

/// `roibin(auto)`'s outlier thresholds for one frame, in units of its background noise: the
/// median and the MAD (×1.4826, at least one count for integers) of a sample of its finite
/// pixels; pixels more than [`AUTO_BELOW_SIGMA`] below or [`AUTO_ABOVE_SIGMA`] above the
/// median (dead, cold, hot pixels) are kept exactly; `sample` is every 7th element of the frame and out of the bins. Thresholds the user
/// gave take precedence.
pub fn noise_rules(sample: &[f64], rules: Rules, integer: bool) -> Rules {
    let mut sample: Vec<f64> = sample.iter().copied().filter(|x| x.is_finite()).collect();
    if sample.len() < 16 {
        return rules;
    }
    let mid = sample.len() / 2;
    let median = *sample.select_nth_unstable_by(mid, f64::total_cmp).1;
    let mut dev: Vec<f64> = sample.iter().map(|x| (x - median).abs()).collect();
    let mad = *dev.select_nth_unstable_by(mid, f64::total_cmp).1;
    let floor = if integer {
        1.0
    } else {
        1e-9 * median.abs().max(1.0)
    };
    let sigma = (1.4826 * mad).max(floor);
    Rules {
        above: rules.above.or(Some(median + AUTO_ABOVE_SIGMA * sigma)),
        below: rules.below.or(Some(median - AUTO_BELOW_SIGMA * sigma)),
        ..rules
    }
}

/// See [`noise_rules`].
pub const AUTO_BELOW_SIGMA: f64 = 10.0;
/// See [`noise_rules`].
pub const AUTO_ABOVE_SIGMA: f64 = 20.0;

#[cfg(test)]
mod tests {
    use super::super::Window;
    use super::*;
    use roibin_registry::{ArrayMeta, Codec, DataKind};

    /// [`prepare`] writes what writing the means, then the windows' rims, into a copy in turn
    /// writes, and `bin` of the chunk with the replacements patched into its rows gives the
    /// bytes of `bin` of that copy: float32 and uint16 (whose stored means are rounded, and
    /// which later rims read rounded), NaNs, masked and flagged pixels, windows overlapping
    /// each other, masked pixels and the panels' edges, two frames of two panels.
    #[test]
    fn patched_bins_equal_bins_of_the_prepared_copy() {
        let l = Layout {
            frames: 2,
            panels: 2,
            rows: 21,
            cols: 35,
        };
        let fp = l.frame_pixels();
        let masked: Vec<usize> = (0..fp)
            .filter(|k| k % 7 == 3 || k % 5 == 1 || k / l.cols == 20)
            .collect();
        let w = |y, x, r| Window { y, x, r };
        // Edge cases, then many windows whose rims cross masked pixels and earlier windows:
        // their means, stored in the element type, are what later rims read.
        let many = |seed: u32| {
            (0..60u32).map(move |k| w((k * 7 + seed) % 42, (k * 13 + seed) % 35, (k % 4) as u8 + 1))
        };
        let infos = [
            FrameInfo {
                windows: [
                    w(5, 5, 3),
                    w(7, 8, 2),
                    w(20, 34, 2),
                    w(21, 0, 4),
                    w(30, 17, 1),
                ]
                .into_iter()
                .chain(many(1))
                .collect(),
                ..Default::default()
            },
            FrameInfo {
                windows: [w(40, 3, 2), w(10, 30, 5)]
                    .into_iter()
                    .chain(many(4))
                    .collect(),
                ..Default::default()
            },
        ];
        for dtype in [DType::F32, DType::U16] {
            let es = dtype.size();
            let mut data = vec![0u8; l.frames * fp * es];
            for i in 0..l.frames * fp {
                let v = ((i * 7919) % 1000) as f64 * 3.7 + 10.0;
                let v = if dtype == DType::F32 && i % 101 == 50 {
                    f64::NAN
                } else {
                    v
                };
                elems::put(v, dtype, &mut data[i * es..(i + 1) * es]);
            }
            let flagged = || Flagged {
                pixels: (0..l.frames * fp).filter(|i| i % 53 == 9).collect(),
                copy: None,
                excluded: vec![],
            };
            let bin: Bin = Bin::from_stage(
                &"bin(2,2)"
                    .parse::<roibin_registry::spec::Graph>()
                    .unwrap()
                    .stages[0],
            )
            .unwrap();
            let kind = DataKind::Array(ArrayMeta::new(
                dtype,
                vec![l.frames * l.panels, l.rows, l.cols],
            ));
            let replaced = replacements(&data, dtype, l, &infos, &mut flagged(), &masked, 1.0);
            let bg = prepare(&data, &replaced, None);
            assert_eq!(
                bg,
                written_in_order(&data, dtype, l, &infos, &flagged().pixels, &masked, 1.0)
            );
            let mut want = vec![];
            bin.encode(&bg, &kind, &mut want).unwrap();
            let mut got = vec![];
            bin.encode_patched(&data, &kind, &mut got, Some(&replaced))
                .unwrap();
            assert_eq!(got, want, "{dtype}");
            assert_ne!(bg, data, "the replacements change the chunk");
        }
    }

    /// The background's input as it was first written: neighbour means into a copy of the
    /// chunk, then each window's rim mean read from that copy and written over the window.
    fn written_in_order(
        data: &[u8],
        dtype: DType,
        l: Layout,
        infos: &[FrameInfo],
        exact: &[usize],
        masked: &[usize],
        fill: f64,
    ) -> Vec<u8> {
        let (es, fp, fw) = (dtype.size(), l.frame_pixels(), l.cols);
        let fh = l.panels * l.rows;
        let mut bg = data.to_vec();
        for f in 0..l.frames {
            let mut bad: Vec<usize> = exact
                .iter()
                .filter(|&&i| i / fp == f)
                .map(|&i| i - f * fp)
                .chain(masked.iter().copied())
                .collect();
            bad.sort_unstable();
            bad.dedup();
            let at = |j: usize| elems::get(data, dtype, f * fp + j);
            for &k in &bad {
                let (y, x) = (k / fw, k % fw);
                let (mut s, mut n) = (0f64, 0usize);
                for yy in y.saturating_sub(1)..(y + 2).min(fh) {
                    for xx in x.saturating_sub(1)..(x + 2).min(fw) {
                        let j = yy * fw + xx;
                        if bad.binary_search(&j).is_err() && at(j).is_finite() {
                            s += at(j);
                            n += 1;
                        }
                    }
                }
                let v = if n > 0 { s / n as f64 } else { fill };
                let i = f * fp + k;
                elems::put(v, dtype, &mut bg[i * es..(i + 1) * es]);
            }
        }
        for (f, info) in infos.iter().enumerate() {
            for &w in &info.windows {
                let r = w.r as i64;
                let (mut s, mut n) = (0f64, 0usize);
                for (k, px) in window_pixels(w, l).enumerate() {
                    let (dy, dx) = ((k as i64) / (2 * r + 1) - r, (k as i64) % (2 * r + 1) - r);
                    if let Some((y, x)) = px.filter(|_| dy.abs() == r || dx.abs() == r) {
                        let v = elems::get(&bg, dtype, f * fp + y * l.cols + x);
                        if v.is_finite() {
                            s += v;
                            n += 1;
                        }
                    }
                }
                let rim = if n > 0 { s / n as f64 } else { fill };
                for (y, x) in window_pixels(w, l).flatten() {
                    let i = f * fp + y * l.cols + x;
                    elems::put(rim, dtype, &mut bg[i * es..(i + 1) * es]);
                }
            }
        }
        bg
    }

    #[test]
    fn merged_lists_are_the_sorted_union() {
        let a = [0usize, 3, 3, 7, 9, 12];
        let b = [1usize, 3, 8, 9, 20];
        assert_eq!(
            merge_sorted(a.iter().copied(), &b),
            [0, 1, 3, 7, 8, 9, 12, 20]
        );
        assert_eq!(merge_sorted([].into_iter(), &b), b);
        assert_eq!(merge_sorted(a.iter().copied(), &[]), [0, 3, 7, 9, 12]);
    }
}
