"""Read FILE:DATASET through h5py (plugin path set by the caller) and compare with REF:DATASET.
Usage: compare.py FILE DATASET REF_FILE REF_DATASET [--expect-filter ID|--expect-no-filter]"""
import sys
import h5py
import numpy as np

path, name, ref_path, ref_name = sys.argv[1:5]
flag = sys.argv[5] if len(sys.argv) > 5 else ""
with h5py.File(path, "r") as f, h5py.File(ref_path, "r") as r:
    ds, ref = f[name], r[ref_name]
    got, want = ds[()], ref[()]
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), "%s:%s differs from %s:%s" % (path, name, ref_path, ref_name)
    if flag == "--expect-filter":
        fid = sys.argv[6]
        assert fid in ds._filters, ds._filters
        assert ds.id.get_storage_size() < got.nbytes, (ds.id.get_storage_size(), got.nbytes)
    elif flag == "--expect-no-filter":
        assert not any(k.isdigit() for k in ds._filters), ds._filters
print("equal", got.shape, got.dtype)
