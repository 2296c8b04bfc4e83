//! Predictors over a 3-D view `(n0, n1, n2)` of a piece. Each visits every element once, in an
//! order the encoder and decoder share, predicts it from already reconstructed neighbours and
//! lets a [`Quant`] turn the prediction into the reconstructed value.

use super::interp_row::Line;

/// Turns a prediction for element `i` into its reconstructed value (encoder: quantise the
/// original and record a code; decoder: read the next code).
pub trait Quant {
    fn next(&mut self, i: usize, pred: f64) -> f64;
    /// Tighten the bound to `bound / scale` from now on (coarse interpolation levels predict
    /// everything finer, so they get tighter bounds, as SZ3 does).
    fn set_scale(&mut self, _scale: f64) {}
    /// Whether [`Quant::level_line`] codes lines with a reconstruction of type `R`.
    fn level_lines<R: Recon>(&self) -> bool {
        false
    }
    /// A line of an interpolation level, coded at once into `f`, codes and escapes in
    /// visiting order. Only called where [`Quant::level_lines`] said yes.
    fn level_line<R: Recon>(&mut self, _f: &mut [R], _line: Line) -> bool {
        false
    }
}

/// How a predictor stores reconstructed values: f64, or f32 for float32 pieces. Every value a
/// float32 quantiser returns is a float32, so f32 storage gives the same predictions from half
/// the memory traffic (a 256³ piece's reconstruction is 128 MB in f64).
pub trait Recon: Copy {
    fn get(self) -> f64;
    fn set(v: f64) -> Self;
    /// The values as f32, when that is what they are.
    fn as_f32_mut(values: &mut [Self]) -> Option<&mut [f32]>;
}

impl Recon for f64 {
    #[inline(always)]
    fn get(self) -> f64 {
        self
    }
    #[inline(always)]
    fn set(v: f64) -> f64 {
        v
    }
    fn as_f32_mut(_: &mut [f64]) -> Option<&mut [f32]> {
        None
    }
}

impl Recon for f32 {
    #[inline(always)]
    fn get(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn set(v: f64) -> f32 {
        v as f32
    }
    fn as_f32_mut(values: &mut [f32]) -> Option<&mut [f32]> {
        Some(values)
    }
}

/// Which predictor a piece was coded with (stored as one byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Predictor {
    /// First-order Lorenzo over all three axes.
    Lorenzo = 0,
    /// First-order Lorenzo inside each 2-D slice (panels of a detector stack).
    Lorenzo2d = 1,
    /// SZ3-style multilevel interpolation, linear.
    InterpLinear = 2,
    /// SZ3-style multilevel interpolation, cubic.
    InterpCubic = 3,
    /// One value per 1×16×16 block (its median, a mean robust to Bragg peaks), stored beside
    /// the codes. Sparse detector frames want it: a lone photon costs one code, where Lorenzo
    /// smears it over four neighbours.
    BlockMean = 4,
}

/// Edge of the square blocks [`Predictor::BlockMean`] averages over.
pub const MEAN_BLOCK: usize = 16;

/// Number of blocks [`Predictor::BlockMean`] uses for `dims`.
pub fn mean_blocks(dims: [usize; 3]) -> usize {
    dims[0] * dims[1].div_ceil(MEAN_BLOCK) * dims[2].div_ceil(MEAN_BLOCK)
}

/// Block of element (i0, i1, i2).
#[inline]
fn mean_block(dims: [usize; 3], i0: usize, i1: usize, i2: usize) -> usize {
    (i0 * dims[1].div_ceil(MEAN_BLOCK) + i1 / MEAN_BLOCK) * dims[2].div_ceil(MEAN_BLOCK)
        + i2 / MEAN_BLOCK
}

/// Block values (medians of the finite values) for [`Predictor::BlockMean`].
#[cfg(test)]
pub fn block_means(dims: [usize; 3], vals: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(mean_blocks(dims));
    super::medians::block_medians_into(dims, vals, &mut Default::default(), &mut out);
    out
}

impl Predictor {
    pub const ALL: [Predictor; 5] = [
        Predictor::Lorenzo,
        Predictor::Lorenzo2d,
        Predictor::InterpLinear,
        Predictor::InterpCubic,
        Predictor::BlockMean,
    ];

    pub fn from_u8(b: u8) -> Option<Predictor> {
        Predictor::ALL.into_iter().find(|p| *p as u8 == b)
    }

    pub fn from_name(s: &str) -> Option<Predictor> {
        match s {
            "lorenzo" => Some(Predictor::Lorenzo),
            "lorenzo2d" => Some(Predictor::Lorenzo2d),
            "interp_linear" => Some(Predictor::InterpLinear),
            "interp_cubic" => Some(Predictor::InterpCubic),
            "block_mean" => Some(Predictor::BlockMean),
            _ => None,
        }
    }

    /// Whether this is an interpolation predictor (whose [`Levels`] a piece may store).
    pub fn is_interp(self) -> bool {
        matches!(self, Predictor::InterpLinear | Predictor::InterpCubic)
    }

    /// Visit every element of `recon` (a C-order `dims` array) with this predictor; `means`
    /// are the block means [`Predictor::BlockMean`] needs (ignored by the others).
    pub fn run<R: Recon>(
        self,
        dims: [usize; 3],
        recon: &mut [R],
        q: &mut impl Quant,
        means: &[f64],
    ) {
        self.run_with(dims, recon, q, means, Levels::DEFAULT)
    }

    /// [`Predictor::run`] with the interpolation levels' bounds set by `levels`.
    pub fn run_with<R: Recon>(
        self,
        dims: [usize; 3],
        recon: &mut [R],
        q: &mut impl Quant,
        means: &[f64],
        levels: Levels,
    ) {
        match self {
            Predictor::Lorenzo => lorenzo(dims, recon, q, true),
            Predictor::Lorenzo2d => lorenzo(dims, recon, q, false),
            Predictor::InterpLinear => interp(dims, recon, q, false, levels),
            Predictor::InterpCubic => interp(dims, recon, q, true, levels),
            Predictor::BlockMean => {
                let mut i = 0;
                for i0 in 0..dims[0] {
                    for i1 in 0..dims[1] {
                        for i2 in 0..dims[2] {
                            recon[i] = R::set(q.next(i, means[mean_block(dims, i0, i1, i2)]));
                            i += 1;
                        }
                    }
                }
            }
        }
    }
}

fn lorenzo<R: Recon>(dims: [usize; 3], f: &mut [R], q: &mut impl Quant, across_slices: bool) {
    let [n0, n1, n2] = dims;
    let (s0, s1) = (n1 * n2, n2);
    for i0 in 0..n0 {
        let a0 = across_slices && i0 > 0;
        if !a0 {
            lorenzo_plane(n1, n2, i0 * s0, f, q);
            continue;
        }
        for i1 in 0..n1 {
            let base = i0 * s0 + i1 * s1;
            for i2 in 0..n2 {
                let i = base + i2;
                let (b1, b2) = (i1 > 0, i2 > 0);
                let g = |c: bool, j: usize| if c { f[j].get() } else { 0.0 };
                let mut p = g(b2, i.wrapping_sub(1)) + g(b1, i.wrapping_sub(s1))
                    - g(b1 && b2, i.wrapping_sub(s1 + 1));
                if a0 {
                    p += g(true, i - s0)
                        - g(b2, (i - s0).wrapping_sub(1))
                        - g(b1, (i - s0).wrapping_sub(s1))
                        + g(b1 && b2, (i - s0).wrapping_sub(s1 + 1));
                }
                f[i] = R::set(q.next(i, p));
            }
        }
    }
}

/// [`lorenzo`] on one plane of `n1 × n2` values at `base`, its edges taken out of the inner
/// loop: the row's previous value stays in a register, so each value waits on one addition
/// and the quantiser, not on a store and a load of its neighbour. Same values, same order.
#[inline(always)]
fn lorenzo_plane<R: Recon>(n1: usize, n2: usize, base: usize, f: &mut [R], q: &mut impl Quant) {
    if n2 == 0 {
        return;
    }
    for i1 in 0..n1 {
        let row = base + i1 * n2;
        if i1 == 0 {
            let mut left = q.next(row, 0.0);
            f[row] = R::set(left);
            for (j, v) in f[row + 1..row + n2].iter_mut().enumerate() {
                // `+ 0.0 - 0.0` as the general loop adds its absent neighbours: it turns a
                // -0.0 into +0.0, which the decoded bits of a zero depend on.
                left = q.next(row + 1 + j, left + 0.0 - 0.0);
                *v = R::set(left);
            }
            continue;
        }
        let (done, rest) = f.split_at_mut(row);
        let up = &done[row - n2..];
        let cur = &mut rest[..n2];
        let mut left = q.next(row, 0.0 + up[0].get() - 0.0);
        cur[0] = R::set(left);
        for j in 1..n2 {
            // The same sum, in the same order, as the general loop: (left + up) − up-left.
            left = q.next(row + j, left + up[j].get() - up[j - 1].get());
            cur[j] = R::set(left);
        }
    }
}

/// How much tighter than the piece's bound each interpolation level codes: level `l` (1 the
/// finest) with `bound / min(alpha^(l-1), beta)`. Coarse levels predict everything finer, so
/// a tighter bound there pays; how much tighter depends on the data and the bound (SZ3 tunes
/// the same pair).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Levels {
    pub alpha: f64,
    pub beta: f64,
}

impl Levels {
    /// SZ3's defaults: what pieces that store no levels use.
    pub const DEFAULT: Levels = Levels {
        alpha: 1.5,
        beta: 2.0,
    };
    /// What the encoder tries on a sample of an interpolated piece. On smooth 3-D fields,
    /// 1.25 stores 5-15% less at loose bounds (30-90 on values of ±1000) and 1-2% more at 10.
    pub const CANDIDATES: [Levels; 2] = [
        Levels::DEFAULT,
        Levels {
            alpha: 1.25,
            beta: 2.0,
        },
    ];

    /// Values a stream may hold: scales of at least 1 (never a looser bound than the piece's)
    /// and at most 64.
    pub fn valid(self) -> bool {
        (1.0..=4.0).contains(&self.alpha) && (1.0..=64.0).contains(&self.beta)
    }

    fn scale(self, level: u32) -> f64 {
        self.alpha.powi(level as i32 - 1).min(self.beta)
    }
}

/// Row `row` of the pass along axis `d` of the interpolation level of step `s` (`c01`: the
/// row's first two coordinates) through [`Quant::level_line`]: along the last axis, the
/// elements whose neighbours all exist as one line and the others one by one; along the
/// others, the whole row as one line (its rule is the same for every element) unless it is
/// the axis's last, predicted from one side. The same elements in the same order as
/// [`interp`]'s loop.
fn level_row<R: Recon>(
    q: &mut impl Quant,
    f: &mut [R],
    (row, s): (usize, usize),
    (d, c01): (usize, [usize; 2]),
    (dims, strides): ([usize; 3], [usize; 3]),
    cubic: bool,
) {
    let n2 = dims[2];
    let gap = 2 * s;
    if d == 2 {
        // Element k of the row is at i2 = s·(2k + 1); it is interpolated from both sides
        // while i2 + s < n2, cubically while also 3s <= i2 and i2 + 3s < n2.
        let ks = match cubic {
            true => 1..n2.saturating_sub(1 + 2 * s) / gap,
            false => 0..(n2 - 1) / gap,
        };
        let (done, rest) = if ks.is_empty() {
            (s, s)
        } else {
            (s * (2 * ks.start + 1), s * (2 * ks.end + 1))
        };
        for i2 in (s..done.min(n2)).step_by(gap) {
            interp_one(q, f, (row + i2, i2, n2), (s, 1), cubic);
        }
        if !ks.is_empty() {
            let (first, count) = (row + done, ks.len());
            let line = Line {
                first,
                count,
                reach: s,
                gap,
                cubic,
                next: 0,
            };
            q.level_line(f, line);
        }
        for i2 in (rest..n2).step_by(gap) {
            interp_one(q, f, (row + i2, i2, n2), (s, 1), cubic);
        }
        return;
    }
    let (c, n, sd) = (c01[d], dims[d], strides[d]);
    if c + s < n {
        let line = Line {
            first: row,
            count: n2.div_ceil(gap),
            reach: s * sd,
            gap,
            cubic: cubic && c >= 3 * s && c + 3 * s < n,
            // The pass's next line is `2s` rows on (the last one of a plane asks for rows of
            // the next plane's: harmless).
            next: 2 * s * strides[1],
        };
        q.level_line(f, line);
    } else {
        for i2 in (0..n2).step_by(gap) {
            interp_one(q, f, (row + i2, c, n), (s, sd), cubic);
        }
    }
}

/// Element `i` of the level of step `s`, at coordinate `c` of `n` along the pass's axis, whose
/// neighbours along it are `sd` elements apart: [`interp`]'s rule for one element.
#[inline(always)]
fn interp_one<R: Recon>(
    q: &mut impl Quant,
    f: &mut [R],
    (i, c, n): (usize, usize, usize),
    (s, sd): (usize, usize),
    cubic: bool,
) {
    let left = f[i - s * sd].get();
    let p = if c + s < n {
        let right = f[i + s * sd].get();
        if cubic && c >= 3 * s && c + 3 * s < n {
            (-f[i - 3 * s * sd].get() + 9.0 * left + 9.0 * right - f[i + 3 * s * sd].get()) / 16.0
        } else {
            (left + right) / 2.0
        }
    } else {
        left
    };
    f[i] = R::set(q.next(i, p));
}

fn interp<R: Recon>(
    dims: [usize; 3],
    f: &mut [R],
    q: &mut impl Quant,
    cubic: bool,
    levels: Levels,
) {
    let strides = [dims[1] * dims[2], dims[2], 1];
    // Every level's lines coded at once, where the quantiser can.
    let lines = q.level_lines::<R>();
    f[0] = R::set(q.next(0, 0.0));
    let max = dims.iter().copied().max().unwrap_or(1);
    let mut s = 1usize;
    while s * 2 < max {
        s *= 2;
    }
    if max <= 1 {
        return;
    }
    let mut level = s.trailing_zeros() + 1;
    loop {
        q.set_scale(levels.scale(level));
        level -= 1;
        for d in 0..3 {
            if dims[d] <= s {
                continue;
            }
            // Points with coordinate ≡ s (mod 2s) along d, on the s grid before d, the 2s grid after.
            let step = |e: usize| if e < d { s } else { 2 * s };
            let start = |e: usize| if e == d { s } else { 0 };
            let n = dims[d];
            let sd = strides[d];
            let mut i0 = start(0);
            while i0 < dims[0] {
                let mut i1 = start(1);
                while i1 < dims[1] {
                    if lines {
                        let row = i0 * strides[0] + i1 * strides[1];
                        level_row(q, f, (row, s), (d, [i0, i1]), (dims, strides), cubic);
                        i1 += step(1);
                        continue;
                    }
                    let mut i2 = start(2);
                    while i2 < dims[2] {
                        let c = [i0, i1, i2][d];
                        let i = i0 * strides[0] + i1 * strides[1] + i2;
                        interp_one(q, f, (i, c, n), (s, sd), cubic);
                        i2 += if d == 2 { 2 * s } else { step(2) };
                    }
                    i1 += if d == 1 { 2 * s } else { step(1) };
                }
                i0 += if d == 0 { 2 * s } else { step(0) };
            }
        }
        if s == 1 {
            break;
        }
        s /= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the visiting order and predicts exactly (so recon = original).
    struct Visit<'a> {
        data: &'a [f64],
        seen: Vec<usize>,
        worst: f64,
    }
    impl Quant for Visit<'_> {
        fn next(&mut self, i: usize, pred: f64) -> f64 {
            self.seen.push(i);
            self.worst = self.worst.max((pred - self.data[i]).abs());
            self.data[i]
        }
    }

    #[test]
    fn every_predictor_visits_every_element_once() {
        for dims in [
            [1, 1, 1],
            [1, 1, 17],
            [1, 5, 9],
            [3, 4, 5],
            [7, 1, 33],
            [2, 64, 3],
        ] {
            let n = dims.iter().product::<usize>();
            let data: Vec<f64> = (0..n).map(|i| i as f64).collect();
            for p in Predictor::ALL {
                let mut v = Visit {
                    data: &data,
                    seen: vec![],
                    worst: 0.0,
                };
                let mut recon = vec![0.0; n];
                let means = block_means(dims, &data);
                p.run(dims, &mut recon, &mut v, &means);
                let mut seen = v.seen.clone();
                seen.sort();
                assert_eq!(seen, (0..n).collect::<Vec<_>>(), "{p:?} {dims:?}");
            }
        }
    }

    #[test]
    fn predictors_are_exact_on_linear_ramps() {
        let dims = [4, 8, 16];
        let n = 4 * 8 * 16;
        // f = a + b*i0 + c*i1 + d*i2: Lorenzo is exact inside, interpolation exact between knots.
        let data: Vec<f64> = (0..n)
            .map(|i| {
                1.0 + 2.0 * (i / 128) as f64 + 3.0 * (i / 16 % 8) as f64 + 0.5 * (i % 16) as f64
            })
            .collect();
        let mut v = Visit {
            data: &data,
            seen: vec![],
            worst: 0.0,
        };
        let mut recon = vec![0.0; n];
        Predictor::InterpLinear.run(dims, &mut recon, &mut v, &[]);
        // Only extrapolated edge points miss.
        assert!(v.worst <= 3.0 * 4.0 + 1e-9, "{}", v.worst);
    }
}
