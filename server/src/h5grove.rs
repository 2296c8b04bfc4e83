//! An h5grove-compatible data API (v4, what h5web talks): `/meta/`, `/attr/`, `/data/`,
//! `/stats/`, `/paths/`, with `file` relative to the root. Datasets are read through the
//! process's HDF5 with roibin's filter (443) registered, so roibin-compressed files browse like
//! plain ones. Responses follow h5grove's (compared with the real one in
//! `h5tests/py/h5grove_diff.py`).
//!
//! Covered: groups, datasets and attributes of integer, float and string types; `selection`
//! with indices and `start:stop[:step]` slices; `format=json|bin|npy`; `dtype=origin|safe`;
//! `flatten`. Not covered yet: compound, enum and reference types, `format=csv|tiff`, link
//! metadata (`soft_link`/`external_link` kinds: links are followed).

use crate::api::ApiError;
use crate::paths::resolve;
use crate::State;
use axum::extract::{Query, State as Shared};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hdf5::types::{FloatSize, IntSize, TypeDescriptor};
use serde_json::{json, Value};
use std::sync::Arc;

type Result<T> = std::result::Result<T, ApiError>;

/// The routes (with and without the trailing slash).
pub fn routes() -> Router<Arc<State>> {
    let mut r = Router::new();
    for (p, h) in [
        ("meta", get(meta)),
        ("attr", get(attr)),
        ("data", get(data)),
        ("stats", get(stats)),
        ("paths", get(paths)),
    ] {
        r = r
            .route(&format!("/{p}/"), h.clone())
            .route(&format!("/{p}"), h);
    }
    r
}

fn err(status: StatusCode, m: impl Into<String>) -> ApiError {
    ApiError::plain(status, m)
}

fn h5(e: hdf5::Error) -> ApiError {
    err(StatusCode::NOT_FOUND, e.to_string())
}

/// Query words, as h5grove names them.
#[derive(Default)]
struct Q {
    file: String,
    path: String,
    attr_keys: Option<Vec<String>>,
    dtype: String,
    format: String,
    flatten: bool,
    selection: Option<String>,
}

fn parse(q: Vec<(String, String)>) -> Result<Q> {
    let mut out = Q {
        path: "/".into(),
        dtype: "origin".into(),
        format: "json".into(),
        ..Q::default()
    };
    for (k, v) in q {
        match k.as_str() {
            "file" => out.file = v,
            "path" => out.path = v,
            "attr_keys" => out.attr_keys.get_or_insert_with(Vec::new).push(v),
            "dtype" => out.dtype = v,
            "format" => out.format = v,
            "flatten" => out.flatten = matches!(v.as_str(), "true" | "1" | "True"),
            "selection" => out.selection = Some(v),
            _ => {}
        }
    }
    if out.file.is_empty() {
        return Err(err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "file: give the file's path",
        ));
    }
    Ok(out)
}

/// Run `f` on the opened file, on a blocking thread, under the HDF5 lock.
async fn with_file<T: Send + 'static>(
    st: &Arc<State>,
    q: &Q,
    f: impl FnOnce(&hdf5::File) -> Result<T> + Send + 'static,
) -> Result<T> {
    let path = resolve(&st.root, &q.file)?;
    tokio::task::spawn_blocking(move || {
        hdf5::sync::sync(|| {
            roibin_h5io_register();
            let file =
                hdf5::File::open(&path).map_err(|e| err(StatusCode::NOT_FOUND, e.to_string()))?;
            f(&file)
        })
    })
    .await
    .map_err(|_| {
        err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the request's work failed (please report)",
        )
    })?
}

fn roibin_h5io_register() {
    // Idempotent; without it roibin's chunks would not decode in this process.
    let _ = roibin_h5io::register_filter();
    roibin_stxm::bslz4::register_hdf5_filter();
}

/// (id, name) of a dataset's filters, as HDF5 names them.
fn filter_names(ds: &hdf5::Dataset) -> Vec<(i32, String)> {
    use hdf5_sys::{h5d, h5p};
    let mut out = vec![];
    // SAFETY: the dataset id is open; the creation property list is closed below; the name
    // buffer has 256 bytes and H5Pget_filter2 writes at most that, NUL-terminated.
    unsafe {
        let dcpl = h5d::H5Dget_create_plist(ds.id());
        if dcpl < 0 {
            return out;
        }
        for i in 0..h5p::H5Pget_nfilters(dcpl).max(0) {
            let (mut flags, mut n, mut cd, mut conf) = (0u32, 0usize, [0u32; 1], 0u32);
            let mut name = [0 as std::ffi::c_char; 256];
            let id = h5p::H5Pget_filter2(
                dcpl,
                i as u32,
                &mut flags,
                &mut n,
                cd.as_mut_ptr(),
                name.len(),
                name.as_mut_ptr(),
                &mut conf,
            );
            let name = std::ffi::CStr::from_ptr(name.as_ptr())
                .to_string_lossy()
                .into_owned();
            out.push((id, name));
        }
        h5p::H5Pclose(dcpl);
    }
    out
}

/// Last path segment (h5grove: `path.split("/")[-1]`).
fn name_of(path: &str) -> String {
    path.rsplit('/').next().unwrap_or("").to_string()
}

fn join(base: &str, name: &str) -> String {
    if base.ends_with('/') {
        format!("{base}{name}")
    } else {
        format!("{base}/{name}")
    }
}

/// h5grove's type metadata of a datatype.
fn type_meta(dt: &hdf5::Datatype) -> Result<Value> {
    let size = dt.size();
    let d = dt
        .to_descriptor()
        .map_err(|e| err(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let int = |signed: bool, s: &IntSize| {
        let n = *s as usize;
        json!({"class": 0, "dtype": format!("{}{}{}", if n == 1 { "|" } else { "<" }, if signed { "i" } else { "u" }, n), "size": size, "order": 0, "sign": signed as i32})
    };
    Ok(match &d {
        TypeDescriptor::Integer(s) => int(true, s),
        TypeDescriptor::Unsigned(s) => int(false, s),
        TypeDescriptor::Boolean => int(false, &IntSize::U1),
        TypeDescriptor::Float(s) => {
            let n = match s {
                FloatSize::U4 => 4,
                FloatSize::U8 => 8,
                #[allow(unreachable_patterns)]
                _ => size,
            };
            json!({"class": 1, "dtype": format!("<f{n}"), "size": size, "order": 0})
        }
        TypeDescriptor::FixedAscii(n) | TypeDescriptor::FixedUnicode(n) => json!({
            "class": 3, "dtype": format!("|S{n}"), "size": size,
            "cset": matches!(d, TypeDescriptor::FixedUnicode(_)) as i32, "strpad": str_pad(dt), "vlen": false
        }),
        TypeDescriptor::VarLenAscii | TypeDescriptor::VarLenUnicode => json!({
            "class": 3, "dtype": "|O", "size": size,
            "cset": matches!(d, TypeDescriptor::VarLenUnicode) as i32, "strpad": str_pad(dt), "vlen": true
        }),
        other => {
            return Err(err(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("type {other} is not served yet"),
            ))
        }
    })
}

fn str_pad(dt: &hdf5::Datatype) -> i32 {
    // SAFETY: `dt` is an open datatype id; H5Tget_strpad only reads it.
    unsafe { hdf5_sys::h5t::H5Tget_strpad(dt.id()) as i32 }
}

fn attr_list(loc: &hdf5::Location) -> Result<Value> {
    let mut names = loc.attr_names().map_err(h5)?;
    names.sort();
    names
        .iter()
        .map(|n| {
            let a = loc.attr(n).map_err(h5)?;
            Ok(json!({"name": n, "shape": a.shape(), "type": type_meta(&a.dtype().map_err(h5)?)?}))
        })
        .collect::<Result<Vec<_>>>()
        .map(Value::Array)
}

/// Values of a container (attribute or dataset) as JSON, C order, shaped.
fn values(c: &hdf5::Container) -> Result<Value> {
    let d = c
        .dtype()
        .map_err(h5)?
        .to_descriptor()
        .map_err(|e| err(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let flat: Vec<Value> = match d {
        TypeDescriptor::VarLenUnicode => c
            .read_raw::<hdf5::types::VarLenUnicode>()
            .map_err(h5)?
            .iter()
            .map(|s| json!(s.as_str()))
            .collect(),
        TypeDescriptor::VarLenAscii => c
            .read_raw::<hdf5::types::VarLenAscii>()
            .map_err(h5)?
            .iter()
            .map(|s| json!(s.as_str()))
            .collect(),
        TypeDescriptor::FixedAscii(_) | TypeDescriptor::FixedUnicode(_) => {
            // Read as bytes of the fixed size and cut at the first NUL.
            let n = c.dtype().map_err(h5)?.size();
            let raw = read_bytes(c)?;
            raw.chunks(n.max(1))
                .map(|b| {
                    json!(
                        String::from_utf8_lossy(b.split(|&x| x == 0).next().unwrap_or(&[]))
                            .into_owned()
                    )
                })
                .collect()
        }
        TypeDescriptor::Float(_) => c
            .read_raw::<f64>()
            .map_err(h5)?
            .into_iter()
            .map(num)
            .collect(),
        TypeDescriptor::Integer(_) => c
            .read_raw::<i64>()
            .map_err(h5)?
            .into_iter()
            .map(|v| json!(v))
            .collect(),
        TypeDescriptor::Unsigned(_) | TypeDescriptor::Boolean => c
            .read_raw::<u64>()
            .map_err(h5)?
            .into_iter()
            .map(|v| json!(v))
            .collect(),
        other => {
            return Err(err(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("type {other} is not served yet"),
            ))
        }
    };
    Ok(shape_json(flat, &c.shape()))
}

fn read_bytes(c: &hdf5::Container) -> Result<Vec<u8>> {
    let n = c.dtype().map_err(h5)?.size();
    let total = c.size() * n;
    let mut buf = vec![0u8; total];
    // SAFETY: `buf` holds size·element-size bytes; the memory type is the container's own
    // (fixed-length strings are read as they are stored).
    let r = unsafe {
        let t = hdf5_sys::h5a::H5Aget_type(c.id());
        let r = if hdf5_sys::h5i::H5Iget_type(c.id()) == hdf5_sys::h5i::H5I_type_t::H5I_ATTR {
            hdf5_sys::h5a::H5Aread(c.id(), t, buf.as_mut_ptr() as *mut _)
        } else {
            -1
        };
        hdf5_sys::h5t::H5Tclose(t);
        r
    };
    if r < 0 {
        return Err(err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "cannot read the fixed-length strings",
        ));
    }
    Ok(buf)
}

fn num(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

fn shape_json(flat: Vec<Value>, shape: &[usize]) -> Value {
    match shape {
        [] => flat.into_iter().next().unwrap_or(Value::Null),
        [_] => Value::Array(flat),
        [_, rest @ ..] => {
            let inner: usize = rest.iter().product();
            Value::Array(
                flat.chunks(inner.max(1))
                    .map(|c| shape_json(c.to_vec(), rest))
                    .collect(),
            )
        }
    }
}

fn dataset_meta(ds: &hdf5::Dataset, path: &str) -> Result<Value> {
    let filters = filter_names(ds);
    Ok(json!({
        "attributes": attr_list(ds)?,
        "chunks": ds.chunk(),
        "filters": if filters.is_empty() { Value::Null } else { json!(filters.into_iter().map(|(id, name)| json!({"id": id, "name": name})).collect::<Vec<_>>()) },
        "kind": "dataset",
        "name": name_of(path),
        "shape": ds.shape(),
        "type": type_meta(&ds.dtype().map_err(h5)?)?,
    }))
}

fn entity_meta(f: &hdf5::File, path: &str, depth: usize) -> Result<Value> {
    if let Ok(ds) = f.dataset(path) {
        return dataset_meta(&ds, path);
    }
    let g = f
        .group(path)
        .map_err(|_| err(StatusCode::NOT_FOUND, format!("{path} is not a valid path")))?;
    let mut m = json!({"attributes": attr_list(&g)?, "kind": "group", "name": name_of(path)});
    if depth > 0 {
        let children = g
            .member_names()
            .map_err(h5)?
            .iter()
            .map(|c| entity_meta(f, &join(path, c), depth - 1))
            .collect::<Result<Vec<_>>>()?;
        m["children"] = Value::Array(children);
    }
    Ok(m)
}

async fn meta(
    Shared(st): Shared<Arc<State>>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let q = parse(q)?;
    let path = q.path.clone();
    let v = with_file(&st, &q, move |f| entity_meta(f, &path, 1)).await?;
    Ok(axum::Json(v).into_response())
}

async fn attr(
    Shared(st): Shared<Arc<State>>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let q = parse(q)?;
    let (path, keys) = (q.path.clone(), q.attr_keys.clone());
    let v = with_file(&st, &q, move |f| {
        let loc: hdf5::Location = match f.dataset(&path) {
            Ok(d) => (**d).clone(),
            Err(_) => (*f
                .group(&path)
                .map_err(|_| err(StatusCode::NOT_FOUND, format!("{path} is not a valid path")))?)
            .clone(),
        };
        let names = match keys {
            Some(k) => k,
            None => loc.attr_names().map_err(h5)?,
        };
        let mut out = serde_json::Map::new();
        for n in names {
            let a = loc
                .attr(&n)
                .map_err(|_| err(StatusCode::NOT_FOUND, format!("no attribute {n}")))?;
            out.insert(n, values(&a)?);
        }
        Ok(Value::Object(out))
    })
    .await?;
    Ok(axum::Json(v).into_response())
}

/// One member of a selection, resolved against an axis of `n`: an index or (start, stop, step).
enum Member {
    Index(usize),
    Range(usize, usize, usize),
}

fn members(selection: Option<&str>, shape: &[usize]) -> Result<Vec<Member>> {
    let bad = |m: &str| {
        err(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("selection: `{m}` is not an index or start:stop[:step]"),
        )
    };
    let parts: Vec<&str> = match selection {
        None => vec![],
        Some(s) => s.split(',').map(str::trim).collect(),
    };
    if parts.len() > shape.len() {
        return Err(err(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "selection has too many members to slice a {}D dataset",
                shape.len()
            ),
        ));
    }
    let norm = |v: i64, n: usize| -> usize {
        if v < 0 {
            (n as i64 + v).max(0) as usize
        } else {
            (v as usize).min(n)
        }
    };
    shape
        .iter()
        .enumerate()
        .map(|(i, &n)| match parts.get(i) {
            None => Ok(Member::Range(0, n, 1)),
            Some(m) if !m.contains(':') => {
                let v: i64 = m.parse().map_err(|_| bad(m))?;
                let k = if v < 0 { n as i64 + v } else { v };
                if k < 0 || k as usize >= n {
                    return Err(err(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!("selection: index {v} is out of bounds for an axis of {n}"),
                    ));
                }
                Ok(Member::Index(k as usize))
            }
            Some(m) => {
                let f: Vec<&str> = m.split(':').collect();
                if f.len() > 3 {
                    return Err(bad(m));
                }
                let get = |s: Option<&&str>| -> Result<Option<i64>> {
                    match s {
                        Some(s) if !s.is_empty() => s.parse().map(Some).map_err(|_| bad(m)),
                        _ => Ok(None),
                    }
                };
                let step = get(f.get(2))?.unwrap_or(1);
                if step <= 0 {
                    return Err(bad(m));
                }
                let start = get(f.first())?.map_or(0, |v| norm(v, n));
                let stop = get(f.get(1))?.map_or(n, |v| norm(v, n)).max(start);
                Ok(Member::Range(start, stop, step as usize))
            }
        })
        .collect()
}

/// The selected values (as f64 with their dtype) and the selection's shape.
fn select(
    ds: &roibin_h5io::Dataset,
    selection: Option<&str>,
    max: usize,
) -> Result<(Vec<f64>, Vec<usize>)> {
    let m = members(selection, &ds.shape)?;
    let (bytes, count) = read_span(ds, &m, max)?;
    let mut all = vec![];
    roibin_registry::metrics::to_f64_into(&bytes, ds.dtype, &mut all);
    // Apply steps, drop indexed axes.
    let mut shape = vec![];
    let mut keep: Vec<Vec<usize>> = vec![];
    for (k, m) in m.iter().enumerate() {
        match m {
            Member::Index(_) => keep.push(vec![0]),
            Member::Range(_, _, step) => {
                let idx: Vec<usize> = (0..count[k]).step_by(*step).collect();
                shape.push(idx.len());
                keep.push(idx);
            }
        }
    }
    let mut out = Vec::with_capacity(keep.iter().map(Vec::len).product());
    let mut pos = vec![0usize; keep.len()];
    if keep.iter().all(|k| !k.is_empty()) {
        loop {
            let mut flat = 0;
            for (d, p) in pos.iter().enumerate() {
                flat = flat * count[d] + keep[d][*p];
            }
            out.push(all[flat]);
            let mut d = keep.len();
            loop {
                if d == 0 {
                    return Ok((out, shape));
                }
                d -= 1;
                pos[d] += 1;
                if pos[d] < keep[d].len() {
                    break;
                }
                pos[d] = 0;
            }
        }
    }
    Ok((out, shape))
}

/// The selection's bytes when it is one box (indices and step-1 ranges), else None.
fn select_box(
    ds: &roibin_h5io::Dataset,
    selection: Option<&str>,
    max: usize,
) -> Result<Option<(Vec<u8>, Vec<usize>)>> {
    let m = members(selection, &ds.shape)?;
    if m.iter()
        .any(|m| matches!(m, Member::Range(_, _, step) if *step != 1))
    {
        return Ok(None);
    }
    let (bytes, _) = read_span(ds, &m, max)?;
    let shape = m
        .iter()
        .filter_map(|m| match m {
            Member::Index(_) => None,
            Member::Range(s, e, _) => Some(e - s),
        })
        .collect();
    Ok(Some((bytes, shape)))
}

/// The bytes of the box a selection spans (steps not applied yet) and its size per axis; the
/// size is checked against `max` before anything is read.
fn read_span(ds: &roibin_h5io::Dataset, m: &[Member], max: usize) -> Result<(Vec<u8>, Vec<usize>)> {
    let start: Vec<usize> = m
        .iter()
        .map(|m| match m {
            Member::Index(i) => *i,
            Member::Range(s, _, _) => *s,
        })
        .collect();
    let count: Vec<usize> = m
        .iter()
        .map(|m| match m {
            Member::Index(_) => 1,
            Member::Range(s, e, _) => e - s,
        })
        .collect();
    let total: usize = count.iter().product();
    if total > max {
        return Err(err(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("selection: {total} values, at most {max} per request (select a slice)"),
        ));
    }
    let bytes = if total == 0 {
        vec![]
    } else {
        ds.read_box(&start, &count)
            .map_err(|e| err(StatusCode::UNPROCESSABLE_ENTITY, format!("{e:#}")))?
    };
    Ok((bytes, count))
}

fn open_dataset(f: &hdf5::File, path: &str) -> Result<roibin_h5io::Dataset> {
    let file = roibin_h5io::File::open(&f.filename())
        .map_err(|e| err(StatusCode::NOT_FOUND, format!("{e:#}")))?;
    file.dataset(path)
        .map_err(|_| err(StatusCode::NOT_FOUND, format!("{path} is not a dataset")))
}

/// numpy's dtype string and element writer for `dtype=origin|safe` (safe: what a JS typed
/// array holds; every integer and float type roibin reads already is one, but 64-bit ints).
fn encode_elems(dtype: roibin_registry::DType, safe: bool, v: &[f64]) -> (String, Vec<u8>) {
    use roibin_registry::DType::*;
    let t = match (dtype, safe) {
        (U64, true) => U64,
        (t, _) => t,
    };
    let mut out = Vec::with_capacity(v.len() * t.size());
    for &x in v {
        match t {
            U8 => out.push(x as u8),
            I8 => out.push(x as i8 as u8),
            U16 => out.extend((x as u16).to_le_bytes()),
            I16 => out.extend((x as i16).to_le_bytes()),
            U32 => out.extend((x as u32).to_le_bytes()),
            I32 => out.extend((x as i32).to_le_bytes()),
            U64 => out.extend((x as u64).to_le_bytes()),
            I64 => out.extend((x as i64).to_le_bytes()),
            F32 => out.extend((x as f32).to_le_bytes()),
            F64 => out.extend(x.to_le_bytes()),
        }
    }
    let s = match t {
        U8 => "|u1".into(),
        I8 => "|i1".into(),
        F32 => "<f4".into(),
        F64 => "<f8".into(),
        t if t.is_signed_int() => format!("<i{}", t.size()),
        t => format!("<u{}", t.size()),
    };
    (s, out)
}

/// Values as nested JSON arrays, numbers written as h5py+orjson write them: float32 in its
/// shortest form (not widened to float64 digits), NaN and infinities as null.
fn json_text(v: &[f64], shape: &[usize], dtype: roibin_registry::DType) -> String {
    fn one(x: f64, dtype: roibin_registry::DType, out: &mut String) {
        use std::fmt::Write;
        if !x.is_finite() {
            out.push_str("null");
        } else if dtype == roibin_registry::DType::F32 {
            let _ = write!(out, "{:?}", x as f32);
        } else if dtype.is_float() {
            let _ = write!(out, "{x:?}");
        } else {
            let _ = write!(out, "{}", x as i64);
        }
    }
    fn rec(v: &[f64], shape: &[usize], dtype: roibin_registry::DType, out: &mut String) {
        match shape {
            [] => one(v.first().copied().unwrap_or(f64::NAN), dtype, out),
            [_, rest @ ..] => {
                let inner: usize = rest.iter().product::<usize>().max(1);
                out.push('[');
                for (i, c) in v.chunks(inner).enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    rec(c, rest, dtype, out);
                }
                out.push(']');
            }
        }
    }
    let mut out = String::new();
    rec(v, shape, dtype, &mut out);
    out
}

fn npy(descr: &str, shape: &[usize], body: &[u8]) -> Vec<u8> {
    let shape_s = match shape {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        s => format!(
            "({})",
            s.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_s}, }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(body);
    out
}

async fn data(
    Shared(st): Shared<Arc<State>>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let q = parse(q)?;
    if !["origin", "safe"].contains(&q.dtype.as_str()) {
        return Err(err(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Unsupported dtype {}", q.dtype),
        ));
    }
    if !["json", "bin", "npy"].contains(&q.format.as_str()) {
        return Err(err(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("format: {} is not served (json, bin, npy)", q.format),
        ));
    }
    let max = st.limits.pixels;
    let (path, sel, format, safe, flatten) = (
        q.path.clone(),
        q.selection.clone(),
        q.format.clone(),
        q.dtype == "safe",
        q.flatten,
    );
    let r = with_file(&st, &q, move |f| {
        let ds = open_dataset(f, &path)?;
        if format != "json" {
            // A selection without steps is one box: its bytes go out as HDF5 read them
            // (little-endian; every type served is already JS-safe).
            if let Some((bytes, mut shape)) = select_box(&ds, sel.as_deref(), max)? {
                if flatten && !shape.is_empty() {
                    shape = vec![shape.iter().product()];
                }
                let descr = encode_elems(ds.dtype, safe, &[]).0;
                return Ok((
                    "application/octet-stream",
                    if format == "bin" {
                        bytes
                    } else {
                        npy(&descr, &shape, &bytes)
                    },
                ));
            }
        }
        let (v, mut shape) = select(&ds, sel.as_deref(), max)?;
        if flatten && !shape.is_empty() {
            shape = vec![v.len()];
        }
        Ok(match format.as_str() {
            "json" => (
                "application/json",
                json_text(&v, &shape, ds.dtype).into_bytes(),
            ),
            "bin" => (
                "application/octet-stream",
                encode_elems(ds.dtype, safe, &v).1,
            ),
            _ => {
                let (descr, body) = encode_elems(ds.dtype, safe, &v);
                ("application/octet-stream", npy(&descr, &shape, &body))
            }
        })
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, r.0)], r.1).into_response())
}

async fn stats(
    Shared(st): Shared<Arc<State>>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let q = parse(q)?;
    let max = st.limits.pixels;
    let (path, sel) = (q.path.clone(), q.selection.clone());
    let v = with_file(&st, &q, move |f| {
        let ds = open_dataset(f, &path)?;
        let (v, _) = select(&ds, sel.as_deref(), max)?;
        let float = ds.dtype.is_float();
        let v: Vec<f64> = if float { v.into_iter().filter(|x| x.is_finite()).collect() } else { v };
        if v.is_empty() {
            return Ok(json!({"strict_positive_min": null, "positive_min": null, "min": null, "max": null, "mean": null, "std": null}));
        }
        let cast = |x: f64| if float { num(x) } else { json!(x.trunc() as i64) };
        let min_of = |it: &mut dyn Iterator<Item = f64>| it.fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.min(x))));
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        Ok(json!({
            "strict_positive_min": min_of(&mut v.iter().copied().filter(|&x| x > 0.0)).map_or(Value::Null, cast),
            "positive_min": min_of(&mut v.iter().copied().filter(|&x| x >= 0.0)).map_or(Value::Null, cast),
            "min": cast(v.iter().copied().fold(f64::INFINITY, f64::min)),
            "max": cast(v.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
            "mean": cast(mean),
            "std": cast(std),
        }))
    })
    .await?;
    Ok(axum::Json(v).into_response())
}

async fn paths(
    Shared(st): Shared<Arc<State>>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let q = parse(q)?;
    let base = q.path.clone();
    let v = with_file(&st, &q, move |f| {
        let g = f
            .group(&base)
            .map_err(|_| err(StatusCode::NOT_FOUND, format!("{base} is not a group")))?;
        let mut out = vec![json!(base.clone())];
        fn visit(g: &hdf5::Group, prefix: &str, out: &mut Vec<Value>) -> Result<()> {
            for n in g.member_names().map_err(h5)? {
                let p = join(prefix, &n);
                out.push(json!(p.clone()));
                if let Ok(sub) = g.group(&n) {
                    visit(&sub, &p, out)?;
                }
            }
            Ok(())
        }
        visit(&g, &base, &mut out)?;
        Ok(Value::Array(out))
    })
    .await?;
    Ok(axum::Json(v).into_response())
}
