//! `libh5roibin.so`: the roibin HDF5 dynamic filter plugin.
//!
//! Put the folder holding it on `HDF5_PLUGIN_PATH`; every HDF5 client (h5py, h5repack, h5dump,
//! facility writers) then writes and reads datasets with filter id [`FILTER_ID`]. All
//! compression logic lives in `roibin-compressors`; this crate only speaks HDF5's plugin ABI.
//!
//! The plugin does not link libhdf5: see [`hdf5`] for how it finds the host's copy.

pub mod cdvalues;
pub mod hdf5;

pub use cdvalues::{client_strings, CdValues, FILTER_ID};

use hdf5::Hid;
use roibin_registry::{container, ArrayMeta, DType, Error, Pipeline, Result};
use std::ffi::{c_char, c_int, c_uint, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

const H5Z_FLAG_REVERSE: c_uint = 0x0100;
const MAX_CD: usize = 256;

/// HDF5's `H5Z_class2_t`, version 1.
#[repr(C)]
pub struct H5ZClass2 {
    pub version: c_int,
    pub id: c_int,
    pub encoder_present: c_uint,
    pub decoder_present: c_uint,
    pub name: *const c_char,
    pub can_apply: Option<unsafe extern "C" fn(Hid, Hid, Hid) -> c_int>,
    pub set_local: Option<unsafe extern "C" fn(Hid, Hid, Hid) -> c_int>,
    pub filter: Option<
        unsafe extern "C" fn(
            c_uint,
            usize,
            *const c_uint,
            usize,
            *mut usize,
            *mut *mut c_void,
        ) -> usize,
    >,
}

// SAFETY: immutable static data; the name pointer is to a static C string.
unsafe impl Sync for H5ZClass2 {}

/// The class HDF5 registers; also usable with `H5Zregister` by programs that link libhdf5.
pub static FILTER_CLASS: H5ZClass2 = H5ZClass2 {
    version: 1,
    id: FILTER_ID,
    encoder_present: 1,
    decoder_present: 1,
    name: c"roibin: composable (lossless and error-bounded lossy) compression; see roibin list"
        .as_ptr(),
    can_apply: Some(can_apply),
    set_local: Some(set_local),
    filter: Some(filter),
};

/// Plugin entry point: this library is a filter (`H5PL_TYPE_FILTER` = 0).
#[no_mangle]
pub extern "C" fn H5PLget_plugin_type() -> c_int {
    0
}

/// Plugin entry point: the filter class.
#[no_mangle]
pub extern "C" fn H5PLget_plugin_info() -> *const c_void {
    &FILTER_CLASS as *const H5ZClass2 as *const c_void
}

/// Run `f`, turning errors and panics into an HDF5 error message and `fail`.
fn guarded<T>(id: Option<Hid>, func: &str, fail: T, f: impl FnOnce() -> Result<T>) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            hdf5::report(id, func, &format!("roibin filter: {e}"));
            fail
        }
        Err(p) => {
            let what = p
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("unknown");
            hdf5::report(
                id,
                func,
                &format!("roibin filter: internal error ({what}); please report it"),
            );
            fail
        }
    }
}

fn api(dcpl: Hid) -> Result<&'static hdf5::Api> {
    hdf5::api_for(dcpl).ok_or_else(|| Error::Other("no libhdf5 found in this process".into()))
}

/// The dataset's element type as a roibin dtype, or a message saying why not.
fn dtype_of(api: &hdf5::Api, type_id: Hid) -> Result<DType> {
    // SAFETY: `type_id` is the datatype HDF5 passed to this callback; the queries only read it.
    let (class, size, sign, order) = unsafe {
        (
            (api.tget_class)(type_id),
            (api.tget_size)(type_id),
            (api.tget_sign)(type_id),
            (api.tget_order)(type_id),
        )
    };
    if order == 1 {
        return Err(Error::Other(
            "big-endian datasets are not supported; store them little-endian".into(),
        ));
    }
    let d = match (class, size, sign) {
        (0, 1, 0) => DType::U8,
        (0, 2, 0) => DType::U16,
        (0, 4, 0) => DType::U32,
        (0, 8, 0) => DType::U64,
        (0, 1, 1) => DType::I8,
        (0, 2, 1) => DType::I16,
        (0, 4, 1) => DType::I32,
        (0, 8, 1) => DType::I64,
        (1, 4, _) => DType::F32,
        (1, 8, _) => DType::F64,
        _ => {
            return Err(Error::Other(format!(
                "unsupported datatype (HDF5 class {class}, {size} bytes): roibin takes u8/u16/u32/u64/i8/i16/i32/i64/f32/f64"
            )))
        }
    };
    Ok(d)
}

fn read_cd(api: &hdf5::Api, dcpl: Hid) -> Result<(c_uint, Vec<u32>)> {
    let mut flags: c_uint = 0;
    let mut n: usize = MAX_CD;
    let mut cd = vec![0 as c_uint; MAX_CD];
    let mut config: c_uint = 0;
    // SAFETY: `cd` has room for MAX_CD words and `n` says so; the other pointers are to locals.
    let r = unsafe {
        (api.get_filter_by_id2)(
            dcpl,
            FILTER_ID,
            &mut flags,
            &mut n,
            cd.as_mut_ptr(),
            0,
            std::ptr::null_mut(),
            &mut config,
        )
    };
    if r < 0 {
        return Err(Error::Other(
            "the dataset's property list does not hold the roibin filter".into(),
        ));
    }
    if n > MAX_CD {
        return Err(Error::Other(format!(
            "{n} cd_values: more than the {MAX_CD} roibin writes"
        )));
    }
    cd.truncate(n);
    Ok((flags, cd))
}

/// roibin must be the dataset's first filter, and there only once: it reads typed elements
/// (a filter before it hands it other bytes) and its chunks carry their own container (a
/// second roibin would wrap one container in another). HDF5 treats filters as optional in
/// h5py, so an error at write time would store chunks unfiltered: refuse at creation.
fn check_position(api: &hdf5::Api, dcpl: Hid) -> Result<()> {
    // SAFETY: `dcpl` is the property list HDF5 passed to this callback; the function pointers
    // come from the libhdf5 that owns it (see `api_for`).
    let n = unsafe { (api.get_nfilters)(dcpl) };
    let mut ids = vec![];
    for i in 0..n.max(0) as c_uint {
        let (mut flags, mut nelmts, mut config) = (0 as c_uint, 0usize, 0 as c_uint);
        // SAFETY: `nelmts` = 0 with a null cd_values pointer and a zero-length name buffer ask
        // for the id only; HDF5 writes nothing through the null pointers.
        let id = unsafe {
            (api.get_filter2)(
                dcpl,
                i,
                &mut flags,
                &mut nelmts,
                std::ptr::null_mut(),
                0,
                std::ptr::null_mut(),
                &mut config,
            )
        };
        ids.push(id);
    }
    let ours = ids.iter().filter(|&&id| id == FILTER_ID).count();
    if ours > 1 {
        return Err(Error::Other(format!(
            "the roibin filter ({FILTER_ID}) is listed {ours} times; give it once"
        )));
    }
    if ids.first().is_some_and(|&id| id != FILTER_ID) {
        return Err(Error::Other(format!(
            "the roibin filter ({FILTER_ID}) must be the first filter: it compresses typed elements, and filter {} before it hands it other bytes (put shuffles and the like inside the spec: `shuffle|zstd`)",
            ids[0]
        )));
    }
    Ok(())
}

unsafe extern "C" fn can_apply(dcpl: Hid, type_id: Hid, _space: Hid) -> c_int {
    if type_id < 0 {
        return 0; // group metadata: not for us
    }
    guarded(Some(dcpl), "can_apply", -1, || {
        let api = api(dcpl)?;
        dtype_of(api, type_id)?;
        check_position(api, dcpl)?;
        Ok(1)
    })
}

unsafe extern "C" fn set_local(dcpl: Hid, type_id: Hid, _space: Hid) -> c_int {
    guarded(Some(dcpl), "set_local", -1, || {
        let api = api(dcpl)?;
        let dtype = dtype_of(api, type_id)?;
        let mut dims = [0u64; 32];
        // SAFETY: `dims` has room for the 32 dimensions we ask for.
        let rank = unsafe { (api.get_chunk)(dcpl, 32, dims.as_mut_ptr()) };
        if rank <= 0 {
            return Err(Error::Other("the dataset is not chunked".into()));
        }
        let chunk = ArrayMeta::new(
            dtype,
            dims[..rank as usize]
                .iter()
                .map(|&d| d as usize)
                .collect::<Vec<_>>(),
        );
        check_position(api, dcpl)?;
        let (flags, cd) = read_cd(api, dcpl)?;
        let spec = CdValues::from_words(&cd)?.spec_for_set_local()?;
        let resolved = cdvalues::resolve(&spec, &chunk)?.to_words()?;
        // SAFETY: `resolved` outlives the call and its length is passed with it.
        let r = unsafe {
            (api.modify_filter)(dcpl, FILTER_ID, flags, resolved.len(), resolved.as_ptr())
        };
        if r < 0 {
            return Err(Error::Other("H5Pmodify_filter failed".into()));
        }
        Ok(1)
    })
}

/// cd_values, the pipeline built from them, and the chunk they describe.
type Encoder = (Vec<u32>, Arc<Pipeline>, ArrayMeta);

/// The last pipeline built for encoding, keyed by its cd_values (chunks of one dataset share it).
fn encoder(cd: &[u32]) -> Result<(Arc<Pipeline>, ArrayMeta)> {
    static CACHE: Mutex<Option<Encoder>> = Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((key, p, m)) = cache.as_ref() {
        if key == cd {
            return Ok((p.clone(), m.clone()));
        }
    }
    let CdValues::Resolved { spec, chunk } = CdValues::from_words(cd)? else {
        // HDF5 calls no `can_apply`/`set_local` for variable-length types (vlen strings and
        // arrays), so they arrive here unresolved. Refuse; HDF5 then stores such chunks
        // unfiltered if the filter is optional (h5py's default), so say it on stderr too.
        let msg = "the dataset's filter parameters were never fitted to it by set_local: HDF5 skips that for variable-length types (vlen strings, vlen arrays), which roibin does not compress; use a fixed-size dtype";
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED
            .call_once(|| eprintln!("roibin plugin: {msg}; HDF5 may store such chunks unfiltered"));
        return Err(Error::Other(msg.into()));
    };
    let p = tuned(
        roibin_compressors::pipeline(&spec.parse()?, &chunk)?,
        &chunk,
    );
    let p = Arc::new(p);
    *cache = Some((cd.to_vec(), p.clone(), chunk.clone()));
    Ok((p, chunk))
}

/// `pipeline` with the thread allocation `ROIBIN_TUNING` holds for it on this host, if any.
///
/// A tuning file is advice (it never changes the bytes), so a bad one costs a warning on
/// stderr, once per file, never a failed write. `ROIBIN_VERBOSE=1` reports what was applied.
fn tuned(pipeline: Pipeline, chunk: &ArrayMeta) -> Pipeline {
    use roibin_registry::tuning;
    static WARNED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let verbose = std::env::var_os("ROIBIN_VERBOSE").is_some_and(|v| v != "0");
    let warn = |msg: String| {
        let mut w = WARNED.lock().unwrap_or_else(|e| e.into_inner());
        if !w.contains(&msg) {
            eprintln!("roibin plugin: {msg}");
            w.push(msg);
        }
    };
    let file = match tuning::from_env() {
        None => return pipeline,
        Some(Err(e)) => {
            warn(format!("ignoring {}: {e}", tuning::ENV));
            return pipeline;
        }
        Some(Ok(f)) => f,
    };
    let host = tuning::host();
    let Some(entry) = file.find(pipeline.stored_spec(), chunk.dtype, &chunk.shape, &host) else {
        if verbose {
            warn(format!(
                "no tuning for `{}` {chunk} on {host}",
                pipeline.stored_spec()
            ));
        }
        return pipeline;
    };
    let mut graph = pipeline.canonical().clone();
    let rebuilt = entry
        .apply(&mut graph)
        .and_then(|_| roibin_compressors::pipeline(&graph, chunk));
    match rebuilt {
        Ok(p) => {
            if verbose {
                warn(format!(
                    "tuned `{}` for {chunk}: {}",
                    p.stored_spec(),
                    p.canonical()
                ));
            }
            p
        }
        Err(e) => {
            warn(format!(
                "ignoring tuning for `{}`: {e}",
                pipeline.stored_spec()
            ));
            pipeline
        }
    }
}

/// Encode one chunk with the resolved cd_values into `out` (the container bytes).
pub fn encode_chunk(cd: &[u32], input: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let (pipeline, chunk) = encoder(cd)?;
    if input.len() != chunk.nbytes() {
        return Err(Error::Other(format!(
            "got {} bytes for a chunk of {chunk}",
            input.len()
        )));
    }
    container::encode_into(&pipeline, &chunk, input, out)
}

/// Largest chunk decoded for a dataset whose cd_values do not say its chunk shape (every
/// dataset roibin's `set_local` saw does): a chunk may then decode to at most this many bytes,
/// or [`UNRESOLVED_MAX_RATIO`] times its stored size if that is more.
pub const UNRESOLVED_MAX_BYTES: usize = 64 << 20;
/// See [`UNRESOLVED_MAX_BYTES`].
pub const UNRESOLVED_MAX_RATIO: usize = 1024;

/// Parse a stored chunk and check it against the dataset before anything is allocated: the
/// chunk's dtype and shape must be the dataset's (from resolved cd_values); without them, its
/// size must stay under [`UNRESOLVED_MAX_BYTES`] (or [`UNRESOLVED_MAX_RATIO`]× its stored
/// size). Returns the header.
pub fn check_chunk<'a>(cd: &[u32], input: &'a [u8]) -> Result<container::Header<'a>> {
    let h = container::read_header(input)?;
    match CdValues::from_words(cd)? {
        CdValues::Resolved { chunk, .. } => {
            if chunk != h.meta {
                return Err(Error::Other(format!(
                    "the chunk declares {} but the dataset's chunks are {chunk}: it was not written for this dataset",
                    h.meta
                )));
            }
        }
        CdValues::User(_) => {
            let cap = UNRESOLVED_MAX_BYTES.max(input.len().saturating_mul(UNRESOLVED_MAX_RATIO));
            if h.meta.nbytes() > cap {
                return Err(Error::Other(format!(
                    "the chunk declares {} ({} bytes) from {} stored bytes, and the dataset's filter parameters do not say its chunk shape; refusing more than {cap} bytes",
                    h.meta,
                    h.meta.nbytes(),
                    input.len()
                )));
            }
        }
    }
    Ok(h)
}

/// Hand `n` bytes written by `fill` to HDF5 in a malloc'd buffer, freeing the old one.
///
/// HDF5 frees the buffer with free(): it must be malloc'd memory, never a Rust allocation.
///
/// # Safety
/// `buf` must point at HDF5's malloc'd chunk buffer and `buf_size` at its size, as the filter
/// callback receives them. The new buffer is `n` bytes from malloc, fully written by `fill`
/// before the old one is freed; on error the new one is freed and HDF5's is left as it was.
unsafe fn replace_buffer(
    n: usize,
    buf_size: *mut usize,
    buf: *mut *mut c_void,
    fill: impl FnOnce(&mut [u8]) -> Result<()>,
) -> Result<usize> {
    let p = libc::malloc(n.max(1)) as *mut u8;
    if p.is_null() {
        return Err(Error::Other(format!("out of memory allocating {n} bytes")));
    }
    if let Err(e) = fill(std::slice::from_raw_parts_mut(p, n)) {
        libc::free(p as *mut c_void);
        return Err(e);
    }
    libc::free(*buf);
    *buf = p as *mut c_void;
    *buf_size = n;
    Ok(n)
}

unsafe extern "C" fn filter(
    flags: c_uint,
    cd_nelmts: usize,
    cd_values: *const c_uint,
    nbytes: usize,
    buf_size: *mut usize,
    buf: *mut *mut c_void,
) -> usize {
    let reverse = flags & H5Z_FLAG_REVERSE != 0;
    let func = if reverse {
        "filter (decode)"
    } else {
        "filter (encode)"
    };
    guarded(None, func, 0, || {
        let cd: &[u32] = if cd_nelmts == 0 || cd_values.is_null() {
            &[]
        } else {
            // SAFETY: HDF5 passes `cd_nelmts` valid words at `cd_values` (checked non-null above).
            unsafe { std::slice::from_raw_parts(cd_values, cd_nelmts) }
        };
        // SAFETY: HDF5 hands the filter a buffer `*buf` holding `nbytes` valid bytes.
        let input = unsafe { std::slice::from_raw_parts(*buf as *const u8, nbytes) };
        if reverse {
            // Decode straight into the buffer HDF5 gets back: no intermediate copy.
            let h = check_chunk(cd, input)?;
            // SAFETY: `buf_size`/`buf` are HDF5's in-out pointers; `replace_buffer` frees the old buffer only after the new one is filled.
            unsafe {
                replace_buffer(h.meta.nbytes(), buf_size, buf, |dst| {
                    container::decode_header_into(&h, dst)
                })
            }
        } else {
            // Encode into a buffer this thread keeps, then hand HDF5 a malloc'd copy.
            thread_local! {
                static OUT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
            }
            OUT.with(|o| {
                let mut out = o.borrow_mut();
                encode_chunk(cd, input, &mut out)?;
                // SAFETY: as above.
                unsafe {
                    replace_buffer(out.len(), buf_size, buf, |dst| {
                        dst.copy_from_slice(&out);
                        Ok(())
                    })
                }
            })
        }
    })
}
