//! One cached block on disk: a header that binds the bytes to their origin URL, ETag and block
//! index, with a CRC-32C of the bytes, then the bytes. A block is trusted only if its header
//! parses, names the key asked for, and the CRC matches; anything else is dropped and refetched.
//!
//! ```text
//! magic "RBFSBLK1" | u32 header_len | u64 index | u32 data_len | u32 data_crc32c
//! | u16 url_len | url | u16 etag_len | etag | u32 header_crc32c | data
//! ```
//! (little-endian; `header_len` counts everything before the data.)

use super::BlockKey;
use std::sync::Arc;

pub const MAGIC: &[u8; 8] = b"RBFSBLK1";
/// Longest URL or ETag a header may carry.
const MAX_FIELD: usize = u16::MAX as usize;

#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum BlockFileError {
    #[error("not a roibin-fs block (bad magic or header)")]
    BadHeader,
    #[error("header checksum mismatch")]
    HeaderCrc,
    #[error("holds {0} bytes where the header says {1}")]
    Length(usize, usize),
    #[error("data checksum mismatch (CRC-32C {found:08x}, header says {expected:08x})")]
    DataCrc { found: u32, expected: u32 },
    #[error("holds another block than asked for")]
    OtherKey,
}

/// The header and data of `key`'s block, ready to be written.
pub fn encode(key: &BlockKey, data: &[u8]) -> Vec<u8> {
    let mut out = header(key, data);
    out.extend_from_slice(data);
    out
}

/// The header of `key`'s block holding `data` (written before the data, without copying it).
pub fn header(key: &BlockKey, data: &[u8]) -> Vec<u8> {
    let url = &key.url.as_bytes()[..key.url.len().min(MAX_FIELD)];
    let etag = &key.etag.as_bytes()[..key.etag.len().min(MAX_FIELD)];
    let header_len = 8 + 4 + 8 + 4 + 4 + 2 + url.len() + 2 + etag.len() + 4;
    let mut out = Vec::with_capacity(header_len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(header_len as u32).to_le_bytes());
    out.extend_from_slice(&key.index.to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(data).to_le_bytes());
    out.extend_from_slice(&(url.len() as u16).to_le_bytes());
    out.extend_from_slice(url);
    out.extend_from_slice(&(etag.len() as u16).to_le_bytes());
    out.extend_from_slice(etag);
    let header_crc = crc32c::crc32c(&out);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out
}

/// What a block file's header says.
#[derive(Debug)]
pub struct Header {
    pub key: BlockKey,
    pub header_len: usize,
    pub data_len: usize,
    pub data_crc: u32,
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BlockFileError> {
        if self.0.len() < n {
            return Err(BlockFileError::BadHeader);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u16(&mut self) -> Result<u16, BlockFileError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, BlockFileError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, BlockFileError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
}

/// Parses the header at the start of `bytes` (which may be only the header's prefix of a file).
pub fn parse_header(bytes: &[u8]) -> Result<Header, BlockFileError> {
    let mut c = Cursor(bytes);
    if c.take(8)? != MAGIC {
        return Err(BlockFileError::BadHeader);
    }
    let header_len = c.u32()? as usize;
    let index = c.u64()?;
    let data_len = c.u32()? as usize;
    let data_crc = c.u32()?;
    let url_len = c.u16()? as usize;
    let url = std::str::from_utf8(c.take(url_len)?).map_err(|_| BlockFileError::BadHeader)?;
    let etag_len = c.u16()? as usize;
    let etag = std::str::from_utf8(c.take(etag_len)?).map_err(|_| BlockFileError::BadHeader)?;
    let consumed = bytes.len() - c.0.len();
    let header_crc = c.u32()?;
    if consumed + 4 != header_len {
        return Err(BlockFileError::BadHeader);
    }
    if crc32c::crc32c(&bytes[..consumed]) != header_crc {
        return Err(BlockFileError::HeaderCrc);
    }
    Ok(Header {
        key: BlockKey {
            url: Arc::from(url),
            etag: Arc::from(etag),
            index,
        },
        header_len,
        data_len,
        data_crc,
    })
}

/// The data of a whole block file, checked against its header and against `want`.
pub fn decode<'a>(file: &'a [u8], want: &BlockKey) -> Result<&'a [u8], BlockFileError> {
    let h = parse_header(file)?;
    if h.key != *want {
        return Err(BlockFileError::OtherKey);
    }
    let data = &file[h.header_len..];
    if data.len() != h.data_len {
        return Err(BlockFileError::Length(data.len(), h.data_len));
    }
    let found = crc32c::crc32c(data);
    if found != h.data_crc {
        return Err(BlockFileError::DataCrc {
            found,
            expected: h.data_crc,
        });
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> BlockKey {
        BlockKey {
            url: Arc::from("http://o/data/a.h5"),
            etag: Arc::from("\"abc-12\""),
            index: 7,
        }
    }

    #[test]
    fn round_trip_and_every_corruption_is_caught() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        let file = encode(&key(), &data);
        assert_eq!(decode(&file, &key()).unwrap(), &data[..]);
        // Any single flipped bit anywhere in the file is an error, never other bytes.
        for pos in (0..file.len()).step_by(37) {
            let mut bad = file.clone();
            bad[pos] ^= 0x10;
            assert!(decode(&bad, &key()).is_err(), "flip at {pos} not caught");
        }
        // Truncated anywhere.
        for cut in [0, 10, 40, file.len() - 1] {
            assert!(decode(&file[..cut], &key()).is_err());
        }
        let mut other = key();
        other.index = 8;
        assert_eq!(decode(&file, &other), Err(BlockFileError::OtherKey));
        other = key();
        other.etag = Arc::from("\"abc-13\"");
        assert_eq!(decode(&file, &other), Err(BlockFileError::OtherKey));
    }
}
