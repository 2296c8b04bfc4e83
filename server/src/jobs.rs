//! Super-grids (dada's `stxm/<path with {a...b}>/<first>?…`): one request runs many scans as
//! a queued job; `GET /jobs/<id>` reports lines done per scan, and each finished map is at its
//! own `/stxm/…` URL (served from the result cache).

use crate::api::{resolve_file, ApiError, Words};
use crate::State;
use axum::extract::{Path, State as Shared};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use roibin_stxm::RunOptions;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Most scans one super-grid may hold.
pub const MAX_SCANS: usize = 10_000;

/// One scan of a job.
pub struct Scan {
    pub path: String,
    pub url: String,
    pub lines: AtomicUsize,
    pub lines_done: AtomicUsize,
    pub error: Mutex<Option<String>>,
}

/// A queued super-grid.
pub struct Job {
    pub id: usize,
    pub scans: Vec<Scan>,
    pub done: AtomicUsize,
}

/// `{a...b}` (or `{a..b}`) in a path: the paths for a..=b.
pub fn expand(template: &str) -> Option<std::result::Result<Vec<String>, String>> {
    let open = template.find('{')?;
    let close = open + template[open..].find('}')?;
    let inner = &template[open + 1..close];
    let (a, b) = inner.split_once("...").or_else(|| inner.split_once(".."))?;
    let (a, b): (usize, usize) = match (a.trim().parse(), b.trim().parse()) {
        (Ok(a), Ok(b)) if a <= b => (a, b),
        _ => return Some(Err(format!("`{{{inner}}}`: give {{first...last}}"))),
    };
    if b - a + 1 > MAX_SCANS {
        return Some(Err(format!(
            "{} scans: at most {MAX_SCANS} per job",
            b - a + 1
        )));
    }
    Some(Ok((a..=b)
        .map(|n| format!("{}{n}{}", &template[..open], &template[close + 1..]))
        .collect()))
}

/// Start a job over `paths` (relative to the root) with the request words `w`; answers 202
/// with the job's status URL.
pub fn start(
    st: &Arc<State>,
    paths: Vec<String>,
    first: usize,
    w: Words,
    query: String,
) -> Result<Response, ApiError> {
    for p in &paths {
        resolve_file(st, p)?;
    }
    let id = {
        let mut jobs = st.jobs_list.lock().unwrap_or_else(|e| e.into_inner());
        let id = jobs.len();
        jobs.push(Arc::new(Job {
            id,
            scans: paths
                .iter()
                .map(|p| Scan {
                    path: p.clone(),
                    url: format!("/stxm/{p}/{first}?{query}"),
                    lines: AtomicUsize::new(0),
                    lines_done: AtomicUsize::new(0),
                    error: Mutex::new(None),
                })
                .collect(),
            done: AtomicUsize::new(0),
        }));
        id
    };
    let job = st.jobs_list.lock().unwrap_or_else(|e| e.into_inner())[id].clone();
    let st2 = st.clone();
    tokio::spawn(async move {
        for scan in &job.scans {
            let Ok(permit) = st2.jobs.clone().acquire_owned().await else {
                return;
            };
            let (st3, w2) = (st2.clone(), w.clone());
            let path = scan.path.clone();
            let job2 = job.clone();
            let k = job
                .scans
                .iter()
                .position(|s| std::ptr::eq(s, scan))
                .unwrap_or(0);
            let r = tokio::task::spawn_blocking(move || -> Result<(), String> {
                let _permit = permit;
                let file = resolve_file(&st3, &path).map_err(|e| e.to_string())?;
                let mut src =
                    roibin_stxm::source::open(&w2.target(&file)).map_err(|e| e.to_string())?;
                let mut req = w2.request.clone();
                req.first = first;
                let cols = req.scan.map_or(1, |s| s.1).max(1);
                let s = &job2.scans[k];
                s.lines
                    .store(req.scan.map_or(1, |s| s.0), Ordering::Relaxed);
                let frames = AtomicUsize::new(0);
                let progress = |n: usize| {
                    let f = frames.fetch_add(n, Ordering::Relaxed) + n;
                    s.lines_done.store(f / cols, Ordering::Relaxed);
                };
                let opts = RunOptions {
                    cache: st3.cache.as_ref(),
                    progress: Some(&progress),
                    ..RunOptions::default()
                };
                roibin_stxm::run(&req, src.as_mut(), &opts).map_err(|e| e.to_string())?;
                s.lines_done
                    .store(s.lines.load(Ordering::Relaxed), Ordering::Relaxed);
                Ok(())
            })
            .await;
            let err = match r {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some("the scan's work failed (please report)".into()),
            };
            *scan.error.lock().unwrap_or_else(|e| e.into_inner()) = err;
            job.done.fetch_add(1, Ordering::Relaxed);
        }
    });
    let body =
        serde_json::json!({"job": id, "status": format!("/jobs/{id}"), "scans": paths.len()});
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}

/// `GET /jobs/<id>`: progress per scan.
pub async fn status(
    Shared(st): Shared<Arc<State>>,
    Path(id): Path<usize>,
) -> Result<Response, ApiError> {
    let job = st
        .jobs_list
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::plain(StatusCode::NOT_FOUND, format!("no job {id}")))?;
    let done = job.done.load(Ordering::Relaxed);
    let scans: Vec<serde_json::Value> = job
        .scans
        .iter()
        .map(|s| {
            serde_json::json!({
                "path": s.path,
                "url": s.url,
                "lines": s.lines.load(Ordering::Relaxed),
                "lines_done": s.lines_done.load(Ordering::Relaxed),
                "error": *s.error.lock().unwrap_or_else(|e| e.into_inner()),
            })
        })
        .collect();
    let state = if done == job.scans.len() {
        "done"
    } else if done > 0 || scans.iter().any(|s| s["lines_done"] != 0) {
        "running"
    } else {
        "queued"
    };
    Ok(axum::Json(
        serde_json::json!({"job": job.id, "state": state, "scans_done": done, "scans": scans}),
    )
    .into_response())
}
