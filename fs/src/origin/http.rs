//! An HTTP/1.1 origin: range GETs checked against a strong ETag, `If-None-Match`
//! revalidation, JSON directory listings (nginx's `autoindex_format json`), and several
//! upstreams (a proxy tier) tried in turn within one deadline.

use super::{
    safe_name, DirEntry, EntryKind, FileMeta, Origin, OriginError, Revalidated, MAX_LISTING_ENTRIES,
};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Largest directory listing read (a listing is untrusted input like any file).
const MAX_LISTING_BYTES: u64 = 256 << 20;

pub struct HttpOrigin {
    /// `scheme://host:port/path` without a trailing slash: the identity blocks are keyed by.
    base: String,
    /// The origin's path (`/data`), appended to each upstream.
    base_path: String,
    /// `scheme://host:port` of every server to ask, in order; the origin itself when no
    /// `--upstream` is given.
    upstreams: Vec<String>,
    /// The upstream that answered last: asked first next time.
    preferred: AtomicUsize,
    timeout: Duration,
    agent: ureq::Agent,
}

/// How one attempt ended: done, worth asking the next upstream, or final.
enum Attempt<T> {
    Done(T),
    Retry(String),
    Fail(OriginError),
}

impl HttpOrigin {
    pub fn new(url: &str, upstreams: &[String], timeout: Duration) -> anyhow::Result<Self> {
        let base = url.trim_end_matches('/').to_string();
        let (authority, base_path) = split_url(&base)?;
        let upstreams = if upstreams.is_empty() {
            vec![authority]
        } else {
            upstreams
                .iter()
                .map(|u| {
                    let (a, p) = split_url(u.trim_end_matches('/'))?;
                    anyhow::ensure!(
                        p.is_empty(),
                        "upstream {u}: give scheme://host:port only; the origin's path ({base_path}) is appended"
                    );
                    Ok(a)
                })
                .collect::<anyhow::Result<_>>()?
        };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(timeout)
            .timeout(timeout)
            .redirects(2)
            .build();
        Ok(Self {
            base,
            base_path,
            upstreams,
            preferred: AtomicUsize::new(0),
            timeout,
            agent,
        })
    }

    fn url(&self, upstream: usize, path: &str) -> String {
        format!(
            "{}{}/{}",
            self.upstreams[upstream],
            self.base_path,
            percent_encode(path)
        )
    }

    /// Runs `attempt` against the upstreams, preferred first, until one answers, an answer is
    /// final, or the deadline (`--timeout` from now) passes.
    fn failover<T>(
        &self,
        what: &str,
        attempt: impl Fn(&str, Duration) -> Attempt<T>,
        path: &str,
    ) -> Result<T, OriginError> {
        let deadline = Instant::now() + self.timeout;
        let n = self.upstreams.len();
        let first = self.preferred.load(Ordering::Relaxed) % n;
        let mut errors = Vec::new();
        for k in 0..n.max(2) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let upstream = (first + k) % n;
            match attempt(&self.url(upstream, path), left) {
                Attempt::Done(v) => {
                    self.preferred.store(upstream, Ordering::Relaxed);
                    return Ok(v);
                }
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(e) => errors.push(format!("{}: {e}", self.upstreams[upstream])),
            }
        }
        Err(OriginError::Unavailable(format!(
            "{what} {}/{path}: no answer within {:?} ({})",
            self.base,
            self.timeout,
            if errors.is_empty() {
                "deadline passed".to_string()
            } else {
                errors.join("; ")
            }
        )))
    }
}

impl Origin for HttpOrigin {
    fn identity(&self) -> &str {
        &self.base
    }

    fn stat(&self, path: &str) -> Result<FileMeta, OriginError> {
        self.failover(
            "HEAD",
            |url, left| match self.agent.head(url).timeout(left).call() {
                Ok(resp) => match meta_of(&resp) {
                    Ok(m) => Attempt::Done(m),
                    Err(e) => Attempt::Fail(OriginError::Unavailable(format!("{url}: {e}"))),
                },
                Err(e) => classify(e, path),
            },
            path,
        )
    }

    fn revalidate(&self, path: &str, known: &FileMeta) -> Result<Revalidated, OriginError> {
        self.failover(
            "HEAD",
            |url, left| {
                let req = self
                    .agent
                    .head(url)
                    .timeout(left)
                    .set("If-None-Match", &known.etag);
                match req.call() {
                    Ok(resp) if resp.status() == 304 => Attempt::Done(Revalidated::Unchanged),
                    Ok(resp) => match meta_of(&resp) {
                        Ok(m) if m.etag == known.etag && m.size == known.size => {
                            Attempt::Done(Revalidated::Unchanged)
                        }
                        Ok(m) => Attempt::Done(Revalidated::Changed(m)),
                        Err(e) => Attempt::Fail(OriginError::Unavailable(format!("{url}: {e}"))),
                    },
                    Err(ureq::Error::Status(304, _)) => Attempt::Done(Revalidated::Unchanged),
                    Err(e) => classify(e, path),
                }
            },
            path,
        )
    }

    fn list(&self, dir: &str) -> Result<Vec<DirEntry>, OriginError> {
        let listing_path = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        self.failover(
            "GET listing",
            |url, left| {
                let url = if url.ends_with('/') {
                    url.to_string()
                } else {
                    format!("{url}/")
                };
                match self.agent.get(&url).timeout(left).call() {
                    Ok(resp) => {
                        let mut body = Vec::new();
                        if let Err(e) = resp
                            .into_reader()
                            .take(MAX_LISTING_BYTES + 1)
                            .read_to_end(&mut body)
                        {
                            return Attempt::Retry(format!("listing {url}: {e}"));
                        }
                        if body.len() as u64 > MAX_LISTING_BYTES {
                            return Attempt::Fail(OriginError::Unavailable(format!(
                                "listing {url} is over {MAX_LISTING_BYTES} bytes"
                            )));
                        }
                        match parse_listing(&body) {
                            Ok(entries) => Attempt::Done(entries),
                            Err(e) => Attempt::Fail(OriginError::Unavailable(format!(
                                "listing {url}: {e} (serve directories as nginx's `autoindex on; autoindex_format json;` does)"
                            ))),
                        }
                    }
                    Err(e) => classify(e, dir),
                }
            },
            &listing_path,
        )
    }

    fn read(
        &self,
        path: &str,
        etag: &str,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>, OriginError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let last = offset + len as u64 - 1;
        let strong = !etag.starts_with("W/");
        self.failover(
            "GET",
            |url, left| {
                let mut req = self
                    .agent
                    .get(url)
                    .timeout(left)
                    .set("Range", &format!("bytes={offset}-{last}"));
                if strong {
                    req = req.set("If-Match", etag);
                }
                let resp = match req.call() {
                    Ok(resp) => resp,
                    Err(ureq::Error::Status(412, resp)) => {
                        return Attempt::Fail(changed(path, etag, resp.header("ETag")));
                    }
                    Err(e) => return classify(e, path),
                };
                // A server that ignores If-Match must still not hand us another version.
                if let Some(found) = resp.header("ETag") {
                    if found != etag {
                        return Attempt::Fail(changed(path, etag, Some(found)));
                    }
                }
                match resp.status() {
                    206 => {
                        let range = resp.header("Content-Range").unwrap_or("");
                        if !range.starts_with(&format!("bytes {offset}-{last}/")) {
                            return Attempt::Retry(format!(
                                "asked bytes {offset}-{last}, got Content-Range '{range}'"
                            ));
                        }
                    }
                    // A whole-file answer is right only when the range was the whole file.
                    200 if offset == 0
                        && resp.header("Content-Length") == Some(&len.to_string()) => {}
                    s => {
                        return Attempt::Fail(OriginError::Unavailable(format!(
                            "{url}: status {s} to a range request (the origin must answer Range with 206)"
                        )))
                    }
                }
                let mut body = Vec::with_capacity(len);
                let read = resp
                    .into_reader()
                    .take(len as u64 + 1)
                    .read_to_end(&mut body);
                match read {
                    Ok(_) if body.len() == len => Attempt::Done(body),
                    Ok(_) => Attempt::Retry(format!(
                        "{url}: body of {} bytes for a {len}-byte range (truncated)",
                        body.len()
                    )),
                    Err(e) => Attempt::Retry(format!("{url}: reading the body: {e}")),
                }
            },
            path,
        )
    }
}

fn changed(path: &str, expected: &str, found: Option<&str>) -> OriginError {
    OriginError::Changed {
        path: path.to_string(),
        expected: expected.to_string(),
        found: found.unwrap_or("(none)").to_string(),
    }
}

/// 404/410 are final, 5xx and transport errors worth another upstream, other 4xx final.
fn classify<T>(e: ureq::Error, path: &str) -> Attempt<T> {
    match e {
        ureq::Error::Status(404 | 410, _) => Attempt::Fail(OriginError::NotFound(path.to_string())),
        ureq::Error::Status(code, resp) if code >= 500 => {
            Attempt::Retry(format!("status {code} from {}", resp.get_url()))
        }
        ureq::Error::Status(code, resp) => Attempt::Fail(OriginError::Unavailable(format!(
            "status {code} from {}",
            resp.get_url()
        ))),
        ureq::Error::Transport(t) => Attempt::Retry(t.to_string()),
    }
}

fn meta_of(resp: &ureq::Response) -> Result<FileMeta, String> {
    let size = resp
        .header("Content-Length")
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or("no Content-Length")?;
    let etag = resp
        .header("ETag")
        .ok_or("no ETag (the origin must tag versions: nginx and Apache do by default)")?
        .to_string();
    let mtime = resp
        .header("Last-Modified")
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Ok(FileMeta { size, etag, mtime })
}

#[derive(serde::Deserialize)]
struct ListingEntry {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    mtime: String,
}

/// nginx's JSON autoindex: `[{"name": …, "type": "file"|"directory", "mtime": HTTP-date,
/// "size": bytes}, …]`. Names that could escape their directory and other types are skipped.
pub(crate) fn parse_listing(body: &[u8]) -> Result<Vec<DirEntry>, String> {
    let raw: Vec<ListingEntry> =
        serde_json::from_slice(body).map_err(|e| format!("not a JSON listing: {e}"))?;
    if raw.len() > MAX_LISTING_ENTRIES {
        return Err(format!("over {MAX_LISTING_ENTRIES} entries"));
    }
    Ok(raw
        .into_iter()
        .filter(|e| safe_name(&e.name))
        .filter_map(|e| {
            let kind = match e.kind.as_str() {
                "file" => EntryKind::File,
                "directory" => EntryKind::Dir,
                _ => return None,
            };
            let mtime = httpdate::parse_http_date(&e.mtime).unwrap_or(SystemTime::UNIX_EPOCH);
            Some(DirEntry {
                name: e.name,
                kind,
                size: e.size,
                mtime,
            })
        })
        .collect())
}

/// `http://host:port/a/b` → (`http://host:port`, `/a/b`).
fn split_url(url: &str) -> anyhow::Result<(String, String)> {
    let scheme_end = url
        .find("://")
        .ok_or_else(|| anyhow::anyhow!("{url}: not a URL"))?;
    let rest = &url[scheme_end + 3..];
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    anyhow::ensure!(!host.is_empty(), "{url}: no host");
    Ok((
        url[..scheme_end + 3 + host.len()].to_string(),
        path.to_string(),
    ))
}

/// Percent-encodes a relative path for a URL, keeping `/` between components.
fn percent_encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_skips_names_that_climb_out() {
        let body =
            br#"[{"name":"a.h5","type":"file","mtime":"Wed, 02 Dec 2026 19:00:00 GMT","size":12},
                        {"name":"..","type":"directory","mtime":""},
                        {"name":"x/y","type":"file","size":1},
                        {"name":"sub","type":"directory","mtime":"Wed, 02 Dec 2026 19:00:00 GMT"},
                        {"name":"l","type":"other"}]"#;
        let e = parse_listing(body).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[0].name.as_str(), e[0].kind, e[0].size),
            ("a.h5", EntryKind::File, 12)
        );
        assert_eq!((e[1].name.as_str(), e[1].kind), ("sub", EntryKind::Dir));
        assert!(parse_listing(b"<html>").is_err());
    }

    #[test]
    fn urls_split_and_encode() {
        assert_eq!(
            split_url("http://h:80/a/b").unwrap(),
            ("http://h:80".into(), "/a/b".into())
        );
        assert_eq!(
            split_url("http://h").unwrap(),
            ("http://h".into(), "".into())
        );
        assert!(split_url("h/a").is_err());
        assert_eq!(percent_encode("a b/c%.h5"), "a%20b/c%25.h5");
    }
}
