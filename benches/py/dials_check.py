#!/usr/bin/env python3
"""Independent science check with DIALS's dispersion spot finder on the real frames in
../shared/data/: spots found on the original frames vs on frames decoded from roibin and
from hdf5plugin's SZ3 at the same two-photon bound (each codec through h5py and its plugin).

    HDF5_PLUGIN_PATH=target/release python3 benches/py/dials_check.py [--data ../shared/data]

DIALS is Debian's `dials` package (system /usr/bin/python3); compression runs in this Python
(h5py + hdf5plugin). Prints spots found, lost and invented per codec, and the ratio.
"""
import argparse, json, os, subprocess, sys, tempfile

import h5py
import hdf5plugin
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from side_by_side import opts, ROIBIN_ID  # noqa: E402
from dials_finders import match as match_within  # noqa: E402


def match(a, b, tol=2.0):
    return match_within(a, b, tol)

DIALS = r'''
import json, sys
import numpy as np
from scipy import ndimage
from dials.array_family import flex
from dials.algorithms.spot_finding.threshold import DispersionThresholdStrategy
out = {}
for name in sys.argv[2:]:
    img = np.load(name).astype(np.float64)
    mask = np.isfinite(img) & (img > -10)
    img[~mask] = 0
    strong = DispersionThresholdStrategy(gain=float(sys.argv[1]), min_count=2)(
        flex.double(img), flex.bool(mask))
    s = strong.as_numpy_array().reshape(img.shape)
    lab, n = ndimage.label(s, structure=np.ones((3, 3)))
    idx = [i for i in range(1, n + 1)]
    sizes = ndimage.sum(s, lab, idx) if n else []
    cms = ndimage.center_of_mass(np.clip(img, 0, None), lab, idx) if n else []
    out[name] = [list(map(float, c)) for c, k in zip(cms, sizes) if k >= 2]
print(json.dumps(out))
'''


def roundtrip(img, kw):
    with h5py.File("m.h5", "w", driver="core", backing_store=False) as f:
        ds = f.create_dataset("d", data=img[None], chunks=(1,) + img.shape, **kw)
        return ds[0], img.nbytes / ds.id.get_storage_size()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "../../../shared/data"))
    a = ap.parse_args()
    if not os.path.isdir(a.data):
        sys.exit("no real frames at %s (../shared/data): nothing to check" % a.data)
    frames = []  # (name, image, bound for two photons, gain for DIALS, pf8 options)
    for k in range(4):
        p = os.path.join(a.data, "jungfrau_module_conv%d.f32" % k)
        if os.path.exists(p):
            # Values are photons (peaks of the histogram at 1, 2, 3): two photons = 2.
            frames.append(("jungfrau_conv%d" % k, np.fromfile(p, "<f4").reshape(512, 1024), 2.0, 1.0, "adc=5,snr=6"))
    p = os.path.join(a.data, "rayonix340_mfx_hit.h5")
    if os.path.exists(p):
        with h5py.File(p, "r") as f:
            r = f["/entry/data/data"][0].astype(np.float32)
        # Unknown gain: bound at twice the Poisson noise of the median background (counts).
        bound = round(2 * float(np.sqrt(np.median(r))), 1)
        frames.append(("rayonix_hit", r, bound, 1.0, "adc=0,snr=8"))
    work = tempfile.mkdtemp(prefix="roibin-dials-")
    rows = []
    for name, img, bound, gain, pf8 in frames:
        codecs = [
            ("roibin bin 2×2 sz abs %g" % bound, dict(compression=ROIBIN_ID, compression_opts=opts(
                "roibin(peaks=pf8(%s),background=bin(2,2)|sz(abs=%g))" % (pf8, bound)))),
            ("roibin sz abs %g, no binning" % bound, dict(compression=ROIBIN_ID, compression_opts=opts(
                "roibin(peaks=pf8(%s),background=sz(abs=%g))" % (pf8, bound)))),
            ("hdf5plugin SZ3 abs %g" % bound, dict(**hdf5plugin.SZ3(absolute=bound))),
        ]
        files = [os.path.join(work, name + "_orig.npy")]
        np.save(files[0], img)
        ratios = {}
        for label, kw in codecs:
            back, ratio = roundtrip(img, kw)
            fn = os.path.join(work, "%s_%d.npy" % (name, len(files)))
            np.save(fn, back)
            files.append(fn)
            ratios[fn] = (label, ratio * img.dtype.itemsize / 2)
        res = subprocess.run(["/usr/bin/python3", "-c", DIALS, str(gain)] + files, check=True,
                             capture_output=True, text=True)
        spots = json.loads(res.stdout.strip().splitlines()[-1])
        orig = spots[files[0]]
        for fn in files[1:]:
            label, ratio = ratios[fn]
            got = spots[fn]
            m = match(orig, got)
            rows.append((name, label, len(orig), len(got), len(orig) - m, len(got) - m, ratio))
            print("%-16s %-32s DIALS spots: original %4d, decoded %4d, lost %3d, invented %3d; ratio vs u16 %.1f" % rows[-1], flush=True)
    print("\n| frame | codec | DIALS spots (original) | spots (decoded) | lost | invented | ratio vs u16 |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %s | %s | %d | %d | %d | %d | %.1f |" % r)


if __name__ == "__main__":
    main()
