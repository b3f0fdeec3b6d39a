#!/usr/bin/env bash
# The demo: installs dependencies, builds, then floods a real HTTP server from an attacker
# while a client uses it, with bpfgate off and then on, all in network namespaces it makes:
#
#   bgdemo-cli  client   (wrk)          198.18.0.10 --+
#   bgdemo-atk  attacker (bpfgate-gen)  198.18.0.66 --+-- bgdemo-br0, a bridge in bgdemo-sw
#   bgdemo-gw   gateway  (nginx)        198.18.0.1  --+   (the gateway's one interface: bgdemo-gw0)
#
# Three phases of client load: no flood; a UDP flood from one source with bpfgate off; the
# same flood with bpfgate attached to bgdemo-gw0 with one per-source limit for everyone. It
# prints what the client got, what the gateway saw and what bpfgate dropped, then removes
# everything it made (also on failure or Ctrl-C). No namespace has a default route and all
# addresses are from 198.18.0.0/15.
#
# CPUs: the gateway owns CPU 1. Its receive path (the veth's NAPI, made a kthread by threaded
# NAPI) is pinned there and runs SCHED_FIFO, as a NIC's softirq runs ahead of tasks; nginx
# runs there too. The attacker's generator runs on CPU 0, and so does the client, at a
# higher priority so that the generator's busy loop does not delay it.
#
# Needs root and 2 CPUs. Honours BUILD_DIR (default build); DEMO_SECS (client load per
# phase, default 8) and DEMO_RATE (bpfgate's per-source limit, default 1000 pps).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "demo: run as root (sudo $0): it loads BPF programs and creates namespaces" >&2
  exit 1
fi
if [ "$(nproc)" -lt 2 ]; then
  echo "demo: needs at least 2 CPUs (one for the gateway, one for the others)" >&2
  exit 1
fi

scripts/deps.sh
scripts/build.sh
BUILD_DIR="${BUILD_DIR:-build}"
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$PWD/$BUILD_DIR" ;; esac
BG="$BUILD_DIR/bpfgate"
GEN="$BUILD_DIR/bpfgate-gen"
if [ ! -x "$BG" ] || [ ! -x "$GEN" ]; then
  echo "demo: no $BG or $GEN after the build" >&2
  exit 1
fi

SECS=${DEMO_SECS:-8}     # client load per phase, seconds
RATE=${DEMO_RATE:-1000}  # bpfgate's limit per source, packets/s
CONNS=8                  # client connections...
THINK_MS=30              # ...each waiting this long between requests: ~260 requests/s
ATK_CPU=0 CLI_CPU=0 GW_CPU=1

NS_SW=bgdemo-sw NS_GW=bgdemo-gw NS_CLI=bgdemo-cli NS_ATK=bgdemo-atk
ALL_NS=("$NS_CLI" "$NS_ATK" "$NS_GW" "$NS_SW")
BR=bgdemo-br0
GW_IF=bgdemo-gw0 CLI_IF=bgdemo-cli0 ATK_IF=bgdemo-atk0 # the hosts' ends of the veths
SW_GW=bgdemo-sgw SW_CLI=bgdemo-scli SW_ATK=bgdemo-satk # the bridge's ends
GW_IP=198.18.0.1 CLI_IP=198.18.0.10 ATK_IP=198.18.0.66 PLEN=24
UDP_PORT=9 # the flood's destination port: nothing listens there

in_ns() {
  local ns=$1
  shift
  nsenter --net="/run/netns/$ns" "$@"
}
log() { printf 'demo: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}
pause() { sleep "$1" & wait $!; } # a wait the INT/TERM traps can interrupt

# ---- cleanup ------------------------------------------------------------------------------
TMP=""
JOBS=() # background jobs (generator, client)
remove_all() {
  local p ns pids="" try
  for p in "${JOBS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -d "/sys/fs/bpf/bpfgate/$GW_IF" ]; then
    "$BG" detach "$GW_IF" >/dev/null || log "warning: bpfgate detach $GW_IF failed"
  fi
  # Every process in our namespaces is ours: nginx, and a generator or client if any is left.
  for try in 1 2 3 4 5 6 7 8 9 10 11; do
    pids=""
    for ns in "${ALL_NS[@]}"; do
      if [ -e "/run/netns/$ns" ]; then pids+=" $(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')"; fi
    done
    if [ -z "${pids// /}" ]; then break; fi
    # shellcheck disable=SC2086
    if [ "$try" -lt 11 ]; then kill $pids 2>/dev/null; else kill -KILL $pids 2>/dev/null; fi
    sleep 0.2
  done
  for ns in "${ALL_NS[@]}"; do
    if [ -e "/run/netns/$ns" ]; then ip netns del "$ns" || log "warning: ip netns del $ns failed"; fi
  done
  if [ -n "$TMP" ]; then rm -rf "$TMP"; fi
  return 0
}
on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  remove_all
  if [ "$rc" -ne 0 ]; then log "stopped (exit $rc); removed everything the demo made"; fi
  exit "$rc"
}

# One demo at a time (the names are fixed): lock this script itself.
exec {LOCK_FD}<"$0"
flock -n "$LOCK_FD" || die "another demo is running"
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
leftover=""
for ns in "${ALL_NS[@]}"; do
  if [ -e "/run/netns/$ns" ]; then leftover=1; fi
done
if [ -d "/sys/fs/bpf/bpfgate/$GW_IF" ]; then leftover=1; fi
if [ -n "$leftover" ]; then
  log "removing what an earlier, killed run left behind"
  remove_all
fi
TMP=$(mktemp -d /tmp/bgdemo.XXXXXX)
chmod 755 "$TMP" # nginx's workers run as another user and read the page from here

mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

# ---- topology -----------------------------------------------------------------------------
log "building the topology: namespaces ${ALL_NS[*]}"
for ns in "${ALL_NS[@]}"; do
  ip netns add "$ns"
  in_ns "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  in_ns "$ns" ip link set lo up
done
in_ns "$NS_SW" ip link add "$BR" type bridge
in_ns "$NS_SW" ip link set "$BR" up
add_host() { # namespace host-end switch-end address
  in_ns "$NS_SW" ip link add "$3" type veth peer name "$2" netns "$1"
  in_ns "$NS_SW" ip link set "$3" master "$BR" up
  in_ns "$1" ip addr add "$4/$PLEN" dev "$2"
  in_ns "$1" ip link set "$2" up
}
add_host "$NS_GW" "$GW_IF" "$SW_GW" "$GW_IP"
add_host "$NS_CLI" "$CLI_IF" "$SW_CLI" "$CLI_IP"
add_host "$NS_ATK" "$ATK_IF" "$SW_ATK" "$ATK_IP"
for ns in "${ALL_NS[@]}"; do
  [ -z "$(in_ns "$ns" ip route show default)" ] || die "$ns has a default route"
done
mac_of() { in_ns "$1" ip -br link show dev "$2" | awk '{print $3}'; }
GW_MAC=$(mac_of "$NS_GW" "$GW_IF")
# Static forwarding entries: the bridge never floods the attack to the other ports.
in_ns "$NS_SW" bridge fdb replace "$GW_MAC" dev "$SW_GW" master static
in_ns "$NS_SW" bridge fdb replace "$(mac_of "$NS_CLI" "$CLI_IF")" dev "$SW_CLI" master static
in_ns "$NS_SW" bridge fdb replace "$(mac_of "$NS_ATK" "$ATK_IF")" dev "$SW_ATK" master static

# The gateway's receive path on the gateway's CPU: GRO (or XDP) gives its veth a NAPI
# instance, which needs TSO off on the sending end; threaded NAPI runs it in a kthread.
in_ns "$NS_SW" ethtool -K "$SW_GW" tso off >/dev/null
in_ns "$NS_GW" ethtool -K "$GW_IF" gro on >/dev/null
# /sys/class/net shows the namespace of whoever mounted sysfs: mount one, privately.
in_ns "$NS_GW" unshare --mount --propagation private \
  sh -c "mount -t sysfs sysfs /sys && echo 1 > /sys/class/net/$GW_IF/threaded"
NAPI_PIDS=""
pin_napi() { # kthreads napi/<dev>-<id>; attaching XDP may create new ones
  NAPI_PIDS=$(ps -e -o pid=,comm= | awk -v n="napi/$GW_IF-" 'index($2, n) == 1 {print $1}')
  [ -n "$NAPI_PIDS" ] || die "no NAPI kthread for $GW_IF (threaded NAPI unsupported?)"
  local p
  for p in $NAPI_PIDS; do
    taskset -pc "$GW_CPU" "$p" >/dev/null
    chrt -f -p 50 "$p"
  done
}
pin_napi

# ---- nginx --------------------------------------------------------------------------------
mkdir -p "$TMP/www"
printf '<!doctype html><title>bpfgate demo</title><p>%s</p>\n' "$(printf 'x%.0s' $(seq 500))" \
  >"$TMP/www/index.html"
chmod 644 "$TMP/www/index.html"
cat >"$TMP/nginx.conf" <<EOF
worker_processes 1;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $TMP/client_body;
  proxy_temp_path $TMP/proxy;
  fastcgi_temp_path $TMP/fastcgi;
  uwsgi_temp_path $TMP/uwsgi;
  scgi_temp_path $TMP/scgi;
  keepalive_requests 100000;
  server {
    listen $GW_IP:80;
    root $TMP/www;
  }
}
EOF
log "starting nginx in $NS_GW"
taskset -c "$GW_CPU" nsenter --net="/run/netns/$NS_GW" \
  nginx -e "$TMP/nginx-error.log" -p "$TMP/" -c "$TMP/nginx.conf" ||
  die "nginx did not start: $(cat "$TMP/nginx-error.log" 2>/dev/null)"
in_ns "$NS_CLI" curl -sf --max-time 5 -o /dev/null "http://$GW_IP/" || die "nginx does not answer"

# A client of people, not a load test: each connection thinks between requests, so the
# client's source stays well under the per-source limit.
echo "function delay() return $THINK_MS end" >"$TMP/client.lua"

# ---- measurements -------------------------------------------------------------------------
# "12.34us" / "1.20ms" / "2.00s" -> milliseconds
to_ms() {
  awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
    printf "%.2f", n }'
}
# Packets bpfgate dropped on the gateway's interface so far. `bpfgate -j status` prints
# {"interfaces":[{...},...]}: cut the array's objects out by brace depth, keep ours.
bpfgate_dropped() {
  [ -d "/sys/fs/bpf/bpfgate/$GW_IF" ] || {
    echo 0
    return
  }
  local out
  out=$(in_ns "$NS_GW" "$BG" -j status) || true
  awk -v want="\"iface\":\"$GW_IF\"" '
    { d = 0; s = 0; obj = ""
      for (i = 1; i <= length($0); i++) {
        c = substr($0, i, 1)
        if (s) { if (c == "\\") { i++; continue } if (c == "\"") s = 0 }
        else if (c == "\"") s = 1
        else if (c == "{") d++
        else if (c == "}") d--
        if (d >= 2 || (c == "}" && d == 1)) obj = obj c
        if (c == "}" && d == 1) {
          if (index(obj, want) && match(obj, /"dropped":[0-9]+/)) {
            print substr(obj, RSTART + 10, RLENGTH - 10); found = 1; exit
          }
          obj = ""
        } } }
    END { if (!found) print "?" }' <<<"$out"
}
# Frames the gateway's receive ring refused: the TX drops of the bridge's end of its veth.
ring_drops() { in_ns "$NS_SW" cat /proc/net/dev | awk -v d="$SW_GW:" '$1 == d { print $13 }'; }
# UDP datagrams that went up the gateway's stack to the closed port (Udp: NoPorts).
udp_noports() {
  in_ns "$NS_GW" cat /proc/net/snmp | awk '$1 == "Udp:" { if (!h) { for (i = 2; i <= NF; i++) if ($i == "NoPorts") c = i; h = 1 } else print $c }'
}
napi_ns() { # CPU time of the gateway's receive kthreads, ns
  local p t=0
  for p in $NAPI_PIDS; do t=$((t + $(awk '{print $1}' "/proc/$p/schedstat" 2>/dev/null || echo 0))); done
  echo "$t"
}
now_ns() { date +%s%N; }

ROWS=()
run_phase() { # name flood(0|1)
  local name=$1 flood=$2 gen_pid="" wrk_pid t0 t1 n0 n1 r0 r1 u0 u1 b0 b1
  log "phase: $name (${SECS}s of client requests)"
  rm -f "$TMP/gen.json" "$TMP/wrk.txt"
  b0=$(bpfgate_dropped) r0=$(ring_drops) u0=$(udp_noports) n0=$(napi_ns) t0=$(now_ns)
  if [ "$flood" = 1 ]; then
    # As fast as one core sends, bounded in time and count.
    taskset -c "$ATK_CPU" nsenter --net="/run/netns/$NS_ATK" \
      "$GEN" -i "$ATK_IF" --dst-mac "$GW_MAC" --src "$ATK_IP" --dst "$GW_IP" \
      --dport "$UDP_PORT" --rate 0 -n 50000000 --duration "$((SECS + 2))" -j >"$TMP/gen.json" &
    gen_pid=$!
    JOBS+=("$gen_pid")
    pause 1
  fi
  nice -n -10 taskset -c "$CLI_CPU" nsenter --net="/run/netns/$NS_CLI" \
    wrk -t1 -c"$CONNS" -d"${SECS}s" --timeout 2s --latency -s "$TMP/client.lua" \
    "http://$GW_IP/" >"$TMP/wrk.txt" &
  wrk_pid=$!
  JOBS+=("$wrk_pid")
  wait "$wrk_pid" || die "wrk failed: $(cat "$TMP/wrk.txt")"
  if [ -n "$gen_pid" ]; then wait "$gen_pid" || die "bpfgate-gen failed"; fi
  t1=$(now_ns) n1=$(napi_ns) u1=$(udp_noports) r1=$(ring_drops) b1=$(bpfgate_dropped)

  local rps reqs p50 p99 errs pps="-" drop cpu
  rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$TMP/wrk.txt")
  reqs=$(awk '/ requests in / { print $1 }' "$TMP/wrk.txt")
  [ -n "$rps" ] && [ -n "$reqs" ] || die "cannot read wrk's output: $(cat "$TMP/wrk.txt")"
  p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$TMP/wrk.txt")")
  p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$TMP/wrk.txt")")
  errs=$(awk '/Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 }
              /Non-2xx or 3xx/ { n += $5 } END { print n + 0 }' "$TMP/wrk.txt")
  if [ "$flood" = 1 ]; then
    pps=$(sed -n 's/.*"pps":\([0-9.]*\).*/\1/p' "$TMP/gen.json" | awk '{ printf "%.0f", $1 }')
    [ -n "$pps" ] || die "cannot read bpfgate-gen's output: $(cat "$TMP/gen.json")"
  fi
  if [ "$b0" = "?" ] || [ "$b1" = "?" ]; then drop="?"; else drop=$((b1 - b0)); fi
  cpu=$(awk -v n=$((n1 - n0)) -v t=$((t1 - t0)) 'BEGIN { printf "%.0f%%", 100 * n / t }')
  ROWS+=("$name|$rps|$reqs|$p50|$p99|$errs|$pps|$drop|$((u1 - u0))|$((r1 - r0))|$cpu")
}

run_phase "no flood" 0
run_phase "flood, bpfgate off" 1
log "attaching bpfgate to $GW_IF in $NS_GW: $RATE packets/s per source"
in_ns "$NS_GW" "$BG" attach "$GW_IF" --rate "$RATE" >&2
pin_napi
run_phase "flood, bpfgate on" 1

# Per source, from bpfgate's own table: the client must not have lost a packet to it.
TOP=$(in_ns "$NS_GW" "$BG" -j top "$GW_IF" -c 1 -i 0.1 -n 100) || die "bpfgate top failed"
source_field() { # addr field: the number in the flat JSON object of that source
  awk -v a="\"addr\":\"$1\"" -v f="\"$2\":" '{
    i = index($0, a); if (!i) { print "?"; exit }
    pre = substr($0, 1, i); j = 0; while (match(substr(pre, j + 1), /\{/)) j += RSTART
    rest = substr($0, j); e = index(rest, "}"); obj = substr(rest, 1, e)
    k = index(obj, f); if (!k) { print "?"; exit }
    v = substr(obj, k + length(f)); match(v, /^[0-9]+/); print substr(v, 1, RLENGTH) }' <<<"$TOP"
}
CLI_PKTS=$(source_field "$CLI_IP" packets) CLI_DROPS=$(source_field "$CLI_IP" drops)
ATK_PKTS=$(source_field "$ATK_IP" packets) ATK_DROPS=$(source_field "$ATK_IP" drops)

# ---- report -------------------------------------------------------------------------------
echo
echo "bpfgate demo: a client (~$((CONNS * 1000 / THINK_MS)) requests/s at most, 8 connections) and a UDP flood"
echo "from one attacker, both into the gateway's one interface; ${SECS}s per phase."
echo
fmt='%-19s | %7s %9s %8s %9s %7s | %10s %11s %11s %11s %8s\n'
# shellcheck disable=SC2059
printf "$fmt" "" "client:" "" "" "" "" "gateway:" "" "" "" ""
# shellcheck disable=SC2059
printf "$fmt" phase "req/s" requests "p50 ms" "p99 ms" errors "flood pps" "bpfgate" "up the" "ring full" "rx CPU"
# shellcheck disable=SC2059
printf "$fmt" "" "" "" "" "" "" offered dropped stack dropped ""
printf '%s\n' "--------------------+----------------------------------------------+--------------------------------------------------------"
for r in "${ROWS[@]}"; do
  IFS='|' read -r a b c d e f g h i j k <<<"$r"
  # shellcheck disable=SC2059
  printf "$fmt" "$a" "$b" "$c" "$d" "$e" "$f" "$g" "$h" "$i" "$j" "$k"
done
echo
echo "  up the stack: flood datagrams that reached the gateway's UDP layer (closed port)."
echo "  ring full:    frames the gateway's veth refused because its 256-slot receive ring was full;"
echo "                they are the client's as well as the attacker's: one queue for both."
echo "  rx CPU:       CPU time of the gateway's receive path (XDP, stack) over the phase."
echo
echo "bpfgate's per-source table ($RATE packets/s per source):"
printf '  client   %-12s %12s packets %12s dropped\n' "$CLI_IP" "$CLI_PKTS" "$CLI_DROPS"
printf '  attacker %-12s %12s packets %12s dropped\n' "$ATK_IP" "$ATK_PKTS" "$ATK_DROPS"
if [ "$CLI_DROPS" != 0 ]; then
  log "warning: bpfgate dropped packets of the client; raise DEMO_RATE above its rate"
fi
