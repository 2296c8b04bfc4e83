//! `roibin stxm` end to end: maps against a numpy reference on synthetic scans in every
//! storage (plain, gzip, bitshuffle-LZ4 through hdf5plugin and through roibin, auto, sz,
//! roibin), on the real Merlin and ARINA files, truth maps, bad requests, a corrupt chunk, the
//! cache and the outputs (h5py/numpy in their own process: `h5tests/py/stxm.py`).

use roibin_h5tests::*;

#[test]
fn maps_match_numpy_on_every_storage_and_the_real_scans() {
    let dir = scratch("stxm");
    let data = root().join("../shared/data");
    let out = ok(python(
        "stxm.py",
        &[
            roibin_bin().to_str().unwrap(),
            data.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
    ));
    let text = stdout(&out);
    assert!(text.contains("stxm: all checks passed"), "{text}");
}
