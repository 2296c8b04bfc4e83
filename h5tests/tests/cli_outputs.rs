//! The CLI never leaves a file that looks finished but is not: outputs are written under a
//! temporary name and renamed on success; a full disk ends with a message (no crash in
//! libhdf5's shutdown); a killed run leaves only the temporary file, which a rerun reports.

use roibin_h5tests::{ok, roibin, roibin_bin, run, scratch};
use std::process::Command;

fn eiger(dir: &std::path::Path) -> String {
    let f = dir.join("e.h5");
    ok(roibin(&["synth", "--frames", "8", f.to_str().unwrap()]));
    format!("{}:/entry/data/data", f.display())
}

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_ends_with_a_message_and_leaves_no_file() {
    let dir = scratch("disk-full");
    let input = eiger(&dir);
    let full = dir.join("full");
    std::fs::create_dir_all(&full).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&full)
        .status()
        .expect("mount");
    assert!(
        st.success(),
        "mounting a 1 MiB tmpfs needs root (CI runs as root)"
    );
    let _m = Mount(full.clone());
    let out = full.join("out.h5");
    let (code, _, err) = run(roibin(&[
        "compress",
        &input,
        out.to_str().unwrap(),
        "--spec",
        "none",
    ]));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(
        std::fs::read_dir(&full).unwrap().count(),
        0,
        "left a file behind"
    );
}

#[test]
fn a_killed_run_leaves_only_its_partial_file_and_a_rerun_says_so() {
    let dir = scratch("killed");
    let input = eiger(&dir);
    let out = dir.join("k.h5");
    let partial = dir.join(".k.h5.roibin-partial");
    let mut child = Command::new(roibin_bin())
        .args(["compress", &input, out.to_str().unwrap()])
        .args(["--spec", "sz(abs=1)", "--tasks", "1"])
        .env("HDF5_PLUGIN_PATH", roibin_h5tests::plugin_dir())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while !partial.exists() && t.elapsed().as_secs() < 30 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(partial.exists(), "no partial file while writing");
    assert!(
        !out.exists(),
        "a killed run left a file under the output's name"
    );
    let o = ok(roibin(&[
        "compress",
        &input,
        out.to_str().unwrap(),
        "--spec",
        "zstd",
    ]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("partial output left by an interrupted run"),
        "{err}"
    );
    assert!(out.exists() && !partial.exists());
    // Adding a dataset to an existing file keeps what it held.
    ok(roibin(&[
        "compress",
        &input,
        &format!("{}:/copy", out.display()),
        "--spec",
        "lz4",
    ]));
    let o = ok(roibin(&["info", out.to_str().unwrap()]));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("/entry/data/data") && text.contains("/copy"),
        "{text}"
    );
}

#[test]
fn the_science_check_says_unknown_when_it_checked_no_window() {
    let dir = scratch("science-windows");
    let (input, spec) = roibin_h5tests::jungfrau(&dir, 1);
    let file = input.split(':').next().unwrap();
    let json = dir.join("s.json");
    let science = |spec: &str| {
        let o = ok(roibin(&[
            "bench",
            "--science",
            file,
            "--spec",
            spec,
            "--frames",
            "1",
            "--json",
            json.to_str().unwrap(),
        ]));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        (String::from_utf8_lossy(&o.stdout).into_owned(), v)
    };
    // Plain sz keeps no windows: nothing was checked, so the answer is unknown, not true.
    let (text, v) = science("sz(abs=90)");
    assert!(text.contains("window pixels bit-exact: unknown"), "{text}");
    assert!(v["window_pixels_exact"].is_null(), "{v}");
    let (text, v) = science(&spec);
    assert!(text.contains("window pixels bit-exact: true ("), "{text}");
    assert_eq!(v["window_pixels_exact"], true);
    assert!(v["window_pixels_checked"].as_u64().unwrap() > 0);
}

#[test]
fn tasks_are_capped() {
    // `--tasks 100000` once read 200 000 chunks' worth of rounds before encoding any.
    let dir = scratch("tasks-cap");
    let input = eiger(&dir);
    let out = dir.join("t.h5");
    let t = std::time::Instant::now();
    let o = ok(roibin(&[
        "compress",
        &input,
        out.to_str().unwrap(),
        "--spec",
        "lz4",
        "--tasks",
        "100000",
    ]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--tasks 100000: capped at"), "{err}");
    assert!(t.elapsed().as_secs() < 60);
}

#[test]
fn autotune_science_chooses_a_graph_that_keeps_the_spots() {
    let dir = scratch("science-tune");
    let file = dir.join("f.h5");
    // Photon-counting frames: Poisson background (mean 2), 12 spots per frame.
    let mut c = roibin_h5tests::client("python3");
    c.arg("-c")
        .arg(
            "import h5py, numpy as np, sys\n\
             rng = np.random.default_rng(3)\n\
             x = rng.poisson(2.0, (2, 192, 160)).astype('u2')\n\
             for f in range(2):\n\
             \x20   for k in range(12):\n\
             \x20       y, z = 20 + 13 * k, 20 + (37 * k) % 120\n\
             \x20       x[f, y - 1:y + 2, z - 1:z + 2] += np.array([[20, 40, 20], [40, 200, 40], [20, 40, 20]], 'u2')\n\
             with h5py.File(sys.argv[1], 'w') as h:\n\
             \x20   h.create_dataset('d', data=x)\n",
        )
        .arg(&file);
    ok(c);
    let chosen = dir.join("chosen.txt");
    let o = ok(roibin(&[
        "autotune",
        "--science",
        &format!("{}:/d", file.display()),
        "--bound",
        "1",
        "--frames",
        "2",
        "--json",
        "-o",
        chosen.to_str().unwrap(),
    ]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let spec = v["chosen"].as_str().unwrap();
    assert_eq!(std::fs::read_to_string(&chosen).unwrap().trim(), spec);
    let best = v["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["spec"] == spec)
        .unwrap();
    assert!(best["recall"].as_f64().unwrap() >= 0.995, "{best}");
    assert!(best["precision"].as_f64().unwrap() >= 0.995, "{best}");
    assert!(best["spots"].as_u64().unwrap() >= 20, "{best}");
    // No qualifying candidate has a higher ratio.
    for c in v["candidates"].as_array().unwrap() {
        if c["recall"].as_f64().unwrap() >= 0.995 && c["precision"].as_f64().unwrap() >= 0.995 {
            assert!(c["ratio_vs_u16"].as_f64() <= best["ratio_vs_u16"].as_f64());
        }
    }
    // The chosen spec compresses the dataset through the tools.
    ok(roibin(&[
        "compress",
        &format!("{}:/d", file.display()),
        dir.join("out.h5").to_str().unwrap(),
        "--spec",
        &format!("@{}", chosen.display()),
    ]));
}
