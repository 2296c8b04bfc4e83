//! Test data shared by the integration tests: small detector frames with planted peaks.
#![allow(dead_code)]

/// Small frames: `panels` panels of 64×96, Poisson-ish background, peaks planted at known
/// places (returned as stacked-frame centres).
pub fn frame(panels: usize, seed: u64) -> (Vec<f32>, Vec<(usize, usize)>) {
    let (rows, cols) = (64, 96);
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut rnd = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) as f64 / (1u64 << 31) as f64
    };
    let mut v: Vec<f32> = (0..panels * rows * cols)
        .map(|_| {
            let photons = if rnd() < 0.1 { 45.0 } else { 0.0 };
            (photons + 5.0 * (rnd() - 0.5)) as f32
        })
        .collect();
    let mut centres = vec![];
    for p in 0..panels {
        // Away from the frame centre: pf8's radial bins near the beam hold too few pixels.
        for (y, x) in [(10usize, 15usize), (20, 80), (54, 20)] {
            for dy in -1i64..=1 {
                for dx in -1i64..=1 {
                    let w = if dy == 0 && dx == 0 { 4000.0 } else { 1500.0 };
                    let i = (p * rows + (y as i64 + dy) as usize) * cols + (x as i64 + dx) as usize;
                    v[i] += w;
                }
            }
            centres.push((p * rows + y, x));
        }
    }
    (v, centres)
}

pub fn bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn floats(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}
