#!/usr/bin/env bash
# Installs what bpfgate needs to build, test, run the demo and the benchmarks
# on Debian 12. Idempotent: installs only what is missing.
set -euo pipefail

PACKAGES=(
  # build
  cmake ninja-build g++ pkg-config clang-19 llvm-19 clang-format libbpf-dev bpftool libelf-dev
  zlib1g-dev libcli11-dev nlohmann-json3-dev libfmt-dev libyaml-cpp-dev libgtest-dev libgmock-dev
  libbenchmark-dev libcpp-httplib-dev libnl-route-3-dev libxdp-dev libseccomp-dev
  # the fleet's etcd client (etcd's v3 JSON gateway over HTTP); etcd itself for its tests
  libcurl4-openssl-dev etcd-server etcd-client openssl
  # libFuzzer and the sanitizers' runtimes for clang-19 (scripts/fuzz.sh)
  libclang-rt-19-dev
  # tests, demo and benchmarks: namespaces, real servers and clients, the alternatives
  iproute2 ethtool iputils-ping curl nginx-light wrk iperf3 iptables nftables xdp-tools
  gnuplot-nox procps util-linux jq
  # systemd-analyze, which scores the exposure of deploy/bpfgate.service
  systemd
  # the Debian package (cpack): dpkg-shlibdeps computes its Depends, from what `file` finds ELF
  dpkg-dev file
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing packages: ${missing[*]}; run as root (sudo) to install them" >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts nginx on install where systemd runs; the demo and tests start their own.
if command -v systemctl >/dev/null && systemctl is-active --quiet nginx 2>/dev/null; then
  systemctl stop nginx || true
fi
# promtool, for the alert rules' test (tests/unit/deploy/alert_rules_test.cpp), taken from
# Debian's prometheus package unpacked, not installed: installing it would start a server.
if ! command -v promtool >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: promtool is missing; run as root (sudo) to unpack it from Debian's prometheus" >&2
    exit 1
  fi
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  if ! (cd "$tmp" && apt-get download -q prometheus >/dev/null 2>&1); then
    apt-get update -q >/dev/null
    (cd "$tmp" && apt-get download -q prometheus >/dev/null 2>&1)
  fi
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
  install -m 0755 "$tmp/root/usr/bin/promtool" /usr/local/bin/promtool
  echo "deps: promtool unpacked from Debian's prometheus into /usr/local/bin"
fi
