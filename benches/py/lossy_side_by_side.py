#!/usr/bin/env python3
"""Error-bounded lossy codecs side by side through h5py, in one run, on the same data:
roibin's `sz` (and `zfp` once it exists) via HDF5_PLUGIN_PATH against hdf5plugin's SZ3 (32024),
SZ (32017) and ZFP (32013) at the same absolute bounds.

Data: (a) a smooth 3-D Gaussian random field (FFT-filtered white noise, 256³ float32 by default,
values ~±1000 so the bounds 1/10/90 are meaningful), chunk = whole field; (b) calibrated float32
Eiger-4M-like frames from `roibin synth --dtype f32` (45 ADU per photon), chunk = 1 frame.
Every row, ours and the anchors', runs in a fresh child process (three writes and reads, the
fastest kept; the best of `--repeat` children); "one core" rows in a child pinned to one core.

    HDF5_PLUGIN_PATH=target/release python3 benches/py/lossy_side_by_side.py
"""
import argparse, json, os, subprocess, sys, tempfile, time

import h5py
import hdf5plugin
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from side_by_side import opts, ROIBIN_ID  # noqa: E402
import host_probe  # noqa: E402


def grf(n, seed=0):
    rng = np.random.default_rng(seed)
    k = np.fft.fftfreq(n)
    kk = np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2)
    spec = np.where(kk > 0, kk ** (-11.0 / 6.0), 0.0) * np.exp(-(kk / 0.15) ** 2)  # Kolmogorov-like
    noise = np.fft.fftn(rng.standard_normal((n, n, n)))
    f = np.real(np.fft.ifftn(noise * spec))
    return (f / f.std() * 300.0).astype(np.float32)


def codecs(bound):
    return [
        ("hdf5plugin SZ3 abs (32024)", dict(**hdf5plugin.SZ3(absolute=bound))),
        ("hdf5plugin SZ abs (32017)", dict(**hdf5plugin.SZ(absolute=bound))),
        ("hdf5plugin ZFP accuracy (32013)", dict(**hdf5plugin.Zfp(accuracy=bound))),
        ("roibin sz(abs)", dict(compression=ROIBIN_ID, compression_opts=opts("sz(abs=%g)" % bound))),
        (ONE_CORE + "roibin sz(abs)", dict(compression=ROIBIN_ID, compression_opts=opts("sz(abs=%g)" % bound))),
        ("roibin zfp(accuracy)", dict(compression=ROIBIN_ID, compression_opts=opts("zfp(accuracy=%g)" % bound))),
        (ONE_CORE + "roibin zfp(accuracy)", dict(compression=ROIBIN_ID, compression_opts=opts("zfp(accuracy=%g)" % bound))),
    ]


# Every row runs in a child process of its own (three writes and reads, the fastest kept), the
# anchors' as well as ours; "one core" rows in a child started on one core. A spec's `threads` is
# a run-time option the filter leaves out of the stored spec, so it cannot ask for one thread
# through h5py, and pinning this process would not move the plugin's worker threads (affinity is
# per thread). Children, not this process, because this process's state moved the 2-core rows:
# written here after the field's generation and the anchors' rows, `sz` on the field at 90 took
# 122-157 ms against 93-107 ms in a fresh process, while the anchors moved by 4%.
ONE_CORE = "one core: "


def once_in_child(label, work, chunks, kw):
    pin = label.startswith(ONE_CORE)
    cpu = min(os.sched_getaffinity(0))
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", work, json.dumps([list(chunks), kw])],
                       preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if pin else None,
                       capture_output=True, text=True, check=True)
    w, r, stored = json.loads(p.stdout)
    out = np.load(os.path.join(work, "out.npy"))
    os.remove(os.path.join(work, "out.npy"))
    return w, r, stored, out


def child(work, args):
    chunks, kw = json.loads(args)
    data = np.load(os.path.join(work, "in.npy"))
    kw["compression_opts"] = tuple(kw["compression_opts"])
    # Three times, keeping the fastest of each: the first runs of a fresh process pay the
    # plugin's load, its thread pool's start and the allocator's first-touch page faults
    # (a read of frames measured 257, 259, then 683 MB/s), which a long-lived writer pays once.
    runs = [once(data, tuple(chunks), kw) for _ in range(3)]
    w, r = min(x[0] for x in runs), min(x[1] for x in runs)
    np.save(os.path.join(work, "out.npy"), runs[-1][3])
    print(json.dumps([w, r, runs[-1][2]]))
    return 0


def once(data, chunks, kw):
    with h5py.File("mem.h5", "w", driver="core", backing_store=False, rdcc_nbytes=0) as f:
        t = time.perf_counter()
        ds = f.create_dataset("d", data=data, chunks=chunks, **kw)
        f.flush()
        w = time.perf_counter() - t
        stored = ds.id.get_storage_size()
        out = np.empty_like(data)
        t = time.perf_counter()
        ds.read_direct(out)
        r = time.perf_counter() - t
    return w, r, stored, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=256, help="edge of the 3-D field")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bounds", default="1,10,90")
    ap.add_argument("--roibin", default=os.path.join(os.path.dirname(__file__), "../../target/release/roibin"))
    a = ap.parse_args()
    print("h5py %s, HDF5 %s, hdf5plugin %s, %d cores; %s" % (h5py.version.version, h5py.version.hdf5_version, hdf5plugin.version, os.cpu_count(), host_probe.describe()))
    field = grf(a.n)
    path = os.path.join(tempfile.mkdtemp(prefix="roibin-lossy-"), "f32.h5")
    subprocess.run([a.roibin, "synth", path, "--dtype", "f32", "--frames", str(a.frames)], check=True)
    with h5py.File(path) as f:
        frames = f["/entry/data/data"][()]
    datasets = [("smooth 3-D field %d³ f32" % a.n, field, field.shape), ("calibrated Eiger-4M-like f32 frames", frames, (1,) + frames.shape[1:])]
    summary = []
    for name, data, chunks in datasets:
        # The children read the data from here.
        work = tempfile.mkdtemp(prefix="roibin-lossy-rows-")
        np.save(os.path.join(work, "in.npy"), data)
        for bound in [float(b) for b in a.bounds.split(",")]:
            print("\n### %s, abs bound %g (%.1f MB, value range %.0f)\n" % (name, bound, data.nbytes / 1e6, float(data.max() - data.min())))
            print("| codec | ratio vs input | ratio vs u16 raw | write MB/s | read MB/s | max error | PSNR dB |")
            print("|---|---|---|---|---|---|---|")
            best = {}
            for _ in range(a.repeat):
                for label, kw in codecs(bound):
                    w, r, stored, out = once_in_child(label, work, chunks, kw)
                    bw, br, _, _ = best.get(label, (1e9, 1e9, 0, None))
                    best[label] = (min(w, bw), min(r, br), stored, out)
            rng = float(data.max() - data.min())
            for label, kw in codecs(bound):
                w, r, stored, out = best[label]
                d = np.abs(out.astype(np.float64) - data.astype(np.float64))
                mse = float((d ** 2).mean())
                psnr = float("inf") if mse == 0 else 20 * np.log10(rng) - 10 * np.log10(mse)
                row = (label, data.nbytes / stored, data.size * 2 / stored, data.nbytes / 1e6 / w, data.nbytes / 1e6 / r, float(d.max()), psnr)
                summary.append((name, bound) + row)
                flag = "" if row[5] <= bound else " **BOUND EXCEEDED**"
                print("| %s | %.2f | %.2f | %.0f | %.0f | %.3g%s | %.1f |" % (row[0], row[1], row[2], row[3], row[4], row[5], flag, row[6]))
        os.remove(os.path.join(work, "in.npy"))
        os.rmdir(work)
    print("\n### Targets (ratios to the anchors of this run)\n")
    for name, data, _ in datasets:
        for bound in [float(b) for b in a.bounds.split(",")]:
            by = {s[2]: s for s in summary if s[0] == name and s[1] == bound}
            sz, sz3, sz2 = by["roibin sz(abs)"], by["hdf5plugin SZ3 abs (32024)"], by["hdf5plugin SZ abs (32017)"]
            sz1 = by[ONE_CORE + "roibin sz(abs)"]
            ref = sz3 if "smooth" in name else sz2
            faster = max(sz3[5], sz2[5])
            print("- %s abs %g: sz ratio / %s ratio = %.2f (target ≥ 1); sz write / faster of SZ3,SZ2 = %.2f (target ≥ 2), on one core %.2f"
                  % (name, bound, "SZ3" if ref is sz3 else "SZ2", sz[3] / ref[3], sz[5] / faster, sz1[5] / faster))
            z, zr = by["roibin zfp(accuracy)"], by["hdf5plugin ZFP accuracy (32013)"]
            z1 = by[ONE_CORE + "roibin zfp(accuracy)"]
            print("- %s abs %g: zfp ratio / ZFP ratio = %.2f (target ≥ 0.95); zfp write / ZFP write = %.2f, read %.2f (target ≥ 1); on one core %.2f, %.2f"
                  % (name, bound, z[3] / zr[3], z[5] / zr[5], z[6] / zr[6], z1[5] / zr[5], z1[6] / zr[6]))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        sys.exit(child(sys.argv[2], sys.argv[3]))
    sys.exit(main())
