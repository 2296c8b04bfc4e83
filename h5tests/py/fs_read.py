"""h5py through a roibin-fs mount: `write DIR` makes a file whose datasets use roibin's filter
(443) and hdf5plugin's bitshuffle-LZ4; `compare A B NAME...` reads every dataset and attribute
of each NAME under both roots (the origin directory and the mount) and checks them equal."""
import sys

import h5py
import hdf5plugin  # noqa: F401  (registers bitshuffle-LZ4, as a user's script would)
import numpy as np

from common import opts, sample


def write(root):
    with h5py.File(f"{root}/written.h5", "w") as f:
        frames = sample("u2", (24, 96, 128), seed=3)
        f.create_dataset("lossless", data=frames, chunks=(1, 96, 128),
                         compression=443, compression_opts=opts("shuffle|zstd"))
        f.create_dataset("lossy", data=frames.astype("f4"), chunks=(1, 96, 128),
                         compression=443, compression_opts=opts("sz(abs=0.5)"))
        f.create_dataset("bslz4", data=frames, chunks=(4, 96, 128), **hdf5plugin.Bitshuffle())
        f["lossless"].attrs["note"] = "written by fs_read.py"


def everything(path):
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]
            for k, v in obj.attrs.items():
                out[f"{name}@{k}"] = v
        f.visititems(visit)
    return out


def compare(a, b, names):
    n = 0
    for name in names:
        x, y = everything(f"{a}/{name}"), everything(f"{b}/{name}")
        assert x.keys() == y.keys(), (name, sorted(x), sorted(y))
        for k in x:
            assert np.array_equal(np.asarray(x[k]), np.asarray(y[k])), (name, k)
            n += 1
    print(f"fs_read: {n} datasets and attributes identical through the mount")


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2])
    else:
        compare(sys.argv[2], sys.argv[3], sys.argv[4:])
