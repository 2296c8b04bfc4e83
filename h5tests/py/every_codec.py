"""Every registered codec through h5py on hard chunks: NaN/±Inf, subnormals, all-equal and
full-range values. No chunk may be stored unfiltered (filter_mask 0 everywhere), and every
read-back is bit-exact (lossless codecs; non-finite values everywhere) or within the codec's
promise. Usage: every_codec.py OUT_DIR ROIBIN_BINARY"""
import json, os, subprocess, sys
import h5py
import numpy as np
from common import FILTER_ID, opts, filter_mask_all_zero

out_dir, roibin = sys.argv[1], sys.argv[2]
names = [c["name"] for c in json.loads(subprocess.run([roibin, "list", "--json"], check=True,
                                                      capture_output=True).stdout)]
# What each codec promises; a codec missing here fails the test (each new one must say).
LOSSLESS = {"auto", "bitshuffle", "bzip2", "chunked", "delta", "fast", "lz4", "none", "shuffle", "strong", "zstd"}
BOUND = {"sz": ("sz(abs=0.5)", 0.5), "zfp": ("zfp(accuracy=0.5)", 0.5), "zfp_rate": ("zfp(rate=8)", None)}
# Lossy by design (binned means, windows only): values stay inside the chunk's finite range.
IN_RANGE = {"bin": ["bin(2,2)"], "roi": ["roi(peaks=pf8,roi=2)", "roi(auto)"],
            "roibin": ["roibin(roi=2,background=bin(2,2)|sz(abs=0.5))", "roibin(auto,background=bin(2,2)|sz(abs=0.5))"]}
FINDERS = {"pf8", "pfv3", "dispersion", "dispersion_extended", "given"}  # refused as a dataset's filter (peak lists do not decode)
for n in names:
    assert n in LOSSLESS or n in BOUND or n in IN_RANGE or n in FINDERS, "codec %s has no promise here" % n


def cases(dt):
    shape = (2, 16, 24)
    n = int(np.prod(shape))
    dt = np.dtype(dt)
    if dt.kind == "f":
        fi = np.finfo(dt)
        nonfinite = np.linspace(-50, 50, n).astype(dt)
        nonfinite[::7] = np.nan
        nonfinite[3::11] = np.inf
        nonfinite[5::13] = -np.inf
        sub = (np.arange(n) % 17 * fi.smallest_subnormal).astype(dt)
        full = np.where(np.arange(n) % 2 == 0, fi.max, fi.min).astype(dt)
        full[::5] = 0
        yield "nan/inf", nonfinite.reshape(shape)
        yield "subnormal", sub.reshape(shape)
        yield "full range", full.reshape(shape)
    else:
        ii = np.iinfo(dt)
        full = np.where(np.arange(n) % 2 == 0, ii.max, ii.min).astype(dt)
        full[::5] = 0
        yield "full range", full.reshape(shape)
    yield "all equal", np.full(shape, 7, dt)


def same_bits(a, b):
    return a.tobytes() == b.tobytes()


checked = 0
with h5py.File(os.path.join(out_dir, "every_codec.h5"), "w") as f:
    for name in names:
        if name in FINDERS:
            try:
                f.create_dataset("finder_" + name, data=np.zeros((2, 16, 24), "f4"), chunks=(1, 16, 24),
                                 compression=FILTER_ID, compression_opts=opts(name))
            except (ValueError, OSError) as e:
                assert "peak" in str(e) or "given" in str(e), str(e)
                continue
            raise AssertionError("finder %s accepted as a dataset's filter" % name)
        specs = [(name, "exact")] if name in LOSSLESS else []
        if name == "sz":
            specs = [(BOUND["sz"][0], BOUND["sz"][1])]
        if name == "zfp":
            specs = [(BOUND["zfp"][0], BOUND["zfp"][1]), (BOUND["zfp_rate"][0], None)]
        if name in IN_RANGE:
            specs = [(spec, "range") for spec in IN_RANGE[name]]
        for spec, promise in specs:
            for dt in ["u1", "u2", "i4", "u8", "f4", "f8"]:
                for what, x in cases(dt):
                    key = "%s %s %s" % (spec, dt, what)
                    try:
                        ds = f.create_dataset(key.replace("/", "_"), data=x, chunks=(1, 16, 24),
                                              compression=FILTER_ID, compression_opts=opts(spec))
                    except (ValueError, OSError) as e:
                        # Refused at creation (zfp takes f4/f8/i4/i8 only): loud, never unfiltered.
                        assert "cannot take" in str(e), "%s: %s" % (key, e)
                        continue
                    assert filter_mask_all_zero(ds), "%s: a chunk was stored unfiltered" % key
                    y = ds[:]
                    fin = np.isfinite(x) if x.dtype.kind == "f" else np.ones(x.shape, bool)
                    assert same_bits(x[~fin], y[~fin]), "%s: non-finite values changed" % key
                    if promise == "exact":
                        assert same_bits(x, y), "%s: not lossless" % key
                    elif promise == "range":
                        xf, yf = x[fin].astype(np.float64), y[fin].astype(np.float64)
                        assert np.all(yf >= xf.min()) and np.all(yf <= xf.max()), "%s: out of range" % key
                    elif promise is not None:
                        err = np.abs(x[fin].astype(np.float64) - y[fin].astype(np.float64))
                        assert err.max(initial=0) <= promise, "%s: error %g > %g" % (key, err.max(), promise)
                    checked += 1
print("checked %d datasets, every chunk filtered" % checked)
