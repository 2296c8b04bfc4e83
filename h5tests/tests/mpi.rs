//! `mpirun -n N roibin …` (tools built with `--features roibin-tools/mpi`, as scripts/test.sh
//! builds them): ranks split the chunks, rank 0 writes, and the file is the single process's.

use roibin_h5tests::*;
use std::process::Command;

/// `mpirun -n ranks roibin args…`, oversubscribed (CI has two cores), allowed as root, and
/// killed after two minutes rather than hanging the run if a rank waits forever.
fn mpirun(ranks: usize, args: &[&str]) -> Command {
    let mut c = client("timeout");
    c.args([
        "120",
        "mpirun",
        "--oversubscribe",
        "--allow-run-as-root",
        "--bind-to",
        "none",
    ])
    .args(["-n", &ranks.to_string()])
    .arg(roibin_bin())
    .args(args);
    c
}

fn mpi_ok(ranks: usize, args: &[&str]) -> String {
    let (code, out, err) = run(mpirun(ranks, args));
    assert!(
        !err.contains("built without the `mpi` feature"),
        "roibin was built without MPI: build with `--features roibin-tools/mpi` (scripts/test.sh does)"
    );
    assert_eq!(
        code,
        Some(0),
        "mpirun -n {ranks} roibin {args:?} failed:\n{out}\n{err}"
    );
    out + &err
}

#[test]
fn ranks_split_the_chunks_and_rank_zero_writes_the_single_process_file() {
    let dir = scratch("mpi");
    let d = |n: &str| dir.join(n).to_str().unwrap().to_string();
    // 5 frames: 5 chunks over 2 or 3 ranks leave some ranks without work in the last round.
    let (jf, spec) = jungfrau(&dir, 5);
    ok(roibin(&["synth", "--frames", "7", &d("eiger.h5")]));
    let same = |a: &str, b: &str| {
        let (x, y) = (std::fs::read(d(a)).unwrap(), std::fs::read(d(b)).unwrap());
        assert!(x == y, "{a} and {b} differ");
    };
    ok(roibin(&[
        "compress",
        &jf,
        &d("one.h5"),
        "--spec",
        &spec,
        "--tasks",
        "1",
    ]));
    for ranks in [2, 3] {
        let name = format!("ranks{ranks}.h5");
        let log = mpi_ok(
            ranks,
            &["compress", &jf, &d(&name), "--spec", &spec, "--tasks", "1"],
        );
        assert!(log.contains(&format!("{ranks} ranks")), "{log}");
        assert_eq!(
            log.matches("compressed 5 chunks").count(),
            1,
            "one summary, from rank 0: {log}"
        );
        same("one.h5", &name);
    }
    // Lossless counts, 4 ranks, two tasks each; then decompress over ranks too.
    let eiger = format!("{}:/entry/data/data", d("eiger.h5"));
    ok(roibin(&[
        "compress",
        &eiger,
        &d("e1.h5"),
        "--spec",
        "bitshuffle|lz4",
    ]));
    mpi_ok(
        4,
        &[
            "compress",
            &eiger,
            &d("e4.h5"),
            "--spec",
            "bitshuffle|lz4",
            "--tasks",
            "2",
        ],
    );
    same("e1.h5", "e4.h5");
    ok(roibin(&[
        "decompress",
        &format!("{}:/entry/data/data", d("e4.h5")),
        &d("p1.h5"),
    ]));
    mpi_ok(
        3,
        &[
            "decompress",
            &format!("{}:/entry/data/data", d("e4.h5")),
            &d("p3.h5"),
        ],
    );
    same("p1.h5", "p3.h5");

    // autotune: two candidates a round, one per rank; rank 0 writes the tuning file.
    let out = mpi_ok(
        2,
        &[
            "autotune",
            &jf,
            "--spec",
            &spec,
            "--frames",
            "4",
            "--budget",
            "30",
            "--max-evals",
            "4",
            "--repeats",
            "1",
            "-o",
            &d("tune.json"),
            "--json",
        ],
    );
    assert!(out.contains("2 candidates at a time over 2 ranks"), "{out}");
    let json = &out[out.find('{').expect("json report")..];
    let report: serde_json::Value = serde_json::Deserializer::from_str(json)
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(report["evaluations"], 4, "{report}");
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d("tune.json")).unwrap()).unwrap();
    assert_eq!(file["entries"].as_array().unwrap().len(), 1);

    // A failure on the ranks ends the job with the message, not a hang.
    let (code, _, err) = run(mpirun(
        2,
        &[
            "compress",
            &format!("{}:/nope", d("jf.h5")),
            &d("bad.h5"),
            "--spec",
            "auto",
        ],
    ));
    assert_ne!(code, Some(0));
    assert_ne!(code, Some(124), "the job hung until timeout killed it");
    assert!(err.contains("/nope"), "{err}");
}

#[test]
fn stxm_ranks_split_the_lines_and_give_the_single_process_map() {
    let dir = scratch("mpi-stxm");
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    ok(roibin(&[
        "synth",
        &p("scan.h5"),
        "--layout",
        "stxm",
        "--scan",
        "5x4",
        "--frame",
        "64x48",
    ]));
    for algo in [
        &["--signal", "comh"][..],
        &["--algo", "radial", "--radial", "24,32;0,30;10"],
    ] {
        let scan = p("scan.h5");
        let mut single = vec!["stxm", &scan[..], "--scan", "5x4", "--no-cache", "--out"];
        let one = p("one.json");
        single.push(&one);
        single.extend_from_slice(algo);
        ok(roibin(&single));
        let two = p("two.json");
        let mut multi: Vec<&str> = single.clone();
        let at = multi.iter().position(|a| *a == one.as_str()).unwrap();
        multi[at] = &two;
        let log = mpi_ok(2, &multi);
        let read = |f: &str| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap()
        };
        assert_eq!(read(&one)["data"], read(&two)["data"], "{log}");
        assert!(log.contains("on 2 rank(s)"), "{log}");
    }
}
