#!/usr/bin/env bash
# The test command: installs dependencies, builds, and runs every test
# (unit, BPF, integration) with ctest. Needs root: the tests load BPF programs
# and build network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "test: run as root (sudo $0): the tests load BPF programs and create namespaces" >&2
  exit 1
fi
scripts/deps.sh
scripts/build.sh
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
cd build
ctest --output-on-failure --timeout 600 "$@"
