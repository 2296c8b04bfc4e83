//! `bitshuffle(block, threads)`: bit-plane transpose inside blocks of elements, so that the
//! mostly-zero high bits of photon counts become long runs of zero bytes.
//!
//! Layout of one block of `m` elements (m a multiple of 8) of `n` bytes: `8n` rows of `m/8`
//! bytes; row `8b + k` holds bit `k` of byte `b` of every element. A final run of fewer than 8
//! elements is copied as is.

use rayon::prelude::*;
use roibin_registry::options::THREADS;
use roibin_registry::{
    threads, Accepts, Codec, CodecInfo, Config, DataKind, Error, OptionSpec, OptionType, Result,
};

/// Bitshuffle configuration.
#[derive(Debug, Clone)]
pub struct Bitshuffle {
    /// Elements per block (multiple of 8); 0 = 8 KiB worth of elements.
    pub block: usize,
    pub threads: usize,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "block",
        ty: OptionType::Int {
            min: 0,
            max: 1 << 24,
        },
        default: "0",
        doc:
            "elements per block, a multiple of 8 (0 = 8 KiB of elements, as the bitshuffle library)",
    },
    THREADS,
];

/// Transpose the 8×8 bit matrix held in `x` (byte i = row i).
#[inline]
fn transpose8(mut x: u64) -> u64 {
    let t = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AA;
    x = x ^ t ^ (t << 7);
    let t = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCC;
    x = x ^ t ^ (t << 14);
    let t = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0;
    x ^ t ^ (t << 28)
}

fn shuffle_block(src: &[u8], elem: usize, dst: &mut [u8]) {
    let m = src.len() / elem;
    let row = m / 8;
    for g in 0..row {
        let base = g * 8 * elem;
        for b in 0..elem {
            let mut x = 0u64;
            for i in 0..8 {
                x |= (src[base + i * elem + b] as u64) << (8 * i);
            }
            let y = transpose8(x).to_le_bytes();
            for k in 0..8 {
                dst[(b * 8 + k) * row + g] = y[k];
            }
        }
    }
}

fn unshuffle_block(src: &[u8], elem: usize, dst: &mut [u8]) {
    let m = src.len() / elem;
    let row = m / 8;
    for g in 0..row {
        let base = g * 8 * elem;
        for b in 0..elem {
            let mut y = [0u8; 8];
            for (k, v) in y.iter_mut().enumerate() {
                *v = src[(b * 8 + k) * row + g];
            }
            let x = transpose8(u64::from_le_bytes(y));
            for i in 0..8 {
                dst[base + i * elem + b] = (x >> (8 * i)) as u8;
            }
        }
    }
}

impl Bitshuffle {
    fn block_elems(&self, elem: usize) -> usize {
        let b = if self.block == 0 {
            8192 / elem
        } else {
            self.block
        };
        (b / 8).max(1) * 8
    }

    fn run(&self, data: &[u8], elem: usize, out: &mut Vec<u8>, f: fn(&[u8], usize, &mut [u8])) {
        let start = out.len();
        out.resize(start + data.len(), 0);
        let dst = &mut out[start..];
        let whole = data.len() / elem / 8 * 8 * elem;
        let block = self.block_elems(elem) * elem;
        threads::install(self.threads, || {
            dst[..whole]
                .par_chunks_mut(block)
                .zip(data[..whole].par_chunks(block))
                .for_each(|(d, s)| f(s, elem, d));
        });
        dst[whole..].copy_from_slice(&data[whole..]);
    }
}

impl Codec for Bitshuffle {
    fn output(&self, _input: &DataKind) -> Result<DataKind> {
        Ok(DataKind::Bytes)
    }

    fn encode(&self, data: &[u8], input: &DataKind, out: &mut Vec<u8>) -> Result<()> {
        self.run(data, input.elem_size(), out, shuffle_block);
        Ok(())
    }

    fn decode(&self, data: &[u8], input: &DataKind, out: &mut Vec<u8>) -> Result<()> {
        if let DataKind::Array(m) = input {
            if data.len() != m.nbytes() {
                return Err(Error::corrupt(
                    "bitshuffle",
                    format!("{} bytes for {m}", data.len()),
                ));
            }
        }
        self.run(data, input.elem_size(), out, unshuffle_block);
        Ok(())
    }
}

fn build(c: &Config) -> Result<Box<dyn Codec>> {
    let block = c.int("block").unwrap_or(0) as usize;
    if block % 8 != 0 {
        return Err(Error::option(
            format!("{}:block", c.path),
            format!("{block} is not a multiple of 8"),
        ));
    }
    Ok(Box::new(Bitshuffle {
        block,
        threads: c.int("threads").unwrap_or(0) as usize,
    }))
}

inventory::submit! {
    CodecInfo {
        name: "bitshuffle",
        version: 1,
        doc: "bit shuffle (lossless) in blocks: bit-planes of photon counts compress to runs of zeros; pair with lz4 or zstd",
        options: OPTIONS,
        accepts: Accepts::ANY,
        thread_safe: true,
        build,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_is_an_involution_and_moves_bits() {
        // Byte 0 = 0b0000_0001 (bit 0 of element 0) lands in row 0, column 0.
        assert_eq!(transpose8(1), 1);
        // Bit 1 of element 0 goes to row 1 (byte 1), position 0.
        assert_eq!(transpose8(2), 1 << 8);
        for x in [
            0u64,
            1,
            0xDEAD_BEEF_0123_4567,
            u64::MAX,
            0x8000_0000_0000_0000,
        ] {
            assert_eq!(transpose8(transpose8(x)), x);
        }
    }
}
