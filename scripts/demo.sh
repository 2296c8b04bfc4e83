#!/usr/bin/env bash
# The main job on built-in sample data: synthesise Eiger-4M-like frames (u16, u32, f32),
# compress them with the auto/fast/strong graphs, read everything back through libhdf5 and
# check it is bit-exact; then the ROIBIN graph on JUNGFRAU-like frames against plain sz, with
# the science check (peaks kept) and pictures; then open one result from h5py through the plugin.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --workspace --exclude roibin-benches
./target/release/roibin demo --out demo-out --frames "${FRAMES:-8}"
HDF5_PLUGIN_PATH="$PWD/target/release" python3 - <<'PY'
import h5py
with h5py.File("demo-out/eiger_u16_strong.h5") as f:
    d = f["/entry/data/data"]
    print("h5py %s (HDF5 %s) reads %s %s through filter %s: sum of frame 0 = %d"
          % (h5py.version.version, h5py.version.hdf5_version, d.shape, d.dtype, list(d._filters), d[0].sum()))
PY
