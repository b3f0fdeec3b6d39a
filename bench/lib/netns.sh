# Shell pieces the flood benches share (bench/compare/run.sh, bench/flood/run.sh):
# network namespaces made and removed by the bench, the gateway's receive path
# in a NAPI kthread of its own. Sourced; the caller defines log() and die().

in_ns() { local ns=$1; shift; nsenter --net="/run/netns/$ns" "$@"; }
mac_of() { in_ns "$1" ip -br link show dev "$2" | awk '{print $3}'; }

# Kills every process left in the namespaces (all of them the bench's), then
# deletes the namespaces, which removes their links, XDP programs and firewall rules.
ns_remove_all() {
  local ns pids="" i
  for ns in "$@"; do
    [ -e "/run/netns/$ns" ] || continue
    pids=$(ip netns pids "$ns" 2>/dev/null)
    [ -n "$pids" ] && kill $pids 2>/dev/null
  done
  for i in $(seq 1 20); do
    pids=""
    for ns in "$@"; do [ -e "/run/netns/$ns" ] && pids+="$(ip netns pids "$ns" 2>/dev/null) "; done
    [ -z "${pids// /}" ] && break
    sleep 0.1
  done
  [ -n "${pids// /}" ] && kill -KILL $pids 2>/dev/null
  for ns in "$@"; do [ -e "/run/netns/$ns" ] && ip netns del "$ns"; done
  return 0
}

# Whether any of the namespaces is left from an earlier run.
ns_any_left() {
  local ns
  for ns in "$@"; do [ -e "/run/netns/$ns" ] && return 0; done
  return 1
}

ns_expect_no_default_route() {
  local ns
  for ns in "$@"; do
    in_ns "$ns" ip route show default | grep -q . && die "$ns has a default route"
    in_ns "$ns" ip -6 route show default | grep -q . && die "$ns has an IPv6 default route"
  done
  return 0
}

# The gateway's NAPI rig: the benches' --coalesce-us (NAPI_COALESCE_US, see
# threaded_napi) and --napi-fifo (NAPI_FIFO, see pin_napi_of); 0: off.
NAPI_COALESCE_US="${NAPI_COALESCE_US:-0}" NAPI_FIFO="${NAPI_FIFO:-0}"
# Prints what is wrong with them and fails, if anything is.
napi_rig_check() {
  if ! [[ "$NAPI_COALESCE_US" =~ ^[0-9]+$ ]] || [ "$NAPI_COALESCE_US" -gt 1000 ]; then
    echo "--coalesce-us: 0 to 1000 microseconds"
    return 1
  fi
  if ! [[ "$NAPI_FIFO" =~ ^[0-9]+$ ]] || [ "$NAPI_FIFO" -gt 99 ]; then
    echo "--napi-fifo: a SCHED_FIFO priority, 1 to 99, or 0 for none"
    return 1
  fi
}
# The rig, as the benches' tables give it.
napi_rig_desc() {
  echo "gateway NAPI coalescing $NAPI_COALESCE_US us, SCHED_FIFO priority $NAPI_FIFO (0: none)"
}

# The gateway's receive path in a kthread of its own: GRO gives its veth NAPI
# (so XDP redirects and skbs from the peer queue up there), threaded NAPI runs
# it in a kthread. Arguments: switch namespace, switch-side port, gateway
# namespace, gateway interface.
# NAPI_COALESCE_US (0: off), when set, makes the NAPI wait that many
# microseconds after a poll before it takes frames again (gro_flush_timeout
# with napi_defer_hard_irqs), as a NIC's interrupt coalescing does: a veth
# otherwise wakes its NAPI for every few frames.
threaded_napi() {
  in_ns "$1" ethtool -K "$2" tso off >/dev/null
  in_ns "$3" ethtool -K "$4" gro on >/dev/null
  local err defer=0
  err=$(napi_rig_check) || die "$err"
  [ "$NAPI_COALESCE_US" -gt 0 ] && defer=1
  # /sys/class/net shows the namespace of whoever mounted sysfs: mount one privately.
  in_ns "$3" unshare --mount --propagation private \
    sh -c "mount -t sysfs sysfs /sys && echo 1 > /sys/class/net/$4/threaded &&
      echo $((NAPI_COALESCE_US * 1000)) > /sys/class/net/$4/gro_flush_timeout &&
      echo $defer > /sys/class/net/$4/napi_defer_hard_irqs"
}

# Finds the NAPI kthread of interface $1 (again after an XDP attach, which may
# renew it), pins it to CPU $2 at nice $3; its pid in NAPI_PID. NAPI_FIFO (a
# SCHED_FIFO priority, 1-99; 0 or unset: none) puts it above the CPU's tasks,
# as a NIC's softirq is: see bench/flood/run.sh.
NAPI_PID=""
pin_napi_of() {
  local pids
  pids=$(ps -e -o pid=,comm= | awk -v n="napi/$1" 'index($2, n) == 1 {print $1}')
  [ -n "$pids" ] || die "no NAPI kthread for $1"
  [ "$(wc -w <<<"$pids")" -eq 1 ] || die "several NAPI kthreads for $1: $pids"
  taskset -pc "$2" "$pids" >/dev/null
  renice -n "$3" -p "$pids" >/dev/null
  if [ "$NAPI_FIFO" -gt 0 ]; then chrt -f -p "$NAPI_FIFO" "$pids" >/dev/null; fi
  NAPI_PID=$pids
}
