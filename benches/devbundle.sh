#!/usr/bin/env bash
# Make `devbundle/`: a `roibin` (without MPI, debug info stripped) with the loader and every
# library `ldd` lists, and `devbundle/run` that starts it with them, so a bare machine of
# another image (the 16-core device) runs this Debian 12 build; `devbundle/memory_passes`
# starts the streaming-pass probe (compressors/examples/memory_passes.rs) the same way. Built in target/devbundle so
# target/release (the MPI build the tests use) stays as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_TARGET_DIR=target/devbundle cargo build --release -p roibin-tools
CARGO_TARGET_DIR=target/devbundle cargo build --release -p roibin-compressors --example memory_passes
rm -rf devbundle && mkdir -p devbundle/lib
strip --strip-debug -o devbundle/roibin target/devbundle/release/roibin
strip --strip-debug -o devbundle/memory_passes.bin target/devbundle/release/examples/memory_passes
ldd devbundle/roibin | awk '/=> \// { print $3 }' | xargs -I{} cp -L {} devbundle/lib/
cp -L /lib64/ld-linux-x86-64.so.2 devbundle/
cat > devbundle/run <<'RUN'
#!/bin/sh
d=$(cd "$(dirname "$0")" && pwd)
exec "$d/ld-linux-x86-64.so.2" --library-path "$d/lib" "$d/roibin" "$@"
RUN
sed 's|/roibin"|/memory_passes.bin"|' devbundle/run > devbundle/memory_passes
chmod +x devbundle/run devbundle/memory_passes
du -sh devbundle
