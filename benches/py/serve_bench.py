"""`roibin serve` under load, on loopback, same run, same frames:

- `show` PNG of an EIGER-4M-like (2167×2070 u32) bitshuffle-LZ4 frame vs h5grove (FastAPI,
  uvicorn, h5py + hdf5plugin) serving the same frame as h5web fetches it (`/data/?format=bin`);
- a cached STXM request's latency; an uncached map's frames/s through HTTP;
- a load test: C concurrent clients for T seconds mixing `show` and cached `stxm` requests:
  requests/s, p50/p99 latency, errors, the server's memory before and after.

usage: serve_bench.py ROIBIN OUT_DIR   (env CLIENTS=8, SECONDS=10)
Writes OUT_DIR/serve_bench.md and .json.
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

ROIBIN, OUT = sys.argv[1], sys.argv[2]
CLIENTS, SECONDS = int(os.environ.get("CLIENTS", "8")), float(os.environ.get("SECONDS", "10"))
root = os.path.join(OUT, "root")
os.makedirs(root, exist_ok=True)
scan = os.path.join(root, "eiger.h5")
subprocess.run([ROIBIN, "synth", scan, "--layout", "stxm", "--scan", "4x8", "--frame", "2167x2070", "--bslz4"],
               check=True, capture_output=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_ours(*extra):
    p = subprocess.Popen([ROIBIN, "serve", "--root", root, "--bind", "127.0.0.1:0", *extra], stdout=subprocess.PIPE, text=True)
    base = "http://" + p.stdout.readline().split("http://")[1].split("/")[0]
    return p, base


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def fetch(url):
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as r:
        body = r.read()
        ok = r.status == 200
    return time.perf_counter() - t, ok, len(body)


def timed(url, n):
    lat = [fetch(url)[0] for _ in range(n)]
    return statistics.median(lat), n / sum(lat)


res = {"date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), "cores": os.cpu_count(), "clients": CLIENTS, "seconds": SECONDS}
ours, base = start_ours("--cache-dir", os.path.join(OUT, "cache"))
port = free_port()
grove = subprocess.Popen([sys.executable, "-c", f"""
import uvicorn, hdf5plugin
from fastapi import FastAPI
from h5grove.fastapi_utils import router, settings
settings.base_dir = {root!r}
app = FastAPI(); app.include_router(router)
uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning")
"""])
gbase = f"http://127.0.0.1:{port}"
for _ in range(100):
    try:
        urllib.request.urlopen(gbase + "/", timeout=1)
        break
    except Exception:
        time.sleep(0.1)
try:
    fetch(base + "/show/eiger.h5/3")
    res["show_png_s"], res["show_png_rps"] = timed(base + "/show/eiger.h5/3?palette=viridis&log=1", 20)
    res["show_bin_s"], res["show_bin_rps"] = timed(base + "/data/?file=eiger.h5&path=/entry/data/data&selection=3&format=bin&dtype=safe", 20)
    fetch(gbase + "/data/?file=eiger.h5&path=/entry/data/data&selection=3&format=bin&dtype=safe")
    res["h5grove_bin_s"], res["h5grove_bin_rps"] = timed(gbase + "/data/?file=eiger.h5&path=/entry/data/data&selection=3&format=bin&dtype=safe", 20)
    stxm = base + "/stxm/eiger.h5/0?horz=8&vert=4&signal=comh"
    fetch(stxm)
    res["stxm_cached_s"], _ = timed(stxm, 50)
    t = time.perf_counter()
    fetch(base + "/stxm/eiger.h5/0?horz=8&vert=4&signal=comv&roi=1,1,2000,2000")
    res["stxm_uncached_fps"] = 32 / (time.perf_counter() - t)

    # Load: show and cached stxm, C clients, T seconds.
    urls = [base + f"/show/eiger.h5/{k}?binning=4,4" for k in range(8)] + [stxm]
    lat, errors, stop = [], [0], time.perf_counter() + SECONDS
    lock = threading.Lock()
    rss_before = rss_mb(ours.pid)

    def client(i):
        k = i
        while time.perf_counter() < stop:
            try:
                dt, ok, _ = fetch(urls[k % len(urls)])
                with lock:
                    lat.append(dt)
                    errors[0] += 0 if ok else 1
            except Exception:
                with lock:
                    errors[0] += 1
            k += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    t0 = time.perf_counter()
    [t.start() for t in threads]
    [t.join() for t in threads]
    wall = time.perf_counter() - t0
    lat.sort()
    res.update(load_requests=len(lat), load_rps=len(lat) / wall, load_p50_ms=1e3 * lat[len(lat) // 2],
               load_p99_ms=1e3 * lat[int(len(lat) * 0.99) - 1], load_errors=errors[0],
               rss_before_mb=rss_before, rss_after_mb=rss_mb(ours.pid))
finally:
    ours.terminate()
    grove.terminate()

md = f"""{res['date']}, {res['cores']} cores (busy: server, clients and h5grove share them), loopback

| measure | roibin serve | h5grove 4.0 (FastAPI/uvicorn, h5py+hdf5plugin) |
|---|---|---|
| EIGER-4M bslz4 frame, `show` PNG (log, viridis) | {1e3*res['show_png_s']:.1f} ms, {res['show_png_rps']:.1f} req/s | — (h5grove renders no image) |
| same frame as h5web fetches it (`/data/?format=bin&dtype=safe`) | {1e3*res['show_bin_s']:.1f} ms, {res['show_bin_rps']:.1f} req/s | {1e3*res['h5grove_bin_s']:.1f} ms, {res['h5grove_bin_rps']:.1f} req/s |
| cached STXM request (32-point comh map) | {1e3*res['stxm_cached_s']:.1f} ms median | |
| uncached STXM map through HTTP | {res['stxm_uncached_fps']:.0f} frames/s | |
| load: {CLIENTS} clients × {SECONDS:.0f} s, show (binned 4×4) + cached stxm | {res['load_rps']:.1f} req/s, p50 {res['load_p50_ms']:.1f} ms, p99 {res['load_p99_ms']:.1f} ms, {res['load_errors']} errors of {res['load_requests']} | |
| server memory before → after the load | {res['rss_before_mb']:.0f} → {res['rss_after_mb']:.0f} MB RSS | |
"""
print(md)
open(os.path.join(OUT, "serve_bench.md"), "w").write(md)
json.dump(res, open(os.path.join(OUT, "serve_bench.json"), "w"), indent=1)
