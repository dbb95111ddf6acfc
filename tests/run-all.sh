#!/usr/bin/env bash
# The README's test command: install everything the test suite needs (Debian packages and Python
# packages) on a fresh machine, run the checks, then the tests. .ci/run calls exactly this.
# Arguments go to pytest (default: the whole suite, all three tiers: tests/unit, tests/func, tests/farm).
set -euo pipefail
cd "$(dirname "$0")/.."

# Real parts the tests start or read: sshd boards, the Fashion-MNIST files, the emulated aarch64
# board's rootfs builder (debootstrap; edgeq.testing.aarch64 fetches qemu 10 from bookworm-backports
# and the board's wheels into its own cache: no host apt source is changed), headless chromium for the
# report, Prometheus + Pushgateway + node_exporter (run as its own user on edgeq's textfile); iproute2 + nftables shape a slow, lossy link into a network
# namespace (tests/farm/test_faults.py; this kernel has no netem). Fixtures never install anything:
# a missing part fails its tests with its name.
APT_PKGS=(openssh-server openssh-client dataset-fashion-mnist prometheus prometheus-pushgateway prometheus-node-exporter chromium
  debootstrap util-linux iproute2 nftables)
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "installing Debian packages: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# [train]: TensorFlow, tf-keras, tfmot (the base install has none: tests/func/test_base_install.py runs the
# base commands with those imports blocked). [test] includes labgrid (coordinator, exporter, client):
# tests/farm/test_labgrid.py starts them on loopback.
python3 -m pip install -q --disable-pip-version-check -e '.[train,test]'

# Each check says what it runs; the first failure stops the script (set -e) with its exit code.
check() {
  echo "+ $*" >&2
  "$@"
}
check python3 -m ruff check .
check python3 -m ruff format --check .
check python3 -m mypy edgeq
# console scripts by full path: a pyenv or venv may not have them on PATH (no shim until a rehash)
SCRIPTS="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
check "$SCRIPTS/lint-imports"
check python3 -m deptry .

# Property tests at full strength here (tests/conftest.py registers the hypothesis profiles).
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
# pytest exits 5 when it collected no test: that is a failure here, never a silent pass.
echo "+ python3 -m pytest $*" >&2
rc=0
python3 -m pytest "$@" || rc=$?
if [ "$rc" = 5 ]; then
  echo "pytest collected no tests (exit 5): failing" >&2
  exit 1
fi
exit "$rc"
