//! `delta`: difference to the previous element in C order, zig-zag coded, wrapping on the
//! element's bit pattern (exact for every dtype, floats included).

use roibin_registry::{Accepts, Codec, CodecInfo, DataKind, Error, Result};

/// Delta configuration (no options).
#[derive(Debug, Clone)]
pub struct Delta;

macro_rules! delta_impl {
    ($enc:ident, $dec:ident, $u:ty, $i:ty) => {
        fn $enc(data: &[u8], out: &mut Vec<u8>) {
            const N: usize = std::mem::size_of::<$u>();
            let mut prev: $u = 0;
            out.reserve(data.len());
            for c in data.chunks_exact(N) {
                let v = <$u>::from_le_bytes(c.try_into().expect("elem"));
                let d = v.wrapping_sub(prev) as $i;
                prev = v;
                let z = ((d << 1) ^ (d >> (N * 8 - 1))) as $u;
                out.extend_from_slice(&z.to_le_bytes());
            }
        }
        fn $dec(data: &[u8], out: &mut Vec<u8>) {
            const N: usize = std::mem::size_of::<$u>();
            let mut prev: $u = 0;
            out.reserve(data.len());
            for c in data.chunks_exact(N) {
                let z = <$u>::from_le_bytes(c.try_into().expect("elem"));
                let d = (z >> 1) ^ (z & 1).wrapping_neg();
                prev = prev.wrapping_add(d);
                out.extend_from_slice(&prev.to_le_bytes());
            }
        }
    };
}
delta_impl!(enc8, dec8, u8, i8);
delta_impl!(enc16, dec16, u16, i16);
delta_impl!(enc32, dec32, u32, i32);
delta_impl!(enc64, dec64, u64, i64);

impl Codec for Delta {
    fn output(&self, input: &DataKind) -> Result<DataKind> {
        Ok(DataKind::Array(input.array("delta")?.clone()))
    }

    fn encode(&self, data: &[u8], input: &DataKind, out: &mut Vec<u8>) -> Result<()> {
        match input.array("delta")?.dtype.size() {
            1 => enc8(data, out),
            2 => enc16(data, out),
            4 => enc32(data, out),
            _ => enc64(data, out),
        }
        Ok(())
    }

    fn decode(&self, data: &[u8], input: &DataKind, out: &mut Vec<u8>) -> Result<()> {
        let m = input.array("delta")?;
        if data.len() != m.nbytes() {
            return Err(Error::corrupt(
                "delta",
                format!("{} bytes for {m}", data.len()),
            ));
        }
        match m.dtype.size() {
            1 => dec8(data, out),
            2 => dec16(data, out),
            4 => dec32(data, out),
            _ => dec64(data, out),
        }
        Ok(())
    }
}

inventory::submit! {
    CodecInfo {
        name: "delta",
        version: 1,
        doc: "delta to the previous element, zig-zag coded (lossless); for smooth integer ramps, before bitshuffle",
        options: &[],
        accepts: Accepts::ARRAYS,
        thread_safe: true,
        build: |_| Ok(Box::new(Delta)),
    }
}
