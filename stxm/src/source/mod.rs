//! Where frames come from: HDF5 datasets (and DECTRIS master files), Merlin `.mib` files.
//!
//! A source hands out frames as [`Item`]s: decoded frames, or raw chunks that the engine
//! decodes itself, in parallel, away from the HDF5 library (roibin's 443, bitshuffle-LZ4's
//! 32008). Reading is serial (HDF5 is not thread-safe); decoding is not.

mod hdf5;
mod mib;

pub use self::hdf5::H5Source;
pub use mib::MibSource;

use crate::{Error, Result};
use roibin_registry::DType;
use std::ops::Range;

/// A raw chunk's format, decoded by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkCodec {
    /// roibin's container (HDF5 filter 443): roibin chunks are reduced in the compressed domain.
    Roibin,
    /// bitshuffle + LZ4 (HDF5 filter 32008).
    Bslz4,
}

/// A raw chunk's bytes: read already, or where to read them (workers read byte ranges in
/// parallel, outside the HDF5 library).
pub enum ChunkBytes {
    Loaded(Vec<u8>),
    At {
        file: std::sync::Arc<std::fs::File>,
        offset: u64,
        len: u64,
    },
}

impl ChunkBytes {
    /// Stored size.
    pub fn len(&self) -> u64 {
        match self {
            ChunkBytes::Loaded(b) => b.len() as u64,
            ChunkBytes::At { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes (a positioned read for [`ChunkBytes::At`]).
    pub fn load(&self) -> std::io::Result<std::borrow::Cow<'_, [u8]>> {
        match self {
            ChunkBytes::Loaded(b) => Ok(std::borrow::Cow::Borrowed(b)),
            ChunkBytes::At { .. } => {
                let mut buf = vec![];
                self.load_into(&mut buf)?;
                Ok(std::borrow::Cow::Owned(buf))
            }
        }
    }

    /// The bytes, read into `buf` for [`ChunkBytes::At`]: a worker that reuses its `buf` from
    /// chunk to chunk touches no fresh pages (a fresh multi-megabyte buffer per chunk costs a
    /// page fault per 4 KiB, and the faults of many threads contend in the kernel).
    pub fn load_into<'a>(&'a self, buf: &'a mut Vec<u8>) -> std::io::Result<&'a [u8]> {
        use std::os::unix::fs::FileExt;
        match self {
            ChunkBytes::Loaded(b) => Ok(b),
            ChunkBytes::At { file, offset, len } => {
                let len = usize::try_from(*len).map_err(std::io::Error::other)?;
                if buf.len() < len {
                    buf.resize(len, 0);
                }
                file.read_exact_at(&mut buf[..len], *offset)?;
                Ok(&buf[..len])
            }
        }
    }
}

/// Frames as a source hands them out.
pub enum Item {
    /// Decoded frames `frames`, consecutive, C order, little-endian.
    Frames {
        frames: Range<usize>,
        bytes: Vec<u8>,
    },
    /// A raw chunk whose frame slots start at global frame `first` (`slots` of them);
    /// `want` are the frames asked for.
    Chunk {
        first: usize,
        slots: usize,
        want: Range<usize>,
        codec: ChunkCodec,
        bytes: ChunkBytes,
    },
    /// Frames that could not be read, and why.
    Failed {
        frames: Range<usize>,
        message: String,
    },
}

/// What a source holds.
#[derive(Debug, Clone)]
pub struct Info {
    pub frames: usize,
    pub height: usize,
    pub width: usize,
    pub dtype: DType,
    /// The scan shape the data carry (a 4-D dataset's first two axes).
    pub scan: Option<(usize, usize)>,
    /// The detector's own pixel mask (`true` = bad), when it has one.
    pub mask: Option<Vec<bool>>,
    /// Path, size and modification time of every file read, and a checksum of the chunk
    /// index: any change gives a different identity (the result cache's key).
    pub identity: String,
    /// How frames are read (`roibin chunks, compressed domain`, `HDF5 read`, …).
    pub read_path: String,
}

/// A source of frames.
pub trait Source: Send {
    fn info(&self) -> &Info;
    /// Read `frames` (in range, checked by the caller); failures come back as
    /// [`Item::Failed`], never as a panic.
    fn read(&mut self, frames: Range<usize>) -> Vec<Item>;
}

/// Open `path` (`FILE.h5`, `FILE.h5:/dataset`, a DECTRIS `…_master.h5`, or `FILE.mib`).
pub fn open(target: &str) -> Result<Box<dyn Source>> {
    open_with(target, false)
}

/// [`open`]; with `hdf5_read`, every HDF5 dataset is read through HDF5's own filters and
/// plugins (to compare decoders), never as raw chunks.
pub fn open_with(target: &str, hdf5_read: bool) -> Result<Box<dyn Source>> {
    let (path, dset) = roibin_h5io::split_target(target);
    if !std::path::Path::new(path).is_file() {
        return Err(Error::Source(format!("`{path}`: no such file")));
    }
    if path.ends_with(".mib") {
        return Ok(Box::new(MibSource::open(path)?));
    }
    Ok(Box::new(H5Source::open(path, dset, hdf5_read)?))
}

/// `path`'s size and modification time (seconds.nanoseconds), for identities.
pub(crate) fn file_stamp(path: &str) -> Result<String> {
    let m = std::fs::metadata(path).map_err(|e| Error::Source(format!("`{path}`: {e}")))?;
    let t = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default();
    let canonical = std::fs::canonicalize(path)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.to_string());
    Ok(format!(
        "{canonical}:{}:{}.{:09}",
        m.len(),
        t.as_secs(),
        t.subsec_nanos()
    ))
}
