"""roibin-fs against the alternatives, same run, same file, on loopback (one table):

- direct reads of the origin directory (the local disk; the ceiling);
- the origin over HTTP with no cache (keep-alive range GETs from Python);
- `roibin-fs mount` of the nginx origin;
- `rclone mount :http: --vfs-cache-mode full` of the same origin (Debian's rclone).

Patterns: sequential 1 MiB reads of the whole file; random 1 MiB reads; random 4 KiB reads.
"cold": the kernel's page cache dropped and a fresh, empty cache directory; "hot": the same
reads again on the same mount, best of three. CPU per GB counts the reader and the FUSE daemon (or nothing but
the reader for direct and HTTP), from /proc.

usage (root: it drops the page cache): fs_bench.py ROIBIN_FS OUT_DIR   (env SIZE_MIB=512)
Writes OUT_DIR/fs_bench.md and .json.
"""
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time

ROIBIN_FS, OUT = sys.argv[1], os.path.abspath(sys.argv[2])
SIZE = int(os.environ.get("SIZE_MIB", "512")) << 20
MIB = 1 << 20
HERE = os.path.dirname(os.path.abspath(__file__))
DEPLOY = os.path.join(HERE, "..", "..", "deploy")
work = os.path.join(OUT, "work")
shutil.rmtree(work, ignore_errors=True)
data = os.path.join(work, "data")
os.makedirs(data)
with open(os.path.join(data, "scan.bin"), "wb") as f:
    rng = random.Random(1)
    for _ in range(SIZE // MIB):
        f.write(rng.randbytes(MIB))
TICK = os.sysconf("SC_CLK_TCK")
rng = random.Random(7)
RANDOM_1M = [rng.randrange(0, SIZE // MIB) * MIB for _ in range(min(128, SIZE // MIB))]
RANDOM_4K = [rng.randrange(0, SIZE // 4096) * 4096 for _ in range(4000)]


def free_port():
    """A port p with p + 1 also free."""
    while True:
        a, b = socket.socket(), socket.socket()
        try:
            a.bind(("127.0.0.1", 0))
            b.bind(("127.0.0.1", a.getsockname()[1] + 1))
            return a.getsockname()[1]
        except OSError:
            continue
        finally:
            a.close()
            b.close()


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")


def cpu_seconds(pid):
    if pid is None:
        return 0.0
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def is_mounted(path):
    return any(line.split()[1] == path for line in open("/proc/mounts"))


def start_nginx():
    d = os.path.join(work, "nginx")
    os.makedirs(os.path.join(d, "logs"), exist_ok=True)
    port = free_port()
    site = open(os.path.join(DEPLOY, "nginx-origin.conf")).read()
    site = site.replace("@LISTEN@", f"127.0.0.1:{port}").replace("@ROOT@", data)
    # rclone's http backend parses HTML listings only: the same root, HTML autoindex, next port.
    site += f"server {{ listen 127.0.0.1:{port + 1}; root {data}; location / {{ autoindex on; }} }}\n"
    open(os.path.join(d, "site.conf"), "w").write(site)
    conf = f"""daemon off; master_process off; worker_processes 1;
pid {d}/nginx.pid; error_log {d}/logs/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; sendfile on; client_body_temp_path {d}/t1; proxy_temp_path {d}/t2;
  fastcgi_temp_path {d}/t3; uwsgi_temp_path {d}/t4; scgi_temp_path {d}/t5; include {d}/site.conf; }}"""
    open(os.path.join(d, "nginx.conf"), "w").write(conf)
    p = subprocess.Popen(["nginx", "-c", f"{d}/nginx.conf", "-p", d])
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return p, port
        except OSError:
            time.sleep(0.02)
    raise SystemExit("nginx did not start")


def mount(cmd, mnt):
    os.makedirs(mnt, exist_ok=True)
    if is_mounted(mnt):  # left over by an interrupted run
        subprocess.run(["fusermount3", "-uz", mnt])
    log = open(mnt + ".log", "w")
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    for _ in range(1000):
        if is_mounted(mnt) and os.path.exists(os.path.join(mnt, "scan.bin")):
            return p
        time.sleep(0.02)
    raise SystemExit(f"{cmd[0]} did not mount: {open(mnt + '.log').read()}")


def unmount(p, mnt):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(20)
    except subprocess.TimeoutExpired:
        p.kill()
    if is_mounted(mnt):
        subprocess.run(["fusermount3", "-uz", mnt])


def file_reader(path):
    def read(pattern):
        fd = os.open(path, os.O_RDONLY)
        n = 0
        if pattern == "seq 1M":
            while True:
                b = os.read(fd, MIB)
                if not b:
                    break
                n += len(b)
        elif pattern == "rand 1M":
            for off in RANDOM_1M:
                n += len(os.pread(fd, MIB, off))
        else:
            for off in RANDOM_4K:
                n += len(os.pread(fd, 4096, off))
        os.close(fd)
        return n
    return read


def http_reader(port):
    def read(pattern):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        ranges = {"seq 1M": [(o, MIB) for o in range(0, SIZE, MIB)],
                  "rand 1M": [(o, MIB) for o in RANDOM_1M],
                  "rand 4K": [(o, 4096) for o in RANDOM_4K]}[pattern]
        n = 0
        for off, ln in ranges:
            c.request("GET", "/scan.bin", headers={"Range": f"bytes={off}-{off + ln - 1}"})
            n += len(c.getresponse().read())
        c.close()
        return n
    return read


def measure(read, pattern, daemon_pid):
    me0, d0, t0 = time.process_time(), cpu_seconds(daemon_pid), time.perf_counter()
    n = read(pattern)
    dt = time.perf_counter() - t0
    cpu = time.process_time() - me0 + cpu_seconds(daemon_pid) - d0
    return {"mb_s": n / dt / 1e6, "s_per_gb_cpu": cpu / (n / 1e9), "bytes": n,
            "ops_s": (len(RANDOM_4K) / dt) if pattern == "rand 4K" else None}


PATTERNS = ["seq 1M", "rand 1M", "rand 4K"]
ONLY = [c for c in os.environ.get("ONLY", "").split(",") if c]  # a subset of clients, to debug
results = {}
nginx, port = start_nginx()
try:
    def run_client(name, start):
        """start() -> (reader, daemon pid, stop callable); cold = fresh start after dropping caches."""
        if ONLY and name not in ONLY:
            return
        for pattern in PATTERNS:
            drop_caches()
            reader, pid, stop = start()
            cold = measure(reader, pattern, pid)
            hot = max((measure(reader, pattern, pid) for _ in range(3)), key=lambda r: r["mb_s"])
            stop()
            results[(name, pattern)] = {"cold": cold, "hot": hot}
            print(f"{name:12} {pattern:8} cold {cold['mb_s']:8.0f} MB/s  hot {hot['mb_s']:8.0f} MB/s", flush=True)

    run_client("direct", lambda: (file_reader(os.path.join(data, "scan.bin")), None, lambda: None))
    run_client("http", lambda: (http_reader(port), None, lambda: None))

    def roibin_fs():
        mnt, cache = os.path.join(work, "mnt-roibin"), os.path.join(work, "cache-roibin")
        shutil.rmtree(cache, ignore_errors=True)
        p = mount([ROIBIN_FS, "mount", f"http://127.0.0.1:{port}", mnt, "--cache-dir", cache,
                   "--cache-size", "4G"], mnt)
        return file_reader(os.path.join(mnt, "scan.bin")), p.pid, lambda: unmount(p, mnt)

    def rclone():
        mnt, cache = os.path.join(work, "mnt-rclone"), os.path.join(work, "cache-rclone")
        shutil.rmtree(cache, ignore_errors=True)
        p = mount(["rclone", "mount", ":http:", mnt, "--http-url", f"http://127.0.0.1:{port + 1}/",
                   "--vfs-cache-mode", "full", "--cache-dir", cache, "--vfs-cache-max-size", "4G"], mnt)
        return file_reader(os.path.join(mnt, "scan.bin")), p.pid, lambda: unmount(p, mnt)

    run_client("roibin-fs", roibin_fs)
    run_client("rclone", rclone)
finally:
    nginx.terminate()
    nginx.wait()

version = subprocess.run(["rclone", "version"], capture_output=True, text=True).stdout.split("\n")[0]
lines = [f"# roibin-fs vs {version}, direct reads and uncached HTTP",
         "",
         f"{SIZE >> 20} MiB file of random bytes behind Debian's nginx on loopback; {os.cpu_count()} cores; "
         f"cold = page cache dropped + empty cache dir; hot = the same reads again (best of 3). "
         f"Random 1 MiB: {len(RANDOM_1M)} reads; random 4 KiB: {len(RANDOM_4K)} reads.",
         "",
         "| client | pattern | cold MB/s | hot MB/s | cold CPU s/GB | hot CPU s/GB | hot 4K ops/s |",
         "|---|---|---:|---:|---:|---:|---:|"]
for (name, pattern), r in results.items():
    ops = f"{r['hot']['ops_s']:.0f}" if r["hot"]["ops_s"] else ""
    lines.append(f"| {name} | {pattern} | {r['cold']['mb_s']:.0f} | {r['hot']['mb_s']:.0f} | "
                 f"{r['cold']['s_per_gb_cpu']:.2f} | {r['hot']['s_per_gb_cpu']:.2f} | {ops} |")


def ratio(a, b, pattern, temp):
    return results[(a, pattern)][temp]["mb_s"] / results[(b, pattern)][temp]["mb_s"]


lines += ["",
          "Targets (issue 13): hot sequential ≥ 90% of direct and ≥ rclone; cold ≥ rclone; random 4 KiB hot ≥ 2× rclone.",
          "",
          f"- hot sequential: {ratio('roibin-fs', 'direct', 'seq 1M', 'hot'):.2f}× direct, "
          f"{ratio('roibin-fs', 'rclone', 'seq 1M', 'hot'):.2f}× rclone",
          f"- cold: sequential {ratio('roibin-fs', 'rclone', 'seq 1M', 'cold'):.2f}× rclone, random 1 MiB "
          f"{ratio('roibin-fs', 'rclone', 'rand 1M', 'cold'):.2f}×, random 4 KiB {ratio('roibin-fs', 'rclone', 'rand 4K', 'cold'):.2f}×",
          f"- random 4 KiB hot: {ratio('roibin-fs', 'rclone', 'rand 4K', 'hot'):.2f}× rclone"]
open(os.path.join(OUT, "fs_bench.md"), "w").write("\n".join(lines) + "\n")
json.dump({f"{k[0]} {k[1]}": v for k, v in results.items()}, open(os.path.join(OUT, "fs_bench.json"), "w"), indent=1)
print("\n".join(lines))
shutil.rmtree(work, ignore_errors=True)
