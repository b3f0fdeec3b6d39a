#!/usr/bin/env bash
# The soak (issue 13): a long run of mixed traffic against a running agent. Do its memory
# and file descriptors stay flat, its maps bounded, and its verdicts right, through
# reloads, spoofed bursts and blocklist churn?
#
# Namespaces made (and removed) here; 198.18.0.0/15 and 2001:db8::/32 only; no default route:
#
#   bgsk-gw   gateway: `bpfgate run` with a control socket, a state directory and a bpffs
#             of its own under the temp directory (--bpffs), /metrics on 127.0.0.1:9477
#             there; nginx on 198.18.0.1 and 2001:db8::1, port 80; tcp_syncookies=2
#   bgsk-cli  the legitimate client (198.18.0.10, 2001:db8::10): curl, and its probes
#   bgsk-net  the upstream network: a bridge to both, and the attacker, whose bpfgate-gen
#             sends straight into the gateway's link
#
# For --duration seconds, all at once:
#   client   curl, 5 requests on one connection, IPv4 then IPv6, every --client-every s;
#            every request that does not get a 200 within 2 s is a failure
#   bursts   every --burst-every s one burst of --burst-seconds, in turn: spoofed IPv4
#            sources (198.19.0.0/16) and spoofed IPv6 sources (2001:db8:8000::/33) at
#            --burst-rate pps, then one source (198.19.250.N) at 5,000 pps, over its
#            limit for longer than auto_block.after: the agent's blocklist takes it for
#            auto_block.ttl
#   reloads  every 10 s the config file alternates between two versions that differ in a
#            rule, then `bpfgate reload`: each must answer ok and advance the generation
#   churn    every second `bpfgate block` of a random prefix of 198.19.0.0/16: every other
#            one with a --ttl (in 198.19.128.0/17, left to expire), the others without (in
#            198.19.0.0/17, unblocked again once more than 32 are held)
#   probes   every --probe-every s, never during a burst: frames from a denied source
#            (IPv4, IPv6) and from the client to a port a rule drops, all of which must be
#            dropped, and from the client to an open port, all of which must pass; counted
#            where they reach the gateway's stack (nftables counters at prerouting in the
#            gateway's namespace). Every difference is a mismatch, printed when it happens.
# Every --interval s one line: the agent's RSS (VmRSS) and open fds, the fill of the
# per-source table, the known table and the blocklist (the agent's /metrics, which counts
# the per-source table at each sweep), and what the activities above did meanwhile. At
# the end, the blocklist's manual entries without a TTL must be exactly those the churn
# holds, and a summary: RSS at start/min/max/end, map fills' maximum against their sizes,
# reloads ok/refused, mismatches, client failures.
# Exit status 1 if there was a mismatch, a refused reload, a failed block/unblock or a
# client failure, or the agent died; so a soak can gate a release by hand.
#
# bench/run soak [--duration S] ... runs it from the build directory (configured there as
# bench/soak_bench). Honours BUILD_DIR.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
[ -f "$REPO/bench/soak/run.sh" ] || REPO="@PROJECT_SOURCE_DIR@"
if [ -z "${BUILD_DIR:-}" ] && [ "$(basename "$0")" = soak_bench ]; then
  BUILD_DIR="$(cd "$(dirname "$0")/.." && pwd)"
fi
BUILD_DIR="${BUILD_DIR:-build}"
[[ "$BUILD_DIR" == /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
BG="$BUILD_DIR/bpfgate"
GEN="$BUILD_DIR/bpfgate-gen"

# ---- options ------------------------------------------------------------------------------
duration=1800 interval=10 json=0 out=""
burst_every=20 burst_secs=3 burst_rate=100000 probe_every=5 client_every=0.5
probe_frames=200 max_sources=16384
usage() {
  cat <<EOF
usage: bench/run soak [--duration S] [--interval S] [--out DIR] [-j|--json] [--quick]
  --duration S      seconds of traffic (default $duration; 60 to 86400)
  --quick           --duration 120: a short check
  --interval S      seconds between report lines (default $interval)
  --burst-every S   seconds between the starts of two bursts (default $burst_every)
  --burst-seconds S length of a burst (default $burst_secs)
  --burst-rate PPS  spoofed frames a second in a burst (default $burst_rate)
  --probe-every S   seconds between two rounds of verdict probes (default $probe_every)
  --probe-frames N  frames of each probe kind a round (default $probe_frames)
  --client-every S  the client's pause between two rounds of requests (default $client_every)
  --max-sources N   the per-source table's size (default $max_sources: small, so that the
                    bursts fill it and the bound shows)
  --out DIR         where samples.csv, events.log, agent.log and summary.txt go
                    (default \$BUILD_DIR/bench/soak-results)
  -j, --json        one JSON object per report line and one for the summary on stdout
                    (the lines for people go to stderr)
  --runs N          accepted as every benchmark takes it; a soak is one run
EOF
}
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="${2:?}"; shift ;;
    --quick) duration=120 ;;
    --interval) interval="${2:?}"; shift ;;
    --burst-every) burst_every="${2:?}"; shift ;;
    --burst-seconds) burst_secs="${2:?}"; shift ;;
    --burst-rate) burst_rate="${2:?}"; shift ;;
    --probe-every) probe_every="${2:?}"; shift ;;
    --probe-frames) probe_frames="${2:?}"; shift ;;
    --client-every) client_every="${2:?}"; shift ;;
    --max-sources) max_sources="${2:?}"; shift ;;
    --out) out="${2:?}"; shift ;;
    --runs) shift ;;
    -j | --json) json=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "soak: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
bad_arg() { echo "soak: $*" >&2; usage >&2; exit 2; }
int_in() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }
int_in "$duration" 60 86400 || bad_arg "--duration: 60 to 86400 seconds"
int_in "$interval" 1 600 || bad_arg "--interval: 1 to 600 seconds"
int_in "$burst_secs" 1 60 || bad_arg "--burst-seconds: 1 to 60"
int_in "$burst_every" $((burst_secs + 2)) 3600 || bad_arg "--burst-every: at least --burst-seconds + 2"
int_in "$burst_rate" 1000 10000000 || bad_arg "--burst-rate: 1000 to 10000000 pps"
int_in "$probe_every" 1 600 || bad_arg "--probe-every: 1 to 600 seconds"
int_in "$probe_frames" 1 1000 || bad_arg "--probe-frames: 1 to 1000 (the client's bucket holds 2000)"
[[ "$client_every" =~ ^[0-9]+(\.[0-9]+)?$ ]] || bad_arg "--client-every: seconds"
int_in "$max_sources" 1024 16777216 || bad_arg "--max-sources: 1024 to 16777216"
out="${out:-$BUILD_DIR/bench/soak-results}"

log() { printf 'soak: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root: it loads BPF programs and creates namespaces"
for tool in nsenter ip bridge nginx curl nft jq flock timeout "$BG" "$GEN"; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/deps.sh installs the tools; build first)"
done

# ---- names, addresses ------------------------------------------------------------------------
NS_NET=bgsk-net NS_GW=bgsk-gw NS_CLI=bgsk-cli
ALL_NS=("$NS_CLI" "$NS_GW" "$NS_NET")
BR=bgsk-br0 GW_IF=bgsk-gw0 CLI_IF=bgsk-cli0 SW_GW=bgsk-sgw SW_CLI=bgsk-scli
GW4=198.18.0.1 GW6=2001:db8::1 CLI4=198.18.0.10 CLI6=2001:db8::10
DENY4=198.18.7.7 DENY6=2001:db8:7::7  # in the deny list, off the gateway's link
SPOOF4=198.19.0.0/16 SPOOF6=2001:db8:8000::/33
PASS_PORT=9 RULE_PORT=7 BURST_PORT=10
METRICS=127.0.0.1:9477

# shellcheck source=bench/lib/netns.sh
. "$REPO/bench/lib/netns.sh"
gw() { in_ns "$NS_GW" "$@"; }  # fails if the namespace is gone: never the root namespace
now() { echo "${EPOCHREALTIME%.*}"; }
sleep_until() {  # epoch seconds (integer)
  local d=$(($1 - $(now)))
  [ "$d" -gt 0 ] && sleep "$d"
  return 0
}

# ---- cleanup: on exit, failure and interrupt ------------------------------------------------
TMP="" BPFFS="" AGENT_PID="" LOOP_PIDS=() LOCK_FD=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  for p in "${LOOP_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  if [ -n "$AGENT_PID" ] && kill -0 "$AGENT_PID" 2>/dev/null; then
    kill -TERM "$AGENT_PID"  # without keep_datapath it detaches and removes its pins
    for _ in $(seq 1 50); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  ns_remove_all "${ALL_NS[@]}"  # the processes left in them are ours (the agent too)
  if [ -n "$BPFFS" ] && mountpoint -q "$BPFFS"; then umount "$BPFFS"; fi
  [ -n "$TMP" ] && rm -rf "$TMP"
  [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ] && log "failed or interrupted (exit $rc); cleaned up"
  exit "$rc"
}
exec {LOCK_FD}>/run/bgsoak.lock
flock -n "$LOCK_FD" || die "another soak is running (lock /run/bgsoak.lock)"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if ns_any_left "${ALL_NS[@]}"; then
  log "removing leftovers of an earlier run"
  ns_remove_all "${ALL_NS[@]}"
fi
TMP=$(mktemp -d /tmp/bgsoak.XXXXXX)
chmod 755 "$TMP"
mkdir -p "$out"

# ---- topology ---------------------------------------------------------------------------------
for ns in "${ALL_NS[@]}"; do ip netns add "$ns"; done
in_ns "$NS_NET" ip link set lo up
in_ns "$NS_NET" ip link add "$BR" type bridge
in_ns "$NS_NET" ip link set "$BR" up
plug() {  # namespace switch-port its-interface v4 v6: a host on the bridge
  in_ns "$NS_NET" ip link add "$2" type veth peer name "$3" netns "$1"
  in_ns "$NS_NET" ip link set "$2" master "$BR" up
  in_ns "$1" ip link set lo up
  in_ns "$1" ip addr add "$4/24" dev "$3"
  in_ns "$1" ip addr add "$5/64" dev "$3" nodad
  in_ns "$1" ip link set "$3" up
  in_ns "$NS_NET" bridge fdb replace "$(mac_of "$1" "$3")" dev "$2" master static
}
plug "$NS_GW" "$SW_GW" "$GW_IF" "$GW4" "$GW6"
plug "$NS_CLI" "$SW_CLI" "$CLI_IF" "$CLI4" "$CLI6"
ns_expect_no_default_route "${ALL_NS[@]}"
GW_MAC=$(mac_of "$NS_GW" "$GW_IF")
gw sysctl -qw net.ipv4.tcp_syncookies=2  # the client proves itself with a cookie (README)

# ---- nginx on the gateway ----------------------------------------------------------------------
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
  server {
    listen $GW4:80;
    listen [$GW6]:80;
    root $TMP/www;
    location / { }
  }
}
EOF
gw nginx -e "$TMP/nginx-error.log" -p "$TMP" -c "$TMP/nginx.conf"
for a in "$GW4" "[$GW6]"; do
  ok=0
  for _ in $(seq 1 30); do
    in_ns "$NS_CLI" curl -sf --max-time 2 -o /dev/null "http://$a/" && { ok=1; break; }
    sleep 0.1
  done
  [ "$ok" = 1 ] || die "nginx does not answer on $a"
done

# ---- what reaches the gateway's stack: one nftables counter per probe kind ----------------------
PROBES="deny4 deny6 rule4 rule6 pass4 pass6"
gw nft -f - <<EOF
table inet bgsoak {
  counter deny4 {}
  counter deny6 {}
  counter rule4 {}
  counter rule6 {}
  counter pass4 {}
  counter pass6 {}
  chain pre {
    type filter hook prerouting priority raw; policy accept;
    ip saddr $DENY4 udp dport $PASS_PORT counter name "deny4"
    ip6 saddr $DENY6 udp dport $PASS_PORT counter name "deny6"
    ip saddr $CLI4 udp dport $RULE_PORT counter name "rule4"
    ip6 saddr $CLI6 udp dport $RULE_PORT counter name "rule6"
    ip saddr $CLI4 udp dport $PASS_PORT counter name "pass4"
    ip6 saddr $CLI6 udp dport $PASS_PORT counter name "pass6"
  }
}
EOF
nft_counters() {  # -> "deny4=N deny6=N ..." in PROBES' order
  local j
  j=$(gw nft -j list counters table inet bgsoak) || return 1
  for k in $PROBES; do
    printf '%s=%s ' "$k" "$(jq -r --arg k "$k" '.nftables[] | select(.counter.name == $k) | .counter.packets' <<<"$j")"
  done
  echo
}

# ---- the agent -------------------------------------------------------------------------------
# Two configs that differ in one rule (udp/53 or udp/54 dropped); everything else alike.
BPFFS="$TMP/bpffs" RUN_DIR="$TMP/run" STATE_DIR="$TMP/state"
mkdir -p "$BPFFS" "$RUN_DIR" "$STATE_DIR"
chmod 700 "$RUN_DIR" "$STATE_DIR"
mount -t bpf bpf "$BPFFS"
SOCK="$RUN_DIR/agent.sock" CFG="$TMP/soak.yaml"
config_of() {  # the port of the rule that differs
  cat <<EOF
interfaces:
  - name: $GW_IF
    mode: native
    max_sources: $max_sources
limits:
  rate: 1000
  burst: 2000
  prove: syncookies
deny:
  - 198.18.7.0/24
  - 2001:db8:7::/48
rules:
  - match: udp/$RULE_PORT
    action: drop
  - match: tcp/80
    action: limit
    rate: 2000
    burst: 4000
  - match: udp/$1
    action: drop
auto_block:
  after: 1s
  ttl: 20s
  max_rate: 100
  never:
    - 198.18.0.0/24
    - 2001:db8::/64
sweep:
  interval: 1s
  source_idle: 30s
agent:
  control_socket: $SOCK
  state_dir: $STATE_DIR
  keep_datapath: false
metrics:
  listen: $METRICS
EOF
}
config_of 53 >"$TMP/soak-a.yaml"
config_of 54 >"$TMP/soak-b.yaml"
cp "$TMP/soak-a.yaml" "$CFG"
gw "$BG" check "$CFG" >/dev/null || die "the soak's config is refused: $(gw "$BG" check "$CFG" 2>&1)"
AGENT_LOG="$TMP/agent.log"
setsid nsenter --net="/run/netns/$NS_GW" "$BG" --bpffs "$BPFFS" run -c "$CFG" >>"$AGENT_LOG" 2>&1 &
AGENT_PID=$!
scrape() { gw curl -sf --max-time 2 "http://$METRICS/metrics"; }
up=0
for _ in $(seq 1 100); do
  kill -0 "$AGENT_PID" 2>/dev/null || die "the agent exited: $(tail -n 5 "$AGENT_LOG")"
  if [ -S "$SOCK" ] && scrape 2>/dev/null | grep -q "bpfgate_map_max_entries{interface=\"$GW_IF\""; then
    up=1
    break
  fi
  sleep 0.2
done
[ "$up" = 1 ] || die "the agent did not come up in 20 s: $(tail -n 5 "$AGENT_LOG")"
bg_status() { gw "$BG" --bpffs "$BPFFS" -j status "$GW_IF"; }
generation() { bg_status | jq -r '.interfaces[0].generation'; }

# ---- the activities, each a loop bounded by END ------------------------------------------------
# Each appends one line per thing it did to EVENTS: "TIME KIND FIELDS..." (one short write
# each, with O_APPEND: lines of concurrent writers do not mix).
EVENTS="$TMP/events.log"
: >"$EVENTS"
ev() { echo "$(now) $*" >>"$EVENTS"; }
BURST_LOCK="$TMP/burst.lock"
: >"$BURST_LOCK"
gen_sent() { jq -r '.sent // 0' 2>/dev/null || echo 0; }

client_loop() {
  set +e
  local fam url ok fail codes
  while [ "$(now)" -lt "$END" ]; do
    for fam in 4 6; do
      url="http://$GW4/"
      [ "$fam" = 6 ] && url="http://[$GW6]/"
      codes=$(in_ns "$NS_CLI" timeout -k 1 12 curl -s --max-time 2 -w '%{http_code}\n' \
        -o /dev/null "$url" -o /dev/null "$url" -o /dev/null "$url" -o /dev/null "$url" \
        -o /dev/null "$url" 2>/dev/null)
      ok=$(grep -c '^200$' <<<"$codes")
      fail=$((5 - ok))
      ev client "$fam" "$ok" "$fail"
      [ "$fail" -gt 0 ] && log "client: $fail of 5 IPv$fam requests failed ($(tr '\n' ' ' <<<"$codes"))"
    done
    sleep "$client_every"
  done
}

burst_loop() {
  set +e
  local k=0 next kind src dst rate n sent fd
  exec {fd}>"$BURST_LOCK"
  next=$((START + burst_every / 2))
  while [ $((next + burst_secs + 1)) -lt "$END" ]; do
    sleep_until "$next"
    case $((k % 3)) in
      0) kind=spoof4 src=$SPOOF4 dst=$GW4 rate=$burst_rate ;;
      1) kind=spoof6 src=$SPOOF6 dst=$GW6 rate=$burst_rate ;;
      2) kind=heavy src=198.19.250.$((k / 3 % 250 + 1)) dst=$GW4 rate=5000 ;;
    esac
    n=$((rate * burst_secs))
    flock "$fd"
    sent=$(in_ns "$NS_NET" timeout -k 2 $((burst_secs + 10)) "$GEN" -i "$SW_GW" --dst-mac "$GW_MAC" \
      --src "$src" --dst "$dst" --dport "$BURST_PORT" --rate "$rate" -n "$n" \
      --duration "$burst_secs" -j 2>>"$TMP/gen.err" | gen_sent)
    flock -u "$fd"
    ev burst "$kind" "$src" "${sent:-0}"
    k=$((k + 1))
    next=$((next + burst_every))
  done
}

reload_loop() {
  set +e
  local i=0 next=$((START + 10)) g0 g1 msg variant
  while [ "$next" -lt "$END" ]; do
    sleep_until "$next"
    i=$((i + 1))
    variant=a
    [ $((i % 2)) = 1 ] && variant=b
    cp "$TMP/soak-$variant.yaml" "$CFG.new" && mv "$CFG.new" "$CFG"
    g0=$(generation)
    if msg=$(timeout -k 2 20 "$BG" reload --socket "$SOCK" 2>&1); then
      g1=$(generation)
      if [ -n "$g0" ] && [ -n "$g1" ] && [ "$g1" -gt "$g0" ]; then
        ev reload ok "$variant" "$g0" "$g1"
      else
        ev reload stale "$variant" "$g0" "$g1"
        log "reload $i answered ok but the generation went from '$g0' to '$g1'"
      fi
    else
      ev reload refused "$variant"
      log "reload $i refused: $msg"
    fi
    next=$((next + 10))
  done
}

random_prefix() {  # third-octet base and span -> a random prefix /24 to /32 inside 198.19.X.0
  local c=$(($1 + RANDOM % $2)) d=$((RANDOM % 256)) len=$((24 + RANDOM % 9))
  d=$((d - d % (1 << (32 - len))))
  echo "198.19.$c.$d/$len"
}
churn_loop() {
  set +e
  local n=0 p msg held=() ttl
  declare -A is_held=()
  while [ "$(now)" -lt "$END" ]; do
    n=$((n + 1))
    if [ $((n % 2)) = 1 ]; then
      p=$(random_prefix 128 128) ttl=$((5 + RANDOM % 11))s
      if msg=$(gw timeout -k 2 10 "$BG" --bpffs "$BPFFS" block "$p" --ttl "$ttl" --iface "$GW_IF" 2>&1); then
        ev block ok "$p" "$ttl"
      else
        ev block fail "$p" "$ttl"
        log "block $p --ttl $ttl failed: $msg"
      fi
    else
      p=$(random_prefix 0 128)
      if [ -z "${is_held[$p]:-}" ]; then
        if msg=$(gw timeout -k 2 10 "$BG" --bpffs "$BPFFS" block "$p" --iface "$GW_IF" 2>&1); then
          ev block ok "$p" none
          held+=("$p")
          is_held[$p]=1
        else
          ev block fail "$p" none
          log "block $p failed: $msg"
        fi
      fi
      if [ "${#held[@]}" -gt 32 ]; then
        p=${held[0]}
        held=("${held[@]:1}")
        unset "is_held[$p]"
        if msg=$(gw timeout -k 2 10 "$BG" --bpffs "$BPFFS" unblock "$p" --iface "$GW_IF" 2>&1); then
          ev unblock ok "$p"
        else
          ev unblock fail "$p"
          log "unblock $p failed: $msg"
        fi
      fi
    fi
    printf '%s\n' "${held[@]}" >"$TMP/held.new" && mv "$TMP/held.new" "$TMP/held.txt"
    sleep 1
  done
}

probe_loop() {
  set +e
  local next=$((START + 3)) fd c0 c1 k sent arrived want g
  declare -A s=()
  exec {fd}>"$BURST_LOCK"
  send() {  # kind namespace interface source destination port
    in_ns "$2" timeout -k 2 10 "$GEN" -i "$3" --dst-mac "$GW_MAC" --src "$4" --dst "$5" \
      --dport "$6" -n "$probe_frames" --rate 20000 --duration 5 -j 2>>"$TMP/gen.err" | gen_sent
  }
  while [ $((next + 2)) -lt "$END" ]; do
    sleep_until "$next"
    next=$((next + probe_every))
    flock -w $((burst_secs + 15)) "$fd" || { ev probe_skipped; continue; }
    c0=$(nft_counters)
    s[deny4]=$(send deny4 "$NS_NET" "$SW_GW" "$DENY4" "$GW4" "$PASS_PORT")
    s[deny6]=$(send deny6 "$NS_NET" "$SW_GW" "$DENY6" "$GW6" "$PASS_PORT")
    s[rule4]=$(send rule4 "$NS_CLI" "$CLI_IF" "$CLI4" "$GW4" "$RULE_PORT")
    s[rule6]=$(send rule6 "$NS_CLI" "$CLI_IF" "$CLI6" "$GW6" "$RULE_PORT")
    s[pass4]=$(send pass4 "$NS_CLI" "$CLI_IF" "$CLI4" "$GW4" "$PASS_PORT")
    s[pass6]=$(send pass6 "$NS_CLI" "$CLI_IF" "$CLI6" "$GW6" "$PASS_PORT")
    sleep 0.3
    c1=$(nft_counters)
    flock -u "$fd"
    for k in $PROBES; do
      sent=${s[$k]:-0}
      arrived=$(($(sed -n "s/.*$k=\([0-9]*\).*/\1/p" <<<"$c1") - $(sed -n "s/.*$k=\([0-9]*\).*/\1/p" <<<"$c0")))
      want=0
      [[ "$k" == pass* ]] && want=$sent
      ev probe "$k" "$sent" "$arrived" "$want"
      if [ "$arrived" != "$want" ]; then
        g=$(generation)
        log "MISMATCH at $(($(now) - START)) s: $k: $sent sent, $arrived reached the stack, $want should have (generation $g)"
      fi
    done
  done
}

# ---- run ------------------------------------------------------------------------------------
rss_kb() { awk '$1 == "VmRSS:" {print $2}' "/proc/$AGENT_PID/status" 2>/dev/null; }
fds() { find "/proc/$AGENT_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
map_fills() {  # -> "sources max known max blocklist max auto-blocked" from the agent's /metrics
  scrape | awk -v i="$GW_IF" '
    !index($1, "interface=\"" i "\"") { next }
    $1 ~ /^bpfgate_map(_max)?_entries\{/ {
      m = $1; sub(/.*map="/, "", m); sub(/".*/, "", m)
      if ($1 ~ /^bpfgate_map_entries/) e[m] = $2; else x[m] = $2 }
    $1 ~ /^bpfgate_blocklist_entries\{/ && index($1, "reason=\"auto\"") { auto = $2 }
    END { printf "%d %d %d %d %d %d %d\n", e["sources"], x["sources"], e["known"], x["known"],
          e["blocklist"], x["blocklist"], auto }'
}
START=$(now)
END=$((START + duration))
SAMPLES="$out/samples.csv"
echo "t_s,rss_kb,fds,sources,sources_max,known,known_max,blocklist,blocklist_max,auto_blocked,client_ok,client_failed,reloads_ok,reloads_refused,bursts,burst_frames,blocks,unblocks,churn_failed,probe_frames,mismatches" >"$SAMPLES"
log "$duration s against bpfgate $("$BG" --version | awk '{print $2}') on $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg);" \
  "a line every $interval s; bursts of ${burst_secs} s every ${burst_every} s at $burst_rate pps"
client_loop & LOOP_PIDS+=($!)
burst_loop & LOOP_PIDS+=($!)
reload_loop & LOOP_PIDS+=($!)
churn_loop & LOOP_PIDS+=($!)
probe_loop & LOOP_PIDS+=($!)

line_out() { if [ "$json" = 1 ]; then cat >&2; else cat; fi; }
done_lines=0
AGENT_DIED=0
tick=$START  # a first line at 0 s: the agent before the soak
while :; do
  sleep_until "$tick"
  t=$(($(now) - START))
  if ! kill -0 "$AGENT_PID" 2>/dev/null; then
    AGENT_DIED=1
    log "the agent died at $t s: $(tail -n 5 "$AGENT_LOG")"
    break
  fi
  rss=$(rss_kb) nfd=$(fds) fills=$(map_fills || echo "0 0 0 0 0 0 0")
  n=$(wc -l <"$EVENTS")
  row=$(sed -n "$((done_lines + 1)),${n}p" "$EVENTS" | awk -v t="$t" -v rss="$rss" -v nfd="$nfd" -v fills="$fills" '
    $2 == "client" { ok += $4; bad += $5 }
    $2 == "reload" { if ($3 == "ok") rok++; else rbad++ }
    $2 == "burst" { b++; bf += $5 }
    $2 == "block" { if ($3 == "ok") bl++; else cf++ }
    $2 == "unblock" { if ($3 == "ok") ub++; else cf++ }
    $2 == "probe" { pf += $4; if ($5 != $6) mm += ($5 > $6 ? $5 - $6 : $6 - $5) }
    END { split(fills, f, " ")
      printf "%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d\n", t, rss, nfd,
        f[1], f[2], f[3], f[4], f[5], f[6], f[7], ok, bad, rok, rbad, b, bf, bl, ub, cf, pf, mm }')
  done_lines=$n
  echo "$row" >>"$SAMPLES"
  awk -F, '{printf "soak: %5ds  rss %5.1f MB  fds %3d  sources %6d/%d  known %d/%d  blocklist %3d/%d (auto %d)  client %3d ok %d failed  reloads %d ok %d refused  bursts %d (%d frames)  churn +%d -%d (%d failed)  probes %d frames, %d mismatches\n",
    $1, $2 / 1024, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21}' <<<"$row" | line_out
  if [ "$json" = 1 ]; then
    awk -F, -v h="$(head -n 1 "$SAMPLES")" 'BEGIN {n = split(h, k, ",")}
      {s = "{"; for (i = 1; i <= n; i++) s = s (i > 1 ? "," : "") "\"" k[i] "\":" $i; print s "}"}' <<<"$row"
  fi
  [ "$(now)" -lt "$END" ] || break
  tick=$((tick + interval))
done

# The loops end by themselves at END (each step is bounded by a timeout); wait at most 30 s.
for _ in $(seq 1 300); do
  alive=0
  for p in "${LOOP_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ "$alive" = 0 ] && break
  sleep 0.1
done
for p in "${LOOP_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
LOOP_PIDS=()

# ---- at the end: the blocklist holds exactly the manual entries the churn holds ------------------
BLOCK_DIFF=0
if [ "$AGENT_DIED" = 0 ]; then
  listed=$(gw "$BG" --bpffs "$BPFFS" -j list --iface "$GW_IF" |
    jq -r '.blocked[] | select(.reason == "manual" and .ttl_s == null) | .prefix' | sort)
  held_now=$(sort "$TMP/held.txt" 2>/dev/null | grep . || true)
  if [ "$listed" != "$held_now" ]; then
    BLOCK_DIFF=$(comm -3 <(echo "$listed") <(echo "$held_now") | grep -c . || true)
    log "MISMATCH: the blocklist's manual entries differ from those held by $BLOCK_DIFF:" \
      "$(comm -3 <(echo "$listed") <(echo "$held_now") | tr '\n\t' ' ')"
  fi
fi
cp "$EVENTS" "$out/events.log"
cp "$AGENT_LOG" "$out/agent.log"

# ---- summary -----------------------------------------------------------------------------------
ELAPSED=$(($(now) - START))
SUMMARY=$(awk -F, -v block_diff="$BLOCK_DIFF" -v died="$AGENT_DIED" -v elapsed="$ELAPSED" '
  NR == 1 { next }
  NR == 2 { r0 = $2; rmin = $2; rmax = $2 }
  { r1 = $2; if ($2 < rmin) rmin = $2; if ($2 > rmax) rmax = $2
    if (!tw && $1 >= 60) { tw = $1; rw = $2 }
    if (NR == 2 || $3 > fmax) fmax = $3; if (NR == 2) f0 = $3; f1 = $3
    if ($4 > smax) smax = $4; ssize = $5; if ($6 > kmax) kmax = $6; ksize = $7
    if ($8 > bmax) bmax = $8; bsize = $9; if ($10 > amax) amax = $10
    ok += $11; bad += $12; rok += $13; rbad += $14; b += $15; bf += $16
    bl += $17; ub += $18; cf += $19; pf += $20; mm += $21 }
  END {
    printf "soak summary (%d s):\n", elapsed
    printf "  agent RSS      start %.1f MB, min %.1f, max %.1f, end %.1f (end - start %+.1f MB)\n", r0/1024, rmin/1024, rmax/1024, r1/1024, (r1-r0)/1024
    if (tw) printf "  agent RSS      after the first minute: %.1f MB at %d s, %+.1f MB from there to the end\n", rw/1024, tw, (r1-rw)/1024
    printf "  agent fds      start %d, max %d, end %d\n", f0, fmax, f1
    printf "  map fills      sources max %d of %d (%.0f %%), known max %d of %d, blocklist max %d of %d (auto-blocked at once: max %d)\n", smax, ssize, ssize ? 100*smax/ssize : 0, kmax, ksize, bmax, bsize, amax
    printf "  reloads        %d ok, %d refused or not applied\n", rok, rbad
    printf "  bursts         %d, %d spoofed frames\n", b, bf
    printf "  churn          %d blocks, %d unblocks, %d failed; blocklist vs held: %d differences\n", bl, ub, cf, block_diff
    printf "  verdict probes %d frames, %d mismatches\n", pf, mm
    printf "  client         %d requests ok, %d failed\n", ok, bad
    if (died) printf "  THE AGENT DIED\n"
    printf "@json {\"seconds\":%d,\"rss_kb_start\":%d,\"rss_kb_min\":%d,\"rss_kb_max\":%d,\"rss_kb_end\":%d,\"rss_kb_after_60s\":%d,\"fds_start\":%d,\"fds_max\":%d,\"fds_end\":%d,\"sources_max\":%d,\"sources_size\":%d,\"known_max\":%d,\"known_size\":%d,\"blocklist_max\":%d,\"blocklist_size\":%d,\"auto_blocked_max\":%d,\"reloads_ok\":%d,\"reloads_refused\":%d,\"bursts\":%d,\"burst_frames\":%d,\"blocks\":%d,\"unblocks\":%d,\"churn_failed\":%d,\"blocklist_differences\":%d,\"probe_frames\":%d,\"mismatches\":%d,\"client_ok\":%d,\"client_failed\":%d,\"agent_died\":%s}\n", elapsed, r0, rmin, rmax, r1, rw, f0, fmax, f1, smax, ssize, kmax, ksize, bmax, bsize, amax, rok, rbad, b, bf, bl, ub, cf, block_diff, pf, mm, ok, bad, died ? "true" : "false"
    exit (mm + rbad + cf + bad + block_diff + died > 0) ? 1 : 0 }' "$SAMPLES") && rc=0 || rc=$?
grep -v '^@json ' <<<"$SUMMARY" >"$out/summary.txt"
if [ "$json" = 1 ]; then
  cat "$out/summary.txt" >&2
  sed -n 's/^@json //p' <<<"$SUMMARY"
else
  cat "$out/summary.txt"
fi
log "wrote $SAMPLES, $out/summary.txt, events.log, agent.log"
exit "$rc"
