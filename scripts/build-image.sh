#!/usr/bin/env bash
# Builds the container image deploy/kubernetes/ runs: the project's Debian
# package (cpack) installed into a minimal Debian 12 root (debootstrap
# --variant=minbase, with the package's Depends), imported with `podman
# import`. No registry is needed: the base is Debian's archive, the image is
# podman's, and --save writes it as an archive to load into a cluster's nodes.
# Installs podman and debootstrap (Debian's) when they are missing. As root.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<'EOF'
usage: scripts/build-image.sh [--tag TAG] [--save FILE] [--mirror URL]

Builds the bpfgate container image from this tree: the Debian package of the
build in $BUILD_DIR (default build/; configured and built if needed),
installed into a Debian 12 minbase root, imported with podman.

  --tag TAG      the image's name (default localhost/bpfgate:VERSION)
  --save FILE    also write the image as a docker-archive to FILE, to load on
                 nodes with `ctr -n k8s.io images import FILE` (containerd),
                 `podman load -i FILE` or `kind load image-archive FILE`
  --mirror URL   Debian archive to bootstrap from (default
                 http://deb.debian.org/debian)
  -h, --help     this text
EOF
}

tag="" save="" mirror="http://deb.debian.org/debian"
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag="${2:?--tag needs a value}"; shift 2 ;;
    --save) save="${2:?--save needs a file}"; shift 2 ;;
    --mirror) mirror="${2:?--mirror needs a URL}"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "build-image: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "build-image: run as root (debootstrap makes device nodes, podman imports as root)" >&2
  exit 1
fi

need=()
for p in podman debootstrap; do
  command -v "$p" >/dev/null || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "build-image: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

start=$(date +%s)
dir="${BUILD_DIR:-build}"

# 1. The Debian package, from the binary alone (not the tests).
[ -f "$dir/CMakeCache.txt" ] ||
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" >/dev/null
cmake --build "$dir" --target bpfgate -j"$(nproc)"
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$dir/CMakeCache.txt")
arch=$(dpkg --print-architecture)
deb="$dir/bpfgate_${version}_${arch}.deb"
rm -f "$deb"
(cd "$dir" && cpack -G DEB >/dev/null)
[ -f "$deb" ] || { echo "build-image: cpack made no $deb" >&2; exit 1; }
tag="${tag:-localhost/bpfgate:$version}"

# 2. Its run-time dependencies, by name (the versions are bookworm's).
deps=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/ //g' | grep . |
  paste -sd, -)

# 3. A Debian 12 minbase root with them, and the package.
root=$(mktemp -d /var/tmp/bpfgate-image.XXXXXX)
trap 'rm -rf "$root" "$root.log" "$root.err"' EXIT
echo "build-image: debootstrap bookworm (minbase + $deps) from $mirror"
debootstrap --variant=minbase --include="$deps" bookworm "$root" "$mirror" >"$root.log" 2>&1 || {
  tail -20 "$root.log" >&2
  rm -f "$root.log"
  exit 1
}
rm -f "$root.log"
cp "$deb" "$root/tmp/bpfgate.deb"
chroot "$root" dpkg -i /tmp/bpfgate.deb >/dev/null
rm "$root/tmp/bpfgate.deb"

# 4. What a container never uses: package caches and lists, documentation
# (the licences stay), locales, logs.
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/debconf/*-old "$root"/var/log/* \
  "$root"/usr/share/man "$root"/usr/share/info "$root"/usr/share/locale \
  "$root"/usr/share/doc/*/[!c]* "$root"/usr/share/doc/*/changelog*
# The mount points the DaemonSet uses, in case a runtime does not make them.
mkdir -p "$root/run/bpfgate" "$root/var/lib/bpfgate" "$root/etc/bpfgate/tls"

# 5. The image: the agent by default, any CLI command by arguments.
tar -C "$root" --numeric-owner -cf - . |
  podman import \
    --change 'ENTRYPOINT ["/usr/bin/bpfgate"]' \
    --change 'CMD ["run", "--config", "/etc/bpfgate/bpfgate.yaml", "--keep-datapath"]' \
    --change 'STOPSIGNAL SIGTERM' \
    --change "LABEL org.opencontainers.image.title=bpfgate org.opencontainers.image.version=$version" \
    --message "bpfgate $version on Debian 12 (debootstrap minbase)" \
    - "$tag" >/dev/null
# The image runs: its binary says its version. Where podman's defaults cannot
# run here (a hybrid cgroup layout with cgroup2 at /sys/fs/cgroup/unified,
# which crun refuses; rlimits over this machine's hard ones, without
# CAP_SYS_RESOURCE), again without cgroups and within the current limits,
# in a mount namespace of this check's own without that cgroup2 mount.
if ! podman run --rm --network none "$tag" --version 2>"$root.err"; then
  echo "build-image: podman run failed with its defaults ($(tail -1 "$root.err")); again" \
    "without cgroups, within this machine's limits" >&2
  unshare -m --propagation private sh -c '
    ! mountpoint -q /sys/fs/cgroup/unified || umount /sys/fs/cgroup/unified
    exec podman run --rm --network none --cgroups=disabled --ulimit nofile=1024:1024 \
      --ulimit nproc=1024:1024 "$1" --version' sh "$tag"
fi
rm -f "$root.err"

if [ -n "$save" ]; then
  rm -f "$save"
  podman save --format docker-archive -o "$save" "$tag"
  echo "build-image: saved to $save ($(du -h "$save" | cut -f1))"
fi
size=$(podman image inspect --format '{{.Size}}' "$tag")
echo "build-image: $tag, $((size / 1024 / 1024)) MiB, built in $(($(date +%s) - start)) s"
