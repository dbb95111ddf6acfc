"""The cpu_starved rule and the cgroup / steal readers (edgeq.agent.boardstate), on fake counters and files."""

from __future__ import annotations

from edgeq.agent import boardstate as B
from edgeq.records.boardstate import FLAGS, BoardState


def _c(cpu_s, steal_s=0.0, ncpus=1, groups=None):
    return {"cpu_s": cpu_s, "steal_s": steal_s, "ncpus": ncpus, "cgroups": groups or {}}


def test_cpu_over_wall_under_085_is_starved_and_a_busy_window_is_not():
    assert B.cpu_window(_c(0.0), _c(0.98), 1.0)["starved"] is False
    w = B.cpu_window(_c(1.0), _c(1.8), 1.0)
    assert w["ratio"] == 0.8 and w["expected"] == 1.0 and w["starved"] is True
    assert "cpu_starved" in B.flags({}, {}, {}, 1, cpu=w) and "cpu_starved" not in B.flags({}, {}, {}, 1)


def test_an_offloading_delegate_turns_the_ratio_rule_off_but_not_throttling():
    assert B.cpu_window(_c(0.0), _c(0.1), 1.0, cpu_bound=False)["starved"] is False
    g0, g1 = {"/g": (1, 10, 0.0)}, {"/g": (1, 400, 0.3)}
    w = B.cpu_window(_c(0.0, groups=g0), _c(0.1, groups=g1), 1.0, cpu_bound=False)
    assert w["starved"] is True and w["nr_throttled"] == 390 and w["throttled_fraction"] == 0.3 and w["cgroup"] == "/g"


def test_throttling_and_steal_flag_a_multithreaded_run_whose_ratio_looks_fine():
    g0 = {"/a": (2, 0, 0.0), "/a/b": (2, 0, 0.0)}
    g1 = {"/a": (2, 50, 0.2), "/a/b": (2, 0, 0.0)}  # the quota sits on the parent: its counters are the ones
    w = B.cpu_window(_c(0.0, groups=g0), _c(1.6, groups=g1), 1.0)
    assert w["cgroup"] == "/a" and w["cgroup_version"] == 2 and w["starved"] is True
    w = B.cpu_window(_c(0.0, steal_s=1.0, ncpus=4), _c(3.5, steal_s=1.4, ncpus=4), 1.0)
    assert w["steal_fraction"] == 0.1 and w["starved"] is True
    assert B.cpu_window(_c(0.0, steal_s=1.0, ncpus=4), _c(3.5, steal_s=1.1, ncpus=4), 1.0)["starved"] is False


def test_cgroup_stat_reads_v1_and_v2(tmp_path):
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    v1.mkdir()
    v2.mkdir()
    (v1 / "cpu.stat").write_text("nr_periods 10\nnr_throttled 4\nthrottled_time 2000000000\n")
    (v2 / "cpu.stat").write_text("usage_usec 5\nnr_periods 10\nnr_throttled 3\nthrottled_usec 1500000\n")
    assert B._cgroup_stat(str(v1), 1) == (4, 2.0) and B._cgroup_stat(str(v2), 2) == (3, 1.5)
    assert B._cgroup_stat(str(tmp_path), 1) is None


def test_the_counters_read_this_machine_without_error():
    c = B.cpu_counters()
    assert c["cpu_s"] > 0 and c["ncpus"] >= 1 and isinstance(c["cgroups"], dict)


def test_the_flag_is_known_and_the_window_round_trips_in_the_record():
    assert "cpu_starved" in FLAGS
    doc = {"flags": ["cpu_starved"], "cpu": B.cpu_window(_c(0.0), _c(0.5), 1.0)}
    state = BoardState.model_validate(doc)
    assert state.cpu is not None and state.cpu.starved and state.to_json()["cpu"]["ratio"] == 0.5
    assert "cpu" not in BoardState().to_json()


def test_cpu_starved_is_stored_exported_reported_and_noted_by_compare(tmp_path):
    from edgeq import metrics
    from edgeq.report.html import render_html
    from edgeq.results import compare_runs, load_manifest, query, record_run
    from edgeq.testing.promfarm import synthetic_manifest

    def flagged(m, flags):
        for b in m["benchmarks"]:
            b["flags"] = flags
            b["sessions"] = [{"session": 1, "p50": 0.5, "p90": 0.6, "p99": 0.7, "mean": 0.5, "count": 19, "flags": flags}]
        return m

    one = {"devices": ("pi5",), "variants": ("int8",)}
    db = tmp_path / "history.db"
    record_run(load_manifest(flagged(synthetic_manifest("b", **one), [])), db)
    record_run(load_manifest(flagged(synthetic_manifest("c", started="2026-01-02T02:30:00+00:00", **one), ["cpu_starved"])), db)
    with query.open_for_reading(db) as h:
        run = query.load(h, query.resolve(h, "c"))
    (b,) = run.benchmarks
    assert b.flags == ("cpu_starved",) and b.session_state[0]["flags"] == ["cpu_starved"]
    text = metrics.exposition(metrics.registry_for(metrics.latest_families(db))).decode()
    (line,) = [x for x in text.splitlines() if x.startswith("edgeq_bench_flagged{") and 'flag="cpu_starved"' in x]
    assert line.endswith(" 1.0")
    assert "⚠ cpu_starved" in render_html(run, [run], None)
    cmp = compare_runs("b", "c", db_path=db)
    assert cmp.state_notes is not None and "candidate flagged cpu_starved" in cmp.state_notes[0]
