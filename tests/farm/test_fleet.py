"""Fleet against real OpenSSH servers on loopback (tests/sshfarm.py) and the local transport.

Nothing here mocks paramiko: every board is an sshd process, every agent a real subprocess.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from edgeq import fleet
from edgeq.errors import ExitCode
from edgeq.testing import sshfarm
from edgeq.testing.faultkit import find_agent_pids
from edgeq.testing.fleet import board_entry, by_device, run_cli, run_json, write_devices


def _status(dev_yaml: Path, device: str, name: str) -> dict:
    """What the agent on the board says about a model (through our own transport)."""
    from edgeq.fleet.board import Board, build_agent
    from edgeq.fleet.transport.factory import open_transport

    d = fleet.load_inventory(dev_yaml).get(device)
    t = open_transport(d)
    try:
        b = Board(d, t, build_agent())
        b.ensure_agent()
        return b.call("status", "--name", name).to_json()
    finally:
        t.close()


# --------------------------------------------------------------------------- happy paths


def test_devices_check_all_healthy(farm, tmp_path):
    dev = write_devices(tmp_path, *(board_entry(farm, b, tmp_path) for b in farm.boards), local=True)
    code, doc, _ = run_json("devices", "check", "--devices", dev)
    assert code == 0, doc
    recs = by_device(doc)
    assert set(recs) == {"b1", "b2", "b3", "local"}
    for r in recs.values():
        assert r["reachable"] and r["healthy"], r
        assert r["runtime"] == "ai-edge-litert" and r["arch"] and r["python"]
        assert r["free_bytes"] > 0
    # the human table too
    code, out, _ = run_cli("devices", "check", "farm", "--devices", dev)
    assert code == 0 and "b3" in out and "2.3.0" in out


def test_deploy_three_boards_and_local_then_redeploy_uploads_nothing(farm, tmp_path, tflite_models):
    dev = write_devices(tmp_path, *(board_entry(farm, b, tmp_path) for b in farm.boards), local=True)
    art = tflite_models["dense_a"]
    code, doc, err = run_json("deploy", art, "--target", "farm", "--devices", dev)
    assert code == 0, (doc, err)
    assert doc["ok"] and doc["name"] == "dense_a" and doc["counts"]["changed"] == 4
    size = art.stat().st_size
    for r in doc["devices"]:
        assert r["status"] == "changed" and r["current"] == doc["sha256"]
        assert r["bytes_uploaded"] > size  # the agent zipapp went up the first time, too
        assert r["model_bytes"] == size
    blob = tmp_path / "boards" / "b2" / "models" / "dense_a" / f"{doc['sha256']}.tflite"
    assert blob.read_bytes() == art.read_bytes()

    code, doc2, _ = run_json("deploy", art, "--target", "farm", "--devices", dev)
    assert code == 0
    assert doc2["counts"]["ok"] == 4 and doc2["bytes_uploaded"] == 0
    assert all(r["action"] == "unchanged" and r["bytes_uploaded"] == 0 for r in doc2["devices"])

    # human rendering
    code, out, err = run_cli("deploy", art, "--target", "b1", "--devices", dev)
    assert code == 0 and "unchanged" in out


def test_unloadable_artifact_is_refused_and_current_unchanged(farm, tmp_path, tflite_models):
    dev = write_devices(tmp_path, board_entry(farm, farm.boards[0], tmp_path))
    code, doc, _ = run_json("deploy", tflite_models["dense_a"], "--target", "b1", "--name", "m", "--devices", dev)
    assert code == 0
    good_sha = doc["sha256"]
    code, doc, err = run_json("deploy", tflite_models["custom_op"], "--target", "b1", "--name", "m", "--devices", dev)
    assert code == ExitCode.FLEET
    r = by_device(doc)["b1"]
    assert r["status"] == "failed" and r["kind"] == "unloadable", r
    assert r["current"] == good_sha
    assert "b1" in err and "cannot load" in err
    st = _status(dev, "b1", "m")
    assert st["current"] == good_sha
    assert list((tmp_path / "boards" / "b1" / "tmp").glob("*.part")) == []


def test_not_a_tflite_model_is_refused_before_upload(farm, tmp_path, tflite_models):
    dev = write_devices(tmp_path, board_entry(farm, farm.boards[0], tmp_path))
    code, doc, err = run_json("deploy", tflite_models["not_tflite"], "--target", "b1", "--devices", dev)
    assert code == ExitCode.MODEL
    assert "not a TFLite model" in doc["message"]
    assert not (tmp_path / "boards" / "b1").exists()  # nothing travelled


def test_rollback(farm, tmp_path, tflite_models):
    dev = write_devices(tmp_path, board_entry(farm, farm.boards[1], tmp_path), local=True)
    _, a, _ = run_json("deploy", tflite_models["dense_a"], "-t", "b2", "-t", "local", "--name", "clf", "--devices", dev)
    _, b, _ = run_json("deploy", tflite_models["dense_b"], "-t", "b2", "-t", "local", "--name", "clf", "--devices", dev)
    assert a["ok"] and b["ok"] and a["sha256"] != b["sha256"]
    assert all(r["previous"] == a["sha256"] for r in b["devices"])
    code, doc, _ = run_json("rollback", "--target", "b2", "--target", "local", "--name", "clf", "--devices", dev)
    assert code == 0, doc
    for r in doc["devices"]:
        assert r["status"] == "changed" and r["current"] == a["sha256"] and r["previous"] == b["sha256"]
    assert _status(dev, "b2", "clf")["current"] == a["sha256"]
    # redeploying b now installs the blob still on the board: nothing uploaded
    _, again, _ = run_json("deploy", tflite_models["dense_b"], "-t", "b2", "--name", "clf", "--devices", dev)
    r = by_device(again)["b2"]
    assert r["status"] == "changed" and r["bytes_uploaded"] == 0 and r["action"] == "installed existing blob"


def test_bench_per_device_and_threads(farm, tmp_path, tflite_models):
    dev = write_devices(tmp_path, *(board_entry(farm, b, tmp_path) for b in farm.boards[:2]), local=True)
    code, doc, err = run_json(
        "bench", tflite_models["dense_a"], "-t", "farm", "--runs", "20", "--warmup", "2", "--min-seconds", "0.05",
        "--threads", "1", "--threads", "2", "--devices", dev,
    )  # fmt: skip
    assert code == 0, (doc, err)
    assert {r["device"] for r in doc["devices"]} == {"b1", "b2", "local"}
    for r in doc["devices"]:
        assert r["status"] == "ok" and r["deploy"] in ("uploaded and installed", "unchanged")
        assert [x["threads"] for x in r["results"]] == [1, 2]
        for x in r["results"]:
            lat = x["latency_ms"]
            assert x["ok"] and x["count"] >= 20
            assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
            stride = x["raw"]["samples_stride"]  # every session's samples, thinned to one stride
            kept = sum(-(-s["latency_s"]["count"] // stride) for s in x["raw"]["sessions"])
            assert x["raw"]["threads"] == x["threads"] and len(x["raw"]["samples_s"]) == kept
            # five sessions by default, each its own agent process (over SSH: its own exec channel)
            assert [s["session"] for s in x["sessions"]] == [1, 2, 3, 4, 5]
            assert len({s["pid"] for s in x["raw"]["sessions"]}) == 5
            assert x["ci_ms"]["low"] <= lat["p50"] <= x["ci_ms"]["high"] and x["harness_floor_ms"] > 0
    code, out, _ = run_cli("bench", tflite_models["dense_a"], "-t", "b1", "--runs", "5", "--min-seconds", "0", "--devices", dev)
    assert code == 0 and ("p50 µs" in out or "p50 ms" in out)


def test_bench_board_state_over_ssh_as_a_non_root_user(farm, tmp_path, tflite_models):
    """A farm board is a non-root user over SSH on a VM without cpufreq: the governor request is refused with a
    message naming the board, the bench still measures, and the board state travels back in the result."""
    dev = write_devices(tmp_path, board_entry(farm, farm.boards[0], tmp_path))
    code, doc, err = run_json(
        "bench", tflite_models["dense_a"], "-t", "b1", "--runs", "20", "--min-seconds", "0.05", "--sessions", "2",
        "--governor", "performance", "--cpu-affinity", "0", "--devices", dev,
    )  # fmt: skip
    assert code == 0, (doc, err)
    (x,) = doc["devices"][0]["results"]
    assert "warning: b1: no cpufreq on this board" in err and any("governor was left alone" in n for n in x["notes"])
    for s in x["raw"]["sessions"]:
        assert s["state"]["cpu_affinity"] == [0] and len(s["state"]["before"]["loadavg"]) == 3
        assert s["state"]["governor"] == {"requested": "performance", "set": False, "error": s["state"]["governor"]["error"]}
    assert isinstance(x["flags"], list) and all(isinstance(s["flags"], list) for s in x["sessions"])


def test_predict_matches_local_interpreter(farm, tmp_path, tflite_models):
    from ai_edge_litert.interpreter import Interpreter

    dev = write_devices(tmp_path, board_entry(farm, farm.boards[2], tmp_path))
    inv = fleet.load_inventory(dev)
    assert fleet.deploy(inv, ["b3"], tflite_models["dense_b"], name="p").ok
    x = np.random.default_rng(0).normal(size=(17, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    got = fleet.predict(inv, "b3", "p", tmp_path / "x.npy")
    interp = Interpreter(model_path=str(tflite_models["dense_b"]))
    interp.allocate_tensors()
    want = []
    for row in x:
        interp.set_tensor(interp.get_input_details()[0]["index"], row[None])
        interp.invoke()
        want.append(int(interp.get_tensor(interp.get_output_details()[0]["index"]).argmax()))
    assert got == want


# --------------------------------------------------------------------------- host keys


def test_unknown_host_key_refused_then_trust(farm, tmp_path):
    kh = tmp_path / "kh"
    b = farm.boards[0]
    dev = write_devices(tmp_path, board_entry(farm, b, tmp_path, "pi", known_hosts=str(kh)))
    code, doc, err = run_json("devices", "check", "--devices", dev)
    assert code == ExitCode.FLEET
    r = by_device(doc)["pi"]
    assert r["kind"] == "host_key_unknown" and not r["healthy"]
    assert "edgeq devices trust pi" in r["hint"] and "pi" in err

    code, doc, err = run_json("devices", "trust", "pi", "--devices", dev)  # --json without --yes: refuse to guess
    assert code == ExitCode.FLEET and "--yes" in doc["hint"] and not kh.exists()

    code, out, err = run_cli("devices", "trust", "pi", "--devices", dev, stdin="n\n")
    assert code == ExitCode.FLEET and "declined" in err and not kh.exists()

    expected_fp = sshfarm.fingerprint_of(Path(str(b.host_key) + ".pub"))
    code, out, err = run_cli("devices", "trust", "pi", "--devices", dev, stdin="y\n")
    assert code == 0, err
    assert expected_fp in err and expected_fp in out
    line = kh.read_text().strip()
    assert line == f"[127.0.0.1]:{b.port} {b.host_pub.split()[0]} {b.host_pub.split()[1]}"
    assert (kh.stat().st_mode & 0o777) == 0o600
    code, doc, _ = run_json("devices", "trust", "pi", "--yes", "--devices", dev)
    assert code == 0 and doc["result"] == "unchanged" and doc["fingerprint"] == expected_fp
    code, doc, _ = run_json("devices", "check", "--devices", dev)
    assert code == 0 and by_device(doc)["pi"]["healthy"]


def test_changed_host_key_refused_mitm(farm, tmp_path):
    b = farm.boards[1]
    sshfarm.keygen(tmp_path / "impostor")
    kt, b64 = (tmp_path / "impostor.pub").read_text().split()[:2]
    kh = tmp_path / "kh"
    kh.write_text(f"# fleet\n[127.0.0.1]:{b.port} {kt} {b64}\n")
    dev = write_devices(tmp_path, board_entry(farm, b, tmp_path, "pi", known_hosts=str(kh)))
    code, doc, err = run_json("devices", "check", "--devices", dev)
    assert code == ExitCode.FLEET
    r = by_device(doc)["pi"]
    assert r["kind"] == "host_key_changed"
    assert "man-in-the-middle" in r["error"] and "--replace" in r["hint"] and str(kh) in r["hint"]

    code, doc, _ = run_json("devices", "trust", "pi", "--yes", "--devices", dev)  # no --replace: refused
    assert code == ExitCode.FLEET and "--replace" in doc["hint"]
    code, doc, _ = run_json("devices", "trust", "pi", "--yes", "--replace", "--devices", dev)
    assert code == 0 and doc["result"] == "replaced"
    assert b64 not in kh.read_text() and "# fleet" in kh.read_text()
    code, doc, _ = run_json("devices", "check", "--devices", dev)
    assert code == 0


# --------------------------------------------------------------------------- failures, named


def test_connection_failures_are_named(farm, tmp_path, tflite_models):
    b = farm.boards[0]
    dev = write_devices(
        tmp_path,
        board_entry(farm, b, tmp_path, "closed", port=sshfarm.free_port()),
        board_entry(farm, b, tmp_path, "badkey", key_file=str(farm.wrong_key)),
        board_entry(farm, b, tmp_path, "nopy", python="/nonexistent/bin/python3"),
        board_entry(farm, b, tmp_path, "garbage", python="/bin/echo"),
        board_entry(farm, b, tmp_path, "noruntime", python="/usr/bin/python3"),
        board_entry(farm, b, tmp_path, "blackhole", host="192.0.2.1", port=22, connect_timeout=0.5, retries=1),
        board_entry(farm, b, tmp_path, "ok"),
    )
    t0 = time.monotonic()
    code, doc, err = run_json("deploy", tflite_models["dense_a"], "--target", "all", "--parallel", "7", "--devices", dev)
    assert time.monotonic() - t0 < 30
    assert code == ExitCode.FLEET
    r = by_device(doc)
    assert r["ok"]["status"] == "changed", r["ok"]
    assert r["closed"]["status"] == "unreachable" and r["closed"]["kind"] == "refused"
    assert "connection refused" in r["closed"]["error"] and r["closed"]["error"].startswith("closed:")
    assert r["blackhole"]["status"] == "unreachable"
    assert (
        r["badkey"]["status"] == "failed" and r["badkey"]["kind"] == "auth" and "authentication refused" in r["badkey"]["error"]
    )
    assert r["nopy"]["kind"] == "no_python" and "/nonexistent/bin/python3" in r["nopy"]["error"], r["nopy"]
    assert r["garbage"]["kind"] == "bad_output"
    assert r["noruntime"]["kind"] == "no_runtime" and "edgeq devices setup noruntime" in r["noruntime"]["hint"]
    assert doc["counts"] == {"ok": 0, "changed": 1, "unreachable": 2, "failed": 4, "skipped": 0}
    for name in ("closed", "badkey", "nopy", "garbage", "noruntime", "blackhole"):
        assert name in err  # the error summary names every failed board
    code, doc, _ = run_json("devices", "check", "nopy", "noruntime", "--devices", dev)
    assert code == ExitCode.FLEET
    assert by_device(doc)["noruntime"]["reachable"] and by_device(doc)["noruntime"]["python"].startswith("3.")


def test_target_matching_nothing(farm, tmp_path, tflite_models):
    dev = write_devices(tmp_path, board_entry(farm, farm.boards[0], tmp_path, tags=["lab", "pi5"]))
    code, doc, _ = run_json("deploy", tflite_models["dense_a"], "--target", "coral", "--devices", dev)
    assert code == ExitCode.CONFIG
    assert "'coral'" in doc["message"] and "b1" in doc["hint"] and "pi5" in doc["hint"]


def test_canary_batches_and_max_fail_stop_the_rollout(farm, tmp_path, tflite_models):
    b = farm.boards[2]
    dev = write_devices(
        tmp_path,
        board_entry(farm, b, tmp_path, "c1"),
        board_entry(farm, b, tmp_path, "c2", python="/nonexistent/python3"),
        board_entry(farm, b, tmp_path, "c3", port=sshfarm.free_port(), retries=1),
        board_entry(farm, b, tmp_path, "c4"),
    )
    events = []
    inv = fleet.load_inventory(dev)
    doc = fleet.deploy(inv, ["farm"], tflite_models["dense_a"], batches="1,3", max_fail=1, progress=events.append).to_json()
    assert doc["batches"] == [["c1"], ["c2", "c3"], ["c4"]]
    assert doc["stopped_after_batch"] == 2 and not doc["ok"]
    st = {r["device"]: r["status"] for r in doc["devices"]}
    assert st == {"c1": "changed", "c2": "failed", "c3": "unreachable", "c4": "skipped"}
    assert not (tmp_path / "boards" / "c4").exists()
    assert any(e["event"] == "stopped" for e in events)
    # same through the CLI: exit FLEET, skipped board reported
    code, doc, err = run_json(
        "deploy", tflite_models["dense_b"], "-t", "farm", "--batch", "1,3", "--max-fail", "1", "--devices", dev
    )
    assert code == ExitCode.FLEET and by_device(doc)["c4"]["status"] == "skipped"
    # percentages: 25% of 4 = 1, then the rest; with a generous budget every board is tried
    doc = fleet.deploy(inv, ["farm"], tflite_models["dense_a"], batches="25%,100%", max_fail=5).to_json()
    assert doc["batches"] == [["c1"], ["c2", "c3", "c4"]] and doc["devices"][3]["status"] == "changed"
    code, _, err = run_cli("deploy", tflite_models["dense_a"], "-t", "farm", "--batch", "0,abc", "--devices", dev)
    assert code == ExitCode.USAGE and "--batch" in err


def test_shell_metacharacters_are_quoted(farm, tmp_path, tflite_models):
    marker = Path(f"/tmp/edgeq-pwned-{uuid.uuid4().hex}")
    marker2 = Path(f"{marker}-2")
    weird = tmp_path / f"board one $(touch {marker}); `touch {marker2}` 'q\" & | > <"
    py_link = tmp_path / f"py thon $(touch {marker.name}) `touch {marker.name}`"  # relative: lands in the remote cwd (~)
    # A wrapper, not a symlink: Python finds its venv by the pyvenv.cfg beside (or one above) the path it was
    # started as, so any symlink outside the venv's bin/ (to sys.executable or to its realpath alike) starts
    # the base interpreter, which on a fresh machine has none of the venv's packages (no ai-edge-litert).
    py_link.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    py_link.chmod(0o755)
    dev = write_devices(tmp_path, board_entry(farm, farm.boards[0], tmp_path, "w", workdir=str(weird), python=str(py_link)))
    code, doc, err = run_json("deploy", tflite_models["dense_a"], "-t", "w", "--name", "a;b", "--devices", dev)
    assert code == ExitCode.CONFIG  # a model name is never a shell string either: refused at the door
    code, doc, err = run_json("bench", tflite_models["dense_a"], "-t", "w", "--runs", "3", "--min-seconds", "0", "--devices", dev)
    assert code == 0, (doc, err)
    assert (weird / "models" / "dense_a").is_dir()
    assert not marker.exists() and not marker2.exists() and not (Path.home() / marker.name).exists()


def test_passphrase_never_in_output(farm, tmp_path, tflite_models, monkeypatch):
    secret = farm.enc_passphrase
    b = farm.boards[1]
    dev = write_devices(
        tmp_path,
        board_entry(farm, b, tmp_path, "enc", key_file=str(farm.enc_key), key_passphrase_env="EDGEQ_TEST_KEY_PASS"),
    )
    monkeypatch.delenv("EDGEQ_TEST_KEY_PASS", raising=False)
    code, doc, err = run_json("devices", "check", "--devices", dev)
    assert code == ExitCode.FLEET and "EDGEQ_TEST_KEY_PASS" in by_device(doc)["enc"]["error"]
    monkeypatch.setenv("EDGEQ_TEST_KEY_PASS", secret)
    outputs = []
    for args in (("devices", "list"), ("devices", "check"), ("deploy", tflite_models["dense_a"], "-t", "enc")):
        code, out, err = run_cli(*args, "--devices", dev, "--json")
        assert code == 0, err
        outputs += [out, err]
    assert "EDGEQ_TEST_KEY_PASS" in outputs[0]  # the variable's NAME is config; its value is not
    assert all(secret not in o for o in outputs)
    assert all("PRIVATE KEY" not in o for o in outputs)


def test_disk_full(farm, tmp_path, tflite_models):
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mnt)], capture_output=True)  # noqa: S603,S607
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.decode()[:200]}")
    try:
        big = tmp_path / "big.tflite"
        big.write_bytes(tflite_models["dense_a"].read_bytes() + os.urandom(2_000_000))  # a whole model, then padding
        dev = write_devices(tmp_path, board_entry(farm, farm.boards[0], tmp_path, "small", workdir=str(mnt)))
        code, doc, err = run_json("deploy", big, "-t", "small", "--devices", dev)
        assert code == ExitCode.FLEET
        rec = by_device(doc)["small"]
        assert rec["kind"] == "disk_full" and "disk space" in rec["error"] and rec["bytes_uploaded"] < 1_000_000
        code, doc, _ = run_json("devices", "check", "--devices", dev)
        assert code == ExitCode.FLEET and "low disk space" in by_device(doc)["small"]["problems"][0]
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)  # noqa: S603,S607


def test_connection_dropped_mid_upload(farm, tmp_path, tflite_models):
    b = farm.boards[2]
    big = tmp_path / "big.tflite"
    big.write_bytes(tflite_models["dense_a"].read_bytes() + os.urandom(6_000_000))  # a whole model, then padding
    dev = write_devices(tmp_path, board_entry(farm, b, tmp_path, "drop"))
    inv = fleet.load_inventory(dev)
    dropped = []

    def progress(ev):
        if ev["event"] == "upload" and ev["bytes"] > 0 and not dropped:
            dropped.append(b.drop_connections())

    doc = fleet.deploy(inv, ["drop"], big, progress=progress).to_json()
    rec = by_device(doc)["drop"]
    assert dropped and dropped[0] >= 1
    assert rec["status"] == "failed" and rec["kind"] == "connection_dropped" and "dropped" in rec["error"], rec
    assert not (tmp_path / "boards" / "drop" / "models" / "big").exists()


def test_agent_killed_mid_bench(farm, tmp_path, tflite_models):
    b = farm.boards[0]
    dev = write_devices(tmp_path, board_entry(farm, b, tmp_path, "victim"))
    workdir = tmp_path / "boards" / "victim"
    inv = fleet.load_inventory(dev)
    killed = []

    def killer():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            for pid in find_agent_pids("bench", workdir):
                time.sleep(0.3)
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.05)

    th = threading.Thread(target=killer, daemon=True)
    th.start()
    doc = fleet.bench(inv, ["victim"], tflite_models["dense_a"], runs=10, min_seconds=60, sessions=1).to_json()
    th.join(5)
    assert killed
    rec = by_device(doc)["victim"]
    assert not doc["ok"] and rec["status"] == "failed" and rec["kind"] == "agent_killed", rec
    assert "killed" in rec["error"] and rec["results"][0]["ok"] is False
    json.dumps(doc)  # still one JSON-able document
