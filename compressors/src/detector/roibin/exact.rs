//! Exact pixels: the pixels of a ROIBIN chunk outside its windows that decode to their
//! original bits: non-finite values, detector sentinels, pixels the mask marks, and outliers
//! (`exact_above`, `exact_below`). Their indices are stored as runs (masks and gaps are long
//! runs of neighbouring pixels), the runs zstd-compressed; their values go through the
//! lossless `roi_codec` graph.
//!
//! ```text
//! u64 count · u64 runs length · u64 compressed length · zstd(runs) · u64 length · values
//! runs: (gap since the previous run's end, run length) pairs, LEB128 varints
//! ```

use super::super::elems;
use roibin_registry::stream::Reader;
use roibin_registry::{DType, Error, Result};

/// Which pixels outside the windows are kept exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// Integer sentinels (negative values, the type's maximum).
    pub sentinels: bool,
    /// Pixels the finder's mask marks bad.
    pub masked: bool,
    /// Pixels above this value.
    pub above: Option<f64>,
    /// Pixels below this value.
    pub below: Option<f64>,
}

/// Sorted frame-relative indices of the flagged pixels of one frame, windows included;
/// `masked` are the mask's bad pixels (sorted). With `copy`, the frame is also appended to it
/// (in the same pass for float32 frames).
pub fn select(
    frame: &[u8],
    dtype: DType,
    masked: &[usize],
    rules: Rules,
    copy: Option<&mut Vec<u8>>,
) -> Vec<usize> {
    let (below, above) = (
        rules.below.unwrap_or(f64::NEG_INFINITY),
        rules.above.unwrap_or(f64::INFINITY),
    );
    let flagged = |x: f64, sentinel: bool| !x.is_finite() || (rules.sentinels && sentinel);
    // Every pixel by the thresholds in one typed pass, then the masked ones put right: a
    // masked pixel is kept or filled as `masked` says, whatever its value (with masked=fill
    // a hot pixel is filled from its neighbours, not stored by `exact_above`: on
    // JUNGFRAU-like frames 96 % of the pixels above 250 ADU are masked hot pixels).
    let by_value = if dtype == DType::F32 {
        elems::f32_indices_outside(frame, below, above, copy)
    } else {
        if let Some(c) = copy {
            c.extend_from_slice(frame);
        }
        elems::indices_where(frame, dtype, |x, sentinel| {
            flagged(x, sentinel) | (x > above) | (x < below)
        })
    };
    if masked.is_empty() {
        return by_value;
    }
    let n = frame.len() / dtype.size();
    let keep_masked = |k: usize, out: &[usize]| {
        // Pixels of the mask past the frame, or listed twice, are nothing to keep.
        let (x, sentinel) = if k < n && out.last() != Some(&k) {
            elems::value_and_sentinel(frame, dtype, k)
        } else {
            return false;
        };
        rules.masked || flagged(x, sentinel)
    };
    let mut out = Vec::with_capacity(by_value.len() + masked.len());
    let (mut a, mut m) = (by_value.iter().peekable(), masked.iter().peekable());
    loop {
        match (a.peek().copied(), m.peek().copied()) {
            (Some(&i), Some(&k)) if i < k => {
                out.push(i);
                a.next();
            }
            (Some(&i), Some(&k)) => {
                if keep_masked(k, &out) {
                    out.push(k);
                }
                if i == k {
                    a.next();
                }
                m.next();
            }
            (Some(&i), None) => {
                out.push(i);
                a.next();
            }
            (None, Some(&k)) => {
                if keep_masked(k, &out) {
                    out.push(k);
                }
                m.next();
            }
            (None, None) => return out,
        }
    }
}

fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(r: &mut Reader) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = r.u8()?;
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(Error::corrupt("roibin", "varint longer than 64 bits"))
}

/// Append the exact pixels `indices` (sorted, chunk-relative) of `data` to `out`, values
/// encoded by `values` (the lossless roi_codec graph for a 1-D array of `n` elements).
pub fn write(
    indices: &[usize],
    data: &[u8],
    es: usize,
    values: impl FnOnce(&[u8], &mut Vec<u8>) -> Result<()>,
    out: &mut Vec<u8>,
) -> Result<()> {
    let mut runs = vec![];
    let mut i = 0;
    let mut end = 0usize;
    while i < indices.len() {
        let start = indices[i];
        let mut len = 1;
        while i + len < indices.len() && indices[i + len] == start + len {
            len += 1;
        }
        put_varint((start - end) as u64, &mut runs);
        put_varint(len as u64, &mut runs);
        end = start + len;
        i += len;
    }
    let packed = zstd::bulk::compress(&runs, 3).map_err(|e| Error::Other(e.to_string()))?;
    out.extend_from_slice(&(indices.len() as u64).to_le_bytes());
    out.extend_from_slice(&(runs.len() as u64).to_le_bytes());
    out.extend_from_slice(&(packed.len() as u64).to_le_bytes());
    out.extend_from_slice(&packed);
    let mut vals = Vec::with_capacity(indices.len() * es);
    for &k in indices {
        vals.extend_from_slice(&data[k * es..(k + 1) * es]);
    }
    let mut enc = vec![];
    if !indices.is_empty() {
        values(&vals, &mut enc)?;
    }
    out.extend_from_slice(&(enc.len() as u64).to_le_bytes());
    out.extend_from_slice(&enc);
    Ok(())
}

/// The exact pixels of a stream: chunk-relative indices (sorted, each below `pixels`) and the
/// encoded values. Sizes are checked against the chunk before anything is allocated.
pub struct Parsed<'a> {
    pub indices: Vec<usize>,
    pub values: &'a [u8],
}

pub fn read<'a>(r: &mut Reader<'a>, pixels: usize) -> Result<Parsed<'a>> {
    let bad = |m: &str| Error::corrupt("roibin", m.to_string());
    let n = r.len_at_most(pixels)?;
    // Two varints of at most 10 bytes per run, at most one run per pixel.
    let runs_len = r.len_at_most(n.saturating_mul(20))?;
    let packed_len = r.len_at_most(usize::MAX)?;
    let packed = r.take(packed_len)?;
    let mut runs = vec![0u8; runs_len];
    let got = crate::zstd::block_into(packed, &mut runs[..])
        .map_err(|e| Error::corrupt("roibin", format!("exact pixel runs: {e}")))?;
    if got != runs_len {
        return Err(bad("exact pixel runs shorter than recorded"));
    }
    let mut rr = Reader::new(&runs, "roibin");
    let mut indices = Vec::with_capacity(n);
    let mut end = 0usize;
    while !rr.is_empty() {
        let start = end
            .checked_add(get_varint(&mut rr)? as usize)
            .ok_or_else(|| bad("exact pixel index overflows"))?;
        let len = get_varint(&mut rr)? as usize;
        end = start
            .checked_add(len)
            .filter(|&e| e <= pixels && indices.len() + len <= n)
            .ok_or_else(|| bad("exact pixel run outside the chunk"))?;
        indices.extend(start..end);
    }
    if indices.len() != n {
        return Err(bad("exact pixel runs do not add up to their count"));
    }
    let vl = r.len_at_most(usize::MAX)?;
    Ok(Parsed {
        indices,
        values: r.take(vl)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_pixels_follow_the_masked_rule_not_the_thresholds() {
        let v = [1.0, 900.0, 900.0, -50.0, f64::NAN, 5.0];
        let frame: Vec<u8> = v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect();
        let masked = [2, 3, 5];
        let rules = |masked| Rules {
            sentinels: true,
            masked,
            above: Some(250.0),
            below: Some(-10.0),
        };
        // fill: the hot (2), cold (3) and quiet (5) masked pixels are filled, not kept; the
        // unmasked outlier (1) and the NaN (4) are kept.
        assert_eq!(
            select(&frame, DType::F32, &masked, rules(false), None),
            [1, 4]
        );
        // keep: every masked pixel is kept too.
        assert_eq!(
            select(&frame, DType::F32, &masked, rules(true), None),
            [1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn runs_round_trip_and_are_compact() {
        let pixels = 2167 * 2070;
        // Module gaps of an EIGER 4M: whole rows and short column runs, 10 frames' worth.
        let mut idx = vec![];
        for r in 0..2167usize {
            for c in 0..2070usize {
                if r % 551 >= 514 || c % 1040 >= 1030 {
                    idx.push(r * 2070 + c);
                }
            }
        }
        let data = vec![0xffu8; pixels * 2];
        let mut out = vec![];
        write(
            &idx,
            &data,
            2,
            |v, o| {
                o.extend_from_slice(&zstd::bulk::compress(v, 3).unwrap());
                Ok(())
            },
            &mut out,
        )
        .unwrap();
        // ~ 110 000 gap pixels: far below a byte each.
        assert!(
            out.len() < idx.len() / 20,
            "{} bytes for {}",
            out.len(),
            idx.len()
        );
        let mut r = Reader::new(&out, "t");
        let p = read(&mut r, pixels).unwrap();
        assert_eq!(p.indices, idx);
        // A count beyond the chunk is refused before allocating.
        assert!(read(&mut Reader::new(&out, "t"), idx.len() - 1).is_err());
    }
}
