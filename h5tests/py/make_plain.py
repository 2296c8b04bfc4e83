"""Write plain (unfiltered, chunked and contiguous) datasets for h5repack and the tools to
transform. Usage: make_plain.py FILE"""
import sys
import h5py
from common import DTYPES, sample

with h5py.File(sys.argv[1], "w") as f:
    for dt in DTYPES:
        f.create_dataset("chunked_" + dt, data=sample(dt, (6, 50, 77), seed=3), chunks=(1, 50, 77))
    f.create_dataset("contig_u2", data=sample("u2", (3, 40, 41), seed=4))
    f.create_dataset("frames_u4", data=sample("u4", (7, 33, 65), seed=5), chunks=(2, 33, 65))
print("ok")
