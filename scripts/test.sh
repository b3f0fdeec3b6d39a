#!/usr/bin/env bash
# The test command: installs dependencies, builds, and runs every test
# (unit, BPF, integration) with ctest, then every BPF test again on Debian 12's
# stock kernel under qemu (scripts/kernel-matrix.sh: the kernel our users run,
# 6.1, whatever this host runs), and the shared-bucket tests there with 8 CPUs. Needs root: the tests load BPF programs and
# build network namespaces. Extra arguments go to the host's ctest;
# BPFGATE_KERNEL_MATRIX=off skips the qemu run (for quick local iterations;
# CI never sets it). Between the two, every libFuzzer target runs for 20 s
# (scripts/fuzz.sh: its own clang build in build-fuzz/; BPFGATE_FUZZ=off
# skips it, for the same quick iterations).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "test: run as root (sudo $0): the tests load BPF programs and create namespaces" >&2
  exit 1
fi
# Each phase's time, for CI's budget (the whole run is to stay well under 20 min).
phase_start=$SECONDS
phase() {
  echo "test: $1 took $((SECONDS - phase_start)) s"
  phase_start=$SECONDS
}
scripts/deps.sh
phase "installing dependencies"
scripts/build.sh
phase "the build"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
build="$(pwd)/build"
if [ $# -gt 0 ]; then
  (cd "$build" && ctest --output-on-failure --timeout 600 "$@")
else
  # Unit and BPF tests two at a time (each test's namespaces and pins are its
  # own; they count, they do not time); the integration tests one at a time
  # (they time traffic), but for the fleet's, which run beside them: they wait
  # on etcd and on each other far more than they compute. Their output follows.
  failed=0
  (cd "$build" && ctest --output-on-failure --timeout 600 -L 'unit|bpf' -j2) || failed=1
  fleet_log="$build/fleet-tests.log"
  fleet='^(Fleet|Etcd)[A-Za-z0-9]*\.'  # tests/integration/integration_fleet's suites
  (cd "$build" && ctest --output-on-failure --timeout 600 -L integration -R "$fleet" \
    >"$fleet_log" 2>&1) &
  fleet_pid=$!
  (cd "$build" && ctest --output-on-failure --timeout 600 -L integration -E "$fleet") || failed=1
  wait "$fleet_pid" || failed=1
  echo "test: the fleet's tests, run beside the others:"
  cat "$fleet_log"
  [ "$failed" -eq 0 ] || exit 1
fi
phase "the tests on this kernel"
if [ "${BPFGATE_FUZZ:-on}" = off ]; then
  echo "test: BPFGATE_FUZZ=off: the fuzz targets did not run" >&2
else
  scripts/fuzz.sh
  phase "the fuzz targets"
fi
if [ "${BPFGATE_KERNEL_MATRIX:-on}" = off ]; then
  echo "test: BPFGATE_KERNEL_MATRIX=off: the BPF tests did not run on Debian 12's kernel" >&2
  exit 0
fi
# With them, bpfgate beside xdp-filter through libxdp's dispatcher (XdpCoexist.*): it needs
# freplace, which the host's kernel may refuse (the host's run then says the tests are deferred
# here); BPFGATE_REQUIRE_FREPLACE=1 makes a refusal here a failure, never a skip.
# Then one namespace test per feature on real traffic (the filter carrying UDP and TCP, tc's
# mirror, a scrape of the service probes matching what was sent, socket acceleration with
# its FIONREAD refusal), chosen because they do not measure time: under TCG a guest is
# about 10x slower.
per_feature='XdpAttach\.NativeModeCarriesRealUdpAndTcp|TcTraffic\.AMirrorInterfaceReceivesTheSampledCopies|Observe\.ScrapeMatchesTheTrafficSent|AccelSockets\.AKernelWhoseFionreadMissesRedirectsIsRefusedUnlessTheOperatorSaysSo'
scripts/kernel-matrix.sh --timeout 1500 -- sh -c \
  "mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf; cd '$build' && ctest -L bpf -j2 --output-on-failure --timeout 600; bpf=\$?; BPFGATE_REQUIRE_FREPLACE=1 ctest -R '^XdpCoexist\\.' --output-on-failure --timeout 300 || exit 1; ctest -R '^($per_feature)\$' --output-on-failure --timeout 300 || exit 1; exit \$bpf"
phase "the BPF tests on Debian 12's kernel (qemu)"
# The per-source bucket shared by 8 CPUs (this host may have 2): one source
# sent from every CPU at once gets its limit once (tests/bpf/shared_bucket_test.cpp).
scripts/kernel-matrix.sh --smp 8 --timeout 600 --boot-timeout 90 -- sh -c \
  "mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf; cd '$build' && ctest -R '^SharedBucket\\.' --output-on-failure --timeout 300"
phase "the shared bucket on 8 CPUs (qemu)"
