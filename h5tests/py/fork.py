"""The plugin keeps working in a child forked after it has started its threads (Python's
multiprocessing default on Linux). Usage: fork.py OUT_DIR"""
import os, sys
import multiprocessing as mp
import h5py
import numpy as np
from common import FILTER_ID, opts, sample

out_dir = sys.argv[1]
data = sample("u2", (4, 1000, 1000))


def work(i):
    path = os.path.join(out_dir, "child_%d.h5" % i)
    with h5py.File(path, "w") as f:
        f.create_dataset("d", data=data, chunks=(1, 1000, 1000), compression=FILTER_ID, compression_opts=opts("fast"))
    with h5py.File(path) as f:
        return bool(np.array_equal(f["d"][()], data))


# The parent compresses first, so its worker threads exist before the fork.
assert work(99)
ctx = mp.get_context("fork")
with ctx.Pool(2) as pool:
    res = pool.map_async(work, range(4)).get(timeout=60)
assert all(res), res
print("forked children ok")
