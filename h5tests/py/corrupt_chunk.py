"""Overwrite chunk N of FILE:/entry/data/data with bytes no decoder accepts (a raw write that
keeps the chunk's filters on record). usage: corrupt_chunk.py FILE N"""
import sys

import h5py

path, n = sys.argv[1], int(sys.argv[2])
with h5py.File(path, "a") as f:
    d = f["entry/data/data"]
    d.id.write_direct_chunk((n,) + (0,) * (d.ndim - 1), b"\x00\x00\x00\x00\x00\x00\x30\x00\x00\x00\x20\x00" + b"\xff" * 64)
