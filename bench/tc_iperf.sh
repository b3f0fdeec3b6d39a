#!/usr/bin/env bash
# Throughput of one iperf3 TCP flow through bpfgate's tc egress program vs none (issue 6):
# two network namespaces made (and removed) here, joined by a veth pair, 198.18.20.0/24, no
# default route. The sender's veth gets `bpfgate tc attach` with four classes (the flow matches
# the third: classified, counted, policed far above what veth carries) in every other run;
# the runs alternate none / tc, and the ratio is the median of each pair's ratio.
#
#   bench/run tc-iperf [--runs N] [--seconds S] [-j]      (target: tc >= 95 % of none)
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
[ -f "$REPO/bench/tc_iperf.sh" ] || REPO="@PROJECT_SOURCE_DIR@"
if [ -z "${BUILD_DIR:-}" ] && [ "$(basename "$0")" = tc_iperf ]; then
  BUILD_DIR="$(cd "$(dirname "$0")/.." && pwd)"
fi
BUILD_DIR="${BUILD_DIR:-build}"
[[ "$BUILD_DIR" == /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
BG="$BUILD_DIR/bpfgate"

runs=5 secs=3 json=0
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift ;;
    --seconds) secs="$2"; shift ;;
    -j | --json) json=1 ;;
    -h | --help)
      echo "usage: bench/run tc-iperf [--runs N] [--seconds S] [-j|--json]"
      exit 0
      ;;
    *) echo "tc-iperf: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[[ "$runs" =~ ^[0-9]+$ ]] && [ "$runs" -ge 1 ] && [ "$runs" -le 50 ] || {
  echo "tc-iperf: --runs takes 1 to 50" >&2
  exit 2
}
[[ "$secs" =~ ^[0-9]+$ ]] && [ "$secs" -ge 1 ] && [ "$secs" -le 60 ] || {
  echo "tc-iperf: --seconds takes 1 to 60" >&2
  exit 2
}
for tool in iperf3 nsenter ip; do
  command -v "$tool" >/dev/null || { echo "tc-iperf: $tool is missing (scripts/deps.sh)" >&2; exit 1; }
done
[ -x "$BG" ] || { echo "tc-iperf: no $BG (build first)" >&2; exit 1; }

NS_A=bgtcb-a NS_B=bgtcb-b IF_A=bgtcb-a0 IF_B=bgtcb-b0 IP_A=198.18.20.1 IP_B=198.18.20.2
CFG=$(mktemp /tmp/bgtcb-XXXXXX.yaml)
SRV=""
in_ns() { nsenter --net="/run/netns/$1" "${@:2}"; }
cleanup() {
  set +e
  [ -n "$SRV" ] && kill "$SRV" 2>/dev/null
  if [ -e "/run/netns/$NS_A" ] && [ -d "/sys/fs/bpf/bpfgate-tc/$IF_A" ]; then
    in_ns "$NS_A" "$BG" tc detach "$IF_A" >/dev/null 2>&1
  fi
  rm -rf "/sys/fs/bpf/bpfgate-tc/$IF_A"
  for ns in "$NS_A" "$NS_B"; do [ -e "/run/netns/$ns" ] && ip netns del "$ns"; done
  rm -f "$CFG"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
for ns in "$NS_A" "$NS_B"; do [ -e "/run/netns/$ns" ] && ip netns del "$ns"; done # a killed run's
ip netns add "$NS_A"
ip netns add "$NS_B"
ip link add "$IF_A" netns "$NS_A" type veth peer name "$IF_B" netns "$NS_B"
in_ns "$NS_A" ip addr add "$IP_A/24" dev "$IF_A"
in_ns "$NS_B" ip addr add "$IP_B/24" dev "$IF_B"
for pair in "$NS_A:$IF_A" "$NS_B:$IF_B"; do
  in_ns "${pair%%:*}" ip link set lo up
  in_ns "${pair%%:*}" ip link set "${pair#*:}" up
done
cat >"$CFG" <<EOF
interfaces: [{name: $IF_A}]
tc:
  interfaces: [$IF_A]
  classes:
    - {name: api, direction: egress, match: {protocol: tcp, sport: 8000-8099}, dscp: ef}
    - {name: dns, match: {protocol: udp, port: 53}}
    - {name: bulk, match: {protocol: tcp, dport: 5201}, rate: 400gbit, burst: 256mb}
    - {name: rest}
EOF
in_ns "$NS_B" iperf3 -s -B "$IP_B" >/dev/null 2>&1 &
SRV=$!
for _ in $(seq 50); do
  in_ns "$NS_B" ss -Hltn 'sport = :5201' | grep -q LISTEN && break
  sleep 0.1
done

one_run() { # prints Gbit/s received
  in_ns "$NS_A" timeout $((secs + 20)) iperf3 -c "$IP_B" -t "$secs" -J |
    awk -F'[:,]' '/"sum_received"/ {s = 1} s && /"bits_per_second"/ {printf "%.3f\n", $2 / 1e9; exit}'
}
none=() tc=() ratios=()
for r in $(seq "$runs"); do
  [ "$json" = 1 ] || printf '\rrun %d/%d ' "$r" "$runs" >&2
  a=$(one_run)
  in_ns "$NS_A" "$BG" tc attach "$IF_A" --config "$CFG" >/dev/null
  b=$(one_run)
  in_ns "$NS_A" "$BG" tc detach "$IF_A" >/dev/null
  [ -n "$a" ] && [ -n "$b" ] || { echo "tc-iperf: iperf3 gave no figure" >&2; exit 1; }
  none+=("$a") tc+=("$b") ratios+=("$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.4f", b / a}')")
done
[ "$json" = 1 ] || printf '\r' >&2
stat() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {printf "%s %s %s", v[1], v[int((NR + 1) / 2)], v[NR]}'; }
read -r n_min n_med n_max <<<"$(stat "${none[@]}")"
read -r t_min t_med t_max <<<"$(stat "${tc[@]}")"
read -r _ r_med _ <<<"$(stat "${ratios[@]}")"
if [ "$json" = 1 ]; then
  printf '{"name":"tc_iperf3","none_gbps":%s,"tc_gbps":%s,"ratio":%s,"runs":%s,"seconds":%s}\n' \
    "$n_med" "$t_med" "$r_med" "$runs" "$secs"
  exit 0
fi
echo "tc-iperf: one iperf3 TCP flow over veth, ${secs}s per run, $runs runs per mode, alternating"
printf '%-28s %8s %8s %8s\n' "" min median max
printf '%-28s %8s %8s %8s\n' "no tc program, Gbit/s" "$n_min" "$n_med" "$n_max"
printf '%-28s %8s %8s %8s\n' "bpfgate tc egress, Gbit/s" "$t_min" "$t_med" "$t_max"
met=$(awk -v r="$r_med" 'BEGIN {print (r >= 0.95) ? "met" : "NOT met"}')
echo "tc / none: $r_med (median of the runs' ratios; target >= 0.95: $met)"
