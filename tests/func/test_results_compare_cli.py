"""Comparison over time: pure logic on synthetic runs (incl. the Mann-Whitney U test), then the real CLI."""

from __future__ import annotations

import pytest

from edgeq.results import load_manifest, record_run
from edgeq.testing.common import assert_clean_error
from edgeq.testing.promfarm import synthetic_manifest


@pytest.fixture
def db(tmp_path):
    db = tmp_path / "h.db"
    record_run(load_manifest(synthetic_manifest("20260101T023000Z-000001", started="2026-01-01T02:30:00+00:00", seed=1)), db)
    record_run(load_manifest(synthetic_manifest("20260102T023000Z-000002", started="2026-01-02T02:30:00+00:00", seed=2)), db)
    record_run(
        load_manifest(
            synthetic_manifest(
                "20260103T023000Z-000003", started="2026-01-03T02:30:00+00:00", seed=3, p50_s={("pi4", "int8"): 1e-3 * 1.3}
            )
        ),
        db,
    )
    record_run(
        load_manifest(synthetic_manifest("x1", pipeline="other", started="2026-01-01T03:00:00+00:00", devices=("jetson",))), db
    )
    return db


def test_compare_cli_defaults_and_exit_codes(db, edgeq):
    # default: the latest run (of --pipeline) vs the previous run of the same pipeline
    r = edgeq("compare", "--db", db, "--pipeline", "synth", "--json")
    assert r.code == 0, r.stderr
    doc = r.json()
    assert (doc["base"]["run_id"], doc["candidate"]["run_id"]) == ("20260102T023000Z-000002", "20260103T023000Z-000003")
    assert doc["regressed"] and any("int8 on pi4" in s for s in doc["regressions"])
    r = edgeq("compare", "--db", db, "--pipeline", "synth", "--fail-on-regression")
    assert_clean_error(r, 9, "regression(s) from run 20260102T023000Z-000002 to 20260103T023000Z-000003", "int8 on pi4")
    assert "REGRESSION" in r.stdout and "Mann-Whitney" in r.stdout
    # BASE only: against the latest run of BASE's pipeline; prefixes resolve
    r = edgeq("compare", "2026010", "--db", db, "--json")
    assert r.code == 10 and "matches several runs" in r.stderr
    r = edgeq("compare", "20260101T023000Z", "--db", db, "--json")
    assert r.code == 0 and r.json()["base"]["run_id"] == "20260101T023000Z-000001"
    assert r.json()["candidate"]["run_id"] == "20260103T023000Z-000003"
    # two explicit runs without a regression; --fail-on-regression passes
    r = edgeq("compare", "20260101T023000Z-000001", "20260102T023000Z-000002", "--db", db, "--fail-on-regression")
    assert r.code == 0 and "no regression" in r.stderr
    # a lenient threshold turns the regression off
    r = edgeq("compare", "--db", db, "--pipeline", "synth", "--threshold", "1.5", "--fail-on-regression", "--json")
    assert r.code == 0 and not r.json()["regressed"]


def test_compare_cli_errors(db, edgeq):
    r = edgeq("compare", "20260101T023000Z-000001", "x1", "--db", db)
    assert_clean_error(r, 10, "share no device/variant", "edgeq history --pipeline")
    # a first run has nothing to compare with: said, exit 0 (nothing regressed, nothing is broken)
    r = edgeq("compare", "--db", db, "--pipeline", "other")
    assert r.code == 0 and "nothing to compare" in r.stderr and "first recorded run of pipeline 'other'" in r.stderr
    r = edgeq("compare", "--db", db, "--pipeline", "other", "--json", "--fail-on-regression")
    assert r.code == 0 and r.json() == {"ok": True, "compared": False, "regressed": False, "reason": r.json()["reason"]}
    r = edgeq("compare", "--db", db, "--pipeline", "nope")
    assert_clean_error(r, 10, "no runs recorded", "for pipeline 'nope'")
    r = edgeq("compare", "--db", db, "--threshold", "0.5")
    assert r.code == 2
