//! The pixels a chunk's windows cover, each once, as runs along the rows of each frame in
//! raster order: what stream v3 stores of the windows, in the order it stores them. Windows
//! overlap (1.6–2× their union on real frames with `roibin(auto)`), and a pixel stored once
//! costs less to compress, to paste and to reduce.

use super::{window_rect, FrameInfo, Layout};

/// `len` pixels from (`y`, `x`) along a row of the stacked frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub y: u32,
    pub x: u32,
    pub len: u32,
}

/// The runs of every frame of a chunk.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Coverage {
    /// Frame after frame, each frame's in raster order, none touching another.
    pub runs: Vec<Run>,
    /// Where each frame's runs start in `runs` (`frames + 1` entries).
    pub run_start: Vec<usize>,
    /// Where each frame's pixels start in the stored order (`frames + 1` entries).
    pub pixel_start: Vec<usize>,
}

impl Coverage {
    /// Pixels covered in the whole chunk.
    pub fn pixels(&self) -> usize {
        self.pixel_start.last().copied().unwrap_or(0)
    }

    /// Frame `f`'s runs.
    pub fn frame(&self, f: usize) -> &[Run] {
        &self.runs[self.run_start[f]..self.run_start[f + 1]]
    }

    /// The pixels of `sorted` (chunk indices, ascending, in frames of `frame_pixels` pixels
    /// and rows of `cols`) that no run covers.
    pub fn outside(&self, sorted: &[usize], frame_pixels: usize, cols: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(sorted.len());
        let (mut frame, mut cursor) = (usize::MAX, RunCursor::new(&[], cols));
        for &i in sorted {
            let (f, local) = (i / frame_pixels, i % frame_pixels);
            if f != frame {
                frame = f;
                let runs = if f + 1 < self.run_start.len() {
                    self.frame(f)
                } else {
                    &[]
                };
                cursor = RunCursor::new(runs, cols);
            }
            if !cursor.covers(local) {
                out.push(i);
            }
        }
        out
    }
}

/// Whether a frame's runs cover pixels asked about in ascending order (frame-relative
/// indices, rows of `cols`): a walk along the runs, no bitmap of the frame.
pub struct RunCursor<'a> {
    runs: &'a [Run],
    cols: usize,
}

impl<'a> RunCursor<'a> {
    pub fn new(runs: &'a [Run], cols: usize) -> RunCursor<'a> {
        RunCursor { runs, cols }
    }

    /// Whether a run covers pixel `local` (not below any pixel asked about before).
    pub fn covers(&mut self, local: usize) -> bool {
        let start = |r: &Run| r.y as usize * self.cols + r.x as usize;
        while self
            .runs
            .first()
            .is_some_and(|r| start(r) + r.len as usize <= local)
        {
            self.runs = &self.runs[1..];
        }
        self.runs.first().is_some_and(|r| start(r) <= local)
    }
}

/// The coverage of the windows of `infos` (parts outside a window's panel left out). Its cost
/// is bounded by the windows' rows plus a bitmap of one frame: callers check the windows'
/// sizes first (see `max_window_pixels`).
pub fn of(l: Layout, infos: &[FrameInfo]) -> Coverage {
    let words = l.cols.div_ceil(64);
    let height = l.panels * l.rows;
    let mut bits = vec![
        0u64;
        if infos.iter().all(|i| i.windows.is_empty()) {
            0
        } else {
            height * words
        }
    ];
    // At most a run per window row, and runs of a row never touch: reserved once (grown by
    // doubling, the ~56 000 runs of a synthetic roibin(auto) frame were copied over and over
    // into fresh pages), never more than a chunk can hold (windows come from the stream).
    let rows = infos.len() * l.panels * l.rows;
    let most: usize = infos
        .iter()
        .flat_map(|i| &i.windows)
        .map(|&w| window_rect(w, l).0.len())
        .sum::<usize>()
        .min(rows * l.cols.div_ceil(2));
    let mut c = Coverage {
        runs: Vec::with_capacity(most),
        run_start: vec![0],
        pixel_start: vec![0],
    };
    let mut pixels = 0usize;
    // A row's edges: where its runs start and end, alternately.
    let mut edges = vec![0u32; l.cols + 1 + EDGE_SLACK];
    for info in infos {
        let (mut top, mut bottom) = (usize::MAX, 0);
        for &w in &info.windows {
            let (rows, cols) = window_rect(w, l);
            if cols.is_empty() {
                continue;
            }
            top = top.min(rows.start);
            bottom = bottom.max(rows.end);
            set_range(&mut bits, words, rows, cols);
        }
        for y in top..bottom.max(top) {
            let n = take_edges(&mut bits[y * words..(y + 1) * words], l.cols, &mut edges);
            for pair in edges[..n].chunks_exact(2) {
                let len = pair[1] - pair[0];
                c.runs.push(Run {
                    y: y as u32,
                    x: pair[0],
                    len,
                });
                pixels += len as usize;
            }
        }
        c.run_start.push(c.runs.len());
        c.pixel_start.push(pixels);
    }
    c
}

/// Set bits `cols` (not empty) of rows `rows` of a bitmap of `words` words a row, the words'
/// masks made once a window (a synthetic `roibin(auto)` frame has ~12 000 windows, most
/// within one word of a row).
fn set_range(
    bits: &mut [u64],
    words: usize,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
) {
    let (first, last) = (cols.start / 64, (cols.end - 1) / 64);
    let low = u64::MAX << (cols.start % 64);
    let high = u64::MAX >> (63 - (cols.end - 1) % 64);
    if rows.is_empty() {
        return;
    }
    if first == last {
        let column = bits[rows.start * words + first..].iter_mut().step_by(words);
        for word in column.take(rows.len()) {
            *word |= low & high;
        }
        return;
    }
    for y in rows {
        let row = &mut bits[y * words + first..=y * words + last];
        row[0] |= low;
        for word in &mut row[1..last - first] {
            *word = u64::MAX;
        }
        row[last - first] |= high;
    }
}

/// Slack [`take_edges`] needs past a row's `cols + 1` edges: it writes four at a time.
const EDGE_SLACK: usize = 4;

/// The edges of the runs of set bits of a row of `cols` bits (bits past `cols` clear) into
/// `edges` (at least `cols + 1 + EDGE_SLACK` long): a run's first bit and the bit after its
/// last, run after run; returns how many (even). The row is cleared as it is read. Each bit
/// of `word ^ (word << 1 | carry)` is an edge; a word's first four are written whether it has
/// them or not and the count moved by its popcount (as simdjson flattens bits): a loop per
/// edge, asking whether each opens or closes a run, mispredicted its exit on many words (a
/// synthetic `roibin(auto)` frame has 1.8 edges a word on average, 0 to 8); its coverage
/// went 0.57 → 0.55 ms.
#[inline(always)]
fn take_edges(row: &mut [u64], cols: usize, edges: &mut [u32]) -> usize {
    let (mut carry, mut n) = (0u64, 0usize);
    for (i, word) in row.iter_mut().enumerate() {
        let w = std::mem::take(word);
        let mut e = w ^ (w << 1 | carry);
        carry = w >> 63;
        let (base, count) = ((i * 64) as u32, e.count_ones() as usize);
        // Past the word's edges these are 64 + base: written beyond `n`, overwritten later.
        for slot in &mut edges[n..n + EDGE_SLACK] {
            *slot = base + e.trailing_zeros();
            e &= e.wrapping_sub(1);
        }
        while e != 0 {
            edges[n + EDGE_SLACK] = base + e.trailing_zeros();
            e &= e - 1;
            n += 1;
        }
        n += count.min(EDGE_SLACK);
    }
    // A run still open at the row's end (its last bit the last word's) ends there.
    if n % 2 == 1 {
        edges[n] = cols as u32;
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::super::{window_pixels, Window};
    use super::*;

    /// Runs equal the set of the windows' in-panel pixels, in raster order, each once; rows
    /// of 128 columns end on a word's last bit.
    #[test]
    fn runs_cover_the_union_of_the_windows_once() {
        for cols in [130, 128] {
            runs_cover_the_union_of_the_windows_once_in(cols);
        }
    }

    fn runs_cover_the_union_of_the_windows_once_in(cols: usize) {
        let l = Layout {
            frames: 4,
            panels: 2,
            rows: 20,
            cols,
        };
        let w = |y, x, r| Window { y, x, r };
        let frame = |windows| FrameInfo {
            windows,
            ..Default::default()
        };
        let infos = [
            frame(vec![
                w(5, 3, 4),
                w(7, 6, 2),
                w(18, 63, 3),
                w(21, 129, 5),
                w(30, 125, 3),
                w(0, 60, 0),
            ]),
            frame(vec![]),
            frame(vec![w(39, 100, 40), w(10, 64, 1)]),
            // Single pixels two apart: a word of 64 edges, then words of 2 to 7.
            frame(
                (0..32)
                    .map(|k| w(3, 2 * k, 0))
                    .chain((0..12).map(|k| w(4 + k % 3, 64 + 5 * k, (k % 2) as u8)))
                    .collect(),
            ),
        ];
        let c = of(l, &infos);
        for (f, info) in infos.iter().enumerate() {
            let mut want: Vec<(usize, usize)> = info
                .windows
                .iter()
                .flat_map(|&w| window_pixels(w, l).flatten())
                .collect();
            want.sort_unstable();
            want.dedup();
            let got: Vec<(usize, usize)> = c
                .frame(f)
                .iter()
                .flat_map(|r| (0..r.len as usize).map(|k| (r.y as usize, r.x as usize + k)))
                .collect();
            assert_eq!(got, want, "frame {f}");
            assert_eq!(c.pixel_start[f + 1] - c.pixel_start[f], want.len());
            // Runs of a row never touch: each is as long as it can be.
            for p in c.frame(f).windows(2) {
                assert!(p[0].y < p[1].y || p[0].x + p[0].len < p[1].x, "{p:?}");
            }
        }
        assert_eq!(
            of(l, &[FrameInfo::default(), FrameInfo::default()]).pixels(),
            0
        );
        assert_eq!(c.pixels(), c.pixel_start[4]);
    }
}
