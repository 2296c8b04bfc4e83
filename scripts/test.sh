#!/usr/bin/env bash
# Every test: unit and property tests, golden files, and the end-to-end tests through h5py,
# h5repack, h5dump and the roibin tools (each client in its own process).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --mpi
cargo fmt --all --check
# The tools with MPI (`mpirun -n N roibin compress|autotune`); without a launcher they run as
# one process, as the default build does. The default build must still compile.
features=(--features roibin-tools/mpi)
cargo check --release -p roibin-tools
cargo build --release --workspace --exclude roibin-benches "${features[@]}"
# The Python package, installed as users install it (maturin builds it and bundles the
# plugin), before the tests: the README's h5py example imports it.
pip=(python3 -m pip install -q --disable-pip-version-check --force-reinstall --no-deps ./python)
"${pip[@]}" 2>/dev/null || "${pip[@]}" --break-system-packages
cargo clippy --release --workspace --all-targets "${features[@]}" -- -D warnings
log=$(mktemp)
cargo test --release --workspace --exclude roibin-benches "${features[@]}" 2>&1 | tee "$log"
# The Python package's tests and docs/python.md's examples, with no HDF5_PLUGIN_PATH: `import
# roibin` registers the filter. Run from /tmp so the source folder does not shadow the install.
(cd /tmp && env -u HDF5_PLUGIN_PATH python3 -m pytest -q -p no:cacheprovider \
    --doctest-glob=python.md -o doctest_optionflags=ELLIPSIS \
    "$OLDPWD/python/tests" "$OLDPWD/docs/python.md") 2>&1 | tee -a "$log"
# One closing line for the whole run (cargo's last line is that of the last doc-test crate).
# pytest's last line ("71 passed, 1 failed in 3.2s") counts too.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;/) p += $i; if ($(i+1) ~ /^failed;/) f += $i } }
     /^(=+ )?[0-9]+ (passed|failed)/ && / in [0-9.]+s/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
