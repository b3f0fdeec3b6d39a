#!/usr/bin/env bash
# bpfgate against the alternatives, side by side on the same flood (issue 3).
#
# One gateway, one legitimate client, one attacker, in network namespaces made
# (and removed) here; 198.18.0.0/15 and 2001:db8::/32 only; no default route:
#
#   bgcmp-cli  client: wrk           198.18.0.10  bgcmp-cli0 = bgcmp-scli --+
#                                                                          bgcmp-br0 (bridge)
#   bgcmp-gw   gateway: nginx and    198.18.0.1   bgcmp-gw0  = bgcmp-sgw  --+
#              the contender         2001:db8::1
#   bgcmp-net  the upstream network: the bridge, and the attacker, whose generator
#              (bgcmp-flood) sends on bgcmp-sgw straight into the gateway's link
#
# Contenders, one after another on the same flood, in every round:
#   none        no filter: the flood reaches the stack (UDP to a closed port)
#   floor       an XDP program that drops everything (build/bpf/xdp_drop.bpf.o)
#   bpfgate     `bpfgate attach` with its defaults (10,000 pps and burst per source,
#               65,536 sources)
#   iptables    -t raw PREROUTING hashlimit per source, the same limit and table size
#               (iptables-legacy: the xt_hashlimit module. Debian's default iptables-nft
#               1.8.9 turns a hashlimit rule into an nftables meter, i.e. the next row)
#   nftables    netdev ingress, a dynamic set per source with `limit rate over`, same limit
#   xdp-filter  xdp-tools' filter: a deny list, no rate limit; it denies the one known
#               source and cannot express anything against spoofed sources
#
# Each round: the client alone (the no-flood reference), then per contender two
# floods while the client runs: `one` (64-byte UDP/IPv4 from one source, as fast
# as the generator goes) and `spoof` (64-byte UDP/IPv6 from random sources in
# 2001:db8:8000::/33, so nearly every packet has a new source).
#
# How the gateway's cost is isolated (see /work/shared/BENCH-NOTES.md): the
# gateway's veth has GRO on and threaded NAPI, the NAPI kthread is pinned to
# CPU 1 with nginx; the generator and the client run on CPU 0. The generator runs
# an XDP program in live-frames mode, so frames arrive as xdp_frames as from a
# NIC: the gateway allocates the skb unless XDP drops the frame first. All the
# gateway's work for the flood (XDP, the stack, netfilter) runs in that kthread;
# its CPU time (/proc/PID/schedstat) divided by the frames it took in (the veth's
# rx_queue_0_xdp_packets) is the cost per packet, unaffected by whatever else
# shares CPU 1. Both CPUs' busy shares (/proc/stat) are recorded as well.
# --gen packet uses bpfgate-gen (AF_PACKET) instead: skbs made on the sender's side.
#
# bench/run compare [--quick] [--runs N] [-j] ... runs it from the build
# directory (configured there as bench/compare_bench). Honours BUILD_DIR.
set -euo pipefail

# Run as bench/compare/run.sh in the source tree, or as the build directory's copy
# ($BUILD_DIR/bench/compare_bench, whose build directory is the default then).
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
[ -f "$REPO/bench/compare/run.sh" ] || REPO="@PROJECT_SOURCE_DIR@"
if [ -z "${BUILD_DIR:-}" ] && [ "$(basename "$0")" = compare_bench ]; then
  BUILD_DIR="$(cd "$(dirname "$0")/.." && pwd)"
fi
BUILD_DIR="${BUILD_DIR:-build}"
[[ "$BUILD_DIR" == /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
BG="$BUILD_DIR/bpfgate"
FLOOD="$BUILD_DIR/bench/bgcmp-flood"
PKTGEN="$BUILD_DIR/bpfgate-gen"
MAPSTAT="$BUILD_DIR/bench/bgcmp-mapstat"
FLOOR_OBJ="$BUILD_DIR/bpf/xdp_drop.bpf.o"

# ---- options ------------------------------------------------------------------------------
ALL_CONTENDERS="none floor bpfgate iptables nftables xdp-filter"
runs=5 secs=4 quick=0 json=0 gen=xdp out="" only="$ALL_CONTENDERS" floods=""
conns=16 think_ms=20 capped_rate=1000000 nice=-10
NAPI_FIFO=0 NAPI_COALESCE_US=0
usage() {
  cat <<EOF
usage: bench/run compare [--quick] [--runs N] [--seconds S] [-j|--json] [--out DIR]
                         [--only LIST] [--floods LIST] [--gen xdp|packet]
  --quick        3 rounds of 2-second phases, floods one and spoof (under 2 minutes);
                 default: $runs rounds of ${secs}-second phases, all three floods (under 10 minutes)
  --runs N       rounds (each: the client alone, then every contender under each flood)
  --seconds S    length of each phase (whole seconds, 2 to 60)
  -j, --json     one JSON object per contender and flood on stdout (the table goes to stderr)
  --out DIR      where raw.csv, summary.csv, table.txt and compare.png go
                 (default \$BUILD_DIR/bench/compare-results)
  --only LIST    contenders, comma-separated, from: ${ALL_CONTENDERS// /,}
                 (bpfgate always runs: it is the reference of the ratios)
  --floods LIST  from one,capped,spoof; capped: one source at --capped-rate
  --capped-rate N  packets/s of the capped flood (default $capped_rate: about what an
                 AF_PACKET generator reaches here)
  --gen KIND     xdp: bgcmp-flood, XDP live frames (default); packet: bpfgate-gen, AF_PACKET
  --no-boost     run the generator, the client, nginx and the NAPI kthread at nice 0 (default
                 -10, each in an autogroup of its own: other load on a shared machine disturbs
                 them less; all contenders alike)
  --coalesce-us N  after a poll that took frames, the gateway's NAPI waits N us before the
                 next (gro_flush_timeout, napi_defer_hard_irqs 1), as a NIC's interrupt
                 coalescing does; default 0: a veth wakes its NAPI for every few frames
  --napi-fifo P  the gateway's NAPI kthread at SCHED_FIFO priority P (default 0: none)
  --conns N      client connections (default $conns), each waits --think-ms (default $think_ms)
                 between requests: a fixed population of users, not a load test
EOF
}
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --runs) runs="${2:?}"; shift ;;
    --seconds) secs="${2:?}"; shift ;;
    -j | --json) json=1 ;;
    --out) out="${2:?}"; shift ;;
    --only) only="${2:?}"; only="${only//,/ }"; shift ;;
    --floods) floods="${2:?}"; floods="${floods//,/ }"; shift ;;
    --gen) gen="${2:?}"; shift ;;
    --capped-rate) capped_rate="${2:?}"; shift ;;
    --no-boost) nice=0 ;;
    --coalesce-us) NAPI_COALESCE_US="${2:?}"; shift ;;
    --napi-fifo) NAPI_FIFO="${2:?}"; shift ;;
    --conns) conns="${2:?}"; shift ;;
    --think-ms) think_ms="${2:?}"; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "compare: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if [ "$quick" = 1 ]; then runs=3 secs=2 floods="${floods:-one spoof}"; fi
floods="${floods:-one capped spoof}"
bad_arg() { echo "compare: $*" >&2; usage >&2; exit 2; }
# shellcheck source=bench/lib/netns.sh
. "$REPO/bench/lib/netns.sh"
napi_err=$(napi_rig_check) || bad_arg "$napi_err"
[[ "$runs" =~ ^[0-9]+$ ]] && [ "$runs" -ge 1 ] && [ "$runs" -le 50 ] || bad_arg "--runs: 1 to 50"
[[ "$secs" =~ ^[0-9]+$ ]] && [ "$secs" -ge 2 ] && [ "$secs" -le 60 ] || bad_arg "--seconds: 2 to 60"
[[ "$conns" =~ ^[0-9]+$ ]] && [ "$conns" -ge 1 ] && [ "$conns" -le 1000 ] || bad_arg "--conns: 1 to 1000"
[[ "$think_ms" =~ ^[0-9]+$ ]] || bad_arg "--think-ms: milliseconds"
case "$gen" in xdp | packet) ;; *) bad_arg "--gen: xdp or packet" ;; esac
for c in $only; do [[ " $ALL_CONTENDERS " == *" $c "* ]] || bad_arg "no contender '$c'"; done
[[ " $only " == *" bpfgate "* ]] || only="$only bpfgate"
CONTENDERS=""  # in the canonical order
for c in $ALL_CONTENDERS; do [[ " $only " == *" $c "* ]] && CONTENDERS+="$c "; done
for f in $floods; do [[ " one spoof capped " == *" $f "* ]] || bad_arg "no flood '$f'"; done
[[ "$capped_rate" =~ ^[0-9]+$ ]] && [ "$capped_rate" -ge 1000 ] || bad_arg "--capped-rate: packets/s, 1000 or more"
out="${out:-$BUILD_DIR/bench/compare-results}"

log() { printf 'compare: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root: it loads BPF programs and creates namespaces"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs: one for the attacker and the client, one for the gateway"
for tool in nsenter ip ethtool taskset nginx wrk curl iptables-legacy ip6tables-legacy nft \
  xdp-filter gnuplot flock "$BG" "$FLOOD" "$PKTGEN" "$MAPSTAT"; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/deps.sh installs the tools; build first)"
done
[ -f "$FLOOR_OBJ" ] || die "no $FLOOR_OBJ: build first (BUILD_DIR=$BUILD_DIR)"

# ---- names, CPUs ----------------------------------------------------------------------------
NS_NET=bgcmp-net NS_GW=bgcmp-gw NS_CLI=bgcmp-cli
ALL_NS=("$NS_CLI" "$NS_GW" "$NS_NET")
BR=bgcmp-br0 GW_IF=bgcmp-gw0 CLI_IF=bgcmp-cli0 SW_GW=bgcmp-sgw SW_CLI=bgcmp-scli
GW_IP=198.18.0.1 CLI_IP=198.18.0.10 ATK_IP=198.18.0.66 GW_IP6=2001:db8::1
SPOOF_PREFIX=2001:db8:8000::/33 PKT_SPOOF_PREFIX=198.19.0.0/16
GEN_CPU=0 GW_CPU=1
RATE=10000 BURST=10000 MAX_SOURCES=65536  # bpfgate attach's defaults, given to every limiter
PIN_DIR=/sys/fs/bpf/bpfgate/$GW_IF

gw() { in_ns "$NS_GW" "$@"; }  # fails if the namespace is gone: never the root namespace's firewall

# ---- cleanup: on exit, failure and interrupt ------------------------------------------------
TMP="" BG_PIDS=() LOCK_FD="" XDPF_PINS_OURS=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  if [ -e "/run/netns/$NS_GW" ]; then
    [ -d "$PIN_DIR" ] && gw "$BG" detach "$GW_IF" >/dev/null 2>&1
    gw xdp-filter unload "$GW_IF" >/dev/null 2>&1
  fi
  [ -d "$PIN_DIR" ] && rm -rf "$PIN_DIR"  # only if detach could not (namespace gone)
  [ "$XDPF_PINS_OURS" = 1 ] && [ -d /sys/fs/bpf/xdp-filter ] && rm -rf /sys/fs/bpf/xdp-filter
  ns_remove_all "${ALL_NS[@]}"  # the processes left in them are ours
  [ -n "$TMP" ] && rm -rf "$TMP"
  [ "$rc" -ne 0 ] && log "failed or interrupted (exit $rc); cleaned up"
  exit "$rc"
}
exec {LOCK_FD}>/run/bgcmp.lock
flock -n "$LOCK_FD" || die "another comparison is running (lock /run/bgcmp.lock)"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if ns_any_left "${ALL_NS[@]}" || [ -d "$PIN_DIR" ]; then
  log "removing leftovers of an earlier run"
  (trap - EXIT; cleanup) || true
fi
if [[ " $CONTENDERS " == *" xdp-filter "* ]]; then
  # xdp-filter keeps one set of maps per host, pinned there: someone else's would be shared.
  [ -d /sys/fs/bpf/xdp-filter ] && die "xdp-filter is in use on this host (/sys/fs/bpf/xdp-filter); --only without it"
  XDPF_PINS_OURS=1
fi
TMP=$(mktemp -d /tmp/bgcmp.XXXXXX)
chmod 755 "$TMP"
mkdir -p "$out"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
T_START=$(date +%s.%N)

# ---- topology ---------------------------------------------------------------------------------
for ns in "${ALL_NS[@]}"; do ip netns add "$ns"; done
in_ns "$NS_NET" ip link set lo up
in_ns "$NS_NET" ip link add "$BR" type bridge
in_ns "$NS_NET" ip link set "$BR" up
in_ns "$NS_NET" ip link add "$SW_GW" type veth peer name "$GW_IF" netns "$NS_GW"
in_ns "$NS_NET" ip link add "$SW_CLI" type veth peer name "$CLI_IF" netns "$NS_CLI"
for l in "$SW_GW" "$SW_CLI"; do in_ns "$NS_NET" ip link set "$l" master "$BR" up; done
gw ip link set lo up
gw ip addr add "$GW_IP/24" dev "$GW_IF"
gw ip addr add "$GW_IP6/64" dev "$GW_IF" nodad
gw ip link set "$GW_IF" up
in_ns "$NS_CLI" ip link set lo up
in_ns "$NS_CLI" ip addr add "$CLI_IP/24" dev "$CLI_IF"
in_ns "$NS_CLI" ip link set "$CLI_IF" up
ns_expect_no_default_route "${ALL_NS[@]}"
GW_MAC=$(mac_of "$NS_GW" "$GW_IF")
# Static forwarding entries: the bridge never floods the client's traffic to other ports.
in_ns "$NS_NET" bridge fdb replace "$GW_MAC" dev "$SW_GW" master static
in_ns "$NS_NET" bridge fdb replace "$(mac_of "$NS_CLI" "$CLI_IF")" dev "$SW_CLI" master static
# The gateway's receive path in a kthread of its own: GRO gives its veth NAPI (so XDP
# redirects and skbs from the peer queue up there), threaded NAPI runs it in a kthread.
threaded_napi "$NS_NET" "$SW_GW" "$NS_GW" "$GW_IF"
pin_napi() { pin_napi_of "$GW_IF" "$GW_CPU" "$nice"; }
# Runs "$@" in a session, hence an autogroup, of its own, at nice $nice: with autogroups
# (sched_autogroup_enabled), nice only weighs within a group, so the group gets it too.
boosted() {
  setsid nice -n "$nice" sh -c 'echo "$0" >/proc/self/autogroup 2>/dev/null; exec "$@"' "$nice" "$@"
}
pin_napi

# ---- nginx on the gateway, the client's think time ----------------------------------------------
mkdir -p "$TMP/www"
head -c 600 /dev/zero | tr '\0' 'x' >"$TMP/www/index.html"
chmod 644 "$TMP/www/index.html"
cat >"$TMP/nginx.conf" <<EOF
worker_processes 1;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $TMP/body;
  proxy_temp_path $TMP/proxy;
  fastcgi_temp_path $TMP/fastcgi;
  uwsgi_temp_path $TMP/uwsgi;
  scgi_temp_path $TMP/scgi;
  keepalive_requests 1000000;
  server {
    listen $GW_IP:80;
    root $TMP/www;
    location / { }
  }
}
EOF
taskset -c "$GW_CPU" nsenter --net="/run/netns/$NS_GW" nice -n "$nice" \
  nginx -e "$TMP/nginx-error.log" -p "$TMP" -c "$TMP/nginx.conf"
for _ in $(seq 1 20); do [ -s "$TMP/nginx.pid" ] && break; sleep 0.1; done
echo "$nice" >"/proc/$(cat "$TMP/nginx.pid")/autogroup" 2>/dev/null || true  # nginx's own session
in_ns "$NS_CLI" curl -sf --max-time 3 -o /dev/null "http://$GW_IP/" || die "nginx does not answer"
echo "function delay() return $think_ms end" >"$TMP/client.lua"

# ---- contenders ----------------------------------------------------------------------------------
setup() {  # contender
  case "$1" in
    none) ;;
    floor) gw ip link set dev "$GW_IF" xdpdrv obj "$FLOOR_OBJ" sec xdp ;;
    bpfgate)
      gw "$BG" attach "$GW_IF" --mode native --rate "$RATE" --burst "$BURST" \
        --max-sources "$MAX_SOURCES" >/dev/null
      ;;
    iptables)
      local ipt
      for ipt in iptables-legacy ip6tables-legacy; do
        gw "$ipt" -t raw -A PREROUTING -m hashlimit --hashlimit-name "bgcmp${ipt%%-*}" \
          --hashlimit-above "$RATE/sec" --hashlimit-burst "$BURST" --hashlimit-mode srcip \
          --hashlimit-htable-size 16384 --hashlimit-htable-max "$MAX_SOURCES" \
          --hashlimit-htable-expire 10000 -j DROP
      done
      ;;
    nftables)
      gw nft -f - <<EOF
table netdev bgcmp {
  set src4 { type ipv4_addr; size $MAX_SOURCES; flags dynamic,timeout; timeout 10s; }
  set src6 { type ipv6_addr; size $MAX_SOURCES; flags dynamic,timeout; timeout 10s; }
  chain ingress {
    type filter hook ingress device "$GW_IF" priority -500; policy accept;
    update @src4 { ip saddr limit rate over $RATE/second burst $BURST packets } counter drop
    update @src6 { ip6 saddr limit rate over $RATE/second burst $BURST packets } counter drop
  }
}
EOF
      ;;
    xdp-filter)
      gw xdp-filter load -m native -f ipv4,ipv6 "$GW_IF"
      gw xdp-filter ip -m src "$ATK_IP" >/dev/null
      ;;
  esac
  pin_napi
}
teardown() {  # contender
  case "$1" in
    none) ;;
    floor) gw ip link set dev "$GW_IF" xdpdrv off ;;
    bpfgate) gw "$BG" detach "$GW_IF" >/dev/null ;;
    iptables)
      gw iptables-legacy -t raw -F PREROUTING
      gw ip6tables-legacy -t raw -F PREROUTING
      ;;
    nftables) gw nft delete table netdev bgcmp ;;
    xdp-filter) gw xdp-filter unload "$GW_IF" >/dev/null ;;
  esac
  if gw ip link show dev "$GW_IF" | grep -q 'prog/xdp'; then die "$1 left an XDP program on $GW_IF"; fi
}
drops() {  # packets the contender dropped so far
  case "$1" in
    none) echo 0 ;;
    floor | bpfgate | xdp-filter) gw ethtool -S "$GW_IF" | awk '$1 == "rx_queue_0_xdp_drops:" {print $2}' ;;
    iptables)
      { gw iptables-legacy -t raw -nvxL PREROUTING; gw ip6tables-legacy -t raw -nvxL PREROUTING; } |
        awk '$3 == "DROP" {s += $1} END {print s + 0}'
      ;;
    nftables)
      gw nft list table netdev bgcmp | awk '{for (i = 1; i < NF; i++) if ($i == "packets") s += $(i + 1)} END {print s + 0}'
      ;;
  esac
}

# ---- one phase ---------------------------------------------------------------------------------
# Counters: the NAPI kthread's CPU time (ns), frames the gateway's NAPI took in, frames
# its full ring refused, busy jiffies of CPU 0 and 1, total jiffies.
# The flood goes to a closed UDP port: whatever passes the contender ends in the stack's
# UDP NoPorts (or a checksum error, which would be the generator's fault: checked).
snapshot() {
  local napi_ns xdp_pkts refused udp
  napi_ns=$(awk '{print $1}' "/proc/$NAPI_PID/schedstat")
  xdp_pkts=$(gw ethtool -S "$GW_IF" | awk '$1 == "rx_queue_0_xdp_packets:" {print $2}')
  refused=$(gw cat /proc/self/net/dev | awk -v d="$GW_IF:" '$1 == d {print $5}')
  udp=$(gw sh -c 'cat /proc/self/net/snmp /proc/self/net/snmp6' | awk '
    /^Udp: / { if (!h) { for (i = 2; i <= NF; i++) c[$i] = i; h = 1 } else { np += $c["NoPorts"]; ce += $c["InCsumErrors"] } }
    $1 == "Udp6NoPorts" { np += $2 } $1 == "Udp6InCsumErrors" { ce += $2 }
    END { printf "%d %d", np, ce }')
  echo "$napi_ns $xdp_pkts $refused $udp $(awk '/^cpu[01] / {printf "%d %d ", $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)"
}
to_ms() {  # wrk's "12.34us" / "1.20ms" / "2.00s" -> milliseconds
  awk -v v="$1" 'BEGIN { if (v == "") { print "nan"; exit } n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000;
    printf "%.3f", n }'
}
rate_of() { [ "$1" = capped ] && echo "$capped_rate" || echo 0; }
flood_cmd() {  # flood -> the generator's command line
  local dur=$secs.4  # starts 0.3 s before the client, ends just after it
  if [ "$gen" = xdp ]; then
    local src=$ATK_IP dst=$GW_IP
    [ "$1" = spoof ] && src=$SPOOF_PREFIX dst=$GW_IP6
    echo "$FLOOD -i $SW_GW --dst-mac $GW_MAC --src $src --dst $dst --dport 9 -n 4000000000 --duration $dur -j --rate $(rate_of "$1")"
  else
    local src=$ATK_IP
    [ "$1" = spoof ] && src=$PKT_SPOOF_PREFIX
    echo "$PKTGEN -i $SW_GW --dst-mac $GW_MAC --src $src --dst $GW_IP --dport 9 -n 4000000000 --duration $dur -j --rate $(rate_of "$1")"
  fi
}
RAW="$out/raw.csv"
echo "run,contender,flood,offered_pps,in_pps,refused_pps,dropped_pps,drop_pct,ns_per_pkt,drops_per_cpu_s,napi_util_pct,cpu0_busy_pct,cpu1_busy_pct,req_s,p50_ms,p99_ms,errors,map_entries,map_max,maps_memlock,tool_dropped_pps,udp_csum_errors" >"$RAW"
phase() {  # run contender flood(none|one|spoof)
  local run=$1 who=$2 flood=$3 gen_pid="" wrk_pid d0 d1 s0 s1 t0 t1
  d0=$(drops "$who"); s0=$(snapshot); t0=$(date +%s.%N)
  if [ "$flood" != none ]; then
    # shellcheck disable=SC2046
    boosted timeout -k 2 -s INT $((secs + 5)) taskset -c "$GEN_CPU" nsenter --net="/run/netns/$NS_NET" \
      $(flood_cmd "$flood") >"$TMP/gen.json" 2>"$TMP/gen.err" &
    gen_pid=$!; BG_PIDS+=("$gen_pid")
    sleep 0.3
  fi
  # The floor drops the client's packets too: no client with it.
  : >"$TMP/wrk.txt"
  if [ "$who" != floor ]; then
    boosted timeout -k 2 -s INT $((secs + 10)) taskset -c "$GEN_CPU" nsenter --net="/run/netns/$NS_CLI" \
      wrk -t1 -c"$conns" -d"${secs}s" --timeout 2s --latency -s "$TMP/client.lua" \
      "http://$GW_IP/" >"$TMP/wrk.txt" 2>&1 &
    wrk_pid=$!; BG_PIDS+=("$wrk_pid")
    wait "$wrk_pid" || die "wrk failed ($who, $flood): $(cat "$TMP/wrk.txt")"
  fi
  if [ -n "$gen_pid" ]; then wait "$gen_pid" || die "generator failed ($who, $flood): $(cat "$TMP/gen.err")"; fi
  t1=$(date +%s.%N); s1=$(snapshot); d1=$(drops "$who")
  local sent=0 gsecs=1 mapj='{"entries":"","max_entries":"","memlock":""}'
  if [ -n "$gen_pid" ]; then
    sent=$(sed -n 's/.*"sent":\([0-9]*\).*/\1/p' "$TMP/gen.json")
    gsecs=$(sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p' "$TMP/gen.json")
  fi
  if [ "$who" = bpfgate ]; then mapj=$("$MAPSTAT" "$PIN_DIR" sources); fi
  local rps p50 p99 errs
  rps=$(awk '/^Requests\/sec:/ {printf "%.1f", $2}' "$TMP/wrk.txt")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$TMP/wrk.txt")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$TMP/wrk.txt")")
  errs=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 } /Non-2xx/ { print $5 }' \
    "$TMP/wrk.txt" | awk '{s += $1} END {print s + 0}')
  [ -n "$rps" ] || { p50="" p99="" errs=""; }
  awk -v run="$run" -v who="$who" -v flood="$flood" -v s0="$s0" -v s1="$s1" -v t0="$t0" -v t1="$t1" \
    -v sent="$sent" -v gsecs="$gsecs" -v d0="$d0" -v d1="$d1" -v rps="$rps" -v p50="$p50" \
    -v p99="$p99" -v errs="$errs" -v mapj="$mapj" 'BEGIN {
      split(s0, a, " "); split(s1, b, " ")
      napi = b[1] - a[1]; pkts = b[2] - a[2]; refused = b[3] - a[3]; wall = t1 - t0
      passed = b[4] - a[4]; csum = b[5] - a[5]
      c0 = (b[7] - a[7]) ? 100 * (b[6] - a[6]) / (b[7] - a[7]) : 0
      c1 = (b[9] - a[9]) ? 100 * (b[8] - a[8]) / (b[9] - a[9]) : 0
      # Dropped: flood frames taken in that never reached UDP. This counts what a
      # contender drops without counting it (hashlimit drops new sources when its
      # table is full). The rest: the few TCP packets a second of the client.
      dropped = flood == "none" || who == "none" ? 0 : pkts - passed
      if (dropped < 0) dropped = 0
      tool = d1 - d0
      # Rates over the flood: the generator ran gsecs; everything else happened within it.
      flood_s = flood == "none" ? wall : gsecs
      offered = flood == "none" ? 0 : sent / gsecs
      ent = mapj; mx = mapj; ml = mapj
      sub(/.*"entries":/, "", ent); sub(/[,}].*/, "", ent)
      sub(/.*"max_entries":/, "", mx); sub(/[,}].*/, "", mx)
      sub(/.*"memlock":/, "", ml); sub(/[,}].*/, "", ml)
      gsub(/"/, "", ent); gsub(/"/, "", mx); gsub(/"/, "", ml)
      printf "%s,%s,%s,%.0f,%.0f,%.0f,%.0f,%.2f,%.1f,%.0f,%.1f,%.1f,%.1f,%s,%s,%s,%s,%s,%s,%s,%.0f,%d\n",
        run, who, flood, offered, pkts / flood_s, refused / flood_s, dropped / flood_s,
        pkts ? 100 * dropped / pkts : 0, pkts ? napi / pkts : 0,
        napi ? dropped / (napi / 1e9) : 0, 100 * napi / 1e9 / wall, c0, c1,
        rps, p50, p99, errs, ent, mx, ml, tool / flood_s, csum }' >>"$RAW"
  tail -n 1 "$RAW" | awk -F, '{printf "compare:   %-10s %-5s in %6.2f Mpps  dropped %6.2f Mpps  %7.1f ns/pkt  client %7.1f req/s p99 %8.2f ms\n", $2, $3, $5 / 1e6, $7 / 1e6, $9, $14, $16}' >&2
}

# ---- the rounds -------------------------------------------------------------------------------
# XDP live frames (BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES, 5.18) can be refused (EPERM
# on some hosts' kernels): probed with one frame; refused, the run says so and uses AF_PACKET.
if [ "$gen" = xdp ] && ! nsenter --net="/run/netns/$NS_NET" "$FLOOD" -i "$SW_GW" --dst-mac "$GW_MAC" \
  --src "$ATK_IP" --dst "$GW_IP" --dport 9 -n 1 --duration 1 >/dev/null 2>"$TMP/probe.err"; then
  log "this kernel refuses the XDP live-frames generator ($(tail -n 1 "$TMP/probe.err")):" \
    "using --gen packet (AF_PACKET) instead"
  gen=packet
fi
n_phases=$((runs * (1 + $(wc -w <<<"$CONTENDERS") * $(wc -w <<<"$floods"))))
log "$runs round(s) of $n_phases/$runs phases of ${secs}s; contenders: $CONTENDERS; floods: $floods; generator: $gen"
log "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for run in $(seq 1 "$runs"); do
  log "round $run/$runs"
  phase "$run" none none
  for who in $CONTENDERS; do
    setup "$who"
    for f in $floods; do phase "$run" "$who" "$f"; done
    teardown "$who"
  done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN {printf "%.0f", b - a}')

# ---- summary: min/median/max per contender and flood, ratios to bpfgate within each round -------
SUMMARY="$out/summary.csv"
awk -f "$REPO/bench/compare/summarize.awk" -v summary="$SUMMARY" -v jsonfile="$TMP/table.json" \
  -v chartdata="$TMP/chart.dat" -v max_sources="$MAX_SOURCES" -v capped_rate="$capped_rate" \
  "$RAW" >"$TMP/table.txt"
{
  echo "bpfgate against the alternatives: $(uname -r), $(nproc) CPUs, load $LOAD_BEFORE (before) / $LOAD_AFTER (after)"
  echo "priority: nice $nice for the generator, the client, nginx and the NAPI kthread (--no-boost: 0)"
  echo "generator: $gen ($( [ "$gen" = xdp ] && echo "bgcmp-flood, XDP live frames" || echo "bpfgate-gen, AF_PACKET")) on CPU $GEN_CPU; gateway NAPI kthread + nginx on CPU $GW_CPU; $runs round(s) x ${secs}s phases; $(napi_rig_desc); ${ELAPSED}s in all"
  echo "limit for every limiter: $RATE pps per source, burst $BURST, $MAX_SOURCES sources; client: wrk, $conns connections, ${think_ms} ms think time"
  echo
  cat "$TMP/table.txt"
} >"$out/table.txt"
if [ "$json" = 1 ]; then
  cat "$out/table.txt" >&2
  cat "$TMP/table.json"
else
  cat "$out/table.txt"
fi
# Chart columns per flood, in the order one, capped, spoof: which of them ran.
flood_idx=""
for i in 1 2 3; do
  f=$(cut -d' ' -f"$i" <<<"one capped spoof")
  [[ " $floods " == *" $f "* ]] && flood_idx+="$i "
done
gnuplot -e "datafile='$TMP/chart.dat'; outfile='$out/compare.png'; floods='$flood_idx'; capped='$((capped_rate / 1000))k pps'; subtitle='$(uname -r), load $LOAD_BEFORE, ${runs}x${secs}s, generator $gen'" \
  "$REPO/bench/compare/chart.gp" 2>"$TMP/gnuplot.err" || log "gnuplot failed: $(cat "$TMP/gnuplot.err")"
log "wrote $RAW, $SUMMARY, $out/table.txt, $out/compare.png (${ELAPSED}s)"
