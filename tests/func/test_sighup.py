"""SIGHUP (the terminal or the SSH session that started edgeq went away) is handled like SIGTERM: stage cleanup,
manifest `terminated`, what finished stored, one line on stderr, exit 129 (128 + SIGHUP). Started under
`nohup` (SIGHUP ignored), edgeq keeps ignoring it. Real processes: `edgeq run` with TensorFlow, `edgeq bench`
on the local board with its real agent, a real pseudo-terminal hung up by closing its master side."""

from __future__ import annotations

import base64
import json
import os
import pty
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from edgeq.fleet.setup.scripts import TINY_MODEL_B64
from edgeq.testing.common import TINY

REPO = Path(__file__).resolve().parents[2]
STOP_BOUND_S = 30.0


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "EDGEQ_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def _hangup_default() -> None:
    """Start edgeq with SIGHUP at its default, as from a terminal: a suite run under nohup (or a CI runner that
    ignores SIGHUP) would hand its children an ignored SIGHUP, which edgeq rightly keeps ignored."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*") if Path(f"/proc/{p}/task").exists() else []:
            try:
                kids = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for_agent(edgeq_pid: int, sub: str = "bench", timeout: float = 120.0, drain=None) -> int:
    """The pid of edgeq's local agent child running `sub` (it holds the board's lock once it runs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in _descendants(edgeq_pid):
            if f" {sub} --workdir " in _cmdline(p):
                return p
        assert _alive(edgeq_pid), "edgeq ended before its agent started"
        if drain is not None:
            drain()
        else:
            time.sleep(0.05)
    raise AssertionError(f"no agent `{sub}` under pid {edgeq_pid} after {timeout:g}s")


def reap_stray(pid: int) -> bool:
    """Kill a process this test started (directly or as edgeq's child) that is still running: True if it was."""
    if not _alive(pid):
        return False
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def _drain(fd: int, into: bytearray, wait: float = 0.05) -> None:
    """Read what edgeq wrote to its terminal (a full pty buffer would block its writes)."""
    if select.select([fd], [], [], wait)[0]:
        try:
            into += os.read(fd, 65536)
        except OSError:  # EIO: the child side is closed
            time.sleep(wait)


@pytest.fixture
def board(tmp_path) -> dict:
    """A devices.yaml with the local board (its own work dir) and a no-op model to benchmark."""
    model = tmp_path / "noop.tflite"
    model.write_bytes(base64.b64decode(TINY_MODEL_B64))
    devices = tmp_path / "devices.yaml"
    # lock_timeout: how long a bench waits for the board's lock, far below the ~895 s of an agent's own deadline
    entry = {"name": "local", "transport": "local", "workdir": str(tmp_path / "board"), "lock_timeout": 15}
    devices.write_text("devices:\n  - " + json.dumps(entry) + "\n")
    return {"model": model, "devices": devices, "home": tmp_path / "home"}


def _bench_argv(board: dict, *extra: str) -> list[str]:
    return [sys.executable, "-m", "edgeq", "bench", str(board["model"]), "-t", "local", "--devices", str(board["devices"]),
            "--sessions", "1", "--runs", "10", *extra]  # fmt: skip


def test_sighup_during_run(tmp_path):
    home = tmp_path / "home"
    doc = json.loads(json.dumps(TINY))
    doc["train"]["epochs"] = 200  # caught training
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(yaml.safe_dump(doc, sort_keys=False))
    p = subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "edgeq", "run", str(pipe)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(home),
        cwd=tmp_path,
        preexec_fn=_hangup_default,  # noqa: PLW1509 - only resets one signal before exec
    )
    assert p.stderr is not None
    before: list[str] = []
    after: list[str] = []
    sent = None
    for line in p.stderr:
        (before if sent is None else after).append(line.rstrip("\n"))
        if sent is None and "  training mlp on" in line:
            p.send_signal(signal.SIGHUP)
            sent = time.monotonic()
    code = p.wait(timeout=120)
    assert sent is not None, before
    took = time.monotonic() - sent
    assert code == 129, f"exit {code}\n" + "\n".join([*before[-5:], "--- SIGHUP sent ---", *after])
    assert after and after[-1] == "terminated (SIGHUP)" and after.count(after[-1]) == 1, after
    assert not [x for x in after if x.lstrip().startswith(("Traceback", "error", "internal"))], after
    assert took < STOP_BOUND_S, took
    (run_dir,) = (home / "runs").iterdir()
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["status"] == "terminated" and "pid" not in m and m["finished"], m
    assert "train" not in (m.get("stages") or {})
    c = sqlite3.connect(str(home / "history.db"))
    try:
        assert c.execute("SELECT status FROM runs WHERE run_id = ?", (m["run_id"],)).fetchone() == ("terminated",)
    finally:
        c.close()


def test_terminal_hangup_during_bench(board):
    """edgeq bench in a real pty whose master is closed mid-measurement (the terminal window or SSH session
    went away): exit 129, the agent stops too, and the board's lock is free for the next bench at once."""
    pid, master = pty.fork()
    if pid == 0:  # the child: edgeq leads its own session with the pty as its controlling terminal
        try:
            _hangup_default()
            os.chdir(board["model"].parent)
            os.execve(sys.executable, _bench_argv(board, "--min-seconds", "120"), _env(board["home"]))  # noqa: S606
        finally:
            os._exit(127)
    agent = None
    seen = bytearray()
    try:
        agent = wait_for_agent(pid, drain=lambda: _drain(master, seen))
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.0:  # measuring, with the lock held
            _drain(master, seen)
        os.close(master)  # hang up
        master = -1
        t0 = time.monotonic()
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            assert time.monotonic() - t0 < STOP_BOUND_S, "edgeq did not stop after the hangup"
            time.sleep(0.05)
        code = os.waitstatus_to_exitcode(status)
        assert code == 129, f"edgeq exit {code} after the hangup (negative: killed by that signal)\n{seen[-2000:].decode()}"
        t0 = time.monotonic()
        while _alive(agent) and time.monotonic() - t0 < 10:
            time.sleep(0.05)
        assert not _alive(agent), "the agent kept running after edgeq hung up"
        r = subprocess.run(  # noqa: S603 - fixed argv
            [*_bench_argv(board, "--min-seconds", "0.2"), "--json"],
            capture_output=True,
            text=True,
            env=_env(board["home"]),
            timeout=120,
        )
        assert r.returncode == 0, r.stderr  # within lock_timeout: the lock was freed
    finally:
        if master >= 0:
            os.close(master)
        if agent is not None:
            reap_stray(agent)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def test_nohup_keeps_sighup_ignored(board):
    """Started with SIGHUP ignored (nohup, systemd's IgnoreSIGPIPE-style wrappers): the bench goes on."""
    p = subprocess.Popen(  # noqa: S603 - fixed argv
        ["nohup", *_bench_argv(board, "--min-seconds", "4", "--json")],  # noqa: S607 - coreutils nohup
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(board["home"]),
        cwd=board["model"].parent,
    )
    agent = None
    try:
        agent = wait_for_agent(p.pid)
        p.send_signal(signal.SIGHUP)
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, (p.returncode, err)
        assert json.loads(out)["ok"] is True
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if agent is not None:
            reap_stray(agent)
