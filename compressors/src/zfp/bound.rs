//! When `accuracy=tol` needs no re-decode: a bound on what a block's round trip (forward
//! transform, negabinary truncation below plane `kmin`, inverse transform) can move its
//! integers, derived by running the very lifting code on values that track their origin.
//!
//! The integers a decoder rebuilds are `y = I(T(F(q)))`. Every lifting step is linear except
//! for `half` (⌊a/2⌋ = a/2 − δ, δ ∈ {0, ½}), and `T` moves each coefficient by less than
//! `(2^(kmin+1) − 1)/3` (the largest value negabinary digits below `kmin` can hold). So
//! `|y − q| ≤ gain · trunc(kmin) + rounding` per value, with
//! - `gain`: the largest row sum of |coefficients| of the truncation errors in `y`,
//! - `rounding`: the accumulated ½s of every `half`, added up without cancellation.
//!
//! The encoder adds the conversion to integers (< 1 unit) and the rounding of the stored
//! element, and skips its check when the total is within the tolerance: the check would then
//! pass at ZFP's precision, so the bytes are the same either way.

use super::block::{fwd_lift, inv_lift, xform, Lane};
use std::cell::Cell;

/// Values per block (4^d) at most: one linear term per input integer and per truncation error.
const N: usize = 64;
/// Rounding terms at most: 6 `half`s per forward lift, 2 per inverse lift, 3 · 16 lifts each.
const ROUNDINGS: usize = 8 * 48;

/// A value of the lifting pipeline as an affine form: linear in the block's inputs `q`, its
/// truncation errors `e`, and one term `η ∈ [−¼, ¼]` per `half` (⌊a/2⌋ = a/2 − ¼ − η), plus a
/// constant. Terms stay separate so that roundings which cancel are seen to cancel.
#[derive(Clone, Copy)]
struct Tracked<'a> {
    q: [f64; N],
    e: [f64; N],
    eta: [f64; ROUNDINGS],
    constant: f64,
    /// The next free rounding term, shared by every value of one derivation.
    next: &'a Cell<usize>,
}

impl Tracked<'_> {
    fn combine(mut self, o: Tracked, sign: f64) -> Self {
        let pairs = self.q.iter_mut().zip(o.q).chain(self.e.iter_mut().zip(o.e));
        for (a, b) in pairs.chain(self.eta.iter_mut().zip(o.eta)) {
            *a += sign * b;
        }
        self.constant += sign * o.constant;
        self
    }
    fn scale(mut self, f: f64) -> Self {
        let terms = self.q.iter_mut().chain(self.e.iter_mut());
        terms.chain(self.eta.iter_mut()).for_each(|c| *c *= f);
        self.constant *= f;
        self
    }
}

impl Lane for Tracked<'_> {
    fn plus(self, o: Self) -> Self {
        self.combine(o, 1.0)
    }
    fn minus(self, o: Self) -> Self {
        self.combine(o, -1.0)
    }
    fn half(self) -> Self {
        let mut h = self.scale(0.5);
        h.constant -= 0.25;
        let k = h.next.get();
        h.next.set(k + 1);
        h.eta[k] = -1.0;
        h
    }
    fn twice(self) -> Self {
        self.scale(2.0)
    }
}

/// `(gain, rounding)` for 4^d blocks, or `None` if the tracked round trip is not the identity
/// on its inputs (then no bound is claimed and the encoder always checks).
pub fn terms(d: usize) -> Option<(f64, f64)> {
    static TERMS: [std::sync::OnceLock<Option<(f64, f64)>>; 4] =
        [const { std::sync::OnceLock::new() }; 4];
    *TERMS[d].get_or_init(|| derive(d))
}

fn derive(d: usize) -> Option<(f64, f64)> {
    let n = 1usize << (2 * d);
    let next = Cell::new(0);
    let zero = Tracked {
        q: [0.0; N],
        e: [0.0; N],
        eta: [0.0; ROUNDINGS],
        constant: 0.0,
        next: &next,
    };
    let mut block = vec![zero; n];
    for (i, v) in block.iter_mut().enumerate() {
        v.q[i] = 1.0;
    }
    xform(&mut block, d, fwd_lift, false);
    // Truncation: each coefficient moves by its own error term.
    for (i, v) in block.iter_mut().enumerate() {
        v.e[i] += 1.0;
    }
    xform(&mut block, d, inv_lift, true);
    let mut gain = 0f64;
    let mut rounding = 0f64;
    for (i, v) in block.iter().enumerate() {
        let identity =
            v.q.iter()
                .enumerate()
                .all(|(j, &c)| (c - f64::from(u8::from(i == j))).abs() < 1e-12);
        if !identity {
            return None;
        }
        gain = gain.max(v.e.iter().map(|c| c.abs()).sum());
        let spread: f64 = v.eta.iter().map(|c| c.abs()).sum();
        rounding = rounding.max(v.constant.abs() + 0.25 * spread);
    }
    Some((gain, rounding))
}

/// The most negabinary digits below plane `kmin` can hold: (2^(kmin+1) − 1)/3.
pub fn truncation(kmin: u32) -> f64 {
    (super::pow2(kmin as i32 + 1) - 1.0) / 3.0
}

#[cfg(test)]
mod tests {
    use super::super::block::{forward, inverse, Planes};
    use super::*;

    #[test]
    fn gain_is_the_inverse_transforms_norm() {
        // ZFP's inverse transform has rows of |coefficients| summing to 15/4 in 1-D.
        for d in 1..=3 {
            let (gain, rounding) = terms(d).expect("the lifting round trip is the identity");
            assert!(
                (gain - 3.75f64.powi(d as i32)).abs() < 1e-9,
                "d={d}: {gain}"
            );
            assert!(rounding > 0.0 && rounding < 100.0, "d={d}: {rounding}");
        }
    }

    #[test]
    fn round_trips_stay_within_the_bound() {
        // Integers as the encoder makes them (|q| < 2^30), every truncation depth.
        let mut next = crate::test_rng::xorshift(0x2545_f491_4f6c_dd1du64);
        let pl = Planes { intprec: 32 };
        let mut worst = 0f64;
        for d in 1..=3 {
            let n = 1usize << (2 * d);
            let (gain, rounding) = terms(d).unwrap();
            for round in 0..3000 {
                let kmin = (round % 31) as u32;
                // Smooth, noisy and extreme blocks.
                let spread = 1i64 << (next() % 31);
                let base = (next() % (1 << 30)) as i64 - (1 << 29);
                let q: Vec<i64> = (0..n)
                    .map(|_| {
                        let v = base + (next() % (2 * spread as u64)) as i64 - spread;
                        v.clamp(-(1 << 30) + 1, (1 << 30) - 1)
                    })
                    .collect();
                let mut c = q.clone();
                forward(&mut c, d);
                for v in c.iter_mut() {
                    *v = pl.truncate(*v, kmin);
                }
                inverse(&mut c, d);
                let bound = gain * truncation(kmin) + rounding;
                for (a, b) in q.iter().zip(&c) {
                    let err = (a - b).abs() as f64;
                    assert!(err <= bound, "d={d} kmin={kmin}: {err} > {bound}");
                    worst = worst.max(err / bound);
                }
            }
        }
        // The bound is close: real round trips come within a factor of two of it (0.87 seen).
        assert!(worst > 0.5, "worst error only {worst} of the bound");
    }
}
