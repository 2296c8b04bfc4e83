#!/usr/bin/env python3
"""DIALS end to end on roibin files: NXmx masters whose frames are filter 443, imported and
spot-found by Debian's `dials` (`dials.import`, `dials.find_spots` with its defaults: HDF5 1.10,
HDF5_PLUGIN_PATH at this build's plugin), against the same frames stored plainly.

    python3 benches/py/dials_nxmx.py [--spec strong --spec 'roibin(auto,...)'] [--out FILE]

Frames: the EIGER 4M frame of ../shared/data (uint32, gaps 0xFFFFFFFF), the Rayonix MX340 hit
(int32) and the four JUNGFRAU modules (float32 ADU, as one 4-frame sweep; DIALS's default gain 1).
The geometry is made up (150 mm, 0.9763 Å, 75 µm pixels): spot finding does not use it. Each spec is applied
with `roibin compress` into a copy of the master's metadata. Spots are matched by centroid
(within 1 px); "identical" counts the spots whose centroid is equal to the last bit. The
anchors (hdf5plugin's SZ3 and ZFP at --bound, bitshuffle-LZ4) are written through h5py and read
by DIALS through hdf5plugin's plugins. "write s" is wall time of one `roibin compress` (a
process, 1 chunk per frame) or of h5py's write; not a speed benchmark.
"""
import argparse, json, os, pathlib, subprocess, sys, tempfile, time

import h5py
import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python" / "tests"))
from nxmx import write_skeleton  # noqa: E402

CENTROIDS = """
import json, sys
from dials.array_family import flex
r = flex.reflection_table.from_file(sys.argv[1])
print(json.dumps([list(v) for v in r["xyzobs.px.value"]]))
"""


def spots(tmp, env, path, name):
    for cmd in (["dials.import", str(path), f"output.experiments={name}.expt"],
                ["dials.find_spots", f"{name}.expt", f"output.reflections={name}.refl", "nproc=1"]):
        p = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        if p.returncode:
            raise SystemExit(f"{cmd[0]} failed on {path}:\n{p.stdout[-3000:]}{p.stderr[-3000:]}")
    out = subprocess.run(["/usr/bin/python3", "-c", CENTROIDS, f"{name}.refl"], cwd=tmp, env=env,
                         capture_output=True, text=True, check=True).stdout
    return np.array(json.loads(out)).reshape(-1, 3)


def match(want, got):
    """Recall, precision (centroids within 1 px, same frame) and the share of identical centroids."""
    if not len(want) or not len(got):
        return 0.0, 0.0, 0.0
    d = np.sqrt(((want[:, None, :2] - got[None, :, :2]) ** 2).sum(-1))
    d[np.abs(want[:, None, 2] - got[None, :, 2]) >= 1] = np.inf
    return float((d.min(1) < 1).mean()), float((d.min(0) < 1).mean()), float((d.min(1) == 0).mean())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--roibin", default=str(REPO / "target" / "release" / "roibin"))
    ap.add_argument("--plugin", default=str(REPO / "target" / "release"))
    ap.add_argument("--spec", action="append", help="graph specs to compare (default: strong and roibin(auto))")
    ap.add_argument("--bound", type=float, default=1.0, help="absolute bound of the lossy anchors (SZ3, ZFP)")
    ap.add_argument("--out", help="write the table (.md) and raw numbers (.json) here (no extension)")
    a = ap.parse_args()
    specs = a.spec or ["strong", "roibin(auto,background=bin(4,4)|sz(abs=1))", "roibin(auto,background=bin(2,2)|sz(abs=1))"]
    import hdf5plugin  # reads the EIGER frame's bitshuffle-LZ4; the anchors

    # The anchors, written through h5py with hdf5plugin and read by DIALS through its plugins.
    anchors = {f"SZ3 abs {a.bound:g}": hdf5plugin.SZ3(absolute=a.bound),
               f"ZFP accuracy {a.bound:g}": hdf5plugin.Zfp(accuracy=a.bound),
               "bitshuffle-LZ4": hdf5plugin.Bitshuffle(cname="lz4")}

    data = pathlib.Path(a.data)
    sets = {}
    with h5py.File(data / "eiger4m_bslz4_frame.h5", "r") as f:
        sets["EIGER 4M (uint32)"] = f["/entry/data/data"][()]
    with h5py.File(data / "rayonix340_mfx_hit.h5", "r") as f:
        sets["Rayonix MX340 hit (int32)"] = f["/entry/data/data"][()]
    sets["JUNGFRAU module ×4 (float32)"] = np.stack(
        [np.fromfile(data / f"jungfrau_module_conv{k}.f32", "<f4").reshape(512, 1024) for k in range(4)])
    env = {k: v for k, v in os.environ.items() if k != "HDF5_PLUGIN_PATH"}
    env["HDF5_PLUGIN_PATH"] = f"{a.plugin}:{hdf5plugin.PLUGIN_PATH}"
    # Debian's dials on Debian's numpy and h5py, ahead of pip's system-wide numpy 2.
    env["PYTHONPATH"] = "/usr/lib/python3/dist-packages"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, frames) in enumerate(sets.items()):
            mask = (frames[0] == np.iinfo(frames.dtype).max).astype("u4") if frames.dtype.kind == "u" else None
            orig = pathlib.Path(tmp) / f"orig{k}.h5"
            write_skeleton(orig, frames.shape, mask=mask, counts=frames.dtype.kind in "ui")
            with h5py.File(orig, "a") as f:
                f["/entry/data"].create_dataset("data", data=frames, chunks=(1, *frames.shape[1:]))
            want = spots(tmp, env, orig, f"orig{k}")
            for j, spec in enumerate(specs + list(anchors)):
                out = pathlib.Path(tmp) / f"c{k}_{j}.h5"
                write_skeleton(out, frames.shape, mask=mask, counts=frames.dtype.kind in "ui")
                t = time.perf_counter()
                if spec in anchors:
                    if frames.dtype.kind == "u" and "ZFP" in spec:
                        continue  # ZFP takes no unsigned integers
                    if frames.dtype.kind == "i" and "SZ3" in spec:
                        continue  # hdf5plugin's SZ3 takes no 32-bit integers
                    with h5py.File(out, "a") as f:
                        f["/entry/data"].create_dataset("data", data=frames, chunks=(1, *frames.shape[1:]),
                                                        **anchors[spec])
                else:
                    subprocess.run([a.roibin, "compress", f"{orig}:/entry/data/data", f"{out}:/entry/data/data",
                                    "--spec", spec], check=True, capture_output=True, env=env)
                secs = time.perf_counter() - t
                with h5py.File(out, "r") as f:
                    stored = f["/entry/data/data"].id.get_storage_size()
                got = spots(tmp, env, out, f"c{k}_{j}")
                r, p, same = match(want, got)
                rows.append({"data": name, "spec": spec, "spots_original": len(want), "spots_roibin": len(got),
                             "recall": r, "precision": p, "identical_centroids": same,
                             "ratio": frames.nbytes / stored, "compress_s": secs})
                print(json.dumps(rows[-1]), flush=True)
    lines = ["| data | spec | DIALS spots original / decoded | recall | precision | identical centroids | ratio | write s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['data']} | `{r['spec']}` | {r['spots_original']} / {r['spots_roibin']} | "
                     f"{100*r['recall']:.2f}% | {100*r['precision']:.2f}% | {100*r['identical_centroids']:.2f}% | {r['ratio']:.1f} | {r['compress_s']:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        pathlib.Path(a.out + ".md").write_text(f"# DIALS end to end on roibin NXmx files ({time.strftime('%Y-%m-%d')})\n\n" + text)
        pathlib.Path(a.out + ".json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
