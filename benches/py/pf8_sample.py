"""pf8 with sampled radial statistics (`sample=N`) against pf8 on every pixel, same frames.

For each data set, every frame's peaks from `roibin peaks --json` with `sample=1` (every
pixel, peakfinder8 as published) and with `sample=N`; a peak of one list matches a peak of
the other within 1.5 pixels (centroids). Prints recall (full-statistics peaks the sampled
finder also finds) and precision (sampled peaks the full finder also finds) per data set.

    python3 benches/py/pf8_sample.py ROIBIN [--out FILE.md]

Data: the synthetic JUNGFRAU-4M frames of `roibin synth --layout jungfrau` (the ROIBIN spec's
mask and radius map, its `adc`), and the real frames of `../shared/data` (EIGER 4M, Rayonix,
four JUNGFRAU modules) with the frame's centre as the beam and `adc` at the frame's 99th
percentile (pf8's default of 300 ADU suits none of their units).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import h5py
import hdf5plugin
import numpy as np

DATA = os.path.join(os.path.dirname(__file__), "../../../shared/data")
STEPS = [2, 4, 8, 16]
MATCH = 1.5


def peaks(roibin, source, finder, frames):
    out = subprocess.run(
        [roibin, "peaks", source, "--finder", finder, "--frames", str(frames), "--json", "-q"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [np.array([[p["y"], p["x"]] for p in f["peaks"]]).reshape(-1, 2) for f in json.loads(out)]


def matched(a, b):
    """Peaks of `a` with a peak of `b` within MATCH pixels."""
    if len(a) == 0 or len(b) == 0:
        return 0
    d = np.hypot(a[:, None, 0] - b[None, :, 0], a[:, None, 1] - b[None, :, 1])
    return int((d.min(axis=1) <= MATCH).sum())


def sets(roibin, work):
    """(name, source, pf8 options without sample, frames)."""
    jf = os.path.join(work, "jf.h5")
    subprocess.run([roibin, "synth", "--layout", "jungfrau", "--frames", "16", jf], check=True, capture_output=True)
    geo = f'mask="{work}/jf.mask.npy",radius="{work}/jf.radius.npy"'
    yield "synthetic JUNGFRAU 4M (4096x1024 f32), the ROIBIN spec's pf8", f"{jf}:/entry_1/data_1/data", geo, 16
    real = [
        ("EIGER 4M (2167x2070 u32)", "eiger4m_bslz4_frame.h5"),
        ("Rayonix MX340 (1920x1920 i32)", "rayonix340_mfx_hit.h5"),
    ]
    # HDF5's own read for `roibin peaks`: hdf5plugin's filters for the EIGER frame.
    os.environ["HDF5_PLUGIN_PATH"] = hdf5plugin.PLUGIN_PATH
    for name, f in real:
        with h5py.File(os.path.join(DATA, f), "r") as h:
            frame = h["/entry/data/data"][0].astype(np.float64)
        frame[frame >= 2**31 - 1] = np.nan
        adc = float(np.nanpercentile(frame, 99))
        yield name, f"{os.path.join(DATA, f)}:/entry/data/data", f"adc={adc:.6g},max_peaks=100000", 1
    mods = np.stack(
        [np.fromfile(os.path.join(DATA, f"jungfrau_module_conv{k}.f32"), np.float32).reshape(512, 1024) for k in range(4)]
    )
    path = os.path.join(work, "jfmod.h5")
    with h5py.File(path, "w") as h:
        h["data"] = mods
    adc = float(np.nanpercentile(mods, 99))
    yield "JUNGFRAU modules conv0-3 (512x1024 f32)", f"{path}:/data", f"adc={adc:.6g},max_peaks=100000", 4


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("roibin")
    ap.add_argument("--out")
    a = ap.parse_args()
    lines = [
        "| data | pf8 options | frames | peaks (sample=1) | " + " | ".join(f"sample={s} recall / precision" for s in STEPS) + " |",
        "|---|---|---|---|" + "---|" * len(STEPS),
    ]
    with tempfile.TemporaryDirectory() as work:
        for name, source, opts, frames in sets(a.roibin, work):
            full = peaks(a.roibin, source, f"pf8({opts})", frames)
            n = sum(len(p) for p in full)
            cells = []
            for s in STEPS:
                some = peaks(a.roibin, source, f"pf8({opts},sample={s})", frames)
                m_full = sum(matched(f, p) for f, p in zip(full, some))
                m_some = sum(matched(p, f) for f, p in zip(full, some))
                k = sum(len(p) for p in some)
                cells.append(f"{100 * m_full / max(n, 1):.2f}% / {100 * m_some / max(k, 1):.2f}% ({k})")
            shown = opts if "mask" not in opts else "mask, radius map of the sample"
            lines.append(f"| {name} | {shown} | {frames} | {n} | " + " | ".join(cells) + " |")
            print(lines[-1], file=sys.stderr)
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
