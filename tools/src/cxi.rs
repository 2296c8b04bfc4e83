//! Calibrated serial-crystallography frames in the CXI layout, deterministic from a seed.
//!
//! Two detector layouts: JUNGFRAU-4M-like (8 modules of 512×1024) and CSPAD-like (32 panels of
//! 185×388). Frames are stored raw (panels stacked along rows, as CXI files from Cheetah and
//! psana keep them); the panels sit on a lab grid with gaps around the beam, which fixes each
//! pixel's radius. Per frame: Poisson photons over air scatter and a solvent ring (0.05–0.3
//! photons per pixel on average), 20–80 Bragg peaks with log-distributed intensities (many
//! too weak for any finder), 45 ADU per photon, Gaussian read noise, and a fixed set of bad
//! pixels (dead or hot) that the mask marks.

use crate::synth::{Rng, ADU_PER_PHOTON};

/// Read noise, in ADU (≈0.12 photon).
pub const READ_NOISE_ADU: f64 = 5.4;

/// A detector's raw layout and where its panels sit in the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detector {
    pub name: &'static str,
    pub panels: usize,
    pub rows: usize,
    pub cols: usize,
    /// Panels per lab row and column of the grid.
    grid: (usize, usize),
    gap: usize,
}

impl Detector {
    pub const JUNGFRAU_4M: Detector = Detector {
        name: "jungfrau",
        panels: 8,
        rows: 512,
        cols: 1024,
        grid: (4, 2),
        gap: 36,
    };
    pub const CSPAD: Detector = Detector {
        name: "cspad",
        panels: 32,
        rows: 185,
        cols: 388,
        grid: (8, 4),
        gap: 12,
    };

    pub fn by_name(s: &str) -> Option<Detector> {
        match s {
            "jungfrau" => Some(Self::JUNGFRAU_4M),
            "cspad" => Some(Self::CSPAD),
            _ => None,
        }
    }

    /// Rows of the raw (stacked) frame.
    pub fn frame_rows(&self) -> usize {
        self.panels * self.rows
    }

    pub fn pixels(&self) -> usize {
        self.panels * self.rows * self.cols
    }

    /// Lab position (row, col) of raw pixel (y, x).
    fn lab(&self, y: usize, x: usize) -> (f64, f64) {
        let (p, r) = (y / self.rows, y % self.rows);
        let (gy, gx) = (p / self.grid.1, p % self.grid.1);
        (
            (gy * (self.rows + self.gap) + r) as f64,
            (gx * (self.cols + self.gap) + x) as f64,
        )
    }

    /// Beam position in the lab: near the middle, off any pixel centre.
    fn beam(&self) -> (f64, f64) {
        let h = self.grid.0 * (self.rows + self.gap) - self.gap;
        let w = self.grid.1 * (self.cols + self.gap) - self.gap;
        (h as f64 / 2.0 + 7.3, w as f64 / 2.0 - 4.1)
    }

    /// Distance of every raw pixel from the beam, in pixels.
    pub fn radius_map(&self) -> Vec<f32> {
        let (by, bx) = self.beam();
        (0..self.pixels())
            .map(|i| {
                let (ly, lx) = self.lab(i / self.cols, i % self.cols);
                ((ly - by).powi(2) + (lx - bx).powi(2)).sqrt() as f32
            })
            .collect()
    }

    /// 1 = good pixel; 0.2% of pixels (fixed by `seed`) are bad, plus the outermost border.
    pub fn mask(&self, seed: u64) -> Vec<u8> {
        let mut rng = Rng::new(seed ^ 0x3A5C);
        (0..self.pixels())
            .map(|i| {
                let (r, c) = ((i / self.cols) % self.rows, i % self.cols);
                let edge = r == 0 || c == 0 || r == self.rows - 1 || c == self.cols - 1;
                u8::from(!edge && rng.f64() >= 0.002)
            })
            .collect()
    }
}

/// A peak as generated: raw-frame centroid and total signal in ADU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TruePeak {
    pub y: f32,
    pub x: f32,
    pub adu: f32,
}

/// One calibrated frame (f32 ADU, raw layout) and its true peaks.
pub fn frame(
    det: &Detector,
    seed: u64,
    index: usize,
    mask: &[u8],
    radius: &[f32],
) -> (Vec<f32>, Vec<TruePeak>) {
    let mut rng = Rng::new(seed.wrapping_mul(0x51_7CC1).wrapping_add(index as u64 + 1));
    let rmax = radius.iter().cloned().fold(0f32, f32::max) as f64;
    let level = 0.03 + 0.12 * rng.f64();
    let ring_r = rmax * (0.28 + 0.06 * rng.f64());
    let ring_w = rmax * 0.05;
    let ring_amp = 0.15 + 0.2 * rng.f64();
    let mut photons: Vec<f64> = radius
        .iter()
        .map(|&r| {
            let r = r as f64;
            let lam = level * (0.5 + (-r / (0.6 * rmax)).exp())
                + ring_amp * (-((r - ring_r) / ring_w).powi(2)).exp();
            rng.poisson(lam) as f64
        })
        .collect();
    let npeaks = 20 + (rng.next_u64() % 61) as usize;
    let mut truth = Vec::with_capacity(npeaks);
    for _ in 0..npeaks {
        let p = (rng.next_u64() % det.panels as u64) as usize;
        let sy = 3.0 + rng.f64() * (det.rows - 7) as f64;
        let sx = 3.0 + rng.f64() * (det.cols - 7) as f64;
        // log-uniform total from 3 to 5000 photons.
        let total = (3f64.ln() + rng.f64() * (5000f64 / 3.0).ln()).exp();
        let sigma = 0.6 + rng.f64() * 0.6;
        let mut got = 0.0;
        for dy in -4i64..=4 {
            for dx in -4i64..=4 {
                let (y, x) = (sy.round() as i64 + dy, sx.round() as i64 + dx);
                if y < 0 || x < 0 || y >= det.rows as i64 || x >= det.cols as i64 {
                    continue;
                }
                let (fy, fx) = (y as f64 - sy, x as f64 - sx);
                let w = (-(fy * fy + fx * fx) / (2.0 * sigma * sigma)).exp()
                    / (std::f64::consts::TAU * sigma * sigma);
                let n = rng.poisson(total * w) as f64;
                photons[(p * det.rows + y as usize) * det.cols + x as usize] += n;
                got += n;
            }
        }
        truth.push(TruePeak {
            y: (p * det.rows) as f32 + sy as f32,
            x: sx as f32,
            adu: (got * ADU_PER_PHOTON as f64) as f32,
        });
    }
    let mut bad = Rng::new(seed ^ 0xBAD);
    let data = photons
        .iter()
        .zip(mask)
        .map(|(&n, &good)| {
            // Bad pixels: the same ones every frame, dead (near 0) or hot (200–1500 ADU, unstable).
            let hot = bad.f64() < 0.5;
            if good == 0 && hot {
                (200.0 + 1300.0 * bad.f64()) as f32
            } else if good == 0 {
                (READ_NOISE_ADU * rng.normal()) as f32
            } else {
                (n * ADU_PER_PHOTON as f64 + READ_NOISE_ADU * rng.normal()) as f32
            }
        })
        .collect();
    (data, truth)
}
