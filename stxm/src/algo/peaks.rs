//! `hits` (peaks the writer's finder found per frame) and `bragg` (summed intensity of the
//! peak windows), read from a roibin chunk's frame facts and windows: the background is not
//! decoded. Only for ROIBIN-compressed scans.

use super::{AlgorithmInfo, Input, Reducer};
use crate::geometry::{valid, Geometry};
use crate::request::Request;
use crate::{Error, Result};

struct Peaks {
    bragg: bool,
}

impl Reducer for Peaks {
    fn value_shape(&self) -> Vec<usize> {
        vec![]
    }

    fn needs_parts(&self) -> bool {
        true
    }

    fn finish(&self, input: Input<'_>, out: &mut [f64]) -> Result<()> {
        let Input::Parts(parts, f) = input else {
            return Err(Error::Source(
                "hits and bragg read roibin-compressed frames: this scan is not stored with roibin"
                    .into(),
            ));
        };
        let info = &parts.infos[f];
        out[0] = if self.bragg {
            let (dtype, mut sum) = (parts.meta.dtype, 0.0);
            parts.for_each_window_pixel(f, |_, _, v| sum += valid(v, dtype));
            sum
        } else {
            info.found as f64
        };
        Ok(())
    }
}

fn build(req: &Request, _: &str, _: &Geometry) -> Result<Box<dyn Reducer>> {
    Ok(Box::new(Peaks {
        bragg: req.algo == "bragg",
    }))
}

inventory::submit! {
    AlgorithmInfo {
        name: "hits",
        signals: &["peaks"],
        doc: "peaks found per frame by the writer's finder (roibin-compressed scans; no background decoded)",
        build,
    }
}

inventory::submit! {
    AlgorithmInfo {
        name: "bragg",
        signals: &["Iwin"],
        doc: "summed intensity of each frame's peak windows (roibin-compressed scans; no background decoded)",
        build,
    }
}
