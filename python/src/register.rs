//! Registering the filter with the libhdf5 that h5py carries, as hdf5plugin does.
//!
//! This process may hold two libhdf5: h5py's (a wheel bundles its own 2.x) and the system's
//! 1.10, which the STXM engine links. Ids of the two can collide, so the filter is registered
//! with h5py's only, found as hdf5plugin finds it: the `H5Zregister` that h5py's `h5z` module
//! resolves.

use libloading::os::unix::{Library, RTLD_LAZY};
use pyo3::prelude::*;
use std::ffi::{c_void, CStr};

/// Path of the shared library that defines `H5Zregister` as `module` (a loaded extension
/// module that links libhdf5) sees it.
fn libhdf5_of(module: &str) -> Result<String, String> {
    // SAFETY: RTLD_NOLOAD only returns a library already mapped into the process; nothing runs.
    let lib = unsafe { Library::open(Some(module), RTLD_LAZY | libc::RTLD_NOLOAD) }
        .map_err(|e| format!("`{module}` is not loaded: {e}"))?;
    // SAFETY: only the symbol's address is used, never called here.
    let sym = unsafe { lib.get::<*const c_void>(b"H5Zregister\0") }
        .map_err(|e| format!("`{module}` does not see H5Zregister: {e}"))?;
    let addr: *const c_void = *sym;
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: `addr` is a symbol address in a mapped library; `info` is a valid out pointer.
    if unsafe { libc::dladdr(addr, &mut info) } == 0 || info.dli_fname.is_null() {
        return Err("dladdr found no library for H5Zregister".into());
    }
    // SAFETY: dladdr set `dli_fname` to a NUL-terminated string owned by the loader.
    Ok(unsafe { CStr::from_ptr(info.dli_fname) }
        .to_string_lossy()
        .into_owned())
}

/// Register the roibin filter (443) with the libhdf5 that `module` (h5py's `h5z` extension
/// file) uses; returns that library's path. h5py then reads and writes filter 443 with no
/// `HDF5_PLUGIN_PATH`.
#[pyfunction]
pub fn register_filter(module: &str) -> PyResult<Vec<String>> {
    let target = libhdf5_of(module).map_err(crate::RoibinError::new_err)?;
    let same = |p: &str| {
        p == target
            || matches!(
                (std::fs::canonicalize(p), std::fs::canonicalize(&target)),
                (Ok(a), Ok(b)) if a == b
            )
    };
    let class = &h5roibin::FILTER_CLASS as *const h5roibin::H5ZClass2 as *const c_void;
    // SAFETY: FILTER_CLASS is a static H5Z_class2_t: valid for the whole process.
    unsafe { h5roibin::hdf5::register(class, same) }.map_err(crate::RoibinError::new_err)
}
