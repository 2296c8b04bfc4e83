//! What the background graph of a ROIBIN chunk sees: the chunk with its window pixels
//! replaced by their rim's mean (bins that straddle a window stay background-like) and its
//! exact and masked pixels replaced by the mean of their usable 3×3 neighbours (a hot pixel,
//! a gap or a sentinel cannot smear into the bins of trusted pixels).

use super::exact::{self, Rules};
use super::parts::Element;
use super::{window_pixels, FrameInfo, Layout};
use crate::detector::elems;
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
    pixels
        .par_iter()
        .with_min_len(1024)
        .map(|&k| {
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
        })
        .collect()
}

/// The background graph's input: `data` with window pixels, flagged pixels (`flagged`,
/// whose copy of `data`, if it has one, becomes the input) and masked pixels (`masked`,
/// sorted frame indices) replaced.
pub fn prepare(
    data: &[u8],
    dtype: DType,
    l: Layout,
    infos: &[FrameInfo],
    flagged: &mut Flagged,
    masked: &[usize],
    fill: f64,
) -> Vec<u8> {
    let exact = &flagged.pixels[..];
    let es = dtype.size();
    let fp = l.frame_pixels();
    let (fh, fw) = (l.panels * l.rows, l.cols);
    // Copied in parallel: the copy of a 16 MB frame was the largest serial step of the encode.
    let mut bg = flagged.copy.take().unwrap_or_default();
    if bg.len() != data.len() {
        // Extended in place from an indexed iterator: no zero fill first (16 MB of memset).
        bg.clear();
        bg.par_extend(data.par_iter().copied().with_min_len(COPY_BLOCK));
    }
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
        // Each mean reads the original frame only: all of them in parallel, then stored.
        let frame = &data[f * fp * es..(f + 1) * fp * es];
        let means = crate::with_element_type!(dtype, T => {
            neighbour_means::<T>(frame, (fh, fw), excluded, &replace, fill)
        });
        for &k in &replace {
            excluded[k] = false;
        }
        for (&k, v) in replace.iter().zip(means) {
            let i = f * fp + k;
            elems::put(v, dtype, &mut bg[i * es..(i + 1) * es]);
        }
    }
    for (f, info) in infos.iter().enumerate() {
        let base = f * fp;
        for &w in &info.windows {
            let (mut s, mut n) = (0f64, 0usize);
            let r = w.r as i64;
            for (k, px) in window_pixels(w, l).enumerate() {
                let (dy, dx) = ((k as i64) / (2 * r + 1) - r, (k as i64) % (2 * r + 1) - r);
                if let Some((y, x)) = px {
                    if dy.abs() == r || dx.abs() == r {
                        let v = elems::get(&bg, dtype, base + y * l.cols + x);
                        if v.is_finite() {
                            s += v;
                            n += 1;
                        }
                    }
                }
            }
            let rim = if n > 0 { s / n as f64 } else { fill };
            for (y, x) in window_pixels(w, l).flatten() {
                let i = base + y * l.cols + x;
                elems::put(rim, dtype, &mut bg[i * es..(i + 1) * es]);
            }
        }
    }
    bg
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
    use super::*;

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
