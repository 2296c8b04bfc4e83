//! Every client in its own process: h5py (its wheel's HDF5 2.x), Debian's h5dump and h5repack
//! (HDF5 1.10), and the roibin tools, reading and writing each other's files.

use roibin_h5tests::*;

/// What the compared dataset's filters must be.
enum Expect {
    /// roibin's filter, stored smaller than raw.
    Roibin,
    /// No filter at all.
    Plain,
}

/// h5py (its own process) reads `file:dset` and `reference:ref_dset` and finds them equal.
fn same(file: &str, dset: &str, reference: &str, ref_dset: &str, expect: Expect) {
    let flag: &[&str] = match expect {
        Expect::Roibin => &["--expect-filter", "443"],
        Expect::Plain => &["--expect-no-filter"],
    };
    let mut args = vec![file, dset, reference, ref_dset];
    args.extend_from_slice(flag);
    ok(python("compare.py", &args));
}

const SPECS: &[&str] = &[
    "", // empty cd_values: auto
    "bitshuffle|lz4",
    "bitshuffle|zstd(5)",
    "shuffle|zstd(level=1,block=4096)",
    "delta|bitshuffle|bzip2(level=1)",
    "fast",
    "strong",
    "chunked(block=1000,codec=delta|bitshuffle|lz4)",
];

fn ud(spec: &str) -> String {
    let out = ok(roibin(&["cdvalues", spec]));
    let text = stdout(&out);
    text.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("h5repack:")
                .map(|s| s.trim().trim_start_matches("-f ").to_string())
        })
        .unwrap_or_else(|| panic!("no h5repack line in {text}"))
}

#[test]
fn h5py_writes_and_reads_every_dtype_rank_and_odd_chunk() {
    let dir = scratch("h5py");
    let mut c = python("write_read.py", &[dir.to_str().unwrap()]);
    c.args(SPECS);
    let out = ok(c);
    assert!(stdout(&out).contains("ok 224 datasets"), "{}", stdout(&out));
}

#[test]
fn h5py_errors_are_clear_and_the_interpreter_lives() {
    let dir = scratch("errors");
    let out = ok(python("errors.py", &[dir.to_str().unwrap()]));
    let text = stdout(&out);
    assert!(text.trim_end().ends_with("alive"), "{text}");
    assert!(text.contains("flipped byte -> OSError"), "{text}");
    // HDF5 1.10's h5dump reports the same corrupted chunk with our message, and fails.
    let mut c = client("h5dump");
    c.args(["--enable-error-stack", "-d", "/good"])
        .arg(dir.join("errors.h5"));
    let (code, _, err) = run(c);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("roibin filter") && err.contains("checksum mismatch"),
        "{err}"
    );
}

#[test]
fn h5py_lossy_sz_keeps_its_bound() {
    let dir = scratch("lossy");
    let out = ok(python("lossy.py", &[dir.to_str().unwrap()]));
    assert!(stdout(&out).contains("lossy ok"), "{}", stdout(&out));
}

#[test]
fn forked_children_keep_compressing() {
    let dir = scratch("fork");
    let out = ok(python("fork.py", &[dir.to_str().unwrap()]));
    assert!(stdout(&out).contains("forked children ok"));
}

#[test]
fn cdvalues_match_what_h5py_scripts_pack() {
    let out = ok(roibin(&["cdvalues", "bitshuffle|zstd(5)"]));
    let text = stdout(&out);
    // 'bitshuffle|zstd(5)' is 18 bytes: magic, length, then 5 words.
    assert!(
        text.contains("compression=443, compression_opts=(1380078849, 18, "),
        "{text}"
    );
    assert!(text.contains("-f UD=443,0,7,1380078849,18,"), "{text}");
    let (code, _, err) = run(roibin(&["cdvalues", "bitshufle|zstd"]));
    assert_eq!(code, Some(1));
    assert!(err.contains("unknown codec `bitshufle`"), "{err}");
}

#[test]
fn h5dump_and_h5repack_read_h5py_files_and_repack_in_and_out() {
    let dir = scratch("repack");
    let d = |n: &str| dir.join(n).to_str().unwrap().to_string();
    ok(python("make_plain.py", &[&d("plain.h5")]));

    for spec in ["bitshuffle|lz4", "delta|shuffle|zstd(3)"] {
        // Into our filter with h5repack (HDF5 1.10), UD= from `roibin cdvalues`.
        let _ = std::fs::remove_file(d("ours.h5"));
        let mut c = client("h5repack");
        c.args(["-f", &ud(spec), &d("plain.h5"), &d("ours.h5")]);
        ok(c);
        let mut c = client("h5dump");
        c.args(["-p", "-H", &d("ours.h5")]);
        let header = stdout(&ok(c));
        assert!(header.contains("FILTER_ID 443"), "{header}");
        // h5py (HDF5 2.x) reads what h5repack (1.10) wrote, through our filter.
        for name in [
            "chunked_u1",
            "chunked_u2",
            "chunked_i4",
            "chunked_f8",
            "frames_u4",
        ] {
            same(&d("ours.h5"), name, &d("plain.h5"), name, Expect::Roibin);
        }
        // h5dump (1.10) decodes every value: binary dump equals the original's.
        let mut c = client("h5dump");
        c.args([
            "-d",
            "/chunked_i2",
            "-b",
            "LE",
            "-o",
            &d("ours.bin"),
            &d("ours.h5"),
        ]);
        ok(c);
        let mut c = client("h5dump");
        c.args([
            "-d",
            "/chunked_i2",
            "-b",
            "LE",
            "-o",
            &d("plain.bin"),
            &d("plain.h5"),
        ]);
        ok(c);
        assert_eq!(
            std::fs::read(d("ours.bin")).unwrap(),
            std::fs::read(d("plain.bin")).unwrap()
        );
        // Out of our filter again.
        let _ = std::fs::remove_file(d("back.h5"));
        let mut c = client("h5repack");
        c.args(["-f", "NONE", &d("ours.h5"), &d("back.h5")]);
        ok(c);
        same(
            &d("back.h5"),
            "frames_u4",
            &d("plain.h5"),
            "frames_u4",
            Expect::Plain,
        );
    }

    // h5dump (1.10) decodes h5py-written (2.x) roibin files: its binary dump equals that of the
    // same dataset after h5repack took the filter off.
    ok(python(
        "write_read.py",
        &[dir.to_str().unwrap(), "bitshuffle|zstd(5)"],
    ));
    let mut c = client("h5repack");
    c.args(["-f", "NONE", &d("w_0.h5"), &d("w_0_plain.h5")]);
    ok(c);
    same(
        &d("w_0_plain.h5"),
        "u2_r3",
        &d("w_0.h5"),
        "u2_r3",
        Expect::Plain,
    );
    for (file, bin) in [("w_0.h5", "a.bin"), ("w_0_plain.h5", "b.bin")] {
        let mut c = client("h5dump");
        c.args(["-d", "/i4_r4", "-b", "LE", "-o", &d(bin), &d(file)]);
        ok(c);
    }
    assert_eq!(
        std::fs::read(d("a.bin")).unwrap(),
        std::fs::read(d("b.bin")).unwrap()
    );

    // h5repack reads h5py-written roibin files (2.x → 1.10) and rewrites them with another spec.
    let mut c = client("h5repack");
    c.args([
        "-f",
        &ud("shuffle|lz4"),
        &d("w_0.h5"),
        &d("w_0_repacked.h5"),
    ]);
    ok(c);
    for name in ["u2_r3", "f4_r4", "i4_r1", "f8_r2"] {
        same(
            &d("w_0_repacked.h5"),
            name,
            &d("w_0.h5"),
            name,
            Expect::Roibin,
        );
    }
}

#[test]
fn roibin_tools_read_and_write_the_same_files() {
    let dir = scratch("tools");
    let d = |n: &str| dir.join(n).to_str().unwrap().to_string();
    ok(python("make_plain.py", &[&d("plain.h5")]));
    let tool = |args: &[&str]| ok(roibin(args));
    // roibin compress: plain → roibin (direct chunk writes); h5py reads it.
    tool(&[
        "compress",
        &format!("{}:/frames_u4", d("plain.h5")),
        &format!("{}:/x/frames", d("c.h5")),
        "--spec",
        "bitshuffle|zstd(3)",
        "--tasks",
        "2",
    ]);
    tool(&[
        "compress",
        &format!("{}:/contig_u2", d("plain.h5")),
        &format!("{}:/contig", d("c.h5")),
        "--spec",
        "delta|bitshuffle|lz4",
        "--chunk",
        "2,16,41",
    ]);
    // Whole frames of a contiguous dataset: the tasks read them from the file themselves.
    tool(&[
        "compress",
        &format!("{}:/contig_u2", d("plain.h5")),
        &format!("{}:/contig_frames", d("c.h5")),
        "--spec",
        "zstd(1)",
        "--chunk",
        "1,40,41",
        "--tasks",
        "2",
    ]);
    tool(&[
        "compress",
        &format!("{}:/chunked_f4", d("plain.h5")),
        &format!("{}:/f4", d("c.h5")),
        "--spec",
        "shuffle|zstd",
        "--set",
        "zstd:level=7",
    ]);
    same(
        &d("c.h5"),
        "/x/frames",
        &d("plain.h5"),
        "frames_u4",
        Expect::Roibin,
    );
    same(
        &d("c.h5"),
        "/contig",
        &d("plain.h5"),
        "contig_u2",
        Expect::Roibin,
    );
    same(
        &d("c.h5"),
        "/contig_frames",
        &d("plain.h5"),
        "contig_u2",
        Expect::Roibin,
    );
    same(
        &d("c.h5"),
        "/f4",
        &d("plain.h5"),
        "chunked_f4",
        Expect::Roibin,
    );

    // roibin info reports the spec (canonical, with the --set applied) and per-chunk ratios.
    let info = stdout(&tool(&["info", &d("c.h5")]));
    assert!(info.contains("spec `shuffle|zstd(level=7)`"), "{info}");
    assert!(
        info.contains("/x/frames: u32 [7, 33, 65]") && info.contains("4 chunks"),
        "{info}"
    );
    let info = stdout(&tool(&["info", &format!("{}:/contig", d("c.h5"))]));
    assert!(
        info.contains("[2, 16, 0]") && info.contains("delta|bitshuffle|lz4"),
        "{info}"
    );

    // roibin reads an h5py-written roibin file (decoding chunks itself) and decompresses it.
    ok(python(
        "write_read.py",
        &[dir.to_str().unwrap(), "bitshuffle|lz4"],
    ));
    tool(&[
        "decompress",
        &format!("{}:/u2_r3", d("w_0.h5")),
        &format!("{}:/u2", d("plain_again.h5")),
    ]);
    same(
        &d("plain_again.h5"),
        "/u2",
        &d("w_0.h5"),
        "u2_r3",
        Expect::Plain,
    );
    // ...and re-compresses it with another graph.
    tool(&[
        "compress",
        &format!("{}:/i2_r4", d("w_0.h5")),
        &format!("{}:/i2", d("re.h5")),
        "--spec",
        "bzip2",
    ]);
    same(&d("re.h5"), "/i2", &d("w_0.h5"), "i2_r4", Expect::Roibin);

    // Errors: a bad spec names the problem; a missing dataset says how to list them.
    let (code, _, err) = run(roibin(&[
        "compress",
        &format!("{}:/frames_u4", d("plain.h5")),
        &format!("{}:/y", d("c2.h5")),
        "--spec",
        "zstd(level=fast)",
    ]));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("zstd:level") && err.contains("expected an integer"),
        "{err}"
    );
    let (code, _, err) = run(roibin(&["info", &format!("{}:/nope", d("c.h5"))]));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("no dataset `/nope`") && err.contains("roibin info"),
        "{err}"
    );
}

#[test]
fn roibin_list_comes_from_the_registry() {
    let text = stdout(&ok(roibin(&["list"])));
    for name in [
        "auto",
        "bitshuffle",
        "bzip2",
        "delta",
        "lz4",
        "shuffle",
        "zstd",
        "zstd:level",
        "zstd:threads",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
}

#[test]
fn roibin_graphs_through_h5py_and_h5repack_on_cxi_layouts() {
    let dir = scratch("roibin_cxi");
    let d = |n: &str| dir.join(n).to_str().unwrap().to_string();
    for (layout, stem, frames) in [("jungfrau", "jf", "2"), ("cspad", "cs", "3")] {
        let _ = std::fs::remove_file(d(&format!("{stem}.h5")));
        ok(roibin(&[
            "synth",
            "--layout",
            layout,
            "--frames",
            frames,
            &d(&format!("{stem}.h5")),
        ]));
    }
    let spec = |stem: &str, rows: u32| {
        format!(
            "roibin(peaks=pf8(mask=\"{}\",radius=\"{}\"),panel_rows={rows},background=bin(2,2)|sz(abs=90))",
            d(&format!("{stem}.mask.npy")),
            d(&format!("{stem}.radius.npy"))
        )
    };
    let _ = std::fs::remove_file(d("jf_given.h5"));
    ok(roibin(&[
        "compress",
        &format!("{}:/entry_1/data_1/data", d("jf.h5")),
        &d("jf_given.h5"),
        "--spec",
        "roibin(panel_rows=512)",
        "--peaks",
        "/entry_1/result_1",
    ]));
    // h5repack 1.10 takes at most 20 cd_values: long specs go through a spec file (@FILE).
    let at = |stem: &str, rows: u32| {
        let path = d(&format!("{stem}.spec"));
        std::fs::write(&path, spec(stem, rows)).unwrap();
        ud(&format!("@{path}"))
    };
    let out = ok(python(
        "roibin_h5.py",
        &[dir.to_str().unwrap(), &at("jf", 512), &at("cs", 185)],
    ));
    assert!(stdout(&out).contains("roibin h5 ok"), "{}", stdout(&out));
}

/// Tasks and stage threads change how fast a file is written, never its bytes; autotune
/// writes a tuning file that `roibin compress` and the plugin (ROIBIN_TUNING) both read.
#[test]
fn allocations_give_identical_files_and_tuning_files_are_read() {
    let dir = scratch("tuning");
    let d = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let (input, spec) = jungfrau(&dir, 4);
    let compress = |out: &str, extra: &[&str]| {
        let mut args = vec!["compress", &input, out, "--spec", &spec];
        args.extend_from_slice(extra);
        let o = ok(roibin(&args));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let serial = d("serial.h5");
    let log = compress(
        &serial,
        &[
            "--tasks",
            "1",
            "--set",
            "roibin:threads=1",
            "--set",
            "roibin/peaks/pf8:threads=1",
            "--set",
            "roibin/background/sz:threads=1",
        ],
    );
    // The summary names the time inside each stage.
    for stage in ["pf8 ", "bin ", "sz ", "roibin "] {
        assert!(log.contains(stage), "no time for {stage} in:\n{log}");
    }
    for (name, extra) in [
        ("default.h5", vec![]),
        (
            "wide.h5",
            vec![
                "--tasks",
                "3",
                "--set",
                "roibin/peaks/pf8:threads=2",
                "--set",
                "roibin/background/bin:threads=2",
            ],
        ),
    ] {
        compress(&d(name), &extra);
        let (a, b) = (
            std::fs::read(&serial).unwrap(),
            std::fs::read(d(name)).unwrap(),
        );
        assert!(a == b, "{name} differs from the serial file");
    }

    // `info` reads the peaks per frame and the non-hit flags from the chunks themselves.
    let info = stdout(&ok(roibin(&["info", &serial])));
    assert!(
        info.contains("ROIBIN: 4 frames,") && info.contains(" 0 non-hit frames"),
        "{info}"
    );
    let all_misses = spec.replace("background=", "min_peaks=100000,background=");
    let flagged = d("flagged.h5");
    ok(roibin(&[
        "compress",
        &input,
        &flagged,
        "--spec",
        &all_misses,
    ]));
    let info = stdout(&ok(roibin(&["info", &flagged])));
    assert!(info.contains("4 non-hit frames: 0, 1, 2, 3"), "{info}");

    // A short search; the file it writes is what compress and the plugin read.
    let tune = d("tune.json");
    let out = ok(roibin(&[
        "autotune",
        &input,
        "--spec",
        &spec,
        "--frames",
        "4",
        "--budget",
        "20",
        "--max-evals",
        "5",
        "--repeats",
        "1",
        "-o",
        &tune,
        "--json",
    ]));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert!(report["evaluations"].as_u64().unwrap() >= 2, "{report}");
    assert!(report["speedup"].as_f64().unwrap() >= 1.0, "{report}");
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&tune).unwrap()).unwrap();
    let entry = &mut file["entries"][0];
    assert_eq!(entry["dtype"], "f32");
    assert_eq!(entry["chunk"][1], 4096);
    // Pin an allocation that differs from every default, so reading it is visible.
    entry["chunk"] = serde_json::json!([2, 4096, 1024]);
    entry["tasks"] = 1.into();
    entry["threads"] = serde_json::json!({"roibin/peaks/pf8": 1, "roibin/background/sz": 1});
    std::fs::write(&tune, file.to_string()).unwrap();
    let log = compress(&d("tuned.h5"), &["--tuning", &tune]);
    assert!(
        log.contains("tuned for") && log.contains("chunk [2, 4096, 1024], 1 tasks"),
        "{log}"
    );
    let info = stdout(&ok(roibin(&["info", &d("tuned.h5")])));
    assert!(info.contains("chunks [2, 4096, 1024]"), "{info}");

    // The plugin: same tuning through ROIBIN_TUNING, one frame per chunk (the frame-shape
    // entry applies its threads); chunks byte-identical to an untuned write.
    let write = |out: &str, tuning: Option<&str>| {
        let mut c = python(
            "tuning.py",
            &["write", &d("jf.h5"), "/entry_1/data_1/data", out, &spec],
        );
        c.env("ROIBIN_VERBOSE", "1");
        match tuning {
            Some(t) => c.env("ROIBIN_TUNING", t),
            None => c.env_remove("ROIBIN_TUNING"),
        };
        let o = ok(c);
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let log = write(&d("plain_py.h5"), None);
    assert!(!log.contains("tuned"), "{log}");
    let log = write(&d("tuned_py.h5"), Some(&tune));
    assert!(
        log.contains("tuned `") && log.contains("pf8(") && log.contains("threads=1"),
        "the plugin did not apply the tuning file:\n{log}"
    );
    ok(python(
        "tuning.py",
        &["same-chunks", &d("plain_py.h5"), &d("tuned_py.h5"), "data"],
    ));
    // A broken tuning file costs a warning, never a failed write.
    std::fs::write(d("broken.json"), "{ not json").unwrap();
    let log = write(&d("broken_py.h5"), Some(&d("broken.json")));
    assert!(
        log.contains("ignoring ROIBIN_TUNING") && log.contains("broken.json"),
        "{log}"
    );
    ok(python(
        "tuning.py",
        &["same-chunks", &d("plain_py.h5"), &d("broken_py.h5"), "data"],
    ));
    // compress refuses a broken file it was pointed at: the user asked for it explicitly.
    let (code, _, err) = run(roibin(&[
        "compress",
        &input,
        &d("x.h5"),
        "--spec",
        &spec,
        "--tuning",
        &d("broken.json"),
    ]));
    assert_eq!(code, Some(1));
    assert!(err.contains("not a roibin tuning file"), "{err}");
}
