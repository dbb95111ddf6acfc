"""The stage cache under faults: entries sealed (read-only, sha256 recorded, fsynced) and checked on every hit;
stale-build cleanup that never deletes another live build, even one from another host or PID namespace."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeq.hashing import file_sha256
from edgeq.pipeline.cache import StageCache


def owner() -> dict:
    """This process as a builder records itself: kernel (boot id), host, PID namespace (inode), pid."""
    return {
        "boot_id": Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
        "host": socket.gethostname(),
        "pidns": os.stat("/proc/self/ns/pid").st_ino,
        "pid": os.getpid(),
    }


def _builder(blob: bytes, calls: list):
    def build(tmp: Path) -> dict:
        calls.append(tmp)
        (tmp / "model.tflite").write_bytes(blob)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "extra.bin").write_bytes(b"x" * 10)
        return {"size_bytes": len(blob)}

    return build


def _run(cache: StageCache, build, logs: list, force: bool = False):
    return cache.run("quantize", "k1", build, run_id="r1", force=force, log=logs.append)


def test_entry_is_sealed_read_only_with_checksums(tmp_path):
    cache, logs, calls = StageCache(tmp_path / "cache"), [], []
    out, cached, meta = _run(cache, _builder(b"model-bytes", calls), logs)
    assert not cached and meta == {"size_bytes": 11, "seconds": meta["seconds"]}  # checksums stay out of the metrics
    doc = json.loads((out / "meta.json").read_text())
    assert doc["files"] == {
        "model.tflite": file_sha256(out / "model.tflite"),
        "sub/extra.bin": file_sha256(out / "sub" / "extra.bin"),
    }
    for f in (out / "model.tflite", out / "sub" / "extra.bin", out / "meta.json"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o444, f
    out2, cached2, meta2 = _run(cache, _builder(b"other", calls), logs)
    assert cached2 and out2 == out and meta2["from_run"] == "r1" and "files" not in meta2 and len(calls) == 1


def test_a_file_changed_through_a_hard_link_is_a_miss_and_rebuilt(tmp_path):
    cache, logs, calls = StageCache(tmp_path / "cache"), [], []
    out, _, _ = _run(cache, _builder(b"model-bytes", calls), logs)
    artifact = tmp_path / "run" / "m.tflite"
    artifact.parent.mkdir()
    os.link(out / "model.tflite", artifact)  # what a run's artifacts are
    if os.geteuid() != 0:
        with pytest.raises(PermissionError):
            artifact.write_bytes(b"foreign")
    os.chmod(artifact, 0o644)  # root, or a user who chmods first: the `cp` goes through
    subprocess.run(["cp", "/etc/hostname", str(artifact)], check=True)  # noqa: S603,S607
    logs.clear()
    out2, cached, _ = _run(cache, _builder(b"model-bytes", calls), logs)
    assert not cached and len(calls) == 2
    assert any(
        x.startswith("warning: quantize: cache entry") and "model.tflite changed after it was cached" in x for x in logs
    ), logs
    assert (out2 / "model.tflite").read_bytes() == b"model-bytes"
    assert stat.S_IMODE((out2 / "model.tflite").stat().st_mode) == 0o444
    _, cached3, _ = _run(cache, _builder(b"model-bytes", calls), logs)
    assert cached3 and len(calls) == 2


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda e: (e / "meta.json").write_text(""), "meta.json is unreadable"),
        (lambda e: (e / "meta.json").write_text("{not json"), "meta.json is unreadable"),
        (lambda e: (e / "meta.json").write_text('{"size_bytes": 1}'), "no file checksums"),
        (lambda e: (e / "model.tflite").unlink(), "model.tflite is missing"),
        (lambda e: shutil.rmtree(e / "sub"), "sub/extra.bin is missing"),
    ],
    ids=["empty-meta", "bad-json", "legacy-no-checksums", "file-gone", "folder-gone"],
)
def test_damaged_entry_is_a_miss_with_a_warning(tmp_path, damage, why):
    cache, logs, calls = StageCache(tmp_path / "cache"), [], []
    out, _, _ = _run(cache, _builder(b"model-bytes", calls), logs)
    os.chmod(out / "meta.json", 0o644)
    damage(out)
    logs.clear()
    out2, cached, meta = _run(cache, _builder(b"model-bytes", calls), logs)
    assert not cached and len(calls) == 2 and meta["size_bytes"] == 11
    assert [x for x in logs if x.startswith("warning:")] == [next(x for x in logs if why in x)], logs  # one warning, saying why
    assert json.loads((out2 / "meta.json").read_text())["files"]


def test_cache_writes_are_fsynced(tmp_path, monkeypatch):
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    cache, logs, calls = StageCache(tmp_path / "cache"), [], []
    out, _, _ = _run(cache, _builder(b"model-bytes", calls), logs)
    built = Path(calls[0])
    for f in ("model.tflite", "sub/extra.bin", "meta.json"):
        assert str(built / f) in synced, (f, synced)
    assert str(built) in synced and str(built / "sub") in synced  # the folders' entries
    assert str(out.parent) in synced  # the rename into the cache


# ------------------------------------------------------------------ stale builds


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])  # noqa: S603
    p.wait()
    return p.pid


def _fake_build(cache: StageCache, pid: int, who: dict | None) -> tuple[Path, Path]:
    """A build folder as the builder leaves it, named the way edgeq names them, with its lock file."""
    cache.tmp.mkdir(parents=True, exist_ok=True)
    d = cache.tmp / f"train-0123456789abcdef01234567-{pid}-a1b2c3"
    d.mkdir()
    (d / "model.keras").write_bytes(b"half")
    lock = d.with_name(d.name + ".lock")
    if who is not None:
        lock.write_text(json.dumps(who))
    return d, lock


def _hold(lock: Path) -> subprocess.Popen:
    """Another process holding the build's flock (as a live builder does), until killed."""
    code = (
        "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); fcntl.flock(fd, fcntl.LOCK_EX); "
        "print('held', flush=True); time.sleep(600)"
    )
    p = subprocess.Popen([sys.executable, "-c", code, str(lock)], stdout=subprocess.PIPE, text=True)  # noqa: S603
    assert p.stdout is not None and p.stdout.readline().strip() == "held"
    return p


def test_a_held_build_with_a_pid_dead_here_is_kept(tmp_path):
    """A live builder in another PID namespace: its pid is not alive in ours, but it holds its lock."""
    cache = StageCache(tmp_path / "cache")
    dead = _dead_pid()
    d, lock = _fake_build(cache, dead, {**owner(), "pid": dead})
    holder = _hold(lock)
    try:
        assert cache.clean_stale() == []
        assert d.exists() and lock.exists()
    finally:
        holder.kill()
        holder.wait()
    assert cache.clean_stale() == [d]  # its builder gone (lock free): now it is stale
    assert not d.exists() and not lock.exists()


def test_another_machines_build_is_kept_while_its_lock_is_free(tmp_path):
    """A network share may not carry flocks between machines: another kernel's build is not ours to judge, until
    it is a week old."""
    cache = StageCache(tmp_path / "cache")
    dead = _dead_pid()
    other = {"boot_id": "0f0e0d0c-0000-4000-8000-000000000000", "host": "build-07", "pidns": 4026531836, "pid": dead}
    d, lock = _fake_build(cache, dead, other)
    assert cache.clean_stale() == []
    assert d.exists() and lock.exists()
    old = time.time() - 8 * 24 * 3600
    os.utime(lock, (old, old))
    assert cache.clean_stale() == [d] and not d.exists() and not lock.exists()


def test_a_dead_containers_build_on_this_kernel_is_removed(tmp_path):
    """Another container on this kernel (its own host name and PID namespace): a free flock is proof enough."""
    cache = StageCache(tmp_path / "cache")
    d, lock = _fake_build(cache, 12, {**owner(), "host": "c0ffee123456", "pidns": 1, "pid": 12})
    assert cache.clean_stale() == [d] and not d.exists() and not lock.exists()


def test_an_abandoned_build_is_removed(tmp_path):
    cache = StageCache(tmp_path / "cache")
    dead = _dead_pid()
    d, lock = _fake_build(cache, dead, {**owner(), "pid": dead})
    assert cache.clean_stale() == [d]
    assert not d.exists() and not lock.exists() and not any(cache.tmp.iterdir())


def test_a_build_without_a_lock_is_removed_only_when_old(tmp_path):
    """Folders of an edgeq that took no lock: their pid is no evidence; only age is."""
    cache = StageCache(tmp_path / "cache")
    d, _ = _fake_build(cache, _dead_pid(), None)
    assert cache.clean_stale() == [] and d.exists()
    old = time.time() - 8 * 24 * 3600
    os.utime(d, (old, old))
    assert cache.clean_stale() == [d] and not d.exists()
