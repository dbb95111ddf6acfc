"""Board state and bench controls on the local board: the real agent in a subprocess, real TFLite, this VM's
real /proc and /sys (load average yes; no thermal zones and no cpufreq, so the governor is refused clearly)."""

from __future__ import annotations

import base64
from pathlib import Path

from edgeq.fleet.setup.scripts import TINY_MODEL_B64


def _tiny(path: Path) -> Path:
    path.write_bytes(base64.b64decode(TINY_MODEL_B64))
    return path


def test_bench_records_board_state_and_applies_the_controls(edgeq, tmp_path):
    model = _tiny(tmp_path / "tiny.tflite")
    r = edgeq(
        *("bench", model, "--target", "local", "--sessions", "1", "--runs", "10", "--json"),
        *("--cooldown-seconds", "1", "--cpu-affinity", "0", "--governor", "performance", "--sustained", "2", "--window", "0.5"),
    )
    assert r.code == 0, r.stderr
    (res,) = r.json()["devices"][0]["results"]
    state = res["raw"]["state"]
    for snap in (state["before"], state["after"]):
        load = snap["loadavg"]
        assert len(load) == 3 and all(0.0 <= x < 1000.0 for x in load)
    assert state["during"]["samples"] >= 1 and state["during"]["interval_s"] == 1.0
    assert isinstance(res["flags"], list)
    assert set(res["flags"]) <= {"throttled", "freq_drop", "foreign_load", "hot", "cpu_starved"}
    assert state["cpu"]["wall_s"] >= 2.0 and state["cpu"]["cpu_s"] > 0  # the window's CPU (tests/func/test_cpu_starved.py)
    assert len(state["foreign_load"]) == 2
    assert state["cpu_affinity"] == [0]  # pinned before the interpreter was made
    assert state["cooldown"]["mode"] == "seconds" and state["cooldown"]["waited_s"] >= 1.0
    assert res["sessions"][0]["cooldown_s"] >= 1.0
    # this VM has no cpufreq: the governor is left alone, the bench measures, the result and stderr say why
    assert state["governor"]["set"] is False and "no cpufreq" in state["governor"]["error"]
    assert any("no cpufreq" in n for n in res["notes"]) and "warning: local: no cpufreq" in r.stderr
    assert res["raw"]["stopped_by"] == "sustained" and res["raw"]["timed_seconds"] >= 2.0
    assert len(res["trajectory_ms"]) >= 2 and all(w["p50"] > 0 and w["count"] > 0 for w in res["trajectory_ms"])
    assert res["trend"] is not None and res["trend"] > 0


def test_an_affinity_the_board_lacks_is_a_clear_error_naming_the_device(edgeq, tmp_path):
    r = edgeq("bench", _tiny(tmp_path / "tiny.tflite"), "--target", "local", "--sessions", "1", "--cpu-affinity", "4096")
    assert r.code == 8
    assert "local" in r.stderr and "cpu_affinity [4096]" in r.stderr and "does not offer" in r.stderr
    assert "Traceback" not in r.stderr


def test_devices_yaml_controls_are_validated_with_file_and_line(edgeq, tmp_path):
    devices = tmp_path / "devices.yaml"
    devices.write_text("devices:\n  - name: b1\n    transport: local\n    cooldown:\n      temp_c: 60\n      seconds: 5\n")
    r = edgeq("devices", "list", "--devices", devices)
    assert r.code == 3
    assert "devices.yaml:5" in r.stderr or "devices.yaml:4" in r.stderr, r.stderr
    assert "either temp_c" in r.stderr
