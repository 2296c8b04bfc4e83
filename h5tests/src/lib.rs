//! Helpers for the end-to-end tests: where the built plugin and tools are, and how to run a
//! client in its own process with the plugin on `HDF5_PLUGIN_PATH`.
//!
//! Build first (`cargo build --release --workspace`); the tests use the binaries of the same
//! profile as themselves.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// `target/<profile>` of the running test binary.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_path_buf()
}

/// The folder holding `libh5roibin.so`, checked to exist.
pub fn plugin_dir() -> PathBuf {
    let dir = profile_dir();
    assert!(
        dir.join("libh5roibin.so").exists(),
        "{} has no libh5roibin.so: run `cargo build --release --workspace` before the tests",
        dir.display()
    );
    dir
}

/// The `roibin` binary, checked to exist.
pub fn roibin_bin() -> PathBuf {
    let p = profile_dir().join("roibin");
    assert!(
        p.exists(),
        "{} missing: run `cargo build --release --workspace` first",
        p.display()
    );
    p
}

/// A fresh scratch folder for one test, removed when the test passes (a failed test leaves
/// it for a look: the panic message names its files). Some tests write hundreds of MB.
pub fn scratch(name: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("roibin-h5tests-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    Scratch(d)
}

/// A test's scratch folder (see [`scratch`]); a path everywhere one is expected.
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for Scratch {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A command with the plugin on `HDF5_PLUGIN_PATH` and nothing else of ours in its environment.
pub fn client(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    c.env("HDF5_PLUGIN_PATH", plugin_dir())
        .env_remove("PYTHONPATH");
    c
}

/// The `roibin` tool with `args`, plugin path set.
pub fn roibin(args: &[&str]) -> Command {
    let mut c = client(roibin_bin());
    c.args(args);
    c
}

/// A python3 process running `h5tests/py/<script>` with `args`.
pub fn python(script: &str, args: &[&str]) -> Command {
    let mut c = client("python3");
    c.arg(root().join("h5tests/py").join(script)).args(args);
    c
}

/// Run, and panic with both streams unless it exited 0.
pub fn ok(mut c: Command) -> Output {
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("cannot start {c:?}: {e}"));
    assert!(
        out.status.success(),
        "{c:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Run, and return (exit code, stdout, stderr) whatever happened.
pub fn run(mut c: Command) -> (Option<i32>, String, String) {
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("cannot start {c:?}: {e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `roibin synth --layout jungfrau` frames in `dir`: returns the `FILE:DATASET` input and a
/// ROIBIN spec with the finder's mask and radius sidecars.
pub fn jungfrau(dir: &Path, frames: usize) -> (String, String) {
    let d = |n: &str| dir.join(n).to_str().expect("utf-8 path").to_string();
    ok(roibin(&[
        "synth",
        "--layout",
        "jungfrau",
        "--frames",
        &frames.to_string(),
        &d("jf.h5"),
    ]));
    let spec = format!(
        "roibin(peaks=pf8(mask=\"{}\",radius=\"{}\"),background=bin(2,2)|sz(abs=90))",
        d("jf.mask.npy"),
        d("jf.radius.npy")
    );
    (format!("{}:/entry_1/data_1/data", d("jf.h5")), spec)
}

/// A running `roibin serve` on a free loopback port, stopped when dropped.
pub struct Server {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_server(root: &std::path::Path, extra: &[&str]) -> Server {
    let mut args = vec!["--max-requests", "200"];
    args.extend(extra);
    spawn_server(root, &args)
}

/// `roibin serve --root ROOT --bind 127.0.0.1:0 ARGS…` (no request limit of its own).
pub fn spawn_server(root: &std::path::Path, args: &[&str]) -> Server {
    let mut child = Command::new(roibin_bin())
        .args([
            "serve",
            "--root",
            root.to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
        ])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start roibin serve");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    Server {
        child,
        base: format!("http://{addr}"),
    }
}

/// (status, content type, body, `x-roibin-cached`) of a GET.
pub fn http_get(s: &Server, path: &str) -> (u16, String, Vec<u8>, Option<String>) {
    let r = match ureq::get(&format!("{}{path}", s.base)).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{path}: {e}"),
    };
    let status = r.status();
    let ctype = r.content_type().to_string();
    let cached = r.header("x-roibin-cached").map(str::to_string);
    let mut body = vec![];
    std::io::Read::read_to_end(&mut r.into_reader(), &mut body).unwrap();
    (status, ctype, body, cached)
}

/// A 6×7 synthetic STXM scan of 48×64 u32 frames stored with bitshuffle-LZ4, at `path`.
pub fn synth_scan(path: &Path, seed: u64) {
    ok(roibin(&[
        "synth",
        path.to_str().unwrap(),
        "--layout",
        "stxm",
        "--scan",
        "6x7",
        "--frame",
        "48x64",
        "--bslz4",
        "--seed",
        &seed.to_string(),
    ]));
}

/// A folder `root/` holding `root/sub/scan.h5` (see [`synth_scan`]). Returns (scratch
/// folder, root).
pub fn scan_root(name: &str) -> (Scratch, PathBuf) {
    let dir = scratch(name);
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    synth_scan(&root.join("sub/scan.h5"), 1);
    (dir, root)
}
