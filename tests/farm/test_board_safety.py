"""Issue 11, board side: no stranded lock, no orphan, no wrong result, no foreign agent (real sshd, real agents).

Each test names the item it proves. Boards are sshd processes of the farm; the agents they run are real
subprocesses whose pids are found in /proc; files are swapped on the board's disk, not faked.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgeq import fleet
from edgeq.errors import ExitCode
from edgeq.fleet.board import build_agent
from edgeq.testing.common import REPO
from edgeq.testing.faultkit import find_agent_pids, hold_lock, pid_alive
from edgeq.testing.fleet import board_entry, by_device, run_cli, run_json, write_devices


@pytest.fixture(scope="module")
def spin_model(tmp_path_factory) -> Path:
    """A valid TFLite model whose WHILE loop never ends on zeros (sum(x) > -1 stays true as x grows)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    def spin(x):
        def cond(i, x):
            return tf.reduce_sum(x) > -1.0

        def body(i, x):
            return i + 1.0, x + 1.0

        _, y = tf.while_loop(cond, body, [tf.constant(0.0), x])
        return y

    blob = tf.lite.TFLiteConverter.from_concrete_functions([spin.get_concrete_function()], spin).convert()
    p = tmp_path_factory.mktemp("spin") / "spin.tflite"
    p.write_bytes(blob)
    return p


def _dev(farm, tmp_path, i: int = 0, name: str = "s1", **over) -> Path:
    return write_devices(tmp_path, board_entry(farm, farm.boards[i], tmp_path, name, **over))


def _w(tmp_path: Path, name: str = "s1") -> Path:
    return tmp_path / "boards" / name


def _lock_free(workdir: Path) -> bool:
    fd = os.open(str(workdir / "lock"), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _agents(workdir: Path) -> list[int]:
    return [p for sub in ("install", "bench", "predict", "rollback") for p in find_agent_pids(sub, workdir) if pid_alive(p)]


def _wait_no_agents(workdir: Path, timeout: float) -> float:
    t0 = time.monotonic()
    while _agents(workdir) and time.monotonic() - t0 < timeout:
        time.sleep(0.1)
    assert not _agents(workdir), f"agent processes still running on the board after {timeout}s: {_agents(workdir)}"
    return time.monotonic() - t0


# --------------------------------------------------------------------------- item 2: a model that spins forever


def test_spinning_model_load_check_is_killed_and_leaves_no_lock(farm, tmp_path, tflite_models, spin_model):
    """Item 2: the load check of a model that never returns is killed (its whole process group) inside the
    command timeout; no orphan keeps the lock; the next deploy (lock_timeout 0) goes through at once."""
    dev = _dev(farm, tmp_path, command_timeout=20, lock_timeout=0)
    w = _w(tmp_path)
    code, first, _ = run_json("deploy", tflite_models["dense_a"], "-t", "s1", "--name", "m", "--devices", dev)
    assert code == 0, first
    t0 = time.monotonic()
    code, doc, err = run_json("deploy", spin_model, "-t", "s1", "--name", "m", "--devices", dev)
    took = time.monotonic() - t0
    r = by_device(doc)["s1"]
    assert code == ExitCode.FLEET and r["kind"] == "load_timeout", (r, err)
    assert took < 20, took
    assert "did not finish" in r["error"] and "loop" in r["hint"]
    assert r["current"] == first["sha256"]
    _wait_no_agents(w, 3)  # the forked check is gone with the agent
    assert _lock_free(w)
    code, doc, err = run_json("deploy", tflite_models["dense_b"], "-t", "s1", "--name", "m", "--devices", dev)
    assert code == 0, (doc, err)


def test_lock_records_real_holder_and_stale_one_is_reclaimed_with_a_note(farm, tmp_path, tflite_models):
    """Item 2: W/lock names its holder (pid, start time, host, command line); a record left by a dead holder
    is reclaimed by the next agent, which says so."""
    w = _w(tmp_path)
    dead = hold_lock(w)
    rec = json.loads((w / "lock").read_text())
    assert rec["pid"] == dead.pid and rec["start_ticks"] and rec["hostname"] and "fault-test holder" == rec["command"]
    assert "python" in rec["argv"]
    dead.kill()
    dead.wait(5)
    agent = build_agent(tmp_path / "agent")
    p = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, str(agent.path), "bench", "--workdir", str(w), "--model", str(tflite_models["dense_a"])]
        + ["--runs", "2", "--warmup", "0", "--min-seconds", "0", "--lock-timeout", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert f"reclaimed {w / 'lock'} left by pid {dead.pid} (no longer running)" in p.stderr


# --------------------------------------------------------------------------- item 3: the host gives up


def test_command_timeout_stops_the_agent_and_frees_the_lock(farm, tmp_path, tflite_models):
    """Item 3: the host gives up on a 120 s benchmark after its 6 s command timeout; the agent on the board
    is gone within seconds of that and W/lock is free."""
    dev = _dev(farm, tmp_path, command_timeout=6)
    w = _w(tmp_path)
    run_json("deploy", tflite_models["dense_a"], "-t", "s1", "--devices", dev)
    t0 = time.monotonic()
    code, doc, _ = run_json(
        "bench", tflite_models["dense_a"], "-t", "s1", "--runs", "1", "--min-seconds", "120", "--devices", dev
    )
    r = by_device(doc)["s1"]
    assert code == ExitCode.FLEET and r["results"][0]["kind"] in ("deadline", "command_timeout"), r
    _wait_no_agents(w, 5)
    assert time.monotonic() - t0 < 20
    assert _lock_free(w)


@pytest.mark.parametrize("sig", [signal.SIGKILL])
def test_edgeq_killed_stops_the_agent_on_the_board(farm, tmp_path, tflite_models, sig):
    """Item 3: the edgeq process dies mid-benchmark (SIGKILL: nothing of ours runs any more); the agent on
    the board, whose deadline is 15 min away, sees its SSH channel close and stops within seconds, W/lock free.
    (SIGTERM and Ctrl-C end the same way once edgeq exits: its connection closes with the process.)"""
    dev = _dev(farm, tmp_path)
    w = _w(tmp_path)
    run_json("deploy", tflite_models["dense_a"], "-t", "s1", "--devices", dev)
    env = dict(os.environ, PYTHONPATH=str(REPO), EDGEQ_HOME=str(tmp_path / "home"))
    argv = [sys.executable, "-m", "edgeq", "bench", str(tflite_models["dense_a"]), "-t", "s1"]
    proc = subprocess.Popen(  # noqa: S603 - fixed argv
        argv + ["--runs", "1", "--min-seconds", "300", "--devices", str(dev)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        t0 = time.monotonic()
        while not find_agent_pids("bench", w) and time.monotonic() - t0 < 60:
            time.sleep(0.1)
        pids = find_agent_pids("bench", w)
        assert pids, "the benchmark never started"
        time.sleep(1.0)
        proc.send_signal(sig)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    gone = _wait_no_agents(w, 8)
    assert not any(pid_alive(p) for p in pids)
    assert _lock_free(w)
    print(f"agent gone {gone:.1f}s after edgeq died")


# --------------------------------------------------------------------------- item 6: rollback is a compare-and-swap


def test_rollback_from_twice_never_toggles_back(farm, tmp_path, tflite_models):
    """Item 6: `rollback --from B` twice (a retry): the second leaves A current; --from a sha that is not
    current is refused and changes nothing."""
    dev = _dev(farm, tmp_path)
    _, a, _ = run_json("deploy", tflite_models["dense_a"], "-t", "s1", "--name", "clf", "--devices", dev)
    _, b, _ = run_json("deploy", tflite_models["dense_b"], "-t", "s1", "--name", "clf", "--devices", dev)
    current = _w(tmp_path) / "models" / "clf" / "current"
    code, doc, _ = run_json("rollback", "-t", "s1", "--name", "clf", "--from", b["sha256"], "--devices", dev)
    assert code == 0 and by_device(doc)["s1"]["current"] == a["sha256"], doc
    code, doc, _ = run_json("rollback", "-t", "s1", "--name", "clf", "--from", b["sha256"], "--devices", dev)
    r = by_device(doc)["s1"]
    assert code == 0 and r["status"] == "ok" and r["action"] == "already rolled back", r
    assert current.read_text().strip() == a["sha256"]
    other = "0" * 64
    code, doc, err = run_json("rollback", "-t", "s1", "--name", "clf", "--from", other, "--devices", dev)
    r = by_device(doc)["s1"]
    assert code == ExitCode.FLEET and r["kind"] == "not_current" and r["current"] == a["sha256"], r
    assert current.read_text().strip() == a["sha256"]


# --------------------------------------------------------------------------- item 7: results pinned to the sha256


def test_bench_and_predict_refuse_a_model_swapped_on_the_board(farm, tmp_path, tflite_models):
    """Item 7: the blob current under the name is overwritten on the board with another model after deploy:
    bench and predict fail with kind sha_mismatch and record no measurement."""
    dev = _dev(farm, tmp_path)
    _, a, _ = run_json("deploy", tflite_models["dense_a"], "-t", "s1", "--name", "m", "--devices", dev)
    blob = _w(tmp_path) / "models" / "m" / f"{a['sha256']}.tflite"
    blob.write_bytes(tflite_models["dense_b"].read_bytes())  # a real swap on the board's disk
    code, doc, _ = run_json(
        "bench", tflite_models["dense_a"], "-t", "s1", "--name", "m", "--runs", "2", "--min-seconds", "0", "--devices", dev
    )
    r = by_device(doc)["s1"]
    assert code == ExitCode.FLEET and r["status"] == "failed" and r["kind"] == "sha_mismatch", r
    assert not r["results"][0]["ok"] and "latency_ms" not in r["results"][0]
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((3, 8), dtype=np.float32))
    with pytest.raises(fleet.BoardError) as e:
        fleet.predict(fleet.load_inventory(dev), "s1", "m", x, sha256=a["sha256"])
    assert e.value.kind == "sha_mismatch", e.value


# --------------------------------------------------------------------------- item 10: the agent and its work dir


def test_same_size_foreign_agent_is_replaced(farm, tmp_path, tflite_models):
    """Item 10: a foreign file of exactly the agent's size under the agent's name is not run: it is
    replaced by edgeq's agent (compared by content hash), and the deploy succeeds."""
    dev = _dev(farm, tmp_path)
    run_json("deploy", tflite_models["dense_a"], "-t", "s1", "--name", "m", "--devices", dev)
    pyz = next((_w(tmp_path) / "agent").glob("edgeq-agent-*.pyz"))
    ours = pyz.read_bytes()
    fake = b'import sys\nprint(\'{"ok": true, "protocol": 1, "current": null}\')\n#'
    pyz.write_bytes(fake + b"x" * (len(ours) - len(fake) - 1) + b"\n")
    assert pyz.stat().st_size == len(ours)
    code, doc, err = run_json("deploy", tflite_models["dense_b"], "-t", "s1", "--name", "m", "--devices", dev)
    assert code == 0, (doc, err)
    assert pyz.read_bytes() == ours
    assert (_w(tmp_path) / "models" / "m" / "current").read_text().strip() == doc["sha256"]


def test_new_workdir_is_private(farm, tmp_path, tflite_models):
    """Item 10: edgeq creates the board's work dir (and W/agent) 0700."""
    dev = _dev(farm, tmp_path)
    code, doc, _ = run_json("deploy", tflite_models["dense_a"], "-t", "s1", "--devices", dev)
    assert code == 0, doc
    assert (_w(tmp_path).stat().st_mode & 0o777) == 0o700
    assert ((_w(tmp_path) / "agent").stat().st_mode & 0o777) == 0o700


@pytest.mark.parametrize("how", ["chmod777", "chown"])
def test_unsafe_workdir_is_refused_naming_path_owner_and_mode(farm, tmp_path, tflite_models, how):
    """Item 10: a work dir writable by others, or owned by another user, is refused before anything is
    uploaded or run there, with an error naming the path, its owner and its mode."""
    dev = _dev(farm, tmp_path)
    w = _w(tmp_path)
    w.mkdir(parents=True)
    if how == "chmod777":
        w.chmod(0o777)  # noqa: S103 - the unsafe mode under test
    else:
        os.chown(w, 65534, 65534)
    code, doc, err = run_json("deploy", tflite_models["dense_a"], "-t", "s1", "--devices", dev)
    r = by_device(doc)["s1"]
    assert code == ExitCode.FLEET and r["kind"] == "unsafe_workdir", r
    assert str(w) in r["error"] and r["path"] == str(w)
    if how == "chmod777":
        assert "mode 0777" in r["error"] and "writable by group and others" in r["error"]
    else:
        assert "uid 65534" in r["error"] and r["mode"] == "0755"
    assert sorted(p.name for p in w.iterdir()) in ([], ["agent"])  # no agent, no model travelled
    assert not list(w.glob("agent/*"))


# --------------------------------------------------------------------------- item 19: truncated model


def test_truncated_tflite_is_refused_on_the_host_before_upload(farm, tmp_path, tflite_models):
    """Item 19: a .tflite cut in half (right header) is refused by edgeq's own flatbuffer reader on the
    host: exit MODEL, a message about truncation, and nothing reaches the board."""
    dev = _dev(farm, tmp_path)
    code, doc, err = run_json("deploy", tflite_models["broken"], "-t", "s1", "--devices", dev)
    assert code == ExitCode.MODEL, doc
    assert "truncated or corrupt" in doc["hint"] and "refused before any upload" in doc["message"]
    assert "lacks" not in doc["hint"] and "unloadable" not in json.dumps(doc)
    assert not _w(tmp_path).exists()


# --------------------------------------------------------------------------- item 21: lock wait


def test_lock_wait_says_who_holds_the_board_and_for_how_long(farm, tmp_path, tflite_models):
    """Item 21: while another process holds the board, bench says who (pid, command, since) and how long
    it waits, then fails naming the holder."""
    dev = _dev(farm, tmp_path, lock_timeout=1)
    run_json("deploy", tflite_models["dense_a"], "-t", "s1", "--devices", dev)
    holder = hold_lock(_w(tmp_path))
    try:
        since = json.loads((_w(tmp_path) / "lock").read_text())["since"]
        code, out, err = run_cli(
            "bench", tflite_models["dense_a"], "-t", "s1", "--runs", "2", "--min-seconds", "0", "--devices", dev
        )
    finally:
        holder.kill()
        holder.wait(5)
    assert code == ExitCode.FLEET
    flat = " ".join(err.split())
    assert f"s1: the board is held by pid {holder.pid} (fault-test holder) since {since}; waiting up to 1 s" in flat, err
