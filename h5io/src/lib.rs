//! Thin, safe-ish wrappers over the libhdf5 calls the tools and the STXM engine need (chunk-level I/O that the
//! high-level crate does not expose). HDF5 calls stay on the calling thread: callers encode
//! and decode in parallel, then come back here one call at a time.

use anyhow::{anyhow, bail, Context, Result};
use hdf5_sys::{h5, h5d, h5i::hid_t, h5p, h5s, h5t, h5z};
use roibin_registry::DType;
use std::ffi::CString;

/// Register the roibin filter class in this process's libhdf5 (no plugin path needed).
pub fn register_filter() -> Result<()> {
    // SAFETY: H5open has no preconditions; H5Zregister copies the class, and FILTER_CLASS is a static that lives as long as the process.
    unsafe {
        h5::H5open();
        let class =
            &h5roibin::FILTER_CLASS as *const h5roibin::H5ZClass2 as *const h5z::H5Z_class2_t;
        if h5z::H5Zregister(class as *const _) < 0 {
            bail!("could not register the roibin filter with libhdf5");
        }
    }
    Ok(())
}

/// An owned HDF5 identifier, closed on drop with the right H5*close.
pub struct Id(pub hid_t, unsafe extern "C" fn(hid_t) -> i32);

impl Drop for Id {
    fn drop(&mut self) {
        if self.0 >= 0 {
            // SAFETY: the id is valid (>= 0, owned by this guard) and `self.1` is the matching H5*close, called once.
            unsafe { (self.1)(self.0) };
        }
    }
}

fn check(
    id: hid_t,
    close: unsafe extern "C" fn(hid_t) -> i32,
    what: impl FnOnce() -> String,
) -> Result<Id> {
    if id < 0 {
        bail!("{}", what());
    }
    Ok(Id(id, close))
}

fn cstr(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| anyhow!("name `{s}` holds a NUL byte"))
}

/// The roibin dtype of an HDF5 datatype.
pub fn dtype_of(type_id: hid_t) -> Result<DType> {
    // SAFETY: `type_id` is a datatype id the caller holds open; these queries only read it.
    unsafe {
        let class = h5t::H5Tget_class(type_id);
        let size = h5t::H5Tget_size(type_id);
        let order = h5t::H5Tget_order(type_id);
        if order == h5t::H5T_order_t::H5T_ORDER_BE {
            bail!("big-endian datasets are not supported");
        }
        Ok(match class {
            h5t::H5T_class_t::H5T_INTEGER => {
                let signed = h5t::H5Tget_sign(type_id) == h5t::H5T_sign_t::H5T_SGN_2;
                match (size, signed) {
                    (1, false) => DType::U8,
                    (2, false) => DType::U16,
                    (4, false) => DType::U32,
                    (8, false) => DType::U64,
                    (1, true) => DType::I8,
                    (2, true) => DType::I16,
                    (4, true) => DType::I32,
                    (8, true) => DType::I64,
                    _ => bail!("unsupported integer size {size}"),
                }
            }
            h5t::H5T_class_t::H5T_FLOAT if size == 4 => DType::F32,
            h5t::H5T_class_t::H5T_FLOAT if size == 8 => DType::F64,
            _ => bail!("unsupported datatype class {class:?} of {size} bytes: roibin takes integers and floats"),
        })
    }
}

// In libhdf5 since 1.10.5, not bound by hdf5-sys.
extern "C" {
    fn H5Dget_chunk_storage_size(dset_id: hid_t, offset: *const u64, chunk_bytes: *mut u64) -> i32;
}

/// libhdf5's native (little-endian here) type for `dtype`.
pub fn native_type(dtype: DType) -> hid_t {
    {
        match dtype {
            DType::U8 => *h5t::H5T_NATIVE_UINT8,
            DType::U16 => *h5t::H5T_NATIVE_UINT16,
            DType::U32 => *h5t::H5T_NATIVE_UINT32,
            DType::U64 => *h5t::H5T_NATIVE_UINT64,
            DType::I8 => *h5t::H5T_NATIVE_INT8,
            DType::I16 => *h5t::H5T_NATIVE_INT16,
            DType::I32 => *h5t::H5T_NATIVE_INT32,
            DType::I64 => *h5t::H5T_NATIVE_INT64,
            DType::F32 => *h5t::H5T_NATIVE_FLOAT,
            DType::F64 => *h5t::H5T_NATIVE_DOUBLE,
        }
    }
}

/// A dataset opened for chunk-level work.
pub struct Dataset {
    pub id: Id,
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Chunk shape (None when contiguous or compact).
    pub chunk: Option<Vec<usize>>,
    /// Filters in the pipeline: (id, cd_values).
    pub filters: Vec<(i32, Vec<u32>)>,
    type_id: Id,
}

/// An opened file.
pub struct File {
    pub id: Id,
    pub path: String,
}

/// What the system said when an HDF5 write failed (HDF5 leaves the failing write's errno), as
/// advice for the user; empty when it says nothing useful.
pub fn io_hint(e: std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            format!(": {e}; free some space or write elsewhere")
        }
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => {
            format!(": {e}; write somewhere you may")
        }
        Some(libc::EIO) => format!(": {e}"),
        _ => String::new(),
    }
}

/// An output file written under a temporary name beside it (`.NAME.roibin-partial`) and
/// renamed onto its name only when everything succeeded: a failed or killed run never leaves
/// a file that looks finished. An existing output is copied first, so its other datasets stay.
/// Dropped without [`AtomicOutput::commit`], the temporary file is removed.
pub struct AtomicOutput {
    path: std::path::PathBuf,
    tmp: std::path::PathBuf,
    done: bool,
}

impl AtomicOutput {
    /// Start writing `path`; a leftover from an interrupted run is reported and removed.
    pub fn begin(path: &str) -> Result<AtomicOutput> {
        let p = std::path::Path::new(path);
        let name = p
            .file_name()
            .with_context(|| format!("`{path}` does not name a file"))?;
        let tmp = p.with_file_name(format!(".{}.roibin-partial", name.to_string_lossy()));
        if tmp.exists() {
            eprintln!(
                "found {}: a partial output left by an interrupted run; removing it and starting again",
                tmp.display()
            );
            std::fs::remove_file(&tmp)
                .with_context(|| format!("cannot remove {}", tmp.display()))?;
        }
        if p.exists() {
            std::fs::copy(p, &tmp)
                .with_context(|| format!("cannot copy {path} to {} to add to it", tmp.display()))?;
        }
        Ok(AtomicOutput {
            path: p.to_path_buf(),
            tmp,
            done: false,
        })
    }

    /// Where to write meanwhile.
    pub fn tmp_path(&self) -> String {
        self.tmp.to_string_lossy().into_owned()
    }

    /// Rename the finished file onto its name (close every HDF5 object of it first).
    pub fn commit(mut self) -> Result<()> {
        std::fs::rename(&self.tmp, &self.path).with_context(|| {
            format!(
                "cannot rename {} to {}",
                self.tmp.display(),
                self.path.display()
            )
        })?;
        self.done = true;
        Ok(())
    }
}

impl Drop for AtomicOutput {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl File {
    pub fn open(path: &str) -> Result<File> {
        let c = cstr(path)?;
        // SAFETY: `c` is a NUL-terminated path that outlives the call; the returned id is checked below.
        let id = unsafe {
            h5::H5open();
            hdf5_sys::h5f::H5Fopen(c.as_ptr(), hdf5_sys::h5f::H5F_ACC_RDONLY, h5p::H5P_DEFAULT)
        };
        Ok(File {
            id: check(id, hdf5_sys::h5f::H5Fclose, || {
                format!("cannot open `{path}` as HDF5 (missing, unreadable or not HDF5)")
            })?,
            path: path.into(),
        })
    }

    /// Open for writing, creating the file when it does not exist.
    /// Close the file, flushing it: an error here (disk full) is the write's error.
    pub fn close(mut self) -> Result<()> {
        let id = std::mem::replace(&mut self.id.0, -1);
        // SAFETY: `id` is this file's open id, taken out of its guard so it is closed once.
        if unsafe { hdf5_sys::h5f::H5Fclose(id) } < 0 {
            bail!(
                "cannot close `{}`: the data may not all be on disk (is it full?)",
                self.path
            );
        }
        Ok(())
    }

    pub fn open_rw(path: &str) -> Result<File> {
        let c = cstr(path)?;
        // SAFETY: H5open has no preconditions.
        unsafe { h5::H5open() };
        let id = if std::path::Path::new(path).exists() {
            // SAFETY: `c` is a NUL-terminated path that outlives the call; the returned id is checked below.
            unsafe {
                hdf5_sys::h5f::H5Fopen(c.as_ptr(), hdf5_sys::h5f::H5F_ACC_RDWR, h5p::H5P_DEFAULT)
            }
        } else {
            // SAFETY: as above; H5Fcreate's property lists are HDF5's defaults.
            unsafe {
                hdf5_sys::h5f::H5Fcreate(
                    c.as_ptr(),
                    hdf5_sys::h5f::H5F_ACC_EXCL,
                    h5p::H5P_DEFAULT,
                    h5p::H5P_DEFAULT,
                )
            }
        };
        Ok(File {
            id: check(id, hdf5_sys::h5f::H5Fclose, || {
                format!("cannot open or create `{path}` for writing")
            })?,
            path: path.into(),
        })
    }

    pub fn dataset(&self, name: &str) -> Result<Dataset> {
        let c = cstr(name)?;
        // SAFETY: `self.id` is an open file id and `c` a NUL-terminated name that outlives the call.
        let id = unsafe { h5d::H5Dopen2(self.id.0, c.as_ptr(), h5p::H5P_DEFAULT) };
        let id = check(id, h5d::H5Dclose, || {
            format!(
                "`{}` has no dataset `{name}` (run `roibin info {}` to list them)",
                self.path, self.path
            )
        })?;
        Dataset::from_id(id)
    }

    /// Every dataset path in the file, depth first.
    pub fn dataset_names(&self) -> Result<Vec<String>> {
        let f = hdf5::File::open(&self.path).with_context(|| format!("open {}", self.path))?;
        let mut out = vec![];
        walk(&f, "", &mut out)?;
        Ok(out)
    }

    /// Create a chunked dataset with `filters` (id, cd_values) applied, mandatory.
    pub fn create_dataset(
        &self,
        name: &str,
        dtype: DType,
        shape: &[usize],
        chunk: &[usize],
        filters: &[(i32, Vec<u32>)],
    ) -> Result<Dataset> {
        // SAFETY: every id created here is checked and owned by an `Id` guard that closes it; the dims and cd_values slices outlive the calls that read them.
        unsafe {
            let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
            let space = check(
                h5s::H5Screate_simple(dims.len() as i32, dims.as_ptr(), std::ptr::null()),
                h5s::H5Sclose,
                || "H5Screate_simple".into(),
            )?;
            let dcpl = check(
                h5p::H5Pcreate(*h5p::H5P_CLS_DATASET_CREATE),
                h5p::H5Pclose,
                || "H5Pcreate".into(),
            )?;
            // No timestamps in object headers: the same data and spec give the same file
            // (a check MPI and re-runs rely on).
            h5p::H5Pset_obj_track_times(dcpl.0, 0);
            let cdims: Vec<u64> = chunk.iter().map(|&d| d as u64).collect();
            if h5p::H5Pset_chunk(dcpl.0, cdims.len() as i32, cdims.as_ptr()) < 0 {
                bail!("invalid chunk shape {chunk:?} for {shape:?}");
            }
            for (fid, cd) in filters {
                // A filter this process cannot run (bitshuffle-LZ4 for a synthetic DECTRIS
                // scan) is recorded as optional, so HDF5 creates the dataset; its chunks then
                // come only from direct chunk writes, already encoded.
                let flags = if h5z::H5Zfilter_avail(*fid) > 0 {
                    h5z::H5Z_FLAG_MANDATORY
                } else {
                    h5z::H5Z_FLAG_OPTIONAL
                };
                if h5p::H5Pset_filter(dcpl.0, *fid, flags, cd.len(), cd.as_ptr()) < 0 {
                    bail!("cannot add filter {fid}");
                }
            }
            let lcpl = check(
                h5p::H5Pcreate(*h5p::H5P_CLS_LINK_CREATE),
                h5p::H5Pclose,
                || "H5Pcreate".into(),
            )?;
            h5p::H5Pset_create_intermediate_group(lcpl.0, 1);
            let c = cstr(name)?;
            let id = h5d::H5Dcreate2(
                self.id.0,
                c.as_ptr(),
                native_type(dtype),
                space.0,
                lcpl.0,
                dcpl.0,
                h5p::H5P_DEFAULT,
            );
            let id = check(id, h5d::H5Dclose, || {
                format!("cannot create dataset `{name}` in `{}`: it may exist already, or the filter refused the dtype or spec (see the HDF5 message above)", self.path)
            })?;
            Dataset::from_id(id)
        }
    }
}

fn walk(g: &hdf5::Group, prefix: &str, out: &mut Vec<String>) -> Result<()> {
    for name in g.member_names()? {
        let path = format!("{prefix}/{name}");
        if let Ok(sub) = g.group(&name) {
            walk(&sub, &path, out)?;
        } else if g.dataset(&name).is_ok() {
            out.push(path);
        }
    }
    Ok(())
}

impl Dataset {
    fn from_id(id: Id) -> Result<Dataset> {
        // SAFETY: `id` is an open dataset id owned by the caller's guard; every id derived from it is checked and guarded.
        unsafe {
            let type_id = check(h5d::H5Dget_type(id.0), h5t::H5Tclose, || {
                "H5Dget_type".into()
            })?;
            let dtype = dtype_of(type_id.0)?;
            let space = check(h5d::H5Dget_space(id.0), h5s::H5Sclose, || {
                "H5Dget_space".into()
            })?;
            let rank = h5s::H5Sget_simple_extent_ndims(space.0);
            let mut dims = vec![0u64; rank.max(0) as usize];
            h5s::H5Sget_simple_extent_dims(space.0, dims.as_mut_ptr(), std::ptr::null_mut());
            let dcpl = check(h5d::H5Dget_create_plist(id.0), h5p::H5Pclose, || {
                "H5Dget_create_plist".into()
            })?;
            let mut chunk = None;
            let mut filters = vec![];
            if h5p::H5Pget_layout(dcpl.0) == h5d::H5D_layout_t::H5D_CHUNKED {
                let mut c = vec![0u64; rank as usize];
                h5p::H5Pget_chunk(dcpl.0, rank, c.as_mut_ptr());
                chunk = Some(c.iter().map(|&d| d as usize).collect());
                for i in 0..h5p::H5Pget_nfilters(dcpl.0) {
                    let (mut flags, mut n, mut cd, mut conf) =
                        (0u32, 256usize, vec![0u32; 256], 0u32);
                    let fid = h5p::H5Pget_filter2(
                        dcpl.0,
                        i as u32,
                        &mut flags,
                        &mut n,
                        cd.as_mut_ptr(),
                        0,
                        std::ptr::null_mut(),
                        &mut conf,
                    );
                    cd.truncate(n.min(256));
                    filters.push((fid, cd));
                }
            }
            Ok(Dataset {
                id,
                dtype,
                shape: dims.iter().map(|&d| d as usize).collect(),
                chunk,
                filters,
                type_id,
            })
        }
    }

    /// True when roibin is the dataset's only filter, so chunks can be decoded without HDF5.
    pub fn is_roibin_only(&self) -> bool {
        self.filters.len() == 1 && self.filters[0].0 == h5roibin::FILTER_ID
    }

    fn select(&self, start: &[usize], count: &[usize]) -> Result<(Id, Id)> {
        // SAFETY: `self.id` is an open dataset; start/count vectors have the dataset's rank and outlive the calls.
        unsafe {
            let fs = check(h5d::H5Dget_space(self.id.0), h5s::H5Sclose, || {
                "H5Dget_space".into()
            })?;
            let st: Vec<u64> = start.iter().map(|&d| d as u64).collect();
            let ct: Vec<u64> = count.iter().map(|&d| d as u64).collect();
            if h5s::H5Sselect_hyperslab(
                fs.0,
                h5s::H5S_seloper_t::H5S_SELECT_SET,
                st.as_ptr(),
                std::ptr::null(),
                ct.as_ptr(),
                std::ptr::null(),
            ) < 0
            {
                bail!("bad selection {start:?}+{count:?}");
            }
            let ms = check(
                h5s::H5Screate_simple(ct.len() as i32, ct.as_ptr(), std::ptr::null()),
                h5s::H5Sclose,
                || "H5Screate_simple".into(),
            )?;
            Ok((fs, ms))
        }
    }

    /// Read the box `start`+`count` through the HDF5 pipeline into C-order bytes.
    pub fn read_box(&self, start: &[usize], count: &[usize]) -> Result<Vec<u8>> {
        let (fs, ms) = self.select(start, count)?;
        let n: usize = count.iter().product::<usize>() * self.dtype.size();
        let mut buf = vec![0u8; n];
        // SAFETY: `buf` holds exactly count·element-size bytes, the size of the memory space the selection describes.
        unsafe {
            let mt = check(
                h5t::H5Tget_native_type(self.type_id.0, h5t::H5T_direction_t::H5T_DIR_ASCEND),
                h5t::H5Tclose,
                || "native type".into(),
            )?;
            if h5d::H5Dread(
                self.id.0,
                mt.0,
                ms.0,
                fs.0,
                h5p::H5P_DEFAULT,
                buf.as_mut_ptr() as *mut _,
            ) < 0
            {
                bail!("HDF5 could not read {start:?}+{count:?} (a filter failed or the file is damaged)");
            }
        }
        Ok(buf)
    }

    /// The stored (filtered) bytes of the chunk at `offset`, and its filter mask.
    pub fn read_raw_chunk(&self, offset: &[usize]) -> Result<(Vec<u8>, u32)> {
        let off: Vec<u64> = offset.iter().map(|&d| d as u64).collect();
        // SAFETY: `off` has the dataset's rank; the buffer is sized from H5Dget_chunk_storage_size before H5Dread_chunk writes into it.
        unsafe {
            let mut size = 0u64;
            if H5Dget_chunk_storage_size(self.id.0, off.as_ptr(), &mut size) < 0 {
                bail!("no chunk at {offset:?}");
            }
            // A chunk cannot be larger than its file: a crafted index entry must not size
            // the buffer.
            let file = check(
                hdf5_sys::h5i::H5Iget_file_id(self.id.0),
                hdf5_sys::h5f::H5Fclose,
                || "H5Iget_file_id".into(),
            )?;
            let mut file_size = 0u64;
            if hdf5_sys::h5f::H5Fget_filesize(file.0, &mut file_size) < 0 || size > file_size {
                bail!("the chunk at {offset:?} claims {size} bytes, more than its file holds");
            }
            let mut buf = vec![0u8; size as usize];
            let mut mask = 0u32;
            if size > 0
                && h5d::H5Dread_chunk(
                    self.id.0,
                    h5p::H5P_DEFAULT,
                    off.as_ptr(),
                    &mut mask,
                    buf.as_mut_ptr() as *mut _,
                ) < 0
            {
                bail!("cannot read the chunk at {offset:?}");
            }
            Ok((buf, mask))
        }
    }

    /// The file that holds this dataset (an external link's target, for a DECTRIS master),
    /// and where its addresses start (the user block's size).
    pub fn storage_file(&self) -> Result<(String, u64)> {
        // SAFETY: `self.id` is an open dataset; the file id is guarded and closed; `buf` is
        // sized from the first H5Fget_name call plus the NUL.
        unsafe {
            let file = check(
                hdf5_sys::h5i::H5Iget_file_id(self.id.0),
                hdf5_sys::h5f::H5Fclose,
                || "H5Iget_file_id".into(),
            )?;
            let n = hdf5_sys::h5f::H5Fget_name(file.0, std::ptr::null_mut(), 0);
            if n <= 0 {
                bail!("the dataset's file has no name");
            }
            let mut buf = vec![0u8; n as usize + 1];
            hdf5_sys::h5f::H5Fget_name(file.0, buf.as_mut_ptr() as *mut _, buf.len());
            buf.truncate(n as usize);
            let fcpl = check(
                hdf5_sys::h5f::H5Fget_create_plist(file.0),
                h5p::H5Pclose,
                || "H5Fget_create_plist".into(),
            )?;
            let mut userblock = 0u64;
            h5p::H5Pget_userblock(fcpl.0, &mut userblock);
            Ok((String::from_utf8_lossy(&buf).into_owned(), userblock))
        }
    }

    /// Where the box `start`+`count` lies in [`Dataset::storage_file`] as one run of bytes
    /// that HDF5 would return unchanged (no filter, the native type, allocated): its address,
    /// to be shifted by the user block. None when HDF5 must read it: filters, a converted
    /// type, external or virtual storage, a box that is not one run (a contiguous dataset's
    /// box must span whole frames; a chunked one's must be one whole chunk).
    pub fn raw_range(&self, start: &[usize], count: &[usize]) -> Result<Option<u64>> {
        // SAFETY: `self.type_id` is this dataset's open datatype; H5Tequal only reads it and
        // the native type id (a library constant).
        let native = unsafe { h5t::H5Tequal(self.type_id.0, native_type(self.dtype)) } > 0;
        if !native || !self.filters.is_empty() || start.len() != self.shape.len() {
            return Ok(None);
        }
        let elem = self.dtype.size() as u64;
        match &self.chunk {
            None => {
                let whole_rows =
                    start[1..].iter().all(|&s| s == 0) && count[1..] == self.shape[1..];
                if !whole_rows || start[0] + count[0] > self.shape[0] {
                    return Ok(None);
                }
                // SAFETY: `self.id` is an open dataset; the call only reads it.
                let base = unsafe { h5d::H5Dget_offset(self.id.0) };
                // HADDR_UNDEF: not allocated, external, virtual or compact storage.
                if base == u64::MAX {
                    return Ok(None);
                }
                let frame: u64 = self.shape[1..].iter().map(|&d| d as u64).product::<u64>() * elem;
                Ok(Some(base + start[0] as u64 * frame))
            }
            Some(chunk) => {
                if count != &chunk[..]
                    || start
                        .iter()
                        .zip(count)
                        .zip(&self.shape)
                        .any(|((s, c), n)| s + c > *n)
                {
                    return Ok(None);
                }
                let bytes = chunk.iter().map(|&d| d as u64).product::<u64>() * elem;
                Ok(match self.chunk_location(start)? {
                    Some((addr, size, 0)) if size == bytes => Some(addr),
                    _ => None,
                })
            }
        }
    }

    /// Where the chunk at `offset` is stored: (address in its file, bytes, filter mask), None
    /// when it is not allocated (it reads as the fill value).
    pub fn chunk_location(&self, offset: &[usize]) -> Result<Option<(u64, u64, u32)>> {
        let off: Vec<u64> = offset.iter().map(|&d| d as u64).collect();
        let (mut mask, mut addr, mut size) = (0u32, 0u64, 0u64);
        // SAFETY: `off` has the dataset's rank; the call only writes the three outputs.
        let r = unsafe {
            h5d::H5Dget_chunk_info_by_coord(
                self.id.0,
                off.as_ptr(),
                &mut mask,
                &mut addr,
                &mut size,
            )
        };
        if r < 0 {
            bail!("no chunk index entry at {offset:?}");
        }
        // HADDR_UNDEF: not allocated.
        Ok((addr != u64::MAX && size > 0).then_some((addr, size, mask)))
    }

    /// Store already-encoded bytes as the chunk at `offset` (HDF5's direct chunk write).
    pub fn write_raw_chunk(&self, offset: &[usize], bytes: &[u8]) -> Result<()> {
        let off: Vec<u64> = offset.iter().map(|&d| d as u64).collect();
        // SAFETY: `off` has the dataset's rank and `bytes` outlives the call, which only reads `bytes.len()` bytes.
        unsafe {
            if h5d::H5Dwrite_chunk(
                self.id.0,
                h5p::H5P_DEFAULT,
                0,
                off.as_ptr(),
                bytes.len(),
                bytes.as_ptr() as *const _,
            ) < 0
            {
                bail!(
                    "cannot write the chunk at {offset:?}{}",
                    io_hint(std::io::Error::last_os_error())
                );
            }
        }
        Ok(())
    }

    /// Every chunk of the grid with its stored size (None when HDF5 cannot say), each found
    /// by its offset (a B-tree lookup; walking the index by number is quadratic in HDF5
    /// 1.10). Empty for datasets that are not chunked.
    fn chunk_grid(&self) -> impl Iterator<Item = (Vec<usize>, Option<u64>)> + '_ {
        let chunk = self.chunk.clone().unwrap_or_default();
        let grid: Vec<usize> = self
            .shape
            .iter()
            .zip(&chunk)
            .map(|(&s, &c)| s.div_ceil(c.max(1)))
            .collect();
        let total = if self.chunk.is_some() {
            grid.iter().product()
        } else {
            0
        };
        (0..total).map(move |k| {
            let off = grid_offset(&grid, &chunk, k);
            let o64: Vec<u64> = off.iter().map(|&o| o as u64).collect();
            let mut size = 0u64;
            // SAFETY: `o64` has the dataset's rank; the call only writes `size`.
            let ok = unsafe { H5Dget_chunk_storage_size(self.id.0, o64.as_ptr(), &mut size) } >= 0;
            (off, ok.then_some(size))
        })
    }

    /// A checksum of the chunk index: (offset, stored size) of every chunk of the grid. None
    /// for datasets that are not chunked.
    pub fn chunk_index_crc(&self) -> Option<u32> {
        self.chunk.as_ref()?;
        Some(self.chunk_grid().fold(0u32, |crc, (off, size)| {
            let mut b: Vec<u8> = off.iter().flat_map(|&o| (o as u64).to_le_bytes()).collect();
            b.extend_from_slice(&size.unwrap_or(u64::MAX).to_le_bytes());
            crc32c::crc32c_append(crc, &b)
        }))
    }

    /// (offset, stored size) of every allocated chunk.
    pub fn chunk_sizes(&self) -> Result<Vec<(Vec<usize>, u64)>> {
        Ok(self
            .chunk_grid()
            .filter_map(|(off, size)| size.filter(|&s| s > 0).map(|s| (off, s)))
            .collect())
    }
}

/// Offset of chunk `k` (C order) of a grid of chunks.
fn grid_offset(grid: &[usize], chunk: &[usize], k: usize) -> Vec<usize> {
    let mut off = vec![0usize; grid.len()];
    let mut rest = k;
    for d in (0..grid.len()).rev() {
        off[d] = (rest % grid[d]) * chunk[d];
        rest /= grid[d];
    }
    off
}

/// Split `FILE:DATASET` (the dataset part optional).
pub fn split_target(s: &str) -> (&str, Option<&str>) {
    match s.rsplit_once(':') {
        Some((f, d)) if !d.is_empty() && !f.is_empty() => (f, Some(d)),
        _ => (s, None),
    }
}
