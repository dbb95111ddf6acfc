"""The dashboards' point links: `edgeq metrics serve` answers /report?pipeline=P&time=T with the report of the run that
point shows (the last pipeline run finished by then), over real HTTP from a real SQLite history."""

from __future__ import annotations

from datetime import datetime

import pytest

from edgeq import metrics
from edgeq.metrics.reportlink import parse_time
from edgeq.results import load_manifest, record_run
from edgeq.testing.promfarm import http_get, synthetic_manifest


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


@pytest.fixture
def served(tmp_path):
    db = tmp_path / "h.db"
    for rid, day in (("20260101T023000Z-aaaaaa", "01"), ("20260102T023000Z-bbbbbb", "02")):
        record_run(load_manifest(synthetic_manifest(rid, started=f"2026-01-{day}T02:30:00+00:00", devices=("pi5",))), db)
    server, _ = metrics.serve("127.0.0.1", 0, db_path=db)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_point_opens_the_report_of_the_run_it_shows(served):
    day2_noon_ms = int(_ts("2026-01-02T12:00:00+00:00") * 1000)  # Grafana's ${__value.time}: milliseconds
    code, body = http_get(f"{served}/report?pipeline=synth&time={day2_noon_ms}")
    assert code == 200 and b"<!doctype html>" in body
    assert b"run 20260102T023000Z-bbbbbb" in body and b"Compared with the previous run 20260101T023000Z-aaaaaa" in body
    day1_evening_s = int(_ts("2026-01-01T20:00:00+00:00"))  # seconds work too
    code, body = http_get(f"{served}/report?pipeline=synth&time={day1_evening_s}")
    assert code == 200 and b"run 20260101T023000Z-aaaaaa" in body
    code, body = http_get(f"{served}/metrics")  # the exporter itself is unchanged
    assert code == 200 and b"edgeq_latency_p50_seconds" in body


def test_no_run_yet_unknown_pipeline_and_bad_time_are_clear(served):
    before = int(_ts("2025-12-31T00:00:00+00:00"))
    code, body = http_get(f"{served}/report?pipeline=synth&time={before}")
    assert code == 404 and b"no run of pipeline 'synth'" in body
    code, body = http_get(f"{served}/report?pipeline=other&time={before * 1000}")
    assert code == 404
    code, body = http_get(f"{served}/report?pipeline=synth&time=yesterday")
    assert code == 400 and b"not seconds or milliseconds" in body
    code, body = http_get(f"{served}/report")
    assert code == 400 and b"usage: /report?pipeline=" in body


def test_time_unit_rule():
    assert parse_time("1767234600") == 1767234600.0
    assert parse_time("1767234600000") == 1767234600.0
    for bad in ("-1", "nan", "inf", "x"):
        with pytest.raises(ValueError):
            parse_time(bad)
