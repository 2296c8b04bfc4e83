//! The STXM engine: a raster scan reduced to a map, as a numpy array.

use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use roibin_stxm::{engine, source, Request, RunOptions};

fn request_error(e: roibin_stxm::Error) -> PyErr {
    match e {
        roibin_stxm::Error::Request { .. } => crate::SpecError::new_err(e.to_string()),
        _ => crate::RoibinError::new_err(e.to_string()),
    }
}

/// Reduce every frame of the scan in `target` (`FILE.h5[:/dataset]`, a DECTRIS master file or
/// a Merlin `.mib`) with the request `params` (dada's words: algo, signal, scan, roi, …, as
/// strings). Returns the values (rows × cols × per-point shape, NaN where a frame failed) and
/// a dict describing them. The GIL is released while frames are reduced.
#[pyfunction]
#[pyo3(signature = (target, params, decode = false, threads = None))]
pub fn stxm<'py>(
    py: Python<'py>,
    target: &str,
    params: Vec<(String, String)>,
    decode: bool,
    threads: Option<usize>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyDict>)> {
    let mut req = Request::default();
    for (k, v) in &params {
        req.set(k, v).map_err(request_error)?;
    }
    let target = target.to_string();
    let r = py
        .detach(|| {
            roibin_registry::threads::install(threads.unwrap_or(0), || {
                let mut src = source::open(&target)?;
                let opts = RunOptions {
                    decode,
                    ..RunOptions::default()
                };
                engine::run(&req, src.as_mut(), &opts)
            })
        })
        .map_err(request_error)?;
    let mut shape = vec![r.scan.0, r.scan.1];
    shape.extend(&r.value_shape);
    let values = PyArray1::from_vec(py, r.values.clone()).reshape(shape)?;
    let d = PyDict::new(py);
    d.set_item("request", &r.request)?;
    d.set_item("algo", &r.algo)?;
    d.set_item("signal", &r.signal)?;
    d.set_item("scan", r.scan)?;
    let axes = PyDict::new(py);
    for (name, v) in &r.value_axes {
        axes.set_item(name, PyArray1::from_vec(py, v.clone()))?;
    }
    d.set_item("value_axes", axes)?;
    d.set_item("failed", r.failed.clone())?;
    let stats = serde_json::to_value(&r.stats).expect("stats serialise");
    let sd = PyDict::new(py);
    if let serde_json::Value::Object(m) = stats {
        for (k, v) in m {
            match v {
                serde_json::Value::Bool(b) => sd.set_item(k, b)?,
                serde_json::Value::Number(n) if n.is_u64() => sd.set_item(k, n.as_u64())?,
                serde_json::Value::Number(n) => sd.set_item(k, n.as_f64())?,
                serde_json::Value::String(s) => sd.set_item(k, s)?,
                other => sd.set_item(k, other.to_string())?,
            }
        }
    }
    d.set_item("stats", sd)?;
    Ok((values.into_any(), d))
}

/// The STXM algorithms: name, signals (the first is the default) and doc.
#[pyfunction]
pub fn stxm_algorithms(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let out = PyList::empty(py);
    for a in roibin_stxm::algo::algorithms() {
        let d = PyDict::new(py);
        d.set_item("name", a.name)?;
        d.set_item("signals", a.signals.to_vec())?;
        d.set_item("doc", a.doc)?;
        out.append(d)?;
    }
    Ok(out)
}
