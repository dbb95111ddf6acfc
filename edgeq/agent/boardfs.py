"""The board's work dir: content-addressed model store, atomic pointer files and the exclusive lock.

Layout of a work dir W:
    W/lock                          flock()ed by the agent that benchmarks/installs; holds the holder's pid, its
                                    start time, host, command and since (the flock itself dies with the holder)
    W/tmp/<anything>.part           uploads in progress
    W/models/<name>/<sha256>.tflite content-addressed blobs (only current and previous are kept)
    W/models/<name>/current         sha256 of the active blob (text)
    W/models/<name>/previous        sha256 of the blob before it (text)
    W/models/<name>/rollback.json   what the last rollback replaced and restored, and when: while current and previous
                                    are still those two, current came from a rollback and a plain `rollback` (a retry)
                                    is refused unless asked (--undo-rollback); an install that switches removes it

Runs on boards: stdlib only, Python 3.9+.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import time
from pathlib import Path

from .codes import NAME_PATTERN, SHA256_PATTERN, AgentFailure

POINTERS = ("current", "previous")
ROLLBACK_RECORD = "rollback.json"
STALE_PART_SECONDS = 24 * 3600  # an upload untouched for a day is abandoned, never in progress


def check_name(name: str) -> str:
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        raise AgentFailure(
            "invalid_name",
            "--name " + repr(name)[:80] + " is refused: use 1-64 characters from A-Z a-z 0-9 . _ -"
            " starting with a letter or digit",
        )
    return name


def check_sha(sha: str) -> str:
    value = (sha or "").strip().lower()
    if not re.fullmatch(SHA256_PATTERN, value):
        raise AgentFailure("usage", "--sha256 " + repr(sha)[:80] + " is not a sha256 (64 hex digits)")
    return value


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fsync_dir(path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems refuse fsync on directories; the rename is still atomic
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str) -> None:
    """Write a small file so readers see the old or the new content, never a mix: tmp + fsync + os.replace."""
    tmp = path.parent / ("." + path.name + ".tmp." + str(os.getpid()))
    try:
        fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            data = text.encode()
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(str(tmp), str(path))
    except BaseException:
        try:
            os.unlink(str(tmp))
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


def free_bytes(path) -> int:
    return int(shutil.disk_usage(str(path)).free)


def _inside(child: str, parent: str) -> bool:
    return os.path.commonpath([child, parent]) == parent and child != parent


class Store:
    """Model store in a work dir. Mutations (install, rollback) must run under WorkdirLock."""

    def __init__(self, workdir):
        self.root = Path(workdir)
        self.models = self.root / "models"
        self.tmp = self.root / "tmp"

    def ensure(self) -> None:
        for d in (self.root, self.models, self.tmp):
            d.mkdir(parents=True, exist_ok=True)

    def model_dir(self, name: str) -> Path:
        return self.models / check_name(name)

    def blob(self, name: str, sha: str) -> Path:
        return self.model_dir(name) / (sha + ".tflite")

    def pointer(self, name: str, which: str):
        try:
            text = (self.model_dir(name) / which).read_text().strip().lower()
        except FileNotFoundError:
            return None
        return text if re.fullmatch(SHA256_PATTERN, text) else None

    def set_pointer(self, name: str, which: str, sha) -> None:
        path = self.model_dir(name) / which
        if sha is None:
            try:
                os.unlink(str(path))
            except FileNotFoundError:
                pass
            fsync_dir(path.parent)
        else:
            write_atomic(path, sha + "\n")

    def blobs(self, name: str) -> list:
        d = self.model_dir(name)
        if not d.is_dir():
            return []
        return sorted(p.stem for p in d.iterdir() if p.suffix == ".tflite" and re.fullmatch(SHA256_PATTERN, p.stem))

    def status(self, name: str, sha=None) -> dict:
        have = None
        if sha is not None:
            blob = self.blob(name, sha)
            have = blob.is_file() and sha256_file(blob) == sha
        return {
            "name": name,
            "current": self.pointer(name, "current"),
            "previous": self.pointer(name, "previous"),
            "have": have,
            "blobs": self.blobs(name),
            "free_bytes": free_bytes(self.root),
            "lock": peek_lock(self.root / "lock"),
            "rolled_back": self.last_rollback(name),
        }

    def last_rollback(self, name: str, current=None, previous=None):
        """The record of the rollback that made the current version current, or None (current came from an install).

        A record counts only while current and previous are still what that rollback left: an install or a crash
        between its writes leaves a record that no longer matches, and it is ignored."""
        try:
            with open(str(self.model_dir(name) / ROLLBACK_RECORD)) as f:
                rec = json.load(f)
        except (OSError, ValueError):
            return None
        if current is None:
            current, previous = self.pointer(name, "current"), self.pointer(name, "previous")
        if not isinstance(rec, dict) or current is None or (rec.get("restored"), rec.get("replaced")) != (current, previous):
            return None
        return {"restored": current, "replaced": previous, "at": rec.get("at") if isinstance(rec.get("at"), str) else None}

    def forget_rollback(self, name: str) -> None:
        path = self.model_dir(name) / ROLLBACK_RECORD
        try:
            os.unlink(str(path))
        except FileNotFoundError:
            return
        fsync_dir(path.parent)

    def resolve_blob_arg(self, name: str, sha: str, blob_arg: str):
        """(real path, is_part) for install --blob: a .part under W/tmp or the blob W/models/<name>/<sha>.tflite."""
        real = os.path.realpath(blob_arg)
        if real.endswith(".part") and _inside(real, os.path.realpath(str(self.tmp))):
            return real, True
        if real == os.path.realpath(str(self.blob(name, sha))):
            return real, False
        raise AgentFailure(
            "usage",
            "--blob " + blob_arg + " must be a .part file under " + str(self.tmp) + " or " + str(self.blob(name, sha)),
        )

    def install(self, name: str, sha: str, blob_arg: str, load_check) -> dict:
        """Verify, load-check (load_check(path) -> seconds) and activate a blob. A failed install deletes its .part."""
        check_name(name)
        sha = check_sha(sha)
        real, is_part = self.resolve_blob_arg(name, sha, blob_arg)
        if not os.path.isfile(real):
            raise AgentFailure("not_found", "blob " + blob_arg + " does not exist on the board: upload it first")
        try:
            actual = sha256_file(real)
            if actual != sha:
                raise AgentFailure(
                    "sha_mismatch",
                    "blob "
                    + blob_arg
                    + " hashes to "
                    + actual
                    + ", expected "
                    + sha
                    + ": the upload is corrupt, upload it again",
                    expected=sha,
                    actual=actual,
                    size_bytes=os.path.getsize(real),
                )
            load_seconds = load_check(real)
            mdir = self.model_dir(name)
            mdir.mkdir(parents=True, exist_ok=True)
            dest = self.blob(name, sha)
            if is_part:
                fd = os.open(real, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(real, str(dest))
                fsync_dir(mdir)
                fsync_dir(self.tmp)
            current = self.pointer(name, "current")
            previous = self.pointer(name, "previous")
            changed = current != sha
            if changed:
                if current is not None:
                    self.set_pointer(name, "previous", current)
                    previous = current
                self.set_pointer(name, "current", sha)
                self.forget_rollback(name)  # a deploy: a plain rollback after it is an ordinary one again
            pruned = self.prune(name, keep={sha, previous})
        except BaseException:
            if is_part:
                try:
                    os.unlink(real)
                except OSError:
                    pass
            raise
        self.prune_tmp()
        return {
            "name": name,
            "changed": changed,
            "current": sha,
            "previous": previous,
            "load_seconds": load_seconds,
            "pruned": pruned,
            "free_bytes": free_bytes(self.root),
        }

    def rollback(self, name: str, load_check, expect=None, undo=False) -> dict:
        """Swap current and previous; with `expect`, only if current is `expect` (a compare-and-swap).

        Without `expect`, a rollback whose current version was itself put there by a rollback is refused
        ("rolled_back"): a retry never toggles back by accident. `undo` (--undo-rollback) allows it; naming the
        version to leave with `expect` is asking too. Each rollback records what it replaced (ROLLBACK_RECORD)."""
        current = self.pointer(name, "current")
        previous = self.pointer(name, "previous")
        last = self.last_rollback(name, current, previous)
        if expect is None and last is not None and not undo:
            raise AgentFailure(
                "rolled_back",
                "model "
                + name
                + ": "
                + str(current)[:12]
                + " is current because a rollback put it back in place of "
                + str(previous)[:12]
                + "; another rollback would undo that rollback: nothing changed",
                current=current,
                previous=previous,
                rolled_back_from=previous,
                rolled_back_at=last["at"],
            )
        if expect is not None and current != expect:
            if previous == expect:  # this very rollback already happened (a retry): nothing to do
                return {
                    "name": name,
                    "changed": False,
                    "current": current,
                    "previous": previous,
                    "free_bytes": free_bytes(self.root),
                }
            raise AgentFailure(
                "not_current",
                "model " + name + " is at " + str(current) + ", not " + expect + " (--from): someone deployed or rolled "
                "back since; nothing changed",
                current=current,
                previous=previous,
            )
        if previous is None:
            raise AgentFailure("no_previous", "model " + name + " has no previous version to roll back to", current=current)
        blob = self.blob(name, previous)
        if not blob.is_file():
            raise AgentFailure("no_previous", "the previous blob " + str(blob) + " is missing: install it again", current=current)
        actual = sha256_file(blob)
        if actual != previous:
            raise AgentFailure(
                "sha_mismatch",
                "the previous blob " + str(blob) + " is corrupt (hashes to " + actual + ")",
                expected=previous,
                actual=actual,
            )
        load_seconds = load_check(str(blob))
        # the record first: until both pointers moved it matches nothing, and is ignored
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_atomic(self.model_dir(name) / ROLLBACK_RECORD, json.dumps({"replaced": current, "restored": previous, "at": at}))
        # previous first: a crash between the two writes leaves current valid
        self.set_pointer(name, "previous", current)
        self.set_pointer(name, "current", previous)
        return {
            "name": name,
            "changed": True,
            "current": previous,
            "previous": current,
            "load_seconds": load_seconds,
            "free_bytes": free_bytes(self.root),
        }

    def prune(self, name: str, keep) -> list:
        """Delete blobs other than `keep` and temp files left by killed agents (the caller holds the lock)."""
        pruned = []
        d = self.model_dir(name)
        for p in sorted(d.iterdir()):
            if p.suffix == ".tflite" and p.stem not in keep:
                os.unlink(str(p))
                pruned.append(p.stem)
            elif p.name.startswith(".") and ".tmp." in p.name:
                os.unlink(str(p))
        return pruned

    def prune_tmp(self) -> None:
        now = time.time()
        for p in self.tmp.glob("*.part"):
            try:
                if now - p.stat().st_mtime > STALE_PART_SECONDS:
                    p.unlink()
            except OSError:
                pass


HELD_LOCK_FDS: set = set()  # fds of W/lock this process holds: a forked load check closes them at once


def _proc_start(pid: int):
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22): tells a reused pid apart."""
    try:
        with open("/proc/" + str(int(pid)) + "/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def holder_alive(holder: dict):
    """True/False if the recorded holder's process is (not) running; None if unknown (another host, no /proc)."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or holder.get("hostname") not in (None, socket.gethostname()):
        return None
    if not os.path.isdir("/proc/" + str(pid)):
        return False
    start = holder.get("start_ticks")
    return start is None or _proc_start(pid) == start


def _cmdline() -> str:
    try:
        with open("/proc/self/cmdline", "rb") as f:
            return " ".join(a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a)[:300]
    except OSError:
        return ""


def describe_holder(holder: dict) -> str:
    """'pid 123 on host (bench m, python3 agent.pyz bench ...) since 2026-...Z' for messages."""
    alive = holder_alive(holder)
    return (
        "pid "
        + str(holder.get("pid", "?"))
        + (" (no longer running)" if alive is False else "")
        + " on "
        + str(holder.get("hostname", "?"))
        + " ("
        + str(holder.get("command", "?"))
        + ") since "
        + str(holder.get("since", "?"))
    )


def peek_lock(path) -> dict:
    """Whether W/lock is held right now, and by whom (its record): for `status`, without waiting."""
    try:
        fd = os.open(str(path), os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return {"held": False}
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(fd)
            return {"held": True, "holder": holder, "holder_alive": holder_alive(holder)}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return {"held": False}
    finally:
        os.close(fd)


def _read_holder(fd) -> dict:
    try:
        raw = os.pread(fd, 4096, 0)
        holder = json.loads(raw.decode("utf-8", "replace")) if raw.strip() else {}
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


class WorkdirLock:
    """Exclusive flock() on W/lock. The kernel drops it when the holder dies, so a stale lock never blocks."""

    def __init__(self, path, timeout: float, command: str, poll: float = 0.1):
        self.path = str(path)
        self.timeout = float(timeout)
        self.command = command
        self.poll = poll
        self.fd: int | None = None
        self.reclaimed: dict | None = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()

    def _holder(self, fd) -> dict:
        return _read_holder(fd)

    def acquire(self) -> None:
        # O_CLOEXEC: no exec'd child (a power command) keeps the lock; forked load checks close HELD_LOCK_FDS
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + self.timeout
        waited_from = time.monotonic()
        said = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if not said and self.timeout > 0:
                    said = True
                    print(
                        "edgeq-agent: "
                        + self.path
                        + " is held by "
                        + describe_holder(self._holder(fd))
                        + "; waiting up to "
                        + format(self.timeout, "g")
                        + " s",
                        file=sys.stderr,
                        flush=True,
                    )
                if time.monotonic() >= deadline:
                    holder = self._holder(fd)
                    os.close(fd)
                    raise AgentFailure(
                        "locked",
                        self.path
                        + " is held by "
                        + describe_holder(holder)
                        + "; gave up after "
                        + format(time.monotonic() - waited_from, ".1f")
                        + " s: retry later or raise --lock-timeout",
                        holder=holder,
                    ) from None
                time.sleep(self.poll)
        old = self._holder(fd)
        if old and holder_alive(old) is False:
            # the kernel freed the flock when that process died; its record stays until now
            self.reclaimed = old
            print("edgeq-agent: reclaimed " + self.path + " left by " + describe_holder(old), file=sys.stderr, flush=True)
        now = time.time()
        holder = {
            "pid": os.getpid(),
            "start_ticks": _proc_start(os.getpid()),
            "hostname": socket.gethostname(),
            "command": self.command,
            "argv": _cmdline(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            "since_epoch": round(now, 3),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        self.fd = fd
        HELD_LOCK_FDS.add(fd)

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
        except OSError:
            pass
        HELD_LOCK_FDS.discard(self.fd)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = None
