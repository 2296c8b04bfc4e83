//! The few HDF5 functions the plugin needs, resolved at run time from the libhdf5 that the host
//! process already has loaded (h5py's bundled 2.x, Debian's 1.10, a facility writer's own).
//!
//! Linking libhdf5 would give the plugin a second copy whose ids mean nothing to the host's.

use libloading::os::unix::{Library, RTLD_LAZY};
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};

pub type Hid = i64;
type Herr = c_int;

/// Function table of one loaded libhdf5.
pub struct Api {
    pub path: String,
    _lib: Library,
    pub get_filter_by_id2: unsafe extern "C" fn(
        Hid,
        c_int,
        *mut c_uint,
        *mut usize,
        *mut c_uint,
        usize,
        *mut c_char,
        *mut c_uint,
    ) -> Herr,
    pub modify_filter: unsafe extern "C" fn(Hid, c_int, c_uint, usize, *const c_uint) -> Herr,
    pub get_chunk: unsafe extern "C" fn(Hid, c_int, *mut u64) -> c_int,
    pub get_nfilters: unsafe extern "C" fn(Hid) -> c_int,
    pub get_filter2: unsafe extern "C" fn(
        Hid,
        c_uint,
        *mut c_uint,
        *mut usize,
        *mut c_uint,
        usize,
        *mut c_char,
        *mut c_uint,
    ) -> c_int,
    pub tget_class: unsafe extern "C" fn(Hid) -> c_int,
    pub tget_size: unsafe extern "C" fn(Hid) -> usize,
    pub tget_sign: unsafe extern "C" fn(Hid) -> c_int,
    pub tget_order: unsafe extern "C" fn(Hid) -> c_int,
    /// `H5Zregister(const void *cls)`: how a host that does not scan plugin paths (Python,
    /// through `roibin.register()`) adds our class to its own libhdf5.
    zregister: unsafe extern "C" fn(*const c_void) -> Herr,
    is_valid: unsafe extern "C" fn(Hid) -> c_int,
    epush2: unsafe extern "C" fn(
        Hid,
        *const c_char,
        *const c_char,
        c_uint,
        Hid,
        Hid,
        Hid,
        *const c_char,
        ...
    ) -> Herr,
    /// HDF5 2.x pauses the error stack around every filter callback, which would drop our
    /// message. `H5Eis_paused` tells; the library's own (exported, argument-less) pause and
    /// resume let one message through without the API entry that would clear the stack.
    /// All absent in 1.10, where nothing is paused.
    ///
    /// What this relies on: `H5Eis_paused(hid_t, hbool_t *)` is public in 2.x;
    /// `H5E_resume_stack(void)` and `H5E_pause_stack(void)` are library-private but exported
    /// (herr_t, no arguments, H5Eint.c), a counting pause. If a future release drops them while
    /// still pausing, the message cannot reach the stack: it goes to stderr instead (see
    /// `push_error`), never lost and never a crash.
    is_paused: Option<unsafe extern "C" fn(Hid, *mut bool) -> Herr>,
    paused: Option<(
        unsafe extern "C" fn() -> Herr,
        unsafe extern "C" fn() -> Herr,
    )>,
    err_cls: *const Hid,
    maj_pline: *const Hid,
    min_callback: *const Hid,
}

// SAFETY: the raw pointers point at libhdf5's global id variables, valid while the library is loaded (it is never unloaded: `_lib` keeps it, and the host loaded it first); the function pointers are thread-safe to call as HDF5 serialises its API.
unsafe impl Send for Api {}
unsafe impl Sync for Api {}

impl Api {
    fn open(path: &str) -> Option<Api> {
        // RTLD_NOLOAD: take the copy already in the process, never load a new one.
        // SAFETY: RTLD_NOLOAD only returns a library already mapped into the process; no initialiser runs.
        let lib = unsafe { Library::open(Some(path), RTLD_LAZY | libc::RTLD_NOLOAD) }.ok()?;
        // SAFETY: each symbol is declared with the prototype of HDF5's public headers (1.10 and 2.x agree on all of them; the H5E_*_g variables are `hid_t`). `H5E_pause_stack`/`H5E_resume_stack` are private but exported in 2.x, take no arguments and return herr_t (see their definition in H5Eint.c); where absent (1.10) `paused` is None and nothing is paused.
        unsafe {
            macro_rules! sym {
                ($name:literal) => {
                    *lib.get(concat!($name, "\0").as_bytes()).ok()?
                };
            }
            macro_rules! var {
                ($name:literal) => {
                    // For a data symbol the "value" of the symbol is the variable's address.
                    *lib.get::<*const Hid>(concat!($name, "\0").as_bytes())
                        .ok()?
                };
            }
            Some(Api {
                path: path.to_string(),
                get_filter_by_id2: sym!("H5Pget_filter_by_id2"),
                modify_filter: sym!("H5Pmodify_filter"),
                get_chunk: sym!("H5Pget_chunk"),
                get_nfilters: sym!("H5Pget_nfilters"),
                get_filter2: sym!("H5Pget_filter2"),
                tget_class: sym!("H5Tget_class"),
                tget_size: sym!("H5Tget_size"),
                tget_sign: sym!("H5Tget_sign"),
                tget_order: sym!("H5Tget_order"),
                zregister: sym!("H5Zregister"),
                is_valid: sym!("H5Iis_valid"),
                epush2: sym!("H5Epush2"),
                is_paused: lib.get(b"H5Eis_paused\0").ok().map(|s| *s),
                paused: (|| {
                    Some((
                        *lib.get(b"H5E_resume_stack\0").ok()?,
                        *lib.get(b"H5E_pause_stack\0").ok()?,
                    ))
                })(),
                err_cls: var!("H5E_ERR_CLS_g"),
                maj_pline: var!("H5E_PLINE_g"),
                min_callback: var!("H5E_CALLBACK_g"),
                _lib: lib,
            })
        }
    }

    /// Push `msg` on this library's error stack, so the client shows it (h5py puts it in the exception).
    pub fn push_error(&self, func: &str, msg: &str) {
        let msg = CString::new(msg.replace('\0', " ")).unwrap_or_default();
        let func = CString::new(func).unwrap_or_default();
        // SAFETY: the function pointers come from `open`; the strings are NUL-terminated and outlive the calls; the format `%s` takes exactly the one string passed.
        unsafe {
            // Un-pause (counting), push, and pause again as many times: the stack ends as it was.
            let mut resumed = 0;
            let still_paused = |is_paused: unsafe extern "C" fn(Hid, *mut bool) -> Herr| {
                let mut p = false;
                is_paused(0, &mut p) >= 0 && p
            };
            if let (Some(is_paused), Some((resume, _))) = (self.is_paused, self.paused) {
                while resumed < 64 && still_paused(is_paused) {
                    resume();
                    resumed += 1;
                }
            }
            if self.is_paused.is_some_and(still_paused) {
                // Paused and no way to resume: the stack would drop the message.
                eprintln!(
                    "roibin filter: {}: {}",
                    func.to_string_lossy(),
                    msg.to_string_lossy()
                );
            }
            (self.epush2)(
                0, // H5E_DEFAULT
                c"roibin-filter".as_ptr(),
                func.as_ptr(),
                0,
                *self.err_cls,
                *self.maj_pline,
                *self.min_callback,
                c"%s".as_ptr(),
                msg.as_ptr(),
            );
            if let Some((_, pause)) = self.paused {
                for _ in 0..resumed {
                    pause();
                }
            }
        }
    }

    /// Whether this library knows `id` (picks the right copy when several are loaded).
    pub fn knows(&self, id: Hid) -> bool {
        // SAFETY: H5Iis_valid accepts any id value.
        unsafe { (self.is_valid)(id) > 0 }
    }
}

fn is_libhdf5(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let Some(rest) = name.strip_prefix("libhdf5") else {
        return false;
    };
    // libhdf5.so.*, libhdf5-<hash>.so.* (wheels), libhdf5_serial.so.* / libhdf5_openmpi.so.* (Debian);
    // not the high-level, C++ or Fortran libraries.
    !(rest.starts_with("_hl")
        || rest.starts_with("_cpp")
        || rest.starts_with("_fortran")
        || rest.contains("_hl"))
        && name.contains(".so")
}

/// Paths of every libhdf5 mapped into this process.
fn loaded_libhdf5() -> Vec<String> {
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut c_void,
    ) -> c_int {
        let out = &mut *(data as *mut Vec<String>);
        let name = (*info).dlpi_name;
        if !name.is_null() {
            if let Ok(s) = CStr::from_ptr(name).to_str() {
                if is_libhdf5(s) {
                    out.push(s.to_string());
                }
            }
        }
        0
    }
    let mut out: Vec<String> = vec![];
    // SAFETY: `each` casts `data` back to the `Vec<String>` passed here, which outlives the call; dl_iterate_phdr calls it synchronously.
    unsafe { libc::dl_iterate_phdr(Some(each), &mut out as *mut Vec<String> as *mut c_void) };
    out
}

/// Every libhdf5 seen in this process so far. Each is opened once and kept (leaked) for the
/// process's life, as the host never unloads the library it filters for.
static APIS: std::sync::Mutex<Vec<&'static Api>> = std::sync::Mutex::new(Vec::new());

/// Add the libhdf5s mapped since the last scan.
fn rescan() -> Vec<&'static Api> {
    let Ok(mut known) = APIS.lock() else {
        return vec![];
    };
    for path in loaded_libhdf5() {
        if !known.iter().any(|a| a.path == path) {
            if let Some(api) = Api::open(&path) {
                known.push(Box::leak(Box::new(api)));
            }
        }
    }
    known.clone()
}

/// Every usable libhdf5 in the process; scanned on first use (not at dlopen) and again while
/// none is found.
pub fn apis() -> Vec<&'static Api> {
    let known = APIS.lock().map(|k| k.clone()).unwrap_or_default();
    if known.is_empty() {
        rescan()
    } else {
        known
    }
}

/// Paths of the libraries [`register`] added our class to. HDF5 calls the filter back without
/// saying which library calls, and ids of two libraries in one process can collide (Python
/// with h5py's HDF5 2.x and Debian's 1.10 loaded by roibin's STXM engine): the one we
/// registered with is the one calling.
static REGISTERED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// The libhdf5 that owns `id`, or the only one loaded.
pub fn api_for(id: Hid) -> Option<&'static Api> {
    let all = apis();
    let registered = REGISTERED.lock().map(|r| r.clone()).unwrap_or_default();
    match all.as_slice() {
        [] => None,
        [one] => Some(*one),
        many => many
            .iter()
            .find(|a| registered.contains(&a.path) && a.knows(id))
            // Our class is only in the libraries we registered it with (HDF5 2.x hands
            // callbacks a property list id that its own H5Iis_valid denies).
            .or_else(|| many.iter().find(|a| registered.contains(&a.path)))
            .or_else(|| many.iter().find(|a| a.knows(id)))
            .or(many.first())
            .copied(),
    }
}

/// Register `class` (our `H5Z_class2_t`) with every libhdf5 loaded in this process whose path
/// `select` accepts; returns their paths. An error when none is loaded or one refuses.
///
/// # Safety
/// `class` must point to a valid `H5Z_class2_t` that lives as long as the process.
pub unsafe fn register(
    class: *const c_void,
    select: impl Fn(&str) -> bool,
) -> Result<Vec<String>, String> {
    let mut done = vec![];
    let all = rescan();
    for api in all.iter().filter(|a| select(&a.path)) {
        // SAFETY: `class` is valid for the process's lifetime (caller's contract); H5Zregister copies it.
        if unsafe { (api.zregister)(class) } < 0 {
            return Err(format!("H5Zregister failed in {}", api.path));
        }
        done.push(api.path.clone());
    }
    if done.is_empty() {
        let loaded: Vec<&str> = all.iter().map(|a| a.path.as_str()).collect();
        return Err(format!(
            "no matching libhdf5 in this process (loaded: {loaded:?}); import h5py first"
        ));
    }
    if let Ok(mut r) = REGISTERED.lock() {
        r.extend(done.iter().cloned());
    }
    Ok(done)
}

/// Report an error through whatever libhdf5 is loaded (stderr when none is).
pub fn report(id: Option<Hid>, func: &str, msg: &str) {
    let api = match id {
        Some(id) => api_for(id),
        None => apis().first().copied(),
    };
    if std::env::var_os("ROIBIN_DEBUG").is_some() {
        eprintln!(
            "roibin-filter: {func}: {msg} (via {:?})",
            api.map(|a| &a.path)
        );
    }
    match api {
        Some(api) => api.push_error(func, msg),
        None => eprintln!("roibin-filter: {func}: {msg}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn recognises_libhdf5_names() {
        for ok in [
            "/usr/lib/x86_64-linux-gnu/libhdf5_serial.so.103",
            "/x/h5py.libs/libhdf5-9e18f0c6.so.320.0.0",
            "/usr/lib/libhdf5.so.310",
        ] {
            assert!(super::is_libhdf5(ok), "{ok}");
        }
        for no in [
            "/x/h5py.libs/libhdf5_hl-69da89c9.so.320",
            "/usr/lib/libhdf5_serial_hl.so.100",
            "libhdf5_cpp.so",
            "libz.so",
        ] {
            assert!(!super::is_libhdf5(no), "{no}");
        }
    }
}
