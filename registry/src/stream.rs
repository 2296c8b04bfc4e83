//! Bounds-checked little-endian reading and writing for codec streams.
//!
//! Every decoder reads through [`Reader`], so a truncated or corrupted stream becomes a
//! `Corrupt` error naming the codec instead of a panic.

use crate::{Error, Result};

/// A cursor over a byte stream that never reads past its end.
pub struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    codec: &'static str,
}

impl<'a> Reader<'a> {
    /// Read `b`; errors name `codec`.
    pub fn new(b: &'a [u8], codec: &'static str) -> Self {
        Reader { b, pos: 0, codec }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or_else(|| Error::corrupt(self.codec, "truncated stream"))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.b[self.pos..];
        self.pos = self.b.len();
        s
    }

    /// True when everything was read.
    pub fn is_empty(&self) -> bool {
        self.pos == self.b.len()
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    /// A u64 length that must fit `limit`, as usize.
    pub fn len_at_most(&mut self, limit: usize) -> Result<usize> {
        let v = self.u64()?;
        usize::try_from(v)
            .ok()
            .filter(|&v| v <= limit)
            .ok_or_else(|| Error::corrupt(self.codec, format!("length {v} exceeds {limit}")))
    }
}
