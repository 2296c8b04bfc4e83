"""h5py writes with roibin's lossy `sz` through the plugin and reads back within the bound,
element by element, for floats (ADU) and integers (counts). Usage: lossy.py OUT_DIR"""
import os, sys
import h5py
import numpy as np
from common import FILTER_ID, opts, sample

out_dir = sys.argv[1]
path = os.path.join(out_dir, "lossy.h5")
cases = [
    ("f4", (3, 200, 300), (1, 200, 300), "sz(abs=10)", 10.0),
    ("f8", (2, 40, 50, 60), (1, 40, 50, 60), "sz(rel=1e-3,predictor=interp_cubic)", None),
    ("u2", (4, 128, 96), (1, 128, 96), "sz(abs=2)", 2.0),
    ("i4", (5000,), (999,), "sz(abs=0)", 0.0),
    ("f4z", (3, 200, 300), (1, 200, 300), "zfp(accuracy=0.5)", 0.5),
    ("i4z", (4, 30, 33), (2, 30, 33), "zfp(reversible=1)", 0.0),
]
with h5py.File(path, "w") as f:
    for name, shape, chunks, spec, _ in cases:
        dt = name[:2]
        data = sample(dt, shape, seed=7)
        if dt == "f4":
            data[0, 5, 5] = np.nan
            data[1, 6, 6] = np.inf
        ds = f.create_dataset(name, data=data, chunks=chunks, compression=FILTER_ID, compression_opts=opts(spec))
        assert ds.id.get_storage_size() < data.nbytes, (spec, ds.id.get_storage_size(), data.nbytes)
        f.create_dataset(name + "_orig", data=data)
with h5py.File(path, "r") as f:
    for name, shape, chunks, spec, bound in cases:
        orig = f[name + "_orig"][()]
        got = f[name][()]
        if bound is None:  # rel: bound per chunk from that chunk's finite range
            err_ok = True
            for c in range(shape[0]):
                o, g = orig[c].astype(np.float64), got[c].astype(np.float64)
                err_ok &= bool(np.abs(o - g).max() <= 1e-3 * (o.max() - o.min()))
            assert err_ok, spec
        else:
            o, g = orig.astype(np.float64), got.astype(np.float64)
            fin = np.isfinite(o)
            err = np.abs(o[fin] - g[fin]).max()
            assert err <= bound, (spec, err)
            assert np.array_equal(o[~fin].view(np.uint64), g[~fin].view(np.uint64)), "non-finite values changed"
        print("%s %s ok" % (name, spec))
print("lossy ok")
