//! encode, decode, info and the registry, as Python functions.

use crate::array::{new_filled, with_bytes};
use crate::to_py;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use roibin_registry::{container, threads, Graph};

/// Parse `spec` and check every stage's codec and options (nested graphs included), without a
/// dtype: what can be checked before data arrives.
fn parse(spec: &str) -> PyResult<Graph> {
    // Link the codecs in (they register through `inventory`).
    let _ = roibin_compressors::codec_names();
    let graph: Graph = spec.parse().map_err(to_py)?;
    roibin_registry::check_graph(&graph).map_err(to_py)?;
    Ok(graph)
}

/// Encode a numpy array with the graph `spec` into one roibin chunk (self-describing bytes).
///
/// The GIL is released while encoding; `threads` (default: every core) bounds the workers.
#[pyfunction]
#[pyo3(signature = (array, spec = "auto", threads = None))]
pub fn encode<'py>(
    py: Python<'py>,
    array: &Bound<'py, PyAny>,
    spec: &str,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyBytes>> {
    let graph = parse(spec)?;
    let encoded = with_bytes(array, |meta, data| {
        py.detach(|| {
            threads::install(threads.unwrap_or(0), || {
                container::encode(&graph, &meta, data)
            })
        })
        .map_err(to_py)
    })?;
    Ok(PyBytes::new(py, &encoded))
}

/// Decode a roibin chunk into a new numpy array (decoded straight into the array's memory).
///
/// A chunk is untrusted input: before anything is allocated, its declared size must stay under
/// `max_bytes`, by default what the HDF5 filter allows a chunk it knows nothing about (64 MiB,
/// or 1024 times the stored size if that is more).
#[pyfunction]
#[pyo3(signature = (data, threads = None, max_bytes = None))]
pub fn decode<'py>(
    py: Python<'py>,
    data: &[u8],
    threads: Option<usize>,
    max_bytes: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let header = container::read_header(data).map_err(to_py)?;
    let cap = max_bytes.unwrap_or_else(|| {
        h5roibin::UNRESOLVED_MAX_BYTES
            .max(data.len().saturating_mul(h5roibin::UNRESOLVED_MAX_RATIO))
    });
    let meta = header.meta.clone();
    if meta.nbytes() > cap {
        return Err(crate::RoibinError::new_err(format!(
            "the chunk declares {meta} ({} bytes) from {} stored bytes, more than the {cap} allowed; pass max_bytes={} if you trust it",
            meta.nbytes(),
            data.len(),
            meta.nbytes()
        )));
    }
    new_filled(py, &meta, |dst| {
        threads::install(threads.unwrap_or(0), || {
            container::decode_header_into(&header, dst)
        })
        .map_err(to_py)
    })
}

/// What a chunk's header says, without decoding its payload.
#[pyfunction]
pub fn info<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let h = container::read_header(data).map_err(to_py)?;
    let d = PyDict::new(py);
    d.set_item("format_version", h.version)?;
    d.set_item("dtype", h.meta.dtype.name())?;
    d.set_item("shape", PyTuple::new(py, &h.meta.shape)?)?;
    d.set_item("spec", h.spec)?;
    d.set_item("stored_raw", h.raw)?;
    d.set_item("nbytes", h.meta.nbytes())?;
    d.set_item("stored_bytes", data.len())?;
    d.set_item("ratio", h.meta.nbytes() as f64 / data.len().max(1) as f64)?;
    let sections: Vec<usize> = h.sections.iter().map(|s| s.len()).collect();
    d.set_item("sections", sections)?;
    Ok(d)
}

/// Every registered codec: name, stream version, doc, options (name, type, default, doc) and
/// what it accepts.
#[pyfunction]
pub fn codecs(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let _ = roibin_compressors::codec_names();
    let out = PyList::empty(py);
    for c in roibin_registry::codecs() {
        let d = PyDict::new(py);
        d.set_item("name", c.name)?;
        d.set_item("version", c.version)?;
        d.set_item("doc", c.doc)?;
        let options = PyList::empty(py);
        for o in c.options {
            let od = PyDict::new(py);
            od.set_item("name", o.name)?;
            od.set_item("type", o.ty.to_string())?;
            od.set_item("default", (!o.default.is_empty()).then_some(o.default))?;
            od.set_item("doc", o.doc)?;
            options.append(od)?;
        }
        d.set_item("options", options)?;
        let dtypes: Vec<&str> = c.accepts.dtypes.iter().map(|t| t.name()).collect();
        d.set_item("dtypes", dtypes)?;
        d.set_item("ranks", c.accepts.ranks)?;
        d.set_item("accepts_bytes", c.accepts.bytes)?;
        out.append(d)?;
    }
    Ok(out)
}

/// Check a spec (codecs and options, nested graphs included); returns it in canonical form.
#[pyfunction]
pub fn check_spec(spec: &str) -> PyResult<String> {
    Ok(parse(spec)?.to_string())
}

/// The HDF5 `cd_values` (h5py `compression_opts`) that carry `spec` to the filter.
#[pyfunction]
pub fn cd_values<'py>(py: Python<'py>, spec: &str) -> PyResult<Bound<'py, PyTuple>> {
    parse(spec)?;
    let words = h5roibin::CdValues::User(spec.to_string())
        .to_words()
        .map_err(to_py)?;
    PyTuple::new(py, words)
}
