//! `radial`: I(q) for every scan point: `nq` equal rings from qmin to qmax around (cx, cy),
//! each the mean of the processed pixels whose centre falls in it (pixels left out by the
//! mask or ROI do not count). A 3-D result `[scan rows, scan cols, nq]`.

use super::{expect_sums, labels, AlgorithmInfo, Input, Reducer};
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
    let l = labels(g, |x, y| {
        let q = (x - r.cx).hypot(y - r.cy);
        (q >= r.qmin && q < r.qmax).then(|| (((q - r.qmin) / step) as u32).min(r.nq as u32 - 1))
    });
    // A processed pixel counts when any of its raw pixels has weight.
    let mut live = vec![false; g.out_h * g.out_w];
    let (rows, cols) = g.used();
    for y in rows {
        for x in cols.clone() {
            if g.weight_of(y * g.width + x) != 0.0 {
                live[g.qy(y).expect("used") * g.out_w + g.qx(x).expect("used")] = true;
            }
        }
    }
    let mut counts = vec![0f64; r.nq];
    for (&l, &alive) in l.iter().zip(&live) {
        if l != NONE && alive {
            counts[l as usize] += 1.0;
        }
    }
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

inventory::submit! {
    AlgorithmInfo {
        name: "radial",
        signals: &["I"],
        doc: "I(q): mean of each of nq rings cx,cy;qmin,qmax;nq (processed pixels) at every scan point, a 3-D result",
        build,
    }
}
