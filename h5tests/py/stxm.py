"""`roibin stxm` against a numpy reference written here, on the same frames.

usage: stxm.py ROIBIN DATA_DIR SCRATCH

A synthetic scan (`roibin synth --layout stxm`) is stored uncompressed, with gzip, with
bitshuffle-LZ4 (hdf5plugin's filter, read by roibin's own decoder and by the plugin), with
roibin's `auto`, `sz` and `roibin` graphs; every algorithm and signal is compared with numpy
on the frames h5py decodes from the same dataset (1e-6 relative). Then the real Merlin and
ARINA files, the truth maps, bad requests, a corrupt chunk, the cache and the outputs.
"""
import json
import os
import shutil
import struct
import subprocess
import sys

import h5py
import hdf5plugin
import numpy as np

from common import FILTER_ID, opts

ROIBIN, DATA, TMP = sys.argv[1], sys.argv[2], sys.argv[3]
ROWS, COLS, H, W = 6, 7, 48, 64
CACHE = os.path.join(TMP, "cache")


def roibin(*args, check=True, env=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([ROIBIN, *args], capture_output=True, text=True, env=e, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError("roibin %s failed:\n%s\n%s" % (" ".join(args), p.stdout, p.stderr))
    return p


def stxm(target, *args, out=None, **kw):
    out = out or os.path.join(TMP, "map.json")
    p = roibin("stxm", target, "--out", out, "--json", "--no-cache", *args, check=False, **kw)
    if p.returncode != 0:
        return None, p
    with open(out) as f:
        d = json.load(f)
    a = np.array([[np.nan if v is None else v for v in row] if not isinstance(row[0], list) else
                  [[np.nan if x is None else x for x in v] for v in row] for row in d["data"]], dtype=float)
    return a, p


# ---------------------------------------------------------------- numpy reference
def valid(frames, dtype):
    f = frames.astype(np.float64)
    if dtype == np.uint32:
        f[frames == 0xFFFFFFFF] = 0
    elif dtype == np.uint16:
        f[frames == 0xFFFF] = 0
    return f


def process(f, mask, roi=None, binning=(1, 1), empty=None, diff=None):
    """dada's pre-processing on frames [n, h, w]: mask, ROI, binning (sum), division, difference."""
    f = f * (~mask)
    x, y, w, h = roi or (0, 0, f.shape[2], f.shape[1])
    bx, by = binning
    f = f[:, y:y + h, x:x + w]
    hb, wb = h // by, w // bx
    f = f[:, :hb * by, :wb * bx].reshape(len(f), hb, by, wb, bx).sum(axis=(2, 4))
    e = None
    if empty is not None:
        e = process(empty[None], mask, roi, binning)[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.where(e > 0, f / np.where(e > 0, e, 1), 0)
    if diff is not None:
        d = process(diff[None], mask, roi, binning, empty=empty)[0]
        f = f - d
    return f


def reference(frames, mask, algo, signal, roi=None, binning=(1, 1), empty=None, diff=None, polar=None, radial=None, grid=None):
    p = process(frames, mask, roi, binning, empty, diff)
    n, hb, wb = p.shape
    yy, xx = np.mgrid[0:hb, 0:wb].astype(float)
    if algo == "brightfield":
        s = p.sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            h = (p * xx).sum(axis=(1, 2)) / s
            v = (p * yy).sum(axis=(1, 2)) / s
        if signal == "Itot":
            return s
        if signal == "Imax":
            return p.max(axis=(1, 2))
        if signal == "comh":
            return h
        if signal == "comv":
            return v
        dx, dy = h - (wb - 1) / 2, v - (hb - 1) / 2
        return np.stack([np.hypot(dx, dy), np.degrees(np.arctan2(dy, dx))], axis=1)
    if algo == "polarroi":
        cx, cy, q0, q1, a0, a1 = polar
        r = np.hypot(xx - cx, yy - cy)
        phi = np.degrees(np.arctan2(yy - cy, xx - cx))
        sel = (r >= q0) & (r < q1) & ((np.mod(phi - a0, 360) < a1 - a0) | (a1 - a0 >= 360))
        return (p * sel).sum(axis=(1, 2))
    if algo == "radial":
        cx, cy, q0, q1, nq = radial
        r = np.hypot(xx - cx, yy - cy)
        lab = np.where((r >= q0) & (r < q1), np.minimum(((r - q0) / ((q1 - q0) / nq)).astype(int), nq - 1), -1)
        live = process(np.ones((1,) + frames.shape[1:]), mask, roi, binning, empty)[0] > 0
        out = np.zeros((n, nq))
        for k in range(nq):
            sel = (lab == k)
            cnt = (sel & live).sum()
            out[:, k] = (p * sel).sum(axis=(1, 2)) / cnt if cnt else np.nan
        return out
    if algo == "gridroi":
        (x0, y0, w, h), (nx, ny), (dx, dy) = grid
        out = np.zeros((n, ny, nx))
        for iy in range(ny):
            for ix in range(nx):
                xs, ys = x0 + ix * dx, y0 + iy * dy
                sub = p[:, ys:ys + h, xs:xs + w]
                s = sub.sum(axis=(1, 2))
                if signal == "Itot":
                    out[:, iy, ix] = s
                else:
                    g = np.mgrid[0:h, 0:w][1 if signal == "comh" else 0]
                    with np.errstate(invalid="ignore", divide="ignore"):
                        out[:, iy, ix] = (sub * g).sum(axis=(1, 2)) / s
        return out
    raise ValueError(algo)


def close(name, got, want):
    want = np.asarray(want, dtype=float)
    got = np.asarray(got, dtype=float)
    assert got.shape == want.shape, "%s: shape %s, want %s" % (name, got.shape, want.shape)
    scale = np.nanmax(np.abs(want)) if np.isfinite(want).any() else 1.0
    ok = np.isclose(got, want, rtol=1e-6, atol=1e-6 * max(scale, 1e-300), equal_nan=True)
    assert ok.all(), "%s: %d of %d differ, e.g. got %s want %s" % (
        name, (~ok).sum(), ok.size, got[~ok][:3], want[~ok][:3])


# ---------------------------------------------------------------- the synthetic scan
raw = os.path.join(TMP, "scan.h5")
roibin("synth", raw, "--layout", "stxm", "--scan", "%dx%d" % (ROWS, COLS), "--frame", "%dx%d" % (H, W))
with h5py.File(raw, "r") as f:
    frames = f["entry/data/data"][()]
    mask = f["entry/instrument/detector/detectorSpecific/pixel_mask"][()] != 0
    truth = {k: f["truth"][k][()] for k in f["truth"]}
assert frames.shape == (ROWS * COLS, H, W) and frames.dtype == np.uint32

# `synth --bslz4` writes DECTRIS-style chunks (our encoder) that hdf5plugin reads back.
own = os.path.join(TMP, "scan_own_bslz4.h5")
roibin("synth", own, "--layout", "stxm", "--scan", "%dx%d" % (ROWS, COLS), "--frame", "%dx%d" % (H, W), "--bslz4")
with h5py.File(own, "r") as f:
    d = f["entry/data/data"]
    assert list(d._filters) == ["32008"] and np.array_equal(d[()], frames)

VARIANTS = {
    "plain": {},
    "gzip": dict(compression="gzip", compression_opts=4),
    "bslz4": dict(**hdf5plugin.Bitshuffle(cname="lz4")),
    "auto": dict(compression=FILTER_ID, compression_opts=opts("auto")),
    "sz": dict(compression=FILTER_ID, compression_opts=opts("sz(abs=2)")),
    "roibin": dict(compression=FILTER_ID, compression_opts=opts(
        "roibin(peaks=pf8(snr=5,min_pix=1,max_pix=40,adc=30),roi=3,background=bin(2,2)|sz(abs=1))")),
}
# The roibin scan also as a 4-D dataset whose chunks hold several scan columns (each a panel
# of the chunk's one frame; 4 of 7, so each row's last chunk is partial): reduced in the
# compressed domain too.
VARIANTS["roibin4d"] = VARIANTS["roibin"]
COLS_PER_CHUNK = 4
files = {}
for name, kw in VARIANTS.items():
    path = os.path.join(TMP, "scan_%s.h5" % name)
    with h5py.File(path, "w") as f:
        if name == "roibin4d":
            d = f.create_dataset("entry/data/data", data=frames.reshape(ROWS, COLS, H, W),
                                 chunks=(1, COLS_PER_CHUNK, H, W), **kw)
        else:
            d = f.create_dataset("entry/data/data", data=frames, chunks=(1, H, W), **kw)
        f.create_dataset("entry/instrument/detector/detectorSpecific/pixel_mask", data=mask.astype(np.uint32))
        if kw:
            assert d.id.get_storage_size() < frames.nbytes, name
    with h5py.File(path, "r") as f:
        decoded = f["entry/data/data"][()].reshape(frames.shape)
    if name in ("plain", "gzip", "bslz4", "auto"):
        assert np.array_equal(decoded, frames), name
    files[name] = (path, valid(decoded, np.uint32))

POLAR = (W * 0.82, H * 0.5, 0, 6, -60, 60)
REQUESTS = [
    ("brightfield", "Itot", [], {}),
    ("brightfield", "Imax", [], {}),
    ("brightfield", "comh", [], {}),
    ("brightfield", "comv", ["--roi", "4,3,50,40", "--binning", "2,3"], dict(roi=(4, 3, 50, 40), binning=(2, 3))),
    ("brightfield", "dpc", [], {}),
    ("brightfield", "Itot", ["--empty", "0", "--difference", "5"], dict(empty="f0", diff="f5")),
    ("polarroi", "Itot", ["--polarroi", "%g,%g;%g,%g;%g,%g" % POLAR], dict(polar=POLAR)),
    ("polarroi", "Itot", ["--polarroi", "-20,-10;30,80;10,70", "--binning", "2,2"], dict(polar=(-20, -10, 30, 80, 10, 70), binning=(2, 2))),
    ("radial", "I", ["--radial", "31.5,23.5;0,30;25"], dict(radial=(31.5, 23.5, 0, 30, 25))),
    ("gridroi", "Itot", ["--gridroi", "2,2,10,8;3,2;20,20"], dict(grid=((2, 2, 10, 8), (3, 2), (20, 20)))),
    ("gridroi", "comv", ["--gridroi", "2,2,10,8;3,2;20,20"], dict(grid=((2, 2, 10, 8), (3, 2), (20, 20)))),
]
stats = {}
for name, (path, dec) in files.items():
    for algo, signal, args, kw in REQUESTS:
        kw = dict(kw)
        for k in ("empty", "diff"):
            if k in kw:
                kw[k] = dec[int(kw[k][1:])]
        want = reference(dec, mask, algo, signal, **kw)
        want = want.reshape((ROWS, COLS) + want.shape[1:])
        modes = [[]]
        if name == "bslz4":
            modes.append(["--hdf5-read"])  # hdf5plugin's own filter through HDF5
        if name.startswith("roibin"):
            modes.append(["--decode"])  # decode-then-reduce, for the same numbers
        for mode in modes:
            got, p = stxm(path, "--scan", "%dx%d" % (ROWS, COLS), "--algo", algo, "--signal", signal, *args, *mode,
                          env={"HDF5_PLUGIN_PATH": hdf5plugin.PLUGIN_PATH} if mode == ["--hdf5-read"] else None)
            assert got is not None, p.stderr
            close("%s %s %s %s" % (name, algo, signal, " ".join(args + mode)), got, want)
            stats[(name, algo, signal, tuple(mode))] = json.loads(p.stdout)["stats"]
    print("%-7s every algorithm matches numpy (%s)" % (name, stats[(name, "brightfield", "Itot", ())]["read_path"]))
for key, want in [
    (("roibin", "brightfield", "Itot", ()), ROWS * COLS),
    (("roibin", "radial", "I", ()), ROWS * COLS),
    (("roibin", "brightfield", "Itot", ("--decode",)), 0),
    (("roibin4d", "brightfield", "comh", ()), ROWS * COLS),
    (("roibin4d", "gridroi", "comv", ()), ROWS * COLS),
]:
    assert stats[key]["compressed_domain_frames"] == want, (key, stats[key])
for key, path in [
    (("bslz4", "brightfield", "Itot", ()), "raw bitshuffle-LZ4"),
    (("bslz4", "brightfield", "Itot", ("--hdf5-read",)), "HDF5 read"),
]:
    assert stats[key]["read_path"].startswith(path), (key, stats[key])

# hits and bragg: from the roibin chunks' sections; refused elsewhere.
hits, _ = stxm(files["roibin"][0], "--scan", "%dx%d" % (ROWS, COLS), "--algo", "hits")
grain = truth["grain"] > 0
assert (hits[grain] >= 1).all(), hits
bragg, _ = stxm(files["roibin"][0], "--scan", "%dx%d" % (ROWS, COLS), "--algo", "bragg")
assert (bragg[grain] > 100).all() and np.isfinite(bragg).all()
got, p = stxm(files["plain"][0], "--scan", "%dx%d" % (ROWS, COLS), "--algo", "hits")
assert got is not None and np.isnan(got).all() and "roibin" in p.stdout
# Chunks of several scan columns (one panel each): each scan frame's peaks are the windows
# centred in its panel, its Bragg intensity their pixels in it (pf8 saw the panels of a chunk
# as one detector frame, so it finds other peaks than on single frames; the exact split is
# checked in stxm/tests/compressed_domain.rs).
hits4, _ = stxm(files["roibin4d"][0], "--scan", "%dx%d" % (ROWS, COLS), "--algo", "hits")
bragg4, _ = stxm(files["roibin4d"][0], "--scan", "%dx%d" % (ROWS, COLS), "--algo", "bragg")
assert np.isfinite(hits4).all() and np.isfinite(bragg4).all() and hits4.sum() >= grain.sum() / 2, hits4
assert (bragg4[hits4 == 0] == 0).all() and (bragg4[hits4 > 0] > 100).all(), (hits4, bragg4)

# ---------------------------------------------------------------- truth maps
itot, _ = stxm(raw, "--scan", "%dx%d" % (ROWS, COLS))
plain = truth["grain"] == 0
assert np.corrcoef(itot[plain], truth["transmission"][plain])[0, 1] > 0.99, np.corrcoef(itot[plain], truth["transmission"][plain])
comh, _ = stxm(raw, "--scan", "%dx%d" % (ROWS, COLS), "--signal", "comh")
err = (comh - truth["beam_centre"][0] - truth["shift_x"])[plain]
assert np.abs(err).max() < 0.4, err
for k, (px, py) in enumerate(truth["grain_peaks"]):
    sector, _ = stxm(raw, "--scan", "%dx%d" % (ROWS, COLS), "--algo", "polarroi", "--polarroi", "%g,%g;0,5;0,360" % (px, py))
    found = sector > 5 * np.median(sector)
    assert np.array_equal(found, truth["grain"] == k + 1), (k, found, truth["grain"])
print("truth: Itot follows the transmission, every grain found where it was planted")

# ---------------------------------------------------------------- the real Merlin scan
mib = os.path.join(DATA, "merlin", "001_4x2_6bit.mib")
if not os.path.exists(mib):
    raise SystemExit("real data missing: %s (the shared data folder sits beside the checkout)" % mib)
sums, _ = stxm(mib, "--scan", "2x4")
assert sums.ravel().astype(int).tolist() == [448386, 449671, 452147, 455427, 450760, 453755, 455591, 457927], sums
raw_mib = np.fromfile(mib, dtype=np.uint8).reshape(8, 384 + 256 * 256)[:, 384:].reshape(8, 256, 256)
nomask = np.zeros((256, 256), bool)
for algo, signal, args, kw in REQUESTS:
    if "--empty" in args:
        args, kw = ["--empty", "0", "--difference", "5"], dict(empty=raw_mib[0].astype(float), diff=raw_mib[5].astype(float))
    got, p = stxm(mib, "--scan", "2x4", "--algo", algo, "--signal", signal, *args)
    assert got is not None, p.stderr
    want = reference(raw_mib.astype(float), nomask, algo, signal, **kw)
    close("merlin %s %s %s" % (algo, signal, args), got, want.reshape((2, 4) + want.shape[1:]))
h, _ = stxm(mib, "--scan", "2x4", "--signal", "comh")
v, _ = stxm(mib, "--scan", "2x4", "--signal", "comv")
assert abs(h[0, 0] - 41.8507) < 1e-4 and abs(v[0, 0] - 126.1948) < 1e-4, (h[0, 0], v[0, 0])
print("merlin: sums and centre of mass match the README, every algorithm matches numpy")

# ---------------------------------------------------------------- the real ARINA file pair
master = os.path.join(DATA, "arina", "test_00_master.h5")
z, p = stxm(master, "--scan", "4x4")
assert z.shape == (4, 4) and (z == 0).all(), z
assert json.loads(p.stdout)["stats"]["read_path"].startswith("raw bitshuffle-LZ4"), p.stdout
print("arina: the master's external link is followed, 16 frames decoded by roibin")

# ---------------------------------------------------------------- bad requests
for args, param in [
    (["--roi", "40,0,30,10"], "roi"),
    (["--scan", "7x7"], "scan"),
    (["--signal", "Ifoo"], "signal"),
    (["--algo", "polarroi", "--polarroi", "0,0;10,5;0,90"], "polarroi"),
    (["--algo", "radial"], "radial"),
    (["--algo", "nosuch"], "algo"),
    (["--algo", "gridroi", "--gridroi", "0,0,40,40;3,3"], "gridroi"),
]:
    got, p = stxm(raw, *(["--scan", "6x7"] if "--scan" not in args else []), *args)
    assert got is None and p.returncode != 0, args
    assert param + ":" in p.stderr, (args, p.stderr)
    print("refused %-40s %s" % (" ".join(args), p.stderr.strip().splitlines()[-1][:110]))

# ---------------------------------------------------------------- a corrupt chunk
bad = os.path.join(TMP, "scan_corrupt.h5")
with h5py.File(bad, "w") as f:
    d = f.create_dataset("entry/data/data", data=frames, chunks=(1, H, W), **hdf5plugin.Bitshuffle(cname="lz4"))
    d.id.write_direct_chunk((9, 0, 0), b"\x00\x00\x00\x00\x00\x00\x30\x00\x00\x00\x20\x00" + b"\xff" * 64)
for mode in ([], ["--hdf5-read"]):
    got, p = stxm(bad, "--scan", "6x7", *mode, env={"HDF5_PLUGIN_PATH": hdf5plugin.PLUGIN_PATH})
    assert got is not None, p.stderr
    assert np.isnan(got.ravel()[9]) and np.isfinite(np.delete(got.ravel(), 9)).all(), got
    failed = json.loads(p.stdout)["failed"]
    assert [x["frame"] for x in failed] == [9], failed
print("corrupt chunk: frame 9 is NaN and reported, the other 41 frames reduced")

# A roibin chunk with one byte flipped inside it (its checksum no longer matches): the
# compressed domain (which looks at the header before opening the chunk) and decode-then-reduce
# both flag that frame and nothing else.
bad = os.path.join(TMP, "scan_roibin_corrupt.h5")
shutil.copy(files["roibin"][0], bad)
with h5py.File(bad, "r+") as f:
    d = f["entry/data/data"]
    mask9, chunk = d.id.read_direct_chunk((9, 0, 0))
    chunk = bytearray(chunk)
    chunk[len(chunk) // 2] ^= 0x10
    d.id.write_direct_chunk((9, 0, 0), bytes(chunk), mask9)
for mode in ([], ["--decode"]):
    got, p = stxm(bad, "--scan", "6x7", "--signal", "comh", *mode)
    assert got is not None, p.stderr
    assert np.isnan(got.ravel()[9]) and np.isfinite(np.delete(got.ravel(), 9)).all(), (mode, got)
    failed = json.loads(p.stdout)["failed"]
    assert [x["frame"] for x in failed] == [9] and "checksum" in failed[0]["error"], (mode, failed)
print("corrupt roibin chunk: its checksum named, frame 9 NaN, in the compressed domain and decoded")

# A file whose shape claims 40 GB frames (nothing written): refused before any allocation.
huge = os.path.join(TMP, "huge_claim.h5")
with h5py.File(huge, "w") as f:
    f.create_dataset("entry/data/data", shape=(2, 100000, 100000), dtype="u4", chunks=(1, 1000, 1000))
got, p = stxm(huge, "--scan", "1x2")
assert got is None and "larger than" in p.stderr, p.stderr
print("a 100000×100000 frame claim is refused:", p.stderr.strip().splitlines()[-1][:100])

# ---------------------------------------------------------------- the cache
def cached(*extra):
    p = roibin("stxm", files["gzip"][0], "--scan", "6x7", "--out", os.path.join(TMP, "c.json"), "--json",
               "--cache-dir", CACHE, *extra)
    return json.loads(p.stdout)["stats"]

first = cached()
second = cached()
assert not first["cached"] and second["cached"], (first, second)
with h5py.File(files["gzip"][0], "a") as f:
    f["entry/data/data"][3] = frames[4]
third = cached()
assert not third["cached"], "a changed file must not be served from the cache"
print("cache: second identical request from the cache in %.4f s; a changed file recomputed" % second["total_s"])

# ---------------------------------------------------------------- outputs
base = ["--scan", "6x7", "--no-cache"]
h5out = os.path.join(TMP, "map.h5")
roibin("stxm", raw, *base, "--signal", "comh", "--out", h5out)
with h5py.File(h5out, "r") as f:
    g = f["entry/stxm"]
    assert g.attrs["NX_class"] == "NXdata" and g.attrs["signal"] == "comh"
    assert list(g.attrs["axes"]) == ["y", "x"] and g["comh"].shape == (6, 7)
    assert "signal=comh" in g.attrs["request"]
    close("h5 output", g["comh"][()], comh)
roibin("stxm", raw, *base, "--algo", "radial", "--radial", "31.5,23.5;0,30;25", "--out", h5out)
with h5py.File(h5out, "r") as f:
    assert list(f["entry/stxm"].attrs["axes"]) == ["y", "x", "q"] and f["entry/stxm/I"].shape == (6, 7, 25)
for ext, magic in (("png", b"\x89PNG"), ("tiff", b"II*\x00")):
    out = os.path.join(TMP, "map." + ext)
    roibin("stxm", raw, *base, "--out", out, "--palette", "magma", "--log")
    b = open(out, "rb").read()
    assert b.startswith(magic), ext
    if ext == "png":
        w, h = struct.unpack(">II", b[16:24])
        assert (w, h) == (7, 6)
txt = os.path.join(TMP, "map.txt")
roibin("stxm", raw, *base, "--out", txt)
close("txt output", np.loadtxt(txt), itot)
p = roibin("stxm", raw, *base, "--algo", "radial", "--radial", "31.5,23.5;0,30;25", "--out", os.path.join(TMP, "x.png"), check=False)
assert p.returncode != 0 and ".h5" in p.stderr
assert not os.path.exists(os.path.join(TMP, "x.png")) and not os.path.exists(os.path.join(TMP, ".x.png.roibin-partial"))
print("outputs: NXdata h5, png, tiff, txt, json; a 3-D result refuses a picture and leaves no file")
print("stxm: all checks passed")
