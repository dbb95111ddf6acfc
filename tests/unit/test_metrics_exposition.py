"""Prometheus export against real servers: promtool, a real Pushgateway, a real Prometheus scraping the exporter."""

from __future__ import annotations

import pytest

from edgeq import metrics
from edgeq.results import load_manifest, record_run
from edgeq.testing.promfarm import http_get, synthetic_manifest


def _parse(text: str) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: f for f in text_string_to_metric_families(text)}


def test_failed_board_is_down_and_last_success_survives_a_failed_run(tmp_path):
    db = tmp_path / "h.db"
    record_run(load_manifest(synthetic_manifest("r1", started="2026-01-01T02:30:00+00:00")), db)
    record_run(
        load_manifest(
            synthetic_manifest("r2", started="2026-01-02T02:30:00+00:00", failed_devices=("pi4",), status="fleet_failed")
        ),
        db,
    )
    parsed = _parse(metrics.exposition(metrics.run_registry("latest", db)[0]).decode())
    up = {s.labels["device"]: s.value for s in parsed["edgeq_device_up"].samples}
    assert up == {"pi5": 1.0, "pi4": 0.0}
    assert parsed["edgeq_last_run_ok"].samples[0].value == 0.0
    assert parsed["edgeq_last_success_timestamp_seconds"].samples[0].value == pytest.approx(1767234600.0)  # r1 (01-01 02:30)
    assert {s.labels["device"] for s in parsed["edgeq_latency_seconds"].samples} == {"pi5"}


def test_exporter_survives_a_corrupt_history(tmp_path):
    db = tmp_path / "h.db"
    db.write_bytes(b"garbage" * 1000)
    server, _ = metrics.serve("127.0.0.1", 0, db_path=db)
    try:
        code, body = http_get(f"http://127.0.0.1:{server.server_address[1]}/metrics")
        assert code == 200
        parsed = _parse(body.decode())
        assert parsed["edgeq_history_up"].samples[0].value == 0.0
    finally:
        server.shutdown()
        server.server_close()


def test_latency_is_exported_as_gauges_and_nothing_shipped_reads_the_deprecated_summary(tmp_path):
    from edgeq.testing.common import REPO

    db = tmp_path / "h.db"
    record_run(load_manifest(synthetic_manifest("r1", started="2026-01-01T02:30:00+00:00", devices=("pi5",))), db)
    text = metrics.exposition(metrics.run_registry("latest", db)[0]).decode()
    parsed = _parse(text)
    gauges = [f"edgeq_latency_{x}_seconds" for x in ("p50", "p90", "p99", "mean")] + ["edgeq_latency_timed_inferences"]
    for name in gauges:
        assert f"# TYPE {name} gauge" in text, name
        assert all("quantile" not in s.labels for s in parsed[name].samples)  # a summary-only label
    q = {(n, s.labels["variant"]): s.value for n in gauges[:3] for s in parsed[n].samples}
    assert len(q) == 6 and q[(gauges[0], "int8")] < q[(gauges[1], "int8")] < q[(gauges[2], "int8")]
    old = {s.labels["variant"]: s.value for s in parsed["edgeq_latency_seconds"].samples if s.labels.get("quantile") == "0.5"}
    assert old == {v: q[(gauges[0], v)] for v in ("fp32", "int8")}  # the deprecated summary: same figures
    assert {s.value for s in parsed["edgeq_latency_timed_inferences"].samples} == {400.0}
    # the dashboards and rules read the gauges: the summary stays only for queries users wrote themselves
    for f in [*(REPO / "dashboards").rglob("*.json"), *(REPO / "dashboards").rglob("*.yml")]:
        assert "edgeq_latency_seconds" not in f.read_text(), f
