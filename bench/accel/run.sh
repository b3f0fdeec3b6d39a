#!/usr/bin/env bash
# Socket acceleration benchmark: the same local TCP with and without
# `bpfgate accel`, in the same run, repeated (modes alternate, so drift hits
# both alike), reported as min / median / max and the ratio of medians:
#   1. wrk through an nginx reverse proxy to a local nginx backend (upstream
#      keepalive): requests/s, p50 and p99 latency, CPU per request (the whole
#      machine's busy time over the run, divided by requests: wrk, proxy and
#      backend together, since all of them are on this host);
#   2. 64-byte request/response ping-pong between two local processes;
#   3. bulk TCP over loopback with iperf3.
# Everything runs in a network namespace and a cgroup v2 of its own (bgaccb*),
# removed on exit. Needs root, nginx, wrk and iperf3 (scripts/deps.sh).
#
# bench/run accel [--runs N] [-j] [...] runs it from the build directory
# (configured there as bench/accel_bench, with the paths of this build).
set -euo pipefail

BUILD_DIR="@CMAKE_BINARY_DIR@"
if [[ "$BUILD_DIR" == @*@ ]]; then  # run from the source tree
  BUILD_DIR="$(cd "$(dirname "$0")/../.." && pwd)/${BUILD_DIR_NAME:-build}"
fi
BPFGATE="$BUILD_DIR/bpfgate"
PINGPONG="$BUILD_DIR/bench/accel_pingpong"

runs=7 json=0 wrk_s=3 pp_s=1.5 iperf_s=2 conns=32 body=1024
usage() {
  cat <<EOF
usage: bench/run accel [--runs N] [-j|--json] [--wrk-seconds S] [--conns N] [--body-bytes N]
                       [--pingpong-seconds S] [--iperf-seconds S]
  --runs N            timed runs per mode and case (default $runs)
  -j, --json          one JSON object per case and line
  --wrk-seconds S     length of each wrk run (default $wrk_s)
  --conns N           wrk connections (default $conns)
  --body-bytes N      size of the proxied response body (default $body)
  --pingpong-seconds  length of each ping-pong run (default $pp_s)
  --iperf-seconds S   length of each iperf3 run (default $iperf_s)
EOF
}
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift ;;
    -j | --json) json=1 ;;
    --wrk-seconds) wrk_s="$2"; shift ;;
    --conns) conns="$2"; shift ;;
    --body-bytes) body="$2"; shift ;;
    --pingpong-seconds) pp_s="$2"; shift ;;
    --iperf-seconds) iperf_s="$2"; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "accel bench: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

if [ "$(id -u)" -ne 0 ]; then
  echo "accel bench: run as root: it loads BPF programs and creates a namespace and a cgroup" >&2
  exit 1
fi
for tool in nginx wrk iperf3 nsenter "$BPFGATE" "$PINGPONG"; do
  command -v "$tool" >/dev/null || {
    echo "accel bench: $tool not found (scripts/deps.sh installs the tools; build first)" >&2
    exit 1
  }
done

if [ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ]; then
  UNIFIED=/sys/fs/cgroup
elif [ "$(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then
  UNIFIED=/sys/fs/cgroup/unified
else
  echo "accel bench: no cgroup v2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified" >&2
  exit 1
fi

NS="bgaccb$$"
CG="$UNIFIED/bgaccb$$"
TMP="$(mktemp -d /tmp/bgaccb.XXXXXX)"
PIDS=()

cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  nsenter --net="/run/netns/$NS" "$BPFGATE" accel disable --force --timeout 1 >/dev/null 2>&1
  if [ -d "$CG" ]; then
    for _ in 1 2 3 4 5; do
      while read -r p; do echo "$p" >"$UNIFIED/cgroup.procs"; done <"$CG/cgroup.procs"
      rmdir "$CG" 2>/dev/null && break
      sleep 0.2
    done
  fi
  ip netns del "$NS" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$NS"
ip -n "$NS" link set lo up
mkdir "$CG"

# Runs a command in the namespace and the cgroup.
run_in() {
  bash -c 'echo $$ >"$0/cgroup.procs" && exec nsenter --net="/run/netns/$1" "${@:2}"' "$CG" "$NS" "$@"
}
bpfgate() { nsenter --net="/run/netns/$NS" "$BPFGATE" "$@"; }
spawn() { # spawn CMD...: in the namespace and cgroup, in its own process group
  setsid bash -c 'echo $$ >"$0/cgroup.procs" && exec nsenter --net="/run/netns/$1" "${@:2}"' \
    "$CG" "$NS" "$@" >/dev/null 2>&1 &
  PIDS+=($!)
}
stop_all() {
  for p in "${PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}

set_mode() { # off, or on afresh (zero counters)
  bpfgate accel disable --timeout 2 >/dev/null 2>&1 || true
  if [ "$1" = on ]; then
    bpfgate accel enable --cgroup "$CG" >/dev/null
  fi
}

# nginx: a proxy on :8080 with upstream keepalive to a backend on :8081 that
# serves a file of --body-bytes with sendfile.
mkdir -p "$TMP/www"
head -c "$body" /dev/urandom >"$TMP/www/body.bin"
nginx_conf() { # nginx_conf NAME SERVER-BLOCK
  mkdir -p "$TMP/$1/tmp"
  cat >"$TMP/$1/nginx.conf" <<EOF
daemon off;
worker_processes 1;
user root;
pid $TMP/$1/nginx.pid;
error_log $TMP/$1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $TMP/$1/tmp/body; proxy_temp_path $TMP/$1/tmp/proxy;
  fastcgi_temp_path $TMP/$1/tmp/fcgi; uwsgi_temp_path $TMP/$1/tmp/uwsgi;
  scgi_temp_path $TMP/$1/tmp/scgi;
  sendfile on;
  keepalive_requests 1000000;
  default_type application/octet-stream;
  $2
}
EOF
}
nginx_conf backend "server { listen 127.0.0.1:8081; root $TMP/www; }"
nginx_conf proxy "upstream backend { server 127.0.0.1:8081; keepalive 64; }
  server { listen 127.0.0.1:8080; location / { proxy_pass http://backend;
    proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"

start_nginx() {
  spawn nginx -p "$TMP/backend" -c "$TMP/backend/nginx.conf" -e "$TMP/backend/error.log"
  spawn nginx -p "$TMP/proxy" -c "$TMP/proxy/nginx.conf" -e "$TMP/proxy/error.log"
  for _ in $(seq 100); do
    nsenter --net="/run/netns/$NS" curl -sf -o /dev/null http://127.0.0.1:8080/body.bin && return
    sleep 0.05
  done
  echo "accel bench: nginx did not start:" >&2
  cat "$TMP"/*/error.log >&2
  exit 1
}

iperf_run() { # iperf_run [CLIENT-ARGS...]: Gbit/s received
  spawn iperf3 -s -1 -p 7071
  for _ in $(seq 50); do
    nsenter --net="/run/netns/$NS" ss -ltn | grep -q ':7071 ' && break
    sleep 0.05
  done
  run_in iperf3 -c 127.0.0.1 -p 7071 -t "$iperf_s" -f g "$@" |
    awk '/receiver/{for (i=1;i<=NF;i++) if ($i=="Gbits/sec") print $(i-1)}'
  stop_all
}

busy_jiffies() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }
to_ms() { # wrk's "1.23ms" / "456.00us" / "1.01s" -> ms
  awk -v v="$1" 'BEGIN{ n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.3f", n }'
}

declare -A SAMPLES  # "case mode" -> space-separated values

record() { SAMPLES["$1 $2"]+="$3 "; }

measure() { # measure MODE
  local mode=$1
  set_mode "$mode"
  # nginx restarts so that every connection (wrk's, the upstream pool) is
  # opened in this mode: acceleration only takes connections established
  # after it is enabled.
  start_nginx
  local url=http://127.0.0.1:8080/body.bin
  run_in wrk -t1 -c"$conns" -d1s "$url" >/dev/null
  local b0 b1 out
  b0=$(busy_jiffies)
  out=$(run_in wrk -t1 -c"$conns" -d"${wrk_s}s" --latency "$url")
  b1=$(busy_jiffies)
  local reqs rps p50 p99 errs
  reqs=$(awk '/requests in/{print $1}' <<<"$out")
  rps=$(awk '/^Requests\/sec:/{print $2}' <<<"$out")
  p50=$(to_ms "$(awk '$1=="50%"{print $2}' <<<"$out")")
  p99=$(to_ms "$(awk '$1=="99%"{print $2}' <<<"$out")")
  errs=$(awk '/Socket errors|Non-2xx/{e=1} END{print e+0}' <<<"$out")
  if [ "$errs" != 0 ] || [ -z "$reqs" ]; then
    echo "accel bench: wrk reported errors ($mode):" >&2
    echo "$out" >&2
    exit 1
  fi
  record wrk_rps "$mode" "$rps"
  record wrk_p50_ms "$mode" "$p50"
  record wrk_p99_ms "$mode" "$p99"
  record cpu_us_per_req "$mode" "$(awk -v d=$((b1 - b0)) -v hz="$(getconf CLK_TCK)" -v n="$reqs" \
    'BEGIN{printf "%.2f", d / hz * 1e6 / n}')"
  stop_all

  # Ping-pong with both processes on one CPU (the stack's cost per message)
  # and on two (cross-CPU wakeups dominate).
  record pingpong_1cpu "$mode" "$(run_in "$PINGPONG" --seconds "$pp_s" \
    --client-cpu 0 --server-cpu 0 | awk '{print $2}')"
  if [ "$(nproc)" -gt 1 ]; then
    record pingpong_2cpu "$mode" "$(run_in "$PINGPONG" --seconds "$pp_s" \
      --client-cpu 0 --server-cpu 1 | awk '{print $2}')"
  fi

  # Bulk: where the scheduler puts them, and client and server pinned apart.
  record iperf3_gbps "$mode" "$(iperf_run)"
  if [ "$(nproc)" -gt 1 ]; then
    record iperf3_2cpu_gbps "$mode" "$(iperf_run -A 0,1)"
  fi

  if [ "$mode" = on ]; then
    local redirected
    redirected=$(bpfgate -j accel status | grep -o '"redirected":{"bytes":[0-9]*' | head -1 | grep -o '[0-9]*$')
    if [ "${redirected:-0}" -eq 0 ]; then
      echo "accel bench: acceleration was on but redirected nothing" >&2
      exit 1
    fi
  fi
}

for r in $(seq "$runs"); do
  if [ $((r % 2)) -eq 1 ]; then order="off on"; else order="on off"; fi
  for mode in $order; do
    [ "$json" = 1 ] || printf '\rrun %d/%d: %-3s ' "$r" "$runs" "$mode" >&2
    measure "$mode"
  done
done
set_mode off
[ "$json" = 1 ] || printf '\r%40s\r' '' >&2

stats() { # values... -> "min median max"
  printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{m = NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; print v[1], m, v[NR]}'
}

CASES=(wrk_rps wrk_p50_ms wrk_p99_ms cpu_us_per_req pingpong_1cpu pingpong_2cpu iperf3_gbps
  iperf3_2cpu_gbps)
declare -A LABEL=(
  [wrk_rps]="wrk via nginx proxy, req/s"
  [wrk_p50_ms]="wrk p50 latency, ms"
  [wrk_p99_ms]="wrk p99 latency, ms"
  [cpu_us_per_req]="CPU per request, us (host)"
  [pingpong_1cpu]="64 B ping-pong, 1 CPU, rt/s"
  [pingpong_2cpu]="64 B ping-pong, 2 CPUs, rt/s"
  [iperf3_gbps]="iperf3 bulk, Gbit/s"
  [iperf3_2cpu_gbps]="iperf3 bulk, 2 CPUs pinned, Gbit/s"
)
kernel=$(uname -r)
cpus=$(nproc)
if [ "$json" = 0 ]; then
  echo "socket acceleration: kernel $kernel, $cpus CPUs, $runs runs per mode; wrk -c$conns, body $body B"
  printf '%-36s %-32s %-32s %s\n' case "off: min / median / max" "on: min / median / max" "on/off"
fi
for c in "${CASES[@]}"; do
  [ -n "${SAMPLES["$c off"]:-}" ] || continue
  read -r off_min off_med off_max <<<"$(stats ${SAMPLES["$c off"]})"
  read -r on_min on_med on_max <<<"$(stats ${SAMPLES["$c on"]})"
  ratio=$(awk -v a="$on_med" -v b="$off_med" 'BEGIN{printf "%.2f", b ? a / b : 0}')
  if [ "$json" = 1 ]; then
    printf '{"bench":"accel","case":"%s","kernel":"%s","cpus":%s,"runs":%s,' "$c" "$kernel" "$cpus" "$runs"
    printf '"off":{"min":%s,"median":%s,"max":%s},"on":{"min":%s,"median":%s,"max":%s},"ratio":%s}\n' \
      "$off_min" "$off_med" "$off_max" "$on_min" "$on_med" "$on_max" "$ratio"
  else
    printf '%-36s %-32s %-32s %sx\n' "${LABEL[$c]}" "$off_min / $off_med / $off_max" \
      "$on_min / $on_med / $on_max" "$ratio"
  fi
done
