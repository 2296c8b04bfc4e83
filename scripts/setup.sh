#!/usr/bin/env bash
# Install what roibin needs on a Debian 12 machine (run as root): libhdf5 (1.10) and its
# command-line tools for the plugin tests, and h5py (its wheel bundles HDF5 2.x), hdf5plugin
# and numpy for the cross-client tests and the side-by-side benchmark.
set -euo pipefail

if ! command -v cargo >/dev/null; then
    echo "cargo not found: install Rust (https://rustup.rs) first" >&2
    exit 1
fi

# `--mpi` (the tests): also OpenMPI and libclang, for the `mpi` cargo feature (rsmpi generates
# its bindings with bindgen) and the multi-rank tests, Chromium with its driver for the web
# page's browser test (Selenium from PyPI drives it), fuse3 and nginx for roibin-fs, and DIALS.
pkgs=(libhdf5-dev hdf5-tools pkg-config)
if [[ "${1:-}" == "--mpi" ]]; then
    pkgs+=(openmpi-bin libopenmpi-dev libclang-dev chromium chromium-driver)
    # roibin-fs: real FUSE mounts (fusermount3), Debian's nginx as origin and proxy tier.
    pkgs+=(fuse3 nginx)
    # DIALS (Debian's 3.12, about 3.5 minutes to install) reads NXmx files of filter 443.
    pkgs+=(dials)
fi
need_apt=()
for pkg in "${pkgs[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! python3 -c 'import h5py, hdf5plugin, numpy, pytest' 2>/dev/null; then
    pip=(python3 -m pip install -q --disable-pip-version-check "h5py>=3.16" hdf5plugin numpy pytest)
    # Debian's own python3 refuses system-wide pip installs (PEP 668); say that we mean it.
    "${pip[@]}" 2>/dev/null || "${pip[@]}" --break-system-packages
fi
# The tests also drive the page with Selenium, compare `roibin serve`'s data API with the
# real h5grove (FastAPI adapter, served by uvicorn) and `roibin stxm`'s radial profiles with
# pyFAI's integrate1d.
if [[ "${1:-}" == "--mpi" ]] && ! python3 -c 'import selenium, h5grove, fastapi, uvicorn, pydantic_settings, pyFAI' 2>/dev/null; then
    pip=(python3 -m pip install -q --disable-pip-version-check selenium "h5grove[fastapi]==4.0.0" uvicorn pydantic-settings "pyFAI==2026.9.0")
    "${pip[@]}" 2>/dev/null || "${pip[@]}" --break-system-packages
fi
# `--bench`: pyFAI (the anchor of the STXM benchmark's radial row) and matplotlib (the
# benchmarks' charts).
if [[ "${1:-}" == "--bench" ]] && ! python3 -c 'import pyFAI, matplotlib' 2>/dev/null; then
    pip=(python3 -m pip install -q --disable-pip-version-check "pyFAI==2026.9.0" matplotlib)
    "${pip[@]}" 2>/dev/null || "${pip[@]}" --break-system-packages
fi
python3 -c 'import h5py, hdf5plugin; print("h5py", h5py.version.version, "HDF5", h5py.version.hdf5_version, "hdf5plugin", hdf5plugin.version)'
