#!/usr/bin/env python3
"""Our `dispersion` and `dispersion_extended` finders against DIALS's own (Debian's `dials`,
run by /usr/bin/python3) on the real frames of ../shared/data: spots matched within 1.5 px.

    python3 benches/py/dials_finders.py [--data ../shared/data] [--roibin target/release/roibin]

Both sides see the same frames and the same mask (finite, not negative for counts, not the
dtype's maximum: EIGER gaps); DIALS's spots are its strong pixels labelled 8-connected, 2+
pixels, as `dials.find_spots` forms them.
"""
import argparse, json, os, subprocess, sys, tempfile

import h5py
import hdf5plugin  # noqa: F401  (EIGER's bitshuffle-LZ4)
import numpy as np

DIALS = r'''
import json, sys
import numpy as np
from scipy import ndimage
from dials.array_family import flex
from dials.algorithms.spot_finding.threshold import DispersionThresholdStrategy, DispersionExtendedThresholdStrategy
gain, ext = float(sys.argv[1]), sys.argv[2] == "1"
out = {}
for name in sys.argv[3:]:
    img = np.load(name).astype(np.float64)
    valid = np.load(name.replace(".npy", ".mask.npy")).astype(bool) & np.isfinite(img)
    img[~valid] = 0
    S = DispersionExtendedThresholdStrategy if ext else DispersionThresholdStrategy
    s = S(gain=gain, min_count=2)(flex.double(img), flex.bool(valid)).as_numpy_array().reshape(img.shape)
    lab, n = ndimage.label(s, structure=np.ones((3, 3)))
    idx = list(range(1, n + 1))
    sizes = ndimage.sum(s, lab, idx) if n else []
    cms = ndimage.center_of_mass(np.clip(img, 0, None), lab, idx) if n else []
    tot = ndimage.sum(img, lab, idx) if n else []
    # (row, column, integrated intensity) of each spot of 2+ pixels
    out[name] = [[float(c[0]), float(c[1]), float(t)] for c, k, t in zip(cms, sizes, tot) if k >= 2]
print(json.dumps(out))
'''


def real_frames(data):
    """(name, frame, gain) of every real frame set in ../shared/data."""
    out = []
    for k in range(4):
        p = os.path.join(data, "jungfrau_module_conv%d.f32" % k)
        if os.path.exists(p):
            out.append(("jungfrau_conv%d" % k, np.fromfile(p, "<f4").reshape(512, 1024), 1.0))
    p = os.path.join(data, "rayonix340_mfx_hit.h5")
    if os.path.exists(p):
        with h5py.File(p) as f:
            out.append(("rayonix_hit", f["/entry/data/data"][0], 1.0))
    p = os.path.join(data, "eiger4m_bslz4_frame.h5")
    if os.path.exists(p):
        with h5py.File(p) as f:
            out.append(("eiger4m", f["/entry/data/data"][0], 1.0))
    return out


def valid_mask(img):
    v = np.isfinite(img.astype(np.float64))
    if img.dtype.kind in "ui":
        v &= (img >= 0) & (img < np.iinfo(img.dtype).max)
    else:
        v &= img > -10
    return v


def match(a, b, tol=1.5):
    if not len(a) or not len(b):
        return 0
    b = np.array(b)
    used = np.zeros(len(b), bool)
    m = 0
    for p in a:
        d = np.hypot(b[:, 0] - p[0], b[:, 1] - p[1])
        d[used] = np.inf
        j = int(np.argmin(d))
        if d[j] <= tol:
            used[j] = True
            m += 1
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "../../../shared/data"))
    ap.add_argument("--roibin", default=os.path.join(os.path.dirname(__file__), "../../target/release/roibin"))
    a = ap.parse_args()
    frames = real_frames(a.data)
    if not frames:
        sys.exit("no real frames at %s (../shared/data): nothing to compare" % a.data)
    work = tempfile.mkdtemp(prefix="roibin-finders-")
    rows = []
    for name, img, gain in frames:
        npy = os.path.join(work, name + ".npy")
        np.save(npy, img)
        np.save(npy.replace(".npy", ".mask.npy"), valid_mask(img).astype(np.uint8))
        h5 = os.path.join(work, name + ".h5")
        with h5py.File(h5, "w") as f:
            f.create_dataset("d", data=img[None])
        for ext, finder in ((0, "dispersion"), (1, "dispersion_extended")):
            res = subprocess.run(["/usr/bin/python3", "-c", DIALS, str(gain), str(ext), npy],
                                 check=True, capture_output=True, text=True)
            theirs = [p[:2] for p in json.loads(res.stdout.strip().splitlines()[-1])[npy]]
            spec = '%s(gain=%g,mask="%s",max_peaks=1000000)' % (finder, gain, npy.replace(".npy", ".mask.npy"))
            o = subprocess.run([a.roibin, "peaks", h5 + ":/d", "--finder", spec, "--json"],
                               check=True, capture_output=True, text=True)
            ours = [[p["y"], p["x"]] for p in json.loads(o.stdout)[0]["peaks"]]
            m = match(theirs, ours)
            rows.append((name, finder, len(theirs), len(ours), m / max(1, len(theirs)), m / max(1, len(ours))))
            print("%-16s %-20s DIALS %5d ours %5d recall %.4f precision %.4f" % rows[-1], flush=True)
    print("\n| frame | finder | DIALS spots | our spots | recall | precision |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| %s | %s | %d | %d | %.4f | %.4f |" % r)


if __name__ == "__main__":
    main()
