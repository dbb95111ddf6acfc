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
# namespace (tests/farm/test_faults.py; this kernel has no netem). python3-venv: Debian's python3 makes
# no venv without it. Fixtures never install anything: a missing part fails its tests with its name.
APT_PKGS=(python3-venv systemd openssh-server openssh-client dataset-fashion-mnist prometheus prometheus-pushgateway prometheus-node-exporter
  chromium debootstrap util-linux iproute2 nftables)
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "installing Debian packages: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Python environment: the active venv (README command 1 made and activated .venv), else the checkout's
# .venv, created here with python3 and reused after. Everything below runs "$PY", never a bare python3 (a
# system Python's own packages are not a user's), and PATH leads to the venv's scripts, as activation does.
if [ -n "${VIRTUAL_ENV:-}" ]; then
  PY="$VIRTUAL_ENV/bin/python"
elif python3 -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)'; then
  PY="$(python3 -c 'import sys; print(sys.executable)')" # a venv's python3 first on PATH, not activated
else
  if [ ! -e .venv/bin/python ]; then
    echo "+ python3 -m venv .venv" >&2
    python3 -m venv .venv
  fi
  PY="$PWD/.venv/bin/python"
fi
if ! "$PY" -c '' 2>/dev/null; then
  echo "$PY does not run (was its base Python removed?): delete that venv and run this again" >&2
  exit 1
fi
VENV_BIN="$(dirname "$PY")"
VIRTUAL_ENV="$("$PY" -c 'import sys; print(sys.prefix)')"
export VIRTUAL_ENV PATH="$VENV_BIN:$PATH"

# [train]: TensorFlow, tf-keras, tfmot (the base install has none: tests/func/test_base_install.py runs the
# base commands with those imports blocked); [labgrid]: tests/farm/test_labgrid.py starts a real coordinator
# and exporter; [tflite-quant]: the LiteRT quantizer. [test] holds test tools only, so this venv has the
# versions a user of [train] gets (tests/unit/test_constraints_sets.py compares the sets). No torch: below.
echo "+ $PY -m pip install -e '.[train,labgrid,tflite-quant,test]'" >&2
"$PY" -m pip install -q -U pip
"$PY" -m pip install -q -e '.[train,labgrid,tflite-quant,test]'

# The torch extra's tests (tests/func/test_from_torch.py) run in a venv of their own, EDGEQ_TORCH_VENV: PyPI's
# torch is the CUDA build (GBs), and litert-torch moves typing-extensions and pydantic below what [train] gets.
# It holds the requirements of [train,torch,tflite-quant] but not edgeq: the tests run this checkout's edgeq in
# it through PYTHONPATH, so one cached venv serves every checkout. Its key: those requirement lines and the base
# Python. Built in a temporary folder beside it and renamed when complete (so its bin/ scripts name that
# folder: run its tools as bin/python -m ...). Built only when the tests to run include that file.
selects_torch_tests() {
  local a p paths=0
  for a in "$@"; do
    case "$a" in -*) continue ;; esac
    p="${a%%::*}"
    [ -e "$p" ] || continue
    paths=1
    p="$(realpath "$p")"
    case "$PWD/tests/func/test_from_torch.py" in "$p" | "$p"/*) return 0 ;; esac
  done
  [ "$paths" = 0 ] # no path given: the whole suite
}

torch_venv() {
  local cache="${XDG_CACHE_HOME:-$HOME/.cache}/edgeq-tests" key reqs tmp t t0=$SECONDS
  mkdir -p "$cache"
  reqs="$cache/.torch-requirements-$$.txt"
  key="$("$PY" -c '
import hashlib, sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = project["optional-dependencies"]
lines = [*project["dependencies"], *(r for e in ("train", "torch", "tflite-quant") for r in extras[e])]
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
print(hashlib.sha256("\n".join([*lines, sys.version, sys._base_executable]).encode()).hexdigest()[:12])
' "$reqs")"
  EDGEQ_TORCH_VENV="$cache/torch-venv-$key"
  if [ -e "$EDGEQ_TORCH_VENV/bin/python" ]; then
    rm -f "$reqs"
    echo "torch tests' venv (cached): $EDGEQ_TORCH_VENV" >&2
    return
  fi
  for t in "$cache"/.torch-venv-*.building-*; do # left by a killed build
    if [ -e "$t" ] && ! kill -0 "${t##*-}" 2>/dev/null; then rm -rf "$t"; fi
  done
  tmp="$cache/.torch-venv-$key.building-$$"
  echo "building the torch tests' venv $EDGEQ_TORCH_VENV ([train,torch,tflite-quant]: a few GB, once)" >&2
  rm -rf "$tmp"
  "$PY" -m venv "$tmp"
  "$tmp/bin/python" -m pip install -q -U pip
  "$tmp/bin/python" -m pip install -q -r "$reqs"
  rm -f "$reqs"
  mv -T "$tmp" "$EDGEQ_TORCH_VENV" 2>/dev/null || rm -rf "$tmp" # another run finished first: use its venv
  echo "built the torch tests' venv in $((SECONDS - t0)) s" >&2
  for t in "$cache"/torch-venv-*; do # other keys' venvs: several GB each, never used again
    [ "$t" = "$EDGEQ_TORCH_VENV" ] || rm -rf "$t"
  done
}

if [ -z "${EDGEQ_TORCH_VENV:-}" ] && selects_torch_tests "$@"; then
  torch_venv
fi
if [ -n "${EDGEQ_TORCH_VENV:-}" ]; then export EDGEQ_TORCH_VENV; fi

# Each check says what it runs; the first failure stops the script (set -e) with its exit code.
check() {
  echo "+ $*" >&2
  "$@"
}
check "$PY" -m ruff check .
check "$PY" -m ruff format --check .
check "$PY" -m mypy edgeq
check "$VENV_BIN/lint-imports"
check "$PY" -m deptry .

# Property tests at full strength here (tests/conftest.py registers the hypothesis profiles).
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
# pytest exits 5 when it collected no test: that is a failure here, never a silent pass.
echo "+ $PY -m pytest $*" >&2
rc=0
"$PY" -m pytest "$@" || rc=$?
if [ "$rc" = 5 ]; then
  echo "pytest collected no tests (exit 5): failing" >&2
  exit 1
fi
exit "$rc"
