"""Board state through the timed window: the pure flag logic, trend and trajectory, merging over sessions, the
controls' validation, and the governor's set/restore against real files (a sysfs attribute refuses the write)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edgeq.agent import benchctl, boardstate
from edgeq.agent.codes import AgentFailure
from edgeq.config.benchcontrols import BenchControlsSpec
from edgeq.fleet.boardstate import merged_fields, run_fields
from edgeq.fleet.sessions import merge_sessions
from edgeq.records.boardstate import union_flags
from edgeq.records.fleet import AgentBench, BenchRun

F = boardstate.flags


def test_a_quiet_board_has_no_flags():
    before = {"temp_c": 50.0, "freq_khz": 1800000, "loadavg": [1.1, 1.0, 1.0], "throttled": {"flags": 0}}
    during = {"samples": 3, "temp_max_c": 55.0, "freq_min_khz": 1800000, "freq_max_khz": 1800000}
    after = {"temp_c": 56.0, "freq_khz": 1800000, "loadavg": [1.2, 1.0, 1.0], "throttled": {"flags": 0}}
    assert F(before, during, after, own_threads=1) == []


def test_a_board_without_any_readings_has_no_flags():
    assert F({}, {"samples": 1}, {}, own_threads=4) == []


@pytest.mark.parametrize(
    ("before", "after", "want"),
    [
        ({"flags": 0x0}, {"flags": 0x4}, True),  # throttled now
        ({"flags": 0x50000}, {"flags": 0x50000}, False),  # throttled once since boot, not in this window
        ({"flags": 0x0}, {"flags": 0x40000}, True),  # the sticky bit appeared inside the window
        ({"flags": 0x2}, {"flags": 0x0}, True),  # capped before the window started
    ],
)
def test_throttled_from_vcgencmd_bits(before, after, want):
    assert ("throttled" in F({"throttled": before}, {}, {"throttled": after}, 1)) is want


def test_freq_drop_is_the_slowest_clock_under_95_percent_of_the_fastest():
    assert "freq_drop" in F({"freq_khz": 1500000}, {"freq_min_khz": 1000000, "freq_max_khz": 1500000}, {}, 1)
    assert "freq_drop" not in F({"freq_khz": 1500000}, {"freq_min_khz": 1440000, "freq_max_khz": 1500000}, {}, 1)
    # the clock was already low before the window: the fastest seen during it is the reference
    assert "freq_drop" in F({"freq_khz": 600000}, {"freq_min_khz": 600000, "freq_max_khz": 1800000}, {}, 1)


def test_foreign_load_discounts_the_agents_own_threads():
    assert "foreign_load" not in F({"loadavg": [4.2, 1, 1]}, {}, {"loadavg": [4.4, 1, 1]}, own_threads=4)
    assert "foreign_load" in F({"loadavg": [1.0, 1, 1]}, {}, {"loadavg": [2.6, 1, 1]}, own_threads=1)
    assert "foreign_load" not in F({"loadavg": [1.0, 1, 1]}, {}, {"loadavg": [2.6, 1, 1]}, own_threads=1, foreign_load=2.0)


def test_hot_uses_the_boards_threshold():
    assert "hot" in F({}, {"temp_max_c": 81.0}, {}, 1)
    assert "hot" not in F({}, {"temp_max_c": 81.0}, {}, 1, hot_temp_c=85.0)
    assert "hot" in F({}, {}, {"vc_temp_c": 70.5}, 1, hot_temp_c=70.0)


def test_trend_compares_the_last_tenth_with_the_first():
    samples = [1.0] * 50 + [2.0] * 50
    t = boardstate.trend(samples)
    assert t is not None and t["ratio"] == 2.0 and t["n"] == 10
    assert boardstate.trend([1.0] * 9) is None


def test_trajectory_is_the_median_per_window():
    samples = [1.0, 3.0, 2.0, 10.0, 20.0]
    assert boardstate.trajectory([0, 3], samples, 1.0) == [
        {"window": 0, "p50_s": 2.0, "count": 3},
        {"window": 1, "p50_s": 15.0, "count": 2},
    ]
    assert boardstate.trajectory([0], [], 1.0) == []


def test_union_flags_keeps_a_stable_order():
    assert union_flags([("hot",), ("freq_drop", "hot"), ()]) == ("freq_drop", "hot")
    assert union_flags([("zzz_new",), ("throttled",)]) == ("throttled", "zzz_new")


def _raw(p50_s: float, flags: list[str], trend: float, windows: list[float], temp: float) -> AgentBench:
    return AgentBench.from_json(
        {
            "latency_s": {"p50": p50_s, "p90": p50_s, "p99": p50_s, "mean": p50_s, "count": 20},
            "samples_s": [p50_s] * 20,
            "state": {"before": {"temp_c": temp}, "during": {"samples": 2}, "after": {}, "flags": flags},
            "trend": {"ratio": trend},
            "trajectory": [{"window": i, "p50_s": w, "count": 10} for i, w in enumerate(windows)],
        }
    )


def test_sessions_merge_flags_trend_and_trajectory():
    raws = [_raw(0.001, [], 1.0, [0.001, 0.002], 50.0), _raw(0.002, ["hot"], 1.2, [0.003, 0.004, 0.005], 82.0)]
    runs = [BenchRun(threads=1, ok=True, raw=r, **run_fields(r)) for r in raws]
    assert runs[1].flags == ("hot",) and runs[1].trajectory_ms[2].p50 == 5.0
    merged = merge_sessions(runs)
    assert merged.flags == ("hot",) and merged.temp_max_c == 82.0
    assert [s.flags for s in merged.sessions] == [(), ("hot",)]
    assert merged.trend == 1.1
    assert [w.p50 for w in merged.trajectory_ms] == [2.0, 3.0]  # per window, the median over sessions; the shortest wins
    assert merged_fields(runs, merged.sessions)["flags"] == ("hot",)
    assert BenchRun.from_json(merged.to_json()) == merged


def test_a_result_without_board_state_keeps_its_old_json():
    run = BenchRun(threads=1, ok=False, kind="x", error="e")
    assert "flags" not in run.to_json() and "trajectory_ms" not in run.to_json()


def test_controls_validate_and_merge_key_by_key():
    with pytest.raises(ValueError, match="either temp_c"):
        BenchControlsSpec.model_validate({"cooldown": {"temp_c": 60, "seconds": 3}})
    with pytest.raises(ValueError, match="either temp_c"):
        BenchControlsSpec.model_validate({"cooldown": {}})
    device = BenchControlsSpec.model_validate({"cpu_affinity": [2, 3], "cooldown": {"temp_c": 60}})
    cli = BenchControlsSpec.model_validate({"cooldown": {"seconds": 1}, "sustained": {"seconds": 2}})
    doc = json.loads(cli.over(device).agent_json() or "{}")
    assert doc == {"cooldown": {"seconds": 1.0, "max_wait_s": 120.0}, "sustained_s": 2.0, "window_s": 1.0, "cpu_affinity": [2, 3]}
    assert BenchControlsSpec().agent_json() is None


def test_agent_refuses_unknown_controls_and_missing_cpus():
    with pytest.raises(AgentFailure, match="takes an object with keys"):
        benchctl.parse('{"cooldwn": {}}')
    with pytest.raises(AgentFailure, match="does not offer"):
        benchctl.set_affinity([4096])


def test_governor_is_set_and_restored(tmp_path: Path, monkeypatch):
    (tmp_path / "cpu0").write_text("ondemand\n")
    monkeypatch.setattr(benchctl, "GOVERNOR_PATH", str(tmp_path / "cpu{}"))
    gov = benchctl.Governor("performance", [0])
    doc = gov.apply()
    assert doc["set"] is True and doc["previous"] == ["ondemand"]
    assert (tmp_path / "cpu0").read_text() == "performance"
    gov.restore()
    assert (tmp_path / "cpu0").read_text() == "ondemand" and doc["restored"] is True


def test_a_hard_stop_still_restores_the_governor(tmp_path: Path, monkeypatch):
    from edgeq.agent import control

    (tmp_path / "cpu0").write_text("schedutil\n")
    monkeypatch.setattr(benchctl, "GOVERNOR_PATH", str(tmp_path / "cpu{}"))
    monkeypatch.setattr(control, "_cleanups", [])
    benchctl.Governor("performance", [0]).apply()
    assert (tmp_path / "cpu0").read_text() == "performance"
    control._run_cleanups()  # what the hard-exit path runs before os._exit (finally blocks do not run there)
    assert (tmp_path / "cpu0").read_text() == "schedutil"


def test_governor_refused_by_the_kernel_is_a_warning_not_a_failure(tmp_path: Path, monkeypatch):
    ro = Path("/sys/devices/system/cpu/cpu0/topology/core_id")  # sysfs refuses writes here, even to root
    if not ro.exists():
        pytest.fail("this test needs /sys/devices/system/cpu/cpu0/topology/core_id (a read-only sysfs attribute)")
    os.symlink(ro, tmp_path / "cpu0")
    monkeypatch.setattr(benchctl, "GOVERNOR_PATH", str(tmp_path / "cpu{}"))
    doc = benchctl.Governor("performance", [0]).apply()
    assert doc["set"] is False and "needs root on the board" in doc["error"] and "left alone" in doc["error"]
    doc = benchctl.Governor("performance", [4096]).apply()
    assert doc["error"].startswith("no cpufreq on this board")


def test_sampler_reads_real_files_and_reports_extremes(tmp_path: Path, monkeypatch):
    zones = [tmp_path / "z0", tmp_path / "z1"]
    zones[0].write_text("45000\n")
    zones[1].write_text("61500\n")
    monkeypatch.setattr(boardstate, "thermal_paths", lambda: [str(z) for z in zones])
    sampler = boardstate.Sampler(0.01, cpus=[])
    sampler.start()
    doc = sampler.stop()
    assert doc["temp_max_c"] == 61.5 and doc["samples"] >= 1 and "freq_min_khz" not in doc


def test_the_host_tells_the_agent_the_most_threads_it_interleaves():
    from edgeq.fleet import load_inventory
    from edgeq.fleet.benchmarks import _bench_argv

    (d,) = load_inventory(None).devices
    argv = _bench_argv(d, "m", "0" * 64, 1, 10, 1, 0.1, BenchControlsSpec.model_validate({"governor": "performance"}), 4)
    assert json.loads(argv[argv.index("--controls") + 1]) == {"governor": "performance", "own_load": 4}
    assert "--controls" not in _bench_argv(d, "m", "0" * 64, 4, 10, 1, 0.1, None, 4)
    # with own_load 4, a load average of 4.3 after a 4-thread session is no foreign load for the 1-thread one
    assert "foreign_load" not in F({"loadavg": [4.3, 1, 1]}, {}, {}, own_threads=4)


def test_pipeline_benchmark_controls_are_checked_with_file_line_and_key(tmp_path: Path):
    from edgeq.config import load_pipeline
    from edgeq.errors import ConfigError

    head = "name: t\nmodel: {builtin: mlp}\nbenchmark:\n  targets: [local]\n"
    p = tmp_path / "pipe.yaml"
    p.write_text(head + "  governor: powersave\n")
    with pytest.raises(ConfigError) as e:
        load_pipeline(p)
    assert f"{p}:5: benchmark.governor: Input should be 'performance'" in e.value.message, e.value.message
    p.write_text(head + "  cooldown: {temp_c: 60}\n  sustained: {seconds: 2}\n  cpu_affinity: [0]\n")
    spec, _ = load_pipeline(p)
    assert spec.benchmark is not None
    controls = spec.benchmark.controls()
    assert json.loads(controls.agent_json() or "{}") == {
        "cooldown": {"temp_c": 60.0, "max_wait_s": 120.0},
        "sustained_s": 2.0,
        "window_s": 1.0,
        "cpu_affinity": [0],
    }


def test_cooldown_waits_for_the_hottest_zone_and_a_timeout_is_reported(tmp_path: Path, monkeypatch):
    import threading

    zone = tmp_path / "temp"
    zone.write_text("70000\n")
    monkeypatch.setattr(boardstate, "thermal_paths", lambda: [str(zone)])
    monkeypatch.setattr(benchctl, "COOLDOWN_POLL_S", 0.02)
    doc = benchctl.cooldown({"temp_c": 60, "max_wait_s": 0.1})
    assert doc["timed_out"] is True and doc["temp_c"] == 70.0 and doc["waited_s"] >= 0.1
    timer = threading.Timer(0.1, lambda: zone.write_text("55000\n"))  # the board cools down while we wait
    timer.start()
    doc = benchctl.cooldown({"temp_c": 60, "max_wait_s": 5})
    timer.join()
    assert "timed_out" not in doc and doc["temp_c"] == 55.0 and 0.1 <= doc["waited_s"] < 5


def test_a_cooldown_that_timed_out_flags_the_session():
    import argparse

    from edgeq.agent import measure

    args = argparse.Namespace(threads=1)
    extra = {"cooldown": {"mode": "temp", "waited_s": 120.0, "timed_out": True}, "cpu_affinity": None, "governor": None}
    doc = measure._state_doc({}, {"samples": 1}, {}, args, {}, extra)
    assert doc["flags"] == ["cooldown_timeout"] and "cpu_affinity" not in doc and doc["cooldown"]["timed_out"] is True
