#!/usr/bin/env bash
# Tuned vs default allocation for several specs and data (the OptZConfig paper saw a median
# +8.6%): `roibin autotune` per case, budget $BUDGET s (default 60), then the tuned and default
# allocations re-measured interleaved (autotune's own confirmation, median of 5 each).
#
#   benches/autotune_gain.sh [ROIBIN] [OUT_DIR]
set -euo pipefail
roibin=${1:-target/release/roibin}
out=${2:-bench-out}
budget=${BUDGET:-60}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
$roibin synth --layout jungfrau --frames 32 "$work/jf.h5" >/dev/null 2>&1
$roibin synth --frames 32 "$work/eiger.h5" >/dev/null 2>&1
jf="$work/jf.h5:/entry_1/data_1/data"
eiger="$work/eiger.h5:/entry/data/data"
finder="pf8(mask=\"$work/jf.mask.npy\",radius=\"$work/jf.radius.npy\")"
cases=(
    "jungfrau f32|$jf|roibin(peaks=$finder,exact_above=250,background=bin(2,2)|sz(abs=90))"
    "jungfrau f32|$jf|sz(abs=90)"
    "jungfrau f32|$jf|zfp(accuracy=45)"
    "jungfrau f32|$jf|shuffle|zstd(3)"
    "eiger u16|$eiger|bitshuffle|lz4"
    "eiger u16|$eiger|roibin(background=bin(2,2)|sz(abs=1))"
)
{
    echo "host: $(hostname), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), budget ${budget} s per case"
    echo
    echo "| data | spec | evaluated | default ms/frame | tuned ms/frame | tuned vs default | best allocation |"
    echo "|---|---|---|---|---|---|---|"
} | tee "$out/autotune_gain.md"
for c in "${cases[@]}"; do
    IFS='|' read -r data input spec <<<"$c"
    spec=${c#"$data|$input|"}
    $roibin autotune "$input" --spec "$spec" --frames 32 --budget "$budget" \
        -o "$work/tune.json" --json 2>"$work/log" >"$work/r.json"
    python3 - "$work/r.json" "$data" "$spec" <<'EOF' | tee -a "$out/autotune_gain.md"
import json, sys
r = json.load(open(sys.argv[1]))
spec = sys.argv[3]
if "mask=" in spec:  # the finder's sidecar paths are temporary: elide them
    spec = spec[:spec.find("mask=")] + "…" + spec[spec.find(")", spec.find("mask=")):]
spec = spec.replace("|", "\\|")
print("| %s | `%s` | %d of %d | %.2f | %.2f | %.3f× | %s |" % (
    sys.argv[2], spec, r["evaluations"], r["lattice"], r["default_secs_per_frame"] * 1e3,
    r["best_secs_per_frame"] * 1e3, r["speedup"], r["best"]))
EOF
done
