"""`edgeq devices setup` on bare boards, offline: a real sshd board whose python is pyenv's 3.7 (a Coral's
Mendel has 3.7) and the emulated aarch64 Raspberry Pi's system python 3.11, both with no venv and no
runtime. The wheels come from this machine; the boards' sessions have every proxy and index dead.
Then `devices check` and `bench` pass on them, and a rerun changes nothing.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeq.fleet.setup.scripts import TINY_MODEL_B64
from edgeq.testing import offline
from edgeq.testing.fleet import board_entry, run_json, write_devices

PY37 = "/root/.pyenv/versions/3.7.16/bin/python3.7"


@pytest.fixture
def tiny_model(tmp_path) -> Path:
    p = tmp_path / "tiny.tflite"
    p.write_bytes(base64.b64decode(TINY_MODEL_B64))
    return p


def _setup_twice(dev: Path, name: str) -> tuple[dict, dict]:
    code, first, err = run_json("devices", "setup", name, "--devices", dev, "--write")
    assert code == 0, (first, err)
    code, again, err = run_json("devices", "setup", name, "--devices", dev)
    assert code == 0, (again, err)
    return first["devices"][0], again["devices"][0]


def test_py37_board_is_set_up_offline_then_checked_and_benched(farm, tmp_path, monkeypatch, tiny_model):
    if not Path(PY37).exists():
        pytest.fail(f"{PY37} is missing: pyenv install 3.7.16", pytrace=False)
    monkeypatch.setenv("EDGEQ_HOME", str(tmp_path / "home"))
    board = farm.boards[0]
    offline.make_offline(board)
    comment = "# the Coral-like board: Python 3.7, nothing installed\n"
    dev = write_devices(tmp_path, board_entry(farm, board, tmp_path, name="coral37", python=PY37, tags=["py37"]))
    dev.write_text(comment + dev.read_text())

    first, again = _setup_twice(dev, "py37")
    assert first["status"] == "changed" and first["action"] == "set up", first
    assert (first["runtime"], first["runtime_version"]) == ("tflite-runtime", "2.11.0"), first
    assert first["numpy"].startswith("1.21.") and first["base_python_version"] == "3.7.16"
    assert first["verify_output"] == [1.0, 3.0, 5.0, 7.0] and first["bytes_uploaded"] > 1_000_000
    venv_py = str(tmp_path / "boards" / "coral37" / "venv" / "bin" / "python")
    assert first["python"] == venv_py and first["written"] == str(dev)
    text = dev.read_text()
    assert text.startswith(comment) and json.dumps(venv_py) in text  # a line edit: the comment stays

    assert again["status"] == "ok" and again["action"] == "unchanged" and again["bytes_uploaded"] == 0, again
    assert again["runtime_version"] == "2.11.0"
    # the system python was never changed: it still has no runtime
    p = subprocess.run([PY37, "-c", "import tflite_runtime"], capture_output=True, text=True, check=False)
    assert p.returncode != 0

    code, doc, err = run_json("devices", "check", "coral37", "--devices", dev)
    assert code == 0, (doc, err)
    rec = doc["devices"][0]
    assert rec["healthy"] and rec["python"].startswith("3.7.") and rec["runtime"] == "tflite-runtime", rec
    code, doc, err = run_json("bench", tiny_model, "-t", "coral37", "--runs", "20", "--min-seconds", "0.1", "--devices", dev)
    assert code == 0, (doc, err)
    run = doc["devices"][0]["results"][0]
    assert run["ok"] and run["count"] >= 20 and run["runtime"]["version"] == "2.11.0", run


def test_missing_python_is_named(farm, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEQ_HOME", str(tmp_path / "home"))
    dev = write_devices(tmp_path, board_entry(farm, farm.boards[1], tmp_path, name="nopy", python="/opt/none/bin/python3"))
    code, doc, _ = run_json("devices", "setup", "nopy", "--devices", dev)
    rec = doc["devices"][0]
    assert code != 0 and rec["kind"] == "no_python", rec
    assert "not found" in rec["error"] and "apt install python3 python3-venv" in rec["hint"]


@pytest.mark.slow
def test_aarch64_board_is_set_up_offline_then_checked_and_benched(aarch64_board, tmp_path, tiny_model):
    b = aarch64_board
    entry = {
        "name": "pi",
        "host": b.host,
        "port": b.port,
        "user": b.user,
        "key_file": str(b.key_file),
        "known_hosts": str(b.known_hosts),
        "python": "/usr/bin/python3",  # the system python: no venv, no runtime, PEP 668 managed
        "workdir": "/root/setup-bare",
        "connect_timeout": 60,
        "command_timeout": 900,
        "retries": 3,
        "retry_delay": 0.5,
    }
    dev = tmp_path / "devices.yaml"
    dev.write_text("# the emulated Pi\ndevices:\n  - " + json.dumps(entry) + "  # set up by the test\n")
    env = {**os.environ, "EDGEQ_HOME": str(tmp_path / "home")}
    env.pop("EDGEQ_DEVICES", None)

    def cli(*args) -> tuple[int, dict, str]:
        p = subprocess.run(
            [sys.executable, "-m", "edgeq", *map(str, args), "--devices", str(dev), "--json"],
            capture_output=True,
            text=True,
            timeout=1800,
            env=env,
            check=False,
        )
        return p.returncode, json.loads(p.stdout), p.stderr

    code, doc, err = cli("devices", "setup", "pi", "--write")
    assert code == 0, (doc, err)
    first = doc["devices"][0]
    assert first["action"] == "set up" and first["arch"] == "aarch64", first
    assert (first["runtime"], first["runtime_version"]) == ("tflite-runtime", "2.14.0") and first["numpy"].startswith("1.")
    assert "/root/setup-bare/venv/bin/python" in dev.read_text() and dev.read_text().startswith("# the emulated Pi")
    code, doc, err = cli("devices", "setup", "pi")
    assert code == 0 and doc["devices"][0]["action"] == "unchanged", (doc, err)
    code, doc, err = cli("devices", "check", "pi")
    assert code == 0 and doc["devices"][0]["healthy"], (doc, err)
    code, doc, err = cli("bench", tiny_model, "-t", "pi", "--runs", "10", "--min-seconds", "0.1")
    assert code == 0, (doc, err)
    assert doc["devices"][0]["results"][0]["runtime"]["version"] == "2.14.0"


PY36 = "/root/.pyenv/versions/3.6.15/bin/python3.6"


def test_python_36_board_is_refused_naming_the_version(farm, tmp_path, monkeypatch, tiny_model):
    """A board whose python is 3.6 (older than Mendel's 3.7): check, deploy and setup each refuse it with the
    version found and the one needed, not a SyntaxError from the agent; the agent zipapp itself, run by 3.6,
    prints its refusal as a document (kind old_python, exit 12)."""
    if not Path(PY36).exists():
        pytest.fail(f"{PY36} is missing: pyenv install 3.6.15", pytrace=False)
    monkeypatch.setenv("EDGEQ_HOME", str(tmp_path / "home"))
    dev = write_devices(tmp_path, board_entry(farm, farm.boards[2], tmp_path, name="old36", python=PY36))
    code, doc, err = run_json("devices", "check", "old36", "--devices", dev)
    rec = doc["devices"][0]
    assert code != 0 and rec["kind"] == "old_python", rec
    assert "Python 3.6.15" in rec["error"] and "3.7 or newer" in rec["error"] and "python:" in rec["hint"], rec
    code, doc, _ = run_json("deploy", tiny_model, "-t", "old36", "--devices", dev)
    assert code != 0 and doc["devices"][0]["kind"] == "old_python"
    code, doc, _ = run_json("devices", "setup", "old36", "--devices", dev)
    rec = doc["devices"][0]
    assert code != 0 and "3.6" in rec["error"] and "3.7+" in rec["error"], rec

    from edgeq.agent import build_zipapp

    pyz = build_zipapp(tmp_path / "agent")
    p = subprocess.run([PY36, str(pyz), "facts", "--workdir", str(tmp_path / "w")], capture_output=True, text=True)  # noqa: S603
    out = json.loads(p.stdout)
    assert p.returncode == 12 and out["ok"] is False and out["kind"] == "old_python" and out["python"] == "3.6.15", p
