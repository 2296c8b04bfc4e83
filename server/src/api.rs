//! The routes: dada's show/multi/stxm, file and dataset listings, the page.

use crate::paths::{resolve, PathError};
use crate::State;
use axum::extract::{Path, Query, RawQuery, Request as HttpRequest, State as Shared};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use roibin_stxm::output::{self, Style};
use roibin_stxm::show::{self, Picture, StackOp};
use roibin_stxm::{Request, RunOptions};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// An error as the client sees it: a status and a JSON body naming the parameter at fault.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    param: Option<String>,
    message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.param {
            Some(p) => write!(f, "{p}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl ApiError {
    fn new(status: StatusCode, param: Option<&str>, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            param: param.map(Into::into),
            message: message.into(),
        }
    }

    /// An error about no one parameter.
    pub(crate) fn plain(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError::new(status, None, message)
    }

    fn bad(param: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, Some(param), message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": match &self.param {
                Some(p) => format!("{p}: {}", self.message),
                None => self.message.clone(),
            },
            "param": self.param,
        });
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<roibin_stxm::Error> for ApiError {
    fn from(e: roibin_stxm::Error) -> ApiError {
        match e {
            roibin_stxm::Error::Request { param, message } => ApiError::bad(&param, message),
            roibin_stxm::Error::Source(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, None, m)
            }
            roibin_stxm::Error::Other(e) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, None, format!("{e:#}"))
            }
        }
    }
}

impl From<PathError> for ApiError {
    fn from(e: PathError) -> ApiError {
        match e {
            PathError::Outside => ApiError::new(
                StatusCode::FORBIDDEN,
                Some("path"),
                "outside the served root",
            ),
            PathError::Missing => ApiError::new(
                StatusCode::NOT_FOUND,
                Some("path"),
                "no such file or folder",
            ),
        }
    }
}

type Result<T> = std::result::Result<T, ApiError>;

/// The routes, behind the token check; with `stop`, the server stops after that many requests.
pub fn router(state: Arc<State>, stop: Option<(u64, tokio::sync::watch::Sender<bool>)>) -> Router {
    let counter = Arc::new((AtomicU64::new(0), stop));
    Router::new()
        .route("/", get(index))
        .route("/app.js", get(app_js))
        .route("/files/", get(files))
        .route("/datasets/", get(datasets))
        .route("/show/{*rest}", get(show_frame))
        .route("/multi/{*rest}", get(multi_frames))
        .route("/stxm/{*rest}", get(stxm_map))
        .route("/jobs/{id}", get(crate::jobs::status))
        .merge(crate::h5grove::routes())
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, None, "no such route: /show/<path>/<frame>, /multi/<path>/<first>, /stxm/<path>/<first>, /files/, /datasets/")
        })
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .layer(middleware::from_fn(move |req: HttpRequest, next: Next| {
            let counter = counter.clone();
            async move {
                let r = next.run(req).await;
                let n = counter.0.fetch_add(1, Ordering::SeqCst) + 1;
                if let Some((max, tx)) = &counter.1 {
                    if n >= *max {
                        let _ = tx.send(true);
                    }
                }
                r
            }
        }))
        .with_state(state)
}

/// With `--token`, every request carries it (`Authorization: Bearer T` or `?token=T`).
async fn auth(Shared(st): Shared<Arc<State>>, req: HttpRequest, next: Next) -> Response {
    if let Some(t) = &st.token {
        let header_ok = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.strip_prefix("Bearer ") == Some(t.as_str()));
        let query_ok = req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv == format!("token={t}")));
        if !header_ok && !query_ok {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                Some("token"),
                "missing or wrong token",
            )
            .into_response();
        }
    }
    next.run(req).await
}

async fn index() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("../assets/index.html"),
    )
}

async fn app_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../assets/app.js"),
    )
}

/// Query words split by who reads them.
#[derive(Default, Clone)]
pub(crate) struct Words {
    pub(crate) request: Request,
    style: Style,
    format: String,
    dataset: Option<String>,
    stack: Option<(usize, StackOp)>,
    horz: Option<usize>,
    vert: Option<usize>,
    /// `job=1`: run the map as a job (the page follows its progress, then loads the map).
    job: bool,
}

fn number<T: std::str::FromStr>(param: &str, v: &str) -> Result<T> {
    v.parse()
        .map_err(|_| ApiError::bad(param, format!("`{v}` is not a number")))
}

impl Words {
    fn parse(q: Vec<(String, String)>) -> Result<Words> {
        let mut w = Words {
            format: "png".into(),
            ..Words::default()
        };
        for (k, v) in q {
            match k.as_str() {
                "format" => {
                    if !["png", "tiff_raw", "json", "ascii"].contains(&v.as_str()) {
                        return Err(ApiError::bad(
                            "format",
                            format!("`{v}`: png, tiff_raw, json or ascii"),
                        ));
                    }
                    w.format = v;
                }
                "palette" => {
                    if !output::PALETTES.contains(&v.as_str()) {
                        return Err(ApiError::bad(
                            "palette",
                            format!("`{v}`: one of {}", output::PALETTES.join(", ")),
                        ));
                    }
                    w.style.palette = v;
                }
                "log" => w.style.log = matches!(v.as_str(), "1" | "true" | "yes"),
                "cmin" => w.style.cmin = Some(number("cmin", &v)?),
                "cmax" => w.style.cmax = Some(number("cmax", &v)?),
                "dataset" => w.dataset = Some(v),
                "stack" => {
                    let (n, op) = v.split_once(',').unwrap_or((v.as_str(), "sum"));
                    w.stack = Some((number("stack", n)?, StackOp::parse(op)?));
                }
                "horz" => w.horz = Some(number("horz", &v)?),
                "vert" => w.vert = Some(number("vert", &v)?),
                "token" => {}
                "job" => w.job = matches!(v.as_str(), "1" | "true" | "yes"),
                _ => w.request.set(&k, &v)?,
            }
        }
        Ok(w)
    }

    pub(crate) fn target(&self, path: &std::path::Path) -> String {
        match &self.dataset {
            Some(d) => format!("{}:{d}", path.display()),
            None => path.display().to_string(),
        }
    }
}

/// A file below the root.
pub(crate) fn resolve_file(st: &State, rel: &str) -> Result<std::path::PathBuf> {
    let path = resolve(&st.root, rel)?;
    if !path.is_file() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Some("path"),
            format!("{rel}: not a file"),
        ));
    }
    Ok(path)
}

/// `<path>/<number>`: the path as given and the number.
fn split_rest<'a>(rest: &'a str, what: &str) -> Result<(&'a str, usize)> {
    let (file, n) = rest
        .rsplit_once('/')
        .ok_or_else(|| ApiError::bad(what, format!("give /<path>/<{what}>")))?;
    Ok((file, number(what, n)?))
}

/// `<path>/<number>`: the file below the root and the number.
fn split_path(st: &State, rest: &str, what: &str) -> Result<(std::path::PathBuf, usize)> {
    let (file, n) = split_rest(rest, what)?;
    Ok((resolve_file(st, file)?, n))
}

/// Run blocking work under the job limit and the request time limit.
async fn job<T: Send + 'static>(
    st: &Arc<State>,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let limit = st.limits.request_time;
    let permit = tokio::time::timeout(limit, st.jobs.clone().acquire_owned())
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "too many requests at once: try again",
            )
        })?
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, None, "shutting down"))?;
    let task = tokio::task::spawn_blocking(move || {
        let r = work();
        drop(permit);
        r
    });
    match tokio::time::timeout(limit, task).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, None, "the request's work failed (please report)")),
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            None,
            format!("took longer than {} s; a map finishes in the background and the same request will come from the cache", limit.as_secs()),
        )),
    }
}

/// A picture in the asked format.
fn encode(p: &Picture, w: &Words, request: &str, max_pixels: usize) -> Result<Response> {
    if p.height * p.width > max_pixels {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("roi"),
            format!(
                "{}×{} pixels: at most {max_pixels} per picture (bin or crop it)",
                p.height, p.width
            ),
        ));
    }
    let internal =
        |e: anyhow::Error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, None, format!("{e:#}"));
    let (ctype, body): (&str, Vec<u8>) = match w.format.as_str() {
        "png" => ("image/png", output::png_of(&p.values, p.height, p.width, &w.style, request).map_err(internal)?),
        "tiff_raw" => ("image/tiff", output::tiff_of(&p.values, p.height, p.width).map_err(internal)?),
        "json" => (
            "application/json",
            serde_json::json!({"request": request, "shape": [p.height, p.width], "data": output::json_of(&p.values, p.width)})
                .to_string()
                .into_bytes(),
        ),
        _ => ("text/plain; charset=utf-8", output::ascii_of(&p.values, p.width).into_bytes()),
    };
    let mut r = ([(header::CONTENT_TYPE, ctype)], body).into_response();
    if let Ok(v) = HeaderValue::from_str(request) {
        r.headers_mut().insert("x-roibin-request", v);
    }
    Ok(r)
}

async fn show_frame(
    Shared(st): Shared<Arc<State>>,
    Path(rest): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let (path, frame) = split_path(&st, &rest, "frame")?;
    let w = Words::parse(q)?;
    let st2 = st.clone();
    job(&st, move || {
        let entry = st2.viewers.get(&w.target(&path), &path, &w.request)?;
        let (n, op) = w.stack.unwrap_or((1, StackOp::Sum));
        let p = {
            let mut src = entry.source.lock().unwrap_or_else(|e| e.into_inner());
            entry.viewer.show(src.as_mut(), frame, n, op)?
        };
        encode(&p, &w, &w.request.canonical(), st2.limits.pixels)
    })
    .await
}

async fn multi_frames(
    Shared(st): Shared<Arc<State>>,
    Path(rest): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let (path, first) = split_path(&st, &rest, "first")?;
    let w = Words::parse(q)?;
    let st2 = st.clone();
    job(&st, move || {
        let mut src = roibin_stxm::source::open(&w.target(&path))?;
        let (horz, vert) = (w.horz.unwrap_or(4), w.vert.unwrap_or(4));
        let p = show::multi(src.as_mut(), &w.request, first, horz, vert)?;
        encode(&p, &w, &w.request.canonical(), st2.limits.pixels)
    })
    .await
}

async fn stxm_map(
    Shared(st): Shared<Arc<State>>,
    Path(rest): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    let (file, first) = split_rest(&rest, "first")?;
    let mut w = Words::parse(q)?;
    w.request.first = first;
    if let (Some(h), Some(v)) = (w.horz, w.vert) {
        w.request.set("scan", &format!("{v}x{h}"))?;
    }
    // A super-grid: many scans as one queued job; `job=1`: this one scan as a job.
    let query = || {
        raw.clone()
            .unwrap_or_default()
            .split('&')
            .filter(|kv| !kv.starts_with("job="))
            .collect::<Vec<_>>()
            .join("&")
    };
    if let Some(paths) = crate::jobs::expand(file) {
        let paths = paths.map_err(|m| ApiError::bad("path", m))?;
        return crate::jobs::start(&st, paths, first, w, query());
    }
    if w.job {
        return crate::jobs::start(&st, vec![file.to_string()], first, w, query());
    }
    let path = resolve_file(&st, file)?;
    if let Some((r, c)) = w.request.scan {
        if r * c > st.limits.frames {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                Some("scan"),
                format!("{r}×{c} frames: at most {} per request", st.limits.frames),
            ));
        }
    }
    // Identical requests in flight: the second waits for the first, then reads its result
    // from the cache.
    let key = format!("{}|{}|{}", w.target(&path), w.request.canonical(), w.format);
    let gate = st
        .inflight
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key.clone())
        .or_default()
        .clone();
    let _turn = gate.lock().await;
    let st2 = st.clone();
    let r = job(&st, move || {
        let mut src = roibin_stxm::source::open(&w.target(&path))?;
        let opts = RunOptions {
            cache: st2.cache.as_ref(),
            ..RunOptions::default()
        };
        let r = roibin_stxm::run(&w.request, src.as_mut(), &opts)?;
        if r.per_point() == 1 {
            let p = Picture {
                height: r.scan.0,
                width: r.scan.1,
                values: r.values.clone(),
            };
            let mut resp = encode(&p, &w, &r.request, st2.limits.pixels)?;
            let h = resp.headers_mut();
            h.insert("x-roibin-failed-frames", HeaderValue::from(r.failed.len()));
            h.insert(
                "x-roibin-cached",
                HeaderValue::from_static(if r.stats.cached { "true" } else { "false" }),
            );
            return Ok(resp);
        }
        if w.format != "json" {
            return Err(ApiError::bad(
                "format",
                format!(
                    "a {} result has {:?} values per scan point: ask format=json",
                    r.algo, r.value_shape
                ),
            ));
        }
        Ok((
            [(header::CONTENT_TYPE, "application/json")],
            output::json(&r).to_string(),
        )
            .into_response())
    })
    .await;
    st.inflight
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&key);
    r
}

#[derive(serde::Deserialize)]
struct PathQuery {
    #[serde(default)]
    path: String,
}

/// Folders and scan files of a folder below the root.
async fn files(Shared(st): Shared<Arc<State>>, Query(q): Query<PathQuery>) -> Result<Response> {
    let dir = if q.path.is_empty() {
        st.root.clone()
    } else {
        resolve(&st.root, &q.path)?
    };
    if !dir.is_dir() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Some("path"),
            "not a folder",
        ));
    }
    let mut entries = vec![];
    for e in std::fs::read_dir(&dir)
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, Some("path"), e.to_string()))?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let Ok(meta) = std::fs::metadata(e.path()) else {
            continue;
        };
        let scan = [".h5", ".hdf5", ".nxs", ".cxi", ".mib"]
            .iter()
            .any(|x| name.ends_with(x));
        if meta.is_dir() {
            entries.push(serde_json::json!({"name": name, "kind": "folder"}));
        } else if scan {
            entries.push(serde_json::json!({"name": name, "kind": "file", "size": meta.len()}));
        }
    }
    entries.sort_by_key(|e| {
        (
            e["kind"] != "folder",
            e["name"].as_str().unwrap_or("").to_string(),
        )
    });
    Ok(axum::Json(serde_json::json!({"path": q.path, "entries": entries})).into_response())
}

/// The datasets of frames in a file (3-D and 4-D), with their shape, type and filters.
async fn datasets(Shared(st): Shared<Arc<State>>, Query(q): Query<PathQuery>) -> Result<Response> {
    let path = resolve(&st.root, &q.path)?;
    job(&st, move || {
        if path.extension().is_some_and(|e| e == "mib") {
            let src = roibin_stxm::source::open(&path.display().to_string())?;
            let i = src.info();
            return Ok(axum::Json(serde_json::json!({"datasets": [{"name": "", "shape": [i.frames, i.height, i.width], "dtype": i.dtype.to_string()}]})).into_response());
        }
        let list = hdf5::sync::sync(|| -> anyhow::Result<Vec<serde_json::Value>> {
            let f = roibin_h5io_list(&path)?;
            Ok(f)
        })
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, Some("path"), format!("{e:#}")))?;
        Ok(axum::Json(serde_json::json!({"datasets": list})).into_response())
    })
    .await
}

/// Datasets of rank 3 or 4 in an HDF5 file.
fn roibin_h5io_list(path: &std::path::Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let f = hdf5::File::open(path)?;
    let mut out = vec![];
    let mut todo = vec![("/".to_string(), f.group("/")?)];
    while let Some((prefix, g)) = todo.pop() {
        for name in g.member_names()? {
            let p = format!("{}{name}", prefix);
            if let Ok(sub) = g.group(&name) {
                todo.push((format!("{p}/"), sub));
            } else if let Ok(d) = g.dataset(&name) {
                let shape = d.shape();
                if shape.len() == 3 || shape.len() == 4 {
                    out.push(serde_json::json!({"name": p, "shape": shape}));
                }
            }
        }
    }
    out.sort_by_key(|v| v["name"].as_str().unwrap_or("").to_string());
    Ok(out)
}
