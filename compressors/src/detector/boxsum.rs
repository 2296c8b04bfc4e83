//! Box sums streamed row by row: the count, sum and sum of squares of the pixels a predicate
//! takes in the (2k+1)² box around every pixel of a panel, clipped to the panel.
//!
//! Column sums over the box's rows are kept and moved down one row at a time (the entering row
//! added, the leaving one taken away), then summed across the box's columns by a prefix sum of
//! the row: a few adds per pixel, reading the frame in order, with memory for three rows
//! instead of three frame-sized summed-area tables (which cost more in page faults and cache
//! misses than in arithmetic). Rows split into bands that threads run independently, each
//! starting its column sums afresh.

use crate::spare::Spare;
use rayon::prelude::*;
use std::ops::Range;

/// The pixels box sums run over: each pixel's value where taken (0 elsewhere) and whether it
/// is taken, worked out once so the row updates are plain vector adds.
pub struct Taken {
    value: Vec<f32>,
    count: Vec<u8>,
}

/// [`Taken`]'s buffers kept between frames by the codec that owns them (see [`Spare`]): a
/// frame's worth of fresh pages for every run of a finder had been a quarter of the page
/// faults of a `roibin(auto)` encode.
#[derive(Debug, Default)]
pub struct TakenSpare {
    value: Spare<f32>,
    count: Spare<u8>,
}

impl Taken {
    /// The pixels of `v` where `take` is true and the value is below `below`.
    #[cfg(test)]
    pub fn new(v: &[f32], take: &[bool], below: f32) -> Taken {
        Taken::new_in(v, take, below, &TakenSpare::default())
    }

    /// The pixels of `v` where `take` is true and the value is below `below`, in buffers from
    /// `spare` (hand them back with [`Taken::give_back`]).
    pub fn new_in(v: &[f32], take: &[bool], below: f32, spare: &TakenSpare) -> Taken {
        // One thread: on this pass a parallel split cost more than it gained (measured).
        let taken = |(&a, &ok): (&f32, &bool)| ok & (a < below);
        let (mut value, mut count) = (spare.value.take(), spare.count.take());
        value.clear();
        value.extend(
            v.iter()
                .zip(take)
                .map(|p| if taken(p) { *p.0 } else { 0.0 }),
        );
        count.clear();
        count.extend(v.iter().zip(take).map(|p| taken(p) as u8));
        Taken { value, count }
    }

    /// Keep the buffers in `spare` for the next frame.
    pub fn give_back(self, spare: &TakenSpare) {
        spare.value.give(self.value);
        spare.count.give(self.count);
    }
}

/// Box sums of one row: per column, the count, sum and sum of squares of the taken pixels.
pub struct BoxRow {
    pub m: Vec<u32>,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
}

/// Column sums of the rows a box spans, and the row being produced.
struct Columns {
    m: Vec<u32>,
    x: Vec<f64>,
    y: Vec<f64>,
    row: BoxRow,
    prefix: (Vec<u32>, Vec<f64>, Vec<f64>),
}

impl Columns {
    fn new(cols: usize) -> Columns {
        Columns {
            m: vec![0; cols],
            x: vec![0.0; cols],
            y: vec![0.0; cols],
            row: BoxRow {
                m: vec![0; cols],
                x: vec![0.0; cols],
                y: vec![0.0; cols],
            },
            prefix: (vec![0; cols + 1], vec![0.0; cols + 1], vec![0.0; cols + 1]),
        }
    }

    /// Add row `r` of `t` (`sign` 1) or take it away again (`sign` −1; x + (−a) is exactly
    /// x − a, so a row taken away leaves what it found).
    fn step(&mut self, t: &Taken, r: usize, sign: i32) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above), all `step_avx2` asks for.
            return unsafe { self.step_avx2(t, r, sign) };
        }
        self.step_body(t, r, sign)
    }

    /// [`Columns::step`] four columns to a vector (element-wise adds: the same sums).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn step_avx2(&mut self, t: &Taken, r: usize, sign: i32) {
        self.step_body(t, r, sign)
    }

    #[inline(always)]
    fn step_body(&mut self, t: &Taken, r: usize, sign: i32) {
        let cols = self.m.len();
        let (vals, counts) = (&t.value[r * cols..][..cols], &t.count[r * cols..][..cols]);
        let sums = self.m.iter_mut().zip(&mut self.x).zip(&mut self.y);
        let fsign = sign as f64;
        for (((m, x), y), (&a, &n)) in sums.zip(vals.iter().zip(counts)) {
            let a = a as f64;
            *m = m.wrapping_add_signed(sign * n as i32);
            *x += fsign * a;
            *y += fsign * (a * a);
        }
    }

    /// Sum the column sums across each pixel's box columns into `self.row`.
    fn across(&mut self, k: usize) {
        let cols = self.m.len();
        let (pm, px, py) = &mut self.prefix;
        // Running totals kept in registers: each prefix entry is a store, never a reload.
        let (mut am, mut ax, mut ay) = (0u32, 0f64, 0f64);
        let prefix = pm[1..].iter_mut().zip(&mut px[1..]).zip(&mut py[1..]);
        for (((pm, px), py), ((&m, &x), &y)) in prefix.zip(self.m.iter().zip(&self.x).zip(&self.y))
        {
            am += m;
            ax += x;
            ay += y;
            (*pm, *px, *py) = (am, ax, ay);
        }
        let row = &mut self.row;
        let w = 2 * k + 1;
        // Boxes inside the row: box c spans prefix[c − k .. c + k + 1].
        if cols > 2 * k {
            let inner = cols - 2 * k;
            let lo = (&pm[..inner], &px[..inner], &py[..inner]);
            let hi = (&pm[w..w + inner], &px[w..w + inner], &py[w..w + inner]);
            sub(&mut row.m[k..k + inner], hi.0, lo.0);
            subf(&mut row.x[k..k + inner], hi.1, lo.1);
            subf(&mut row.y[k..k + inner], hi.2, lo.2);
        }
        // Boxes clipped by the row's ends.
        for c in (0..k.min(cols)).chain(cols.saturating_sub(k).max(k.min(cols))..cols) {
            let (c0, c1) = (c.saturating_sub(k), (c + k + 1).min(cols));
            row.m[c] = pm[c1] - pm[c0];
            row.x[c] = px[c1] - px[c0];
            row.y[c] = py[c1] - py[c0];
        }
    }
}

fn sub(out: &mut [u32], hi: &[u32], lo: &[u32]) {
    for ((o, &h), &l) in out.iter_mut().zip(hi).zip(lo) {
        *o = h - l;
    }
}

fn subf(out: &mut [f64], hi: &[f64], lo: &[f64]) {
    for ((o, &h), &l) in out.iter_mut().zip(hi).zip(lo) {
        *o = h - l;
    }
}

/// Call `each(r, sums)` for every row `r` of `band` with the box sums (half-size `k`) of the
/// taken pixels `t` of a `rows × cols` panel.
pub fn for_rows(
    t: &Taken,
    (rows, cols): (usize, usize),
    k: usize,
    band: Range<usize>,
    mut each: impl FnMut(usize, &BoxRow),
) {
    if band.is_empty() {
        return;
    }
    let mut s = Columns::new(cols);
    for r in band.start.saturating_sub(k)..(band.start + k + 1).min(rows) {
        s.step(t, r, 1);
    }
    for r in band.clone() {
        if r > band.start {
            if r + k < rows {
                s.step(t, r + k, 1);
            }
            if r > k {
                s.step(t, r - k - 1, -1);
            }
        }
        s.across(k);
        each(r, &s.row);
    }
}

/// Fill `out` (one value per pixel of the panel) row by row from the box sums: `each(r, sums,
/// out_row)`, bands of rows on the current thread pool.
pub fn map_rows<T: Send>(
    t: &Taken,
    (rows, cols): (usize, usize),
    k: usize,
    out: &mut [T],
    each: impl Fn(usize, &BoxRow, &mut [T]) + Sync,
) {
    in_bands(out, (rows, cols), |band, chunk| {
        let r0 = band.start;
        for_rows(t, (rows, cols), k, band, |r, s| {
            each(r, s, &mut chunk[(r - r0) * cols..(r - r0 + 1) * cols])
        });
    });
}

/// Run `f(rows, out_rows)` on bands of the panel's rows on the current thread pool: bands of
/// at least 64 rows, as each band re-reads 2k rows to start its column sums.
fn in_bands<T: Send>(
    out: &mut [T],
    (rows, cols): (usize, usize),
    f: impl Fn(Range<usize>, &mut [T]) + Sync,
) {
    if cols == 0 {
        return;
    }
    let band = (roibin_registry::threads::MIN_TASK_BYTES / (8 * cols)).max(64);
    out.par_chunks_mut(band * cols)
        .enumerate()
        .for_each(|(b, chunk)| f(b * band..(b * band + band).min(rows), chunk));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_box_sums_match_a_direct_sum() {
        let (rows, cols) = (41, 23);
        let v: Vec<f32> = (0..rows * cols)
            .map(|i| (i * 7 % 13) as f32 - 2.5)
            .collect();
        let take = |i: usize| i % 5 != 0;
        for k in [0, 1, 3, 10, 11, 12, 50] {
            for band in [0..rows, 7..30, 40..41, 3..3] {
                let mut seen = 0;
                rows_check(&v, rows, cols, k, band.clone(), &take, &mut seen);
                assert_eq!(seen, band.len());
            }
        }
    }

    fn rows_check(
        v: &[f32],
        nr: usize,
        nc: usize,
        k: usize,
        band: Range<usize>,
        take: &impl Fn(usize) -> bool,
        seen: &mut usize,
    ) {
        let taken: Vec<bool> = (0..v.len()).map(take).collect();
        for_rows(
            &Taken::new(v, &taken, f32::MAX),
            (nr, nc),
            k,
            band,
            |r, s| {
                *seen += 1;
                for c in 0..nc {
                    let (mut m, mut x, mut y) = (0u32, 0f64, 0f64);
                    for rr in r.saturating_sub(k)..(r + k + 1).min(nr) {
                        for cc in c.saturating_sub(k)..(c + k + 1).min(nc) {
                            let i = rr * nc + cc;
                            if take(i) {
                                m += 1;
                                x += v[i] as f64;
                                y += (v[i] as f64).powi(2);
                            }
                        }
                    }
                    assert_eq!(s.m[c], m, "r{r} c{c} k{k}");
                    assert!((s.x[c] - x).abs() < 1e-9 && (s.y[c] - y).abs() < 1e-9);
                }
            },
        );
    }

    /// Buffers handed back by a larger frame, with its values in them, make the same
    /// `Taken` as fresh ones.
    #[test]
    fn kept_buffers_are_rewritten() {
        let spare = TakenSpare::default();
        let big: Vec<f32> = (0..100).map(|i| i as f32 + 0.5).collect();
        Taken::new_in(&big, &[true; 100], f32::MAX, &spare).give_back(&spare);
        let v = [3.0f32, f32::NAN, 7.0, 1e30, -2.0];
        let take = [true, true, false, true, true];
        let kept = Taken::new_in(&v, &take, 1e20, &spare);
        let fresh = Taken::new(&v, &take, 1e20);
        assert_eq!(kept.count, fresh.count);
        assert_eq!(kept.value, fresh.value);
        assert_eq!(kept.value, [3.0, 0.0, 0.0, 0.0, -2.0]);
        assert!(kept.value.capacity() >= 100, "the kept buffer was used");
    }

    #[test]
    fn map_rows_covers_every_row_once() {
        let (nr, nc) = (300, 5);
        let v = vec![1.0f32; nr * nc];
        let mut out = vec![0u32; nr * nc];
        map_rows(
            &Taken::new(&v, &vec![true; v.len()], f32::MAX),
            (nr, nc),
            2,
            &mut out,
            |_, s, o| o.copy_from_slice(&s.m),
        );
        // Interior pixels see a full 5×5 box; corners a 3×3 one.
        assert_eq!(out[150 * nc + 2], 25);
        assert_eq!(out[0], 9);
        assert_eq!(out[nr * nc - 1], 9);
    }
}
