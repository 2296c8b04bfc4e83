#!/usr/bin/env bash
# Every test: unit and property tests, golden files, and the end-to-end tests through h5py,
# h5repack, h5dump and the roibin tools (each client in its own process).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all --check
cargo build --release --workspace --exclude roibin-benches
cargo clippy --release --workspace --all-targets -- -D warnings
cargo test --release --workspace --exclude roibin-benches
