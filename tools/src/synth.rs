//! Sample detector data the project makes itself, deterministic from a seed.
//!
//! Eiger-4M-like photon-counting frames: 2167×2070, 2×4 modules of 514×1030 separated by
//! gaps of 37 rows and 10 columns that read the dtype's maximum, sparse Poisson background
//! with a solvent ring, and Bragg-like spots. `float32` frames are the same photons calibrated
//! to 45 ADU each with Gaussian read noise, as a JUNGFRAU-class pipeline writes them.

use roibin_registry::DType;

/// Eiger 4M frame height.
pub const EIGER_ROWS: usize = 2167;
/// Eiger 4M frame width.
pub const EIGER_COLS: usize = 2070;
/// ADU per photon after calibration.
pub const ADU_PER_PHOTON: f32 = 45.0;

/// A small, fast, seedable generator (SplitMix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.f64().max(1e-300);
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * self.f64()).cos()
    }
    /// Poisson with mean `lambda` (inversion for small means, normal approximation above 30).
    pub fn poisson(&mut self, lambda: f64) -> u32 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda > 30.0 {
            return (lambda + lambda.sqrt() * self.normal()).round().max(0.0) as u32;
        }
        let (mut k, p, l) = (0u32, self.f64(), (-lambda).exp());
        let mut cdf = l;
        let mut term = l;
        while p > cdf {
            k += 1;
            term *= lambda / k as f64;
            cdf += term;
            if term < 1e-300 {
                break;
            }
        }
        k
    }
}

/// True where an Eiger 4M has no sensor (module gaps).
pub fn eiger_gap(row: usize, col: usize) -> bool {
    let in_row_gap = (row % (514 + 37)) >= 514;
    let in_col_gap = (col % (1030 + 10)) >= 1030;
    in_row_gap || in_col_gap
}

/// Photon counts of one frame (before dtype conversion); gaps are marked with `u32::MAX`.
pub fn eiger_photons(seed: u64, frame: usize) -> Vec<u32> {
    let (rows, cols) = (EIGER_ROWS, EIGER_COLS);
    let mut rng = Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(frame as u64));
    let (cy, cx) = (rows as f64 / 2.0 + 13.0, cols as f64 / 2.0 - 7.0);
    let mut img: Vec<u32> = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for c in 0..cols {
            if eiger_gap(r, c) {
                img.push(u32::MAX);
                continue;
            }
            let rad = ((r as f64 - cy).powi(2) + (c as f64 - cx).powi(2)).sqrt();
            // Background 0.03–0.3 photons/pixel: air scatter falling off plus a solvent ring.
            let lam =
                0.03 + 0.12 * (-rad / 600.0).exp() + 0.15 * (-((rad - 520.0) / 60.0).powi(2)).exp();
            img.push(rng.poisson(lam));
        }
    }
    // Bragg-like spots with log-distributed intensities, a few pixels wide.
    let spots = 40 + (rng.next_u64() % 60) as usize;
    for _ in 0..spots {
        let (sy, sx) = (rng.f64() * rows as f64, rng.f64() * cols as f64);
        let total = (rng.f64() * 9.0).exp() * 5.0;
        let sigma = 0.7 + rng.f64() * 0.8;
        for dy in -4i64..=4 {
            for dx in -4i64..=4 {
                let (y, x) = (sy as i64 + dy, sx as i64 + dx);
                if y < 0 || x < 0 || y >= rows as i64 || x >= cols as i64 {
                    continue;
                }
                let i = y as usize * cols + x as usize;
                if img[i] == u32::MAX {
                    continue;
                }
                let (fy, fx) = (y as f64 + 0.5 - sy, x as f64 + 0.5 - sx);
                let w = (-(fy * fy + fx * fx) / (2.0 * sigma * sigma)).exp()
                    / (std::f64::consts::TAU * sigma * sigma);
                img[i] += rng.poisson(total * w);
            }
        }
    }
    img
}

/// One frame as little-endian bytes of `dtype` (u16/u32 counts, or f32 calibrated ADU).
pub fn eiger_frame(seed: u64, frame: usize, dtype: DType) -> Vec<u8> {
    let photons = eiger_photons(seed, frame);
    let mut rng = Rng::new(seed ^ 0xF10A7 ^ (frame as u64) << 20);
    match dtype {
        DType::U16 => photons
            .iter()
            .flat_map(|&p| (p.min(u16::MAX as u32) as u16).to_le_bytes())
            .collect(),
        DType::U32 => photons.iter().flat_map(|&p| p.to_le_bytes()).collect(),
        DType::F32 => photons
            .iter()
            .flat_map(|&p| {
                let v = if p == u32::MAX {
                    0.0
                } else {
                    p as f32 * ADU_PER_PHOTON + 4.0 * rng.normal() as f32
                };
                v.to_le_bytes()
            })
            .collect(),
        other => panic!("eiger frames come as u16, u32 or f32, not {other}"),
    }
}
