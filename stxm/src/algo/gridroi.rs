//! `gridroi`: `Itot`, `comh` or `comv` for each rectangle of a grid (multi-order zone-plate
//! imaging), rectangles in processed pixels, com relative to each rectangle's first pixel.
//! Values per scan point: `[ny, nx]`.

use super::{expect_sums, labels, moments, AlgorithmInfo, Input, Reducer};
use crate::geometry::{Detector, Geometry};
use crate::request::{GridRoi, Request};
use crate::{Error, Result};

struct Grid {
    signal: String,
    grid: GridRoi,
    detector: Detector,
}

impl Reducer for Grid {
    fn value_shape(&self) -> Vec<usize> {
        vec![self.grid.ny, self.grid.nx]
    }

    fn detector(&self) -> Option<&Detector> {
        Some(&self.detector)
    }

    fn finish(&self, input: Input<'_>, out: &mut [f64]) -> Result<()> {
        let g = &self.grid;
        for (i, (a, o)) in expect_sums(input)?
            .chunks(3)
            .zip(out.iter_mut())
            .enumerate()
        {
            let [s, h, v] = moments(a);
            let (x0, y0) = (g.first.x + (i % g.nx) * g.dx, g.first.y + (i / g.nx) * g.dy);
            *o = match self.signal.as_str() {
                "Itot" => s,
                "comh" => h - x0 as f64,
                _ => v - y0 as f64,
            };
        }
        Ok(())
    }
}

fn build(req: &Request, signal: &str, g: &Geometry) -> Result<Box<dyn Reducer>> {
    let grid = req.gridroi.ok_or_else(|| {
        Error::request(
            "gridroi",
            "algo=gridroi needs gridroi=x,y,w,h;nx,ny[;dx,dy]",
        )
    })?;
    let r = grid.first;
    let (right, bottom) = (
        r.x + (grid.nx - 1) * grid.dx + r.w,
        r.y + (grid.ny - 1) * grid.dy + r.h,
    );
    if right > g.out_w || bottom > g.out_h {
        return Err(Error::request(
            "gridroi",
            format!(
                "the grid reaches column {right} and row {bottom}, past the {}×{} processed frame",
                g.out_w, g.out_h
            ),
        ));
    }
    let l = labels(g, |x, y| {
        let (x, y) = (x as usize, y as usize);
        let (ix, iy) = (
            (x.checked_sub(r.x)?) / grid.dx.max(1),
            (y.checked_sub(r.y)?) / grid.dy.max(1),
        );
        let inside = ix < grid.nx
            && iy < grid.ny
            && x - r.x - ix * grid.dx < r.w
            && y - r.y - iy * grid.dy < r.h;
        inside.then_some((iy * grid.nx + ix) as u32)
    });
    Ok(Box::new(Grid {
        signal: signal.into(),
        grid,
        detector: Detector {
            labels: Some(l),
            n_labels: grid.nx * grid.ny,
            moments: true,
        },
    }))
}

inventory::submit! {
    AlgorithmInfo {
        name: "gridroi",
        signals: &["Itot", "comh", "comv"],
        doc: "total or centre of mass in each rectangle of a grid x,y,w,h;nx,ny[;dx,dy] (processed pixels; com relative to each rectangle)",
        build,
    }
}
