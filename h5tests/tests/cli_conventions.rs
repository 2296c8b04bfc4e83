//! The conventions users expect of a command-line tool: shell completions and man pages,
//! generated from the same argument definitions as `--help`.

use roibin_h5tests::{ok, roibin, run, scratch, stdout};

#[test]
fn completions_and_man_pages_cover_every_command() {
    let commands = [
        "compress",
        "decompress",
        "stxm",
        "serve",
        "autotune",
        "cdvalues",
    ];
    for shell in ["bash", "zsh", "fish"] {
        let o = ok(roibin(&["completions", shell]));
        let text = stdout(&o);
        for c in commands {
            assert!(text.contains(c), "{shell} completion lacks {c}");
        }
    }
    let (code, _, err) = run(roibin(&["completions", "tcsh"]));
    assert_eq!(code, Some(2));
    assert!(err.contains("possible values"), "{err}");

    let dir = scratch("man");
    ok(roibin(&["man", "--out", dir.to_str().unwrap()]));
    let page = std::fs::read_to_string(dir.join("roibin.1")).unwrap();
    assert!(page.starts_with(".ie") || page.contains(".TH"), "{page}");
    for c in commands {
        let page = std::fs::read_to_string(dir.join(format!("roibin-{c}.1"))).unwrap();
        assert!(page.contains(".TH"), "roibin-{c}.1 is not a man page");
    }
    let page = std::fs::read_to_string(dir.join("roibin-compress.1")).unwrap();
    assert!(page.contains("spec"), "roibin-compress.1 lacks its options");
}

#[test]
fn every_command_has_help_with_examples() {
    let commands = [
        "list",
        "cdvalues",
        "compress",
        "decompress",
        "peaks",
        "info",
        "synth",
        "bench",
        "autotune",
        "stxm",
        "serve",
        "demo",
    ];
    for c in commands {
        let text = stdout(&ok(roibin(&[c, "--help"])));
        assert!(
            text.contains("Examples:\n  roibin") || text.contains("Examples:\n  mpirun"),
            "roibin {c} --help has no examples:\n{text}"
        );
    }
    let top = stdout(&ok(roibin(&["--help"])));
    for c in commands {
        assert!(top.contains(c), "roibin --help does not list {c}");
    }
}

#[test]
fn quiet_json_and_no_color() {
    let dir = scratch("quiet");
    let frames = dir.join("frames.h5");
    let f = frames.to_str().unwrap();
    // Quiet: a successful command says nothing on stderr; by flag or by environment.
    let o = ok(roibin(&["--quiet", "synth", f, "--frames", "2"]));
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let packed = dir.join("packed.h5");
    let input = format!("{f}:/entry/data/data");
    let mut c = roibin(&[
        "compress",
        &input,
        packed.to_str().unwrap(),
        "--spec",
        "fast",
    ]);
    c.env("ROIBIN_QUIET", "1");
    let o = ok(c);
    assert!(o.stderr.is_empty() && o.stdout.is_empty());
    // Not quiet: the summary is there.
    let again = dir.join("again.h5");
    let o = ok(roibin(&["compress", &input, again.to_str().unwrap()]));
    assert!(String::from_utf8_lossy(&o.stderr).contains("ratio"));

    // --json: one object on stdout that says what moved, even when quiet.
    let json = dir.join("json.h5");
    let o = ok(roibin(&[
        "-q",
        "compress",
        &input,
        json.to_str().unwrap(),
        "--spec",
        "strong",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["chunks"], 2);
    assert!(v["ratio"].as_f64().unwrap() > 2.0, "{v}");
    assert!(v["spec"].as_str().unwrap().contains("zstd"), "{v}");
    assert_eq!(v["raw_bytes"], 2 * 2167 * 2070 * 2);
    let plain = dir.join("plain.h5");
    let o = ok(roibin(&[
        "decompress",
        &format!("{}:/entry/data/data", json.display()),
        plain.to_str().unwrap(),
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["raw_bytes"], 2 * 2167 * 2070 * 2);

    // NO_COLOR beats a forced colour: errors and help come without escape codes.
    let mut c = roibin(&["compress"]);
    c.env("CLICOLOR_FORCE", "1");
    let (code, _, err) = run(c);
    assert_eq!(code, Some(2));
    assert!(
        err.contains('\x1b'),
        "CLICOLOR_FORCE should colour: {err:?}"
    );
    let mut c = roibin(&["compress"]);
    c.env("CLICOLOR_FORCE", "1").env("NO_COLOR", "1");
    let (code, _, err) = run(c);
    assert_eq!(code, Some(2));
    assert!(!err.contains('\x1b') && err.contains("<INPUT>"), "{err:?}");
}
