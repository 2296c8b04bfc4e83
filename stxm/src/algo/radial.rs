//! `radial`: I(q) for every scan point: `nq` equal rings from qmin to qmax around (cx, cy),
//! each the mean of the processed pixels whose centre falls in it (pixels left out by the
//! mask or ROI do not count). A 3-D result `[scan rows, scan cols, nq]`.

use super::{expect_sums, AlgorithmInfo, Input, Reducer};
use crate::geometry::{Detector, Geometry, NONE};
use crate::request::Request;
use crate::{Error, Result};

struct Radial {
    detector: Detector,
    /// Processed pixels per ring.
    counts: Vec<f64>,
    centres: Vec<f64>,
}

impl Reducer for Radial {
    fn value_shape(&self) -> Vec<usize> {
        vec![self.counts.len()]
    }

    fn value_axes(&self) -> Vec<(String, Vec<f64>)> {
        vec![("q".into(), self.centres.clone())]
    }

    fn detector(&self) -> Option<&Detector> {
        Some(&self.detector)
    }

    fn finish(&self, input: Input<'_>, out: &mut [f64]) -> Result<()> {
        for ((o, s), n) in out.iter_mut().zip(expect_sums(input)?).zip(&self.counts) {
            *o = if *n > 0.0 { s / n } else { f64::NAN };
        }
        Ok(())
    }
}

fn build(req: &Request, _: &str, g: &Geometry) -> Result<Box<dyn Reducer>> {
    let r = req
        .radial
        .ok_or_else(|| Error::request("radial", "algo=radial needs radial=cx,cy;qmin,qmax;nq"))?;
    let step = (r.qmax - r.qmin) / r.nq as f64;
    let l = ring_labels(g, &r);
    // A processed pixel counts when any of its raw pixels has weight (every processed pixel
    // without weights).
    let live = g.weight.as_ref().map(|w| {
        let mut live = vec![false; g.out_h * g.out_w];
        let (rows, cols) = g.used();
        let qx: Vec<usize> = cols.clone().map(|x| g.qx(x).expect("used")).collect();
        for y in rows {
            let (qy, raw) = (g.qy(y).expect("used"), y * g.width);
            let live = &mut live[qy * g.out_w..(qy + 1) * g.out_w];
            for (x, &qx) in cols.clone().zip(&qx) {
                if w[raw + x] != 0.0 {
                    live[qx] = true;
                }
            }
        }
        live
    });
    // Pixels per ring in four copies in turn (neighbouring pixels share a ring: one count
    // chained each addition on the last), a slot past the rings for the rest.
    let slots = r.nq + 1;
    let mut copies = vec![0u64; 4 * slots];
    for (i, &l) in l.iter().enumerate() {
        let counted = l != NONE && live.as_ref().is_none_or(|live| live[i]);
        copies[(i & 3) * slots + if counted { l as usize } else { r.nq }] += 1;
    }
    let counts: Vec<f64> = (0..r.nq)
        .map(|q| (0..4).map(|c| copies[c * slots + q]).sum::<u64>() as f64)
        .collect();
    if counts.iter().all(|&c| c == 0.0) {
        return Err(Error::request(
            "radial",
            "no ring holds a pixel of the processed frame: check its centre and radii",
        ));
    }
    Ok(Box::new(Radial {
        detector: Detector {
            labels: Some(l),
            n_labels: r.nq,
            moments: false,
        },
        counts,
        centres: (0..r.nq)
            .map(|i| r.qmin + (i as f64 + 0.5) * step)
            .collect(),
    }))
}

/// Each processed pixel's ring ([`NONE`]: none), as [`ring`] gives it, a row at a time: a
/// pass the compiler vectorises (square root, division, the test for a ring edge) and the
/// pixels near an edge, flagged, through [`ring`] (4 M pixels one by one were ~30 ms of
/// every radial request on a JUNGFRAU 4M frame, its decode path's too).
fn ring_labels(g: &Geometry, r: &crate::request::Radial) -> Vec<u32> {
    let mut out = vec![NONE; g.out_h * g.out_w];
    if g.out_w == 0 {
        return out;
    }
    for (y, row) in out.chunks_exact_mut(g.out_w).enumerate() {
        let dy = y as f64 - r.cy;
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked above), all `rings_avx2` asks for.
            unsafe { rings_avx2(row, dy, r) };
        } else {
            rings(row, dy, r);
        }
        #[cfg(not(target_arch = "x86_64"))]
        rings(row, dy, r);
        for (x, l) in row.iter_mut().enumerate() {
            if *l == NEAR_EDGE {
                *l = ring(x as f64 - r.cx, dy, r).unwrap_or(NONE);
            }
        }
    }
    out
}

/// A pixel whose ring [`rings`] leaves to [`ring`].
const NEAR_EDGE: u32 = NONE - 1;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn rings_avx2(row: &mut [u32], dy: f64, r: &crate::request::Radial) {
    rings(row, dy, r)
}

/// The rings of a row `dy` below the centre as [`ring`] gives them, but [`NEAR_EDGE`] for
/// pixels [`radius`] would measure with `hypot` and for quotients too large to truncate:
/// no branch, no library call (the loop vectorises).
#[inline(always)]
fn rings(row: &mut [u32], dy: f64, r: &crate::request::Radial) {
    let step = (r.qmax - r.qmin) / r.nq as f64;
    let last = (r.nq - 1) as f64;
    for (x, l) in row.iter_mut().enumerate() {
        let dx = x as f64 - r.cx;
        let q = (dx * dx + dy * dy).sqrt();
        let t = (q - r.qmin) / step;
        // `t as i64 as f64` of [`radius`] for |t| < 2^52 (larger or NaN: flagged).
        let frac = (t - t.trunc()).abs();
        let near = 1e-9 * (1.0 + q);
        let edge = frac.min(1.0 - frac) * step <= near || (q - r.qmax).abs() <= near;
        let flagged = edge || t.abs() >= (1u64 << 52) as f64 || t.is_nan();
        // `t` lies in [0, nq) here when inside (nq - 1 < 2^31): truncated as `as u32` does.
        let inside = q >= r.qmin && q < r.qmax;
        let ring = t.min(last).max(0.0) as i32 as u32;
        *l = if flagged {
            NEAR_EDGE
        } else if inside {
            ring
        } else {
            NONE
        };
    }
}

/// The ring of the pixel (`dx`, `dy`) from the centre (None outside `qmin..qmax`).
#[inline(always)]
fn ring(dx: f64, dy: f64, r: &crate::request::Radial) -> Option<u32> {
    let step = (r.qmax - r.qmin) / r.nq as f64;
    let q = radius(dx, dy, [r.qmin, r.qmax], step);
    (q >= r.qmin && q < r.qmax).then(|| (((q - r.qmin) / step) as u32).min(r.nq as u32 - 1))
}

/// `dx.hypot(dy)` where it decides a ring (within 1e-9 of a ring edge, `qmin` or `qmax`),
/// else `√(dx² + dy²)`, which is within a few ulps of it: the same rings as `hypot` everywhere
/// (the numpy reference uses `np.hypot`) at a fraction of the cost (4 M calls to glibc's
/// `hypot` were ~55 ms of every radial request on a JUNGFRAU 4M frame).
#[inline(always)]
fn radius(dx: f64, dy: f64, [qmin, qmax]: [f64; 2], step: f64) -> f64 {
    let q = (dx * dx + dy * dy).sqrt();
    let t = (q - qmin) / step;
    // Distance to the nearest integer by truncation (`round` is a libm call on x86-64).
    let frac = (t - t as i64 as f64).abs();
    let near = 1e-9 * (1.0 + q);
    if frac.min(1.0 - frac) * step <= near || (q - qmax).abs() <= near {
        dx.hypot(dy)
    } else {
        q
    }
}

inventory::submit! {
    AlgorithmInfo {
        name: "radial",
        signals: &["I"],
        doc: "I(q): mean of each of nq rings cx,cy;qmin,qmax;nq (processed pixels) at every scan point, a 3-D result",
        build,
    }
}

#[cfg(test)]
mod tests {
    use super::{radius, ring, ring_labels};
    use crate::geometry::{Geometry, NONE};
    use crate::request::{Radial, Request};

    /// The vectorised rows give every pixel the ring [`ring`] gives it, for centres on and
    /// off the frame, rings on integer radii (3-4-5 pixels on their edges), very thin and very
    /// wide rings, and a binned ROI's processed frame.
    #[test]
    fn ring_rows_equal_ring_pixel_by_pixel() {
        let frame = Geometry::new(&Request::from_query("algo=radial").unwrap(), 90, 130).unwrap();
        let binned = Request::from_query("algo=radial&roi=3,2,101,77&binning=2,3").unwrap();
        let binned = Geometry::new(&binned, 90, 130).unwrap();
        let centres = [(60.0, 40.0), (59.5, 40.5), (-30.25, 7.7), (200.0, -90.0)];
        let radii = [
            (0.0, 100.0, 100),
            (5.0, 50.0, 9),
            (0.3, 211.7, 500),
            (1.0, 1.0 + 1e-12, 3),
            (0.0, 1e9, 7),
        ];
        for g in [&frame, &binned] {
            for (cx, cy) in centres {
                // Edges right on a pixel where `√(dx² + dy²)` and `hypot` differ: only
                // `hypot` decides its ring.
                let exact = (0..g.out_h * g.out_w)
                    .map(|p| ((p % g.out_w) as f64 - cx, (p / g.out_w) as f64 - cy))
                    .map(|(dx, dy)| (dx.hypot(dy), (dx * dx + dy * dy).sqrt()))
                    .find(|(h, s)| h != s)
                    .expect("a pixel where they differ")
                    .0;
                let on_edge = [(exact, exact + 10.0, 1), (exact - 10.0, exact, 1)];
                for (qmin, qmax, nq) in radii.into_iter().chain(on_edge) {
                    let r = Radial {
                        cx,
                        cy,
                        qmin,
                        qmax,
                        nq,
                    };
                    let got = ring_labels(g, &r);
                    for y in 0..g.out_h {
                        for x in 0..g.out_w {
                            let want = ring(x as f64 - cx, y as f64 - cy, &r).unwrap_or(NONE);
                            assert_eq!(got[y * g.out_w + x], want, "({x}, {y}) {r:?}");
                        }
                    }
                }
            }
        }
    }

    /// The ring of every pixel of a 400×400 frame equals `hypot`'s, for centres on a pixel, on
    /// a corner and anywhere, and rings whose edges fall on integer radii (3-4-5 pixels lie on
    /// them) or anywhere.
    #[test]
    fn rings_equal_those_of_hypot() {
        let ring = |q: f64, qmin: f64, qmax: f64, step: f64| {
            (q >= qmin && q < qmax).then(|| ((q - qmin) / step) as u32)
        };
        let mut differ = 0;
        for (cx, cy) in [(200.0, 200.0), (199.5, 120.5), (37.123, 301.77)] {
            for (qmin, qmax, nq) in [(0.0, 300.0, 300), (5.0, 250.0, 49), (0.3, 211.7, 500)] {
                let step = (qmax - qmin) / nq as f64;
                for y in 0..400 {
                    for x in 0..400 {
                        let (dx, dy) = (x as f64 - cx, y as f64 - cy);
                        let (exact, fast) = (dx.hypot(dy), radius(dx, dy, [qmin, qmax], step));
                        let sqrt = (dx * dx + dy * dy).sqrt();
                        if exact != sqrt {
                            differ += 1;
                            // An edge right on one of the two: only `hypot` decides it.
                            for edge in [exact, sqrt] {
                                for (lo, hi) in [(edge, edge + 10.0), (edge - 10.0, edge)] {
                                    let fast = radius(dx, dy, [lo, hi], 1.0);
                                    assert_eq!(ring(fast, lo, hi, 1.0), ring(exact, lo, hi, 1.0));
                                }
                            }
                        }
                        assert_eq!(
                            ring(fast, qmin, qmax, step),
                            ring(exact, qmin, qmax, step),
                            "({x}, {y}) around ({cx}, {cy})"
                        );
                    }
                }
            }
        }
        // `√(dx² + dy²)` alone differs from `hypot` here (and gives other rings at the edges
        // set on those pixels above).
        assert!(differ > 0);
    }
}
