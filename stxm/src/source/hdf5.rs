//! Frames from HDF5: a 3-D `[frame, row, col]` or 4-D `[scan row, scan col, row, col]`
//! dataset, or a DECTRIS master file whose `/entry/data/data_NNNNNN` external links spread the
//! frames over data files.
//!
//! Read paths: a dataset whose only filter is roibin (443) or bitshuffle-LZ4 (32008), chunked
//! by whole frames, is read as raw chunks (HDF5's direct chunk read) and decoded by the engine
//! in parallel; every other dataset (no filter, gzip, any plugin) goes through HDF5's own read
//! with the plugins on `HDF5_PLUGIN_PATH` (roibin's is registered in-process).

use super::{file_stamp, ChunkBytes, ChunkCodec, Info, Item, Source};
use crate::bslz4;
use crate::{Error, Result};
use roibin_h5io::{Dataset, File};
use std::ops::Range;

/// One dataset of frames.
struct Part {
    ds: Dataset,
    /// Global index of its first frame.
    first: usize,
    frames: usize,
    /// Frames per scan row for 4-D data (chunks never cross a scan row), else all.
    row_len: usize,
    /// Raw chunks decoded by the engine, with frames per chunk.
    fast: Option<(ChunkCodec, usize)>,
    /// The file holding the chunks (opened for positioned reads), its address base and size:
    /// a chunk located outside it is refused before anything is allocated.
    storage: Option<(std::sync::Arc<std::fs::File>, u64, u64)>,
}

/// An HDF5 source.
pub struct H5Source {
    // Dropped before the file (fields drop in order).
    parts: Vec<Part>,
    file: Option<File>,
    info: Info,
}

impl Drop for H5Source {
    fn drop(&mut self) {
        // Closing ids is an HDF5 call too: under the same lock.
        hdf5::sync::sync(|| {
            self.parts.clear();
            self.file.take();
        });
    }
}

// SAFETY: the source holds HDF5 ids (integers) and is used by one thread at a time (the
// engine reads serially); HDF5 itself is never called concurrently through it.
unsafe impl Send for H5Source {}

/// Largest frame read (a file's dataset shape is a claim, checked before any allocation).
pub const MAX_FRAME_BYTES: usize = 1 << 30;
/// Most bytes one HDF5 read asks for.
const READ_BYTES: usize = 256 << 20;

const MASK_PATH: &str = "/entry/instrument/detector/detectorSpecific/pixel_mask";

fn fast_path(ds: &Dataset, h: usize, w: usize) -> Option<(ChunkCodec, usize)> {
    let chunk = ds.chunk.as_ref()?;
    let codec = match &ds.filters[..] {
        [(id, _)] if *id == h5roibin::FILTER_ID => ChunkCodec::Roibin,
        // cd_values[4]: 2 = LZ4 (0 = bitshuffle alone, 3 = zstd: left to HDF5).
        [(id, cd)] if *id == bslz4::FILTER_ID && cd.get(4) == Some(&2) => ChunkCodec::Bslz4,
        _ => return None,
    };
    let k = match (ds.shape.len(), &chunk[..]) {
        (3, [k, ch, cw]) if (*ch, *cw) == (h, w) => *k,
        (4, [1, k, ch, cw]) if (*ch, *cw) == (h, w) => *k,
        _ => return None,
    };
    // A decoded chunk is allocated whole: beyond 4 GiB, HDF5 reads it frame by frame instead.
    if k.saturating_mul(h * w * ds.dtype.size()) > 4 << 30 {
        return None;
    }
    Some((codec, k))
}

/// (frames, height, width, scan shape of 4-D data).
type FrameShape = (usize, usize, usize, Option<(usize, usize)>);

fn frame_shape(ds: &Dataset, name: &str) -> Result<FrameShape> {
    match ds.shape[..] {
        [n, h, w] => Ok((n, h, w, None)),
        [r, c, h, w] => Ok((r * c, h, w, Some((r, c)))),
        _ => Err(Error::Source(format!(
            "`{name}` has shape {:?}: a scan is [frame, row, col] or [scan row, scan col, row, col]",
            ds.shape
        ))),
    }
}

impl H5Source {
    pub fn open(path: &str, dset: Option<&str>, hdf5_read: bool) -> Result<H5Source> {
        // libhdf5 is not thread-safe: every call of ours takes the lock the `hdf5` crate's own
        // calls take, so concurrent requests (the server) never meet inside it.
        hdf5::sync::sync(|| H5Source::open_locked(path, dset, hdf5_read))
    }

    fn open_locked(path: &str, dset: Option<&str>, hdf5_read: bool) -> Result<H5Source> {
        roibin_h5io::register_filter()?;
        crate::bslz4::register_hdf5_filter();
        let file = File::open(path)?;
        let names: Vec<String> = match dset {
            Some(d) => vec![d.to_string()],
            None => default_datasets(&file)?,
        };
        let mut parts: Vec<Part> = vec![];
        let mut shape = None;
        let mut stamps = vec![file_stamp(path)?];
        for name in &names {
            let ds = file.dataset(name)?;
            let (n, h, w, scan) = frame_shape(&ds, name)?;
            if h.saturating_mul(w).saturating_mul(ds.dtype.size()) > MAX_FRAME_BYTES {
                return Err(Error::Source(format!(
                    "`{name}` has {h}×{w} frames: larger than the {} GiB a frame may be",
                    MAX_FRAME_BYTES >> 30
                )));
            }
            match shape {
                None => shape = Some((h, w, ds.dtype, scan)),
                Some((h0, w0, t0, _)) if (h0, w0, t0) != (h, w, ds.dtype) => {
                    return Err(Error::Source(format!(
                        "`{name}` holds {h}×{w} {} frames, the first data file {h0}×{w0} {t0}",
                        ds.dtype
                    )))
                }
                _ => {}
            }
            let index = ds
                .chunk_index_crc()
                .map_or("contiguous".into(), |c| format!("{c:08x}"));
            stamps.push(format!("{name}:{:?}:{index}", ds.shape));
            let first = parts.last().map_or(0, |p| p.first + p.frames);
            let fast = if hdf5_read {
                None
            } else {
                fast_path(&ds, h, w)
            };
            let storage = fast.and_then(|_| {
                let (path, base) = ds.storage_file().ok()?;
                let f = std::fs::File::open(&path).ok()?;
                let size = f.metadata().ok()?.len();
                Some((std::sync::Arc::new(f), base, size))
            });
            parts.push(Part {
                storage,
                first,
                frames: n,
                row_len: scan.map_or(n.max(1), |s| s.1),
                fast,
                ds,
            });
        }
        // External links: the data files' own stamps.
        for f in linked_files(path, &names) {
            stamps.push(file_stamp(&f).unwrap_or(f));
        }
        let (height, width, dtype, scan) = shape.expect("at least one dataset");
        let mask = read_mask(path, height, width);
        let read_path = match parts
            .iter()
            .map(|p| p.fast.map(|f| f.0))
            .collect::<Vec<_>>()[..]
        {
            [Some(ChunkCodec::Roibin), ..] => {
                "raw roibin chunks (compressed domain for linear signals)"
            }
            [Some(ChunkCodec::Bslz4), ..] => "raw bitshuffle-LZ4 chunks decoded by roibin",
            _ => "HDF5 read (its own filters and plugins)",
        };
        Ok(H5Source {
            info: Info {
                frames: parts.iter().map(|p| p.frames).sum(),
                height,
                width,
                dtype,
                scan: if parts.len() == 1 { scan } else { None },
                mask,
                identity: stamps.join("|"),
                read_path: read_path.into(),
            },
            parts,
            file: Some(file),
        })
    }
}

/// `/entry/data/data`, else the DECTRIS `/entry/data/data_NNNNNN` links in order.
fn default_datasets(file: &File) -> Result<Vec<String>> {
    let f =
        hdf5::File::open(&file.path).map_err(|e| Error::Source(format!("{}: {e}", file.path)))?;
    if f.dataset("/entry/data/data").is_ok() {
        return Ok(vec!["/entry/data/data".into()]);
    }
    let mut links: Vec<String> = f
        .group("/entry/data")
        .and_then(|g| g.member_names())
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.starts_with("data_") && n[5..].chars().all(|c| c.is_ascii_digit()))
        .collect();
    links.sort();
    if links.is_empty() {
        return Err(Error::Source(format!(
            "{}: no /entry/data/data nor DECTRIS data_NNNNNN links: name the dataset as FILE:/path (`roibin info {}` lists them)",
            file.path, file.path
        )));
    }
    Ok(links
        .into_iter()
        .map(|n| format!("/entry/data/{n}"))
        .collect())
}

/// Files that external links of `names` point to (resolved next to `path`).
fn linked_files(path: &str, names: &[String]) -> Vec<String> {
    let Ok(f) = hdf5::File::open(path) else {
        return vec![];
    };
    let dir = std::path::Path::new(path)
        .parent()
        .unwrap_or(std::path::Path::new("."));
    let mut out = vec![];
    for name in names {
        let (group, leaf) = name.rsplit_once('/').unwrap_or(("/", name));
        let Ok(g) = f.group(if group.is_empty() { "/" } else { group }) else {
            continue;
        };
        if let Some(target) = external_target(&g, leaf) {
            out.push(dir.join(target).display().to_string());
        }
    }
    out
}

/// The file an external link names (H5Lget_val).
fn external_target(g: &hdf5::Group, leaf: &str) -> Option<String> {
    use hdf5_sys::h5l;
    let name = std::ffi::CString::new(leaf).ok()?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: `g` is an open group and `li` a plain struct H5Lget_info1 fills; `buf` has 4096 bytes and H5Lget_val writes at most that;
    // H5Lunpack_elink_val only reads the buffer it was given and returns pointers into it.
    unsafe {
        let mut li: h5l::H5L_info1_t = std::mem::zeroed();
        if h5l::H5Lget_info1(g.id(), name.as_ptr(), &mut li, 0) < 0
            || li.type_ != h5l::H5L_type_t::H5L_TYPE_EXTERNAL
        {
            return None;
        }
        if h5l::H5Lget_val(
            g.id(),
            name.as_ptr(),
            buf.as_mut_ptr() as *mut _,
            buf.len(),
            0,
        ) < 0
        {
            return None;
        }
        let (mut flags, mut file, mut obj) = (0u32, std::ptr::null(), std::ptr::null());
        if h5l::H5Lunpack_elink_val(
            buf.as_ptr() as *const _,
            buf.len(),
            &mut flags,
            &mut file,
            &mut obj,
        ) < 0
            || file.is_null()
        {
            return None;
        }
        Some(
            std::ffi::CStr::from_ptr(file)
                .to_string_lossy()
                .into_owned(),
        )
    }
}

/// The DECTRIS pixel mask (non-zero = bad), when the file has one of the frames' shape.
fn read_mask(path: &str, h: usize, w: usize) -> Option<Vec<bool>> {
    let f = hdf5::File::open(path).ok()?;
    let d = f.dataset(MASK_PATH).ok()?;
    if d.shape() != [h, w] {
        return None;
    }
    let v: Vec<u32> = d.read_raw().ok()?;
    Some(v.into_iter().map(|m| m != 0).collect())
}

impl Part {
    /// Dataset offset of frame slot `i` (local).
    fn offset(&self, i: usize) -> Vec<usize> {
        if self.ds.shape.len() == 4 {
            vec![i / self.row_len, i % self.row_len, 0, 0]
        } else {
            vec![i, 0, 0]
        }
    }

    /// Read local frames `r` through HDF5 (frame by frame when a block fails, so one bad
    /// chunk costs only its frames).
    fn read_hdf5(&self, r: Range<usize>, out: &mut Vec<Item>) {
        let (h, w) = (
            self.ds.shape[self.ds.shape.len() - 2],
            self.ds.shape[self.ds.shape.len() - 1],
        );
        let mut start = r.start;
        while start < r.end {
            // Within one scan row for 4-D data, and at most READ_BYTES at once (a line of
            // large frames is read in pieces, not allocated whole).
            let per_read = (READ_BYTES / (h * w * self.ds.dtype.size()).max(1)).max(1);
            let end = r
                .end
                .min((start / self.row_len + 1) * self.row_len)
                .min(start + per_read);
            let mut count = vec![1; self.ds.shape.len() - 2];
            *count.last_mut().expect("rank ≥ 3") = end - start;
            count.extend([h, w]);
            match self.ds.read_box(&self.offset(start), &count) {
                Ok(bytes) => out.push(Item::Frames {
                    frames: self.first + start..self.first + end,
                    bytes,
                }),
                Err(e) if end - start == 1 => out.push(Item::Failed {
                    frames: self.first + start..self.first + end,
                    message: format!("{e:#}"),
                }),
                Err(_) => self.read_hdf5_each(start..end, out),
            }
            start = end;
        }
    }

    fn read_hdf5_each(&self, r: Range<usize>, out: &mut Vec<Item>) {
        for i in r {
            self.read_hdf5(i..i + 1, out);
        }
    }

    fn read_chunks(&self, r: Range<usize>, codec: ChunkCodec, k: usize, out: &mut Vec<Item>) {
        let mut i = r.start;
        while i < r.end {
            // The chunk holding local frame i: k slots from its first, never across a row.
            let (row, col) = (i / self.row_len, i % self.row_len);
            let c0 = row * self.row_len + col / k * k;
            let slots_end = (c0 + k).min((row + 1) * self.row_len).min(self.frames);
            let want = i..r.end.min(slots_end);
            let want_global = self.first + want.start..self.first + want.end;
            let bytes = match (&self.storage, self.ds.chunk_location(&self.offset(c0))) {
                // Located: a worker reads the byte range itself.
                (Some((file, base, size)), Ok(Some((addr, len, 0)))) => {
                    if addr.saturating_add(*base).saturating_add(len) > *size {
                        Err(format!(
                            "the chunk at frame {} claims bytes past the end of its file",
                            self.first + c0
                        ))
                    } else {
                        Ok(Some(ChunkBytes::At {
                            file: file.clone(),
                            offset: addr + base,
                            len,
                        }))
                    }
                }
                // No file to read from: HDF5 reads the raw chunk.
                (None, Ok(Some((_, _, 0)))) => match self.ds.read_raw_chunk(&self.offset(c0)) {
                    Ok((b, 0)) if !b.is_empty() => Ok(Some(ChunkBytes::Loaded(b))),
                    Ok(_) => Ok(None),
                    Err(e) => Err(format!("{e:#}")),
                },
                // Unallocated (fill value) or stored unfiltered: HDF5 knows what to return.
                (_, Ok(_)) => Ok(None),
                (_, Err(e)) => Err(format!("{e:#}")),
            };
            match bytes {
                Ok(Some(bytes)) => out.push(Item::Chunk {
                    first: self.first + c0,
                    slots: k,
                    want: want_global,
                    codec,
                    bytes,
                }),
                Ok(None) => self.read_hdf5(want.clone(), out),
                Err(message) => out.push(Item::Failed {
                    frames: want_global,
                    message,
                }),
            }
            i = want.end;
        }
    }
}

impl Source for H5Source {
    fn info(&self) -> &Info {
        &self.info
    }

    fn read(&mut self, frames: Range<usize>) -> Vec<Item> {
        hdf5::sync::sync(|| self.read_locked(frames))
    }
}

impl H5Source {
    fn read_locked(&self, frames: Range<usize>) -> Vec<Item> {
        let mut out = vec![];
        for p in &self.parts {
            let lo = frames.start.max(p.first);
            let hi = frames.end.min(p.first + p.frames);
            if lo >= hi {
                continue;
            }
            let local = lo - p.first..hi - p.first;
            match p.fast {
                Some((codec, k)) => p.read_chunks(local, codec, k, &mut out),
                None => p.read_hdf5(local, &mut out),
            }
        }
        out
    }
}
