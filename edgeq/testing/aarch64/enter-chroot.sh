#!/usr/bin/env bash
# Run CMD chrooted in an aarch64 root filesystem (executed through qemu-user's binfmt_misc entry),
# inside new mount, UTS and PID namespaces.
#
# Why namespaces: every mount made here (the overlay, /proc, /sys, /dev, /dev/pts, /run) belongs to
# the private mount namespace and disappears with its last process, so a killed test or build never
# leaves mounts on the host (and nothing later can `rm -rf` through a leftover bind of /dev).
# The namespace's PID 1 is this script, waiting for CMD: when it exits the kernel kills everything
# CMD started, and --kill-child makes it die when this script's unshare process is killed.
#
# Usage: enter-chroot.sh ROOT [--overlay STATE] [--seed DIR] [--hostname NAME] -- CMD [ARG...]
#   --overlay STATE  ROOT is only read: writes go to STATE/upper (work dir STATE/work), and the
#                    merged tree is mounted on STATE/root (visible inside the namespace only)
#   --seed DIR       copy DIR's tree into the root before CMD; existing directories keep their
#                    owner and mode (tar --no-overwrite-dir)
#   --hostname NAME  the board's host name (UTS namespace only; the host's name is untouched)
# CMD runs with a clean environment (PATH, HOME=/root, LANG=C.UTF-8): the host's PIP_*, proxies
# and the like mean nothing inside the board.
set -euo pipefail

if [[ ${1:-} != --in-ns ]]; then
  exec unshare --mount --uts --pid --fork --kill-child --propagation private -- "$BASH" "$0" --in-ns "$@"
fi
shift

die() { echo "enter-chroot.sh: $*" >&2; exit 2; }
(($#)) || die "usage: enter-chroot.sh ROOT [--overlay STATE] [--seed DIR] [--hostname NAME] -- CMD..."
LOWER=$1
shift
STATE="" SEED="" NAME=""
while (($#)); do
  case $1 in
    --overlay) STATE=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --hostname) NAME=$2; shift 2 ;;
    --) shift; break ;;
    *) die "unknown option $1" ;;
  esac
done
(($#)) || die "no command given"
[[ -x $LOWER/bin/sh || -L $LOWER/bin/sh ]] || die "$LOWER does not look like a root filesystem (no /bin/sh)"

R=$LOWER
if [[ -n $STATE ]]; then
  mkdir -p "$STATE/upper" "$STATE/work" "$STATE/root"
  mount -t overlay edgeq-board -o "lowerdir=$LOWER,upperdir=$STATE/upper,workdir=$STATE/work" "$STATE/root"
  R=$STATE/root
fi

mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
# A minimal /dev: a tmpfs with binds of the few host nodes a board's sshd, shell and python use.
mount -t tmpfs -o mode=0755,nosuid,size=16m edgeq-dev "$R/dev"
for n in null zero full random urandom tty; do
  : >"$R/dev/$n"
  mount --bind "/dev/$n" "$R/dev/$n"
done
mkdir -m 0755 "$R/dev/pts"
mkdir -m 1777 "$R/dev/shm"
# newinstance: the board's ptys are its own, not the host's.
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$R/dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev edgeq-shm "$R/dev/shm"
ln -s pts/ptmx "$R/dev/ptmx"
ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"
ln -s /proc/self/fd/1 "$R/dev/stdout"
ln -s /proc/self/fd/2 "$R/dev/stderr"
# /run is a tmpfs on a real board too; sshd needs its privilege-separation dir there.
mount -t tmpfs -o mode=0755,nosuid,nodev edgeq-run "$R/run"
mkdir -p -m 0755 "$R/run/sshd" "$R/run/lock"

if [[ -n $SEED ]]; then
  tar -C "$SEED" -cf - . | tar -C "$R" -xpf - --no-overwrite-dir
fi
if [[ -n $NAME ]]; then
  hostname "$NAME"
fi
# No core files: qemu would write the whole emulated address space into the board's overlay.
ulimit -c 0

# CMD runs as a child, not as PID 1: the kernel drops default-action signals that PID 1 sends
# itself, so a crashing emulated program (qemu re-raises SIGSEGV) would hang instead of dying.
# When this shell (PID 1) exits, the kernel kills whatever CMD left behind in the namespace.
env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  ${TERM:+TERM=$TERM} chroot "$R" "$@" <&0 &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM INT HUP
while :; do
  rc=0
  wait "$child" || rc=$?
  kill -0 "$child" 2>/dev/null || exit "$rc"  # wait also returns when a trapped signal arrives
done
