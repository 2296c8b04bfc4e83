#!/usr/bin/env python3
"""The Python package, measured: import time, and encode/decode throughput from Python
(`roibin.encode`/`decode`) against the same specs through h5py (filter 443 registered by
`import roibin`), and against hdf5plugin's filters through h5py, in one run, on the same frames.

    python3 benches/py/python_bench.py [--frames 8] [--data ../shared/data] [--out benches/results/python_bench_DATE]

Frames: the four JUNGFRAU modules of ../shared/data (float32, 512×1024) repeated to --frames,
and Eiger-like uint16 counts (1 frame = 2167×2070) from `roibin synth`. Chunk = 1 frame; h5py
files live in memory (driver="core", no backing store), so the disk does not enter. Best of
--repeat runs per row.
"""
import argparse, json, os, pathlib, statistics, subprocess, sys, tempfile, time

REPO = pathlib.Path(__file__).resolve().parents[2]


def import_times(n=5):
    """Seconds for `import h5py` alone and for `import roibin` (imports h5py and registers)."""
    def t(stmt):
        runs = []
        for _ in range(n):
            out = subprocess.run(
                [sys.executable, "-c", f"import time; t=time.perf_counter(); {stmt}; print(time.perf_counter()-t)"],
                capture_output=True, text=True, check=True, env={k: v for k, v in os.environ.items() if k != "HDF5_PLUGIN_PATH"},
            ).stdout
            runs.append(float(out))
        return statistics.median(runs)

    return {"h5py": t("import h5py"), "roibin": t("import roibin"), "numpy": t("import numpy")}


def best(f, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        r = f()
        times.append(time.perf_counter() - t)
    return min(times), r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--roibin", default=str(REPO / "target" / "release" / "roibin"))
    ap.add_argument("--out", default=str(REPO / "benches" / "results" / f"python_bench_{time.strftime('%Y-%m-%d')}"))
    a = ap.parse_args()

    imports = import_times()
    import h5py
    import hdf5plugin
    import numpy as np
    import roibin

    sets = {}
    jf = [np.fromfile(pathlib.Path(a.data) / f"jungfrau_module_conv{k}.f32", "<f4").reshape(512, 1024) for k in range(4)]
    sets["jungfrau f32"] = np.stack([jf[k % 4] for k in range(a.frames)])
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "eiger.h5")
        subprocess.run([a.roibin, "synth", path, "--dtype", "u16", "--frames", str(a.frames)], check=True, capture_output=True)
        with h5py.File(path, "r") as f:
            sets["eiger-like u16"] = f["/entry/data/data"][()]

    cases = [
        ("eiger-like u16", "strong", roibin.Strong(), hdf5plugin.Bitshuffle(cname="lz4"), "bitshuffle-lz4"),
        ("eiger-like u16", "fast", roibin.Fast(), hdf5plugin.Zstd(), "zstd"),
        ("jungfrau f32", "sz(abs=0.5)", roibin.Sz(abs=0.5), hdf5plugin.SZ3(absolute=0.5), "SZ3 abs 0.5"),
        ("jungfrau f32", "strong", roibin.Strong(), hdf5plugin.Bitshuffle(cname="lz4"), "bitshuffle-lz4"),
    ]
    rows = []
    for name, spec, filt, anchor, anchor_name in cases:
        data = sets[name]
        mb = data.nbytes / 1e6
        # Python: one chunk per frame, as HDF5 sees them.
        enc_s, chunks = best(lambda: [roibin.encode(fr, spec) for fr in data], a.repeat)
        dec_s, back = best(lambda: [roibin.decode(c) for c in chunks], a.repeat)
        stored = sum(len(c) for c in chunks)
        err = max(float(np.abs(b.astype("f8") - fr).max()) for b, fr in zip(back, data))

        def through_h5py(compression):
            def write():
                f = h5py.File(f"mem{time.perf_counter_ns()}.h5", "w", driver="core", backing_store=False)
                f.create_dataset("d", data=data, chunks=(1, *data.shape[1:]), **compression)
                return f
            w_s, f = best(write, a.repeat)
            r_s, _ = best(lambda: f["d"][()], a.repeat)
            size = f["d"].id.get_storage_size()
            f.close()
            return w_s, r_s, size

        hw, hr, hsize = through_h5py(filt)
        aw, ar, asize = through_h5py(anchor)
        rows.append({
            "data": name, "spec": spec, "frames": len(data), "MB": mb,
            "ratio": data.nbytes / stored, "max_error": err,
            "python_encode_MBps": mb / enc_s, "python_decode_MBps": mb / dec_s,
            "h5py_write_MBps": mb / hw, "h5py_read_MBps": mb / hr, "h5py_ratio": data.nbytes / hsize,
            "anchor": anchor_name, "anchor_write_MBps": mb / aw, "anchor_read_MBps": mb / ar,
            "anchor_ratio": data.nbytes / asize,
        })

    lines = [
        f"# The Python package: import time and throughput ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)",
        "",
        f"Import (median of 5 fresh interpreters): numpy {imports['numpy']*1e3:.0f} ms, h5py {imports['h5py']*1e3:.0f} ms, "
        f"roibin {imports['roibin']*1e3:.0f} ms (imports numpy and h5py, registers filter 443).",
        "",
        "| data | spec | ratio | py encode MB/s | py decode MB/s | h5py write MB/s | h5py read MB/s | anchor (h5py) | anchor ratio | anchor write | anchor read | max error |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['data']} ×{r['frames']} | `{r['spec']}` | {r['ratio']:.2f} | {r['python_encode_MBps']:.0f} | {r['python_decode_MBps']:.0f} | "
            f"{r['h5py_write_MBps']:.0f} | {r['h5py_read_MBps']:.0f} | {r['anchor']} | {r['anchor_ratio']:.2f} | "
            f"{r['anchor_write_MBps']:.0f} | {r['anchor_read_MBps']:.0f} | {r['max_error']:.3g} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    pathlib.Path(a.out + ".md").write_text(text)
    pathlib.Path(a.out + ".json").write_text(json.dumps({"imports_s": imports, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
