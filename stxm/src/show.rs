//! Frames to look at (dada's `show` and `multi`): one frame, or a stack operation over several
//! (sum, mean, min, max), or a grid of consecutive frames, through the same pre-processing as
//! a map (ROI, binning, mask, empty-beam division, difference).

use crate::engine::{frame_values, prepare_geometry};
use crate::request::Request;
use crate::source::Source;
use crate::{Error, Result};

/// A 2-D picture of values, C order.
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    pub height: usize,
    pub width: usize,
    pub values: Vec<f64>,
}

/// How frames of a stack combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackOp {
    Sum,
    Mean,
    Min,
    Max,
}

impl StackOp {
    /// `sum`, `mean` (or `avg`), `min`, `max`.
    pub fn parse(s: &str) -> Result<StackOp> {
        Ok(match s {
            "sum" => StackOp::Sum,
            "mean" | "avg" => StackOp::Mean,
            "min" => StackOp::Min,
            "max" => StackOp::Max,
            _ => {
                return Err(Error::request(
                    "stack",
                    format!("`{s}`: give N,sum|mean|min|max"),
                ))
            }
        })
    }
}

/// Most frames one picture may combine.
pub const MAX_FRAMES: usize = 4096;

/// What showing frames of a source needs, prepared once: the source's facts and the
/// request's pre-processing (mask, empty-beam and difference images read and folded in).
pub struct Viewer {
    pub info: crate::source::Info,
    pub geometry: crate::geometry::Geometry,
}

impl Viewer {
    pub fn new(source: &mut dyn Source, req: &Request) -> Result<Viewer> {
        let info = source.info().clone();
        let geometry = prepare_geometry(req, source, &info)?;
        Ok(Viewer { info, geometry })
    }

    /// Frame `frame` (or `count` frames from it combined by `op`), pre-processed.
    pub fn show(
        &self,
        source: &mut dyn Source,
        frame: usize,
        count: usize,
        op: StackOp,
    ) -> Result<Picture> {
        if count == 0 || count > MAX_FRAMES {
            return Err(Error::request(
                "stack",
                format!("{count} frames: 1 to {MAX_FRAMES} per picture"),
            ));
        }
        let info = &self.info;
        if frame + count > info.frames {
            return Err(Error::request(
                "frame",
                format!(
                    "frames {frame}..{} are past the source's {}",
                    frame + count,
                    info.frames
                ),
            ));
        }
        let g = &self.geometry;
        let mut acc: Option<Vec<f64>> = None;
        for n in frame..frame + count {
            let p = g.process(&frame_values(source, info, n, "frame")?);
            acc = Some(match acc {
                None => p,
                Some(mut a) => {
                    for (a, v) in a.iter_mut().zip(p) {
                        *a = match op {
                            StackOp::Sum | StackOp::Mean => *a + v,
                            StackOp::Min => a.min(v),
                            StackOp::Max => a.max(v),
                        };
                    }
                    a
                }
            });
        }
        let mut values = acc.expect("count ≥ 1");
        if op == StackOp::Mean {
            values.iter_mut().for_each(|v| *v /= count as f64);
        }
        Ok(Picture {
            height: g.out_h,
            width: g.out_w,
            values,
        })
    }
}

/// Frame `frame` (or `count` frames from it combined by `op`), pre-processed as `req` says.
pub fn show(
    source: &mut dyn Source,
    req: &Request,
    frame: usize,
    count: usize,
    op: StackOp,
) -> Result<Picture> {
    Viewer::new(source, req)?.show(source, frame, count, op)
}

/// `vert × horz` consecutive frames from `first`, each pre-processed, tiled row by row into one
/// picture (one NaN pixel between tiles).
pub fn multi(
    source: &mut dyn Source,
    req: &Request,
    first: usize,
    horz: usize,
    vert: usize,
) -> Result<Picture> {
    if horz == 0 || vert == 0 || horz * vert > MAX_FRAMES {
        return Err(Error::request(
            "horz",
            format!("{horz}×{vert} frames: 1 to {MAX_FRAMES} per picture"),
        ));
    }
    let viewer = Viewer::new(source, req)?;
    let tiles: Vec<Picture> = (0..horz * vert)
        .map(|k| viewer.show(source, first + k, 1, StackOp::Sum))
        .collect::<Result<_>>()?;
    let (th, tw) = (tiles[0].height, tiles[0].width);
    let (h, w) = (vert * (th + 1) - 1, horz * (tw + 1) - 1);
    let mut values = vec![f64::NAN; h * w];
    for (k, t) in tiles.iter().enumerate() {
        let (r0, c0) = ((k / horz) * (th + 1), (k % horz) * (tw + 1));
        for y in 0..th {
            values[(r0 + y) * w + c0..(r0 + y) * w + c0 + tw]
                .copy_from_slice(&t.values[y * tw..(y + 1) * tw]);
        }
    }
    Ok(Picture {
        height: h,
        width: w,
        values,
    })
}
