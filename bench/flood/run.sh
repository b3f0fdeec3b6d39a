#!/usr/bin/env bash
# Legitimate clients under spoofed floods: bpfgate against an oracle, in the same run
# (issue 12, item 1).
#
# One gateway, two legitimate clients, a newcomer and an attacker, in network namespaces
# made (and removed) here; 198.18.0.0/15 and 2001:db8::/32 only; no default route:
#
#   bgfl-gw   gateway: nginx on 198.18.0.1 and 2001:db8::1, port 80, tcp_syncookies=2
#   bgfl-cka  client `keep`: wrk, keeps its connections (198.18.0.10, 2001:db8::10)
#   bgfl-ccl  client `new`: wrk with "Connection: close", a new connection per request
#             (198.18.0.11, 2001:db8::11)
#   bgfl-new  the newcomer: one curl per phase from an address used in no other phase
#             (198.18.0.100-249, 2001:db8::1:0-149)
#   bgfl-net  the upstream network: a bridge to every namespace above, and the
#             attacker, whose generator (bgcmp-flood, the comparison's XDP live-frames
#             generator) sends straight into the gateway's link
#
# Scenarios: {IPv4, IPv6} x {UDP flood to a closed port, TCP SYN flood to port 80}, from
# random spoofed sources (198.19.0.0/16, 2001:db8:8000::/33: off the gateway's link, so
# its replies have no route), as fast as the generator goes; the clients use the flood's
# family. Every round runs each scenario in three modes, one after another (the order
# of the last two alternates between rounds):
#   none     no flood, no filter: the reference of the clients' rates
#   oracle   the flood, and an XDP program that drops exactly it (bench/flood/oracle.bpf.c:
#            passes only the clients' network): what a perfect filter leaves the clients
#   bpfgate  the flood, and `bpfgate attach IFACE` with its defaults, as an operator would
# A phase: both clients start; 0.6 s later, with the clients' sources proven, bpfgate's
# maps are read and the flood starts; after a lead of 1 s the measured window opens and
# the newcomer sends its first request (curl, the kernel's own SYN retries, capped at the
# window); the window closes, the flood stops and the maps are read again. A client's
# rate is what nginx served it within the window (its access log, by source address and
# time); its failed requests are wrk's errors (connect, read, write, timeout, non-2xx)
# over its whole run. share = bpfgate / oracle, per round, then the median.
# After the rounds, one long phase (--bound-seconds, IPv6 UDP flood, bpfgate) floods for
# longer than new sources take to fill the per-source table: it must stay at its bound,
# and the clients' proven (known) entries must stay.
#
# The gateway's veth has GRO on and threaded NAPI, the NAPI kthread is pinned to CPU 1
# with nginx; the generator and the clients run on CPU 0 (see /work/shared/BENCH-NOTES.md
# and bench/compare/run.sh). On veth the ring in front of any XDP program drops the
# clients' frames with the flood's, whatever the program decides: hence the oracle.
# That ring has 256 slots, 0.3 ms of a 0.8 Mpps flood: a NAPI kthread that takes turns
# with nginx as an ordinary task lets it overflow whenever nginx runs longer, and each
# client SYN lost so costs a second (the oracle's own connection-per-request client lost
# 30-50 % of its rate that way, bench/RESULTS.md). So the kthread runs at SCHED_FIFO
# priority 10 (--napi-fifo), above nginx, as a NIC's receive softirq runs above the
# tasks it interrupts and a NIC's ring of 1,024-4,096 slots rides out a busy moment;
# --napi-fifo 0 gives the old rig.
#
# bench/run flood [--quick] [--rounds N] ... runs it from the build directory
# (configured there as bench/flood_bench). Honours BUILD_DIR.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
[ -f "$REPO/bench/flood/run.sh" ] || REPO="@PROJECT_SOURCE_DIR@"
if [ -z "${BUILD_DIR:-}" ] && [ "$(basename "$0")" = flood_bench ]; then
  BUILD_DIR="$(cd "$(dirname "$0")/.." && pwd)"
fi
BUILD_DIR="${BUILD_DIR:-build}"
[[ "$BUILD_DIR" == /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
BG="$BUILD_DIR/bpfgate"
FLOOD="$BUILD_DIR/bench/bgcmp-flood"
MAPSTAT="$BUILD_DIR/bench/bgcmp-mapstat"
ORACLE_OBJ="$BUILD_DIR/bpf/flood_oracle.bpf.o"

# ---- options ------------------------------------------------------------------------------
rounds=5 window=4 lead=1 bound_secs=15 quick=0 json=0 out="" scenarios="" nice=-10 rate=0
NAPI_FIFO=10 NAPI_COALESCE_US=0
attach_extra=""
ALL_SCENARIOS="v4-udp v4-syn v6-udp v6-syn"
keep_conns=16 new_conns=8 think_ms=20
usage() {
  cat <<EOF
usage: bench/run flood [--quick] [--rounds N] [--window S] [--scenarios LIST]
                       [--bound-seconds S] [--out DIR] [-j|--json] [--no-boost]
  --quick          2 rounds, 2-second windows, a 14-second bound phase (about 3 minutes);
                   default: $rounds rounds, ${window}-second windows (about 9 minutes)
  --rounds N       rounds (each: every scenario in the three modes), 1 to 50; --runs N too
  --window S       seconds measured per phase (whole seconds, 2 to 60)
  --scenarios LIST comma-separated, from ${ALL_SCENARIOS// /,}
  --bound-seconds S  the long bpfgate phase at the end (0: none; default $bound_secs)
  --flood-rate PPS the flood's packets/s (default 0: as fast as the generator goes)
  --out DIR        where raw.csv and table.md go (default \$BUILD_DIR/bench/flood-results)
  -j, --json       one JSON object per phase (raw.csv's rows) on stdout; the tables to stderr
  --syn-proxy      bpfgate answers held SYNs itself (attach --syn-proxy; default: its defaults)
  --attach-args A  more options for \`bpfgate attach\` (one word list, e.g. "--new-sources 1000")
  --coalesce-us N  after a poll that took frames, the gateway's NAPI waits N us before the
                 next (gro_flush_timeout with napi_defer_hard_irqs 1), as a NIC's interrupt
                 coalescing does; default 0: a veth wakes its NAPI for every few frames
  --napi-fifo P    the gateway's NAPI kthread at SCHED_FIFO priority P (default $NAPI_FIFO; 0:
                   none, it then takes turns with nginx as a task of nice -10 does)
  --no-boost       the generator, the clients, nginx and the NAPI kthread at nice 0
                   (default -10, each in an autogroup of its own; every mode alike)
  --keep-conns N --new-conns N --think-ms N
                   connections of the keep client (default $keep_conns) and of the new one
                   (default $new_conns); each waits think-ms (default $think_ms) between requests
EOF
}
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --rounds | --runs) rounds="${2:?}"; shift ;;
    --window | --seconds) window="${2:?}"; shift ;;
    --scenarios) scenarios="${2:?}"; scenarios="${scenarios//,/ }"; shift ;;
    --syn-proxy) attach_extra+=" --syn-proxy" ;;
    --attach-args) attach_extra+=" ${2:?}"; shift ;;
    --bound-seconds) bound_secs="${2:?}"; shift ;;
    --out) out="${2:?}"; shift ;;
    --no-boost) nice=0 ;;
    --coalesce-us) NAPI_COALESCE_US="${2:?}"; shift ;;
    --napi-fifo) NAPI_FIFO="${2:?}"; shift ;;
    --flood-rate) rate="${2:?}"; shift ;;
    --keep-conns) keep_conns="${2:?}"; shift ;;
    --new-conns) new_conns="${2:?}"; shift ;;
    --think-ms) think_ms="${2:?}"; shift ;;
    -j | --json) json=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "flood: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if [ "$quick" = 1 ]; then rounds=2 window=2 bound_secs=14; fi
scenarios="${scenarios:-$ALL_SCENARIOS}"
bad_arg() { echo "flood: $*" >&2; usage >&2; exit 2; }
[[ "$rounds" =~ ^[0-9]+$ ]] && [ "$rounds" -ge 1 ] && [ "$rounds" -le 50 ] || bad_arg "--rounds: 1 to 50"
[[ "$window" =~ ^[0-9]+$ ]] && [ "$window" -ge 2 ] && [ "$window" -le 60 ] || bad_arg "--window: 2 to 60"
[[ "$bound_secs" =~ ^[0-9]+$ ]] && [ "$bound_secs" -le 120 ] || bad_arg "--bound-seconds: 0 to 120"
for n in "$keep_conns" "$new_conns"; do
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 256 ] || bad_arg "connections: 1 to 256"
done
[[ "$think_ms" =~ ^[0-9]+$ ]] || bad_arg "--think-ms: milliseconds"
[[ "$rate" =~ ^[0-9]+$ ]] || bad_arg "--flood-rate: packets/s"
# shellcheck source=bench/lib/netns.sh
. "$REPO/bench/lib/netns.sh"
napi_err=$(napi_rig_check) || bad_arg "$napi_err"
for s in $scenarios; do [[ " $ALL_SCENARIOS " == *" $s "* ]] || bad_arg "no scenario '$s'"; done
out="${out:-$BUILD_DIR/bench/flood-results}"

log() { printf 'flood: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root: it loads BPF programs and creates namespaces"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs: one for the attacker and the clients, one for the gateway"
for tool in nsenter ip bridge ethtool taskset nginx wrk curl bpftool flock "$BG" "$FLOOD" "$MAPSTAT"; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/deps.sh installs the tools; build first)"
done
[ -f "$ORACLE_OBJ" ] || die "no $ORACLE_OBJ: build first (BUILD_DIR=$BUILD_DIR)"

# ---- names, addresses, CPUs ----------------------------------------------------------------
NS_NET=bgfl-net NS_GW=bgfl-gw NS_KEEP=bgfl-cka NS_NEW=bgfl-ccl NS_CAME=bgfl-new
ALL_NS=("$NS_KEEP" "$NS_NEW" "$NS_CAME" "$NS_GW" "$NS_NET")
BR=bgfl-br0 GW_IF=bgfl-gw0 SW_GW=bgfl-sgw
GW4=198.18.0.1 GW6=2001:db8::1
KEEP4=198.18.0.10 KEEP6=2001:db8::10 NEW4=198.18.0.11 NEW6=2001:db8::11
SPOOF4=198.19.0.0/16 SPOOF6=2001:db8:8000::/33  # off the gateway's /24 and /64
GEN_CPU=0 GW_CPU=1
PIN_DIR=/sys/fs/bpf/bpfgate/$GW_IF

gw() { in_ns "$NS_GW" "$@"; }  # fails if the namespace is gone: never the root namespace

# ---- cleanup: on exit, failure and interrupt ------------------------------------------------
TMP="" BG_PIDS=() LOCK_FD=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  if [ -e "/run/netns/$NS_GW" ] && [ -d "$PIN_DIR" ]; then gw "$BG" detach "$GW_IF" >/dev/null 2>&1; fi
  [ -d "$PIN_DIR" ] && rm -rf "$PIN_DIR"  # only if detach could not (namespace gone)
  ns_remove_all "${ALL_NS[@]}"  # the processes left in them are ours
  [ -n "$TMP" ] && rm -rf "$TMP"
  [ "$rc" -ne 0 ] && log "failed or interrupted (exit $rc); cleaned up"
  exit "$rc"
}
exec {LOCK_FD}>/run/bgflood.lock
flock -n "$LOCK_FD" || die "another flood bench is running (lock /run/bgflood.lock)"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if ns_any_left "${ALL_NS[@]}" || [ -d "$PIN_DIR" ]; then
  log "removing leftovers of an earlier run"
  (trap - EXIT; cleanup) || true
fi
TMP=$(mktemp -d /tmp/bgflood.XXXXXX)
chmod 755 "$TMP"
mkdir -p "$out"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
T_START=$(date +%s.%N)

# ---- topology ---------------------------------------------------------------------------------
for ns in "${ALL_NS[@]}"; do ip netns add "$ns"; done
in_ns "$NS_NET" ip link set lo up
in_ns "$NS_NET" ip link add "$BR" type bridge
in_ns "$NS_NET" ip link set "$BR" up
plug() {  # namespace switch-port its-interface v4 v6: a host on the bridge
  in_ns "$NS_NET" ip link add "$2" type veth peer name "$3" netns "$1"
  in_ns "$NS_NET" ip link set "$2" master "$BR" up
  in_ns "$1" ip link set lo up
  [ -n "$4" ] && in_ns "$1" ip addr add "$4/24" dev "$3"
  [ -n "$5" ] && in_ns "$1" ip addr add "$5/64" dev "$3" nodad
  in_ns "$1" ip link set "$3" up
  # A static forwarding entry: the bridge never floods a host's traffic to other ports.
  in_ns "$NS_NET" bridge fdb replace "$(mac_of "$1" "$3")" dev "$2" master static
}
plug "$NS_GW" "$SW_GW" "$GW_IF" "$GW4" "$GW6"
plug "$NS_KEEP" bgfl-ska bgfl-ka0 "$KEEP4" "$KEEP6"
plug "$NS_NEW" bgfl-scl bgfl-cl0 "$NEW4" "$NEW6"
plug "$NS_CAME" bgfl-snw bgfl-nw0 "" ""
ns_expect_no_default_route "${ALL_NS[@]}"
GW_MAC=$(mac_of "$NS_GW" "$GW_IF")
# SYN proofs need the kernel to answer every SYN with a cookie (README, proofs).
gw sysctl -qw net.ipv4.tcp_syncookies=2
# SYNs answered by the datapath carry timestamps, SACK and window scaling only without
# per-peer timestamp offsets (README, the SYN answer). The switch's port towards the gateway
# drops what the gateway sends to spoofed sources, as an uplink carries it off the host
# (bench/flood/uplink.bpf.c; its XDP program is also what lets the port take XDP_TX frames).
gw sysctl -qw net.ipv4.tcp_timestamps=2
in_ns "$NS_NET" ip link set dev "$SW_GW" xdpdrv obj "$BUILD_DIR/bpf/flood_uplink.bpf.o" sec xdp
# The gateway's receive path in a kthread of its own (as bench/compare/run.sh does).
threaded_napi "$NS_NET" "$SW_GW" "$NS_GW" "$GW_IF"
pin_napi() { pin_napi_of "$GW_IF" "$GW_CPU" "$nice"; }
boosted() {  # PIDFILE COMMAND...: in a session (an autogroup) of its own, at nice $nice; the
  # command's pid goes to PIDFILE
  setsid nice -n "$nice" sh -c 'echo "$0" >/proc/self/autogroup 2>/dev/null; echo $$ >"$1"; shift; exec "$@"' \
    "$nice" "$@"
}
pin_napi

# ---- nginx on the gateway, with an access log of time, source and status --------------------
mkdir -p "$TMP/www"
head -c 600 /dev/zero | tr '\0' 'x' >"$TMP/www/index.html"
chmod 644 "$TMP/www/index.html"
ACCESS="$TMP/access.log"
cat >"$TMP/nginx.conf" <<EOF
worker_processes 1;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
events { worker_connections 4096; }
http {
  log_format bench '\$msec \$remote_addr \$status';
  access_log $ACCESS bench;
  client_body_temp_path $TMP/body;
  proxy_temp_path $TMP/proxy;
  fastcgi_temp_path $TMP/fastcgi;
  uwsgi_temp_path $TMP/uwsgi;
  scgi_temp_path $TMP/scgi;
  keepalive_requests 1000000;
  server {
    listen $GW4:80 backlog=4096;
    listen [$GW6]:80 backlog=4096;
    root $TMP/www;
    location / { }
  }
}
EOF
taskset -c "$GW_CPU" nsenter --net="/run/netns/$NS_GW" nice -n "$nice" \
  nginx -e "$TMP/nginx-error.log" -p "$TMP" -c "$TMP/nginx.conf"
for _ in $(seq 1 20); do [ -s "$TMP/nginx.pid" ] && break; sleep 0.1; done
echo "$nice" >"/proc/$(cat "$TMP/nginx.pid")/autogroup" 2>/dev/null || true
for a in "$GW4" "[$GW6]"; do
  in_ns "$NS_KEEP" curl -sf --max-time 3 -o /dev/null "http://$a/" || die "nginx does not answer on $a"
done
echo "function delay() return $think_ms end" >"$TMP/keep.lua"
printf 'wrk.headers["Connection"] = "close"\nfunction delay() return %s end\n' "$think_ms" >"$TMP/new.lua"

# ---- bpfgate's maps -------------------------------------------------------------------------
key_of() {  # address -> bpfgate's per-source key (struct bg_src_key) as bpftool hex bytes
  local a=$1 g=() i head tail h t
  if [[ "$a" != *:* ]]; then  # IPv4, v4-mapped
    IFS=. read -r -a g <<<"$a"
    printf '00 %.0s' $(seq 10); printf 'ff ff %02x %02x %02x %02x' "${g[@]}"
  else
    head=${a%%::*} tail=""
    [[ "$a" == *::* ]] && tail=${a#*::}
    IFS=: read -r -a h <<<"$head"; IFS=: read -r -a t <<<"$tail"
    g=("${h[@]}")
    for ((i = 0; i < 8 - ${#h[@]} - ${#t[@]}; i++)); do g+=(0); done
    g+=("${t[@]}")
    for i in "${g[@]}"; do printf '%02x %02x ' $((16#$i >> 8)) $((16#$i & 255)); done
  fi
  printf ' 00 00 00 00 00 00 00 00\n'  # rule 0, kind BG_SRC_ADDR, prefixlen 0, padding
}
known_entry() {  # address -> "1 DROPS" if bpfgate holds it in its known (proven) table, else "0 -"
  # (DROPS: the client's frames its bucket dropped)
  local v
  # shellcheck disable=SC2046
  if v=$(bpftool -j map lookup pinned "$PIN_DIR/known" key hex $(key_of "$1") 2>/dev/null); then
    echo "1 $(sed -n 's/.*"drops":\([0-9]*\).*/\1/p' <<<"$v" | grep . || echo -)"
  else
    echo "0 -"
  fi
}
map_field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
maps_snapshot() {  # keep-address new-address -> "sources max known keep_known keep_drops
  # new_known new_drops"
  local s k
  s=$("$MAPSTAT" "$PIN_DIR" sources) || die "bgcmp-mapstat: cannot read $PIN_DIR/sources"
  k=$("$MAPSTAT" "$PIN_DIR" known) || die "bgcmp-mapstat: cannot read $PIN_DIR/known"
  echo "$(map_field entries <<<"$s") $(map_field max_entries <<<"$s") $(map_field entries <<<"$k") $(known_entry "$1") $(known_entry "$2")"
}

# ---- modes ----------------------------------------------------------------------------------
setup() {  # mode
  case "$1" in
    none) ;;
    oracle) gw ip link set dev "$GW_IF" xdpdrv obj "$ORACLE_OBJ" sec xdp ;;
    bpfgate) gw "$BG" attach "$GW_IF" $attach_extra >/dev/null ;;  # its defaults (+ --syn-proxy)
  esac
  pin_napi
}
teardown() {  # mode
  case "$1" in
    none) ;;
    oracle) gw ip link set dev "$GW_IF" xdpdrv off ;;
    bpfgate) gw "$BG" detach "$GW_IF" >/dev/null ;;
  esac
  if gw ip link show dev "$GW_IF" | grep -q 'prog/xdp'; then die "$1 left an XDP program on $GW_IF"; fi
}

# ---- one phase ---------------------------------------------------------------------------------
wrk_field() {  # file -> "requests errors"
  awk '/ requests in / {r = $1}
       /Socket errors:/ {gsub(/,/, ""); e += $4 + $6 + $8 + $10}
       /Non-2xx/ {e += $5}
       END {printf "%d %d", r, e}' "$1"
}
served() {  # address t0 t1 -> "ok other": requests nginx answered that source within [t0, t1)
  awk -v a="$1" -v t0="$2" -v t1="$3" '$2 == a && $1 >= t0 && $1 < t1 {if ($3 == 200) ok++; else bad++}
    END {printf "%d %d", ok, bad}' "$ACCESS"
}
gw_counters() {  # frames the gateway's NAPI took in, frames its full ring refused, the NAPI
  # kthread's CPU time (ns), now (s), SYNs the listener dropped (TcpExt ListenDrops: a spoofed
  # SYN has no route back, so the kernel drops it before it sends a cookie), checksum errors
  # (TCP, UDP: the generator's fault if any), frames XDP dropped
  local xdp refused cpu now stack
  xdp=$(gw ethtool -S "$GW_IF" | awk '$1 == "rx_queue_0_xdp_packets:" {p = $2}
    $1 == "rx_queue_0_xdp_drops:" {d = $2} END {printf "%d %d", p, d}')
  refused=$(gw cat /proc/self/net/dev | awk -v d="$GW_IF:" '$1 == d {print $5}')
  cpu=$(awk '{print $1}' "/proc/$NAPI_PID/schedstat")
  now=$(date +%s.%N)
  stack=$(gw sh -c 'cat /proc/self/net/netstat /proc/self/net/snmp /proc/self/net/snmp6' | awk '
    /^(TcpExt|Tcp|Udp): / { if (!($1 in h)) { for (i = 2; i <= NF; i++) c[$1, $i] = i; h[$1] = 1; next }
      if ($1 == "TcpExt:") sc = $c["TcpExt:", "ListenDrops"]
      else if ($1 == "Tcp:") ce += $c["Tcp:", "InCsumErrors"]; else ce += $c["Udp:", "InCsumErrors"] }
    $1 == "Udp6InCsumErrors" { ce += $2 }
    END { printf "%d %d", sc, ce }')
  echo "${xdp% *} $refused $cpu $now $stack ${xdp#* }"
}
PHASE_NO=0
RAW="$out/raw.csv"
echo "round,family,flood,mode,window_s,keep_rps,keep_req,keep_err,keep_fail_pct,new_rps,new_req,new_err,new_fail_pct,newcomer_ms,offered_pps,in_pps,refused_pct,sources_before,sources_after,sources_max,known_before,known_after,keep_known_before,keep_known_after,new_known_before,new_known_after,napi_busy_pct,gw_ns_per_frame,keep_bpfgate_drops,new_bpfgate_drops,listen_drops_per_s,csum_errors,passed_pct" >"$RAW"
phase() {  # round family(v4|v6) flood(udp|syn) mode [window]
  local round=$1 fam=$2 flood=$3 mode=$4 win=${5:-$window}
  local gw_addr=$GW4 url keep=$KEEP4 new=$NEW4 came spoof=$SPOOF4 proto=udp dport=9
  PHASE_NO=$((PHASE_NO + 1))
  local idx=$(((PHASE_NO - 1) % 150))
  came=198.18.0.$((100 + idx))
  if [ "$fam" = v6 ]; then
    gw_addr=$GW6 keep=$KEEP6 new=$NEW6 came=2001:db8::1:$idx spoof=$SPOOF6
  fi
  [ "$flood" = syn ] && proto=tcp dport=80
  url="http://$gw_addr/"
  [ "$fam" = v6 ] && url="http://[$gw_addr]/"
  setup "$mode"
  if [ "$fam" = v6 ]; then
    in_ns "$NS_CAME" ip addr add "$came/64" dev bgfl-nw0 nodad
  else
    in_ns "$NS_CAME" ip addr add "$came/24" dev bgfl-nw0
  fi
  : >"$ACCESS"
  # wrk runs until the window closes (SIGINT, passed on by timeout), at most wrk_secs.
  local wrk_secs
  wrk_secs=$(awk -v l="$lead" -v w="$win" 'BEGIN {x = 0.6 + l + w; print int(x) + 6}')
  local pids=() c
  for c in keep new; do
    local ns=$NS_KEEP conns=$keep_conns
    [ "$c" = new ] && ns=$NS_NEW conns=$new_conns
    boosted "$TMP/wrk-$c.pid" timeout -k 2 -s INT $((wrk_secs + 10)) taskset -c "$GEN_CPU" nsenter --net="/run/netns/$ns" \
      wrk -t1 -c"$conns" -d"${wrk_secs}s" --timeout 2s -s "$TMP/$c.lua" "$url" >"$TMP/wrk-$c.txt" 2>&1 &
    pids+=($!); BG_PIDS+=($!)
  done
  sleep 0.5
  local before="" after="" gen_pid="" t0 t1 c0 c1
  [ "$mode" = bpfgate ] && before=$(maps_snapshot "$keep" "$new")
  c0=$(gw_counters)
  if [ "$mode" != none ]; then
    boosted /dev/null timeout -k 2 -s INT $((wrk_secs + 10)) taskset -c "$GEN_CPU" nsenter --net="/run/netns/$NS_NET" \
      "$FLOOD" -i "$SW_GW" --dst-mac "$GW_MAC" --proto "$proto" --src "$spoof" --dst "$gw_addr" \
      --dport "$dport" --rate "$rate" -n 4000000000 --duration "$(awk -v l="$lead" -v w="$win" 'BEGIN {print l + w + 0.2}')" -j \
      >"$TMP/gen.json" 2>"$TMP/gen.err" &
    gen_pid=$!; BG_PIDS+=($!)
  fi
  sleep "$lead"
  t0=$(date +%s.%N)
  boosted /dev/null timeout -k 2 $((win + 5)) taskset -c "$GEN_CPU" nsenter --net="/run/netns/$NS_CAME" \
    curl -s -o /dev/null --interface "$came" --max-time "$(awk -v w="$win" 'BEGIN {print w - 0.2}')" \
    -w '%{http_code} %{time_total}\n' "$url" >"$TMP/came.txt" 2>/dev/null &
  local came_pid=$!; BG_PIDS+=($!)
  sleep "$win"
  t1=$(date +%s.%N)
  for c in keep new; do kill -INT "$(cat "$TMP/wrk-$c.pid")" 2>/dev/null || true; done
  wait "$came_pid" || true
  if [ -n "$gen_pid" ]; then wait "$gen_pid" || die "generator failed ($fam $flood $mode): $(cat "$TMP/gen.err")"; fi
  c1=$(gw_counters)
  [ "$mode" = bpfgate ] && after=$(maps_snapshot "$keep" "$new")
  for c in "${pids[@]}"; do wait "$c" || die "wrk failed ($fam $flood $mode): $(cat "$TMP"/wrk-*.txt)"; done
  in_ns "$NS_CAME" ip addr del "$came/$([ "$fam" = v6 ] && echo 64 || echo 24)" dev bgfl-nw0
  teardown "$mode"

  local keep_served new_served keep_wrk new_wrk came_res sent=0 gsecs=1
  keep_served=$(served "$keep" "$t0" "$t1"); new_served=$(served "$new" "$t0" "$t1")
  keep_wrk=$(wrk_field "$TMP/wrk-keep.txt"); new_wrk=$(wrk_field "$TMP/wrk-new.txt")
  came_res=$(cat "$TMP/came.txt" 2>/dev/null || true)
  if [ -n "$gen_pid" ]; then
    sent=$(map_field sent <"$TMP/gen.json")
    gsecs=$(sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p' "$TMP/gen.json")
  fi
  awk -v round="$round" -v fam="$fam" -v flood="$flood" -v mode="$mode" -v t0="$t0" -v t1="$t1" \
    -v ks="$keep_served" -v ns="$new_served" -v kw="$keep_wrk" -v nw="$new_wrk" -v came="$came_res" \
    -v sent="$sent" -v gsecs="$gsecs" -v c0="$c0" -v c1="$c1" -v before="$before" -v after="$after" 'BEGIN {
      w = t1 - t0; split(ks, k, " "); split(ns, n, " "); split(kw, kr, " "); split(nw, nr, " ")
      split(c0, a, " "); split(c1, b, " "); split(before, mb, " "); split(after, ma, " ")
      split(came, cm, " ")
      cms = cm[1] == "200" ? sprintf("%.0f", cm[2] * 1000) : ""
      kf = kr[1] + kr[2] ? 100 * kr[2] / (kr[1] + kr[2]) : 100
      nf = nr[1] + nr[2] ? 100 * nr[2] / (nr[1] + nr[2]) : 100
      inp = b[1] - a[1]; ref = b[2] - a[2]
      busy = b[4] - a[4] > 0 ? 100 * (b[3] - a[3]) / 1e9 / (b[4] - a[4]) : 0
      nspf = inp > 0 ? (b[3] - a[3]) / inp : 0
      cookies = b[4] - a[4] > 0 ? (b[5] - a[5]) / (b[4] - a[4]) : 0
      passed = mode != "none" && inp > 0 ? 100 * (inp - (b[7] - a[7])) / inp : 100
      printf "%s,%s,%s,%s,%.3f,%.1f,%d,%d,%.2f,%.1f,%d,%d,%.2f,%s,%.0f,%.0f,%.2f,%s,%s,%s,%s,%s,%s,%s,%s,%s,%.1f,%.0f,%s,%s,%.0f,%d,%.2f\n",
        round, fam, flood, mode, w, k[1] / w, kr[1], kr[2], kf, n[1] / w, nr[1], nr[2], nf, cms,
        sent / gsecs, inp / gsecs, inp + ref ? 100 * ref / (inp + ref) : 0,
        mb[1], ma[1], ma[2], mb[3], ma[3], mb[4], ma[4], mb[6], ma[6], busy, nspf, ma[5], ma[7], cookies, b[6] - a[6], passed }' >>"$RAW"
  tail -n 1 "$RAW" | awk -F, '{printf "flood:   %s-%s %-7s keep %7.1f req/s (%5.2f %% failed)  new %7.1f req/s (%5.2f %% failed)  newcomer %s ms  offered %.2f Mpps, gateway NAPI %.0f %% busy%s\n",
    $2, $3, $4, $6, $9, $10, $13, $14 == "" ? "-" : $14, $15 / 1e6, $27,
    $4 == "bpfgate" ? sprintf("  sources %s/%s  known %s->%s", $19, $20, $21, $22) : ""}' >&2
  # A broken setup fails loudly: the clients must get through without a flood and behind
  # the oracle, which drops only the flood.
  if [ "$mode" != bpfgate ]; then
    tail -n 1 "$RAW" | awk -F, '$7 == 0 || $11 == 0 || $6 == 0 || $10 == 0 {exit 1}' ||
      die "$mode passed no client traffic in $fam-$flood: the setup is broken ($TMP/wrk-*.txt)"
  fi
  if [ "$mode" != none ] && [ "$sent" -eq 0 ]; then die "the generator sent nothing ($fam $flood)"; fi
  tail -n 1 "$RAW" | awk -F, '$32 > 0 {exit 1}' ||
    log "warning: $(tail -n 1 "$RAW" | cut -d, -f32) checksum errors at the gateway ($fam $flood $mode): the generator's frames are broken"
}

# ---- the rounds ------------------------------------------------------------------------------
# XDP live frames can be refused (EPERM on some hosts' kernels): probed with one frame;
# refused, the floods come from bpfgate-gen (AF_PACKET, random IPv4 and IPv6 sources alike),
# and the run says so.
if ! nsenter --net="/run/netns/$NS_NET" "$FLOOD" -i "$SW_GW" --dst-mac "$GW_MAC" -n 1 \
  --duration 1 >/dev/null 2>"$TMP/probe.err"; then
  log "this kernel refuses the XDP live-frames generator ($(tail -n 1 "$TMP/probe.err")):" \
    "flooding with bpfgate-gen (AF_PACKET) instead"
  FLOOD="$BG-gen"
fi
n_sc=$(wc -w <<<"$scenarios")
log "$rounds round(s) x $n_sc scenario(s) x 3 modes, ${window}s windows after a ${lead}s lead; bound phase ${bound_secs}s"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq 1 "$rounds"); do
  log "round $round/$rounds"
  for s in $scenarios; do
    fam=${s%-*} flood=${s#*-}
    phase "$round" "$fam" "$flood" none
    if [ $((round % 2)) = 1 ]; then order="oracle bpfgate"; else order="bpfgate oracle"; fi
    for mode in $order; do phase "$round" "$fam" "$flood" "$mode"; done
  done
done
if [ "$bound_secs" -gt 0 ]; then
  bound_fam=v6
  log "bound: bpfgate under the ${bound_fam/v/IPv} UDP flood for ${bound_secs}s"
  lead=$((bound_secs - window))
  [ "$lead" -ge 1 ] || lead=1
  phase bound "$bound_fam" udp bpfgate
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN {printf "%.0f", b - a}')

{
  echo "Legitimate clients under spoofed floods, bpfgate vs the oracle: $(date -u +%Y-%m-%d), $(uname -r), $(nproc) CPUs, load $LOAD_BEFORE (before) / $LOAD_AFTER (after)"
  echo "$rounds round(s), ${window}s windows after a 1s lead, ${ELAPSED}s in all; clients: keep = wrk $keep_conns connections kept, new = wrk $new_conns connections, one per request; think time ${think_ms} ms; $(napi_rig_desc)"
  echo
  awk -F, -v bound_secs="$bound_secs" -f "$REPO/bench/flood/summarize.awk" "$RAW"
} >"$out/table.md"
if [ "$json" = 1 ]; then
  cat "$out/table.md" >&2
  awk -F, 'NR == 1 {for (i = 1; i <= NF; i++) k[i] = $i; next}
    {s = "{"; for (i = 1; i <= NF; i++) s = s (i > 1 ? "," : "") "\"" k[i] "\":" ($i ~ /^-?[0-9.]+$/ ? $i : ($i == "" ? "null" : "\"" $i "\"")); print s "}"}' "$RAW"
else
  cat "$out/table.md"
fi
log "wrote $RAW, $out/table.md (${ELAPSED}s)"
