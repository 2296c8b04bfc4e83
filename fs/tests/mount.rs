//! `roibin-fs` on real FUSE mounts (fuse3), in front of Debian's nginx and of an origin of our
//! own that injects faults; the proxy tier is nginx running `deploy/nginx-proxy.conf`.

mod support;

use proptest::prelude::*;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

const MIB: usize = 1 << 20;

fn origin_dir(dir: &Path, files: &[(&str, &[u8])]) -> std::path::PathBuf {
    let data = dir.join("data");
    for (name, bytes) in files {
        let p = data.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    data
}

fn read_all(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The range field of every GET of `uri` in an nginx log.
fn ranges(nginx: &Nginx, uri: &str) -> Vec<String> {
    nginx
        .gets(uri)
        .iter()
        .map(|l| l.split(' ').nth(2).unwrap_or("").to_string())
        .collect()
}

#[test]
fn random_reads_equal_the_origin_and_a_restart_is_warm() {
    let dir = scratch("random");
    let f = pattern(9 * MIB + 12_345, 1);
    let g = pattern(777, 2);
    let data = origin_dir(&dir, &[("f.bin", &f), ("sub/g.bin", &g)]);
    let nginx = Nginx::origin(&dir.join("nginx"), &data);
    let m = Mount::start(&nginx.url(), &dir, "64M", &[]);

    let mut names: Vec<String> = std::fs::read_dir(&m.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["f.bin", "sub"]);
    assert_eq!(
        std::fs::metadata(m.path("f.bin")).unwrap().len(),
        f.len() as u64
    );
    assert_eq!(read_all(&m.path("sub/g.bin")), g);
    assert!(std::fs::OpenOptions::new()
        .write(true)
        .open(m.path("f.bin"))
        .is_err());

    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(64));
    let len = f.len() as u64;
    runner
        .run(&(0..len + 100, 1usize..3 * MIB), |(offset, n)| {
            let got = read_at(&m.path("f.bin"), offset, n).unwrap();
            let from = (offset as usize).min(f.len());
            let to = (from + n).min(f.len());
            prop_assert_eq!(&got[..], &f[from..to]);
            Ok(())
        })
        .unwrap();
    assert_eq!(read_all(&m.path("f.bin")), f);

    // A second mount on the same cache directory is refused while this one holds it.
    let out = roibin_fs()
        .args(["mount", &nginx.url()])
        .arg(dir.join("mnt2"))
        .arg("--cache-dir")
        .arg(&m.cache)
        .args(["--cache-size", "64M"])
        .output()
        .unwrap();
    std::fs::create_dir_all(dir.join("mnt2")).unwrap();
    assert!(!out.status.success());

    // Unmount (SIGTERM), mount again: every block comes from the disk tier, none from nginx.
    let gets = nginx.gets("/f.bin").len();
    assert!(m.stop().success());
    let m = Mount::start(&nginx.url(), &dir, "64M", &[]);
    assert_eq!(read_all(&m.path("f.bin")), f);
    assert_eq!(
        nginx.gets("/f.bin").len(),
        gets,
        "a warm restart went to the origin"
    );
    let stats = m.stats();
    assert!(stats["disk_hits"].as_u64().unwrap() >= 10, "{stats}");
}

#[test]
fn sixteen_readers_make_one_origin_get_per_block() {
    let dir = scratch("flight");
    let f = pattern(8 * MIB, 3);
    let data = origin_dir(&dir, &[("f.bin", &f)]);
    let nginx = Nginx::origin(&dir.join("nginx"), &data);
    let m = Mount::start(&nginx.url(), &dir, "64M", &["--threads", "16"]);
    let barrier = std::sync::Barrier::new(16);
    std::thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| {
                let mut file = std::fs::File::open(m.path("f.bin")).unwrap();
                barrier.wait();
                let mut got = Vec::new();
                file.read_to_end(&mut got).unwrap();
                assert!(got == f, "a reader saw other bytes");
            });
        }
    });
    let mut r = ranges(&nginx, "/f.bin");
    r.sort();
    let n = r.len();
    r.dedup();
    assert_eq!(n, r.len(), "a block was fetched twice: {r:?}");
    assert_eq!(n, 8, "{r:?}");
}

#[test]
fn the_cap_holds_while_reading_three_times_the_cap() {
    let dir = scratch("cap");
    let f = pattern(24 * MIB, 4);
    let data = origin_dir(&dir, &[("f.bin", &f)]);
    let nginx = Nginx::origin(&dir.join("nginx"), &data);
    let m = Mount::start(&nginx.url(), &dir, "8M", &["--ram", "2M", "--block", "1M"]);
    let done = std::sync::atomic::AtomicBool::new(false);
    let peak = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(disk_usage(&m.cache.join("blocks")));
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        });
        assert_eq!(read_all(&m.path("f.bin")), f);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        sampler.join().unwrap()
    });
    let cap_plus_block = (8 * MIB + MIB + 4096) as u64;
    assert!(peak > (6 * MIB) as u64, "the cache was not used ({peak})");
    assert!(
        peak <= cap_plus_block,
        "peak usage {peak} over cap + one block"
    );
    assert!(disk_usage(&m.cache.join("blocks")) <= cap_plus_block);
}

#[test]
fn a_flipped_bit_in_a_cache_file_is_caught_and_refetched() {
    let dir = scratch("bitflip");
    let f = pattern(3 * MIB, 5);
    let data = origin_dir(&dir, &[("f.bin", &f)]);
    let nginx = Nginx::origin(&dir.join("nginx"), &data);
    let m = Mount::start(&nginx.url(), &dir, "64M", &[]);
    assert_eq!(read_all(&m.path("f.bin")), f);
    let cache = m.cache.clone();
    m.stop();
    let mut blocks = Vec::new();
    for sub in std::fs::read_dir(cache.join("blocks")).unwrap() {
        for b in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            blocks.push(b.unwrap().path());
        }
    }
    assert_eq!(blocks.len(), 3);
    let victim = &blocks[1];
    let mut bytes = std::fs::read(victim).unwrap();
    let at = bytes.len() - 1000;
    bytes[at] ^= 0x04;
    std::fs::write(victim, &bytes).unwrap();

    // `verify` finds it (exit status 2) and deletes it…
    let out = roibin_fs()
        .args(["verify", "--cache-dir"])
        .arg(&cache)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("checksum"));
    // …and a mount that meets one on a read refetches it instead of serving it.
    bytes = std::fs::read(&blocks[2]).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0x80;
    std::fs::write(&blocks[2], &bytes).unwrap();
    let gets = nginx.gets("/f.bin").len();
    let m = Mount::start(&nginx.url(), &dir, "64M", &[]);
    assert_eq!(read_all(&m.path("f.bin")), f);
    assert_eq!(m.stats()["corrupt_blocks"], 1);
    assert_eq!(
        nginx.gets("/f.bin").len(),
        gets + 2,
        "one GET per bad block"
    );
}

#[test]
fn kill_9_during_a_fill_leaves_a_cache_the_next_mount_uses() {
    let dir = scratch("kill9");
    let f = pattern(16 * MIB, 6);
    let origin = FaultOrigin::start(f.clone());
    origin.set_fault(Fault::Latency(Duration::from_millis(150)));
    let m = Mount::start(
        &origin.url(),
        &dir,
        "64M",
        &["--block", "256K", "--threads", "2"],
    );
    let path = m.path("f.bin");
    let reader = std::thread::spawn(move || std::fs::read(path).map(|b| b.len()));
    std::thread::sleep(Duration::from_millis(1500));
    m.crash();
    assert!(
        reader.join().unwrap().is_err(),
        "the read finished before the kill"
    );

    let out = roibin_fs()
        .args(["verify", "--cache-dir"])
        .arg(dir.join("cache"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    let checked: usize = text.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(checked > 0 && checked < 64, "{text}");

    origin.set_fault(Fault::None);
    let gets = origin.gets.load(std::sync::atomic::Ordering::Relaxed);
    let m = Mount::start(&origin.url(), &dir, "64M", &["--block", "256K"]);
    assert_eq!(read_all(&m.path("f.bin")), f);
    let stats = m.stats();
    assert!(
        stats["disk_hits"].as_u64().unwrap() >= checked as u64,
        "{stats}"
    );
    let fetched = origin.gets.load(std::sync::atomic::Ordering::Relaxed) - gets;
    assert_eq!(
        fetched,
        64 - checked,
        "blocks cached before the kill were fetched again"
    );
}

fn is_eio(r: std::io::Result<Vec<u8>>) -> bool {
    matches!(r, Err(e) if e.raw_os_error() == Some(libc::EIO))
}

#[test]
fn an_origin_that_hangs_or_is_down_gives_eio_within_the_timeout() {
    let dir = scratch("hang");
    let f = pattern(4 * MIB, 7);
    let origin = FaultOrigin::start(f.clone());
    let m = Mount::start(
        &origin.url(),
        &dir,
        "64M",
        &["--timeout", "2s", "--readahead", "0"],
    );
    assert_eq!(read_at(&m.path("f.bin"), 0, 4096).unwrap(), &f[..4096]);
    origin.set_fault(Fault::Hang);
    let start = Instant::now();
    assert!(is_eio(read_at(&m.path("f.bin"), 3 * MIB as u64, 4096)));
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "EIO after {took:?}");
    // What is cached is still served while the origin hangs.
    assert_eq!(read_at(&m.path("f.bin"), 100, 100).unwrap(), &f[100..200]);
    drop(m);

    // Nothing listening at all: the mount starts (with a warning) and answers EIO at once.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let m = Mount::start(&dead, &dir.join("dead"), "64M", &["--timeout", "2s"]);
    let start = Instant::now();
    let err = std::fs::read_dir(&m.mnt)
        .and_then(|mut d| d.next().transpose())
        .err();
    assert_eq!(err.and_then(|e| e.raw_os_error()), Some(libc::EIO));
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(std::fs::read_to_string(&m.log)
        .unwrap()
        .contains("does not answer"));
}

#[test]
fn faults_are_retried_or_reported_never_served() {
    let dir = scratch("faults");
    let f = pattern(6 * MIB, 8);
    let origin = FaultOrigin::start(f.clone());
    let m = Mount::start(
        &origin.url(),
        &dir,
        "64M",
        &["--timeout", "5s", "--readahead", "0"],
    );
    let at = |block: usize| (block * MIB) as u64;
    let file = m.path("f.bin");

    origin.set_fault(Fault::Status503(1));
    assert_eq!(
        read_at(&file, at(0), 1000).unwrap(),
        &f[..1000],
        "a 503 is retried"
    );
    origin.set_fault(Fault::Truncate(1));
    assert_eq!(
        read_at(&file, at(1), 1000).unwrap(),
        &f[MIB..MIB + 1000],
        "a short body is retried"
    );
    origin.set_fault(Fault::Truncate(100));
    assert!(
        is_eio(read_at(&file, at(2), 1000)),
        "short bodies every time are an error"
    );
    origin.set_fault(Fault::Latency(Duration::from_millis(300)));
    assert_eq!(
        read_at(&file, at(3), 10).unwrap(),
        &f[3 * MIB..3 * MIB + 10]
    );
    origin.set_fault(Fault::None);

    // The file changes while a reader holds it open: its next uncached block is an error, not
    // a block of the new version; reopening reads the new version throughout.
    let v2 = pattern(6 * MIB, 9);
    let mut held = std::fs::File::open(&file).unwrap();
    let mut first = vec![0; 100];
    held.read_exact(&mut first).unwrap();
    assert_eq!(first, &f[..100]);
    origin.replace(v2.clone());
    let r = {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0; 100];
        held.read_exact_at(&mut buf, at(5)).map(|_| buf)
    };
    assert!(is_eio(r), "a block of another version was served");
    drop(held);
    assert_eq!(read_all(&file), v2);
}

#[test]
fn a_replaced_file_reads_new_bytes_after_the_ttl() {
    let dir = scratch("ttl");
    let v1 = pattern(2 * MIB, 10);
    let data = origin_dir(&dir, &[("f.bin", &v1)]);
    let nginx = Nginx::origin(&dir.join("nginx"), &data);
    let m = Mount::start(&nginx.url(), &dir, "64M", &["--ttl", "1s"]);
    assert_eq!(read_all(&m.path("f.bin")), v1);
    let v2 = pattern(3 * MIB + 5, 11);
    std::fs::write(data.join("f.tmp"), &v2).unwrap();
    std::fs::rename(data.join("f.tmp"), data.join("f.bin")).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(read_all(&m.path("f.bin")), v2);
    // The old version's blocks are gone from the disk tier.
    let s = roibin_fs()
        .args(["status", "--json", "--cache-dir"])
        .arg(&m.cache)
        .output()
        .unwrap();
    let s: serde_json::Value = serde_json::from_slice(&s.stdout).unwrap();
    assert_eq!(s["blocks"], 4, "{s}");
    assert_eq!(s["mounted"], true);
}

#[test]
fn a_second_client_is_served_by_the_proxy_tier_with_failover() {
    let dir = scratch("proxy");
    let f = pattern(5 * MIB + 3, 12);
    let data = origin_dir(&dir, &[("f.bin", &f)]);
    let origin = Nginx::origin(&dir.join("origin"), &data);
    let proxy = Nginx::proxy(&dir.join("proxy"), origin.port, origin.port);
    let dead = free_port();
    let upstream = format!("http://127.0.0.1:{dead}|{}", proxy.url());
    let a = Mount::start(
        &origin.url(),
        &dir.join("a"),
        "64M",
        &["--upstream", &upstream],
    );
    assert_eq!(read_all(&a.path("f.bin")), f);
    let origin_gets = origin.gets("/f.bin").len();
    assert!(
        (6..=8).contains(&origin_gets),
        "{:?}",
        origin.gets("/f.bin")
    );

    let b = Mount::start(
        &origin.url(),
        &dir.join("b"),
        "64M",
        &["--upstream", &proxy.url()],
    );
    assert_eq!(read_all(&b.path("f.bin")), f);
    assert_eq!(
        origin.gets("/f.bin").len(),
        origin_gets,
        "the second client reached the origin"
    );
    let b_lines: Vec<String> = proxy
        .gets("/f.bin")
        .into_iter()
        .skip(origin_gets.min(6))
        .collect();
    assert!(
        !b_lines.is_empty() && b_lines.iter().all(|l| l.ends_with("HIT")),
        "{b_lines:?}"
    );
}

#[test]
fn a_path_origin_reads_and_revalidates() {
    let dir = scratch("path");
    let v1 = pattern(3 * MIB + 7, 13);
    let data = origin_dir(&dir, &[("f.bin", &v1), ("sub/g.bin", b"small")]);
    let m = Mount::start(data.to_str().unwrap(), &dir, "64M", &["--ttl", "1s"]);
    assert_eq!(read_all(&m.path("f.bin")), v1);
    assert_eq!(read_all(&m.path("sub/g.bin")), b"small");
    let v2 = pattern(MIB, 14);
    std::fs::write(data.join("f.tmp"), &v2).unwrap();
    std::fs::rename(data.join("f.tmp"), data.join("f.bin")).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(read_all(&m.path("f.bin")), v2);
    // --upstream means nothing to a path origin: refused with a reason.
    let out = roibin_fs()
        .args(["mount", data.to_str().unwrap()])
        .arg(dir.join("mnt"))
        .args([
            "--cache-dir",
            "/nonexistent",
            "--cache-size",
            "1G",
            "--upstream",
            "http://a:1",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP origin only"));
}

#[test]
fn completions_and_man_page() {
    let out = roibin_fs().args(["completions", "bash"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for c in [
        "mount",
        "status",
        "evict",
        "verify",
        "--cache-size",
        "--upstream",
    ] {
        assert!(text.contains(c), "bash completion lacks {c}");
    }
    let out = roibin_fs().arg("man").output().unwrap();
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && page.contains(".TH") && page.contains("roibin-fs"));
}
