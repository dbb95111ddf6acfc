"""Wedged boards among healthy ones (issue 11 items 1, 5, 12, 13, 17): a real sshd farm plus real servers
that accept the SSH login and then never answer (edgeq.testing.stallserver), in real `edgeq` processes.

Every command must print its summary within the documented bound, with the healthy boards' results.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from edgeq.testing import fleet as tf
from edgeq.testing import sshfarm, stallserver
from edgeq.testing.common import TINY

CT = 3.0  # connect_timeout of every board here: each protocol reply waits at most this long
GRACE = 5.0  # edgeq.fleet.fanout.WATCHDOG_GRACE
# a wedged board is reported after its connect and one unanswered request; the rest is process start,
# agent build and the healthy boards' own work on a shared 2-core machine
BOUND = 3 * CT + CT + GRACE + 25.0


@pytest.fixture
def wedged(farm, tmp_path):
    """Start wedged boards: wedged(kind) -> (server, devices.yaml entry); all stopped at the end."""
    servers: list = []
    kh = tmp_path / "known_hosts"
    kh.write_text(Path(farm.known_hosts).read_text())
    pub = Path(str(farm.user_key) + ".pub").read_text()

    def start(name: str, stall: str = "request", **over):
        if stall == "banner":
            srv = stallserver.SilentServer()
        else:
            srv = stallserver.wedged_board(tmp_path / "stall", pub, stall)  # type: ignore[arg-type]
            with open(kh, "a") as f:
                f.write(srv.known_hosts_line + "\n")
        servers.append(srv)
        fake = sshfarm.FarmBoard(name, srv.port, tmp_path, tmp_path / "boards" / name, Path("/dev/null"))
        over = {"connect_timeout": CT, "known_hosts": str(kh), **over}
        return srv, tf.board_entry(farm, fake, tmp_path, name, **over)

    start.known_hosts = kh  # type: ignore[attr-defined]
    yield start
    for s in servers:
        s.stop()


def _healthy(farm, tmp_path, wedged, i: int = 0, name: str | None = None) -> str:
    b = farm.boards[i]
    return tf.board_entry(farm, b, tmp_path, name, connect_timeout=CT, known_hosts=str(wedged.known_hosts))


def _edgeq(tmp_path, *args, timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "EDGEQ_HOME": str(tmp_path / "home")}
    t0 = time.monotonic()
    try:
        p = subprocess.run(
            [sys.executable, "-m", "edgeq", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=tmp_path,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`edgeq {' '.join(map(str, args))}` did not finish within {timeout:g}s: a wedged board hung it")
    return p, time.monotonic() - t0


@pytest.mark.parametrize("stall", ["request", "session"])
def test_check_with_a_wedged_board(farm, tmp_path, wedged, stall):
    _, hung = wedged("hung", stall)
    devs = tf.write_devices(tmp_path, _healthy(farm, tmp_path, wedged), hung)
    p, wall = _edgeq(tmp_path, "devices", "check", "--devices", devs, "--json", timeout=2 * BOUND)
    assert wall < BOUND, wall
    assert p.returncode == 8, p.stderr
    doc = tf.by_device(json.loads(p.stdout))
    assert doc["b1"]["healthy"] is True and doc["b1"]["status"] == "ok"
    h = doc["hung"]
    assert h["status"] == "unreachable" and h["kind"] == "timeout" and h["reachable"] is False, h
    assert "stopped answering" in h["error"], h["error"]
    assert any(step in h["error"] for step in ("sftp", "session", "exec request")), h["error"]
    assert "\n" not in h["error"] and len(h["error"]) < 300, h["error"]  # the step is named, not a script dumped
    assert "hung" in h["hint"] and "connect_timeout" in h["hint"]


def test_deploy_with_a_wedged_board(farm, tmp_path, wedged, tflite_models):
    _, hung = wedged("hung")
    devs = tf.write_devices(tmp_path, _healthy(farm, tmp_path, wedged), _healthy(farm, tmp_path, wedged, 1), hung)
    art = tflite_models["dense_a"]
    p, wall = _edgeq(tmp_path, "deploy", art, "-t", "all", "--devices", devs, "--json", timeout=2 * BOUND)
    assert wall < BOUND, wall
    assert p.returncode == 8, p.stderr
    doc = json.loads(p.stdout)
    by = tf.by_device(doc)
    assert by["b1"]["status"] == by["b2"]["status"] == "changed"
    assert by["hung"]["status"] == "unreachable" and by["hung"]["kind"] == "timeout"
    assert doc["counts"] == {"ok": 0, "changed": 2, "unreachable": 1, "failed": 0, "skipped": 0}
    # the healthy boards really switched
    for b in ("b1", "b2"):
        cur = (tmp_path / "boards" / b / "models" / "dense_a" / "current").read_text().strip()
        assert cur == doc["sha256"]


def test_silent_port_is_unreachable_retried_with_the_right_hint(farm, tmp_path, wedged):
    srv, silent = wedged("silent", "banner", retries=2, retry_delay=0.05)
    devs = tf.write_devices(tmp_path, _healthy(farm, tmp_path, wedged), silent)
    p, wall = _edgeq(tmp_path, "devices", "check", "--devices", devs, "--json", timeout=2 * BOUND)
    assert p.returncode == 8, p.stderr
    s = tf.by_device(json.loads(p.stdout))["silent"]
    assert s["status"] == "unreachable" and s["reachable"] is False and s["kind"] == "timeout", s
    assert "sent no SSH banner" in s["error"] and "sshd" in s["hint"], s
    assert srv.connections == 2  # retried: retries: 2 attempts in all
    assert wall < 2 * (3 * CT) + 25


def test_group_readable_key_is_refused_like_ssh(farm, tmp_path, wedged):
    key = tmp_path / "id_loose"
    key.write_bytes(Path(farm.user_key).read_bytes())
    key.chmod(0o644)
    devs = tf.write_devices(tmp_path, _healthy(farm, tmp_path, wedged).replace(str(farm.user_key), str(key)))
    p, _ = _edgeq(tmp_path, "devices", "check", "--devices", devs, "--json", timeout=60)
    assert p.returncode == 8
    b = tf.by_device(json.loads(p.stdout))["b1"]
    assert b["kind"] == "auth" and str(key) in b["error"] and "0644" in b["error"], b
    assert b["hint"] == f"chmod 600 {key}"
    key.chmod(0o600)
    p, _ = _edgeq(tmp_path, "devices", "check", "--devices", devs, "--json", timeout=60)
    assert p.returncode == 0, p.stdout


def test_one_ctrl_c_stops_at_once_and_keeps_finished_boards(farm, tmp_path, wedged, tflite_models):
    # connect_timeout 60: the wedged board stays in progress until the Ctrl-C
    _, hung = wedged("hung", connect_timeout=60)
    devs = tf.write_devices(tmp_path, _healthy(farm, tmp_path, wedged), hung)
    env = {**os.environ, "EDGEQ_HOME": str(tmp_path / "home")}
    args = [sys.executable, "-m", "edgeq", "deploy", str(tflite_models["dense_a"]), "-t", "all", "--devices", str(devs), "--json"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    seen = threading.Event()
    err_lines: list[str] = []

    def read_err() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            err_lines.append(line)
            if line.startswith("b1: changed"):
                seen.set()

    reader = threading.Thread(target=read_err, daemon=True)
    reader.start()
    try:
        assert seen.wait(120), "".join(err_lines)
        time.sleep(0.5)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail("one Ctrl-C did not stop `edgeq deploy` within 15 s")
        stopped = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stdout is not None
    out = proc.stdout.read()
    reader.join(5)
    assert stopped < 5, stopped
    assert proc.returncode == 130, "".join(err_lines)
    by = tf.by_device(json.loads(out))
    assert by["b1"]["status"] == "changed"  # kept: it finished before the Ctrl-C
    assert by["hung"]["status"] == "skipped" and by["hung"]["kind"] == "interrupted"
    assert any("interrupted" in line for line in err_lines)


FLEET_PIPE = {
    "deploy": {"targets": ["b1", "hung"], "variants": ["int8"]},
    "benchmark": {"targets": ["b1", "hung"], "variants": ["int8"], "runs": 10, "warmup": 1, "min_seconds": 0.05},
}


def test_run_with_a_wedged_board_stores_the_healthy_results(farm, tmp_path, wedged):
    _, hung = wedged("hung")
    devs = tf.write_devices(tmp_path, _healthy(farm, tmp_path, wedged), hung)
    pipe = {**json.loads(json.dumps(TINY)), **FLEET_PIPE, "devices": str(devs)}
    pf = tmp_path / "pipe.yaml"
    pf.write_text(yaml.safe_dump(pipe, sort_keys=False))
    # training takes its own time; the two fleet stages each add at most the wedged board's bound
    p, wall = _edgeq(tmp_path, "run", pf, "--json", timeout=240)
    assert p.returncode == 8, p.stderr[-3000:]
    doc = json.loads(p.stdout)
    dep = tf.by_device(doc["stages"]["deploy"]["results"]["int8"])
    assert dep["b1"]["status"] == "changed" and dep["hung"]["status"] == "unreachable"
    rows = {r["device"]: r for r in doc["benchmarks"]}
    assert rows["b1"]["ok"] is True and rows["hung"]["ok"] is False
    manifest = json.loads((Path(doc["run_dir"]) / "manifest.json").read_text())
    assert {r["device"]: r["ok"] for r in manifest["benchmarks"]} == {"b1": True, "hung": False}
    import sqlite3

    db = sqlite3.connect(str(tmp_path / "home" / "history.db"))
    try:
        n = db.execute("SELECT count(*) FROM benchmarks").fetchone()[0]
    finally:
        db.close()
    assert n >= 1
