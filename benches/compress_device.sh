#!/usr/bin/env bash
# `roibin compress` of JUNGFRAU-like frames with the ROIBIN spec on one pinned core against 16
# and 8 tasks, interleaved, each round in turn; the output's md5 shows the bytes do not depend
# on the task count. For the bare 16-core device: make the bundle with benches/devbundle.sh
# and carry `devbundle` (docs/tuning.md).
#
#   benches/compress_device.sh [ROUNDS] [FRAMES]     (ROIBIN=target/release/roibin to run here)
set -euo pipefail
roibin=${ROIBIN:-devbundle/run}
rounds=${1:-3}
frames=${2:-128}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
$roibin synth --layout jungfrau --frames "$frames" "$work/jf.h5" >/dev/null 2>&1
# PF8: extra pf8 options (",sample=8" for sampled radial statistics).
spec="roibin(peaks=pf8(mask=\"$work/jf.mask.npy\",radius=\"$work/jf.radius.npy\"${PF8:-}),exact_above=250,background=bin(2,2)|sz(abs=90))"
echo "# $(nproc) cores, pf8 options: ${PF8:-(none)},$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(date -u +%FT%H:%MZ), $frames frames"
# Round, label, tasks, then what runs `roibin` (a pinning), if anything: prints the summary's
# "in S s: R MB/s" and the output's md5 (PIN: the core of the one-core runs, default 3).
run() {
    local round=$1 label=$2 tasks=$3
    shift 3
    rm -f "$work/o.h5"
    local took
    took=$("$@" $roibin compress "$work/jf.h5:/entry_1/data_1/data" "$work/o.h5" --spec "$spec" \
        --tasks "$tasks" 2>&1 | grep -o 'in [0-9.]* s: [0-9]* MB/s' | tail -n 1)
    echo "$round $label $took $(md5sum <"$work/o.h5" | cut -c1-8)"
}
for r in $(seq "$rounds"); do
    run "$r" one-core 1 taskset -c "${PIN:-3}"
    run "$r" tasks=16 16
    run "$r" tasks=8 8
done
