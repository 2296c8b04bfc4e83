#!/usr/bin/env python3
"""ROIBIN on real detectors, judged by DIALS: every real frame set in ../shared/data (JUNGFRAU
modules, the Rayonix hit, the EIGER 4M frame) compressed by roibin (auto settings) and by
hdf5plugin's SZ3, SZ2, ZFP and bitshuffle-LZ4 at the same bound; DIALS's spot finder (Debian's
`dials`, /usr/bin/python3) on the original and on each decoded frame: recall, precision,
integrated-intensity error of matched spots, flagged-pixel fidelity, ratio, speed.

    HDF5_PLUGIN_PATH=target/release python3 benches/py/roibin_real.py [--repeat 3] [--judge dispersion_extended]

Writes a Markdown table (stdout and --out) and a chart (--chart).
"""
import argparse, json, os, subprocess, sys, tempfile, time

import h5py
import hdf5plugin
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from side_by_side import opts, ROIBIN_ID  # noqa: E402
from dials_finders import DIALS, real_frames, valid_mask, match  # noqa: E402


def spots_with_intensity(img_npy, gain, ext):
    """DIALS spots of a frame (its mask beside it as NAME.mask.npy): row, column, intensity."""
    res = subprocess.run(["/usr/bin/python3", "-c", DIALS, str(gain), "1" if ext else "0", img_npy],
                         check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])[img_npy]


def roundtrip(img, kw, repeat):
    """Best-of-`repeat` write and read through h5py; returns decoded frame, stored bytes, MB/s."""
    best_w = best_r = float("inf")
    for _ in range(repeat):
        # No chunk cache: reads decode every time, as a reader opening the file would.
        with h5py.File("m.h5", "w", driver="core", backing_store=False, rdcc_nbytes=0) as f:
            t = time.perf_counter()
            ds = f.create_dataset("d", data=img[None], chunks=(1,) + img.shape, **kw)
            f.flush()
            best_w = min(best_w, time.perf_counter() - t)
            stored = ds.id.get_storage_size()
            assert all(ds.id.get_chunk_info(i).filter_mask == 0 for i in range(ds.id.get_num_chunks()))
            t = time.perf_counter()
            back = ds[0]
            best_r = min(best_r, time.perf_counter() - t)
    mb = img.nbytes / 1e6
    return back, stored, mb / best_w, mb / best_r


def chart(rows, path, judge):
    """Ratio vs write speed, and the science kept vs ratio, one point per frame and codec."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(12, 4.5))
    for lab in sorted(set(r["codec"] for r in rows)):
        rs = [r for r in rows if r["codec"] == lab]
        ax[0].scatter([r["write"] for r in rs], [r["ratio"] for r in rs], label=lab)
        ax[1].scatter([r["ratio"] for r in rs], [100 * min(r["recall"], r["precision"]) for r in rs], label=lab)
    ax[0].set_xlabel("write MB/s"); ax[0].set_ylabel("ratio vs uint16"); ax[0].set_yscale("log"); ax[0].set_xscale("log")
    ax[1].set_xlabel("ratio vs uint16"); ax[1].set_ylabel("min(recall, precision) vs DIALS, %"); ax[1].set_xscale("log")
    ax[1].axhline(99.5, color="grey", ls=":")
    ax[0].legend(fontsize=8)
    fig.suptitle("Real frames (JUNGFRAU, Rayonix, EIGER 4M) judged by DIALS %s" % judge)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "../../../shared/data"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--judge", default="dispersion_extended", choices=["dispersion", "dispersion_extended"])
    ap.add_argument("--out")
    ap.add_argument("--chart")
    ap.add_argument("--only", help="comma-separated frame names")
    ap.add_argument("--check", help="roibin(auto)'s check finder (default: its own, DIALS's default)")
    ap.add_argument("--replot", help="draw --chart from the JSON of an earlier --out file, run nothing")
    a = ap.parse_args()
    if a.replot:
        text = open(a.replot).read()
        chart(json.loads(text.split("```json\n")[1].split("```")[0]), a.chart, a.judge)
        return
    frames = real_frames(a.data)
    if a.only:
        frames = [f for f in frames if f[0] in a.only.split(",")]
    if not frames:
        sys.exit("no real frames at %s: nothing to check" % a.data)
    work = tempfile.mkdtemp(prefix="roibin-real-")
    # Paths given relative to where the run started, as a user means them.
    a.out, a.chart = [os.path.abspath(x) if x else x for x in (a.out, a.chart)]
    os.chdir(work)
    ext = a.judge == "dispersion_extended"
    rows = []
    for name, img, gain in frames:
        valid = valid_mask(img)
        # The bound: one photon where the data are photons (JUNGFRAU), one count for counting
        # detectors (EIGER), twice the Poisson noise of the median background otherwise.
        if name.startswith("jungfrau"):
            bound = 1.0
        elif name.startswith("eiger"):
            bound = 1.0
        else:
            bound = round(2 * float(np.sqrt(np.median(img[valid]))), 1)
        orig_npy = os.path.join(work, name + ".npy")
        np.save(orig_npy, img)
        np.save(orig_npy.replace(".npy", ".mask.npy"), valid.astype(np.uint8))
        orig = spots_with_intensity(orig_npy, gain, ext)
        fimg = img if img.dtype.kind == "f" else img.astype(np.float32)
        codecs = [
            ("roibin auto", img, dict(compression=ROIBIN_ID, compression_opts=opts(
                "roibin(auto,%sbackground=bin(2,2)|sz(abs=%g))" % ("check=%s," % a.check if a.check else "", bound)))),
            ("SZ3 abs", fimg, dict(**hdf5plugin.SZ3(absolute=bound))),
            ("SZ2 abs", fimg, dict(**hdf5plugin.SZ(absolute=bound))),
            ("ZFP accuracy", fimg, dict(**hdf5plugin.Zfp(accuracy=bound))),
            ("bitshuffle-LZ4", img, dict(**hdf5plugin.Bitshuffle(cname="lz4"))),
        ]
        for label, data, kw in codecs:
            back, stored, w, r = roundtrip(data, kw, a.repeat)
            dec_npy = os.path.join(work, "%s_dec.npy" % name)
            np.save(dec_npy, back)
            np.save(dec_npy.replace(".npy", ".mask.npy"), valid.astype(np.uint8))
            got = spots_with_intensity(dec_npy, gain, ext)
            m = match([p[:2] for p in orig], [p[:2] for p in got])
            # Intensity error of matched spots (nearest within 1.5 px).
            errs = []
            if got:
                g = np.array(got)
                for p in orig:
                    d = np.hypot(g[:, 0] - p[0], g[:, 1] - p[1])
                    j = int(np.argmin(d))
                    if d[j] <= 1.5:
                        errs.append(abs(g[j, 2] - p[2]) / max(abs(p[2]), 1.0))
            # Detector flags: NaN/±Inf, integer sentinels (negative, the type's maximum).
            flagged = ~np.isfinite(img.astype(np.float64))
            if img.dtype.kind in "ui":
                flagged |= (img < 0) | (img == np.iinfo(img.dtype).max)
            fid = np.array_equal(np.asarray(back)[flagged].view(np.uint8), np.asarray(data)[flagged].view(np.uint8)) if flagged.any() else True
            err = np.abs(back[valid].astype(np.float64) - data[valid].astype(np.float64))
            rows.append(dict(frame=name, codec=label, bound=bound, ratio=img.size * 2 / stored, write=w, read=r,
                             spots=len(orig), dec_spots=len(got), recall=m / max(1, len(orig)),
                             precision=m / max(1, len(got)), ierr=float(np.median(errs)) if errs else 0.0,
                             maxerr=float(err.max()), flagged=int(flagged.sum()), flagged_exact=bool(fid)))
            rr = rows[-1]
            print("%-15s %-15s bound %-5g ratio %8.1f write %6.0f MB/s read %6.0f MB/s spots %5d→%5d recall %.4f precision %.4f ierr %.4f flagged %s" % (
                name, label, bound, rr["ratio"], rr["write"], rr["read"], rr["spots"], rr["dec_spots"], rr["recall"],
                rr["precision"], rr["ierr"], "exact" if fid else "CHANGED"), flush=True)
    table = ["| frame | codec | bound | ratio vs u16 | write MB/s | read MB/s | DIALS spots (orig → decoded) | recall | precision | median intensity err | max abs err (valid px) | flagged px bit-exact (count) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append("| %s | %s | %g | %.1f | %.0f | %.0f | %d → %d | %.2f%% | %.2f%% | %.2f%% | %.3g | %s (%d) |" % (
            r["frame"], r["codec"], r["bound"], r["ratio"], r["write"], r["read"], r["spots"], r["dec_spots"],
            100 * r["recall"], 100 * r["precision"], 100 * r["ierr"], r["maxerr"], "yes" if r["flagged_exact"] else "NO", r["flagged"]))
    print("\n" + "\n".join(table))
    if a.out:
        with open(a.out, "w") as f:
            f.write("\n".join(table) + "\n\n```json\n" + json.dumps(rows, indent=1) + "\n```\n")
    if a.chart:
        chart(rows, a.chart, a.judge)


if __name__ == "__main__":
    main()
