#!/usr/bin/env bash
# The XDP filter's own cost per frame on a real flood, against an empty XDP_DROP and the
# flood bench's oracle in the same flood, phase by phase (issue 12).
#
# `bench/run xdp` times the pipeline under BPF_PROG_TEST_RUN: one frame, in cache, on one
# CPU. On a flood the frames come from another CPU and the maps compete with the stack for
# the cache, and this host's speed drifts between runs (an empty program's run costs
# 30 ns in one minute and 55 in the next): two benches minutes apart cannot compare
# programs. Here one flood runs throughout and the programs take turns on the gateway's
# veth, each for a phase, in a rotating order, round after round, so drift reaches
# every program alike:
#   drop     an empty XDP_DROP (bpf/xdp/xdp_drop.bpf.c): the floor
#   oracle   bench/flood/oracle.bpf.c: drops exactly the flood, looking at the source only
#   bpfgate  `bpfgate attach IFACE` with its defaults (a fresh attach each phase)
#   ab       with --ab BIN: another build's `BIN attach`, the same way
#   xdp-filter  with --one-source: xdp-tools' filter denying the one source, as in bench/run
#            compare (the run time of the program attached: libxdp's dispatcher where it used one)
# Per phase: the program's run time per frame from the kernel's own counters
# (kernel.bpf_stats_enabled, on for the bench and restored after: it adds its two clock
# reads to every program alike) and the gateway CPU's busy share (the NAPI kthread is
# pinned there, nothing else runs on it). Ratios are taken within each round, then the
# median over rounds.
#
# Topology: two network namespaces made and removed here (bglv-net: the generator's,
# bglv-gw: the gateway's, 198.18.0.1/24 and 2001:db8::1/64, no default route); the
# generator (bgcmp-flood) on CPU 0 sends random sources from 198.19.0.0/16 or
# 2001:db8:8000::/33 (off the gateway's networks) into the gateway's veth, whose
# threaded NAPI runs on CPU 1 (bench/lib/netns.sh).
#
# bench/run live [--rounds N] [--phase S] ... runs it from the build directory
# (configured there as bench/live_bench). Honours BUILD_DIR.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
[ -f "$REPO/bench/live/run.sh" ] || REPO="@PROJECT_SOURCE_DIR@"
if [ -z "${BUILD_DIR:-}" ] && [ "$(basename "$0")" = live_bench ]; then
  BUILD_DIR="$(cd "$(dirname "$0")/.." && pwd)"
fi
BUILD_DIR="${BUILD_DIR:-build}"
[[ "$BUILD_DIR" == /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
BG="$BUILD_DIR/bpfgate"
FLOOD="$BUILD_DIR/bench/bgcmp-flood"
DROP_OBJ="$BUILD_DIR/bpf/xdp_drop.bpf.o"
ORACLE_OBJ="$BUILD_DIR/bpf/flood_oracle.bpf.o"
UPLINK_OBJ="$BUILD_DIR/bpf/flood_uplink.bpf.o"

rounds=5 phase=2 rate=800000 proto=udp family=4 one=0 ab="" json=0
NAPI_FIFO=0 NAPI_COALESCE_US=0
usage() {
  cat <<EOF
usage: bench/run live [--rounds N] [--phase S] [--rate PPS] [--proto udp|tcp] [--family 4|6]
                      [--one-source] [--ab BIN] [--coalesce-us N] [--napi-fifo P] [-j|--json]
  --rounds N   rounds, each every program for one phase (default $rounds; --runs N too)
  --phase S    seconds measured per phase, 1 to 30 (default $phase)
  --rate PPS   the flood's packets/s (default $rate; 0: as fast as the generator goes)
  --proto P    udp (to a closed port) or tcp (SYNs to port 80); default $proto
  --family F   4 (sources in 198.19.0.0/16) or 6 (in 2001:db8:8000::/33); default $family
  --one-source every frame from one source (198.19.0.66 or 2001:db8:8000::66), as the
               compare bench's one-source flood, in place of random ones; xdp-tools'
               xdp-filter denying that source takes turns too (its dispatcher's run time)
  --ab BIN     another bpfgate binary (another build) to take turns with this one
  --coalesce-us N  after a poll that took frames, the gateway's NAPI waits N us before the
               next (gro_flush_timeout, napi_defer_hard_irqs 1), as a NIC's interrupt
               coalescing does; default 0: a veth wakes its NAPI for every few frames
  --napi-fifo P  the gateway's NAPI kthread at SCHED_FIFO priority P (default 0: none)
  -j, --json   one JSON object per phase on stdout; the table to stderr
EOF
}
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds | --runs) rounds="${2:?}"; shift ;;
    --phase) phase="${2:?}"; shift ;;
    --rate) rate="${2:?}"; shift ;;
    --proto) proto="${2:?}"; shift ;;
    --family) family="${2:?}"; shift ;;
    --one-source) one=1 ;;
    --ab) ab="${2:?}"; shift ;;
    --coalesce-us) NAPI_COALESCE_US="${2:?}"; shift ;;
    --napi-fifo) NAPI_FIFO="${2:?}"; shift ;;
    -j | --json) json=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "live: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
bad_arg() { echo "live: $*" >&2; usage >&2; exit 2; }
[[ "$rounds" =~ ^[0-9]+$ ]] && [ "$rounds" -ge 1 ] && [ "$rounds" -le 100 ] || bad_arg "--rounds: 1 to 100"
[[ "$phase" =~ ^[0-9]+$ ]] && [ "$phase" -ge 1 ] && [ "$phase" -le 30 ] || bad_arg "--phase: 1 to 30 seconds"
# shellcheck source=bench/lib/netns.sh
. "$REPO/bench/lib/netns.sh"
napi_err=$(napi_rig_check) || bad_arg "$napi_err"
[[ "$rate" =~ ^[0-9]+$ ]] || bad_arg "--rate: packets/s"
[ "$proto" = udp ] || [ "$proto" = tcp ] || bad_arg "--proto: udp or tcp"
[ "$family" = 4 ] || [ "$family" = 6 ] || bad_arg "--family: 4 or 6"
if [ -n "$ab" ]; then
  [ -x "$ab" ] || bad_arg "--ab: no executable $ab"
  [[ "$ab" == /* ]] || ab="$PWD/$ab"
fi

log() { printf 'live: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root: it loads BPF programs and creates namespaces"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs: one for the generator, one for the gateway"
for tool in nsenter ip ethtool taskset bpftool jq flock "$BG" "$FLOOD"; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/deps.sh installs the tools; build first)"
done
for o in "$DROP_OBJ" "$ORACLE_OBJ" "$UPLINK_OBJ"; do [ -f "$o" ] || die "no $o: build first"; done

NS_NET=bglv-net NS_GW=bglv-gw
SW_GW=bglv-sgw GW_IF=bglv-gw0
GEN_CPU=0 GW_CPU=1
PIN_DIR=/sys/fs/bpf/bpfgate/$GW_IF
gw() { in_ns "$NS_GW" "$@"; }

STATS_WAS="" GEN_PID="" LOCK_FD="" XDPF_PINS_OURS=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  [ -n "$GEN_PID" ] && kill "$GEN_PID" 2>/dev/null
  if [ -e "/run/netns/$NS_GW" ] && [ -d "$PIN_DIR" ]; then gw "$BG" detach "$GW_IF" >/dev/null 2>&1; fi
  if [ "$XDPF_PINS_OURS" = 1 ]; then
    [ -e "/run/netns/$NS_GW" ] && gw xdp-filter unload "$GW_IF" >/dev/null 2>&1
    [ -d /sys/fs/bpf/xdp-filter ] && rm -rf /sys/fs/bpf/xdp-filter
  fi
  [ -d "$PIN_DIR" ] && rm -rf "$PIN_DIR"
  ns_remove_all "$NS_NET" "$NS_GW"
  [ -n "$STATS_WAS" ] && sysctl -qw kernel.bpf_stats_enabled="$STATS_WAS"
  [ "$rc" -ne 0 ] && log "failed or interrupted (exit $rc); cleaned up"
  exit "$rc"
}
exec {LOCK_FD}>/run/bglive.lock
flock -n "$LOCK_FD" || die "another live bench is running (lock /run/bglive.lock)"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if ns_any_left "$NS_NET" "$NS_GW" || [ -d "$PIN_DIR" ]; then
  log "removing leftovers of an earlier run"
  (trap - EXIT; cleanup) || true
fi
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

ip netns add "$NS_NET"
ip netns add "$NS_GW"
in_ns "$NS_NET" ip link set lo up
gw ip link set lo up
in_ns "$NS_NET" ip link add "$SW_GW" type veth peer name "$GW_IF" netns "$NS_GW"
in_ns "$NS_NET" ip link set "$SW_GW" up
gw ip addr add 198.18.0.1/24 dev "$GW_IF"
gw ip addr add 2001:db8::1/64 dev "$GW_IF" nodad
gw ip link set "$GW_IF" up
ns_expect_no_default_route "$NS_NET" "$NS_GW"
# What the gateway sends back (ICMP errors) leaves as by an uplink (bench/flood/uplink.bpf.c).
in_ns "$NS_NET" ip link set dev "$SW_GW" xdpdrv obj "$UPLINK_OBJ" sec xdp
threaded_napi "$NS_NET" "$SW_GW" "$NS_GW" "$GW_IF"
GW_MAC=$(mac_of "$NS_GW" "$GW_IF")

STATS_WAS=$(sysctl -n kernel.bpf_stats_enabled)
sysctl -qw kernel.bpf_stats_enabled=1

if [ "$family" = 4 ]; then spoof=198.19.0.0/16 dst=198.18.0.1; else spoof=2001:db8:8000::/33 dst=2001:db8::1; fi
if [ "$one" = 1 ]; then
  if [ "$family" = 4 ]; then spoof=198.19.0.66; else spoof=2001:db8:8000::66; fi
fi
dport=9
[ "$proto" = tcp ] && dport=80
modes=(drop oracle bpfgate)
[ -n "$ab" ] && modes+=(ab)
if [ "$one" = 1 ]; then
  command -v xdp-filter >/dev/null || die "xdp-filter not found (scripts/deps.sh installs xdp-tools)"
  # xdp-filter keeps one set of maps per host, pinned there: someone else's would be shared.
  [ -d /sys/fs/bpf/xdp-filter ] && die "xdp-filter is in use on this host (/sys/fs/bpf/xdp-filter)"
  XDPF_PINS_OURS=1
  modes+=(xdp-filter)
fi
secs=$((rounds * ${#modes[@]} * (phase + 3) + 10))
taskset -c "$GEN_CPU" nsenter --net="/run/netns/$NS_NET" "$FLOOD" -i "$SW_GW" --dst-mac "$GW_MAC" \
  --proto "$proto" --src "$spoof" --dst "$dst" --dport "$dport" --rate "$rate" -n 4000000000 \
  --duration "$secs" -j >/dev/null 2>&1 &
GEN_PID=$!

prog_name() {
  case "$1" in
    drop) echo bg_xdp_drop ;;
    oracle) echo flood_oracle ;;
    xdp-filter) echo "" ;; # libxdp names it by its features: the program attached
    *) echo bg_xdp_filter ;;
  esac
}
attach() {
  case "$1" in
    drop) gw ip link set dev "$GW_IF" xdpdrv obj "$DROP_OBJ" sec xdp ;;
    oracle) gw ip link set dev "$GW_IF" xdpdrv obj "$ORACLE_OBJ" sec xdp ;;
    bpfgate) gw "$BG" attach "$GW_IF" >/dev/null 2>&1 ;;
    ab) gw "$ab" attach "$GW_IF" >/dev/null 2>&1 ;;
    xdp-filter)
      gw xdp-filter load -m native -f ipv4,ipv6 "$GW_IF" >/dev/null 2>&1 &&
        gw xdp-filter ip -m src "$spoof" >/dev/null
      ;;
  esac
}
detach() {
  case "$1" in
    drop | oracle) gw ip link set dev "$GW_IF" xdpdrv off ;;
    bpfgate) gw "$BG" detach "$GW_IF" >/dev/null 2>&1 ;;
    ab) gw "$ab" detach "$GW_IF" >/dev/null 2>&1 ;;
    xdp-filter) gw xdp-filter unload "$GW_IF" >/dev/null 2>&1 ;;
  esac
}
prog_stats() {  # program name -> "run_time_ns run_cnt" of the newest program of that name
  # (""): of the program attached to the gateway's veth (libxdp's dispatcher, if it used one)
  local id=-1
  [ -z "$1" ] && id=$(gw ip -j -d link show dev "$GW_IF" | jq '.[0].xdp.prog.id // -1')
  bpftool prog show -j | jq -r --arg n "$1" --argjson id "$id" \
    '[.[] | select(if $id >= 0 then .id == $id else .name == $n end)] | max_by(.id)
     | "\(.run_time_ns // 0) \(.run_cnt // 0)"'
}
cpu_ticks() {  # the gateway CPU's "busy total" ticks
  awk -v c="cpu$GW_CPU" '$1 == c {b = $2 + $3 + $4 + $7 + $8; print b, b + $5 + $6}' /proc/stat
}

log "$rounds round(s) x ${#modes[@]} programs (${modes[*]}), ${phase}s phases; flood: IPv$family $proto from $spoof at ${rate} pps; $(napi_rig_desc)"
RAW=$(mktemp /tmp/bglive.XXXXXX)
for r in $(seq 1 "$rounds"); do
  # A rotating order: each program follows each other one across the rounds.
  n=${#modes[@]}
  for k in $(seq 0 $((n - 1))); do
    m=${modes[$(((k + r - 1) % n))]}
    attach "$m" || die "cannot attach $m"
    pin_napi_of "$GW_IF" "$GW_CPU" -10
    sleep 0.5 # the program's first frames, and for bpfgate its tables filling
    read -r t0 c0 <<<"$(prog_stats "$(prog_name "$m")")"
    read -r b0 a0 <<<"$(cpu_ticks)"
    w0=$(date +%s%N)
    sleep "$phase"
    read -r t1 c1 <<<"$(prog_stats "$(prog_name "$m")")"
    read -r b1 a1 <<<"$(cpu_ticks)"
    w1=$(date +%s%N)
    detach "$m"
    kill -0 "$GEN_PID" 2>/dev/null || die "the generator stopped"
    frames=$((c1 - c0))
    [ "$frames" -gt 0 ] || die "$m ran on no frame in round $r"
    line=$(jq -n -c --arg m "$m" --argjson r "$r" --argjson f "$frames" --argjson t "$((t1 - t0))" \
      --argjson b "$((b1 - b0))" --argjson a "$((a1 - a0))" --argjson ns "$((w1 - w0))" \
      '{round: $r, mode: $m, frames: $f, pps: ($f * 1e9 / $ns | floor), ns_per_frame: ($t / $f * 10 | round / 10),
        cpu_busy_pct: (if $a > 0 then ($b * 1000 / $a | round / 10) else null end)}')
    echo "$line" >>"$RAW"
    [ "$json" = 1 ] && echo "$line"
    log "round $r $(printf '%-8s' "$m") $(jq -r '"\(.ns_per_frame) ns/frame, \(.frames) frames, gateway CPU \(.cpu_busy_pct) % busy"' <<<"$line")"
  done
done

# Medians over rounds, and each program's ratio to the floor and to the oracle within
# its round.
jq -s -r --argjson rounds "$rounds" '
  def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
              else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def r1: . * 100 | round / 100;
  (group_by(.round) | map(INDEX(.mode))) as $by_round
  | (map(.mode) | unique) as $modes
  | "| program | ns per frame, median [min-max] | / floor | / oracle | gateway CPU busy % | frames/s |",
    "|---|---:|---:|---:|---:|---:|",
    ($modes | sort_by({drop: 0, oracle: 1, bpfgate: 2, ab: 3, "xdp-filter": 4}[.]) | .[] as $m
     | [$by_round[] | .[$m]] as $x
     | "| \($m) | \($x | map(.ns_per_frame) | median | r1) [\($x | map(.ns_per_frame) | min)-\($x | map(.ns_per_frame) | max)]"
       + " | x\([$by_round[] | .[$m].ns_per_frame / .drop.ns_per_frame] | median | r1)"
       + " | x\([$by_round[] | .[$m].ns_per_frame / .oracle.ns_per_frame] | median | r1)"
       + " | \($x | map(.cpu_busy_pct) | median) | \($x | map(.pps) | median) |")
' "$RAW" >&2
rm -f "$RAW"
