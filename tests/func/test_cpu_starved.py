"""cpu_starved on the local board: the real agent in a subprocess, real TFLite, its python put into a real
cgroup v1 CPU quota (this VM mounts the v1 cpu controller at /sys/fs/cgroup/cpu and runs the tests as root).
Skipped where that cannot be done (no v1 cpu controller, not writable)."""

from __future__ import annotations

import base64
import os
import sys
import uuid
from pathlib import Path

import pytest

from edgeq.fleet.setup.scripts import TINY_MODEL_B64

CPU_V1 = Path("/sys/fs/cgroup/cpu")


def _group(quota_us: int | None, shares: int | None = None):
    """A fresh cgroup v1 cpu group (a quota per 2000 us period, cpu.shares); removed afterwards."""
    if not (CPU_V1 / "cpu.cfs_quota_us").exists() or not os.access(CPU_V1, os.W_OK):
        pytest.skip("no writable cgroup v1 cpu controller")
    group = CPU_V1 / ("edgeq-test-" + uuid.uuid4().hex[:8])
    group.mkdir()
    try:
        if quota_us is not None:
            (group / "cpu.cfs_period_us").write_text("2000")
            (group / "cpu.cfs_quota_us").write_text(str(quota_us))
        if shares is not None:
            (group / "cpu.shares").write_text(str(shares))
        yield group
    finally:
        for pid in (group / "cgroup.procs").read_text().split():
            try:
                (CPU_V1 / "cgroup.procs").write_text(pid)
            except OSError:
                pass
        group.rmdir()


@pytest.fixture
def quota_group():
    """Half a CPU: quota 1000 us per 2000 us period."""
    yield from _group(1000)


@pytest.fixture
def quiet_group():
    """No quota, cpu.shares at the v1 maximum: the other jobs of this shared VM (1024 each) yield the CPU to it."""
    yield from _group(None, shares=262144)


def _devices(tmp_path: Path, group: Path | None) -> Path:
    python = sys.executable
    if group is not None:  # the board's python joins the quota group, then becomes the real interpreter
        wrapper = tmp_path / "python-in-quota"
        wrapper.write_text("#!/bin/sh\necho $$ > " + str(group / "cgroup.procs") + "\nexec " + sys.executable + ' "$@"\n')
        wrapper.chmod(0o755)
        python = str(wrapper)
    devices = tmp_path / "devices.yaml"
    devices.write_text("devices:\n  - name: b1\n    transport: local\n    python: " + python + "\n")
    return devices


def _bench(edgeq, tmp_path, devices):
    model = tmp_path / "tiny.tflite"
    model.write_bytes(base64.b64decode(TINY_MODEL_B64))
    r = edgeq(
        *("bench", model, "--devices", devices, "--target", "b1", "--sessions", "1", "--json"),
        *("--sustained", "2"),
    )
    assert r.code == 0, r.stderr
    (res,) = r.json()["devices"][0]["results"]
    return res


def test_a_board_in_a_cpu_quota_is_flagged_cpu_starved_with_the_numbers(edgeq, tmp_path, quota_group):
    res = _bench(edgeq, tmp_path, _devices(tmp_path, quota_group))
    cpu = res["raw"]["state"]["cpu"]
    assert "cpu_starved" in res["flags"] and "cpu_starved" in res["sessions"][0]["flags"], cpu
    assert cpu["starved"] is True and cpu["expected"] == 1.0 and cpu["wall_s"] >= 2.0
    assert cpu["ratio"] < 0.85 and abs(cpu["ratio"] - cpu["cpu_s"] / cpu["wall_s"]) < 1e-3
    # the quota group itself is named, with its throttling: about half of every period held off the CPU
    assert cpu["cgroup"] == str(quota_group) and cpu["cgroup_version"] == 1
    assert cpu["nr_throttled"] > 100 and cpu["throttled_fraction"] > 0.05


def test_an_unthrottled_board_shows_no_cgroup_throttling(edgeq, tmp_path):
    res = _bench(edgeq, tmp_path, _devices(tmp_path, None))
    cpu = res["raw"]["state"]["cpu"]
    assert cpu["expected"] == 1.0 and cpu["wall_s"] >= 2.0 and 0.0 < cpu["ratio"] < 4.0
    assert cpu.get("throttled_fraction", 0.0) == 0.0 and cpu.get("nr_throttled", 0) == 0
    # no quota: the flag stands only for a CPU/wall under 0.85 (this CI VM is shared: other jobs may take
    # the CPU, which the flag rightly reports) or steal
    assert ("cpu_starved" in res["flags"]) == (cpu["ratio"] < 0.85 or cpu.get("steal_fraction", 0.0) > 0.05)


def test_a_quiet_board_is_not_flagged(edgeq, tmp_path, quiet_group):
    res = _bench(edgeq, tmp_path, _devices(tmp_path, quiet_group))
    cpu = res["raw"]["state"]["cpu"]
    assert "cpu_starved" not in res["flags"] and cpu["starved"] is False and cpu["ratio"] >= 0.85, cpu
    assert cpu["nr_throttled"] == 0 and cpu["throttled_fraction"] == 0.0
