"""`edgeq metrics backfill`: runs recorded on different days come back from a real Prometheus at the times they
were measured (real SQLite history, real promtool, real Prometheus reading the blocks)."""

from __future__ import annotations

import json
import urllib.parse
from datetime import UTC, datetime, timedelta

import pytest

from edgeq.results import load_manifest, record_run
from edgeq.testing.common import assert_clean_error
from edgeq.testing.promfarm import ensure_installed, free_port, http_get, start_prometheus, stop, synthetic_manifest


def _range(port: int, expr: str, start: float, end: float, step: int) -> list:
    q = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    code, body = http_get(f"http://127.0.0.1:{port}/api/v1/query_range?{q}")
    doc = json.loads(body)
    assert code == 200 and doc["status"] == "success", doc
    return doc["data"]["result"]


def test_five_runs_on_five_days_come_back_at_their_times(tmp_path, edgeq):
    ensure_installed()
    db = tmp_path / "history.db"
    # whole hours, 1..9 days back (inside the test Prometheus' retention), not one a day apart: any shift shows
    top = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    days = [9, 7, 4, 2, 1]
    times = [top - timedelta(days=d, hours=d) for d in days]
    for i, t in enumerate(times):
        p50 = {("pi5", "int8"): (i + 1) * 1e-3}  # each day its own value: a point can't come from another day
        record_run(load_manifest(synthetic_manifest(f"r{i}", started=t.isoformat(), seed=i, devices=("pi5",), p50_s=p50)), db)
    data = tmp_path / "prom-data"
    om = tmp_path / "edgeq.om.txt"
    r = edgeq("metrics", "backfill", "--db", db, "--out", om, "--prometheus-data", data, "--json")
    assert r.code == 0, r.stderr
    doc = r.json()
    assert doc["runs"] == 5 and doc["first_ts"] == times[0].timestamp() and doc["last_ts"] == times[-1].timestamp()
    assert "edgeq_latency_seconds_count" not in om.read_text()  # the deprecated summary is never backfilled
    port = free_port()
    prom = start_prometheus(tmp_path, "global:\n  scrape_interval: 1m\n", port, tsdb=data, retention="30d")
    try:
        start, end = times[0].timestamp() - 3 * 3600, times[-1].timestamp() + 3 * 3600
        expr = 'edgeq_latency_p50_seconds{pipeline="synth", device="pi5", variant="int8"}'
        res = _range(port, expr, start, end, 3600)  # a step of 1 h: the 5 min lookback sees each sample once
        assert len(res) == 1, res
        points = [(float(t), float(v)) for t, v in res[0]["values"]]
        assert [t for t, _ in points] == [t.timestamp() for t in times]
        assert [v for _, v in points] == pytest.approx([1e-3, 2e-3, 3e-3, 4e-3, 5e-3], rel=0.05)
        ok = _range(port, 'edgeq_last_run_ok{pipeline="synth"}', start, end, 3600)
        assert len(ok[0]["values"]) == 5
    finally:
        stop(prom)


def test_backfill_bad_input(tmp_path, edgeq):
    r = edgeq("metrics", "backfill", "--db", tmp_path / "none.db")
    assert r.code == 2 and "--prometheus-data" in r.stderr, r.stderr
    r = edgeq("metrics", "backfill", "--db", tmp_path / "none.db", "--out", tmp_path / "x.om")
    assert_clean_error(r, 10, "no results history")
    r = edgeq("metrics", "backfill", "--since", "last tuesday", "--out", tmp_path / "x.om")
    assert r.code == 2 and "not an ISO date" in r.stderr, r.stderr
