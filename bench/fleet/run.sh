#!/usr/bin/env bash
# The fleet's shared blocklist (issue 16): how fast a block spreads, how fast a new node
# catches up, how many writes etcd takes under an auto-block storm with the publish bound on
# and off.
#
# Namespaces made (and removed) here; 198.18.0.0/15 and 2001:db8::/32 only; no default route:
#   bgfl-etcd   one etcd (Debian's etcd-server), on 198.18.10N.1 towards node N
#   bgfl-nN     node N: its agent (own bpffs, control socket, state dir) filtering bgfl-fN,
#               whose peer bgfl-pN (same namespace) carries the storm's frames; 198.18.10N.2
#
# Everything is measured through the agents and the CLI, never through the fleet's key
# layout: blocks are made with `bpfgate block` on node 1 and seen with `bpfgate -j list` on
# the others (reason fleet); etcd's keys are counted under the configured prefix
# (etcdctl get --prefix: the range's count); the agents' own figures come from `bpfgate -j fleet status`.
#
#   propagation  SIZE blocks (IPv6 /64s, distinct: no aggregation) made on node 1 one after
#                another as fast as the CLI goes; each other node is polled with `list`
#                (back to back); a block's latency is from its CLI returning on node 1 to the
#                end of the first list that shows it on a node (so at most one list's time
#                late). p50/p99/max over every (block, node); for SIZE 1, --runs samples.
#   sync         ENTRIES more entries in etcd, written in transactions of 10,000 puts whose
#                keys and values are copies of one entry node 1's agent published (the
#                layout learned from it, the CIDR swapped, the node renamed to one that never
#                runs: a running node deletes keys of its own it does not hold), then a new
#                node started:
#                the time from its start to `fleet status` applied >= the keys under the prefix.
#   storm        (after sync) node 1's filter auto-blocks sources over 1 pps (after 1 s, max 100,000 a
#                second, aggregation off) while bpfgate-gen sends from random sources in
#                198.19.0.0/16 for --storm-seconds; etcd's keys under the prefix sampled
#                every 0.5 s: writes a second, with max_publish_rate 100000/s (off) and 50/s
#                (on, the default); before each, the prefix emptied and node 1 restarted
#                without its state (no revision to resume from).
#
# bench/run fleet [--quick] [--runs N] [-j]: run from the build directory (bench/fleet_bench).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
[ -f "$REPO/bench/fleet/run.sh" ] || REPO="@PROJECT_SOURCE_DIR@"
if [ -z "${BUILD_DIR:-}" ] && [ "$(basename "$0")" = fleet_bench ]; then
  BUILD_DIR="$(cd "$(dirname "$0")/.." && pwd)"
fi
BUILD_DIR="${BUILD_DIR:-build}"
[[ "$BUILD_DIR" == /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
BG="$BUILD_DIR/bpfgate"
PKTGEN="$BUILD_DIR/bpfgate-gen"

runs=20 sizes="1 100 10000" entries=100000 storm_secs=10 nodes=3 json=0 parts="propagation storm sync"
usage() {
  cat <<EOF
usage: bench/run fleet [--quick] [--runs N] [--sizes LIST] [--entries N] [--storm-seconds S]
                       [--nodes N] [--parts LIST] [-j|--json]
  --quick            sizes 1,100,1000, 5 samples of one block, 20,000 entries to sync, 5-s storms
  --runs N           samples of the one-block propagation (default $runs)
  --sizes LIST       blocks made at once, comma-separated (default ${sizes// /,})
  --entries N        entries the new node syncs (default $entries)
  --storm-seconds S  length of each auto-block storm (default $storm_secs)
  --nodes N          nodes at the start, 2 to 8 (default $nodes; sync adds one)
  --parts LIST       from propagation,storm,sync (default all)
  -j, --json         one JSON object per figure on stdout (the table goes to stderr)
EOF
}
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) runs=5 sizes="1 100 1000" entries=20000 storm_secs=5 ;;
    --runs) runs="${2:?}"; shift ;;
    --sizes) sizes="${2:?}"; sizes="${sizes//,/ }"; shift ;;
    --entries) entries="${2:?}"; shift ;;
    --storm-seconds) storm_secs="${2:?}"; shift ;;
    --nodes) nodes="${2:?}"; shift ;;
    --parts) parts="${2:?}"; parts="${parts//,/ }"; shift ;;
    -j | --json) json=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "fleet: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
bad_arg() { echo "fleet: $*" >&2; usage >&2; exit 2; }
[[ "$runs" =~ ^[0-9]+$ ]] && [ "$runs" -ge 1 ] && [ "$runs" -le 1000 ] || bad_arg "--runs: 1 to 1000"
[[ "$entries" =~ ^[0-9]+$ ]] && [ "$entries" -ge 1 ] && [ "$entries" -le 200000 ] || bad_arg "--entries: 1 to 200000"
[[ "$storm_secs" =~ ^[0-9]+$ ]] && [ "$storm_secs" -ge 1 ] && [ "$storm_secs" -le 120 ] || bad_arg "--storm-seconds: 1 to 120"
[[ "$nodes" =~ ^[0-9]+$ ]] && [ "$nodes" -ge 2 ] && [ "$nodes" -le 8 ] || bad_arg "--nodes: 2 to 8"
for s in $sizes; do [[ "$s" =~ ^[0-9]+$ ]] && [ "$s" -ge 1 ] && [ "$s" -le 50000 ] || bad_arg "--sizes: 1 to 50000 each"; done
for p in $parts; do [[ " propagation storm sync " == *" $p "* ]] || bad_arg "no part '$p'"; done

log() { printf 'fleet: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root: it loads BPF programs and creates namespaces"
for tool in nsenter ip etcd etcdctl curl jq flock timeout "$BG" "$PKTGEN"; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/deps.sh installs the tools; build first)"
done

NS_ETCD=bgfl-etcd
PREFIX=/bgfl/blocks/
ALL_NS=("$NS_ETCD")
for i in $(seq 1 $((nodes + 1))); do ALL_NS+=("bgfl-n$i"); done
# shellcheck source=bench/lib/netns.sh
. "$REPO/bench/lib/netns.sh"
now_ms() { echo $(($(date +%s%N) / 1000000)); }

TMP="" LOCK_FD="" BG_PIDS=() ETCD_PID=""
declare -A AGENT_OF
stop_agent() {  # node
  local pid=${AGENT_OF[$1]:-}
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  AGENT_OF[$1]=""
  return 0
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for n in "${!AGENT_OF[@]}"; do stop_agent "$n"; done
  ns_remove_all "${ALL_NS[@]}"
  if [ -n "$TMP" ]; then
    for m in "$TMP"/bpffs-*; do mountpoint -q "$m" && umount "$m"; done
    rm -rf "$TMP"
  fi
  [ "$rc" -ne 0 ] && log "failed or interrupted (exit $rc); cleaned up"
  exit "$rc"
}
exec {LOCK_FD}>/run/bgfl.lock
flock -n "$LOCK_FD" || die "another fleet bench is running (lock /run/bgfl.lock)"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
ns_any_left "${ALL_NS[@]}" && { log "removing leftovers of an earlier run"; ns_remove_all "${ALL_NS[@]}"; }
TMP=$(mktemp -d /tmp/bgfl.XXXXXX)
chmod 755 "$TMP"

# ---- topology, etcd ---------------------------------------------------------------------------
for ns in "${ALL_NS[@]}"; do ip netns add "$ns"; in_ns "$ns" ip link set lo up; done
CLIENT_URLS=""
for i in $(seq 1 $((nodes + 1))); do
  ns=bgfl-n$i
  in_ns "$NS_ETCD" ip link add "bgfl-e$i" type veth peer name "bgfl-l$i" netns "$ns"
  in_ns "$NS_ETCD" ip addr add "198.18.$((100 + i)).1/24" dev "bgfl-e$i"
  in_ns "$NS_ETCD" ip link set "bgfl-e$i" up
  in_ns "$ns" ip addr add "198.18.$((100 + i)).2/24" dev "bgfl-l$i"
  in_ns "$ns" ip link set "bgfl-l$i" up
  in_ns "$ns" ip link add "bgfl-f$i" type veth peer name "bgfl-p$i"
  in_ns "$ns" ip link set "bgfl-f$i" up
  in_ns "$ns" ip link set "bgfl-p$i" up
  CLIENT_URLS+="${CLIENT_URLS:+,}http://198.18.$((100 + i)).1:2379"
  mkdir -p "$TMP/n$i/state" "$TMP/n$i/run" "$TMP/bpffs-$i"
  chmod 700 "$TMP/n$i/state" "$TMP/n$i/run"
  mount -t bpf bpf "$TMP/bpffs-$i"
done
ns_expect_no_default_route "${ALL_NS[@]}"
# Transactions of up to 10,000 puts (sync's writes; the agents' are 128 at most).
setsid nsenter --net="/run/netns/$NS_ETCD" etcd --name m1 --data-dir "$TMP/etcd" \
  --listen-client-urls "$CLIENT_URLS" --advertise-client-urls "$CLIENT_URLS" \
  --listen-peer-urls http://198.18.101.1:2380 --initial-advertise-peer-urls http://198.18.101.1:2380 \
  --initial-cluster m1=http://198.18.101.1:2380 --max-txn-ops 10000 --max-request-bytes 33554432 \
  --quota-backend-bytes 4294967296 --log-outputs stderr >"$TMP/etcd.log" 2>&1 &
ETCD_PID=$!
BG_PIDS+=("$ETCD_PID")
ETCD_URL=http://198.18.101.1:2379
ectl() { in_ns "$NS_ETCD" etcdctl --endpoints "$ETCD_URL" "$@"; }
for _ in $(seq 1 100); do ectl endpoint health >/dev/null 2>&1 && break; sleep 0.1; done
ectl endpoint health >/dev/null 2>&1 || die "etcd did not come up: $(tail -n 3 "$TMP/etcd.log")"
# Keys under the prefix: etcd's count of the range (3.4's etcdctl has no --count-only).
keys() { ectl get --prefix "$PREFIX" --keys-only --limit 1 -w json | jq -r '.count // 0'; }

# ---- agents -------------------------------------------------------------------------------------
bgn() { local i=$1; shift; in_ns "bgfl-n$i" "$BG" --bpffs "$TMP/bpffs-$i" "$@"; }
config_of() {  # node publish_rate
  cat <<EOF
interfaces: [{name: bgfl-f$1, mode: native}]
limits: {rate: 1, burst: 1, new_sources: off, unproven: off}
auto_block: {after: 1s, ttl: 10m, max_rate: 100000}
agent: {control_socket: $TMP/n$1/run/agent.sock, state_dir: $TMP/n$1/state, keep_datapath: false}
metrics: {listen: off}
fleet:
  endpoints: [http://198.18.$((100 + $1)).1:2379]
  prefix: $PREFIX
  node: bgfl-n$1
  max_publish_rate: $2/s
  aggregate: {threshold: 65536}
EOF
}
start_agent() {  # node publish_rate
  config_of "$1" "$2" >"$TMP/n$1/agent.yaml"
  bgn "$1" check "$TMP/n$1/agent.yaml" >/dev/null || die "node $1's config is refused: $(bgn "$1" check "$TMP/n$1/agent.yaml" 2>&1)"
  setsid nsenter --net="/run/netns/bgfl-n$1" "$BG" --bpffs "$TMP/bpffs-$1" run -c "$TMP/n$1/agent.yaml" \
    >>"$TMP/n$1/agent.log" 2>&1 &
  AGENT_OF[$1]=$!
}
status_of() { bgn "$1" -j fleet status --socket "$TMP/n$1/run/agent.sock" 2>/dev/null; }
wait_connected() {  # node
  for _ in $(seq 1 150); do
    kill -0 "${AGENT_OF[$1]}" 2>/dev/null || die "node $1's agent exited: $(tail -n 5 "$TMP/n$1/agent.log")"
    [ "$(status_of "$1" | jq -r '.connected // false' 2>/dev/null)" = true ] && return 0
    sleep 0.2
  done
  die "node $1 did not connect to etcd in 30 s: $(tail -n 5 "$TMP/n$1/agent.log")"
}
for i in $(seq 1 "$nodes"); do start_agent "$i" 100000; done
for i in $(seq 1 "$nodes"); do wait_connected "$i"; done
log "etcd and $nodes agents up; load $(cut -d' ' -f1-3 /proc/loadavg)"

RESULTS="$TMP/results.txt" JSONL="$TMP/results.jsonl"
: >"$RESULTS"; : >"$JSONL"
emit() { echo "$1" >>"$RESULTS"; echo "$2" >>"$JSONL"; log "$1"; }

# ---- propagation ---------------------------------------------------------------------------------
# Polls node $1's list back to back until $3 (a file of prefixes) are all there, or 30 s after
# the time (ms) written into $4 when the last block was made; appends "ms prefix" for each fleet
# entry when first seen to $2.
poll_node() {
  local i=$1 out=$2 want=$3 made_file=$4 n_want seen
  n_want=$(wc -l <"$want")
  : >"$out"
  while ! [ -s "$made_file" ] || [ "$(now_ms)" -lt $(($(cat "$made_file") + 30000)) ]; do
    bgn "$i" -j list --iface "bgfl-f$i" | jq -r '.blocked[] | select(.reason == "fleet") | .prefix' >"$out.list"
    awk -v t="$(now_ms)" 'FILENAME == ARGV[1] { want[$1] = 1; next } FILENAME == ARGV[2] { seen[$2] = 1; next }
      ($1 in want) && !($1 in seen) { print t, $1 }' "$want" "$out" "$out.list" >>"$out"
    seen=$(wc -l <"$out")
    [ "$seen" -ge "$n_want" ] && return 0
  done
  return 0
}
TAG=0
propagate() {  # size sample
  local size=$1 i t0
  TAG=$((TAG + 1))
  local dir="$TMP/prop$TAG"
  mkdir -p "$dir"
  # As `list` writes them (canonical: no zero group to compress but the last four).
  for i in $(seq 1 "$size"); do printf '2001:db8:%x:%x::/64\n' $((0x100 + TAG)) "$i"; done >"$dir/want"
  # The pollers stop 30 s after the last block is made (its time goes into made_at): a
  # deadline from the start (30 s + 20 ms a block) ended them before 10,000 blocks were made
  # (the CLI took 36 ms a block), and most were never looked for.
  local pollers=()
  for i in $(seq 2 "$nodes"); do
    poll_node "$i" "$dir/seen$i" "$dir/want" "$dir/made_at" &
    pollers+=($!)
  done
  t0=$(now_ms)
  while read -r p; do
    bgn 1 block "$p" --iface bgfl-f1 </dev/null >/dev/null 2>&1 || die "block $p on node 1 failed"
    echo "$(now_ms) $p"
  done <"$dir/want" >"$dir/made"
  local t_made
  now_ms >"$dir/made_at"
  t_made=$(($(now_ms) - t0))
  wait "${pollers[@]}"
  cat "$dir"/seen[0-9] >"$dir/all_seen"
  awk -v size="$size" -v nodes=$((nodes - 1)) -v made_ms="$t_made" -v t0="$t0" 'NR == FNR { made[$2] = $1; next }
    { d = $1 - made[$2]; lat[++n] = d; if ($1 > last) last = $1 }
    END {
      for (i = 2; i <= n; i++) { t = lat[i]; for (j = i - 1; j >= 1 && lat[j] > t; j--) lat[j + 1] = lat[j]; lat[j + 1] = t }
      p50 = n ? lat[int((n - 1) * 0.5) + 1] : -1; p99 = n ? lat[int((n - 1) * 0.99) + 1] : -1
      printf "%d %d %d %d %d %d %d\n", n, size * nodes, p50, p99, n ? lat[n] : -1, made_ms, n ? last - t0 : -1 }' \
    "$dir/made" "$dir/all_seen"
}
if [[ " $parts " == *" propagation "* ]]; then
  for size in $sizes; do
    if [ "$size" = 1 ]; then
      first=$((TAG + 1))
      for _ in $(seq 1 "$runs"); do propagate 1 >/dev/null; done
      # Every (sample, node) latency, pooled over the samples.
      for d in $(seq "$first" "$TAG"); do
        awk 'NR == FNR { made[$2] = $1; next } { print $1 - made[$2] }' "$TMP/prop$d/made" "$TMP/prop$d/all_seen"
      done | sort -n >"$TMP/one.txt"
      seen=$(wc -l <"$TMP/one.txt") want=$((runs * (nodes - 1)))
      [ "$seen" -gt 0 ] || die "no node saw any of the one-block samples"
      p50=$(sed -n "$(((seen - 1) / 2 + 1))p" "$TMP/one.txt")
      p99=$(sed -n "$(((seen - 1) * 99 / 100 + 1))p" "$TMP/one.txt")
      max=$(tail -n 1 "$TMP/one.txt")
      emit "propagation   1 block   x $runs samples: $seen of $want seen; p50 $p50 ms  p99 $p99 ms  max $max ms" \
        "{\"name\":\"fleet_propagation_1\",\"samples\":$runs,\"seen\":$seen,\"expected\":$want,\"p50_ms\":$p50,\"p99_ms\":$p99,\"max_ms\":$max}"
    else
      propagate "$size" >"$TMP/prop.res"
      read -r seen want p50 p99 max made last <"$TMP/prop.res"
      emit "propagation $(printf '%5d' "$size") blocks: $seen of $want seen; p50 $p50 ms  p99 $p99 ms  max $max ms; made in $made ms, the last seen at $last ms" \
        "{\"name\":\"fleet_propagation_$size\",\"blocks\":$size,\"seen\":$seen,\"expected\":$want,\"p50_ms\":$p50,\"p99_ms\":$p99,\"max_ms\":$max,\"made_ms\":$made,\"last_seen_ms\":$last}"
    fi
  done
fi

# ---- sync: a new node catches up -------------------------------------------------------------------
if [[ " $parts " == *" sync "* ]]; then
  # The layout, learned from one entry node 1 published: its key and value with the CIDR swapped.
  bgn 1 block 2001:db8:fff::/48 --iface bgfl-f1 >/dev/null 2>&1
  cidr=2001:db8:fff::/48 key="" value=""
  for _ in $(seq 1 50); do
    line=$(ectl get --prefix "$PREFIX" -w json | jq -r --arg c "$cidr" \
      '.kvs[]? | {k: (.key | @base64d), v: (.value | @base64d)} | select(.v | contains($c)) | [.k, .v] | @json' | head -n 1)
    [ -n "$line" ] && break
    sleep 0.2
  done
  [ -n "$line" ] || die "node 1 never published $cidr under $PREFIX"
  key=$(jq -r '.[0]' <<<"$line"); value=$(jq -r '.[1]' <<<"$line")
  enc=${cidr//\//_}
  if [[ "$key" == *"$enc"* ]]; then KEY_T=${key/"$enc"/%C%}; KEY_SLASH=0
  elif [[ "$key" == *"$cidr"* ]]; then KEY_T=${key/"$cidr"/%C%}; KEY_SLASH=1
  else die "cannot find $cidr in the key $key: the bench does not know this layout"; fi
  VAL_T=${value//"$cidr"/%C%}
  # From a node that is not running: node 1 owns its own keys and deletes those it does not
  # hold (as it should), so the copies name another node, in the key too if the key has it.
  KEY_T=${KEY_T//bgfl-n1/bgfl-gone}
  VAL_T=${VAL_T//bgfl-n1/bgfl-gone}
  log "sync: entries written as '$KEY_T' = '$VAL_T' (learned from node 1's $cidr)"
  t_put=$(now_ms)
  for start in $(seq 0 10000 $((entries - 1))); do
    n=$((entries - start)); [ "$n" -gt 10000 ] && n=10000
    for j in $(seq "$start" $((start + n - 1))); do printf '2001:db8:%x:%x::/64\n' $((0x8000 + j / 65535)) $((j % 65535 + 1)); done |
      jq -Rn --arg kt "$KEY_T" --arg vt "$VAL_T" --argjson slash "$KEY_SLASH" \
        '{success: [inputs as $c | {requestPut: {key: ($kt | sub("%C%"; (if $slash == 1 then $c else ($c | gsub("/"; "_")) end)) | @base64), value: ($vt | gsub("%C%"; $c) | @base64)}}]}' \
        >"$TMP/txn.json"
    in_ns "$NS_ETCD" curl -sf --max-time 60 -X POST -d @"$TMP/txn.json" "$ETCD_URL/v3/kv/txn" >/dev/null ||
      die "etcd refused a transaction of $n puts"
  done
  t_put=$(($(now_ms) - t_put))
  total=$(keys)
  new=$((nodes + 1))
  t0=$(now_ms)
  start_agent "$new" 100000
  applied=0 polls=0
  while [ $(($(now_ms) - t0)) -lt 180000 ]; do
    kill -0 "${AGENT_OF[$new]}" 2>/dev/null || die "the new node's agent exited: $(tail -n 5 "$TMP/n$new/agent.log")"
    st=$(status_of "$new" || true)
    applied=$(jq -r '(.applied // 0) + (.refused // 0)' <<<"${st:-{\}}" 2>/dev/null || echo 0)
    [ "${applied:-0}" -ge "$total" ] && break
    polls=$((polls + 1))
    [ $((polls % 50)) = 0 ] && log "sync: $(($(now_ms) - t0)) ms: ${st:-no status yet}"
    sleep 0.1
  done
  [ "${applied:-0}" -ge "$total" ] || die "the new node applied $applied of $total in 180 s: $(tail -n 3 "$TMP/n$new/agent.log")"
  t_sync=$(($(now_ms) - t0))
  listed=$(bgn "$new" -j list --iface "bgfl-f$new" | jq '[.blocked[] | select(.reason == "fleet")] | length')
  refused=$(status_of "$new" | jq -r '.refused // 0')
  emit "sync: a new node took $t_sync ms from its start to $applied of $total entries applied or refused ($refused refused; $listed in its blocklist); $entries written to etcd in $t_put ms" \
    "{\"name\":\"fleet_sync\",\"entries\":$total,\"written\":$entries,\"sync_ms\":$t_sync,\"applied_or_refused\":$applied,\"refused\":$refused,\"listed\":$listed,\"write_ms\":$t_put}"
  stop_agent "$new"
fi

# ---- storm ----------------------------------------------------------------------------------------
storm() {  # label publish_rate
  stop_agent 1
  # A clean slate: what earlier parts and storms put under the prefix goes (a key written
  # again would not add one), and node 1 starts again with this bound.
  ectl del --prefix "$PREFIX" >/dev/null
  rm -rf "$TMP/n1/state"/*  # no revision to resume from: it reads the (empty) prefix afresh
  start_agent 1 "$2"
  wait_connected 1
  local mac k0 t0 samples="$TMP/storm-$1.txt"
  mac=$(mac_of bgfl-n1 bgfl-f1)
  k0=$(keys); t0=$(now_ms)
  timeout -k 2 $((storm_secs + 5)) nsenter --net=/run/netns/bgfl-n1 "$PKTGEN" -i bgfl-p1 --dst-mac "$mac" \
    --src 198.19.0.0/16 --dst 198.18.200.1 --dport 9 --rate 100000 -n 4000000000 \
    --duration "$storm_secs" -j >"$TMP/gen.json" 2>"$TMP/gen.err" &
  local gen=$!
  BG_PIDS+=("$gen")
  : >"$samples"
  local end=$((t0 + (storm_secs + 3) * 1000))
  while [ "$(now_ms)" -lt "$end" ]; do
    echo "$(($(now_ms) - t0)) $(($(keys) - k0))" >>"$samples"
    sleep 0.5
  done
  wait "$gen" || die "the storm's generator failed: $(cat "$TMP/gen.err")"
  local st
  st=$(status_of 1)
  local published held blocked
  published=$(jq -r '.published // 0' <<<"$st")
  held=$(jq -r '.held_back // 0' <<<"$st")
  blocked=$(bgn 1 -j list --iface bgfl-f1 | jq '[.blocked[] | select(.reason == "auto")] | length')
  # Writes a second: the keys' growth over the storm's seconds (the first sample to the last).
  awk -v label="$1" -v rate="$2" -v pub="$published" -v held="$held" -v blocked="$blocked" -v secs="$storm_secs" '
    { t[NR] = $1; k[NR] = $2 } END {
      w = (t[NR] - t[1]) / 1000; r = w > 0 ? (k[NR] - k[1]) / w : 0
      peak = 0; for (i = 2; i <= NR; i++) { d = t[i] - t[i - 1]; if (d > 0 && (k[i] - k[i - 1]) * 1000 / d > peak) peak = (k[i] - k[i - 1]) * 1000 / d }
      printf "%s|%.0f|%.0f|%d|%d|%d|%d\n", label, r, peak, k[NR], blocked, pub, held }' "$samples" >"$TMP/storm-$1.res"
}
if [[ " $parts " == *" storm "* ]]; then
  for mode in off on; do
    rate=100000; [ "$mode" = on ] && rate=50
    storm "$mode" "$rate"
    IFS='|' read -r _ avg peak keys_added blocked published held <"$TMP/storm-$mode.res"
    emit "storm, bound $mode (max_publish_rate $rate/s): etcd writes $avg/s (peak $peak/s over 0.5 s); $keys_added keys added in $((storm_secs + 3)) s; node 1 auto-blocked $blocked, published $published, held back $held" \
      "{\"name\":\"fleet_storm_bound_$mode\",\"max_publish_rate\":$rate,\"writes_per_s\":$avg,\"peak_writes_per_s\":$peak,\"keys_added\":$keys_added,\"auto_blocked\":$blocked,\"published\":$published,\"held_back\":$held,\"storm_s\":$storm_secs}"
  done
fi

{
  echo "fleet: $nodes nodes + etcd $(etcd --version | awk '/etcd Version/ {print $3}') in namespaces, $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  cat "$RESULTS"
} >"$TMP/table.txt"
if [ "$json" = 1 ]; then
  cat "$TMP/table.txt" >&2
  cat "$JSONL"
else
  cat "$TMP/table.txt"
fi
