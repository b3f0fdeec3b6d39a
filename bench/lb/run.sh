#!/usr/bin/env bash
# The XDP load balancer against nftables DNAT and haproxy on one veth topology (issue 15).
#
# Namespaces made (and removed) here; 198.18.0.0/15 and 2001:db8::/32 only; no default route:
#
#   bglb-net  the generator and the TCP client    198.18.0.2   bglb-sgw = bglb-gw0
#   bglb-gw   the gateway, the contender          198.18.0.1   (VIP 198.18.20.1 routed to it)
#             backend links bglb-g1..3            198.18.1N.1  bglb-gN = bglb-bN
#   bglb-be   the three backends (one namespace)  198.18.1N.2  nginx on :80; under the flood
#             their links drop everything in XDP
#
# Part 1, per packet: a UDP flood to VIP:9 from 1,024 sources (random in 198.19.0.0/22, so
# each flow is established after its first packets: a connection-table / conntrack hit),
# as fast as bpfgate-gen (AF_PACKET) goes, through each contender in turn:
#   routed    no balancer: the same flood sent to backend 1's own address, forwarded by
#             the stack (the gateway's floor for a forwarded skb)
#   bpfgate   the agent: the filter (limits off) tail-calling the balancer, which rewrites
#             and redirects each frame to a backend's link in XDP
#   lb-alone  the agent with the balancer alone on bglb-gw0 (the filter on an idle link):
#             the balancer's share of bpfgate's figure
#   nftables  prerouting DNAT, `dnat to jhash ip saddr . udp sport mod 3 map {...}`: the
#             same VIP to the same three backends, conntrack keeping each flow on one
# haproxy balances TCP only, so it has no row here. The gateway's cost is isolated as in
# /work/shared/BENCH-NOTES.md: GRO and threaded NAPI on bglb-gw0, its kthread pinned to
# CPU 1, the generator on CPU 0; the backends' links are threaded too, their kthreads on
# CPU 1 (their receive work is the backends', not the gateway's). ns per packet = the kthread's CPU time / frames it
# took in; also per frame forwarded (frames the backends' links took in).
#
# Part 2, per connection: bpfgate-lb-client opens --conns TCP connections, one HTTP request
# each, to VIP:80 (routed: to backend 1 directly) through routed, bpfgate, nftables (DNAT
# by jhash) and haproxy (mode tcp, roundrobin, the VIP local on the gateway). haproxy ends
# each connection and opens one to the backend, so no per-packet figure is comparable:
# this part counts the whole host's CPU time (both CPUs, /proc/stat: client, gateway and
# backends together, the same client and backends for every contender) per connection,
# and what each contender adds over routed.
#
# Part 0 (nspp) is bench/lb_nspp: the balancer under BPF_PROG_TEST_RUN against an empty
# XDP_TX program, the filter+balancer chain against the filter alone, and flows moved by a
# backend change against 1/N; this script runs it first with the same --runs/--quick/--json.
# bench/run lb runs this script (the build directory's bench/lb_bench).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
[ -f "$REPO/bench/lb/run.sh" ] || REPO="@PROJECT_SOURCE_DIR@"
if [ -z "${BUILD_DIR:-}" ] && [ "$(basename "$0")" = lb_bench ]; then
  BUILD_DIR="$(cd "$(dirname "$0")/.." && pwd)"
fi
BUILD_DIR="${BUILD_DIR:-build}"
[[ "$BUILD_DIR" == /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
BG="$BUILD_DIR/bpfgate"
PKTGEN="$BUILD_DIR/bpfgate-gen"
LBCLIENT="$BUILD_DIR/bpfgate-lb-client"
NSPP="$BUILD_DIR/bench/lb_nspp"
PASS_OBJ="$BUILD_DIR/bpf/xdp_pass.bpf.o"
DROP_OBJ="$BUILD_DIR/bpf/xdp_drop.bpf.o"

ALL_CONTENDERS="routed bpfgate lb-alone nftables haproxy"
runs=5 secs=4 conns=3000 json=0 quick=0 only="$ALL_CONTENDERS" parts="nspp flood tcp" nice=-10
usage() {
  cat <<EOF
usage: bench/run lb [--quick] [--runs N] [--seconds S] [--conns N] [-j|--json]
                    [--only LIST] [--parts LIST] [--no-boost]
  --quick        2 rounds, 2-second floods, 1,000 connections (about 1 minute)
  --runs N       rounds (each: every contender in turn; default $runs)
  --seconds S    length of each flood (2 to 60; default $secs)
  --conns N      TCP connections per contender and round (default $conns)
  -j, --json     one JSON object per contender and part on stdout (the table goes to stderr)
  --only LIST    contenders, comma-separated, from: ${ALL_CONTENDERS// /,} (bpfgate always runs)
  --parts LIST   nspp (test_run, bench/lb_nspp), flood (per packet), tcp (per connection);
                 default all three
  --no-boost     nice 0 for the generator and the NAPI kthread (default -10)
nspp: ns/packet against an empty XDP_TX, the filter+balancer chain, flows moved by a
backend change (bench/lb_nspp --help for its own options).
EOF
}
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) runs=2 secs=2 conns=1000 quick=1 ;;
    --runs) runs="${2:?}"; shift ;;
    --seconds) secs="${2:?}"; shift ;;
    --conns) conns="${2:?}"; shift ;;
    -j | --json) json=1 ;;
    --only) only="${2:?}"; only="${only//,/ }"; shift ;;
    --parts) parts="${2:?}"; parts="${parts//,/ }"; shift ;;
    --no-boost) nice=0 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "lb: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
bad_arg() { echo "lb: $*" >&2; usage >&2; exit 2; }
[[ "$runs" =~ ^[0-9]+$ ]] && [ "$runs" -ge 1 ] && [ "$runs" -le 50 ] || bad_arg "--runs: 1 to 50"
[[ "$secs" =~ ^[0-9]+$ ]] && [ "$secs" -ge 2 ] && [ "$secs" -le 60 ] || bad_arg "--seconds: 2 to 60"
[[ "$conns" =~ ^[0-9]+$ ]] && [ "$conns" -ge 100 ] && [ "$conns" -le 100000 ] || bad_arg "--conns: 100 to 100000"
for c in $only; do [[ " $ALL_CONTENDERS " == *" $c "* ]] || bad_arg "no contender '$c'"; done
[[ " $only " == *" bpfgate "* ]] || only="$only bpfgate"
CONTENDERS=""
for c in $ALL_CONTENDERS; do [[ " $only " == *" $c "* ]] && CONTENDERS+="$c "; done
for p in $parts; do [[ " nspp flood tcp " == *" $p "* ]] || bad_arg "no part '$p'"; done

log() { printf 'lb: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root: it loads BPF programs and creates namespaces"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs: one for the generator, one for the gateway"
for tool in nsenter ip ethtool taskset nginx nft jq flock "$BG" "$PKTGEN" "$LBCLIENT" "$NSPP"; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/deps.sh installs the tools; build first)"
done
for o in "$PASS_OBJ" "$DROP_OBJ"; do [ -f "$o" ] || die "no $o: build first (BUILD_DIR=$BUILD_DIR)"; done
if [[ " $CONTENDERS " == *" haproxy "* ]] && [[ " $parts " == *" tcp "* ]] && ! command -v haproxy >/dev/null; then
  log "haproxy is not installed (apt-get install haproxy; not a CI dependency): no haproxy row"
  CONTENDERS="${CONTENDERS/haproxy /}"
fi

# ---- part 0: under test_run (its own namespace and pins, removed by it) ------------------------
if [[ " $parts " == *" nspp "* ]]; then
  nspp_args=(--runs "$runs")
  [ "$quick" = 1 ] && nspp_args=(--quick --runs "$runs")
  [ "$json" = 1 ] && nspp_args+=(--json)
  "$NSPP" "${nspp_args[@]}"
fi
[[ " $parts " == *" flood "* ]] || [[ " $parts " == *" tcp "* ]] || exit 0

NS_NET=bglb-net NS_GW=bglb-gw NS_BE=bglb-be
ALL_NS=("$NS_NET" "$NS_GW" "$NS_BE")
GW_IF=bglb-gw0 SW_IF=bglb-sgw
GW_IP=198.18.0.1 CLI_IP=198.18.0.2 VIP=198.18.20.1 FLOOD_SRC=198.19.0.0/22
GEN_CPU=0 GW_CPU=1
BACKENDS=(198.18.11.2 198.18.12.2 198.18.13.2)

# shellcheck source=bench/lib/netns.sh
. "$REPO/bench/lib/netns.sh"
gw() { in_ns "$NS_GW" "$@"; }
be() { in_ns "$NS_BE" "$@"; }
now_ns() { date +%s%N; }

TMP="" AGENT_PID="" BG_PIDS=() LOCK_FD="" BPFFS=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  if [ -n "$AGENT_PID" ]; then
    kill "$AGENT_PID" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  ns_remove_all "${ALL_NS[@]}"
  [ -n "$BPFFS" ] && mountpoint -q "$BPFFS" && umount "$BPFFS"
  [ -n "$TMP" ] && rm -rf "$TMP"
  [ "$rc" -ne 0 ] && log "failed or interrupted (exit $rc); cleaned up"
  exit "$rc"
}
exec {LOCK_FD}>/run/bglb.lock
flock -n "$LOCK_FD" || die "another lb bench is running (lock /run/bglb.lock)"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if ns_any_left "${ALL_NS[@]}"; then
  log "removing leftovers of an earlier run"
  ns_remove_all "${ALL_NS[@]}"
fi
TMP=$(mktemp -d /tmp/bglb.XXXXXX)
chmod 755 "$TMP"
BPFFS="$TMP/bpffs"
mkdir -p "$BPFFS" "$TMP/run" "$TMP/state"
mount -t bpf bpf "$BPFFS"

# ---- topology ---------------------------------------------------------------------------------
for ns in "${ALL_NS[@]}"; do ip netns add "$ns"; done
for ns in "${ALL_NS[@]}"; do in_ns "$ns" ip link set lo up; done
in_ns "$NS_NET" ip link add "$SW_IF" type veth peer name "$GW_IF" netns "$NS_GW"
in_ns "$NS_NET" ip addr add "$CLI_IP/24" dev "$SW_IF"
in_ns "$NS_NET" ip link set "$SW_IF" up
in_ns "$NS_NET" ip route add 198.18.20.0/24 via "$GW_IP"
in_ns "$NS_NET" ip route add 198.18.8.0/21 via "$GW_IP"  # the backends' networks (routed)
in_ns "$NS_NET" ethtool -K "$SW_IF" tx off >/dev/null    # full checksums: the balancer rewrites them
# NAPI on the client's end: the balancer redirects the backends' replies to it.
in_ns "$NS_NET" ip link set dev "$SW_IF" xdpdrv obj "$PASS_OBJ" sec xdp
gw sysctl -qw net.ipv4.ip_forward=1
gw ip addr add "$GW_IP/24" dev "$GW_IF"
gw ip link set "$GW_IF" up
gw ip route add 198.19.0.0/16 via "$CLI_IP"  # the flood's sources, behind the generator
for i in 1 2 3; do
  in_ns "$NS_GW" ip link add "bglb-g$i" type veth peer name "bglb-b$i" netns "$NS_BE"
  gw ip addr add "198.18.1$i.1/24" dev "bglb-g$i"
  gw ip link set "bglb-g$i" up
  be ip addr add "198.18.1$i.2/24" dev "bglb-b$i"
  be ip link set "bglb-b$i" up
  # NAPI on the backend's end: redirected frames are taken in only there (and in a kthread).
  be ip link set dev "bglb-b$i" xdpdrv obj "$PASS_OBJ" sec xdp
  be ethtool -K "bglb-b$i" tx off >/dev/null
  be unshare --mount --propagation private sh -c "mount -t sysfs sysfs /sys && echo 1 > /sys/class/net/bglb-b$i/threaded"
done
# Permanent neighbours both ways: under the flood the backends' links drop ARP too.
for i in 1 2 3; do
  gw ip neigh replace "198.18.1$i.2" lladdr "$(mac_of "$NS_BE" "bglb-b$i")" dev "bglb-g$i" nud permanent
  be ip neigh replace "198.18.1$i.1" lladdr "$(mac_of "$NS_GW" "bglb-g$i")" dev "bglb-b$i" nud permanent
done
be ip route add 198.18.0.0/24 via 198.18.11.1 dev bglb-b1
be ip route add 198.19.0.0/16 via 198.18.11.1 dev bglb-b1
ns_expect_no_default_route "${ALL_NS[@]}"
threaded_napi "$NS_NET" "$SW_IF" "$NS_GW" "$GW_IF"
GW_MAC=$(mac_of "$NS_GW" "$GW_IF")
# The backends' NAPI kthreads on the gateway's CPU (the generator keeps CPU 0 to itself, and
# their rings stay drained): their time is counted to them, not to the gateway's kthread.
pin_backends() {
  local pid
  for i in 1 2 3; do
    for pid in $(ps -e -o pid=,comm= | awk -v n="napi/bglb-b$i-" 'index($2, n) == 1 {print $1}'); do
      taskset -pc "$GW_CPU" "$pid" >/dev/null
    done
  done
}
pin_napi() { pin_napi_of "$GW_IF" "$GW_CPU" "$nice"; pin_backends; }
# The backends' XDP program: xdp_drop under the flood (so that their own stack, UDP to a closed
# port and its ICMP errors, never limits what the gateway forwards), xdp_pass for TCP.
backends_run() {  # drop|pass
  local obj=$PASS_OBJ
  [ "$1" = drop ] && obj=$DROP_OBJ
  for i in 1 2 3; do be ip -force link set dev "bglb-b$i" xdpdrv obj "$obj" sec xdp; done
  pin_backends
}
pin_napi

# nginx for the TCP part: one per backend address, in the backends' namespace.
for i in 1 2 3; do
  d="$TMP/nginx$i"
  mkdir -p "$d"
  cat >"$d/nginx.conf" <<EOF
daemon on;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $d; proxy_temp_path $d; fastcgi_temp_path $d;
  uwsgi_temp_path $d; scgi_temp_path $d;
  server { listen 198.18.1$i.2:80 backlog=4096; location / { return 200 "b$i\n"; } }
}
EOF
  taskset -c "$GEN_CPU" nsenter --net="/run/netns/$NS_BE" nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf"
done

# ---- contenders --------------------------------------------------------------------------------
backends_yaml() { for b in "${BACKENDS[@]}"; do echo "        - {address: $b, weight: 100}"; done; }
config_of() {  # filtered interface, the balancer's own interfaces
  cat <<EOF
interfaces: [{name: $1, mode: native}]
limits: {rate: 10000000, burst: 10000000, new_sources: off, unproven: off}
agent: {control_socket: $TMP/run/agent.sock, state_dir: $TMP/state, keep_datapath: false}
metrics: {listen: off}
lb:
  interfaces: [$2]
  services:
    - name: flood
      vip: $VIP:9/udp
      backends:
$(backends_yaml)
    - name: web
      vip: $VIP:80/tcp
      backends:
$(backends_yaml)
EOF
}
# An idle link for the filter while the balancer runs alone on bglb-gw0.
gw ip link add bglb-d0 type veth peer name bglb-d1
gw ip link set bglb-d0 up
gw ip link set bglb-d1 up
config_of "$GW_IF" "bglb-g1, bglb-g2, bglb-g3" >"$TMP/chain.yaml"
config_of bglb-d0 "$GW_IF, bglb-g1, bglb-g2, bglb-g3" >"$TMP/alone.yaml"
HAPROXY_CFG="$TMP/haproxy.cfg"
cat >"$HAPROXY_CFG" <<EOF
global
  maxconn 5000
  pidfile $TMP/haproxy.pid
  nbthread 1
defaults
  mode tcp
  timeout connect 2s
  timeout client 10s
  timeout server 10s
frontend vip
  bind $VIP:80
  default_backend web
backend web
  balance roundrobin
  server b1 ${BACKENDS[0]}:80
  server b2 ${BACKENDS[1]}:80
  server b3 ${BACKENDS[2]}:80
EOF
setup() {
  case "$1" in
    routed) ;;
    bpfgate | lb-alone)
      local cfg="$TMP/chain.yaml"
      [ "$1" = lb-alone ] && cfg="$TMP/alone.yaml"
      gw "$BG" check "$cfg" >/dev/null || die "the bench's config is refused: $(gw "$BG" check "$cfg" 2>&1)"
      setsid nsenter --net="/run/netns/$NS_GW" "$BG" --bpffs "$BPFFS" run -c "$cfg" >>"$TMP/agent.log" 2>&1 &
      AGENT_PID=$!
      local up=0
      for _ in $(seq 1 100); do
        kill -0 "$AGENT_PID" 2>/dev/null || die "the agent exited: $(tail -n 5 "$TMP/agent.log")"
        if gw "$BG" --bpffs "$BPFFS" -j lb list --state-dir "$TMP/state" 2>/dev/null | grep -q '"flood"' &&
          gw ip link show dev bglb-g3 | grep -q 'prog/xdp' && gw ip link show dev "$GW_IF" | grep -q 'prog/xdp'; then
          up=1
          break
        fi
        sleep 0.2
      done
      [ "$up" = 1 ] || die "the agent did not come up in 20 s: $(tail -n 5 "$TMP/agent.log")"
      ;;
    nftables)
      gw nft -f - <<EOF
table ip bglb {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr $VIP udp dport 9 dnat to jhash ip saddr . udp sport mod 3 map { 0 : ${BACKENDS[0]}, 1 : ${BACKENDS[1]}, 2 : ${BACKENDS[2]} }
    ip daddr $VIP tcp dport 80 dnat to jhash ip saddr . tcp sport mod 3 map { 0 : ${BACKENDS[0]}, 1 : ${BACKENDS[1]}, 2 : ${BACKENDS[2]} }
  }
}
EOF
      ;;
    haproxy)
      gw ip addr add "$VIP/32" dev lo
      taskset -c "$GW_CPU" nsenter --net="/run/netns/$NS_GW" haproxy -D -f "$HAPROXY_CFG"
      for _ in $(seq 1 50); do gw ss -Htln "sport = :80" | grep -q "$VIP" && break; sleep 0.1; done
      ;;
  esac
  pin_napi
}
teardown() {
  case "$1" in
    routed) ;;
    bpfgate | lb-alone)
      kill "$AGENT_PID"
      for _ in $(seq 1 100); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$AGENT_PID" 2>/dev/null && die "the agent did not stop in 10 s"
      AGENT_PID=""
      gw ip link show | grep -q 'prog/xdp' && die "the agent left an XDP program in the gateway"
      ;;
    nftables) gw nft delete table ip bglb ;;
    haproxy)
      kill "$(cat "$TMP/haproxy.pid")"
      for _ in $(seq 1 50); do gw ss -Htln "sport = :80" | grep -q "$VIP" || break; sleep 0.1; done
      gw ip addr del "$VIP/32" dev lo
      ;;
  esac
  gw conntrack -F >/dev/null 2>&1 || true
}

# ---- part 1: the flood ---------------------------------------------------------------------------
# NAPI kthread ns, frames the gateway took in, frames the backends' links took in.
snapshot() {
  local napi_ns in fwd
  napi_ns=$(awk '{print $1}' "/proc/$NAPI_PID/schedstat")
  in=$(gw ethtool -S "$GW_IF" | awk '$1 == "rx_queue_0_xdp_packets:" {print $2}')
  fwd=0
  for i in 1 2 3; do
    fwd=$((fwd + $(be ethtool -S "bglb-b$i" | awk '$1 == "rx_queue_0_xdp_packets:" {print $2}')))
  done
  # Frames the gateway sent towards the backends that their links' full rings refused.
  local refused
  refused=$(gw cat /proc/self/net/dev | awk '$1 ~ /^bglb-g[123]:$/ {s += $13} END {print s + 0}')
  echo "$napi_ns $in $fwd $refused"
}
RAW="$TMP/raw.csv"
: >"$RAW"
flood() {  # round contender
  local dst=$VIP s0 s1
  [ "$2" = routed ] && dst=${BACKENDS[0]}
  local lb0="" lb1=""
  lb_counters() { gw "$BG" --bpffs "$BPFFS" -j lb list | jq -r '.counters | [.forwarded.packets, .to_stack.packets] | @tsv'; }
  [[ "$2" == bpfgate || "$2" == lb-alone ]] && lb0=$(lb_counters)
  s0=$(snapshot)
  setsid nice -n "$nice" timeout -k 2 -s INT $((secs + 5)) taskset -c "$GEN_CPU" \
    nsenter --net="/run/netns/$NS_NET" "$PKTGEN" -i "$SW_IF" --dst-mac "$GW_MAC" \
    --src "$FLOOD_SRC" --dst "$dst" --dport 9 -n 4000000000 --duration "$secs" -j \
    >"$TMP/gen.json" 2>"$TMP/gen.err" || die "generator failed ($2): $(cat "$TMP/gen.err")"
  s1=$(snapshot)
  [[ "$2" == bpfgate || "$2" == lb-alone ]] && lb1=$(lb_counters)
  if [ -n "$lb0" ]; then
    # The balancer must have forwarded the flood itself (redirected in XDP), not the stack.
    read -r f0 st0 <<<"$lb0"; read -r f1 st1 <<<"$lb1"
    log "  the balancer: $((f1 - f0)) frames forwarded in XDP, $((st1 - st0)) passed to the stack"
    [ $((st1 - st0)) -le $(((f1 - f0) / 100)) ] || die "the balancer passed the flood to the stack: the bench measures the wrong path"
  fi
  local sent gsecs
  sent=$(jq -r .sent "$TMP/gen.json")
  gsecs=$(jq -r .seconds "$TMP/gen.json")
  awk -v r="$1" -v who="$2" -v s0="$s0" -v s1="$s1" -v sent="$sent" -v gs="$gsecs" 'BEGIN {
    split(s0, a, " "); split(s1, b, " "); napi = b[1] - a[1]; in_ = b[2] - a[2]; fwd = b[3] - a[3]
    ref = b[4] - a[4]
    printf "flood,%s,%s,%.0f,%.0f,%.0f,%.1f,%.1f,%.1f,%.0f\n", r, who, sent / gs, in_ / gs, fwd / gs,
      in_ ? napi / in_ : 0, fwd ? napi / fwd : 0, 100 * napi / 1e9 / gs, ref / gs }' >>"$RAW"
  tail -n 1 "$RAW" | awk -F, '{printf "lb:   flood %-9s offered %5.2f Mpps  in %5.2f  forwarded %5.2f Mpps (%5.2f refused by the backends'"'"' rings)  %7.1f ns/pkt in  %7.1f ns/pkt forwarded  NAPI %3.0f%% busy\n", $3, $4 / 1e6, $5 / 1e6, $6 / 1e6, $10 / 1e6, $7, $8, $9}' >&2
}

# ---- part 2: TCP connections -----------------------------------------------------------------
busy_total() { awk '/^cpu / {printf "%d %d", $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
tcp() {  # round contender
  local target=$VIP:80 c0 c1 t0 t1
  [ "$2" = routed ] && target=${BACKENDS[0]}:80
  c0=$(busy_total); t0=$(now_ns)
  timeout -k 2 120 nsenter --net="/run/netns/$NS_NET" "$LBCLIENT" spread --target "$target" \
    -n "$conns" -t 4 --seconds 60 >"$TMP/client.json" 2>"$TMP/client.err" ||
    die "the client failed ($2): $(cat "$TMP/client.err")"
  t1=$(now_ns); c1=$(busy_total)
  local failed ok hz
  failed=$(jq -r '.failed' "$TMP/client.json")
  ok=$(jq -r '[.backends[]] | add' "$TMP/client.json")
  hz=$(getconf CLK_TCK)
  awk -v r="$1" -v who="$2" -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v ok="$ok" \
    -v failed="$failed" -v hz="$hz" -v spread="$(jq -c .backends "$TMP/client.json" | tr , ' ')" 'BEGIN {
    split(c0, a, " "); split(c1, b, " "); busy = (b[1] - a[1]) / hz; wall = (t1 - t0) / 1e9
    printf "tcp,%s,%s,%d,%d,%.1f,%.1f,%.1f,%s\n", r, who, ok, failed, ok / wall,
      ok ? 1e6 * busy / ok : 0, 100 * (b[1] - a[1]) / (b[2] - a[2]), spread }' >>"$RAW"
  tail -n 1 "$RAW" | awk -F, '{printf "lb:   tcp   %-9s %6d connections (%d failed)  %7.1f conn/s  %6.1f us host CPU per connection  host %3.0f%% busy  %s\n", $3, $4, $5, $6, $7, $8, $9}' >&2
}

# ---- the rounds ---------------------------------------------------------------------------------
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$(date +%s)
log "$runs round(s); contenders: $CONTENDERS; parts: $parts; load $LOAD_BEFORE"
for r in $(seq 1 "$runs"); do
  log "round $r/$runs"
  for who in $CONTENDERS; do
    setup "$who"
    if [[ " $parts " == *" flood "* ]] && [ "$who" != haproxy ]; then
      backends_run drop
      flood "$r" "$who"
    fi
    if [[ " $parts " == *" tcp "* ]]; then
      backends_run pass
      tcp "$r" "$who"
    fi
    teardown "$who"
  done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- summary: min/median/max; ratios to bpfgate within each round, then their median -------
summary() {
  awk -F, -v json="$1" '
    function sort(arr, n,   i, j, t) { for (i = 2; i <= n; i++) { t = arr[i]; for (j = i - 1; j >= 1 && arr[j] > t; j--) arr[j + 1] = arr[j]; arr[j + 1] = t } }
    function med(arr, n) { sort(arr, n); return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2 }
    function stats(key,   n, i, v) { n = cnt[key]; for (i = 1; i <= n; i++) v[i] = val[key, i]; m = med(v, n); lo = v[1]; hi = v[n] }
    { part = $1; r = $2; who = $3
      if (part == "flood") { x = $7; y = $8 } else { x = $7; y = $6 }
      k = part SUBSEP who; if (!(k in cnt)) order[++no] = k
      cnt[k]++; val[k, cnt[k]] = x; val2[k, cnt[k]] = y; byround[part, who, r] = x; rounds[r] = 1 }
    END {
      for (i = 1; i <= no; i++) {
        split(order[i], kk, SUBSEP); part = kk[1]; who = kk[2]
        stats(order[i]); m1 = m; l1 = lo; h1 = hi
        n = 0; for (r in rounds) if ((part, "bpfgate", r) in byround && byround[part, "bpfgate", r] > 0 && (part, who, r) in byround) ratio[++n] = byround[part, who, r] / byround[part, "bpfgate", r]
        rm = n ? med(ratio, n) : 0
        n2 = cnt[order[i]]; for (j = 1; j <= n2; j++) w[j] = val2[order[i], j]; m2 = med(w, n2)
        if (part == "flood") {
          if (!json) printf "  flood  %-9s %8.1f [%7.1f - %7.1f] ns per frame in   %8.1f ns per frame forwarded   %5.2fx bpfgate\n", who, m1, l1, h1, m2, rm
          else printf "{\"name\":\"lb_flood_%s\",\"ns_per_pkt\":%.1f,\"ns_per_pkt_min\":%.1f,\"ns_per_pkt_max\":%.1f,\"ns_per_forwarded_pkt\":%.1f,\"ratio_vs_bpfgate\":%.2f,\"runs\":%d}\n", who, m1, l1, h1, m2, rm, n2
        } else {
          if (!json) printf "  tcp    %-9s %8.1f [%7.1f - %7.1f] us host CPU per connection  %8.0f conn/s   %5.2fx bpfgate\n", who, m1, l1, h1, m2, rm
          else printf "{\"name\":\"lb_tcp_%s\",\"host_cpu_us_per_conn\":%.1f,\"min\":%.1f,\"max\":%.1f,\"conn_per_s\":%.0f,\"ratio_vs_bpfgate\":%.2f,\"runs\":%d}\n", who, m1, l1, h1, m2, rm, n2
        }
        delete ratio; delete w
      }
    }' "$RAW"
}
{
  echo "lb: the balancer on veth, $(uname -r), $(nproc) CPUs, load $LOAD_BEFORE (before) / $LOAD_AFTER (after), $(($(date +%s) - T_START)) s"
  echo "flood: UDP from $FLOOD_SRC (1,024 flows) to $VIP:9 (routed: to ${BACKENDS[0]}), ${secs}s x $runs, bpfgate-gen on CPU $GEN_CPU, gateway NAPI kthread on CPU $GW_CPU"
  echo "tcp: $conns connections of one request each per contender and round, 4 threads; host CPU = both CPUs"
  echo "median [min - max] over rounds; x bpfgate: the ratio to bpfgate within each round, median"
  summary 0
} >"$TMP/table.txt"
if [ "$json" = 1 ]; then
  cat "$TMP/table.txt" >&2
  summary 1
else
  cat "$TMP/table.txt"
fi
