//! What a block is, as its first bits say: all zeros, stored raw (a non-finite value, or no
//! precision met the accuracy), or coded with its largest exponent and, in accuracy mode, a
//! precision above the formula's when the check asked for more planes.
//!
//! Two layouts, told apart by the stream's mode byte:
//! - [`Headers::Wide`] (streams written before 2026-12-04): two bits (`00` zero, `01` coded,
//!   `10` raw); a coded block's exponent in 9 bits for f32, 12 otherwise; in accuracy mode one
//!   more bit, set when 7 bits of precision follow. 12 bits for a usual f32 block.
//! - [`Headers::Compact`] (ZFP's size): one bit, 0 for a zero block; a coded block's exponent
//!   follows in 8 bits for f32 (clamped at −126, as ZFP does: a block of subnormals is coded
//!   at the scale of the smallest normal), 12 otherwise. The exponent code 0 is an escape: a
//!   0 bit then means a raw block, a 1 bit a coded block whose exponent and 7 bits of
//!   precision follow. 9 bits for a usual f32 block, ZFP's count.

use crate::bits::{BitReader, BitWriter};
use roibin_registry::{Error, Result};

/// A block's header.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Head {
    Zero,
    Raw,
    /// `precision`: stored when it is not the accuracy formula's.
    Coded {
        emax: i32,
        precision: Option<u32>,
    },
}

/// The header layout of a stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Headers {
    Wide,
    Compact,
}

impl Headers {
    /// Exponent bits for f32 blocks (`f32`) or any other element kind.
    fn ebits(self, f32: bool) -> u32 {
        match (self, f32) {
            (Headers::Wide, true) => 9,
            (Headers::Compact, true) => 8,
            (_, false) => 12,
        }
    }

    /// Stored exponent = emax + bias; the compact layout keeps code 0 for its escape.
    fn bias(self, f32: bool) -> i32 {
        match (self, f32) {
            (Headers::Compact, true) => 127,
            _ => 1 << (self.ebits(f32) - 1),
        }
    }

    /// The smallest exponent a coded block may carry: blocks whose values are smaller are
    /// coded at this one (their values are still below 2^emax).
    pub(super) fn min_emax(self, f32: bool) -> i32 {
        match (self, f32) {
            (Headers::Compact, true) => -126,
            _ => 1 - self.bias(f32),
        }
    }

    /// Write `head`; returns the bits written.
    pub(super) fn write(self, w: &mut BitWriter, f32: bool, head: Head) -> u64 {
        assert_eq!(
            self,
            Headers::Compact,
            "streams are written with compact headers"
        );
        let (eb, bias) = (self.ebits(f32), self.bias(f32));
        let code = |emax: i32| {
            let c = emax + bias;
            debug_assert!(
                c >= 1 && c < 1 << eb,
                "exponent {emax} out of the header's range"
            );
            c as u32
        };
        match head {
            Head::Zero => {
                w.bit(false);
                1
            }
            Head::Coded {
                emax,
                precision: None,
            } => {
                w.bit(true);
                w.put(code(emax), eb);
                1 + eb as u64
            }
            Head::Coded {
                emax,
                precision: Some(p),
            } => {
                w.bit(true);
                w.put(0, eb);
                w.bit(true);
                w.put(code(emax), eb);
                w.put(p, 7);
                2 + 2 * eb as u64 + 7
            }
            Head::Raw => {
                w.bit(true);
                w.put(0, eb);
                w.bit(false);
                2 + eb as u64
            }
        }
    }

    /// Read a header; returns it and the bits read. `accuracy`: the stream is in accuracy
    /// mode (only there does the wide layout carry the precision bit).
    pub(super) fn read(
        self,
        r: &mut BitReader<'_>,
        f32: bool,
        accuracy: bool,
    ) -> Result<(Head, u64)> {
        let (eb, bias) = (self.ebits(f32), self.bias(f32));
        match self {
            Headers::Wide => match r.get(2)? {
                0b00 => Ok((Head::Zero, 2)),
                0b10 => Ok((Head::Raw, 2)),
                0b01 => {
                    let emax = r.get(eb)? as i32 - bias;
                    let precision = if accuracy && r.bit()? {
                        Some(r.get(7)?)
                    } else {
                        None
                    };
                    let bits = 2 + eb as u64 + accuracy as u64 + 7 * precision.is_some() as u64;
                    Ok((Head::Coded { emax, precision }, bits))
                }
                _ => Err(Error::corrupt("zfp", "unknown block header")),
            },
            Headers::Compact => {
                if !r.bit()? {
                    return Ok((Head::Zero, 1));
                }
                let code = r.get(eb)?;
                if code != 0 {
                    let emax = code as i32 - bias;
                    return Ok((
                        Head::Coded {
                            emax,
                            precision: None,
                        },
                        1 + eb as u64,
                    ));
                }
                if !r.bit()? {
                    return Ok((Head::Raw, 2 + eb as u64));
                }
                let code = r.get(eb)?;
                if code == 0 {
                    return Err(Error::corrupt("zfp", "block exponent code 0"));
                }
                let precision = Some(r.get(7)?);
                let head = Head::Coded {
                    emax: code as i32 - bias,
                    precision,
                };
                Ok((head, 2 + 2 * eb as u64 + 7))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of compact header reads back as written, with its bit count, at the ends of
    /// the exponent range.
    #[test]
    fn compact_headers_round_trip() {
        for f32 in [true, false] {
            let h = Headers::Compact;
            let top = (1 << h.ebits(f32)) - 1 - h.bias(f32);
            let heads = [
                Head::Zero,
                Head::Raw,
                Head::Coded {
                    emax: h.min_emax(f32),
                    precision: None,
                },
                Head::Coded {
                    emax: top,
                    precision: None,
                },
                Head::Coded {
                    emax: 3,
                    precision: Some(17),
                },
                Head::Coded {
                    emax: h.min_emax(f32),
                    precision: Some(127),
                },
                Head::Zero,
            ];
            let mut w = BitWriter::default();
            let bits: Vec<u64> = heads.iter().map(|&hd| h.write(&mut w, f32, hd)).collect();
            let bytes = w.finish();
            let mut r = BitReader::new(&bytes, "zfp");
            for (&hd, &b) in heads.iter().zip(&bits) {
                assert_eq!(h.read(&mut r, f32, true).unwrap(), (hd, b));
            }
        }
        // f32's exponents fit ZFP's 8 bits: −126 (smallest normal) to 128 (f32::MAX).
        assert_eq!(Headers::Compact.min_emax(true), -126);
        assert_eq!(
            (1 << Headers::Compact.ebits(true)) - 1 - Headers::Compact.bias(true),
            128
        );
    }
}
