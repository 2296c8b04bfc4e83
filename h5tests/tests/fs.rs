//! Reading through a `roibin-fs` mount: h5py (with roibin's plugin and hdf5plugin) and
//! `roibin stxm` see exactly what they see reading the origin directory, and the HDF5-aware
//! prefetch finds the chunk index of a real file.

#[path = "../../fs/tests/support/mod.rs"]
mod support;

use roibin_h5tests::*;

#[test]
fn h5py_and_stxm_through_the_mount_equal_the_origin() {
    let dir = scratch("fs-mount");
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    synth_scan(&data.join("sub/scan.h5"), 4);
    ok(python("fs_read.py", &["write", data.to_str().unwrap()]));
    let nginx = support::Nginx::origin(&dir.join("nginx"), &data);
    // Small blocks, so that chunks lie in other blocks than the index listing them.
    let m = support::Mount::start(
        &nginx.url(),
        &dir,
        "256M",
        &["--block", "16K", "--readahead", "0"],
    );

    let out = ok(python(
        "fs_read.py",
        &[
            "compare",
            data.to_str().unwrap(),
            m.mnt.to_str().unwrap(),
            "written.h5",
            "sub/scan.h5",
        ],
    ));
    assert!(stdout(&out).contains("identical through the mount"));

    let map = |root: &std::path::Path, name: &str| {
        let json = dir.join(name);
        ok(roibin(&[
            "stxm",
            root.join("sub/scan.h5").to_str().unwrap(),
            "--scan",
            "6x7",
            "--signal",
            "comh",
            "--no-cache",
            "-o",
            json.to_str().unwrap(),
        ]));
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
        v["data"].clone()
    };
    let direct = map(&data, "direct.json");
    assert!(direct.is_array(), "{direct}");
    assert_eq!(map(&m.mnt, "mounted.json"), direct);

    // The chunk indexes were seen in the bytes and their chunks scheduled (readahead is off,
    // so every prefetch is the HDF5 hint's).
    let stats = m.stats();
    assert!(
        stats["hdf5_chunks_hinted"].as_u64().unwrap() >= 24 + 42,
        "{stats}"
    );
    assert!(stats["prefetch_queued"].as_u64().unwrap() > 4, "{stats}");
}
