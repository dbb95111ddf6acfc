"""benchmark.numeric_check in the history: config at the door, the numeric_checks table (schema 4, older
databases upgraded), `edgeq history`, the report and the Prometheus families. Real SQLite; the checks are
records as edgeq.fleet.numeric_check returns them (the board part is tests/func/test_pipeline_numeric.py)."""

from __future__ import annotations

import sqlite3

import pytest

from edgeq import metrics
from edgeq.cli import tables
from edgeq.config import load_pipeline
from edgeq.errors import ConfigError
from edgeq.records.numeric import NumericCheck, OpError
from edgeq.report import html as report
from edgeq.results import load_manifest, open_for_reading, query, record_run
from edgeq.testing.promfarm import synthetic_manifest

TOL = {"tolerance_lsb": 1.0, "tolerance_rel": 1e-3}


def _op(i: int, err: float, exceeds: bool) -> OpError:
    return OpError(op_index=i, op="FULLY_CONNECTED", tensor=10 + i, name=f"dense_{i}", error=err, unit="lsb", exceeds=exceeds)


def _checks() -> list[dict]:
    ops = (_op(0, 0.0, False), _op(1, 7.0, True), _op(2, 12.0, True))
    drifts = NumericCheck(
        device="pi4", variant="int8", ok=False, rows=4, ops_compared=3, first_divergent=ops[1], worst=ops[2], ops=ops, **TOL
    )
    same = NumericCheck(device="pi5", variant="int8", ok=True, rows=4, ops_compared=3, worst=ops[0], ops=(ops[0],) * 3, **TOL)
    gone = NumericCheck(device="pi3", variant="int8", ok=False, kind="unreachable", error="pi3: connection refused", **TOL)
    return [c.to_json() for c in (drifts, same, gone)]


def _with_numeric(run_id: str) -> dict:
    m = synthetic_manifest(run_id)
    m["stages"]["benchmark_numeric"] = _checks()
    return m


def test_numeric_checks_are_stored_listed_reported_and_exported(tmp_path):
    db = tmp_path / "h.db"
    record_run(load_manifest(synthetic_manifest("before")), db)
    record_run(load_manifest(_with_numeric("after")), db)
    with open_for_reading(db) as h:
        old = query.load(h, query.resolve(h, "before"))
        run = query.load(h, query.resolve(h, "after"))
    assert old.numeric is None and "numeric" not in old.to_json()  # runs without the check: documents unchanged
    by = {n.device: n for n in run.numeric}
    assert by["pi4"].summary == "op #1 FULLY_CONNECTED (dense_1): 7 lsb" and by["pi4"].worst_error == 12.0
    assert by["pi5"].summary == "matches" and by["pi3"].summary == "check failed: pi3: connection refused"
    _, cols, rows = tables.history_table([run, old], str(db))
    assert cols[-1] == "numeric check (device/variant)" and "pi4/int8 op #1 FULLY_CONNECTED" in rows[0][-1]
    assert rows[1][-1] == "" and "pi5/int8 matches" in rows[0][-1]
    html = report.render_html(run, [], None)
    assert "Numeric check on the boards" in html and "op #1 FULLY_CONNECTED (dense_1)" in html
    fams = {f.name: f for f in metrics.run_families(run, None)}
    ok = {s.labels["device"]: s.value for s in fams["edgeq_numeric_check_ok"].samples}
    assert ok == {"pi4": 0, "pi5": 1}  # pi3's check did not run: no verdict about its numbers
    err = {(s.labels["device"], s.labels["unit"]): s.value for s in fams["edgeq_numeric_max_error"].samples}
    assert err == {("pi4", "lsb"): 12.0, ("pi5", "lsb"): 0.0}
    assert not any("run" in s.labels for f in fams.values() for s in f.samples)
    assert "edgeq_numeric_check_ok" not in {f.name for f in metrics.run_families(old, None)}


def test_a_version_3_database_gains_the_numeric_table_and_keeps_its_runs(tmp_path):
    db = tmp_path / "h.db"
    record_run(load_manifest(synthetic_manifest("old")), db)
    c = sqlite3.connect(str(db))
    c.execute("DROP TABLE numeric_checks")  # what a version-3 database looks like
    c.execute("UPDATE schema_version SET version = 3")
    c.commit()
    c.close()
    record_run(load_manifest(_with_numeric("new")), db)
    with open_for_reading(db) as h:
        assert h.conn.execute("SELECT version FROM schema_version").fetchall() == [(8,)]
        assert query.load(h, query.resolve(h, "old")).benchmarks
        assert len(query.load(h, query.resolve(h, "new")).numeric) == 3


@pytest.mark.parametrize(
    ("body", "line", "key"),
    [
        ("  numeric_check: maybe\n", 10, "benchmark.numeric_check"),
        ("  numeric_check: true\n  numeric_rows: 0\n", 11, "benchmark.numeric_rows"),
    ],
)
def test_numeric_check_keys_are_validated_with_file_and_line(tmp_path, body, line, key):
    p = tmp_path / "pipe.yaml"
    p.write_text(
        "name: t\nmodel: {builtin: mlp}\nquantize:\n  variants:\n    - type: fp32\n    - type: int8\n"
        "deploy:\n  targets: [local]\nbenchmark:\n" + body
    )
    with pytest.raises(ConfigError) as e:
        load_pipeline(p)
    assert f"{p}:{line}: {key}: " in e.value.message, e.value.message
