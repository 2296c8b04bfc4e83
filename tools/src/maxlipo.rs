//! A black-box minimiser over small integer lattices: MaxLIPO alternating with a trust region,
//! after dlib's `find_min_global` (Malherbe & Vayatis 2017, "Global optimization of Lipschitz
//! functions"; King 2017, "A global optimization algorithm worth using").
//!
//! Odd steps are global: among points not yet tried (all, or a random sample on large
//! lattices), take the one whose Lipschitz lower bound `max_i f_i − K·‖x − x_i‖` is lowest,
//! with `K` the steepest slope seen so far. Even steps are local: fit a quadratic to the tried
//! points near the best one and take its minimum inside a box around it; the box doubles when
//! that improves on the best and halves when not. A region that fails several times in a row
//! only gets its untried axis neighbours (so the search ends on a coordinate-wise minimum).
//! The global step finds the right basin in few evaluations, the local step finishes it, and no
//! point is evaluated twice (timings are noisy: the caller repeats inside one evaluation).
//!
//! ```
//! use roibin_tools::maxlipo::{Dim, Search};
//! // Minimise (a − 7)² + (b − 2)² over a ∈ 0..32, b ∈ 0..16.
//! let mut s = Search::new(vec![Dim::range("a", 0, 31), Dim::range("b", 0, 15)], 1);
//! while s.evaluated() < 30 {
//!     let p = s.ask().unwrap();
//!     let (a, b) = (s.value(&p, 0) as f64, s.value(&p, 1) as f64);
//!     s.tell(p, (a - 7.0).powi(2) + (b - 2.0).powi(2));
//! }
//! let (best, y) = s.best().unwrap();
//! assert_eq!((s.value(best, 0), s.value(best, 1), y), (7, 2, 0.0));
//! ```

use crate::synth::Rng;
use std::collections::HashSet;

/// One searched parameter: an ordered list of the values it may take.
#[derive(Debug, Clone)]
pub struct Dim {
    pub name: String,
    pub values: Vec<usize>,
}

impl Dim {
    /// Every integer in `lo..=hi`.
    pub fn range(name: &str, lo: usize, hi: usize) -> Dim {
        Dim {
            name: name.into(),
            values: (lo..=hi).collect(),
        }
    }

    /// These values, in this order (for example powers of two for a log-scaled parameter).
    pub fn of(name: &str, values: Vec<usize>) -> Dim {
        assert!(!values.is_empty(), "dimension {name} has no values");
        Dim {
            name: name.into(),
            values,
        }
    }
}

/// 1, 2, 3, 4, 6, 8, 12, 16, 24, … up to `max` (and `max` itself): counts of threads or tasks
/// on a log scale, where allocations that multiply to the core count lie on a line.
///
/// ```
/// assert_eq!(roibin_tools::maxlipo::ladder(20), [1, 2, 3, 4, 6, 8, 12, 16, 20]);
/// ```
pub fn ladder(max: usize) -> Vec<usize> {
    let mut v = vec![];
    let mut p = 1;
    while p <= max {
        v.push(p);
        if p >= 2 && p + p / 2 <= max {
            v.push(p + p / 2);
        }
        p *= 2;
    }
    if v.last() != Some(&max) && max > 0 {
        v.push(max);
    }
    v.dedup();
    v
}

/// A point: one index into each dimension's values.
pub type Point = Vec<usize>;

/// Candidates the global step scores: a random sample, so that its bound picks among
/// representative points rather than always the lattice's far corners.
const SAMPLES: usize = 5_000;
/// Smallest trust region half width: on a lattice one step is often not enough to move along
/// a diagonal valley (2 tasks × 8 threads to 4 × 4).
const MIN_RADIUS: usize = 2;
/// Failed local steps around one best point before the search stops refining it.
const STALL: usize = 4;

/// The search state: what was tried, what it cost, and the trust region.
pub struct Search {
    dims: Vec<Dim>,
    tried: Vec<(Point, f64)>,
    seen: HashSet<Point>,
    rng: Rng,
    step: usize,
    /// Trust-region half width, in lattice steps.
    radius: usize,
    /// Best value when the pending local step was asked, to grow or shrink the region.
    /// (and whether it was an axis neighbour, whose failures do not count as stalls).
    local_from: Option<(Point, f64, bool)>,
    /// Local steps in a row that did not improve on the same best point: past a few, the
    /// region around it is done and every step goes global until another point leads.
    stalled: (Point, usize),
}

impl Search {
    pub fn new(dims: Vec<Dim>, seed: u64) -> Search {
        Search {
            dims,
            tried: vec![],
            seen: HashSet::new(),
            rng: Rng::new(seed),
            step: 0,
            radius: 2,
            local_from: None,
            stalled: (vec![], 0),
        }
    }

    /// The dimensions searched.
    pub fn dims(&self) -> &[Dim] {
        &self.dims
    }

    /// Dimension `d`'s value at `p`.
    pub fn value(&self, p: &[usize], d: usize) -> usize {
        self.dims[d].values[p[d]]
    }

    /// How many points were evaluated (told).
    pub fn evaluated(&self) -> usize {
        self.tried.len()
    }

    /// Number of lattice points.
    pub fn size(&self) -> usize {
        self.dims
            .iter()
            .fold(1usize, |n, d| n.saturating_mul(d.values.len()))
    }

    /// Best point so far and its value.
    pub fn best(&self) -> Option<(&Point, f64)> {
        self.tried
            .iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(p, y)| (p, *y))
    }

    /// The point whose values are `values` (for telling a known allocation, like the default).
    pub fn point_of(&self, values: &[usize]) -> Option<Point> {
        self.dims
            .iter()
            .zip(values)
            .map(|(d, v)| d.values.iter().position(|x| x == v))
            .collect()
    }

    /// The next point to evaluate, or `None` once every point was handed out.
    pub fn ask(&mut self) -> Option<Point> {
        if self.seen.len() >= self.size() {
            return None;
        }
        self.step += 1;
        let p = if self.tried.len() < 2 {
            self.random_new()
        } else if self.step % 2 == 0 {
            // A stalled region still gets its untried axis neighbours, never the box again.
            match self.local(!self.local_done()) {
                Some((p, neighbour)) => {
                    self.local_from = self.best().map(|(b, y)| (b.clone(), y, neighbour));
                    Some(p)
                }
                None => self.global(),
            }
        } else {
            self.global()
        }
        .or_else(|| self.random_new())?;
        self.seen.insert(p.clone());
        Some(p)
    }

    /// Record the value at `p` (lower is better). Points not handed out by `ask` are fine.
    pub fn tell(&mut self, p: Point, y: f64) {
        if let Some((from, best, neighbour)) = self.local_from.take() {
            if y < best {
                self.radius = (self.radius * 2).min(self.max_extent());
                self.stalled = (vec![], 0);
            } else if !neighbour {
                self.radius = (self.radius / 2).max(MIN_RADIUS);
                if self.stalled.0 == from {
                    self.stalled.1 += 1;
                } else {
                    self.stalled = (from, 1);
                }
            }
        }
        self.seen.insert(p.clone());
        self.tried.push((p, y));
    }

    /// Whether the region around the current best was searched without success often enough.
    fn local_done(&self) -> bool {
        self.stalled.1 >= STALL && self.best().is_some_and(|(b, _)| *b == self.stalled.0)
    }

    fn max_extent(&self) -> usize {
        self.dims.iter().map(|d| d.values.len()).max().unwrap_or(1)
    }

    /// Coordinates in the unit cube.
    fn unit(&self, p: &[usize]) -> Vec<f64> {
        p.iter()
            .zip(&self.dims)
            .map(|(&i, d)| {
                if d.values.len() > 1 {
                    i as f64 / (d.values.len() - 1) as f64
                } else {
                    0.0
                }
            })
            .collect()
    }

    fn random_point(&mut self) -> Point {
        let lens: Vec<usize> = self.dims.iter().map(|d| d.values.len()).collect();
        lens.iter()
            .map(|&n| (self.rng.next_u64() % n as u64) as usize)
            .collect()
    }

    fn random_new(&mut self) -> Option<Point> {
        for _ in 0..10_000 {
            let p = self.random_point();
            if !self.seen.contains(&p) {
                return Some(p);
            }
        }
        self.candidates(usize::MAX).into_iter().next()
    }

    /// Untried points: all of them when the lattice has at most `limit`, else a random sample
    /// of `limit` (less those tried).
    fn candidates(&mut self, limit: usize) -> Vec<Point> {
        if self.size() <= limit {
            let hi: Vec<usize> = self.dims.iter().map(|d| d.values.len() - 1).collect();
            let lo = vec![0; hi.len()];
            let mut out = vec![];
            let mut p = lo.clone();
            loop {
                if !self.seen.contains(&p) {
                    out.push(p.clone());
                }
                if !advance(&mut p, &lo, &hi) {
                    break;
                }
            }
            out
        } else {
            let sample: Vec<Point> = (0..limit).map(|_| self.random_point()).collect();
            sample
                .into_iter()
                .filter(|p| !self.seen.contains(p))
                .collect()
        }
    }

    /// The untried point with the lowest Lipschitz lower bound.
    fn global(&mut self) -> Option<Point> {
        let xs: Vec<(Vec<f64>, f64)> = self.tried.iter().map(|(p, y)| (self.unit(p), *y)).collect();
        // K: the steepest slope seen (over the unit cube).
        let mut slopes = vec![];
        for i in 0..xs.len() {
            for j in 0..i {
                let d = dist(&xs[i].0, &xs[j].0);
                if d > 0.0 {
                    slopes.push((xs[i].1 - xs[j].1).abs() / d);
                }
            }
        }
        slopes.sort_by(f64::total_cmp);
        let k = slopes.last().copied().unwrap_or(0.0);
        let cands = self.candidates(SAMPLES);
        let mut best: Option<(f64, Point)> = None;
        for c in cands {
            let u = self.unit(&c);
            let bound = xs
                .iter()
                .map(|(x, y)| y - k * dist(&u, x))
                .fold(f64::NEG_INFINITY, f64::max);
            // Ties (a flat function so far) go to a random candidate: the sample order is random
            // on large lattices; on small ones break by a coin.
            let better = match &best {
                None => true,
                Some((b, _)) => bound < *b || (bound == *b && self.rng.next_u64() & 1 == 0),
            };
            if better {
                best = Some((bound, c));
            }
        }
        best.map(|b| b.1)
    }

    /// Minimum of a separable quadratic fitted around the best point, inside the trust region.
    /// The local step around the best point: its untried axis neighbours first (a pattern
    /// search, which cannot stop short of a coordinate-wise minimum), then the box of the trust
    /// region, both ranked by a quadratic fitted to the points near the centre. Returns the
    /// point and whether it was a neighbour.
    fn local(&mut self, boxed_too: bool) -> Option<(Point, bool)> {
        let (centre, _) = self.best()?;
        let centre = centre.clone();
        let n = self.dims.len();
        // Only points near the centre: far ones of a function that is not quadratic across the
        // whole lattice would spoil the fit where it matters.
        let reach = 2 * self.radius + 1;
        let near: Vec<(f64, &Point, f64)> = self
            .tried
            .iter()
            .filter(|(p, _)| p.iter().zip(&centre).all(|(&a, &b)| a.abs_diff(b) <= reach))
            .map(|(p, y)| (0.0, p, *y))
            .collect();
        let model = Quadratic::fit(&near, &centre, n);
        let score = |p: &[usize]| match &model {
            Some(m) => m.predict(p, &centre),
            None => Quadratic::offset(p, &centre).iter().map(|o| o * o).sum(),
        };
        let seen = &self.seen;
        let pick = |cands: Vec<Point>| {
            cands
                .into_iter()
                .filter(|p| !seen.contains(p))
                .map(|p| (score(&p), p))
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .map(|b| b.1)
        };
        let mut neighbours = vec![];
        for d in 0..n {
            if centre[d] > 0 {
                let mut p = centre.clone();
                p[d] -= 1;
                neighbours.push(p);
            }
            if centre[d] + 1 < self.dims[d].values.len() {
                let mut p = centre.clone();
                p[d] += 1;
                neighbours.push(p);
            }
        }
        // Without a model (or past the box's usefulness), walk: the untried axis neighbours.
        if model.is_none() || !boxed_too {
            if let Some(p) = pick(neighbours.clone()) {
                return Some((p, true));
            }
            if !boxed_too {
                return None;
            }
        }
        let r = self.radius;
        let lo: Vec<usize> = centre.iter().map(|&c| c.saturating_sub(r)).collect();
        let hi: Vec<usize> = centre
            .iter()
            .zip(&self.dims)
            .map(|(&c, d)| (c + r).min(d.values.len() - 1))
            .collect();
        // Every point of the box (small: radius ≤ a few steps per axis).
        let mut boxed = vec![];
        let mut p = lo.clone();
        loop {
            boxed.push(p.clone());
            if !advance(&mut p, &lo, &hi) {
                break;
            }
        }
        // With one, its minimum over the box; once the box is exhausted, the neighbours.
        let found = pick(boxed)
            .map(|p| (p, false))
            .or_else(|| pick(neighbours).map(|p| (p, true)));
        if found.is_none() {
            // The box is exhausted: widen it for next time.
            self.radius = (self.radius * 2).min(self.max_extent());
        }
        found
    }
}

/// Step `p` to the next point of the box `lo..=hi` (odometer order); false after the last.
fn advance(p: &mut [usize], lo: &[usize], hi: &[usize]) -> bool {
    for ((x, &l), &h) in p.iter_mut().zip(lo).zip(hi) {
        if *x < h {
            *x += 1;
            return true;
        }
        *x = l;
    }
    false
}

fn dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// A quadratic in the offset `d` from the centre (lattice steps): full (`c + g·d + dᵀHd`, which
/// follows the diagonal valleys of tasks × threads = cores) when there are enough points, else
/// separable (`c + Σ g_j d_j + Σ h_j d_j²`).
struct Quadratic {
    full: bool,
    coef: Vec<f64>,
}

impl Quadratic {
    fn params(n: usize, full: bool) -> usize {
        if full {
            1 + n + n * (n + 1) / 2
        } else {
            1 + 2 * n
        }
    }

    fn features(d: &[f64], full: bool) -> Vec<f64> {
        let mut row = vec![1.0];
        row.extend_from_slice(d);
        for j in 0..d.len() {
            if full {
                row.extend((j..d.len()).map(|k| d[j] * d[k]));
            } else {
                row.push(d[j] * d[j]);
            }
        }
        row
    }

    fn offset(p: &[usize], centre: &[usize]) -> Vec<f64> {
        p.iter()
            .zip(centre)
            .map(|(&a, &c)| a as f64 - c as f64)
            .collect()
    }

    fn predict(&self, p: &[usize], centre: &[usize]) -> f64 {
        Quadratic::features(&Quadratic::offset(p, centre), self.full)
            .iter()
            .zip(&self.coef)
            .map(|(f, c)| f * c)
            .sum()
    }

    /// Least squares with a small ridge (the fit is underdetermined along axes never varied).
    fn fit(points: &[(f64, &Point, f64)], centre: &[usize], n: usize) -> Option<Quadratic> {
        let full = points.len() >= Quadratic::params(n, true) + 2;
        let m = Quadratic::params(n, full);
        if points.len() < n + 2 {
            return None;
        }
        let mut ata = vec![vec![0.0; m]; m];
        let mut aty = vec![0.0; m];
        for (_, p, y) in points {
            let row = Quadratic::features(&Quadratic::offset(p, centre), full);
            for i in 0..m {
                aty[i] += row[i] * y;
                for j in 0..m {
                    ata[i][j] += row[i] * row[j];
                }
            }
        }
        let scale = ata
            .iter()
            .enumerate()
            .map(|(i, r)| r[i])
            .fold(0.0, f64::max);
        for (i, r) in ata.iter_mut().enumerate().skip(1) {
            r[i] += 1e-6 * scale.max(1.0);
        }
        solve(ata, aty).map(|coef| Quadratic { full, coef })
    }
}

/// Gaussian elimination with partial pivoting; `None` when singular.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let piv = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[piv][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, piv);
        b.swap(col, piv);
        let (top, rest) = a.split_at_mut(col + 1);
        let pivot = &top[col];
        for (r, row) in rest.iter_mut().enumerate() {
            let f = row[col] / pivot[col];
            for (x, p) in row[col..].iter_mut().zip(&pivot[col..]) {
                *x -= f * p;
            }
            b[col + 1 + r] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|c| a[r][c] * x[c]).sum();
        x[r] = (b[r] - s) / a[r][r];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic allocation problem shaped like the real one: `work` split over
    /// `tasks × threads` workers on 16 cores, oversubscription punished, fixed costs per chunk
    /// falling with frames per chunk, a cache cliff at large chunks; plus ±3% noise. The unique
    /// optimum is known by enumeration.
    fn allocation_cost(v: &[usize], noise: Option<&mut Rng>) -> f64 {
        let (tasks, t_find, t_codec, fpc) = (v[0] as f64, v[1] as f64, v[2] as f64, v[3] as f64);
        let cores = 16.0;
        let find = 0.7 / (tasks * t_find).min(cores)
            * (1.0 + 0.15 * ((tasks * t_find) / cores - 1.0).max(0.0));
        let codec = 0.3 / (tasks * t_codec).min(cores)
            * (1.0 + 0.3 * ((tasks * t_codec) / cores - 1.0).max(0.0));
        let per_chunk = 0.004 / fpc + 0.0004 * (fpc / 16.0 - 1.0).max(0.0);
        let imbalance = 0.002 * ((tasks - 8.0) / 8.0).powi(2);
        let jitter = noise.map_or(0.0, |r| 0.03 * (2.0 * r.f64() - 1.0));
        (find + codec + per_chunk + imbalance) * (1.0 + jitter)
    }

    fn space() -> Vec<Dim> {
        vec![
            Dim::of("tasks", ladder(32)),
            Dim::of("find threads", ladder(16)),
            Dim::of("codec threads", ladder(16)),
            Dim::of(
                "frames per chunk",
                vec![1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64],
            ),
        ]
    }

    fn noiseless_optimum() -> f64 {
        let dims = space();
        let mut best = f64::INFINITY;
        for a in &dims[0].values {
            for b in &dims[1].values {
                for c in &dims[2].values {
                    for d in &dims[3].values {
                        best = best.min(allocation_cost(&[*a, *b, *c, *d], None));
                    }
                }
            }
        }
        best
    }

    fn run(seed: u64, budget: usize, global_only: bool) -> f64 {
        let mut s = Search::new(space(), seed);
        let mut noise = Rng::new(seed + 100);
        let mut truth = f64::INFINITY;
        while s.evaluated() < budget {
            let p = if global_only {
                let p = s.random_new().unwrap();
                s.seen.insert(p.clone());
                p
            } else {
                s.ask().unwrap()
            };
            let v: Vec<usize> = (0..4).map(|d| s.value(&p, d)).collect();
            // As `roibin autotune` does: log time, where work / (tasks × threads) is linear.
            s.tell(p, allocation_cost(&v, Some(&mut noise)).ln());
            // Score the point the search believes best by its noiseless cost.
            let (b, _) = s.best().unwrap();
            let bv: Vec<usize> = (0..4).map(|d| s.value(b, d)).collect();
            truth = allocation_cost(&bv, None);
        }
        truth
    }

    #[test]
    fn finds_the_known_optimum_of_a_noisy_allocation_problem_within_budget() {
        // 10·9·9·12 = 9 720 allocations; the search gets 80 evaluations (0.8%).
        let opt = noiseless_optimum();
        let (mut worst, mut ours, mut random): (f64, f64, f64) = (0.0, 0.0, 0.0);
        for seed in 1..=6 {
            let found = run(seed, 80, false) / opt;
            worst = worst.max(found);
            ours += found / 6.0;
            random += run(seed, 80, true) / opt / 6.0;
        }
        // Every seed ends inside the noise band of the true optimum (±3% noise: a point 6%
        // worse can measure as well as the optimum; repeats are the caller's job)…
        assert!(worst < 1.06, "worst found/optimum = {worst:.3}");
        // …and random search with the same budget does clearly worse on average.
        assert!(
            random > ours + 0.03,
            "random search {random:.3} vs maxlipo {ours:.3}"
        );
    }

    /// A smooth objective with a unique minimum off the lattice's edges: the search must land
    /// on exactly that point, with 60 of 9 720 evaluations, from every seed.
    #[test]
    fn lands_exactly_on_a_unique_optimum() {
        let want = [6, 4, 3, 12];
        for seed in 1..=6 {
            let mut s = Search::new(space(), seed);
            let values = |s: &Search, p: &[usize]| -> Vec<f64> {
                (0..4).map(|d| (s.value(p, d) as f64).log2()).collect()
            };
            let target: Vec<f64> = want.iter().map(|&v| (v as f64).log2()).collect();
            while s.evaluated() < 60 {
                let p = s.ask().unwrap();
                let x = values(&s, &p);
                // A tilted bowl in log space: axes interact (x0 + x1 is what matters most).
                let (a, b, c, d) = (
                    x[0] - target[0],
                    x[1] - target[1],
                    x[2] - target[2],
                    x[3] - target[3],
                );
                let y = (a + b).powi(2) * 4.0 + (a - b).powi(2) + c * c + 0.5 * d * d + 0.3 * a * c;
                s.tell(p, y);
            }
            let (best, _) = s.best().unwrap();
            let got: Vec<usize> = (0..4).map(|d| s.value(best, d)).collect();
            assert_eq!(got, want, "seed {seed}");
        }
    }

    #[test]
    fn exhausts_small_lattices_without_repeats() {
        let mut s = Search::new(vec![Dim::range("a", 0, 2), Dim::range("b", 0, 3)], 5);
        let mut got = HashSet::new();
        while let Some(p) = s.ask() {
            assert!(got.insert(p.clone()), "{p:?} asked twice");
            let y = (p[0] * 7 % 5 + p[1]) as f64;
            s.tell(p, y);
        }
        assert_eq!(got.len(), 12);
        assert_eq!(s.best().unwrap().1, 0.0);
    }

    #[test]
    fn solves_a_quadratic_exactly() {
        let centre = vec![5, 5];
        let pts: Vec<Point> = vec![
            vec![5, 5],
            vec![6, 5],
            vec![4, 5],
            vec![5, 6],
            vec![5, 4],
            vec![7, 7],
            vec![3, 6],
        ];
        let f = |p: &Point| {
            let (a, b) = (p[0] as f64 - 7.0, p[1] as f64 - 3.0);
            1.0 + a * a + 2.0 * b * b
        };
        let near: Vec<(f64, &Point, f64)> = pts.iter().map(|p| (0.0, p, f(p))).collect();
        let q = Quadratic::fit(&near, &centre, 2).unwrap();
        assert!((q.predict(&[7, 3], &centre) - 1.0).abs() < 1e-3);
    }
}
