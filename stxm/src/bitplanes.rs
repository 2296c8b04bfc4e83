//! `Itot` of a bitshuffled block straight from its bit planes, without transposing it back.
//!
//! A bitshuffled block of `m` elements of `B` bytes is `8·B` planes of `m/8` bytes: plane `k`
//! holds bit `k` of every element (element `j` at bit `j % 8` of byte `j / 8`). So the sum of
//! the elements is `Σ_k 2^k · popcount(plane k)`: a pass of population counts instead of the
//! transpose and a pass of additions. Detector sentinels (the type's maximum: every bit set)
//! count as 0, as in [`crate::geometry::valid`]; they are found as the bits set in every plane,
//! which only needs computing when the top plane is not empty.

/// Sum of the `m` elements (of `elem` bytes) in the bitshuffled block `bits`, sentinels (the
/// type's maximum: what [`crate::geometry::valid`] flags for u16 and u32) as 0,
/// leaving out the elements whose bit is set in `masked` (`m / 8` bytes, element `j` at bit
/// `j % 8` of byte `j / 8`, as in a plane).
pub fn block_sum(bits: &[u8], elem: usize, m: usize, masked: Option<&[u8]>) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("popcnt") {
        // SAFETY: the CPU has POPCNT (checked just above), all `block_sum_popcnt` asks for.
        return unsafe { block_sum_popcnt(bits, elem, m, masked) };
    }
    block_sum_body(bits, elem, m, masked)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn block_sum_popcnt(bits: &[u8], elem: usize, m: usize, masked: Option<&[u8]>) -> u64 {
    block_sum_body(bits, elem, m, masked)
}

#[inline(always)]
fn block_sum_body(bits: &[u8], elem: usize, m: usize, masked: Option<&[u8]>) -> u64 {
    let (planes, row) = (8 * elem, m / 8);
    assert!(
        m % 8 == 0 && bits.len() >= planes * row,
        "a whole bitshuffled block"
    );
    let keep = masked.filter(|k| k.iter().any(|&b| b != 0));
    assert!(keep.is_none_or(|k| k.len() == row), "a mask row per block");
    let plane = |k: usize| &bits[k * row..(k + 1) * row];
    let (mut sum, mut top) = (0u64, 0u64);
    for k in 0..planes {
        top = ones(plane(k), keep);
        sum += top << k;
    }
    // Sentinels (every bit set) have the top bit set: with an empty top plane there are none.
    if top > 0 {
        let mut all = plane(0).to_vec();
        for k in 1..planes {
            all.iter_mut().zip(plane(k)).for_each(|(a, b)| *a &= b);
        }
        let max = (1u64 << planes) - 1;
        sum -= ones(&all, keep) * max;
    }
    sum
}

/// Set bits of `p` whose bit in `masked` is clear. Plain loops over 8-byte words: iterator
/// adaptors such as `sum` compile to functions of their own, without the caller's POPCNT.
#[inline(always)]
fn ones(p: &[u8], masked: Option<&[u8]>) -> u64 {
    let word = |c: &[u8]| u64::from_le_bytes(c.try_into().expect("8"));
    let mut n = 0u64;
    match masked {
        None => {
            for c in p.chunks_exact(8) {
                n += word(c).count_ones() as u64;
            }
            for &b in p.chunks_exact(8).remainder() {
                n += b.count_ones() as u64;
            }
        }
        Some(masked) => {
            for (c, m) in p.chunks_exact(8).zip(masked.chunks_exact(8)) {
                n += (word(c) & !word(m)).count_ones() as u64;
            }
            let tail = p.len() / 8 * 8;
            for (&b, &m) in p[tail..].iter().zip(&masked[tail..]) {
                n += (b & !m).count_ones() as u64;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use roibin_compressors::bitshuffle::Bitshuffle;
    use roibin_compressors::permute::Permutation;

    #[test]
    fn plane_sums_equal_the_elements_sums() {
        let mut x = 99u64;
        for elem in [1usize, 2, 4] {
            for m in [8usize, 64, 128, 2048] {
                let max = (1u64 << (8 * elem)) - 1;
                let vals: Vec<u64> = (0..m)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        match x % 10 {
                            0 => max,            // a sentinel
                            1 => (x >> 8) & max, // any value
                            _ => (x >> 8) % 7,   // a few photons
                        }
                    })
                    .collect();
                let bytes: Vec<u8> = vals
                    .iter()
                    .flat_map(|v| v.to_le_bytes()[..elem].to_vec())
                    .collect();
                let mut bits = vec![0u8; bytes.len()];
                Bitshuffle {
                    block: m,
                    threads: 1,
                }
                .forward(&bytes, elem, &mut bits);
                let masked: Vec<usize> = (0..m).filter(|j| j % 13 == 5).collect();
                let mut mask_row = vec![0u8; m / 8];
                masked.iter().for_each(|j| mask_row[j / 8] |= 1 << (j % 8));
                let want: u64 = vals
                    .iter()
                    .enumerate()
                    .filter(|(j, &v)| v != max && !masked.contains(j))
                    .map(|(_, &v)| v)
                    .sum();
                assert_eq!(
                    block_sum(&bits, elem, m, Some(&mask_row)),
                    want,
                    "elem {elem}, m {m}"
                );
                let all: u64 = vals.iter().filter(|&&v| v != max).sum();
                assert_eq!(block_sum(&bits, elem, m, None), all, "elem {elem}, m {m}");
            }
        }
    }
}
