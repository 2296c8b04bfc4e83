//! `brightfield`: the whole processed frame. `Itot` (sum), `Imax` (largest processed pixel),
//! `comh`/`comv` (centre of mass, processed column/row), `dpc` (the centre of mass's shift
//! from the processed frame's centre as [magnitude in pixels, angle in degrees from +x]).

use super::{expect_sums, moments, AlgorithmInfo, Input, Reducer};
use crate::geometry::{Detector, Geometry};
use crate::request::Request;
use crate::Result;

struct Brightfield {
    signal: String,
    detector: Detector,
    centre: (f64, f64),
}

impl Reducer for Brightfield {
    fn value_shape(&self) -> Vec<usize> {
        if self.signal == "dpc" {
            vec![2]
        } else {
            vec![]
        }
    }

    fn value_axes(&self) -> Vec<(String, Vec<f64>)> {
        if self.signal == "dpc" {
            vec![("dpc".into(), vec![0.0, 1.0])]
        } else {
            vec![]
        }
    }

    fn detector(&self) -> Option<&Detector> {
        (self.signal != "Imax").then_some(&self.detector)
    }

    fn finish(&self, input: Input<'_>, out: &mut [f64]) -> Result<()> {
        if self.signal == "Imax" {
            let Input::Processed(p) = input else {
                return Err(crate::Error::Source(
                    "internal: Imax needs the processed frame".into(),
                ));
            };
            out[0] = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            return Ok(());
        }
        let [s, h, v] = moments(expect_sums(input)?);
        match self.signal.as_str() {
            "Itot" => out[0] = s,
            "comh" => out[0] = h,
            "comv" => out[0] = v,
            _ => {
                let (dx, dy) = (h - self.centre.0, v - self.centre.1);
                out[0] = dx.hypot(dy);
                out[1] = dy.atan2(dx).to_degrees();
            }
        }
        Ok(())
    }
}

fn build(_: &Request, signal: &str, g: &Geometry) -> Result<Box<dyn Reducer>> {
    Ok(Box::new(Brightfield {
        signal: signal.into(),
        detector: Detector {
            labels: None,
            n_labels: 1,
            moments: signal != "Itot",
        },
        centre: ((g.out_w as f64 - 1.0) / 2.0, (g.out_h as f64 - 1.0) / 2.0),
    }))
}

inventory::submit! {
    AlgorithmInfo {
        name: "brightfield",
        signals: &["Itot", "Imax", "comh", "comv", "dpc"],
        doc: "the whole processed frame: total, maximum, centre of mass (processed column, row), DPC shift from the frame centre [magnitude, angle°]",
        build,
    }
}
