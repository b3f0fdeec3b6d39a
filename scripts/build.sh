#!/usr/bin/env bash
# Configures and builds bpfgate into build/ (or $BUILD_DIR), Release (-O2, no debug information; BUILD_TYPE=RelWithDebInfo for it).
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${BUILD_DIR:-build}"
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
