#!/usr/bin/env bash
# The test command: installs dependencies, builds, and runs every test
# (unit, BPF, integration) with ctest, and every BPF test again on Debian 12's
# stock kernel under qemu (scripts/kernel-matrix.sh: the kernel our users run,
# 6.1, whatever this host runs) beside the integration tests, and the
# shared-bucket tests there with 8 CPUs. Needs root: the tests load BPF
# programs and build network namespaces. Extra arguments go to the host's ctest
# (the qemu runs then follow it); BPFGATE_KERNEL_MATRIX=off skips the qemu runs
# (for quick local iterations; CI never sets it). After the integration tests,
# every libFuzzer target runs for 20 s (scripts/fuzz.sh: its own clang build in
# build-fuzz/; BPFGATE_FUZZ=off skips it, for the same quick iterations).
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

# Every BPF test again on Debian 12's kernel under qemu, then the per-source
# bucket shared by 8 CPUs (this host may have 2): one source sent from every
# CPU at once gets its limit once (tests/bpf/shared_bucket_test.cpp). With the
# BPF tests, bpfgate beside xdp-filter through libxdp's dispatcher
# (XdpCoexist.*): it needs freplace, which the host's kernel may refuse (the
# host's run then says the tests are deferred here); BPFGATE_REQUIRE_FREPLACE=1
# makes a refusal here a failure, never a skip. Then one namespace test per
# feature on real traffic (the filter carrying UDP and TCP, tc's mirror, a
# scrape of the service probes matching what was sent, socket acceleration with
# its FIONREAD refusal), chosen because they do not measure time: under TCG a
# guest is about 10x slower.
per_feature='XdpAttach\.NativeModeCarriesRealUdpAndTcp|TcTraffic\.AMirrorInterfaceReceivesTheSampledCopies|Observe\.ScrapeMatchesTheTrafficSent|AccelSockets\.AKernelWhoseFionreadMissesRedirectsIsRefusedUnlessTheOperatorSaysSo'
kernel_matrix() {
  local t0=$SECONDS
  scripts/kernel-matrix.sh --timeout 1500 -- sh -c \
    "mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf; cd '$build' && ctest -L bpf -j2 --output-on-failure --timeout 600; bpf=\$?; BPFGATE_REQUIRE_FREPLACE=1 ctest -R '^XdpCoexist\\.' --output-on-failure --timeout 300 || exit 1; ctest -R '^($per_feature)\$' --output-on-failure --timeout 300 || exit 1; exit \$bpf" || return 1
  echo "test: the BPF tests on Debian 12's kernel (qemu) took $((SECONDS - t0)) s"
  t0=$SECONDS
  scripts/kernel-matrix.sh --smp 8 --timeout 900 --boot-timeout 300 -- sh -c \
    "mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf; cd '$build' && ctest -R '^SharedBucket\\.' --output-on-failure --timeout 300" || return 1
  echo "test: the shared bucket on 8 CPUs (qemu) took $((SECONDS - t0)) s"
}
matrix=on
if [ "${BPFGATE_KERNEL_MATRIX:-on}" = off ]; then
  matrix=off
  echo "test: BPFGATE_KERNEL_MATRIX=off: the BPF tests will not run on Debian 12's kernel" >&2
fi

if [ $# -gt 0 ]; then
  (cd "$build" && ctest --output-on-failure --timeout 600 "$@")
  phase "the tests on this kernel"
  if [ "$matrix" = on ]; then
    kernel_matrix
    phase "Debian 12's kernel (qemu)"
  fi
  exit 0
fi

# Unit and BPF tests two at a time (each test's namespaces and pins are its
# own; they count, they do not time). Then the integration tests one at a time
# (they time traffic), and beside them the fleet's (they wait on etcd and on
# each other far more than they compute) and the qemu runs above at idle CPU
# priority (SCHED_IDLE: the guest gets only the CPU time the integration tests
# leave, which is most of it, and gives it back the moment they want it; its
# tests measure no time). The outputs of both follow the integration tests'.
failed=0
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT  # a run cut short leaves no guest behind
(cd "$build" && ctest --output-on-failure --timeout 600 -L 'unit|bpf' -j2) || failed=1
phase "the unit and BPF tests"
matrix_log="$build/kernel-matrix.log"
if [ "$matrix" = on ]; then
  (chrt --idle --pid 0 "$BASHPID" && kernel_matrix) >"$matrix_log" 2>&1 &
  matrix_pid=$!
fi
fleet_log="$build/fleet-tests.log"
fleet='^(Fleet|Etcd)[A-Za-z0-9]*\.'  # tests/integration/integration_fleet's suites
(cd "$build" && ctest --output-on-failure --timeout 600 -L integration -R "$fleet" \
  >"$fleet_log" 2>&1) &
fleet_pid=$!
(cd "$build" && ctest --output-on-failure --timeout 600 -L integration -E "$fleet") || failed=1
wait "$fleet_pid" || failed=1
echo "test: the fleet's tests, run beside the others:"
cat "$fleet_log"
phase "the integration tests"
if [ "${BPFGATE_FUZZ:-on}" = off ]; then
  echo "test: BPFGATE_FUZZ=off: the fuzz targets did not run" >&2
else
  scripts/fuzz.sh || failed=1
  phase "the fuzz targets"
fi
if [ "$matrix" = on ]; then
  wait "$matrix_pid" || failed=1
  echo "test: Debian 12's kernel under qemu, run beside the integration tests:"
  cat "$matrix_log"
  phase "waiting for Debian 12's kernel (qemu)"
fi
[ "$failed" -eq 0 ]
