"""Per-op profiles on the host: K agent `profile` documents -> one OpProfile (median of session medians, median_ci,
coverage, overhead, kernel fingerprint), two profiles -> flagged ops and kernel changes, and the history's schema 8."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from edgeq.records.ops import OpProfile
from edgeq.results import query
from edgeq.results.ops import aggregate, diff, node_id
from edgeq.results.opstore import compare_ops, load_profiles, record_profiles
from edgeq.results.record import load_manifest, record_run
from edgeq.results.stats import median_ci
from edgeq.testing.promfarm import synthetic_manifest

DATA = Path(__file__).parent.parent / "data"


def _row(node: int, op: str, kernel: str, p50: float, *, index: int | None = None, section: int = 0) -> dict:
    return {
        "source": "xnnpack",
        "section": section,
        "subgraph": None,
        "node": node,
        "op": op,
        "kernel": kernel,
        "maps_to": None if index is None else {"index": index, "op": "CONV_2D"},
        "mapping": "guess" if index is not None else "none",
        "p50_us": p50,
        "p90_us": p50 * 1.1,
        "count": 30,
    }


def _doc(conv1: float, conv2: float, *, kernel2: str = "Convolution (NHWC, QC8) IGEMM", invoke: float | None = None) -> dict:
    ops = [
        _row(0, "Convolution", "Convolution (NHWC, QC8) IGEMM", conv1, index=0),
        _row(1, "Convolution", kernel2, conv2, index=1),
        _row(2, "Static Reshape", "Static Reshape (NC)", 0.0),
    ]
    inv = invoke if invoke is not None else conv1 + conv2 + 10.0
    return {
        "ok": True,
        "kind": "ok",
        "runtime": {"name": "litert-compiled", "version": "2.3.0"},
        "ops": ops,
        "invoke_us": {"p50": inv, "p90": inv * 1.1, "count": 30},
        "unprofiled_invoke_us": {"p50": inv - 5.0, "p90": inv, "count": 30},
        "overhead_us": 20.0,
    }


def _profile(conv1s: list[float], conv2s: list[float], **kw) -> OpProfile:
    docs = [(i + 1, _doc(a, b, **kw)) for i, (a, b) in enumerate(zip(conv1s, conv2s, strict=True))]
    return aggregate("pi", "int8", 1, docs, interpreter_p50_us=90.0)


def test_node_ids_name_the_section_and_position_or_the_model_op():
    assert node_id({"source": "xnnpack", "section": 1, "node": 4}) == "s1/4"
    assert node_id({"source": "tflite", "subgraph": 0, "node": 12}) == "op12"
    assert node_id({"source": "tflite", "subgraph": 2, "node": 3}) == "op2:3"


def test_a_row_is_the_median_of_its_session_medians_with_the_session_interval():
    p = _profile([10.0, 30.0, 12.0], [50.0, 52.0, 51.0])
    assert p.kind == "ok" and p.sessions == 3 and p.runtime == "litert-compiled 2.3.0"
    c1 = next(o for o in p.ops if o.node == "s0/0")
    assert c1.p50_us == 12.0 and [s.p50_us for s in c1.sessions] == [10.0, 30.0, 12.0]
    lo, hi = median_ci([10.0, 30.0, 12.0])
    assert (c1.ci_low_us, c1.ci_high_us) == (round(lo, 2), round(hi, 2))
    assert c1.maps_to is not None and c1.maps_to.index == 0 and c1.mapping == "guess"
    assert p.invoke is not None and p.invoke.p50_us == 73.0  # median of 70, 92, 73
    assert p.coverage == round((12.0 + 51.0 + 0.0) / 73.0, 4)
    assert p.unprofiled is not None and p.unprofiled.p50_us == 68.0 and p.overhead_us == 20.0
    assert p.interpreter_p50_us == 90.0 and len(p.fingerprint or "") == 16 and p.kernels["s0/2"] == "Static Reshape (NC)"


def test_unsupported_and_failed_sessions():
    un = {"ok": True, "kind": "unsupported", "reason": "tflite-runtime 2.14.0 has no profiler hook", "fix": "install it"}
    p = aggregate("pi", "int8", 1, [(1, un)])
    assert p.kind == "unsupported" and p.reason.startswith("tflite-runtime") and p.ops == () and p.coverage is None
    f = aggregate("pi", "int8", 1, [], failures=[("deadline", "pi: too slow", "raise it")])
    assert f.kind == "failed" and f.error_kind == "deadline" and f.hint == "raise it"
    part = aggregate("pi", "int8", 1, [(2, _doc(10, 20))], failures=[("crashed", "pi: boom", None)])
    assert part.kind == "ok" and part.failed_sessions == 1 and part.ops[0].sessions[0].session == 2


def test_a_slower_op_is_flagged_with_its_share_and_a_kernel_change_is_listed():
    base = _profile([10.0, 11.0, 10.0], [50.0, 51.0, 50.0])
    cand = _profile([10.0, 10.0, 11.0], [100.0, 102.0, 99.0], kernel2="Convolution (NHWC, F32) IGEMM")
    d = diff(base, cand, 1.10)
    by = {o.node: o for o in d.ops}
    assert by["s0/1"].flagged and by["s0/1"].ratio == 2.0 and by["s0/1"].ci_low > 1.0
    assert by["s0/1"].share == round(50.0 / (cand.invoke.p50_us - base.invoke.p50_us), 4)
    assert not by["s0/0"].flagged and d.flagged == ("s0/1 Convolution (1 CONV_2D)",)
    (k,) = d.kernel_changes
    assert (k.node, k.base_kernel, k.cand_kernel) == ("s0/1", "Convolution (NHWC, QC8) IGEMM", "Convolution (NHWC, F32) IGEMM")
    assert d.fingerprint_changed


def test_noise_inside_the_threshold_or_an_interval_over_1_flags_nothing():
    base = _profile([10.0, 11.0, 10.0], [50.0, 51.0, 50.0])
    assert not any(o.flagged for o in diff(base, _profile([10.0, 11.0, 10.0], [52.0, 53.0, 52.0]), 1.10).ops)  # +4 %
    wild = _profile([10.0, 11.0, 10.0], [40.0, 120.0, 55.0])  # ratio 1.1 but one session in three says otherwise
    assert not next(o for o in diff(base, wild, 1.05).ops if o.node == "s0/1").flagged


def test_ops_only_in_one_run_are_named():
    base = _profile([10.0, 11.0], [50.0, 51.0])
    cand = base.replace(ops=tuple(o.replace(op="Fully Connected") if o.node == "s0/1" else o for o in base.ops))
    d = diff(base, cand, 1.1)
    assert d.only_base == ("s0/1 Convolution",) and d.only_cand == ("s0/1 Fully Connected",)


@pytest.fixture
def two_runs(tmp_path):
    db = tmp_path / "history.db"
    for run_id, day in (("b", "01"), ("c", "02")):
        record_run(load_manifest(synthetic_manifest(run_id, started=f"2026-01-{day}T02:30:00+00:00")), db)
    return db


def test_profiles_are_stored_read_back_and_compared(two_runs):
    base = _profile([10.0, 11.0, 10.0], [50.0, 51.0, 50.0])
    cand = _profile([10.0, 10.0, 11.0], [100.0, 102.0, 99.0])
    record_profiles("b", [base], two_runs)
    record_profiles("c", [cand, base.replace(threads=4)], two_runs)
    with query.open_for_reading(two_runs) as h:
        assert load_profiles(h, "b") == [base]
        rows = h.execute("SELECT node, session_p50_us FROM op_profile_ops ORDER BY profile_id, node").fetchall()[:2]
        assert rows == [("s0/0", "[10.0, 11.0, 10.0]"), ("s0/1", "[50.0, 51.0, 50.0]")]
    c = compare_ops("b", "c", db_path=two_runs)
    assert c.regressed and [d.flagged for d in c.diffs] == [("s0/1 Convolution (1 CONV_2D)",)]
    assert c.unmatched == ("pi/int8/t4 (candidate only)",)


def test_a_version_7_history_gains_the_op_tables(tmp_path):
    db = tmp_path / "history.db"
    record_run(load_manifest(synthetic_manifest("old")), db)
    c = sqlite3.connect(str(db))
    for t in ("op_profile_ops", "op_profiles", "kernel_fingerprints"):  # what a version-7 database looks like
        c.execute(f"DROP TABLE {t}")
    c.execute("UPDATE schema_version SET version = 7")
    c.commit()
    c.close()
    record_profiles("old", [_profile([10.0, 11.0], [50.0, 51.0])], db)
    with query.open_for_reading(db) as h:
        assert h.conn.execute("SELECT version FROM schema_version").fetchall() == [(8,)]
        assert [p.kind for p in load_profiles(h, "old")] == ["ok"]


def test_the_golden_history_opens_and_gains_the_op_tables(tmp_path):
    db = tmp_path / "history.db"
    shutil.copyfile(DATA / "history-main.db", db)
    with query.open_for_reading(db) as h:
        assert h.conn.execute("SELECT count(*) FROM op_profiles").fetchone() == (0,)
        assert h.conn.execute("SELECT version FROM schema_version").fetchall() == [(8,)]
