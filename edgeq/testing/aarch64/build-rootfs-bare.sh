#!/usr/bin/env bash
# Build a BARE emulated board's root filesystem: arm64 Debian (minbase) with only the system
# python3, python3-venv and openssh-server -- no numpy, no TFLite runtime, no venv. The board
# `edgeq devices setup` starts from (flavour "bullseye-bare": Debian bullseye, Python 3.9).
#
# Usage: build-rootfs-bare.sh OUT SUITE    creates OUT/rootfs, OUT/manifest.txt, OUT/phases.tsv
#
# Called by edgeq.testing.aarch64 (flavour with script build-rootfs-bare.sh), which holds the
# flavour's cache lock, runs this in private mount+PID namespaces and renames OUT into the cache
# only if this exits 0. The text of this file and SUITE are the flavour's cache key.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:?usage: build-rootfs-bare.sh OUT SUITE}
SUITE=${2:?usage: build-rootfs-bare.sh OUT SUITE}
ROOT=$OUT/rootfs
DEBS=python3,python3-venv,openssh-server
MIRROR=${EDGEQ_FARM_MIRROR:-http://deb.debian.org/debian}
ENTER=("$BASH" "$HERE/enter-chroot.sh" "$ROOT" --)

mkdir -p "$OUT"
[[ ! -e $ROOT ]] || { echo "build-rootfs-bare.sh: $ROOT already exists" >&2; exit 2; }
: >"$OUT/phases.tsv"
T0=${EPOCHREALTIME/./}
phase() { # phase NAME: record the seconds since the previous mark
  local now=${EPOCHREALTIME/./} us
  us=$((now - T0))
  printf '%s\t%d.%01d\n' "$1" $((us / 1000000)) $((us % 1000000 / 100000)) | tee -a "$OUT/phases.tsv" >&2
  T0=$now
}

# 1. The base system (binfmt_misc runs the arm64 maintainer scripts through qemu-aarch64).
debootstrap --arch=arm64 --variant=minbase --include="$DEBS" "$SUITE" "$ROOT" "$MIRROR" >&2
"${ENTER[@]}" /bin/true
phase debootstrap

# 2. Look like a board (the host name of a Raspberry Pi, as the bookworm flavour), and drop what
#    every board must not share: debootstrap's generated sshd host keys (each started board gets
#    its own) and the package caches.
echo raspberrypi >"$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n' >"$ROOT/etc/hosts"
rm -f "$ROOT"/etc/ssh/ssh_host_*
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*
mkdir -p -m 0700 "$ROOT/root/.ssh"

# 3. Prove it works (the system python makes a venv with pip) and write down what is inside.
PYV=$("${ENTER[@]}" /usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
"${ENTER[@]}" /usr/bin/python3 -m venv /tmp/edgeq-venv-check
"${ENTER[@]}" /tmp/edgeq-venv-check/bin/python -m pip --version >&2
rm -rf "$ROOT/tmp/edgeq-venv-check"
{
  echo "# edgeq aarch64 bare board: Debian $SUITE arm64 minbase + $DEBS (no venv, no runtime)"
  "${ENTER[@]}" /usr/bin/dpkg-query -W -f '${Package} ${Version}\n' libc6 python3 "python$PYV" "python$PYV-venv" openssh-server
  "${ENTER[@]}" /usr/bin/python3 -c \
    "import sys, importlib.util as u; print('/usr/bin/python3:', sys.version.split()[0], 'numpy', 'present' if u.find_spec('numpy') else 'absent')"
} >"$OUT/manifest.txt"
phase verify
cat "$OUT/manifest.txt" >&2
