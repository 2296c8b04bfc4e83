"""Bad input through h5py: each case must raise a clear error, never abort the interpreter,
never store data silently uncompressed. Usage: errors.py OUT_DIR"""
import sys, os
import h5py
import numpy as np
from common import FILTER_ID, expect_error, opts, sample

out_dir = sys.argv[1]
path = os.path.join(out_dir, "errors.h5")
data = sample("u2", (4, 60, 70))




with h5py.File(path, "w") as f:
    expect_error("unknown codec", lambda: f.create_dataset("a", data=data, chunks=(1, 60, 70), compression=FILTER_ID, compression_opts=opts("zsdt(3)")), "unknown codec `zsdt`")
    expect_error("bad option", lambda: f.create_dataset("b", data=data, chunks=(1, 60, 70), compression=FILTER_ID, compression_opts=opts("zstd(level=99)")), "zstd:level", "out of range")
    expect_error("syntax", lambda: f.create_dataset("c", data=data, chunks=(1, 60, 70), compression=FILTER_ID, compression_opts=opts("zstd(3")), "column 7")
    expect_error("garbage cd_values", lambda: f.create_dataset("d", data=data, chunks=(1, 60, 70), compression=FILTER_ID, compression_opts=(1, 2, 3)), "roibin cdvalues")
    expect_error("complex dtype", lambda: f.create_dataset("e", data=np.zeros(10, np.complex64), chunks=(5,), compression=FILTER_ID), "unsupported datatype")
    expect_error("big-endian", lambda: f.create_dataset("g", data=data.astype(">u2"), chunks=(1, 60, 70), compression=FILTER_ID), "big-endian")
    expect_error("string dtype", lambda: f.create_dataset("h", data=np.array([b"abc"] * 8), chunks=(4,), compression=FILTER_ID), "unsupported datatype")
    for name in "abcdegh":
        assert name not in f, "dataset %s exists after a failed create" % name

    # A corrupted chunk: h5py raises OSError carrying our message, and Python lives on.
    ds = f.create_dataset("good", data=data, chunks=(1, 60, 70), compression=FILTER_ID, compression_opts=opts("bitshuffle|lz4"))
    mask, raw = ds.id.read_direct_chunk((1, 0, 0))
    bad = bytearray(raw)
    bad[len(bad) // 2] ^= 0xFF
    ds.id.write_direct_chunk((1, 0, 0), bytes(bad), mask)
    truncated = bytes(raw[: len(raw) // 3])
    ds.id.write_direct_chunk((2, 0, 0), truncated, mask)
    ds.id.write_direct_chunk((3, 0, 0), b"not a roibin chunk at all", mask)

with h5py.File(path, "r") as f:
    ds = f["good"]
    assert np.array_equal(ds[0], data[0])  # intact chunk still reads
    e = expect_error("flipped byte", lambda: ds[1], "roibin filter", "checksum mismatch")
    assert isinstance(e, OSError), type(e)
    expect_error("truncated chunk", lambda: ds[2], "roibin filter")
    expect_error("foreign chunk", lambda: ds[3], "roibin filter", "magic")
    assert np.array_equal(ds[0], data[0])  # and still, after the failures
print("alive")
