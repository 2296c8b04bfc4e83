#!/usr/bin/env bash
# Core scaling of `roibin stxm` (Itot and comh on EIGER-4M-like u32 frames stored with
# bitshuffle-LZ4, written by `roibin synth --bslz4`), one run per thread count.
#
#   benches/stxm_scaling.sh [ROIBIN] [OUT_DIR] [THREADS...]
#
# ROIBIN: the roibin command (default target/release/roibin; a bare machine runs the bundle's
# `devbundle/run`, made by benches/devbundle.sh). FRAMES (default 256) frames of 2167×2070.
# Best of REPS (default 3) per count; prints a table and writes it to OUT_DIR/stxm_scaling.md.
set -euo pipefail
roibin=${1:-target/release/roibin}
out=${2:-bench-out}
shift 2 || true
threads=("$@")
((${#threads[@]})) || threads=(1 2)
frames=${FRAMES:-256}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cols=32
rows=$((frames / cols))
$roibin synth "$work/scan.h5" --layout stxm --scan "${rows}x${cols}" --frame 2167x2070 --bslz4 >/dev/null 2>&1
# frames/s of one run: the summary's "(X frames/s"
run() {
    $roibin stxm "$work/scan.h5" --scan "${rows}x${cols}" --no-cache --out "$work/m.json" "$@" 2>&1 |
        sed -n 's/.*(\([0-9.]*\) frames\/s.*/\1/p'
}
best3() { printf '%s\n' "$@" | sort -g | tail -n 1; }
{
    echo "host: $(hostname), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), $frames frames 2167×2070 u32 bitshuffle-LZ4 ($(du -h "$work/scan.h5" | cut -f1) stored)"
    echo
    echo "| threads | Itot frames/s | speed-up | efficiency | comh frames/s | speed-up | efficiency |"
    echo "|---|---|---|---|---|---|---|"
} | tee "$out/stxm_scaling.md"
b1="" b2=""
for t in "${threads[@]}"; do
    i=$(best3 $(for _ in $(seq "${REPS:-3}"); do run --threads "$t"; done))
    c=$(best3 $(for _ in $(seq "${REPS:-3}"); do run --threads "$t" --signal comh; done))
    b1=${b1:-$i} b2=${b2:-$c}
    awk -v t="$t" -v i="$i" -v c="$c" -v b1="$b1" -v b2="$b2" 'BEGIN {
        printf "| %d | %.0f | %.2f | %.0f%% | %.0f | %.2f | %.0f%% |\n", t, i, i / b1, 100 * i / b1 / t, c, c / b2, 100 * c / b2 / t }' |
        tee -a "$out/stxm_scaling.md"
done
