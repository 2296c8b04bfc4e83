#!/usr/bin/env bash
# Task scaling of `roibin compress` and tuned vs default allocation, on this machine.
#
#   benches/scaling.sh [ROIBIN] [OUT_DIR] [TASKS...]
#
# ROIBIN: the roibin command (default target/release/roibin; a bare machine runs the bundle's
# `devbundle/run`, see docs/tuning.md). For each task count, JUNGFRAU-like calibrated frames
# (64 × 8×512×1024 f32) are compressed with the ROIBIN graph and, as a read-bound contrast,
# Eiger-like u16 counts with bitshuffle|lz4; every stage's threads stay 0 (they run in the
# tasks' pool, so N tasks use N workers). Median of 3 runs; prints a table and writes it to
# OUT_DIR/scaling.md. Then `roibin autotune` (budget $TUNE_BUDGET s) and tuned vs default.
set -euo pipefail
roibin=${1:-target/release/roibin}
out=${2:-bench-out}
shift 2 || true
tasks=("$@")
((${#tasks[@]})) || tasks=(1 2)
frames=${FRAMES:-64}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

$roibin synth --layout jungfrau --frames "$frames" "$work/jf.h5" >/dev/null 2>&1
$roibin synth --frames "$frames" "$work/eiger.h5" >/dev/null 2>&1
spec="roibin(peaks=pf8(mask=\"$work/jf.mask.npy\",radius=\"$work/jf.radius.npy\"),exact_above=250,background=bin(2,2)|sz(abs=90))"

# seconds of one compress run (the summary's "in X s")
run() {
    rm -f "$work/o.h5"
    $roibin compress "$@" "$work/o.h5" 2>&1 | sed -n 's/.* in \([0-9.]*\) s: .*/\1/p'
}
median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }

{
    echo "host: $(hostname), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), $frames frames"
    echo
    echo "| tasks | roibin s | roibin MB/s | speed-up | efficiency | bslz4 u16 s | bslz4 MB/s | speed-up |"
    echo "|---|---|---|---|---|---|---|---|"
} | tee "$out/scaling.md"
jf_mb=$(( frames * 8 * 512 * 1024 * 4 / 1000000 ))
e_mb=$(( frames * 2167 * 2070 * 2 / 1000000 ))
base_r="" base_e=""
for t in "${tasks[@]}"; do
    r=$(median3 $(for _ in 1 2 3; do run "$work/jf.h5:/entry_1/data_1/data" --spec "$spec" --tasks "$t"; done))
    e=$(median3 $(for _ in 1 2 3; do run "$work/eiger.h5:/entry/data/data" --spec "bitshuffle|lz4" --tasks "$t"; done))
    base_r=${base_r:-$r} base_e=${base_e:-$e}
    awk -v t="$t" -v r="$r" -v e="$e" -v br="$base_r" -v be="$base_e" -v jm="$jf_mb" -v em="$e_mb" 'BEGIN {
        printf "| %d | %.2f | %.0f | %.2f | %.0f%% | %.2f | %.0f | %.2f |\n",
            t, r, jm / r, br / r, 100 * br / r / t, e, em / e, be / e }' | tee -a "$out/scaling.md"
done

if [[ -n "${TUNE_BUDGET:-}" ]]; then
    echo | tee -a "$out/scaling.md"
    $roibin autotune "$work/jf.h5:/entry_1/data_1/data" --spec "$spec" --frames 32 \
        --budget "$TUNE_BUDGET" -o "$work/tune.json" --json > "$out/autotune.json" 2> "$out/autotune.log"
    tail -n 5 "$out/autotune.log" | tee -a "$out/scaling.md"
    d=$(median3 $(for _ in 1 2 3; do run "$work/jf.h5:/entry_1/data_1/data" --spec "$spec"; done))
    tu=$(median3 $(for _ in 1 2 3; do run "$work/jf.h5:/entry_1/data_1/data" --spec "$spec" --tuning "$work/tune.json"; done))
    awk -v d="$d" -v t="$tu" 'BEGIN { printf "compress, whole file: default %.2f s, tuned %.2f s: %.2f×\n", d, t, d / t }' |
        tee -a "$out/scaling.md"
fi
