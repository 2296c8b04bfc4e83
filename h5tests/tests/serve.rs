//! `roibin serve` on a free loopback port, called with a real HTTP client: maps and frames
//! against `roibin stxm`'s own output, errors that name the parameter, paths that would leave
//! the root, the token, limits, a corrupt chunk, the shared cache.

use roibin_h5tests::*;
use std::io::{Read, Write};
use std::process::Command;

/// The status line of a request sent as raw bytes (no client normalises its path).
fn raw_status(s: &Server, path: &str) -> String {
    let addr = s.base.trim_start_matches("http://");
    let mut t = std::net::TcpStream::connect(addr).unwrap();
    write!(
        t,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    t.read_to_string(&mut out).unwrap();
    out.lines().next().unwrap_or("").to_string()
}

fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(b)))
}

fn rgba(png_bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let d = png::Decoder::new(png_bytes);
    let mut r = d.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    (info.width, info.height, buf[..info.buffer_size()].to_vec())
}

#[test]
fn maps_and_frames_match_roibin_stxm() {
    let (dir, root) = scan_root("serve-maps");
    let scan = root.join("sub/scan.h5");
    let s = start_server(&root, &["--no-cache"]);
    for (q, args) in [
        (
            "signal=comh&palette=magma",
            vec!["--signal", "comh", "--palette", "magma"],
        ),
        (
            "algo=polarroi&polarroi=52,24;0,6;0,360&log=1",
            vec![
                "--algo",
                "polarroi",
                "--polarroi",
                "52,24;0,6;0,360",
                "--log",
            ],
        ),
    ] {
        let png_file = dir.join("cli.png");
        let json_file = dir.join("cli.json");
        let mut cli = vec![
            "stxm",
            scan.to_str().unwrap(),
            "--scan",
            "6x7",
            "--no-cache",
        ];
        cli.extend(&args);
        let mut a = cli.clone();
        a.extend(["--out", png_file.to_str().unwrap()]);
        ok(roibin(&a));
        let mut a = cli.clone();
        let args_json: Vec<&str> = args
            .iter()
            .copied()
            .filter(|x| !["--log", "--palette", "magma"].contains(x))
            .collect();
        a.truncate(5);
        a.extend(&args_json);
        a.extend(["--out", json_file.to_str().unwrap()]);
        ok(roibin(&a));
        let (st, ct, body, _) = http_get(&s, &format!("/stxm/sub/scan.h5/0?horz=7&vert=6&{q}"));
        assert_eq!(
            (st, ct.as_str()),
            (200, "image/png"),
            "{}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(rgba(&body), rgba(&std::fs::read(&png_file).unwrap()), "{q}");
        let want = json(&std::fs::read(&json_file).unwrap())["data"].clone();
        let (_, _, body, _) = http_get(
            &s,
            &format!("/stxm/sub/scan.h5/0?horz=7&vert=6&{q}&format=json"),
        );
        assert_eq!(json(&body)["data"], want, "{q}");
        let (_, ct, body, _) = http_get(
            &s,
            &format!("/stxm/sub/scan.h5/0?horz=7&vert=6&{q}&format=tiff_raw"),
        );
        assert_eq!(ct, "image/tiff");
        let mut dec = tiff::decoder::Decoder::new(std::io::Cursor::new(body)).unwrap();
        assert_eq!(dec.dimensions().unwrap(), (7, 6));
        let tiff::decoder::DecodingResult::F32(v) = dec.read_image().unwrap() else {
            panic!("not f32")
        };
        let flat: Vec<f64> = want
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
            .collect();
        for (a, b) in v.iter().zip(&flat) {
            assert!((*a as f64 - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} {b}");
        }
    }
    // A frame, a stack and a grid: their numbers are the frames' (the gap row reads 0).
    let (st, _, body, _) = http_get(&s, "/show/sub/scan.h5/3?format=json");
    assert_eq!(st, 200);
    let frame3 = json(&body);
    assert_eq!(frame3["shape"], serde_json::json!([48, 64]));
    let (_, _, body, _) = http_get(&s, "/show/sub/scan.h5/3?format=json&stack=2,sum");
    let (_, _, body4, _) = http_get(&s, "/show/sub/scan.h5/4?format=json");
    let (sum, f4) = (json(&body), json(&body4));
    let px = |v: &serde_json::Value, y: usize, x: usize| v["data"][y][x].as_f64().unwrap();
    for (y, x) in [(24, 32), (10, 5), (32, 1)] {
        assert_eq!(px(&sum, y, x), px(&frame3, y, x) + px(&f4, y, x));
    }
    let (_, _, body, _) = http_get(&s, "/multi/sub/scan.h5/3?horz=2&vert=1&format=json");
    let grid = json(&body);
    assert_eq!(grid["shape"], serde_json::json!([48, 129]));
    assert_eq!(px(&grid, 24, 65 + 32), px(&f4, 24, 32));
    // The data API decodes the DECTRIS bitshuffle-LZ4 chunks on the server (no plugin path).
    let (st, _, body, _) = http_get(
        &s,
        "/data/?file=sub/scan.h5&path=/entry/data/data&selection=3",
    );
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let raw = json(&body);
    assert_eq!(raw[24][32].as_f64(), frame3["data"][24][32].as_f64());
    let (_, ct, body, _) = http_get(&s, "/show/sub/scan.h5/3?roi=10,5,20,16&binning=2,2");
    assert_eq!(ct, "image/png");
    assert_eq!(rgba(&body).0, 10);
}

#[test]
fn bad_requests_paths_tokens_limits_and_corrupt_chunks() {
    let (dir, root) = scan_root("serve-errors");
    std::fs::write(dir.join("secret.h5"), b"not for you").unwrap();
    std::os::unix::fs::symlink(dir.join("secret.h5"), root.join("link.h5")).unwrap();
    let s = start_server(&root, &["--no-cache", "--max-frames", "45"]);
    for (path, status, param) in [
        (
            "/stxm/sub/scan.h5/0?horz=7&vert=6&signal=Ifoo",
            400,
            "signal",
        ),
        (
            "/stxm/sub/scan.h5/0?horz=7&vert=6&roi=60,0,10,10",
            400,
            "roi",
        ),
        ("/stxm/sub/scan.h5/0?horz=7&vert=7", 413, "scan"),
        ("/stxm/sub/scan.h5/0?horz=9&vert=5", 400, "scan"),
        ("/show/sub/scan.h5/99", 400, "frame"),
        ("/show/sub/scan.h5/x", 400, "frame"),
        ("/show/sub/scan.h5/0?palette=rainbow", 400, "palette"),
        ("/show/sub/nope.h5/0", 404, "path"),
        ("/show/link.h5/0", 403, "path"),
        ("/files/?path=..", 403, "path"),
    ] {
        let (st, _, body, _) = http_get(&s, path);
        let v: serde_json::Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{path} ({st}): {e}: {}", String::from_utf8_lossy(&body)));
        assert_eq!(
            (st, v["param"].as_str()),
            (status, Some(param)),
            "{path}: {v}"
        );
    }
    // Sent as raw bytes: a client would normalise these paths before sending them.
    assert!(raw_status(&s, "/show/%2e%2e/secret.h5/0").contains(" 403 "));
    assert!(raw_status(&s, "/show/sub/%2e%2e/%2e%2e/secret.h5/0").contains(" 403 "));
    for path in [
        "/show/../secret.h5/0",
        "/show/sub/../../secret.h5/0",
        "/show//etc/passwd/0",
    ] {
        let line = raw_status(&s, path);
        assert!(
            line.contains(" 403 ") || line.contains(" 404 ") || line.contains(" 400 "),
            "{path}: {line}"
        );
        assert!(!line.contains(" 200 "), "{path}: {line}");
    }
    // A corrupt chunk: NaN at its frame, the count in a header, and the server goes on.
    let bad = root.join("bad.h5");
    std::fs::copy(root.join("sub/scan.h5"), &bad).unwrap();
    ok(python("corrupt_chunk.py", &[bad.to_str().unwrap(), "9"]));
    let r = ureq::get(&format!(
        "{}/stxm/bad.h5/0?horz=7&vert=6&format=json",
        s.base
    ))
    .call()
    .unwrap();
    assert_eq!(r.header("x-roibin-failed-frames"), Some("1"));
    let mut body = vec![];
    r.into_reader().read_to_end(&mut body).unwrap();
    let v = json(&body);
    assert!(v["data"][1][2].is_null(), "{v}");
    assert!(v["data"][1][3].is_number());
    assert_eq!(http_get(&s, "/show/sub/scan.h5/1").0, 200);
    drop(s);
    // Any address but loopback needs a token; with one, requests must carry it.
    let (code, _, err) = run({
        let mut c = Command::new(roibin_bin());
        c.args([
            "serve",
            "--root",
            root.to_str().unwrap(),
            "--bind",
            "0.0.0.0:0",
            "--no-cache",
        ]);
        c
    });
    assert_ne!(code, Some(0));
    assert!(err.contains("bind:") && err.contains("--token"), "{err}");
    let s = start_server(&root, &["--no-cache", "--token", "s3cret"]);
    assert_eq!(http_get(&s, "/files/").0, 401);
    assert_eq!(http_get(&s, "/files/?token=s3cret").0, 200);
    let r = ureq::get(&format!("{}/show/sub/scan.h5/0", s.base))
        .set("Authorization", "Bearer s3cret")
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn the_cache_is_shared_and_the_page_is_served() {
    let (dir, root) = scan_root("serve-cache");
    let cache = dir.join("cache");
    let s = start_server(&root, &["--cache-dir", cache.to_str().unwrap()]);
    let q = "/stxm/sub/scan.h5/0?horz=7&vert=6&signal=comv&format=json";
    let (a, _, first, c1) = http_get(&s, q);
    let (b, _, second, c2) = http_get(&s, q);
    assert_eq!((a, b), (200, 200));
    assert_eq!(
        (c1.as_deref(), c2.as_deref()),
        (Some("false"), Some("true"))
    );
    assert_eq!(json(&first)["data"], json(&second)["data"]);
    let (st, ct, page, _) = http_get(&s, "/");
    assert_eq!((st, ct.as_str()), (200, "text/html"));
    assert!(String::from_utf8_lossy(&page).contains("Run STXM"));
    let (_, _, files, _) = http_get(&s, "/files/?path=sub");
    assert_eq!(json(&files)["entries"][0]["name"], "scan.h5");
    let (_, _, ds, _) = http_get(&s, "/datasets/?path=sub/scan.h5");
    assert_eq!(json(&ds)["datasets"][0]["name"], "/entry/data/data");
    // A file replaced under the server: frames shown are the new file's, not a kept view's.
    let before = json(&http_get(&s, "/show/sub/scan.h5/2?format=json").2);
    let other = dir.join("other.h5");
    synth_scan(&other, 9);
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::copy(&other, root.join("sub/scan.h5")).unwrap();
    let after = json(&http_get(&s, "/show/sub/scan.h5/2?format=json").2);
    assert_ne!(before["data"], after["data"]);
}

#[test]
fn the_data_api_answers_like_h5grove() {
    let dir = scratch("serve-h5grove");
    let out = ok(python(
        "h5grove_diff.py",
        &[roibin_bin().to_str().unwrap(), dir.to_str().unwrap()],
    ));
    assert!(stdout(&out).contains("answered alike"), "{}", stdout(&out));
}

#[test]
fn a_super_grid_runs_as_a_job_with_progress() {
    let (dir, root) = scan_root("serve-jobs");
    std::fs::create_dir_all(root.join("grid")).unwrap();
    for k in 1..=3 {
        std::fs::copy(
            root.join("sub/scan.h5"),
            root.join(format!("grid/scan_{k}.h5")),
        )
        .unwrap();
    }
    let cache = dir.join("cache");
    let s = start_server(&root, &["--cache-dir", cache.to_str().unwrap()]);
    let (st, _, body, _) = http_get(
        &s,
        "/stxm/grid/scan_%7B1...3%7D.h5/0?horz=7&vert=6&signal=comh&format=json",
    );
    assert_eq!(st, 202, "{}", String::from_utf8_lossy(&body));
    let status = json_of(&body)["status"].as_str().unwrap().to_string();
    let mut last = serde_json::Value::Null;
    for _ in 0..300 {
        last = json_of(&http_get(&s, &status).2);
        if last["state"] == "done" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(last["state"], "done", "{last}");
    for scan in last["scans"].as_array().unwrap() {
        assert_eq!(
            (scan["lines"].as_u64(), scan["lines_done"].as_u64()),
            (Some(6), Some(6)),
            "{scan}"
        );
        assert!(scan["error"].is_null(), "{scan}");
        let (st, _, _, cached) = http_get(&s, scan["url"].as_str().unwrap());
        assert_eq!((st, cached.as_deref()), (200, Some("true")), "{scan}");
    }
    let (st, _, _, _) = http_get(
        &s,
        "/stxm/grid/scan_%7B1...3%7D.h5/0?horz=7&vert=6&roi=999,0,1,1",
    );
    assert_eq!(st, 202); // queued; its scans fail one by one and say why
    let (st, _, body, _) = http_get(&s, "/stxm/grid/scan_%7B1...9%7D.h5/0?horz=7&vert=6");
    assert_eq!(st, 404, "{}", String::from_utf8_lossy(&body));
}

fn json_of(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(b)))
}

#[test]
fn without_a_request_limit_the_server_keeps_serving() {
    let (_dir, root) = scan_root("serve-forever");
    let s = spawn_server(&root, &["--no-cache"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    for _ in 0..3 {
        assert_eq!(
            http_get(&s, "/files/").0,
            200,
            "the server stopped by itself"
        );
    }
}
