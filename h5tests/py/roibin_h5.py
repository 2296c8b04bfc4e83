"""ROIBIN graphs through the plugin on CXI files that `roibin synth` made (JUNGFRAU-like and
CSPAD-like): h5py writes 2-D/3-D/4-D layouts, float and integer, with one spec per detector;
every pixel of every peak window (pf8's peaks on the original, from /entry_1/result_1) comes
back bit-exact; binned background means stay within the sz bound; h5repack (HDF5 1.10) reads
and writes the same graphs; bad inputs fail loudly and the interpreter lives.
Usage: roibin_h5.py DIR UD_JUNGFRAU UD_CSPAD (DIR holds jf.h5 and cs.h5 with their sidecars)"""
import os, subprocess, sys
import h5py
import numpy as np
from common import FILTER_ID, opts, filter_mask_all_zero

d = sys.argv[1]
R = 8


def spec_for(stem, panel_rows, bound="90"):
    m, r = os.path.join(d, stem + ".mask.npy"), os.path.join(d, stem + ".radius.npy")
    return 'roibin(peaks=pf8(mask="%s",radius="%s"),panel_rows=%d,background=bin(2,2)|sz(abs=%s))' % (
        m, r, panel_rows, bound)


def windows_mask(shape2d, ys, xs, panel_rows):
    """True on every pixel within R of a rounded centre, inside the centre's panel."""
    w = np.zeros(shape2d, bool)
    for y, x in zip(ys, xs):
        y, x = int(np.floor(y + 0.5)), int(np.floor(x + 0.5))
        p = y // panel_rows
        y0, y1 = max(y - R, p * panel_rows), min(y + R + 1, (p + 1) * panel_rows)
        w[y0:y1, max(x - R, 0):x + R + 1] = True
    return w


BAD = {}  # stacked-frame bad-pixel maps by frame shape (masked pixels are coded from neighbours)


def check(orig, got, ys, xs, panel_rows, bound, what, exact=True):
    """Windows exact; 2×2 bins away from windows: mean of decoded within bound of original's."""
    assert got.shape == orig.shape and got.dtype == orig.dtype, what
    w = windows_mask(orig.shape, ys, xs, panel_rows)
    bad = BAD.get(orig.shape, np.zeros(orig.shape, bool))
    if exact:
        assert np.array_equal(orig[w].view(np.uint8), got[w].view(np.uint8)), "%s: window pixels changed" % what
    if orig.dtype.kind in "ui":
        bound = bound + 0.5  # the binned mean is rounded to a count before sz
    worst = 0.0
    for p0 in range(0, orig.shape[0], panel_rows):  # roibin bins each panel on its own
        po, pg, pw = (a[p0:p0 + panel_rows] for a in (orig, got, w | bad))
        h, c = po.shape[0] // 2 * 2, po.shape[1] // 2 * 2
        o = po[:h, :c].astype(np.float64).reshape(h // 2, 2, c // 2, 2).mean(axis=(1, 3))
        g = pg[:h, :c].astype(np.float64).reshape(h // 2, 2, c // 2, 2).mean(axis=(1, 3))
        free = ~pw[:h, :c].reshape(h // 2, 2, c // 2, 2).any(axis=(1, 3))
        if free.any():
            worst = max(worst, np.abs(o - g)[free].max())
    assert worst <= bound + 1e-3, "%s: binned background error %.3f > %s" % (what, worst, bound)
    return int(w.sum())


def peaks_of(f, i):
    n = int(f["/entry_1/result_1/nPeaks"][i])
    return f["/entry_1/result_1/peakYPosRaw"][i, :n], f["/entry_1/result_1/peakXPosRaw"][i, :n]


for stem in ("jf", "cs"):
    m = np.load(os.path.join(d, stem + ".mask.npy"))
    BAD[m.shape] = m == 0
out = os.path.join(d, "roibin_h5py.h5")
layouts = [("jf", 512, 8), ("cs", 185, 32)]
with h5py.File(out, "w") as w:
    for stem, prows, npan in layouts:
        with h5py.File(os.path.join(d, stem + ".h5"), "r") as f:
            data = f["/entry_1/data_1/data"][()]
        n, h, c = data.shape
        spec = spec_for(stem, prows)
        ispec = spec_for(stem, prows, bound="2")
        counts = np.clip(np.round(data / 45.0), 0, 65535).astype(np.uint16)
        forms = [
            ("%s_3d" % stem, data, (1, h, c), spec),
            ("%s_3d_2frames" % stem, data, (2, h, c), spec),
            ("%s_4d" % stem, data.reshape(n, npan, prows, c), (1, npan, prows, c), spec),
            ("%s_2d" % stem, data[0], (h, c), spec),
            ("%s_u16" % stem, counts, (1, h, c), ispec),
        ]
        for name, arr, chunks, s in forms:
            ds = w.create_dataset(name, data=arr, chunks=chunks, compression=FILTER_ID, compression_opts=opts(s))
            assert filter_mask_all_zero(ds), name
            ratio = arr.nbytes / ds.id.get_storage_size()
            assert ratio > 30, (name, ratio)
            print("%s: ratio vs input %.1f" % (name, ratio))

with h5py.File(out, "r") as w:
    for stem, prows, npan in layouts:
        with h5py.File(os.path.join(d, stem + ".h5"), "r") as f:
            data = f["/entry_1/data_1/data"][()]
            lists = [peaks_of(f, i) for i in range(data.shape[0])]
        n, h, c = data.shape
        for name in ["_3d", "_3d_2frames", "_4d"]:
            got = w[stem + name][()].reshape(n, h, c)
            for i in range(n):
                k = check(data[i], got[i], *lists[i], prows, 90.0, stem + name)
            print("%s%s: windows exact (%d window pixels in the last frame), background within bound" % (stem, name, k))
        check(data[0], w[stem + "_2d"][()], *lists[0], prows, 90.0, stem + "_2d")
        # Integer counts (photons): the binned background stays within 2 counts.
        counts = np.clip(np.round(data / 45.0), 0, 65535).astype(np.uint16)
        got = w[stem + "_u16"][()]
        assert got.dtype == np.uint16 and got.shape == counts.shape
        for i in range(n):
            # pf8 on counts finds the strongest peaks; stay clear of every bright pixel instead.
            ys, xs = np.nonzero(counts[i] >= 100)
            check(counts[i], got[i], ys, xs, prows, 2.0, stem + "_u16", exact=False)
        print("%s_u16: background within 2 counts" % stem)

# h5repack (HDF5 1.10): take the filter off what h5py (2.x) wrote, and put a roibin graph on a
# plain CXI file; h5py reads the result through the plugin.
plain = os.path.join(d, "h5repack_plain.h5")
subprocess.run(["h5repack", "-f", "NONE", out, plain], check=True)
with h5py.File(out, "r") as a, h5py.File(plain, "r") as b:
    for name in ["jf_3d", "cs_4d"]:
        assert np.array_equal(a[name][()].view(np.uint8), b[name][()].view(np.uint8)), name
        assert b[name].compression is None
for (stem, prows, _), ud in zip(layouts, sys.argv[2:4]):
    rep = os.path.join(d, stem + "_repacked.h5")
    if os.path.exists(rep):
        os.remove(rep)
    subprocess.run(["h5repack", "-f", "/entry_1/data_1/data:" + ud, os.path.join(d, stem + ".h5"), rep], check=True)
    with h5py.File(rep, "r") as r, h5py.File(os.path.join(d, stem + ".h5"), "r") as f:
        ds = r["/entry_1/data_1/data"]
        assert ds.id.get_storage_size() * 30 < ds.size * 4, "h5repack did not compress"
        data = f["/entry_1/data_1/data"][()]
        got = ds[()]
        for i in range(data.shape[0]):
            check(data[i], got[i], *peaks_of(f, i), prows, 90.0, stem + " h5repack")
    print("%s: h5repack wrote roibin, h5py read it: windows exact" % stem)

# `roibin compress --peaks /entry_1/result_1` (the writer's centres): h5py reads it, windows exact.
with h5py.File(os.path.join(d, "jf_given.h5"), "r") as g, h5py.File(os.path.join(d, "jf.h5"), "r") as f:
    data = f["/entry_1/data_1/data"][()]
    got = g["/entry_1/data_1/data"][()]
    for i in range(data.shape[0]):
        check(data[i], got[i], *peaks_of(f, i), 512, 90.0, "--peaks")
print("--peaks: windows around the CXI centres exact")

# Bad inputs: a mask of the wrong shape, no peaks, every pixel a peak, NaN pixels, zeros.
bad = os.path.join(d, "bad.h5")
with h5py.File(bad, "w") as f:
    wrong = os.path.join(d, "cs.mask.npy")  # CSPAD mask on a JUNGFRAU-shaped frame
    s = 'roibin(peaks=pf8(mask="%s"),panel_rows=512)' % wrong
    try:
        f.create_dataset("wrong_mask", data=np.zeros((1, 1024, 1024), "f4"), chunks=(1, 1024, 1024),
                         compression=FILTER_ID, compression_opts=opts(s))
        raise SystemExit("a wrong-shaped mask was accepted")
    except (OSError, ValueError) as e:
        assert "cs.mask.npy" in str(e) and "[1024, 1024]" in str(e), str(e)
        print("wrong mask: %s" % str(e).splitlines()[0][:160])
    try:
        f.create_dataset("given", data=np.zeros((1, 64, 64), "f4"), chunks=(1, 64, 64),
                         compression=FILTER_ID, compression_opts=opts("roibin(peaks=given)"))
        raise SystemExit("peaks=given was accepted without centres")
    except (OSError, ValueError) as e:
        assert "--peaks" in str(e), str(e)
    frames = np.zeros((4, 256, 256), "f4")
    rng = np.random.default_rng(3)
    frames[1] = rng.normal(0, 5, (256, 256))  # background only: no peaks
    frames[2] = np.where(np.indices((256, 256)).sum(axis=0) % 2 == 0, 5000.0, 0.0)  # every pixel a peak
    frames[3] = rng.normal(0, 5, (256, 256))
    frames[3, 10:20, 30] = np.nan
    frames[3, 100, 100] = np.inf
    frames[3, 100, 101] = -np.inf
    ds = f.create_dataset("odd", data=frames, chunks=(1, 256, 256), compression=FILTER_ID,
                          compression_opts=opts("roibin(peaks=pf8(min_pix=1),min_peaks=1)"))
    assert filter_mask_all_zero(ds)
with h5py.File(bad, "r") as f:
    got = f["odd"][()]
    assert np.array_equal(got[0], frames[0]), "zeros changed"
    assert np.array_equal(got[3].view(np.uint32)[~np.isfinite(frames[3])],
                          frames[3].view(np.uint32)[~np.isfinite(frames[3])]), "non-finite pixels changed"
    assert np.isfinite(got[3][np.isfinite(frames[3])]).all()
    assert np.abs(got[1] - frames[1]).max() < 45, "background-only frame"
print("roibin h5 ok")
