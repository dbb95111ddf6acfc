"""An emulated Raspberry Pi for the test farm: arm64 Debian bookworm under qemu-user (binfmt_misc).

    rootfs = ensure_rootfs()                      # build once (~3-4 min), then reuse from the cache
    with start_board(rootfs, port=None, authorized_pubkey=pub, key_file=key) as board:
        ... ssh/sftp to board.host:board.port as board.user, verifying with board.known_hosts ...

The root filesystem is built by build-rootfs.sh (debootstrap + two offline-installed Python
environments) and cached outside the checkout under $EDGEQ_FARM_CACHE (default
/var/cache/edgeq-testfarm) as a plain directory aarch64-<recipe hash>/rootfs. The hash covers the
builder script and the requirement pins, so CI reuses the cache until the recipe changes. The build
goes into a temporary directory beside it that is renamed only once verified; an flock serialises
builders.

The emulator is the static qemu-aarch64 of Debian bookworm-backports (10.x), fetched with apt into
the cache and registered in binfmt_misc as "edgeq-qemu-aarch64" with the F flag; bookworm's own
qemu-user-static 7.2 crashes ai-edge-litert >= 2.2 (its entry is disabled while ours is active).

A started board never writes to the cached rootfs: it runs on an overlay whose upper layer lives in a
per-board state directory. Its sshd (the chroot's own, emulated) runs in private mount, UTS and PID
namespaces (enter-chroot.sh), so all of the board's mounts vanish with it, and it dies with the test
process that started it.

Command line:  python -m edgeq.testing.aarch64 build [--flavour F]
               python -m edgeq.testing.aarch64 start [--flavour F] [--port N] [--pubkey FILE]

Flavours (FLAVOURS): bookworm-rpi, the default and the test suite's board; bullseye-bare, Debian
bullseye with only its system python3 3.9, python3-venv and openssh-server (build-rootfs-bare.sh),
the bare board `edgeq devices setup` is benchmarked on (bench/setup_bench.py), cached under its own key.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

FARM = Path(__file__).resolve().parent
ENTER = FARM / "enter-chroot.sh"
BUILDER = FARM / "build-rootfs.sh"
RECIPE_FILES = ("build-rootfs.sh", "requirements-rpi.txt", "requirements-litert.txt")
HOST_PACKAGES = {  # file that must exist -> Debian package providing it
    "/usr/sbin/debootstrap": "debootstrap",
    "/usr/bin/ssh": "openssh-client",
    "/usr/bin/ssh-keygen": "openssh-client",
    "/usr/bin/unshare": "util-linux",
    "/usr/bin/dpkg-deb": "dpkg",
}
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
BINFMT_NAME = "edgeq-qemu-aarch64"
# QEMU comes from Debian bookworm-backports (10.x), not bookworm itself: bookworm's qemu-user-static
# 7.2 segfaults in ai-edge-litert >= 2.2's Interpreter() (2.1.6 and tflite-runtime 2.14 are fine).
QEMU_SUITE = "bookworm-backports"
QEMU_PACKAGE = "qemu-user"
PYTHONS = {"tflite-runtime": "/opt/rpi-env/bin/python", "litert": "/opt/litert-env/bin/python"}


@dataclass(frozen=True)
class Flavour:
    """One kind of emulated board: its builder script, what keys its cache entry, its pythons."""

    name: str
    prefix: str  # cache entry CACHE/<prefix>-<hash>, lock CACHE/<lock>
    lock: str
    script: str  # in FARM, called as `bash SCRIPT OUT [ARGS...]`
    args: tuple[str, ...]
    recipe_files: tuple[str, ...]
    pythons: dict[str, str]  # runtime name (or "system") -> python on the board


DEFAULT_FLAVOUR = "bookworm-rpi"
FLAVOURS = {
    # The test suite's board: its cache entry name, lock and hash are those of the single-flavour
    # farm (a changed hash would force CI into a cold rebuild).
    DEFAULT_FLAVOUR: Flavour(
        name=DEFAULT_FLAVOUR,
        prefix="aarch64",
        lock="aarch64.lock",
        script=BUILDER.name,
        args=(),
        recipe_files=RECIPE_FILES,
        pythons=PYTHONS,
    ),
    # A bare board for `edgeq devices setup`: Debian bullseye's system python3 3.9, python3-venv and
    # openssh-server; no venv, no numpy, no runtime. Not used by the test suite (bench only).
    "bullseye-bare": Flavour(
        name="bullseye-bare",
        prefix="aarch64-bullseye-bare",
        lock="aarch64-bullseye-bare.lock",
        script="build-rootfs-bare.sh",
        args=("bullseye",),
        recipe_files=("build-rootfs-bare.sh",),
        pythons={"system": "/usr/bin/python3"},
    ),
}


def flavour_of(name: str | None) -> Flavour:
    f = FLAVOURS.get(name or DEFAULT_FLAVOUR)
    if f is None:
        raise FarmError(f"unknown board flavour {name!r}: one of {', '.join(FLAVOURS)}")
    return f


DEFAULT_CACHE = Path("/var/cache/edgeq-testfarm")
LOCK_TIMEOUT = 45 * 60  # a cold build takes minutes; a second process waits for it rather than building too
BUILD_TIMEOUT = 40 * 60
BOOT_TIMEOUT = 120  # emulated sshd: about a second normally, much more on a loaded 2-core CI machine


class FarmError(RuntimeError):
    """The emulated board could not be built or started; the message says what to do."""


# --------------------------------------------------------------------------------------- host


def _run(argv: list[str], timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kw)


def _pdeathsig() -> None:
    """In the child before exec: die with the parent (survives exec; inherited by nothing)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEQ_FARM_CACHE") or DEFAULT_CACHE)


class _Lock:
    """fcntl.flock on a file, waiting at most LOCK_TIMEOUT (another process may be building)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.f = open(self.path, "w")
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self.f.close()
                    raise FarmError(f"another process has held {self.path} for {LOCK_TIMEOUT} s") from None
                time.sleep(1)

    def __exit__(self, *exc):
        self.f.close()


def ensure_host(cache: Path | None = None) -> Path:
    """Root, the host packages, binfmt_misc mounted, and our qemu-aarch64 registered with the F flag.

    Returns the qemu-aarch64 binary the kernel now runs arm64 programs with.
    """
    if os.geteuid() != 0:
        raise FarmError("the aarch64 board needs root (debootstrap, chroot, mounts); run the tests as root")
    cache = Path(cache or cache_dir())
    cache.mkdir(parents=True, exist_ok=True)
    missing = sorted({pkg for path, pkg in HOST_PACKAGES.items() if not Path(path).exists()})
    if missing:
        # Installing is the test command's job (tests/run-all.sh), not the board's.
        raise FarmError(f"missing Debian packages {', '.join(missing)}: run tests/run-all.sh, or apt-get install them")
    if not (BINFMT_DIR / "status").exists():
        p = _run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)])
        if p.returncode:
            raise FarmError(f"cannot mount binfmt_misc on {BINFMT_DIR}: {p.stderr.strip()} (needs CAP_SYS_ADMIN)")
    with _Lock(cache / "qemu.lock"):
        qemu, conf = _ensure_qemu(cache / "qemu")
        _register_binfmt(qemu, conf)
    return qemu


def _ensure_qemu(qdir: Path) -> tuple[Path, str]:
    """A static qemu-aarch64 from Debian's QEMU_SUITE, fetched once with apt into the cache (no change
    to the host's apt sources or installed packages). Returns it and Debian's binfmt registration line."""
    current = qdir / "current"
    if current.is_symlink() and (current / "qemu-aarch64").exists():
        d = current.resolve()
        return d / "qemu-aarch64", (d / "qemu-aarch64.conf").read_text().strip()
    apt = qdir / "apt"
    for sub in ("lists/partial", "cache/archives/partial", "sources.list.d"):
        (apt / sub).mkdir(parents=True, exist_ok=True)
    mirror = os.environ.get("EDGEQ_FARM_MIRROR", "http://deb.debian.org/debian")
    (apt / "sources.list").write_text(
        f"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {mirror} {QEMU_SUITE} main\n"
    )
    opts = [
        f"-oDir::Etc::SourceList={apt / 'sources.list'}",
        f"-oDir::Etc::SourceParts={apt / 'sources.list.d'}",
        f"-oDir::State::Lists={apt / 'lists'}",
        f"-oDir::Cache={apt / 'cache'}",
        "-oAPT::Sandbox::User=root",
        "-oAcquire::Retries=3",
    ]
    p = _run(["apt-get", *opts, "update", "-qq"])
    if p.returncode:
        raise FarmError(f"apt-get update for {QEMU_SUITE} failed: {(p.stderr or p.stdout).strip()[-1500:]}")
    dl = qdir / "download"
    _remove_tree(dl)
    dl.mkdir()
    p = _run(["apt-get", *opts, "download", f"{QEMU_PACKAGE}/{QEMU_SUITE}"], cwd=dl)
    debs = list(dl.glob(f"{QEMU_PACKAGE}_*.deb"))
    if p.returncode or not debs:
        raise FarmError(f"apt-get download {QEMU_PACKAGE}/{QEMU_SUITE} failed: {(p.stderr or p.stdout).strip()[-1500:]}")
    version = _run(["dpkg-deb", "-f", str(debs[0]), "Version"]).stdout.strip()
    x = dl / "x"
    p = _run(["dpkg-deb", "-x", str(debs[0]), str(x)])
    conf = x / "usr/share/qemu/binfmt.d/qemu-aarch64.conf"
    binary = x / "usr/bin/qemu-aarch64"
    if p.returncode or not binary.exists() or not conf.exists():
        raise FarmError(f"{debs[0].name} has no usr/bin/qemu-aarch64 or binfmt.d/qemu-aarch64.conf: {p.stderr.strip()}")
    final = qdir / version.replace(":", "_")
    _remove_tree(final)
    tmp = qdir / f".{final.name}.tmp"
    _remove_tree(tmp)
    tmp.mkdir()
    shutil.copy2(binary, tmp / "qemu-aarch64")
    shutil.copy2(conf, tmp / "qemu-aarch64.conf")
    (tmp / "VERSION").write_text(f"{QEMU_PACKAGE} {version} ({QEMU_SUITE})\n")
    os.rename(tmp, final)
    link = qdir / ".current.tmp"
    link.unlink(missing_ok=True)
    link.symlink_to(final.name)
    os.replace(link, current)
    _remove_tree(dl)
    return final / "qemu-aarch64", (final / "qemu-aarch64.conf").read_text().strip()


def qemu_version(cache: Path | None = None) -> str:
    v = Path(cache or cache_dir()) / "qemu" / "current" / "VERSION"
    return v.read_text().strip() if v.exists() else "unknown"


def _binfmt_entry(path: Path) -> dict:
    text = path.read_text()
    info: dict = {"enabled": text.startswith("enabled")}
    for line in text.splitlines()[1:]:
        k, _, v = line.partition(" ")
        info[k.rstrip(":")] = v.strip()
    return info


def _register_binfmt(qemu: Path, conf: str) -> None:
    """Register QEMU for aarch64 ELF files as BINFMT_NAME with Debian's flags (F: the kernel opens the
    interpreter now, so it works inside chroots that do not contain it) and disable any other
    aarch64 entry (bookworm's qemu-user-static 7.2 registers "qemu-aarch64")."""
    _, _name, typ, offset, magic, mask, _interp, flags = conf.split(":")
    if "F" not in flags:
        flags += "F"
    entry = BINFMT_DIR / BINFMT_NAME
    if entry.exists():
        e = _binfmt_entry(entry)
        interp = Path(e.get("interpreter", "/nonexistent"))
        same = interp == qemu or (  # the same qemu from another cache dir will do: no re-registration race
            interp.exists()
            and (interp.parent / "VERSION").exists()
            and (interp.parent / "VERSION").read_text() == (qemu.parent / "VERSION").read_text()
        )
        if not (e["enabled"] and same and "F" in e.get("flags", "")):
            entry.write_text("-1")
    if not entry.exists():
        try:
            (BINFMT_DIR / "register").write_text(f":{BINFMT_NAME}:{typ}:{offset}:{magic}:{mask}:{qemu}:{flags}")
        except OSError as err:
            raise FarmError(f"cannot register {qemu} in binfmt_misc: {err}") from err
    ours = _binfmt_entry(entry)
    for other in BINFMT_DIR.iterdir():
        if other.name in ("register", "status", BINFMT_NAME):
            continue
        try:
            e = _binfmt_entry(other)
        except OSError:
            continue
        if e["enabled"] and e.get("magic") == ours.get("magic"):
            other.write_text("0")  # disable, not remove: `update-binfmts --enable` restores it


# ------------------------------------------------------------------------------------ rootfs


def recipe_hash(flavour: str | None = None) -> str:
    f = flavour_of(flavour)
    h = hashlib.sha256()
    if f.name != DEFAULT_FLAVOUR:  # the default's hash is that of the single-flavour farm, unchanged
        h.update(f"flavour {f.name} {' '.join(f.args)}".encode() + b"\0")
    for name in f.recipe_files:
        h.update(name.encode() + b"\0" + (FARM / name).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def entry_dir(flavour: str | None = None, cache: Path | None = None) -> Path:
    """CACHE/<prefix>-<hash>: where the flavour's current recipe is (or would be) cached."""
    f = flavour_of(flavour)
    return Path(cache or cache_dir()) / f"{f.prefix}-{recipe_hash(f.name)}"


def build_info(rootfs: Path) -> dict:
    """What build.json recorded for a cached rootfs: recipe, build seconds, phases, manifest."""
    return json.loads((Path(rootfs).parent / "build.json").read_text())


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mnt = line.split()[4].replace("\\040", " ")
        if mnt == str(path) or mnt.startswith(prefix):
            out.append(mnt)
    return out


def _remove_tree(path: Path) -> None:
    """rm -rf that first makes sure nothing is mounted below (never delete through a bind of /dev)."""
    for mnt in sorted(_mounts_under(path), key=len, reverse=True):
        if _run(["umount", mnt]).returncode:
            _run(["umount", "-l", mnt])  # busy: detach now, the kernel finishes when it is free
    left = _mounts_under(path)
    if left:
        raise FarmError(f"cannot remove {path}: still mounted: {left}")
    if path.exists():
        _run(["rm", "-rf", "--one-file-system", str(path)])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ensure_rootfs(cache: Path | None = None, log=None, flavour: str | None = None) -> Path:
    """Return the cached arm64 rootfs for the current recipe, building it first if needed.

    The rootfs is CACHE/aarch64-<hash>/rootfs; CACHE/aarch64-<hash>/build.json records the build
    wall time, its phases and the manifest (package and wheel versions). Another flavour (FLAVOURS)
    has its own entries, CACHE/<prefix>-<hash>, and its own lock.
    """
    f = flavour_of(flavour)
    cache = Path(cache or cache_dir())
    ensure_host(cache)
    key = recipe_hash(f.name)
    final = cache / f"{f.prefix}-{key}"
    if not (final / "build.json").exists():
        with _Lock(cache / f.lock):
            if not (final / "build.json").exists():  # someone else may have built it while we waited
                _build(cache, key, final, log, f)
    _check_runs(final / "rootfs")
    return final / "rootfs"


def _check_runs(rootfs: Path) -> None:
    p = _run(["bash", str(ENTER), str(rootfs), "--", "/bin/true"], timeout=120)
    if p.returncode:
        raise FarmError(f"cannot run arm64 binaries in {rootfs} (binfmt_misc/qemu-aarch64?): {p.stderr.strip()[-1500:]}")


def _is_entry(name: str, f: Flavour, building: bool = False) -> bool:
    """CACHE/<prefix>-<16 hex> (or .<prefix>-<16 hex>.building-<pid>) of this flavour only: the
    default's prefix "aarch64" is also the start of the other flavours' names."""
    pat = rf"\.{re.escape(f.prefix)}-[0-9a-f]{{16}}\.building-\d+" if building else rf"{re.escape(f.prefix)}-[0-9a-f]{{16}}"
    return re.fullmatch(pat, name) is not None


def _prune(cache: Path, keep: Path, f: Flavour, n: int = 2) -> None:
    """Keep the flavour's n newest rootfs entries (another checkout may still use the previous recipe)."""
    entries = sorted(
        (d for d in cache.glob(f"{f.prefix}-*") if _is_entry(d.name, f) and (d / "build.json").exists() and d != keep),
        key=lambda d: (d / "build.json").stat().st_mtime,
        reverse=True,
    )
    for old in entries[n - 1 :]:
        _remove_tree(old)
        (cache / f"{old.name}.build.log").unlink(missing_ok=True)


def _build(cache: Path, key: str, final: Path, log, f: Flavour) -> None:
    for stale in cache.glob(f".{f.prefix}-*.building-*"):  # left by killed builds: never trusted, just removed
        if not _is_entry(stale.name, f, building=True):
            continue
        pid = stale.name.rsplit("-", 1)[-1]
        if not (pid.isdigit() and _pid_alive(int(pid)) and int(pid) != os.getpid()):
            _remove_tree(stale)
    if final.exists():  # a directory without build.json is not a finished build
        _remove_tree(final)
    tmp = cache / f".{f.prefix}-{key}.building-{os.getpid()}"
    _remove_tree(tmp)
    logfile = cache / f"{f.prefix}-{key}.build.log"
    env = {**os.environ, "EDGEQ_FARM_HOST_PYTHON": sys.executable}
    t0 = time.monotonic()
    with open(logfile, "w") as lf:
        if log:
            log(f"building the aarch64 rootfs ({f.name}) into {tmp} (log: {logfile})")
        proc = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--pid",
                "--fork",
                "--kill-child",
                "--propagation",
                "private",
                "--",
                "bash",
                str(FARM / f.script),
                str(tmp),
                *f.args,
            ],
            stdout=lf,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_pdeathsig,  # noqa: PLW1509 - prctl only; no locks taken
        )
        try:
            rc = proc.wait(BUILD_TIMEOUT)
        except BaseException:
            proc.kill()
            proc.wait()
            _remove_tree(tmp)
            raise
    seconds = time.monotonic() - t0
    if rc:
        tail = logfile.read_text(errors="replace")[-3000:]
        _remove_tree(tmp)
        raise FarmError(f"building the aarch64 rootfs ({f.name}) failed (exit {rc}); full log {logfile}:\n{tail}")
    phases = {}
    for line in (tmp / "phases.tsv").read_text().splitlines():
        name, secs = line.split("\t")
        phases[name] = float(secs)
    size = _run(["du", "-sm", str(tmp / "rootfs")]).stdout.split()[0]
    info = {
        "recipe": key,
        "flavour": f.name,
        "build_seconds": round(seconds, 1),
        "phases": phases,
        "size_mb": int(size),
        "qemu": qemu_version(cache),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "manifest": (tmp / "manifest.txt").read_text(),
    }
    (tmp / "build.json").write_text(json.dumps(info, indent=2) + "\n")
    os.sync()
    os.rename(tmp, final)  # atomic: a cache entry exists only once it is complete and verified
    _prune(cache, keep=final, f=f)
    if log:
        log(f"built {final} in {seconds:.0f} s ({size} MB)")


# ------------------------------------------------------------------------------------- board


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path, comment: str) -> None:
    p = _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    if p.returncode:
        raise FarmError(f"ssh-keygen failed: {p.stderr.strip()}")


@dataclass
class Board:
    """A running emulated Raspberry Pi, reachable over SSH on loopback."""

    host: str
    port: int
    user: str
    key_file: Path  # private key the board accepts
    known_hosts: Path  # "[127.0.0.1]:PORT ssh-ed25519 AAAA..." for this board only
    host_key_line: str  # that line
    host_key_fingerprint: str  # "SHA256:..."
    pythons: dict[str, str]  # runtime name -> python with that runtime on the board
    workdir: str  # on the board
    rootfs: Path  # the cached base rootfs (read-only; the board writes to state_dir/upper)
    state_dir: Path  # host dir: overlay upper layer, sshd config seed, sshd.log, known_hosts
    start_seconds: float = 0.0
    proc: subprocess.Popen | None = field(default=None, repr=False)
    mnt_ns: str = ""  # the board's mount namespace ("mnt:[inode]"), to find all of its processes

    @property
    def arch(self) -> str:
        return "aarch64"

    @property
    def python(self) -> str:
        """The board's first python: tflite-runtime's venv on bookworm-rpi, /usr/bin/python3 on a bare board."""
        return next(iter(self.pythons.values()))

    @property
    def log(self) -> Path:
        return self.state_dir / "sshd.log"

    @property
    def upper(self) -> Path:
        """Every file the board created or changed, as seen from the host."""
        return self.state_dir / "upper"

    def ssh_argv(self, *command: str) -> list[str]:
        return [
            "ssh",
            "-p",
            str(self.port),
            "-i",
            str(self.key_file),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "ConnectTimeout=30",
            "-o",
            "LogLevel=ERROR",
            f"{self.user}@{self.host}",
            *command,
        ]

    def ssh(self, command: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run a shell command on the board with the OpenSSH client."""
        return _run(self.ssh_argv(command), timeout=timeout)

    def namespace_pids(self) -> list[int]:
        """Every live process of the board (all share one mount namespace, recorded at start)."""
        if not self.mnt_ns:
            return []
        pids = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    if os.readlink(d / "ns/mnt") == self.mnt_ns:
                        pids.append(int(d.name))
                except OSError:
                    pass
        return pids

    def stop(self, keep_state: bool = False) -> None:
        """Kill the board (sessions included) and remove its state. Safe to call twice."""
        if self.proc is not None:
            if self.proc.poll() is None:
                # Kill the namespace's PID 1 (enter-chroot.sh, unshare's only child): the kernel then
                # kills every other process of the board, and unshare reaps it and exits. Killing
                # unshare first would leave PID 1 to the host's init as a zombie.
                for child in _children(self.proc.pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child, signal.SIGKILL)
                try:
                    self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()  # --kill-child still takes the board down with it
            self.proc.wait(30)
        deadline = time.monotonic() + 30
        while (left := self.namespace_pids()) and time.monotonic() < deadline:
            for pid in left:  # normally already dying; this only hurries stragglers
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        mounts = _mounts_under(self.state_dir) + _mounts_under(self.rootfs)
        if mounts:  # cannot happen with namespaces; never leave them behind if it ever does
            for mnt in sorted(mounts, key=len, reverse=True):
                if _run(["umount", mnt]).returncode:
                    _run(["umount", "-l", mnt])
        if not keep_state:
            _remove_tree(self.state_dir)

    def __enter__(self) -> Board:  # noqa: PYI034
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _board_namespace(pid: int) -> str:
    """The mount namespace the board's unshare process entered (it answers on the port, so it has)."""
    ns = os.readlink(f"/proc/{pid}/ns/mnt")
    if ns == os.readlink("/proc/self/ns/mnt"):
        raise FarmError(f"the board's unshare (pid {pid}) is still in the host's mount namespace")
    return ns


def _clean_stale_states(run_dir: Path) -> None:
    for d in run_dir.glob("board-*"):
        pid = d.name.split("-")[2] if d.name.count("-") >= 2 else ""
        if pid.isdigit() and not _pid_alive(int(pid)):
            _remove_tree(d)


def start_board(
    rootfs: Path,
    port: int | None = None,
    authorized_pubkey: str | Path | None = None,
    key_file: Path | None = None,
    workdir: str = "/root/edgeq",
    state_root: Path | None = None,
    timeout: float = BOOT_TIMEOUT,
    flavour: str | None = None,
    session_env: dict[str, str] | None = None,
) -> Board:
    """Start the board's own sshd (emulated aarch64) on 127.0.0.1:PORT and wait until it answers.

    authorized_pubkey: the public key line (or a .pub file) that may log in as root. key_file: the
    matching private key (inferred from a .pub path). Without a usable private key a farm key is made
    and authorized as well, so the board can always be checked with `ssh ... uname -m`.
    port=None picks a free port. flavour: the rootfs's flavour (FLAVOURS), for board.pythons.
    session_env: variables every SSH session gets (sshd SetEnv), e.g. edgeq.testing.offline.OFFLINE_ENV.
    """
    f = flavour_of(flavour)
    ensure_host()
    rootfs = Path(rootfs)
    run_dir = Path(state_root) if state_root else cache_dir() / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    _clean_stale_states(run_dir)

    pub_lines = []
    if authorized_pubkey is not None:
        key_line = isinstance(authorized_pubkey, str) and len(authorized_pubkey.split()) >= 2  # "TYPE BASE64 [comment]"
        if not key_line:
            pub_path = Path(authorized_pubkey)
            pub_lines.append(pub_path.read_text().strip())
            if key_file is None and pub_path.suffix == ".pub" and pub_path.with_suffix("").exists():
                key_file = pub_path.with_suffix("")
        else:
            pub_lines.append(str(authorized_pubkey).strip())

    last_err = ""
    for _attempt in range(3 if port is None else 1):  # a free port can be taken before sshd binds it
        p = port or free_port()
        state = run_dir / f"board-{p}-{os.getpid()}-{os.urandom(3).hex()}"
        state.mkdir(mode=0o700)
        try:
            board = _start_once(
                rootfs, p, state, list(pub_lines), key_file, workdir, timeout, dict(f.pythons), dict(session_env or {})
            )
            return board
        except _PortBusy as e:
            last_err = str(e)
            _remove_tree(state)
        except BaseException:
            _remove_tree(state)
            raise
    raise FarmError(f"the board's sshd could not bind a port: {last_err}")


class _PortBusy(FarmError):
    pass


def _start_once(
    rootfs: Path,
    port: int,
    state: Path,
    pub_lines: list[str],
    key_file: Path | None,
    workdir: str,
    timeout: float,
    pythons: dict[str, str],
    session_env: dict[str, str],
) -> Board:
    t0 = time.monotonic()
    keys = state / "keys"
    keys.mkdir(mode=0o700)
    if key_file is None:
        key_file = keys / "id_farm"
        _keygen(key_file, "edgeq-farm")
        pub_lines.append(Path(str(key_file) + ".pub").read_text().strip())
    seed = state / "seed"
    ssh_dir = seed / "etc" / "ssh"
    ssh_dir.mkdir(parents=True, mode=0o755)
    hostkey = ssh_dir / "edgeq_host_ed25519_key"
    env_words = [f"{k}={v}" for k, v in session_env.items() if v]  # an empty value: leave it unset
    _keygen(hostkey, f"edgeq-aarch64-board-{port}")
    (ssh_dir / "sshd_config_edgeq").write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                "HostKey /etc/ssh/edgeq_host_ed25519_key",
                "PidFile /run/sshd.pid",
                "AuthorizedKeysFile /root/.ssh/authorized_keys",
                "PermitRootLogin prohibit-password",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "UseDNS no",
                "PrintMotd no",
                # in-process sftp: one emulated exec less per SFTP session than Debian's sftp-server
                "Subsystem sftp internal-sftp",
                "MaxStartups 50",
                "MaxSessions 50",
                "LogLevel INFO",
                *([f"SetEnv {' '.join(env_words)}"] if env_words else []),
                "",
            ]
        )
    )
    dot_ssh = seed / "root" / ".ssh"
    dot_ssh.mkdir(parents=True, mode=0o700)
    (dot_ssh / "authorized_keys").write_text("".join(line + "\n" for line in pub_lines))
    (dot_ssh / "authorized_keys").chmod(0o600)
    wd = seed / workdir.lstrip("/")
    wd.mkdir(parents=True, exist_ok=True)

    ktype, b64 = Path(str(hostkey) + ".pub").read_text().split()[:2]
    host_line = f"[127.0.0.1]:{port} {ktype} {b64}"
    known_hosts = state / "known_hosts"
    known_hosts.write_text(host_line + "\n")
    fp = _run(["ssh-keygen", "-lf", str(hostkey) + ".pub"]).stdout.split()[1]

    log = state / "sshd.log"
    with open(log, "ab") as lf:
        proc = subprocess.Popen(
            [
                "bash",
                str(ENTER),
                str(rootfs),
                "--overlay",
                str(state),
                "--seed",
                str(seed),
                "--hostname",
                "raspberrypi",
                "--",
                "/usr/sbin/sshd",
                "-D",
                "-e",
                "-f",
                "/etc/ssh/sshd_config_edgeq",
            ],
            stdin=subprocess.DEVNULL,
            stdout=lf,
            stderr=subprocess.STDOUT,
            preexec_fn=_pdeathsig,  # noqa: PLW1509 - prctl only; no locks taken
        )
    board = Board(
        host="127.0.0.1",
        port=port,
        user="root",
        key_file=Path(key_file),
        known_hosts=known_hosts,
        host_key_line=host_line,
        host_key_fingerprint=fp,
        pythons=pythons,
        workdir=workdir,
        rootfs=rootfs,
        state_dir=state,
        proc=proc,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                text = log.read_text(errors="replace")
                if "Address already in use" in text:
                    raise _PortBusy(text.strip()[-500:])
                raise FarmError(f"the board's sshd exited ({proc.returncode}) on port {port}: {text.strip()[-1500:]}")
            if time.monotonic() > deadline:
                raise FarmError(
                    f"the board's sshd did not answer on port {port} within {timeout} s: "
                    f"{log.read_text(errors='replace')[-1500:]}"
                )
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.settimeout(max(1.0, deadline - time.monotonic()))
                    if s.recv(4).startswith(b"SSH-"):
                        break
            except OSError:
                time.sleep(0.2)
        board.mnt_ns = _board_namespace(proc.pid)
        r = board.ssh("uname -m", timeout=max(30.0, deadline - time.monotonic()))
        if r.returncode or r.stdout.strip() != "aarch64":
            raise FarmError(
                f"ssh to the board on port {port} did not print aarch64 (exit {r.returncode}): "
                f"{r.stdout.strip()} {r.stderr.strip()}\nsshd log: {log.read_text(errors='replace')[-1500:]}"
            )
    except BaseException:
        board.stop(keep_state=True)
        raise
    board.start_seconds = time.monotonic() - t0
    return board


# --------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edgeq.testing.aarch64", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    bd = sub.add_parser("build", help="build (or reuse) the cached arm64 rootfs; print its path and timing")
    st = sub.add_parser("start", help="start a board and keep it running until Ctrl-C")
    for p in (bd, st):
        p.add_argument(
            "--flavour", choices=sorted(FLAVOURS), default=DEFAULT_FLAVOUR, help=f"board kind (default {DEFAULT_FLAVOUR})"
        )
    st.add_argument("--port", type=int, default=None)
    st.add_argument("--pubkey", type=Path, default=None, help="public key allowed to log in as root (default: a new key)")
    args = ap.parse_args(argv)

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        t0 = time.monotonic()
        rootfs = ensure_rootfs(log=say, flavour=args.flavour)
        took = time.monotonic() - t0
        info = build_info(rootfs)
        if args.cmd == "build":
            print(
                json.dumps(
                    {
                        "rootfs": str(rootfs),
                        "ensure_seconds": round(took, 1),
                        **{k: v for k, v in info.items() if k != "manifest"},
                    },
                    indent=2,
                )
            )
            print(info["manifest"], file=sys.stderr)
            return 0
        board = start_board(rootfs, port=args.port, authorized_pubkey=args.pubkey, flavour=args.flavour)
    except FarmError as e:
        say(f"error: {e}")
        return 1
    with board:
        print(f"board up in {board.start_seconds:.1f} s (rootfs {rootfs})")
        print(f"  {' '.join(board.ssh_argv())}")
        print(f"  host key {board.host_key_fingerprint}; pythons {board.pythons}; Ctrl-C stops it")
        try:
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            proc = board.proc
            assert proc is not None  # start_board returns a running board
            while proc.poll() is None:
                time.sleep(1)
            say(f"the board's sshd exited ({proc.returncode}); log {board.log}")
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
