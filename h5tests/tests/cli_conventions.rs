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
