"""Content-addressed stage outputs, like DVC: a stage whose key (inputs + params + tool versions) already
has a completed output is reused.

Outputs are built in a temp folder and renamed into the cache only when complete (files fsynced, made
read-only, their sha256 recorded in meta.json), so a run killed mid-stage leaves nothing a later run
trusts, and the next run resumes after the last completed stage. A hit is checked against the recorded
sha256s: run artifacts are hard links to cache files, and a file changed in place (`cp` over an artifact,
as root) or an entry a crash left empty is a miss with a warning, rebuilt, never trusted.

Builds in progress hold an flock on HOME/cache/.tmp/<build>.lock for their whole life; the lock file
records the builder's kernel (boot id), host, PID namespace and pid. A pid says nothing across PID
namespaces (containers sharing an edgeq home), so cleanup never looks at it: a build is stale when its
lock can be taken and it was made under this kernel, where an flock is authoritative whatever the
container. A build made under another kernel (another host sharing the home over the network, where a
lock may not carry) is left alone unless its lock is free and it is older than a week.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import socket
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from edgeq.hashing import file_sha256

CACHE_VERSION = 1  # bump when a stage's output format or semantics change
FILES_KEY = "files"  # meta.json: {relative path: sha256} of every file of the entry, checked on a hit
# A build folder whose lock says nothing reliable (none: an older edgeq; another kernel's) is removed only this old
LEGACY_STALE_S = 7 * 24 * 3600.0


def stage_key(obj: Any) -> str:
    """The cache key of a stage: a hash of everything its output depends on."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:24]


def owner() -> dict[str, Any]:
    """Who builds: this kernel (boot id: shared by its containers, new at each boot), host, PID namespace, pid."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:  # no procfs: the host name stands for the kernel
        boot = None
    try:
        ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        ns = None
    return {"boot_id": boot, "host": socket.gethostname(), "pidns": ns, "pid": os.getpid()}


def _same_kernel(who: dict[str, Any], me: dict[str, Any]) -> bool:
    if who.get("boot_id") or me.get("boot_id"):
        return bool(who.get("boot_id")) and who.get("boot_id") == me.get("boot_id")
    return who.get("host") == me["host"]


class CacheWarning(Exception):
    """A cache entry that cannot be trusted (why, in words): treated as a miss."""


class StageCache:
    """Content-addressed stage outputs under HOME/cache/<stage>/<key>/ (complete or absent)."""

    def __init__(self, root: Path):
        self.root = root
        self.tmp = root / ".tmp"

    def get(self, stage: str, key: str) -> Path | None:
        d = self.root / stage / key
        return d if (d / "meta.json").exists() else None

    def check(self, entry: Path) -> dict:
        """The entry's meta.json, once every file it records matches its sha256; else CacheWarning."""
        try:
            meta = json.loads((entry / "meta.json").read_text())
        except (OSError, ValueError) as e:
            raise CacheWarning(f"its meta.json is unreadable ({type(e).__name__}: {e})") from None
        files = meta.get(FILES_KEY) if isinstance(meta, dict) else None
        if not isinstance(files, dict):
            raise CacheWarning("it records no file checksums (written by an older edgeq, or damaged)")
        for name, sha in files.items():
            f = entry / name
            try:
                actual = file_sha256(f)
            except OSError:
                raise CacheWarning(f"{name} is missing") from None
            if actual != sha:
                raise CacheWarning(f"{name} changed after it was cached (sha256 {actual[:12]}, recorded {str(sha)[:12]})")
        return meta

    @contextlib.contextmanager
    def build(self, stage: str, key: str, replace: bool = False) -> Iterator[Path]:
        """A fresh folder to build into, renamed into the cache (sealed) when the block ends without error."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        name = f"{stage}-{key}-{os.getpid()}-{secrets.token_hex(3)}"
        with _held_lock(self.tmp / f"{name}.lock"):
            tmp = self.tmp / name
            tmp.mkdir()
            try:
                yield tmp
                if not (tmp / "meta.json").exists():
                    raise RuntimeError(f"stage {stage} wrote no meta.json")
                _seal(tmp)
                self._publish(tmp, self.root / stage / key, self.tmp / f"{name}.old", replace)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

    def _publish(self, tmp: Path, final: Path, old: Path, replace: bool) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        if replace and final.exists():  # --force, or an entry that failed its check: the fresh output wins
            os.rename(final, old)
        try:
            os.rename(tmp, final)
        except OSError:  # another run finished the same stage first: theirs is as good
            pass
        _fsync_dir(final.parent)
        shutil.rmtree(old, ignore_errors=True)

    def clean_stale(self) -> list[Path]:
        """Remove build folders whose builder is gone; returns what was removed.

        Gone = its lock can be taken and it was made under this kernel (any container), or, made under
        another kernel, its lock is free and it is older than LEGACY_STALE_S. A pid is never evidence.
        """
        if not self.tmp.exists():
            return []
        removed = []
        me = owner()
        for d in sorted(self.tmp.iterdir()):
            if d.suffix == ".lock" and d.with_suffix("").exists():
                continue  # handled with its folder
            base = d.name.removesuffix(".lock").removesuffix(".old")
            lock = self.tmp / f"{base}.lock"
            if not lock.exists():
                if d.is_dir() and time.time() - d.stat().st_mtime > LEGACY_STALE_S:
                    shutil.rmtree(d, ignore_errors=True)
                    removed.append(d)
                continue
            if _remove_if_abandoned(lock, [self.tmp / base, self.tmp / f"{base}.old"], me):
                removed.append(d)
        return removed

    def run(
        self,
        stage: str,
        key: str,
        build: Callable[[Path], dict | None],
        *,
        run_id: str,
        force: bool,
        log: Callable[[str], None],
        label: str | None = None,
    ) -> tuple[Path, bool, dict]:
        """The stage's output folder, whether it came from the cache, and its metrics (meta.json).

        A cached output's metrics say which run built it (`from_run`).
        """
        label = label or stage
        hit = None if force else self.get(stage, key)
        replace = force
        if hit is not None:
            try:
                meta = self.check(hit)
            except CacheWarning as w:
                log(f"warning: {label}: cache entry {hit} is not trusted: {w}; rebuilding it")
                replace = True
            else:
                log(f"{label}: cached (from run {meta.get('run_id')})")
                return hit, True, _metrics(meta) | {"from_run": meta.get("run_id")}
        log(f"{label}: running")
        t = time.perf_counter()
        with self.build(stage, key, replace=replace) as tmp:
            metrics = build(tmp) or {}
            meta = {**metrics, "seconds": round(time.perf_counter() - t, 3), "run_id": run_id}
            (tmp / "meta.json").write_text(json.dumps(meta, default=str))
        log(f"{label}: done in {meta['seconds']:.1f}s")
        return self.root / stage / key, False, _metrics(meta)


def _metrics(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k not in ("run_id", FILES_KEY)}


def _seal(d: Path) -> None:
    """Record every file's sha256 in meta.json, make the files read-only, fsync files and folders."""
    meta_path = d / "meta.json"
    meta = json.loads(meta_path.read_text())
    files = sorted(p for p in d.rglob("*") if p.is_file() and not p.is_symlink() and p != meta_path)
    meta[FILES_KEY] = {str(p.relative_to(d)): file_sha256(p) for p in files}
    meta_path.write_text(json.dumps(meta, default=str))
    for p in [*files, meta_path]:
        os.chmod(p, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)  # 0444: a `cp` over a run's hard link fails
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for sub in sorted({p.parent for p in files} | {d}, key=lambda p: -len(p.parts)):
        _fsync_dir(sub)


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _held_lock(path: Path) -> Iterator[None]:
    """An flock held for the block, in a file recording who holds it; removed at the end."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, json.dumps(owner()).encode())
        os.fsync(fd)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # still held: a cleaner that opened it before cannot take it until we close
        os.close(fd)


def _remove_if_abandoned(lock: Path, dirs: list[Path], me: dict[str, Any]) -> bool:
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:  # its build just finished
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its builder is alive (on this kernel)
            return False
        try:
            who = json.loads(os.read(fd, 4096) or b"{}")
        except ValueError:
            who = {}
        # an empty record: its builder died between creating and writing it (its folder is not made yet)
        if who and not _same_kernel(who, me) and time.time() - os.fstat(fd).st_mtime <= LEGACY_STALE_S:
            return False  # another machine's build: its flock may not reach us
        if not os.path.exists(lock) or os.fstat(fd).st_ino != os.stat(lock).st_ino:
            return False  # unlinked by its finishing builder while we opened it
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
        os.unlink(lock)
        return True
    finally:
        os.close(fd)
