//! `roibin serve`: the HTTP API and web page over a data folder (see `roibin_server`).

use anyhow::{Context, Result};
use roibin_server::{Config, Limits};

#[derive(clap::Args)]
pub struct Args {
    /// The folder to serve (nothing outside it is reachable)
    #[arg(long)]
    root: String,
    /// Address to listen on (port 0: any free port, printed at start); any address but
    /// loopback needs --token
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: String,
    /// Result cache folder (default $XDG_CACHE_HOME/roibin/stxm)
    #[arg(long)]
    cache_dir: Option<String>,
    /// No result cache
    #[arg(long)]
    no_cache: bool,
    /// Token every request must carry (Authorization: Bearer T, or ?token=T)
    #[arg(long)]
    token: Option<String>,
    /// File holding the token (first line)
    #[arg(long)]
    token_file: Option<String>,
    /// Most frames one stxm request may reduce
    #[arg(long, default_value_t = 1 << 20)]
    max_frames: usize,
    /// Most pixels of one picture
    #[arg(long, default_value_t = 64 << 20)]
    max_pixels: usize,
    /// Seconds a request may take (then 504; a map goes on into the cache)
    #[arg(long, default_value_t = 120)]
    max_seconds: u64,
    /// Requests computed at once (default: one per core)
    #[arg(long)]
    jobs: Option<usize>,
    /// Stop after this many requests (tests)
    #[arg(long)]
    max_requests: Option<u64>,
}

pub fn run(a: Args) -> Result<()> {
    let token = match (&a.token, &a.token_file) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(f)) => Some(
            roibin_registry::spec::read_small_file(f, 4096)
                .with_context(|| format!("token-file: cannot read {f}"))?
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
        )
        .filter(|t| !t.is_empty()),
        _ => None,
    };
    let defaults = Limits::default();
    let config = Config {
        root: a.root.into(),
        bind: a
            .bind
            .parse()
            .with_context(|| format!("bind: `{}` is not ADDRESS:PORT", a.bind))?,
        cache_dir: a.cache_dir.map(Into::into),
        no_cache: a.no_cache,
        token,
        limits: Limits {
            frames: a.max_frames,
            pixels: a.max_pixels,
            request_time: std::time::Duration::from_secs(a.max_seconds),
            jobs: a.jobs.unwrap_or(defaults.jobs).max(1),
            ..defaults
        },
        max_requests: a.max_requests,
    };
    roibin_server::run(config)
}
