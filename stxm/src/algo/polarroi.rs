//! `polarroi`: `Itot` inside a sector of an annulus around any centre (even off the frame),
//! in processed pixels: qmin ≤ r < qmax and φ in [phimin, phimax), φ = atan2(row − cy,
//! col − cx) in degrees.

use super::{expect_sums, labels, AlgorithmInfo, Input, Reducer};
use crate::geometry::{Detector, Geometry};
use crate::request::Request;
use crate::{Error, Result};

struct PolarRoi {
    detector: Detector,
}

impl Reducer for PolarRoi {
    fn value_shape(&self) -> Vec<usize> {
        vec![]
    }

    fn detector(&self) -> Option<&Detector> {
        Some(&self.detector)
    }

    fn finish(&self, input: Input<'_>, out: &mut [f64]) -> Result<()> {
        out[0] = expect_sums(input)?[0];
        Ok(())
    }
}

/// Whether angle `phi` (degrees) lies in [lo, hi) modulo 360.
pub(crate) fn in_sector(phi: f64, lo: f64, hi: f64) -> bool {
    (phi - lo).rem_euclid(360.0) < hi - lo || hi - lo >= 360.0
}

fn build(req: &Request, _: &str, g: &Geometry) -> Result<Box<dyn Reducer>> {
    let p = req.polarroi.ok_or_else(|| {
        Error::request(
            "polarroi",
            "algo=polarroi needs polarroi=cx,cy;qmin,qmax;phimin,phimax",
        )
    })?;
    let l = labels(g, |x, y| {
        let (dx, dy) = (x - p.cx, y - p.cy);
        let r = dx.hypot(dy);
        (r >= p.qmin && r < p.qmax && in_sector(dy.atan2(dx).to_degrees(), p.phimin, p.phimax))
            .then_some(0)
    });
    if l.iter().all(|&l| l == crate::geometry::NONE) {
        return Err(Error::request(
            "polarroi",
            "the sector holds no pixel of the processed frame: check its centre and radii",
        ));
    }
    Ok(Box::new(PolarRoi {
        detector: Detector {
            labels: Some(l),
            n_labels: 1,
            moments: false,
        },
    }))
}

inventory::submit! {
    AlgorithmInfo {
        name: "polarroi",
        signals: &["Itot"],
        doc: "total inside a polar sector cx,cy;qmin,qmax;phimin,phimax (processed pixels, degrees; the centre may lie off the frame)",
        build,
    }
}
