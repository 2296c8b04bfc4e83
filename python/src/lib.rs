//! `roibin._roibin`: the compiled half of the `roibin` Python package (the Python half,
//! `roibin/__init__.py`, gives the friendly names and the h5py filter objects).
//!
//! Every call that codes data releases the GIL; errors arrive as Python exceptions whose
//! message is the Rust error's (it names the option, codec or stream at fault).

mod array;
mod codec;
mod register;
mod stxm;

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

create_exception!(
    roibin,
    RoibinError,
    PyValueError,
    "Base class of every error roibin raises (a ValueError: a spec, an option or bytes were wrong)."
);
create_exception!(
    roibin,
    SpecError,
    RoibinError,
    "A graph spec or option that is not valid; the message names it."
);
create_exception!(
    roibin,
    CorruptError,
    RoibinError,
    "Bytes that do not decode: truncated, corrupted, or not a roibin chunk."
);

/// A registry error as the Python exception users catch.
pub(crate) fn to_py(e: roibin_registry::Error) -> PyErr {
    use roibin_registry::Error as E;
    let msg = e.to_string();
    match e {
        E::Syntax { .. } | E::UnknownCodec { .. } | E::Option { .. } | E::Unsupported { .. } => {
            SpecError::new_err(msg)
        }
        E::Corrupt { .. } => CorruptError::new_err(msg),
        _ => RoibinError::new_err(msg),
    }
}

#[pymodule]
fn _roibin(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("RoibinError", py.get_type::<RoibinError>())?;
    m.add("SpecError", py.get_type::<SpecError>())?;
    m.add("CorruptError", py.get_type::<CorruptError>())?;
    m.add("FILTER_ID", h5roibin::FILTER_ID)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(codec::encode, m)?)?;
    m.add_function(wrap_pyfunction!(codec::decode, m)?)?;
    m.add_function(wrap_pyfunction!(codec::info, m)?)?;
    m.add_function(wrap_pyfunction!(codec::codecs, m)?)?;
    m.add_function(wrap_pyfunction!(codec::check_spec, m)?)?;
    m.add_function(wrap_pyfunction!(codec::cd_values, m)?)?;
    m.add_function(wrap_pyfunction!(register::register_filter, m)?)?;
    m.add_function(wrap_pyfunction!(stxm::stxm, m)?)?;
    m.add_function(wrap_pyfunction!(stxm::stxm_algorithms, m)?)?;
    Ok(())
}
