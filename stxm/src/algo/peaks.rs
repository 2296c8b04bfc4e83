//! `hits` (peaks the writer's finder found per frame) and `bragg` (summed intensity of the
//! peak windows), read from a roibin chunk's frame facts and windows: the background is not
//! decoded. Only for ROIBIN-compressed scans.

use super::{AlgorithmInfo, Input, Reducer};
use crate::geometry::{valid, Geometry};
use crate::request::Request;
use crate::{Error, Result};
use roibin_compressors::detector::roibin::Window;

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
        let Input::Parts(parts, f, rows) = input else {
            return Err(Error::Source(
                "hits and bragg read roibin-compressed frames: this scan is not stored with roibin"
                    .into(),
            ));
        };
        let info = &parts.infos[f];
        let l = parts.layout;
        let whole = rows.start == 0 && rows.end >= l.panels * l.rows;
        out[0] = if self.bragg {
            let (dtype, mut sum) = (parts.meta.dtype, 0.0);
            parts.for_each_window_pixel(f, |y, _, v| {
                if rows.contains(&y) {
                    sum += valid(v, dtype)
                }
            });
            sum
        } else if whole {
            info.found as f64
        } else if info.found == info.windows.len() {
            // A panel of the chunk frame: its peaks are the windows centred in it.
            let inside = |w: &&Window| rows.contains(&(w.y as usize));
            info.windows.iter().filter(inside).count() as f64
        } else {
            return Err(Error::Source(format!(
                "hits: this chunk frame's finder found {} peaks but keeps {} windows, and which \
                 of its scan frames the others were in is not stored (rewrite with one scan \
                 frame per chunk frame)",
                info.found,
                info.windows.len()
            )));
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
