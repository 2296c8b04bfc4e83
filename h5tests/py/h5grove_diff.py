"""Differential test: `roibin serve`'s h5grove API on a roibin-compressed file against the real
h5grove (PyPI, FastAPI adapter) on a plain copy of the same file, both on loopback.

usage: h5grove_diff.py ROIBIN SCRATCH
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import h5py
import numpy as np

from common import FILTER_ID, opts

ROIBIN, TMP = sys.argv[1], sys.argv[2]
plain_root, roibin_root = os.path.join(TMP, "plain"), os.path.join(TMP, "roibin")
os.makedirs(plain_root, exist_ok=True)
os.makedirs(roibin_root, exist_ok=True)

rng = np.random.default_rng(3)
frames = rng.poisson(2.0, (10, 32, 24)).astype(np.uint16)
image = rng.normal(0, 1, (12, 9)).astype(np.float32)
image[3, 4] = np.nan
counts = np.arange(-5, 15, dtype=np.int32)


def write(path, **frame_kw):
    with h5py.File(path, "w") as f:
        f.attrs["default"] = "entry"
        e = f.create_group("entry")
        e.attrs["NX_class"] = "NXentry"
        e.attrs["exposure"] = 0.25
        e.attrs["numbers"] = np.array([1, 2, 3], dtype=np.int64)
        e.attrs.create("fixed", np.bytes_("pilatus"))
        d = e.create_group("data")
        d.attrs["NX_class"] = "NXdata"
        d.attrs["signal"] = "data"
        ds = d.create_dataset("data", data=frames, chunks=(1, 32, 24), **frame_kw)
        ds.attrs["units"] = "counts"
        e.create_dataset("image", data=image, chunks=(12, 9))
        e.create_dataset("counts", data=counts)


write(os.path.join(plain_root, "scan.h5"))
write(os.path.join(roibin_root, "scan.h5"), compression=FILTER_ID, compression_opts=opts("auto"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


port = free_port()
grove = subprocess.Popen([sys.executable, "-c", f"""
import uvicorn
from fastapi import FastAPI
from h5grove.fastapi_utils import router, settings
settings.base_dir = {plain_root!r}
app = FastAPI()
app.include_router(router)
uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning")
"""])
ours = subprocess.Popen([ROIBIN, "serve", "--root", roibin_root, "--bind", "127.0.0.1:0", "--no-cache", "--max-requests", "400"],
                        stdout=subprocess.PIPE, text=True)
try:
    line = ours.stdout.readline()
    ours_base = line.split("http://")[1].split("/")[0]
    grove_base = f"127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://{grove_base}/", timeout=1)
            break
        except Exception:
            time.sleep(0.1)

    def get(base, q):
        try:
            with urllib.request.urlopen(f"http://{base}{q}", timeout=20) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    checked = 0
    for q, kind in [
        ("/meta/?file=scan.h5&path=/", "json"),
        ("/meta/?file=scan.h5&path=/entry", "json"),
        ("/meta/?file=scan.h5&path=/entry/data/data", "json"),
        ("/meta/?file=scan.h5&path=/entry/image", "json"),
        ("/attr/?file=scan.h5&path=/entry", "json"),
        ("/attr/?file=scan.h5&path=/entry&attr_keys=NX_class&attr_keys=exposure", "json"),
        ("/attr/?file=scan.h5&path=/entry/data/data", "json"),
        ("/data/?file=scan.h5&path=/entry/data/data&selection=3", "json"),
        ("/data/?file=scan.h5&path=/entry/data/data&selection=2:9:3,5,1:20:4", "json"),
        ("/data/?file=scan.h5&path=/entry/data/data&selection=-1,-3:,::5", "json"),
        ("/data/?file=scan.h5&path=/entry/data/data&selection=4&format=bin&dtype=safe", "bytes"),
        ("/data/?file=scan.h5&path=/entry/data/data&selection=1:3&format=npy", "bytes"),
        ("/data/?file=scan.h5&path=/entry/data/data&selection=0,1:4&flatten=true", "json"),
        ("/data/?file=scan.h5&path=/entry/image", "json"),
        ("/data/?file=scan.h5&path=/entry/image&format=bin", "bytes"),
        ("/data/?file=scan.h5&path=/entry/counts&selection=2:17:2", "json"),
        ("/stats/?file=scan.h5&path=/entry/data/data&selection=5", "json"),
        ("/stats/?file=scan.h5&path=/entry/image", "json"),
        ("/stats/?file=scan.h5&path=/entry/counts", "json"),
        ("/paths/?file=scan.h5&path=/", "json"),
        ("/paths/?file=scan.h5&path=/entry", "json"),
        ("/meta/?file=scan.h5&path=/nope", "status"),
    ]:
        s1, b1 = get(grove_base, q)
        s2, b2 = get(ours_base, q)
        assert s1 == s2, (q, s1, s2, b1[:200], b2[:200])
        if kind == "json":
            j1, j2 = json.loads(b1), json.loads(b2)
            if q.startswith("/meta/"):
                # The storage differs on purpose: the copy is roibin-compressed.
                for j in (j1, j2):
                    for x in [j] + j.get("children", []):
                        x.pop("filters", None)
            if q.startswith("/stats/"):
                # numpy sums float32 in float32; we sum in float64.
                for k in j1:
                    a, b = j1[k], j2[k]
                    assert (a is None) == (b is None) and (a is None or abs(a - b) <= 1e-6 * max(1.0, abs(a))), (q, k, a, b)
            else:
                assert j1 == j2, (q, j1, j2)
        elif kind == "bytes":
            assert b1 == b2, (q, len(b1), len(b2), b1[:80], b2[:80])
        checked += 1
    print("h5grove diff: %d requests answered alike (roibin-compressed vs plain)" % checked)
finally:
    grove.terminate()
    ours.terminate()
    grove.wait()
    ours.wait()
