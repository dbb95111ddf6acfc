"""The cpufreq governor on a simulated sysfs: cores that share a policy (every Raspberry Pi: one policy0 for
cpu0-3) and cores with a policy each (big.LITTLE), laid out as the kernel does it:
/sys/devices/system/cpu/cpufreq/policyM/scaling_governor with cpuN/cpufreq -> ../cpufreq/policyM, so a write
through one core is what every core of its policy reads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edgeq.agent import benchctl, control

AVAILABLE = "conservative ondemand userspace powersave performance schedutil\n"


def fake_sysfs(root: Path, policies: dict[str, tuple[list[int], str]]) -> Path:
    """root/sys/devices/system/cpu with one policy dir per entry; returns that cpu dir."""
    cpu = root / "sys" / "devices" / "system" / "cpu"
    for name, (cpus, governor) in policies.items():
        d = cpu / "cpufreq" / name
        d.mkdir(parents=True)
        (d / "scaling_governor").write_text(governor + "\n")
        (d / "scaling_available_governors").write_text(AVAILABLE)
        (d / "affected_cpus").write_text(" ".join(map(str, cpus)) + "\n")
        for c in cpus:
            (cpu / f"cpu{c}").mkdir(parents=True, exist_ok=True)
            os.symlink(f"../cpufreq/{name}", cpu / f"cpu{c}" / "cpufreq")
    return cpu


def governor(cpu: Path, policy: str) -> str:
    return (cpu / "cpufreq" / policy / "scaling_governor").read_text().strip()


@pytest.fixture
def sysfs(tmp_path, monkeypatch):
    monkeypatch.setattr(control, "_cleanups", [])

    def make(policies):
        cpu = fake_sysfs(tmp_path, policies)
        monkeypatch.setattr(benchctl, "GOVERNOR_PATH", str(cpu / "cpu{}" / "cpufreq" / "scaling_governor"))
        return cpu

    return make


def test_a_shared_policy_gets_its_old_governor_back(sysfs):
    cpu = sysfs({"policy0": ([0, 1, 2, 3], "ondemand")})  # a Raspberry Pi 4
    gov = benchctl.Governor("performance", [0, 1, 2, 3])
    doc = gov.apply()
    assert doc["set"] is True and doc["previous"] == ["ondemand"] and doc["cpus"] == [0, 1, 2, 3]
    assert governor(cpu, "policy0") == "performance"
    gov.restore()
    assert governor(cpu, "policy0") == "ondemand"
    assert doc["restored"] is True and "error" not in doc


def test_separate_policies_each_get_their_own_governor_back(sysfs):
    cpu = sysfs({"policy0": ([0, 1], "schedutil"), "policy2": ([2, 3], "powersave")})  # big.LITTLE
    gov = benchctl.Governor("performance", [0, 1, 2, 3])
    doc = gov.apply()
    assert doc["previous"] == ["powersave", "schedutil"]
    assert governor(cpu, "policy0") == governor(cpu, "policy2") == "performance"
    gov.restore()
    assert (governor(cpu, "policy0"), governor(cpu, "policy2")) == ("schedutil", "powersave")
    assert doc["restored"] is True


def test_restored_is_claimed_only_after_reading_the_old_value_back(sysfs):
    cpu = sysfs({"policy0": ([0, 1], "ondemand")})
    gov = benchctl.Governor("performance", [0, 1])
    doc = gov.apply()
    # a write the kernel swallows without effect: the file reads back something else afterwards
    path = cpu / "cpufreq" / "policy0" / "scaling_governor"
    path.unlink()
    os.symlink("/dev/null", path)
    gov.restore()
    assert doc["restored"] is False
    assert "could not restore" in doc["error"] and "cpu0" in doc["error"]


def test_the_old_values_are_kept_in_the_work_dir_until_restored(sysfs, tmp_path):
    cpu = sysfs({"policy0": ([0, 1, 2, 3], "ondemand")})
    work = tmp_path / "w"
    work.mkdir()
    gov = benchctl.Governor("performance", [0, 1, 2, 3], state_dir=work)
    gov.apply()
    state = json.loads((work / benchctl.STATE_FILE).read_text())
    assert [(p["cpus"], p["governor"]) for p in state["policies"]] == [([0, 1, 2, 3], "ondemand")]
    assert state["set"] == "performance"
    gov.restore()
    assert governor(cpu, "policy0") == "ondemand" and not (work / benchctl.STATE_FILE).exists()


def test_the_next_agent_restores_what_a_killed_one_left(sysfs, tmp_path):
    cpu = sysfs({"policy0": ([0, 1], "schedutil"), "policy2": ([2, 3], "ondemand")})
    work = tmp_path / "w"
    work.mkdir()
    benchctl.Governor("performance", [0, 1, 2, 3], state_dir=work).apply()  # ... and then SIGKILL: no restore
    assert governor(cpu, "policy0") == governor(cpu, "policy2") == "performance"
    # the next bench reads the true old values, not the ones the dead agent left
    gov = benchctl.Governor("performance", [0, 1, 2, 3], state_dir=work)
    doc = gov.apply()
    assert doc["previous"] == ["ondemand", "schedutil"]
    gov.restore()
    assert (governor(cpu, "policy0"), governor(cpu, "policy2")) == ("schedutil", "ondemand")
    # and any agent command restores it too (agent.main calls recover under W/lock)
    benchctl.Governor("performance", [0, 1, 2, 3], state_dir=work).apply()
    assert benchctl.recover(work) == {"restored": ["cpu0", "cpu1", "cpu2", "cpu3"]}
    assert (governor(cpu, "policy0"), governor(cpu, "policy2")) == ("schedutil", "ondemand")
    assert not (work / benchctl.STATE_FILE).exists() and benchctl.recover(work) is None


def test_a_governor_changed_since_by_someone_else_is_left_alone(sysfs, tmp_path):
    cpu = sysfs({"policy0": ([0, 1], "ondemand")})
    work = tmp_path / "w"
    work.mkdir()
    benchctl.Governor("performance", [0, 1], state_dir=work).apply()
    (cpu / "cpufreq" / "policy0" / "scaling_governor").write_text("powersave\n")  # the operator, after the crash
    doc = benchctl.recover(work)
    assert doc is not None and doc["left_alone"] == ["cpu0", "cpu1"]
    assert governor(cpu, "policy0") == "powersave"


def test_a_state_from_another_boot_is_dropped(sysfs, tmp_path):
    cpu = sysfs({"policy0": ([0], "ondemand")})
    work = tmp_path / "w"
    work.mkdir()
    benchctl.Governor("performance", [0], state_dir=work).apply()
    state = json.loads((work / benchctl.STATE_FILE).read_text())
    (work / benchctl.STATE_FILE).write_text(json.dumps(dict(state, boot_id="another-boot")))
    assert benchctl.recover(work) == {"stale": "another boot"}
    assert governor(cpu, "policy0") == "performance" and not (work / benchctl.STATE_FILE).exists()


@pytest.mark.parametrize(
    "policies",
    [
        [{"cpu": "0/../../../etc", "cpus": [0], "governor": "ondemand"}],
        [{"cpu": 0, "cpus": [0], "governor": "ondemand\nperformance"}],
        [{"cpu": 0, "cpus": [0], "governor": "../x"}],
        [{"cpu": 0, "cpus": [0], "governor": "madeup"}],  # not in scaling_available_governors
        "policy0",
    ],
)
def test_a_planted_state_file_writes_nothing(sysfs, tmp_path, policies):
    cpu = sysfs({"policy0": ([0], "performance")})
    work = tmp_path / "w"
    work.mkdir()
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    (work / benchctl.STATE_FILE).write_text(json.dumps({"set": "performance", "boot_id": boot, "policies": policies}))
    benchctl.recover(work)
    assert governor(cpu, "policy0") == "performance"
