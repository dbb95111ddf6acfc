#!/usr/bin/env bash
# Build the emulated Raspberry Pi's root filesystem: arm64 Debian bookworm (minbase) with python3,
# python3-venv and openssh-server, plus the Python stacks of a Raspberry Pi OS Bookworm board:
#   /opt/rpi-env     tflite-runtime 2.14.0 + numpy<2        (requirements-rpi.txt)
#   /opt/litert-env  ai-edge-litert + its numpy 2            (requirements-litert.txt)
#
# Usage: build-rootfs.sh OUT      creates OUT/rootfs, OUT/manifest.txt, OUT/phases.tsv
#
# Called by aarch64.py, which holds the cache lock, runs this in private mount+PID namespaces
# (debootstrap's own mounts die with it) and renames OUT into the cache only if this exits 0.
# The text of this file, enter-chroot.sh and the requirements files is the cache key: change any
# of them and the next run builds a new rootfs.
#
# pip inside the chroot cannot verify TLS (no CA bundle, and emulated pip is slow anyway), so the
# aarch64 wheels are downloaded on the host for the board's platform and installed offline.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:?usage: build-rootfs.sh OUT}
ROOT=$OUT/rootfs
SUITE=bookworm
DEBS=python3,python3-venv,openssh-server
MIRROR=${EDGEQ_FARM_MIRROR:-http://deb.debian.org/debian}
HOST_PY=${EDGEQ_FARM_HOST_PYTHON:-python3}
ENTER=("$BASH" "$HERE/enter-chroot.sh" "$ROOT" --)

mkdir -p "$OUT"
[[ ! -e $ROOT ]] || { echo "build-rootfs.sh: $ROOT already exists" >&2; exit 2; }
: >"$OUT/phases.tsv"
T0=${EPOCHREALTIME/./}
phase() { # phase NAME: record the seconds since the previous mark
  local now=${EPOCHREALTIME/./} us
  us=$((now - T0))
  printf '%s\t%d.%01d\n' "$1" $((us / 1000000)) $((us % 1000000 / 100000)) | tee -a "$OUT/phases.tsv" >&2
  T0=$now
}

# 1. Wheels for the board (seconds; first, so a PyPI problem fails before the long debootstrap).
#    Bookworm's glibc is 2.36: every manylinux tag from 2_17 to 2_36 installs there. pip does not
#    widen an explicit --platform to older glibc versions by itself, so all of them are listed.
PLATFORMS=(--platform manylinux2014_aarch64)
for v in $(seq 36 -1 17); do PLATFORMS+=(--platform "manylinux_2_${v}_aarch64"); done
for env in rpi litert; do
  "$HOST_PY" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
    --python-version 3.11 --implementation cp "${PLATFORMS[@]}" \
    -d "$OUT/wheels/$env" -r "$HERE/requirements-$env.txt"
  cp "$HERE/requirements-$env.txt" "$OUT/wheels/requirements-$env.txt"
done
phase wheels

# 2. The base system. binfmt_misc runs the arm64 maintainer scripts through qemu-aarch64
#    (registered with the F flag, so it works inside the chroot without a copy of qemu there).
debootstrap --arch=arm64 --variant=minbase --include="$DEBS" "$SUITE" "$ROOT" "$MIRROR" >&2
"${ENTER[@]}" /bin/true
phase debootstrap

# 3. The two Python environments. The venv is made by the board's python (under qemu: its paths and
#    pyvenv.cfg are the board's own), without pip: pip under emulation took most of a cold build. The
#    wheels are installed by this host's pip into the venv's site-packages for the board's platform
#    (--target with --platform/--python-version: a plain unpack, no code of the wheels runs), and their
#    .pyc files are compiled here: CPython's bytecode depends on the minor version only (3.11 on both).
for env in rpi litert; do
  "${ENTER[@]}" /usr/bin/python3 -m venv --without-pip "/opt/$env-env"
  SITE=$ROOT/opt/$env-env/lib/python3.11/site-packages
  "$HOST_PY" -m pip install --quiet --disable-pip-version-check --no-cache-dir --no-compile \
    --only-binary=:all: --python-version 3.11 --implementation cp "${PLATFORMS[@]}" \
    --no-index --find-links "$OUT/wheels/$env" --target "$SITE" -r "$OUT/wheels/requirements-$env.txt"
  "$HOST_PY" -m compileall -q -j 0 "$SITE" >/dev/null
done
phase venvs

# 4. Look like a board, and drop what every board must not share: debootstrap's generated sshd host
#    keys (each started board gets its own) and the package caches.
echo raspberrypi >"$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n' >"$ROOT/etc/hosts"
rm -f "$ROOT"/etc/ssh/ssh_host_*
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*
mkdir -p -m 0700 "$ROOT/root/.ssh"

# 5. Prove it works before anyone trusts it, and write down what is inside.
{
  echo "# edgeq aarch64 test board: Debian $SUITE arm64 minbase + $DEBS"
  "${ENTER[@]}" /usr/bin/dpkg-query -W -f '${Package} ${Version}\n' libc6 python3 python3.11 openssh-server
  "${ENTER[@]}" /opt/rpi-env/bin/python -c \
    "import tflite_runtime, tflite_runtime.interpreter, numpy; print('/opt/rpi-env: tflite-runtime', tflite_runtime.__version__, 'numpy', numpy.__version__)"
  "${ENTER[@]}" /opt/litert-env/bin/python -c \
    "from ai_edge_litert.interpreter import Interpreter; import importlib.metadata as m, numpy; print('/opt/litert-env: ai-edge-litert', m.version('ai-edge-litert'), 'numpy', numpy.__version__)"
  for env in rpi litert; do
    echo "# /opt/$env-env distributions"
    "${ENTER[@]}" "/opt/$env-env/bin/python" -c \
      "import importlib.metadata as m; print('\n'.join(sorted(d.metadata['Name'] + '==' + d.version for d in m.distributions())))"
  done
  echo "# wheels (sha256)"
  (cd "$OUT/wheels" && sha256sum -- */*.whl)
} >"$OUT/manifest.txt"
rm -rf "$OUT/wheels"
phase verify
cat "$OUT/manifest.txt" >&2
