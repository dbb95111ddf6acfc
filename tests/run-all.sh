#!/usr/bin/env bash
# The README's second set-up command: install everything the test suite needs (Debian packages
# and Python packages) on a fresh machine, then run the whole suite. .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real parts the tests start or read: sshd boards, the Fashion-MNIST files, the emulated aarch64
# board's rootfs builder (tests/farm also installs it if missing, and fetches qemu 10 from
# bookworm-backports into its own cache: no host apt source is changed); iproute2 + nftables shape
# a slow, lossy link into a network namespace (tests/test_faults.py; this kernel has no netem).
APT_PKGS=(openssh-server openssh-client dataset-fashion-mnist prometheus prometheus-pushgateway chromium debootstrap iproute2 nftables)
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "installing Debian packages: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'

# Security lint (bandit rules) on the package.
python3 -m ruff check --select S edgeq

exec python3 -m pytest "$@"
