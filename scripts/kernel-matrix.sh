#!/usr/bin/env bash
# Runs a command inside Debian 12's stock kernel (the one linux-image-amd64
# depends on) under qemu, with the host's / shared read-only over virtio-9p and
# a tmpfs overlay on top, so the BPF programs can be checked on that kernel:
#
#   scripts/kernel-matrix.sh [OPTIONS] -- COMMAND [ARG...]
#
# COMMAND runs as root in the guest, in the host's current directory, with
# /sys/fs/bpf (bpffs), /proc, /sys, /dev, /run (tmpfs) mounted; the guest's
# /tmp and every other directory are writable (writes stay in the guest).
# The exit status is COMMAND's; 124 if the run timed out; 125 if the harness
# failed (no kernel, qemu died, the guest did not report a status).
#
# Options:
#   --kernel-cache DIR  where the kernel .deb and its extracted tree are kept
#                       (default /var/cache/bpfgate-kernels)
#   --kernel-pkg PKG    kernel package (default: what linux-image-amd64 depends on)
#   --timeout SECONDS   hard limit for the whole guest run (default 3600)
#   --boot-timeout S    start the guest again (once) if it has not booted in S
#                       seconds (default 300)
#   --memory SIZE       guest memory (default 2G)
#   --smp N             guest CPUs (default 2)
#   --accel ACCEL       qemu accelerator (default tcg, multi-threaded)
#   --modules "M..."    modules to load before COMMAND (default: veth sch_ingress
#                       sch_htb cls_bpf act_bpf); others load on demand
#
# KERNEL_MATRIX_DEBUG=1 shows the kernel's boot messages and keeps the run
# directory (initramfs, console log) in /tmp.
#
# Installs what it needs with apt (qemu-system-x86, busybox-static, kmod, cpio)
# and downloads the kernel with `apt-get download` into the cache: the kernel
# is never installed on the host.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

here="$(cd "$(dirname "$0")" && pwd)"
init_src="$here/kernel-matrix/init"

cache=/var/cache/bpfgate-kernels
kernel_pkg=
timeout_s=3600
memory=2G
smp=2
accel=tcg
boot_timeout=300
modules="veth sch_ingress sch_htb cls_bpf act_bpf"

log() { echo "kernel-matrix: $*" >&2; }
die() {
  echo "kernel-matrix: error: $*" >&2
  exit 125
}
usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
  exit 125
}

while [ $# -gt 0 ]; do
  case "$1" in
    --kernel-cache) [ $# -ge 2 ] || usage; cache="$2"; shift 2 ;;
    --kernel-cache=*) cache="${1#*=}"; shift ;;
    --kernel-pkg) [ $# -ge 2 ] || usage; kernel_pkg="$2"; shift 2 ;;
    --kernel-pkg=*) kernel_pkg="${1#*=}"; shift ;;
    --timeout) [ $# -ge 2 ] || usage; timeout_s="$2"; shift 2 ;;
    --timeout=*) timeout_s="${1#*=}"; shift ;;
    --boot-timeout) [ $# -ge 2 ] || usage; boot_timeout="$2"; shift 2 ;;
    --boot-timeout=*) boot_timeout="${1#*=}"; shift ;;
    --memory) [ $# -ge 2 ] || usage; memory="$2"; shift 2 ;;
    --memory=*) memory="${1#*=}"; shift ;;
    --smp) [ $# -ge 2 ] || usage; smp="$2"; shift 2 ;;
    --smp=*) smp="${1#*=}"; shift ;;
    --accel) [ $# -ge 2 ] || usage; accel="$2"; shift 2 ;;
    --accel=*) accel="${1#*=}"; shift ;;
    --modules) [ $# -ge 2 ] || usage; modules="$2"; shift 2 ;;
    --modules=*) modules="${1#*=}"; shift ;;
    -h | --help) usage ;;
    --) shift; break ;;
    *) echo "kernel-matrix: unknown option '$1' (the command goes after --)" >&2; usage ;;
  esac
done
[ $# -gt 0 ] || usage
[[ "$timeout_s" =~ ^[1-9][0-9]*$ ]] || die "--timeout wants seconds, not '$timeout_s'"
[[ "$boot_timeout" =~ ^[1-9][0-9]*$ ]] || die "--boot-timeout wants seconds, not '$boot_timeout'"
[ -f "$init_src" ] || die "missing $init_src"
mkdir -p "$cache" || die "cannot create the kernel cache $cache"
cache="$(cd "$cache" && pwd)"

# --- host tools ---------------------------------------------------------------
apt_updated=0
apt_update() {
  [ "$apt_updated" -eq 0 ] || return 0
  log "apt-get update"
  apt-get update -q >/dev/null || die "apt-get update failed (is Debian's archive reachable?)"
  apt_updated=1
}
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -e /usr/share/seabios/bios-256k.bin ] || need+=(seabios)
# busybox-static: the initramfs' only binary, so it must not need a libc.
if ! [ -x /bin/busybox ] || ! dpkg -s busybox-static >/dev/null 2>&1; then need+=(busybox-static); fi
command -v depmod >/dev/null || need+=(kmod)
command -v cpio >/dev/null || need+=(cpio)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "missing ${need[*]}: run as root, or apt-get install ${need[*]}"
  apt_update
  log "installing ${need[*]}"
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null ||
    die "apt-get install ${need[*]} failed"
fi

# --- the kernel -----------------------------------------------------------------
resolve_kernel() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }' || true
}
if [ -z "$kernel_pkg" ]; then
  kernel_pkg="$(resolve_kernel)"
  if [ -z "$kernel_pkg" ]; then
    apt_update
    kernel_pkg="$(resolve_kernel)"
  fi
  [ -n "$kernel_pkg" ] || die "cannot resolve the kernel that linux-image-amd64 depends on (apt-cache depends linux-image-amd64)"
fi
pkg_version() { apt-cache show --no-all-versions "$kernel_pkg" 2>/dev/null | awk '/^Version:/ { print $2; exit }' || true; }
kernel_ver="$(pkg_version)"
if [ -z "$kernel_ver" ]; then
  apt_update
  kernel_ver="$(pkg_version)"
fi
[ -n "$kernel_ver" ] || die "apt knows no package $kernel_pkg"
tree="$cache/${kernel_pkg}_${kernel_ver}"

exec 9>"$cache/.lock"
flock 9
if [ ! -f "$tree/.complete" ]; then
  deb="$(ls "$cache/${kernel_pkg}_${kernel_ver//:/%3a}_"*.deb 2>/dev/null | head -n1 || true)"
  if [ -z "$deb" ]; then
    log "downloading $kernel_pkg $kernel_ver into $cache"
    if ! (cd "$cache" && apt-get download -q -o APT::Sandbox::User=root "$kernel_pkg=$kernel_ver" >/dev/null); then
      apt_updated=0
      apt_update
      (cd "$cache" && apt-get download -q -o APT::Sandbox::User=root "$kernel_pkg=$kernel_ver" >/dev/null) ||
        die "apt-get download $kernel_pkg=$kernel_ver failed (is Debian's archive reachable?)"
    fi
    deb="$(ls "$cache/${kernel_pkg}_${kernel_ver//:/%3a}_"*.deb 2>/dev/null | head -n1 || true)"
    [ -n "$deb" ] || die "apt-get download left no ${kernel_pkg}_*.deb in $cache"
  fi
  log "extracting $(basename "$deb")"
  rm -rf "$tree" "$tree.tmp"
  dpkg-deb -x "$deb" "$tree.tmp" || die "dpkg-deb -x $deb failed (corrupt download? delete it and retry)"
  rel="$(ls "$tree.tmp/lib/modules" | head -n1)"
  [ -n "$rel" ] && [ -f "$tree.tmp/boot/vmlinuz-$rel" ] || die "$deb has no vmlinuz/modules"
  depmod -b "$tree.tmp" "$rel" || die "depmod for $rel failed"
  touch "$tree.tmp/.complete"
  mv "$tree.tmp" "$tree"
  rm -f "$deb"   # the extracted tree is the cache
fi
flock -u 9
exec 9>&-
rel="$(ls "$tree/lib/modules" | head -n1)"
vmlinuz="$tree/boot/vmlinuz-$rel"
moddir="$tree/lib/modules/$rel"
[ -f "$vmlinuz" ] && [ -f "$moddir/modules.dep" ] || die "broken kernel tree $tree: delete it and retry"

# --- run directory, initramfs -------------------------------------------------
qpid=
tailpid=
tmp="$(mktemp -d /tmp/kernel-matrix.XXXXXXXX)"
cleanup() {
  [ -z "$qpid" ] || kill "$qpid" 2>/dev/null || true
  [ -z "$tailpid" ] || kill "$tailpid" 2>/dev/null || true
  if [ -n "${KERNEL_MATRIX_DEBUG:-}" ]; then log "debug: kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Modules for the initramfs: 9p over virtio-pci and overlayfs, with their
# dependencies first (modules.dep), unless they are built in.
order=()
declare -A seen=()
add_module() {
  local name="$1" line path dep
  line="$(grep -E "(^|/)${name}\.ko(\.[a-z]+)?:" "$moddir/modules.dep" || true)"
  if [ -z "$line" ]; then
    grep -qE "/${name}\.ko\$" "$moddir/modules.builtin" ||
      die "module $name is neither in modules.dep nor built into $rel"
    return 0
  fi
  path="${line%%:*}"
  [ -z "${seen[$path]:-}" ] || return 0
  seen[$path]=1
  for dep in ${line#*:}; do
    dep="$(basename "$dep")"
    add_module "${dep%%.ko*}"
  done
  order+=("$path")
}
for m in virtio_pci 9pnet_virtio 9p overlay; do add_module "$m"; done

ird="$tmp/initramfs"
mkdir -p "$ird/bin" "$ird/dev" "$ird/modules"
cp /bin/busybox "$ird/bin/busybox"
cp "$init_src" "$ird/init"
chmod 755 "$ird/init"
: >"$ird/modules/load.order"
for p in "${order[@]}"; do
  case "$p" in *.ko) ;; *) die "compressed module $p: not supported by busybox insmod here" ;; esac
  cp "$moddir/$p" "$ird/modules/"
  basename "$p" >>"$ird/modules/load.order"
done
mknod "$ird/dev/console" c 5 1 2>/dev/null || true
(cd "$ird" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$tmp/initrd.gz"

# The command: the host's cwd, then the words as given (bash-quoted).
{
  printf 'cd -- %q || exit 125\n' "$PWD"
  printf 'exec'
  printf ' %q' "$@"
  printf '\n'
} >"$tmp/cmd.sh"
nonce="$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
{
  printf 'KM_NONCE=%s\n' "$nonce"
  printf 'KM_MODDIR=%q\n' "$moddir"
  printf 'KM_MODULES=%q\n' "$modules"
} >"$tmp/guest.env"

# --- qemu -----------------------------------------------------------------------
console="$tmp/console.log"
: >"$console"
case "$accel" in
  tcg) accel_opt="tcg,thread=multi" cpu=max ;;
  *) accel_opt="$accel" cpu=host ;;
esac
cmdline="console=ttyS0,115200 panic=-1 oops=panic mitigations=off"
if [ -n "${KERNEL_MATRIX_DEBUG:-}" ]; then cmdline+=" loglevel=7"; else cmdline+=" quiet loglevel=4"; fi
cmdline+=" 8250.nr_uarts=1 random.trust_cpu=on rdinit=/init km.dir=$tmp"

log "kernel $kernel_pkg $kernel_ver (release $rel), accel $accel, smp $smp, memory $memory, timeout ${timeout_s}s"
start=$(date +%s)
attempt=1
while :; do
  : >"$console"
  left=$((timeout_s - ($(date +%s) - start)))
  [ "$left" -gt 0 ] || left=1
  timeout -s TERM -k 15 "$left" \
    qemu-system-x86_64 -accel "$accel_opt" -cpu "$cpu" -smp "$smp" -m "$memory" \
    -nographic -nodefaults -no-reboot -monitor none \
    -chardev "file,id=con0,path=$console,append=on" -serial chardev:con0 \
    -kernel "$vmlinuz" -initrd "$tmp/initrd.gz" -append "$cmdline" \
    -fsdev "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap" \
    -device "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot" \
    </dev/null >"$tmp/qemu.out" 2>&1 &
  qpid=$!
  # Stream the console while the guest runs, without the serial line's CRs
  # and the firmware's terminal escapes.
  tail -n +1 -f --pid="$qpid" "$console" |
    sed -u -e 's/\r//g' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g' &
  tailpid=$!
  # Watch for the guest's "booted" line: a guest that does not get there in
  # --boot-timeout seconds (a wedged TCG start) is killed and started again once.
  t0=$(date +%s) booted= hung=
  while kill -0 "$qpid" 2>/dev/null; do
    sleep 1
    [ -z "$booted" ] || continue
    now=$(date +%s)
    if grep -aq 'kernel-matrix\[guest\]: booted' "$console"; then
      booted=$((now - t0))
    elif [ $((now - t0)) -ge "$boot_timeout" ]; then
      hung=1
      kill "$qpid" 2>/dev/null || true
    fi
  done
  qrc=0
  wait "$qpid" || qrc=$?
  qpid=
  wait "$tailpid" 2>/dev/null || true
  tailpid=
  if [ -n "$hung" ] && [ "$attempt" -lt 2 ] && [ $(($(date +%s) - start)) -lt "$timeout_s" ]; then
    log "the guest did not boot within ${boot_timeout}s (console: $(wc -c <"$console") bytes); starting it again"
    attempt=$((attempt + 1))
    continue
  fi
  break
done
end=$(date +%s)
elapsed=$((end - start))

status="$(tr -d '\r' <"$console" | grep -a -o "KM-EXIT-$nonce=[0-9]*" | tail -n1 | cut -d= -f2 || true)"
if [ -n "$hung" ]; then
  log "the guest did not boot within ${boot_timeout}s, twice; wall ${elapsed}s"
  exit 125
fi
if [ -z "$status" ] && { [ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ]; }; then
  log "timed out after ${timeout_s}s (qemu killed); wall ${elapsed}s"
  exit 124
fi
if [ -z "$status" ]; then
  log "the guest reported no exit status (qemu exit $qrc, wall ${elapsed}s)"
  if [ -s "$tmp/qemu.out" ]; then
    log "qemu said:"
    sed 's/^/  /' "$tmp/qemu.out" >&2
  fi
  exit 125
fi
[ "$qrc" -eq 0 ] || log "warning: qemu exited $qrc"
log "exit status $status on $rel; boot ${booted:-?}s (qemu start to command start), total ${elapsed}s wall"
exit "$status"
