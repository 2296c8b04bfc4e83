"""Files and settings someone hands you, through h5py: each must give a clear error (or a
warning and a correct result), never a hang, a huge allocation, a file read or a silently
unfiltered chunk. Usage: hardening.py OUT_DIR FORGED_DIR

FORGED_DIR holds chunks the Rust test forged: `huge.rbin` (declares 2^32 u8 elements of zeros
in a few hundred kB) and `u16_64x32.rbin` (u16 [1,64,32], the byte count of a u8 [1,64,64] chunk)."""
import os, resource, subprocess, sys, time
import h5py
import numpy as np
from common import FILTER_ID, expect_error, opts, filter_mask_all_zero

out_dir, forged = sys.argv[1], sys.argv[2]
path = os.path.join(out_dir, "hardening.h5")
RESOLVED_MAGIC = 0x52425201


def resolved_opts(spec, dtype_code, chunk):
    """cd_values in the resolved form set_local writes (what a file stores)."""
    b = spec.encode()
    n = len(b)
    b += b"\0" * (-len(b) % 4)
    words = tuple(int.from_bytes(b[i:i + 4], "little") for i in range(0, len(b), 4))
    return (RESOLVED_MAGIC, dtype_code, len(chunk)) + tuple(chunk) + (n,) + words




def plain_env():
    env = dict(os.environ)
    env.pop("HDF5_PLUGIN_PATH", None)
    return env


# 1. A chunk declaring 2^32 elements, in a dataset whose cd_values do not say its shape (written
#    without the plugin, as a writer using direct chunk writes could): refused before allocating.
unresolved = os.path.join(out_dir, "unresolved.h5")
subprocess.run([sys.executable, "-c", """
import h5py, numpy as np, sys
with h5py.File(sys.argv[1], "w") as f:
    d = f.create_dataset("d", shape=(1, 1024), dtype="u1", chunks=(1, 1024), compression=443, allow_unknown_filter=True)
    d.id.write_direct_chunk((0, 0), open(sys.argv[2], "rb").read())
""", unresolved, os.path.join(forged, "huge.rbin")], check=True, env=plain_env())
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with h5py.File(unresolved) as f:
    t = time.time()
    expect_error("2^32-element chunk, unresolved cd_values", lambda: f["d"][:], "refusing more than")
    assert time.time() - t < 5
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0
assert grown < 200 << 10, "peak RSS grew by %d kB" % grown
print("peak RSS grew by %d kB" % grown)

with h5py.File(path, "w") as f:
    # 2. A forged chunk of another dtype and shape but the same byte count.
    ds = f.create_dataset("u8", data=np.zeros((1, 64, 64), "u1"), chunks=(1, 64, 64),
                          compression=FILTER_ID, compression_opts=opts("zstd"))
    ds.id.write_direct_chunk((0, 0, 0), open(os.path.join(forged, "u16_64x32.rbin"), "rb").read())
    expect_error("same-size chunk of another dtype and shape", lambda: ds[:], "not written for this dataset")

    # 3. Stored (resolved) specs are graph text, never a file name: no file is read, and its
    #    content never reaches a message.
    secret = os.path.join(out_dir, "secret.txt")
    with open(secret, "w") as s:
        s.write("TOPSECRET-LINE\n")
    expect_error("resolved spec naming a file",
                 lambda: f.create_dataset("at", data=np.zeros((4, 8), "f4"), chunks=(4, 8), compression=FILTER_ID,
                                          compression_opts=resolved_opts("@" + secret, 9, (4, 8))),
                 "syntax", absent=("TOPSECRET",))
    # A user's `@FILE` reads a regular file only: a FIFO or a device errors at once.
    fifo = os.path.join(out_dir, "fifo")
    os.mkfifo(fifo)
    for bad in (fifo, "/dev/zero"):
        t = time.time()
        expect_error("@%s" % bad, lambda: f.create_dataset("fifo", data=np.zeros((4, 8), "f4"), chunks=(4, 8),
                                                           compression=FILTER_ID, compression_opts=opts("@" + bad)),
                     "not a regular file")
        assert time.time() - t < 5
    # A user's `@FILE` that is not a spec: where, never what.
    expect_error("@secret", lambda: f.create_dataset("sec", data=np.zeros((4, 8), "f4"), chunks=(4, 8),
                                                    compression=FILTER_ID, compression_opts=opts("@" + secret)),
                 "does not hold a roibin graph spec", absent=("TOPSECRET",))

    # 4. roibin first and once: after another filter, or twice, is refused at creation.
    expect_error("after shuffle", lambda: f.create_dataset("sh", data=np.zeros((4, 8), "u2"), chunks=(4, 8), shuffle=True,
                                                          compression=FILTER_ID, compression_opts=opts("zstd")),
                 "must be the first filter")
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_chunk((4, 8))
    dcpl.set_filter(FILTER_ID, h5py.h5z.FLAG_OPTIONAL, opts("zstd"))
    dcpl.set_filter(FILTER_ID, h5py.h5z.FLAG_OPTIONAL, opts("lz4"))
    space = h5py.h5s.create_simple((4, 8))
    expect_error("listed twice", lambda: h5py.h5d.create(f.id, b"twice", h5py.h5t.STD_U16LE, space, dcpl=dcpl), "listed 2 times")
    assert "sh" not in f and "twice" not in f

    # 5. `threads` is an allocation, not part of the file: the dataset's parameters leave it out.
    ds = f.create_dataset("thr", data=np.arange(4096, dtype="u2").reshape(64, 64), chunks=(32, 64),
                          compression=FILTER_ID, compression_opts=opts("zstd(threads=2)"))
    cd = ds.id.get_create_plist().get_filter(0)[2]
    spec_bytes = b"".join(int(w).to_bytes(4, "little") for w in cd[3 + 2 + 1:])
    assert b"threads" not in spec_bytes and b"zstd" in spec_bytes, spec_bytes
    assert filter_mask_all_zero(ds)
    print("threads left out of cd_values: %r" % spec_bytes.rstrip(b"\0"))

    # 6. Variable-length types: HDF5 calls no set_local for them; the filter refuses each chunk
    #    (HDF5 then stores it unfiltered, as the filter is optional) and says so on stderr.
    d = f.create_dataset("vlen", data=np.array([b"abc", b"de"] * 4, dtype=h5py.string_dtype()), chunks=(4,),
                         compression=FILTER_ID)
    assert list(d[:2]) == [b"abc", b"de"]
    print("vlen filter_mask: %s" % [d.id.get_chunk_info(i).filter_mask for i in range(d.id.get_num_chunks())])

print("alive")
