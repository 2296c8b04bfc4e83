//! A synthetic STXM raster scan with known truth, deterministic from a seed: at every scan
//! point an Eiger-like photon-counting frame of the direct beam (a disc) through a sample.
//!
//! - transmission `T` (0.35–1: a smooth pattern and an absorbing particle) scales the beam:
//!   Itot follows it;
//! - a phase gradient shifts the beam (up to ±3 pixels): comh/comv follow the shift;
//! - three crystalline grains (discs in the scan) each add one Bragg peak at their own place
//!   on the detector, outside the beam: a polar sector around it lights up exactly where the
//!   grain was planted;
//! - a gap row reads `u32::MAX` (u16: 0xFFFF) and is marked in the DECTRIS `pixel_mask`.

use crate::synth::Rng;
use roibin_registry::DType;

/// What is planted at one scan point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Truth {
    pub transmission: f64,
    pub shift_x: f64,
    pub shift_y: f64,
    /// Grain number (1-based), 0 for none.
    pub grain: u8,
}

/// A grain: (centre row, centre col, radius) in scan points, its peak (x, y) on the detector.
pub type Grain = ((f64, f64, f64), (f64, f64));

/// The sample and the detector.
#[derive(Debug, Clone)]
pub struct Scan {
    pub rows: usize,
    pub cols: usize,
    pub height: usize,
    pub width: usize,
    pub seed: u64,
}

/// Photons per beam pixel at full transmission.
const BEAM: f64 = 40.0;
/// Beam disc radius in pixels, as a fraction of the frame.
const BEAM_RADIUS: f64 = 0.12;
/// Background photons per pixel.
const BACKGROUND: f64 = 0.05;

impl Scan {
    /// The grains, each (centre row, centre col, radius) in scan points and its peak (x, y)
    /// on the detector.
    pub fn grains(&self) -> Vec<Grain> {
        let (r, c) = (self.rows as f64, self.cols as f64);
        let (h, w) = (self.height as f64, self.width as f64);
        let size = (r.min(c) / 7.0).max(1.0);
        vec![
            ((0.25 * r, 0.3 * c, size), (0.82 * w, 0.5 * h)),
            ((0.7 * r, 0.25 * c, size), (0.5 * w, 0.15 * h)),
            ((0.55 * r, 0.75 * c, size * 1.2), (0.2 * w, 0.78 * h)),
        ]
    }

    /// The beam centre (x, y) without a shift.
    pub fn centre(&self) -> (f64, f64) {
        (
            self.width as f64 / 2.0 - 0.5,
            self.height as f64 / 2.0 - 0.5,
        )
    }

    /// The gap row (every pixel of it flagged).
    pub fn gap_row(&self) -> usize {
        self.height * 2 / 3
    }

    pub fn truth(&self, i: usize, j: usize) -> Truth {
        let (y, x) = (i as f64 / self.rows as f64, j as f64 / self.cols as f64);
        let tau = std::f64::consts::TAU;
        let particle = ((y - 0.6).powi(2) + (x - 0.55).powi(2)).sqrt() < 0.18;
        let transmission =
            (0.8 + 0.15 * (tau * x).cos() * (tau * y).sin()) * if particle { 0.5 } else { 1.0 };
        // Phase: a Gaussian bump; the beam moves along its gradient.
        let g = (-((x - 0.4).powi(2) + (y - 0.45).powi(2)) / 0.05).exp();
        let shift_x = -3.0 * (x - 0.4) / 0.25 * g;
        let shift_y = -3.0 * (y - 0.45) / 0.25 * g;
        let grain = self
            .grains()
            .iter()
            .position(|&((gr, gc, rad), _)| (i as f64 - gr).hypot(j as f64 - gc) <= rad)
            .map_or(0, |k| k as u8 + 1);
        Truth {
            transmission,
            shift_x,
            shift_y,
            grain,
        }
    }

    /// Photon counts of the frame at scan point (i, j); the gap row reads `u32::MAX`.
    pub fn photons(&self, i: usize, j: usize) -> Vec<u32> {
        let t = self.truth(i, j);
        let (h, w) = (self.height, self.width);
        let mut rng = Rng::new(
            self.seed
                .wrapping_mul(7_919)
                .wrapping_add((i * self.cols + j) as u64),
        );
        let (cx, cy) = self.centre();
        let (bx, by) = (cx + t.shift_x, cy + t.shift_y);
        let radius = BEAM_RADIUS * h.min(w) as f64;
        let grains = self.grains();
        let mut img = Vec::with_capacity(h * w);
        for y in 0..h {
            for x in 0..w {
                if y == self.gap_row() {
                    img.push(u32::MAX);
                    continue;
                }
                let mut lam = BACKGROUND;
                let d = (x as f64 - bx).hypot(y as f64 - by);
                // A soft edge keeps the centre of mass a smooth function of the shift.
                lam += BEAM * t.transmission * (1.0 - (d - radius).clamp(-0.5, 0.5) - 0.5);
                if t.grain > 0 {
                    let (px, py) = grains[t.grain as usize - 1].1;
                    let r2 = (x as f64 - px).powi(2) + (y as f64 - py).powi(2);
                    lam += 60.0 * (-r2 / (2.0 * 1.5 * 1.5)).exp();
                }
                img.push(rng.poisson(lam));
            }
        }
        img
    }

    /// The frame as little-endian bytes of `dtype` (u16 or u32).
    pub fn frame(&self, i: usize, j: usize, dtype: DType) -> Vec<u8> {
        let p = self.photons(i, j);
        match dtype {
            DType::U16 => p
                .iter()
                .flat_map(|&v| (v.min(u16::MAX as u32) as u16).to_le_bytes())
                .collect(),
            _ => p.iter().flat_map(|&v| v.to_le_bytes()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grains_light_their_peak_and_shifts_move_the_beam() {
        let s = Scan {
            rows: 16,
            cols: 16,
            height: 64,
            width: 64,
            seed: 3,
        };
        let grain_points: Vec<(usize, usize)> = (0..16)
            .flat_map(|i| (0..16).map(move |j| (i, j)))
            .filter(|&(i, j)| s.truth(i, j).grain > 0)
            .collect();
        assert!(grain_points.len() >= 6, "{}", grain_points.len());
        let (i, j) = grain_points[0];
        let g = s.truth(i, j).grain as usize - 1;
        let (px, py) = s.grains()[g].1;
        let f = s.photons(i, j);
        assert!(f[py.round() as usize * 64 + px.round() as usize] > 30);
        assert!(s.photons(i, j)[s.gap_row() * 64] == u32::MAX);
    }
}
