//! MSB-first bit writer and reader for our entropy coders. The reader never reads past its
//! input: running out is an error, not a panic.

use roibin_registry::{Error, Result};

/// Appends bits to a byte vector.
#[derive(Default)]
pub struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    /// Write the low `len` bits of `code` (len ≤ 32), most significant first.
    #[inline]
    pub fn put(&mut self, code: u32, len: u32) {
        self.put_all(std::iter::once((code, len)));
    }

    /// Write each `(code, len)` (len ≤ 32) in turn, with the bit buffer in registers for the
    /// whole run (through `&mut self` the compiler kept it in memory: a store and a load per
    /// code).
    #[inline(always)]
    pub fn put_all(&mut self, codes: impl Iterator<Item = (u32, u32)>) {
        let (mut acc, mut n) = (self.acc, self.n);
        for (code, len) in codes {
            debug_assert!(len <= 32);
            acc = (acc << len) | (code as u64 & ((1u64 << len) - 1));
            n += len;
            if n >= 32 {
                n -= 32;
                self.out
                    .extend_from_slice(&((acc >> n) as u32).to_be_bytes());
            }
        }
        (self.acc, self.n) = (acc, n);
    }

    /// Write the low `len` bits of `code` (len ≤ 64), most significant first.
    #[inline]
    pub fn put_long(&mut self, code: u64, len: u32) {
        if len > 32 {
            self.put_all([((code >> 32) as u32, len - 32), (code as u32, 32)].into_iter());
        } else {
            self.put(code as u32, len);
        }
    }

    /// Write one bit.
    #[inline]
    pub fn bit(&mut self, b: bool) {
        self.put(b as u32, 1);
    }

    /// Write `n` zero bits (n ≤ 64).
    #[inline]
    pub fn zeros(&mut self, n: u32) {
        if n > 32 {
            self.put(0, n - 32);
            self.put(0, 32);
        } else if n > 0 {
            self.put(0, n);
        }
    }

    /// Write the low `m` bits of `x` (m ≤ 64), least significant first (ZFP's order).
    #[inline(always)]
    pub fn lsb_bits(&mut self, x: u64, m: u32) {
        if m == 0 {
            return;
        }
        // Reversed, the first bit to go out is the most significant: two MSB-first puts.
        let rev = x.reverse_bits() >> (64 - m);
        if m > 32 {
            self.put((rev >> 32) as u32, m - 32);
            self.put(rev as u32, 32);
        } else {
            self.put(rev as u32, m);
        }
    }

    /// A writer appending to `buf` (cleared first): pass a buffer kept from the last use and
    /// take it back from [`BitWriter::finish`], and writing allocates nothing once it is big
    /// enough.
    pub fn over(mut buf: Vec<u8>) -> BitWriter {
        buf.clear();
        BitWriter {
            out: buf,
            acc: 0,
            n: 0,
        }
    }

    /// Number of bits written so far.
    pub fn bits(&self) -> u64 {
        self.out.len() as u64 * 8 + self.n as u64
    }

    /// Flush the last partial byte (zero padded) and return the bytes.
    pub fn finish(mut self) -> Vec<u8> {
        while self.n >= 8 {
            self.n -= 8;
            self.out.push((self.acc >> self.n) as u8);
        }
        if self.n > 0 {
            self.out.push((self.acc << (8 - self.n)) as u8);
        }
        self.out
    }
}

/// Reads bits written by [`BitWriter`]. Cheap to clone: a hot loop may work on a local copy,
/// which the compiler keeps in registers, and store it back once.
#[derive(Clone)]
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u64,
    n: u32,
    codec: &'static str,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8], codec: &'static str) -> Self {
        BitReader {
            data,
            pos: 0,
            acc: 0,
            n: 0,
            codec,
        }
    }

    #[inline]
    fn refill(&mut self) {
        if self.n <= 56 && self.pos + 8 <= self.data.len() {
            // Eight bytes at once, keeping the whole bytes that fit. The bits of the byte that
            // does not fit whole are left in `acc` below the count: they are that byte's own
            // bits, so OR-ing it in again at the next refill changes nothing.
            let w = u64::from_be_bytes(self.data[self.pos..self.pos + 8].try_into().expect("8"));
            self.acc |= w >> self.n;
            let take = (63 - self.n) / 8;
            self.pos += take as usize;
            self.n += 8 * take;
            return;
        }
        while self.n <= 56 && self.pos < self.data.len() {
            self.acc |= (self.data[self.pos] as u64) << (56 - self.n);
            self.pos += 1;
            self.n += 8;
        }
    }

    /// The next `len` bits (≤ 32) without consuming them, zero padded past the end.
    #[inline]
    pub fn peek(&mut self, len: u32) -> u32 {
        if self.n < len {
            self.refill();
        }
        (self.acc >> (64 - len)) as u32
    }

    /// Consume `len` bits; an error if fewer remain.
    #[inline]
    pub fn skip(&mut self, len: u32) -> Result<()> {
        if self.n < len {
            self.refill();
            if self.n < len {
                return Err(Error::corrupt(self.codec, "bit stream ends early"));
            }
        }
        self.acc <<= len;
        self.n -= len;
        Ok(())
    }

    /// Consume a run of zero bits, at most `max` of them; returns its length (0 when the next
    /// bit is a one or the stream has ended).
    #[inline(always)]
    pub fn zero_run(&mut self, max: usize) -> usize {
        self.refill();
        let z = (self.acc.leading_zeros().min(self.n) as usize).min(max);
        self.acc = self.acc.checked_shl(z as u32).unwrap_or(0);
        self.n -= z as u32;
        z
    }

    /// Consume zero bits, at most `max`, across refills; returns how many (fewer than `max`
    /// when a one comes next or the stream has ended).
    #[inline]
    pub fn zeros(&mut self, max: usize) -> usize {
        let mut total = 0;
        loop {
            let z = self.zero_run(max - total);
            total += z;
            if z == 0 || total == max {
                return total;
            }
        }
    }

    /// The buffered bits, most significant first, and how many of them are the stream's,
    /// refilled first when fewer than `min` are (to at least 57 unless the end is near): for
    /// decoders that parse codes from one look, check each one's length against the count and
    /// then [`BitReader::consume`] them.
    #[inline(always)]
    pub fn window_of(&mut self, min: u32) -> (u64, u32) {
        if self.n < min {
            self.refill();
        }
        (self.acc, self.n)
    }

    /// Drop `len` bits of the [`BitReader::window_of`] (at most as many as it holds).
    #[inline(always)]
    pub fn consume(&mut self, len: u32) {
        debug_assert!(len <= self.n);
        self.acc = self.acc.checked_shl(len).unwrap_or(0);
        self.n -= len;
    }

    /// Bits read so far.
    pub fn consumed(&self) -> u64 {
        self.pos as u64 * 8 - self.n as u64
    }

    /// Read one bit.
    #[inline(always)]
    pub fn bit(&mut self) -> Result<bool> {
        if self.n == 0 {
            self.refill();
            if self.n == 0 {
                return Err(Error::corrupt(self.codec, "bit stream ends early"));
            }
        }
        let b = self.acc >> 63 != 0;
        self.acc <<= 1;
        self.n -= 1;
        Ok(b)
    }

    /// Read `m` bits (m ≤ 64) written by [`BitWriter::lsb_bits`].
    #[inline(always)]
    pub fn lsb_bits(&mut self, m: u32) -> Result<u64> {
        if m == 0 {
            return Ok(0);
        }
        let (look, avail) = self.window_of(m);
        if m <= avail {
            // The next m bits, reversed, are the low m bits of the reversed window.
            self.consume(m);
            return Ok(look.reverse_bits() & (u64::MAX >> (64 - m)));
        }
        let rev = if m > 32 {
            let hi = self.get(m - 32)? as u64;
            (hi << 32) | self.get(32)? as u64
        } else {
            self.get(m)? as u64
        };
        Ok(rev.reverse_bits() >> (64 - m))
    }

    /// Read `len` bits (≤ 32).
    #[inline(always)]
    pub fn get(&mut self, len: u32) -> Result<u32> {
        if len == 0 {
            return Ok(0);
        }
        let v = self.peek(len);
        self.skip(len)?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsb_first_runs_round_trip() {
        let mut w = BitWriter::default();
        let items: Vec<(u64, u32)> = (0..500u64)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15), (i % 65) as u32))
            .collect();
        for &(x, m) in &items {
            w.lsb_bits(x, m);
            w.bit(m % 2 == 0);
        }
        let bytes = w.finish();
        let mut r = BitReader::new(&bytes, "test");
        for &(x, m) in &items {
            let mask = if m == 64 { u64::MAX } else { (1u64 << m) - 1 };
            assert_eq!(r.lsb_bits(m).unwrap(), x & mask, "m={m}");
            assert_eq!(r.bit().unwrap(), m % 2 == 0);
        }
    }

    #[test]
    fn bits_round_trip() {
        let mut w = BitWriter::default();
        let items: Vec<(u32, u32)> = (0..1000u32)
            .map(|i| (i.wrapping_mul(2654435761), 1 + i % 32))
            .collect();
        for &(c, l) in &items {
            w.put(c, l);
        }
        let bytes = w.finish();
        let mut r = BitReader::new(&bytes, "test");
        for &(c, l) in &items {
            let mask = if l == 32 { u32::MAX } else { (1 << l) - 1 };
            assert_eq!(r.get(l).unwrap(), c & mask);
        }
        assert!(r.get(32).is_err());
    }
}
