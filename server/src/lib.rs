//! `roibin serve`: dada's URL API over the STXM engine, and a web page, on axum/tokio.
//!
//! ```text
//! GET /show/<path>/<frame>?roi=&binning=&stack=N,max&empty=&cmin=&cmax=&log=1&palette=&format=png|tiff_raw|json|ascii
//! GET /multi/<path>/<first>?horz=&vert=&roi=&…           a grid of frames as one image
//! GET /stxm/<path>/<first>?algo=&signal=&horz=&vert=&roi=&polarroi=&radial=&…&format=…
//! GET /stxm/<path with {a...b}>/<first>?…                 a super-grid: 202 and a job
//! GET /jobs/<id>                                            its progress, lines done per scan
//! GET /files/?path=DIR                                      the root's folders and scan files
//! GET /datasets/?path=FILE                                  a file's datasets of frames
//! GET /meta/ /attr/ /data/ /stats/ /paths/?file=…&path=…    h5grove's data API (h5web)
//! GET /                                                     the web page
//! ```
//!
//! Paths are relative to `--root` and never leave it (`..`, absolute paths and symlinks out are
//! refused). Any address but loopback needs `--token`. The work runs on blocking threads
//! under a job limit; the STXM engine's result cache is shared, and identical requests in
//! flight wait for the first instead of computing again.

mod api;
mod h5grove;
mod jobs;
mod limits;
mod paths;
mod viewers;

pub use limits::Limits;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// How to serve.
#[derive(Debug, Clone)]
pub struct Config {
    pub root: PathBuf,
    pub bind: SocketAddr,
    pub cache_dir: Option<PathBuf>,
    pub no_cache: bool,
    pub token: Option<String>,
    pub limits: Limits,
    /// Stop after this many requests (tests); None: serve until stopped.
    pub max_requests: Option<u64>,
}

/// What every handler shares.
pub struct State {
    pub root: PathBuf,
    pub token: Option<String>,
    pub limits: Limits,
    pub cache: Option<roibin_stxm::cache::Cache>,
    /// Requests being computed, by key: a second identical one waits on the first's lock.
    pub inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub jobs: Arc<tokio::sync::Semaphore>,
    /// Super-grid jobs, by id.
    pub jobs_list: Mutex<Vec<Arc<jobs::Job>>>,
    /// Sources kept open, with their pre-processing, for `show`.
    pub viewers: viewers::Viewers,
}

/// Serve until stopped (or `max_requests`); prints the address it listens on first.
pub fn run(config: Config) -> anyhow::Result<()> {
    if !config.bind.ip().is_loopback() && config.token.is_none() {
        anyhow::bail!(
            "bind: {} is not a loopback address: give --token (or --token-file) so only those who hold it get in",
            config.bind
        );
    }
    let root = std::fs::canonicalize(&config.root)
        .map_err(|e| anyhow::anyhow!("root: {}: {e}", config.root.display()))?;
    if !root.is_dir() {
        anyhow::bail!("root: {} is not a folder", root.display());
    }
    let cache = if config.no_cache {
        None
    } else {
        let dir = config
            .cache_dir
            .clone()
            .unwrap_or_else(roibin_stxm::cache::Cache::default_dir);
        match roibin_stxm::cache::Cache::open(&dir, config.limits.cache_bytes) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!(
                    "warning: {e}; serving without the result cache (is another server using {}?)",
                    dir.display()
                );
                None
            }
        }
    };
    let state = Arc::new(State {
        root,
        token: config.token.clone(),
        jobs: Arc::new(tokio::sync::Semaphore::new(config.limits.jobs)),
        limits: config.limits.clone(),
        cache,
        inflight: Mutex::new(HashMap::new()),
        jobs_list: Mutex::new(Vec::new()),
        viewers: viewers::Viewers::default(),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.bind).await?;
        let addr = listener.local_addr()?;
        println!(
            "roibin serve: listening on http://{addr}/ (root {})",
            state.root.display()
        );
        use std::io::Write;
        std::io::stdout().flush().ok();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let app = api::router(state, config.max_requests.map(|n| (n, stop_tx)));
        let mut stop_rx = stop_rx;
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let ctrl_c = tokio::signal::ctrl_c();
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = async {
                        // Without --max-requests nobody holds the sender: wait for Ctrl-C only.
                        if stop_rx.wait_for(|s| *s).await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    } => {}
                }
            })
            .await?;
        Ok(())
    })
}
