#!/usr/bin/env bash
# Configures and builds bpfgate into build/ (or $BUILD_DIR), Release with debug info.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${BUILD_DIR:-build}"
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
