#!/usr/bin/env bash
# Rehearse the unit tier the way the design promises it runs: as a user who is not root, on a checkout that
# user cannot write, with a Python that user can execute, in under a minute. Run it as root (it creates the
# user and the venv): `bash tests/unit_as_user.sh [pytest args]`; it prints the tier's wall time.
#
#   EDGEQ_UNIT_USER      the non-root user (default edgequnit; created with useradd if missing)
#   EDGEQ_UNIT_CHECKOUT  where the read-only copy of this working tree goes (default /tmp/ro-checkout)
#   EDGEQ_UNIT_VENV      the user's venv (default /opt/unitvenv, made from EDGEQ_UNIT_PYTHON)
#   EDGEQ_UNIT_PYTHON    a Python any user may run (default /usr/bin/python3: pyenv's under /root is not)
#   EDGEQ_UNIT_BUDGET_S  fail when the tier takes longer (default 60)
#   EDGEQ_UNIT_REV       test this commit (git archive) instead of the working tree
#   EDGEQ_UNIT_ALL_TOOLS=1  keep all of /usr/bin on PATH (by default the func/farm tiers' Debian tools are hidden)
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
USER_NAME="${EDGEQ_UNIT_USER:-edgequnit}"
CHECKOUT="${EDGEQ_UNIT_CHECKOUT:-/tmp/ro-checkout}"
VENV="${EDGEQ_UNIT_VENV:-/opt/unitvenv}"
BASE_PY="${EDGEQ_UNIT_PYTHON:-/usr/bin/python3}"
BUDGET_S="${EDGEQ_UNIT_BUDGET_S:-60}"
USER_HOME="/tmp/unit-home-$USER_NAME"

case "$CHECKOUT" in
  / | "$REPO" | "$REPO"/*) echo "EDGEQ_UNIT_CHECKOUT=$CHECKOUT: it is removed and rewritten, so not / nor this checkout" >&2; exit 2 ;;
esac
if [ "$(id -u)" != 0 ]; then
  echo "run this as root: it creates the user $USER_NAME, the venv $VENV and the read-only $CHECKOUT" >&2
  exit 2
fi
id "$USER_NAME" >/dev/null 2>&1 || useradd -m "$USER_NAME"

# The working tree as git sees it (tracked and untracked-but-not-ignored files that exist), or with
# EDGEQ_UNIT_REV=<commit> that commit (git archive): no .git, no .venv, no caches, no egg-info.
rm -rf "$CHECKOUT"
mkdir -p "$CHECKOUT"
if [ -n "${EDGEQ_UNIT_REV:-}" ]; then
  git -C "$REPO" archive --format=tar "$EDGEQ_UNIT_REV" | tar -xf - -C "$CHECKOUT"
else
  (
    cd "$REPO"
    git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
      [ -e "$f" ] && printf '%s\0' "$f"
    done | tar --null -T - -cf -
  ) | tar -xf - -C "$CHECKOUT"
fi

# The user's venv: edgeq's own dependencies plus the unit tier's test ones (not [test]: that brings torch,
# labgrid, the linters), at the versions constraints.txt says the suite passed with. edgeq itself is an
# editable install of the copy, so `python -m edgeq` in a test's subprocess runs the checkout under test.
if [ ! -x "$VENV/bin/python" ]; then
  "$BASE_PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$CHECKOUT/constraints.txt" \
  -e "$CHECKOUT" "pytest>=8" "hypothesis>=6" "scipy>=1.11" "scikit-learn>=1.4"
rm -rf "$CHECKOUT/edgeq.egg-info" "$CHECKOUT/build"  # what the editable build left: a checkout has none

# Read-only for the user: owned by root, no write bit anywhere.
chown -R root:root "$CHECKOUT"
chmod -R a-w "$CHECKOUT"
rm -rf "$USER_HOME"
install -d -o "$USER_NAME" -m 700 "$USER_HOME"

# PATH without the Debian tools the func and farm tiers use (OpenSSH, Prometheus, chromium, debootstrap,
# qemu, nftables, iproute2, systemd-analyze) and without other Pythons: the unit tier needs none of them, so
# a test that calls one fails here (EDGEQ_UNIT_ALL_TOOLS=1 keeps the whole /usr/bin).
BARE_BIN="/tmp/unit-bin-$USER_NAME"
rm -rf "$BARE_BIN"
mkdir -p "$BARE_BIN"
hidden=" systemd-analyze $(dpkg -L openssh-client openssh-server prometheus prometheus-pushgateway \
  prometheus-node-exporter chromium debootstrap qemu-user-static nftables iproute2 2>/dev/null |
  grep -E '/s?bin/[^/]+$' | xargs -rn1 basename | tr '\n' ' ' || true) "
for dir in /usr/local/bin /usr/bin; do
  for f in "$dir"/*; do
    b="${f##*/}"
    case "$b" in python* | pydoc* | pip* | py3* | chromium* | qemu-* | ssh* | prom*) continue ;; esac
    [[ "$hidden" == *" $b "* || -e "$BARE_BIN/$b" ]] || ln -s "$f" "$BARE_BIN/$b"
  done
done
USER_PATH="$BARE_BIN"
[ "${EDGEQ_UNIT_ALL_TOOLS:-0}" = 1 ] && USER_PATH=/usr/local/bin:/usr/bin:/bin

# A clean environment, as from the user's own login: nothing of root's (no PYTHONPATH, no EDGEQ_*).
# -p no:cacheprovider: pytest's cache would be written into the checkout.
start_us=${EPOCHREALTIME/./}
set +e
runuser -u "$USER_NAME" -- env -i PATH="$USER_PATH" HOME="$USER_HOME" LANG=C.UTF-8 \
  ${HYPOTHESIS_PROFILE:+HYPOTHESIS_PROFILE="$HYPOTHESIS_PROFILE"} \
  sh -c 'cd "$1" && shift && exec "$@"' sh "$CHECKOUT" \
  "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/unit "$@"
rc=$?
set -e
wall_ms=$(((${EPOCHREALTIME/./} - start_us) / 1000))
printf 'unit tier as %s (uid %s) on read-only %s: exit %s, wall %d.%01d s (budget %s s)\n' \
  "$USER_NAME" "$(id -u "$USER_NAME")" "$CHECKOUT" "$rc" $((wall_ms / 1000)) $((wall_ms % 1000 / 100)) "$BUDGET_S" >&2
[ "$rc" = 0 ] || exit "$rc"
if ((wall_ms > BUDGET_S * 1000)); then
  echo "the unit tier took longer than its budget of $BUDGET_S s" >&2
  exit 1
fi
