"""The cpufreq governor through the real agent zipapp on a simulated sysfs (this VM has no cpufreq): a bench
that ends puts a shared policy's governor back; one killed with SIGKILL mid-run leaves it changed, and the
next agent command with that work dir puts it back from W/governor.json (but not while a bench holds W/lock).

The zipapp runs unchanged; a prelude only points benchctl.GOVERNOR_PATH at the simulated sysfs."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeq.agent import build_zipapp, parse_agent_output
from edgeq.fleet.setup.scripts import TINY_MODEL_B64
from tests.unit.test_governor_policies import fake_sysfs, governor

CONTROLS = json.dumps({"governor": "performance"})


@pytest.fixture(scope="module")
def pyz(tmp_path_factory):
    return build_zipapp(tmp_path_factory.mktemp("agent"))


@pytest.fixture
def board(tmp_path, pyz):
    """(sysfs cpu dir, work dir, argv prefix running the zipapp against that sysfs)."""
    cpu = fake_sysfs(tmp_path, {"policy0": ([0, 1, 2, 3], "ondemand")})  # a Raspberry Pi 4: one policy
    work = tmp_path / "w"
    prelude = (
        "import sys\n"
        f"sys.path.insert(0, {str(pyz)!r})\n"
        "import edgeq_agent.benchctl as benchctl\n"
        f"benchctl.GOVERNOR_PATH = {str(cpu / 'cpu{}' / 'cpufreq' / 'scaling_governor')!r}\n"
        "import runpy\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    return cpu, work, [sys.executable, "-c", prelude, str(pyz)]


def agent(argv, *args) -> tuple[dict, subprocess.CompletedProcess]:
    proc = subprocess.run([*argv, *map(str, args)], capture_output=True, text=True, timeout=120)
    return parse_agent_output(proc.stdout, proc.stderr, proc.returncode), proc


def _model(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.tflite"
    path.write_bytes(base64.b64decode(TINY_MODEL_B64))
    return path


def test_a_bench_that_ends_restores_a_shared_policy(board, tmp_path):
    cpu, work, argv = board
    doc, proc = agent(
        argv,
        "bench",
        "--workdir",
        work,
        "--model",
        _model(tmp_path),
        "--runs",
        "5",
        "--min-seconds",
        "0.1",
        "--controls",
        CONTROLS,
    )
    assert doc["ok"], proc.stderr
    gov = doc["state"]["governor"]
    assert gov["set"] is True and gov["previous"] == ["ondemand"] and gov["restored"] is True
    assert governor(cpu, "policy0") == "ondemand" and not (work / "governor.json").exists()


def test_the_next_agent_command_restores_what_a_sigkilled_bench_left(board, tmp_path):
    cpu, work, argv = board
    bench = subprocess.Popen(
        [
            *argv,
            "bench",
            "--workdir",
            str(work),
            "--model",
            str(_model(tmp_path)),
            "--runs",
            "5",
            "--min-seconds",
            "60",
            "--controls",
            CONTROLS,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while governor(cpu, "policy0") != "performance":
            assert bench.poll() is None, bench.communicate()
            assert time.monotonic() < deadline, "the bench never set the governor"
            time.sleep(0.05)
        # a bench is running (W/lock held): another command must not pull the governor from under it
        doc, proc = agent(argv, "status", "--workdir", work, "--name", "m")
        assert doc["ok"], proc.stderr
        assert governor(cpu, "policy0") == "performance"
    finally:
        os.kill(bench.pid, signal.SIGKILL)
        bench.communicate()
    assert governor(cpu, "policy0") == "performance"  # SIGKILL: no finally block, no cleanup ran
    left = work / "governor.json"
    state = json.loads(left.read_text()) if left.exists() else None
    doc, proc = agent(argv, "status", "--workdir", work, "--name", "m")
    assert doc["ok"], proc.stderr
    assert governor(cpu, "policy0") == "ondemand"
    assert state is not None and state["policies"][0]["governor"] == "ondemand" and state["pid"] == bench.pid
    assert "put back the cpufreq governor of cpu0" in proc.stderr and f"pid {bench.pid}" in proc.stderr
    assert not (work / "governor.json").exists()
