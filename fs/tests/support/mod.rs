//! Real parts for the mount tests: Debian's nginx (origin and proxy tier, from the configs in
//! `deploy/`), an origin of our own that injects faults, and a `roibin-fs` mount (a child
//! process on a real FUSE mount) that is always unmounted.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let d = workspace()
        .join("target/fs-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Bytes that differ at every offset (a wrong offset cannot pass a comparison).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "{what} not ready within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Debian's nginx, one process, on a loopback port, with an access log that records ranges.
pub struct Nginx {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
}

impl Nginx {
    fn start(dir: &Path, site: String) -> Nginx {
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        let port = free_port();
        let site = site.replace("@LISTEN@", &format!("127.0.0.1:{port}"));
        std::fs::write(dir.join("site.conf"), site).unwrap();
        let d = dir.display();
        let conf = format!(
            "daemon off; master_process off; worker_processes 1;
pid {d}/nginx.pid; error_log {d}/logs/error.log;
events {{ worker_connections 1024; }}
http {{
  log_format ranges '$request_method $uri $http_range $status $upstream_cache_status';
  access_log {d}/logs/access.log ranges;
  client_body_temp_path {d}/cbt; proxy_temp_path {d}/pt; fastcgi_temp_path {d}/ft;
  uwsgi_temp_path {d}/ut; scgi_temp_path {d}/st;
  include {d}/site.conf;
}}"
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .args(["-c", &format!("{d}/nginx.conf"), "-p", &d.to_string()])
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (Debian's nginx package; scripts/setup.sh installs it)");
        wait_for("nginx", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Nginx {
            port,
            dir: dir.to_path_buf(),
            child,
        }
    }

    /// nginx serving `root`, from `deploy/nginx-origin.conf`.
    pub fn origin(dir: &Path, root: &Path) -> Nginx {
        let site = std::fs::read_to_string(workspace().join("deploy/nginx-origin.conf"))
            .unwrap()
            .replace("@ROOT@", &root.display().to_string());
        Self::start(dir, site)
    }

    /// The proxy tier, from `deploy/nginx-proxy.conf`, in front of `origin` (and `backup`).
    pub fn proxy(dir: &Path, origin: u16, backup: u16) -> Nginx {
        std::fs::create_dir_all(dir.join("cache")).unwrap();
        let site = std::fs::read_to_string(workspace().join("deploy/nginx-proxy.conf"))
            .unwrap()
            .replace("@CACHE_DIR@", &dir.join("cache").display().to_string())
            .replace("@CACHE_SIZE@", "1g")
            .replace("@VALID@", "60s")
            .replace("@ORIGIN_BACKUP@", &format!("127.0.0.1:{backup}"))
            .replace("@ORIGIN@", &format!("127.0.0.1:{origin}"));
        Self::start(dir, site)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Access log lines so far (`METHOD uri range status cache-status`).
    pub fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("logs/access.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// GET lines for `uri`.
    pub fn gets(&self, uri: &str) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|l| l.starts_with(&format!("GET {uri} ")))
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `roibin-fs mount` child process; unmounted (or killed and lazily unmounted) on drop.
pub struct Mount {
    pub mnt: PathBuf,
    pub cache: PathBuf,
    child: Option<Child>,
    pub log: PathBuf,
}

pub fn is_mounted(mnt: &Path) -> bool {
    let mnt = std::fs::canonicalize(mnt).unwrap_or(mnt.to_path_buf());
    std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(&mnt.display().to_string()))
}

/// The `roibin-fs` binary: cargo's for the crate's own tests, the workspace's release build
/// for the end-to-end tests in `h5tests` (which include this module).
pub fn roibin_fs() -> Command {
    Command::new(
        option_env!("CARGO_BIN_EXE_roibin-fs")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join("target/release/roibin-fs")),
    )
}

impl Mount {
    pub fn start(origin: &str, dir: &Path, cache_size: &str, extra: &[&str]) -> Mount {
        Self::start_at(
            origin,
            &dir.join("mnt"),
            &dir.join("cache"),
            cache_size,
            extra,
        )
    }

    pub fn start_at(
        origin: &str,
        mnt: &Path,
        cache: &Path,
        cache_size: &str,
        extra: &[&str],
    ) -> Mount {
        std::fs::create_dir_all(mnt).unwrap();
        let log = cache.with_extension("log");
        let child = roibin_fs()
            .args(["mount", origin])
            .arg(mnt)
            .arg("--cache-dir")
            .arg(cache)
            .args(["--cache-size", cache_size])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut m = Mount {
            mnt: mnt.to_path_buf(),
            cache: cache.to_path_buf(),
            child: Some(child),
            log,
        };
        wait_for("the mount", Duration::from_secs(15), || {
            if let Some(Ok(Some(status))) = m.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "roibin-fs exited ({status}): {}",
                    std::fs::read_to_string(&m.log).unwrap()
                );
            }
            is_mounted(&m.mnt)
        });
        m
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.mnt.join(name)
    }

    /// The mount's counters (`stats.json`, rewritten twice a second).
    pub fn stats(&self) -> serde_json::Value {
        std::thread::sleep(Duration::from_millis(700));
        serde_json::from_str(&std::fs::read_to_string(self.cache.join("stats.json")).unwrap())
            .unwrap()
    }

    /// SIGTERM: the clean unmount a user gets with Ctrl-C. Returns the process's exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        // SAFETY: kill(2) on our own child's pid; no memory is touched.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().unwrap();
        assert!(!is_mounted(&self.mnt), "still mounted after SIGTERM");
        status
    }

    /// `kill -9`, as a crash would.
    pub fn crash(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        // fusermount3's auto-unmount notices the dead process.
        wait_for("auto-unmount", Duration::from_secs(10), || {
            !is_mounted(&self.mnt)
        });
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: as in `stop`.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if is_mounted(&self.mnt) {
            let _ = Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.mnt)
                .status();
        }
    }
}

/// What the fault-injecting origin does to the next requests.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    None,
    /// Every answer is delayed.
    Latency(Duration),
    /// The next n GETs answer 503.
    Status503(usize),
    /// The next n GETs send half the body, then close.
    Truncate(usize),
    /// Every request is accepted and never answered.
    Hang,
}

/// An origin of our own on loopback: one file `/f.bin` (and a listing), whose content and
/// ETag can be replaced mid-read, and faults on demand. Connections close after each answer.
pub struct FaultOrigin {
    pub port: u16,
    pub state: Arc<Mutex<(Vec<u8>, u32, Fault)>>,
    pub gets: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl FaultOrigin {
    pub fn start(content: Vec<u8>) -> FaultOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new((content, 1u32, Fault::None)));
        let (stop, gets) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let (s, st, g) = (Arc::clone(&state), Arc::clone(&stop), Arc::clone(&gets));
        std::thread::spawn(move || {
            // Bounded: ends when the test drops the origin (or after 10 minutes).
            let start = Instant::now();
            while !st.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(600) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (s, st, g) = (Arc::clone(&s), Arc::clone(&st), Arc::clone(&g));
                        std::thread::spawn(move || serve(conn, &s, &st, &g));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultOrigin {
            port,
            state,
            gets,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_fault(&self, f: Fault) {
        self.state.lock().unwrap().2 = f;
    }

    /// Replaces the file (new bytes, new ETag).
    pub fn replace(&self, content: Vec<u8>) {
        let mut s = self.state.lock().unwrap();
        s.0 = content;
        s.1 += 1;
    }
}

impl Drop for FaultOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    conn: TcpStream,
    state: &Mutex<(Vec<u8>, u32, Fault)>,
    stop: &AtomicBool,
    gets: &AtomicUsize,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        head.push(line.trim_end().to_string());
    }
    let header = |name: &str| {
        head.iter().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let request: Vec<&str> = head
        .first()
        .map(|l| l.split(' ').collect())
        .unwrap_or_default();
    let (method, path) = (
        request.first().copied().unwrap_or(""),
        request.get(1).copied().unwrap_or(""),
    );
    let (content, version, fault) = {
        let mut s = state.lock().unwrap();
        let fault = s.2.clone();
        if method == "GET" && path == "/f.bin" {
            gets.fetch_add(1, Ordering::Relaxed);
            match &mut s.2 {
                Fault::Status503(n) | Fault::Truncate(n) if *n > 0 => *n -= 1,
                _ => {}
            }
        }
        (s.0.clone(), s.1, fault)
    };
    match fault {
        Fault::Hang => {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            return;
        }
        Fault::Latency(d) => std::thread::sleep(d),
        _ => {}
    }
    let mut out = conn;
    let etag = format!("\"v{version}\"");
    if path == "/" {
        let body = format!(
            "[{{\"name\":\"f.bin\",\"type\":\"file\",\"mtime\":\"Wed, 02 Dec 2026 19:00:00 GMT\",\"size\":{}}}]",
            content.len()
        );
        let _ = write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return;
    }
    if path != "/f.bin" {
        let _ = write!(
            out,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        return;
    }
    let common = format!(
        "ETag: {etag}\r\nLast-Modified: Wed, 02 Dec 2026 19:00:00 GMT\r\nConnection: close\r\n"
    );
    if method == "HEAD" {
        if header("If-None-Match").as_deref() == Some(&etag) {
            let _ = write!(out, "HTTP/1.1 304 Not Modified\r\n{common}\r\n");
        } else {
            let _ = write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{common}\r\n",
                content.len()
            );
        }
        return;
    }
    if matches!(fault, Fault::Status503(n) if n > 0) {
        let _ = write!(
            out,
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        return;
    }
    if let Some(m) = header("If-Match") {
        if m != etag {
            let _ = write!(
                out,
                "HTTP/1.1 412 Precondition Failed\r\n{common}Content-Length: 0\r\n\r\n"
            );
            return;
        }
    }
    let range = header("Range").unwrap_or_default();
    let (a, b) = range
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
        .unwrap_or((0, content.len() - 1));
    let b = b.min(content.len() - 1);
    let body = &content[a..=b];
    let _ = write!(
        out,
        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {a}-{b}/{}\r\nContent-Length: {}\r\n{common}\r\n",
        content.len(),
        body.len()
    );
    let send = if matches!(fault, Fault::Truncate(n) if n > 0) {
        &body[..body.len() / 2]
    } else {
        body
    };
    let _ = out.write_all(send);
    let _ = out.flush();
    drop(reader.read(&mut [0u8; 0]));
}

/// Reads `len` bytes at `offset` of `path` (a short read at the end is returned short).
pub fn read_at(path: &Path, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path)?;
    let mut buf = vec![0; len];
    let mut got = 0;
    while got < len {
        let n = f.read_at(&mut buf[got..], offset + got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    Ok(buf)
}

/// Sum of the real disk usage of every file under `dir`.
pub fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            // A block evicted (or a temporary file renamed) between the listing and the stat
            // no longer uses space.
            let Ok(m) = e.metadata() else {
                continue;
            };
            total += if m.is_dir() {
                disk_usage(&e.path())
            } else {
                m.blocks() * 512
            };
        }
    }
    total
}
