"""Prometheus export against real servers: promtool, a real Pushgateway, a real Prometheus scraping the exporter."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeq import metrics
from edgeq.results import load_manifest, open_for_reading, query, record_run
from edgeq.testing.common import assert_clean_error
from edgeq.testing.promfarm import free_port, http_get, synthetic_manifest

BOUNDED = {
    "pipeline",
    "device",
    "variant",
    "threads",
    "arch",
    "quantile",
    "stage",
    "type",
    "board_model",
    "cpu_model",
    "runtime",
    "runtime_version",
}


@pytest.fixture
def db(tmp_path) -> Path:
    db = tmp_path / "h.db"
    record_run(load_manifest(synthetic_manifest("20260101T023000Z-000001", started="2026-01-01T02:30:00+00:00")), db)
    record_run(load_manifest(synthetic_manifest("20260102T023000Z-000002", started="2026-01-02T02:30:00+00:00", seed=2)), db)
    record_run(
        load_manifest(
            synthetic_manifest(
                "o1",
                pipeline="other",
                devices=("jetson",),
                variants=("fp32",),
                status="gate_failed",
                started="2026-01-02T03:00:00+00:00",
            )
        ),
        db,
    )
    return db


def _parse(text: str) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: f for f in text_string_to_metric_families(text)}


def _promtool_check(text: str) -> None:
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_exposition_names_units_and_bounded_labels(db):
    with open_for_reading(db) as h:
        run = query.load(h, query.resolve(h, "latest", "synth"))
        fams = metrics.run_families(run, query.last_success_ts(h, "synth"))
    text = metrics.exposition(metrics.registry_for(fams)).decode()
    _promtool_check(text)  # naming and unit conventions, as Prometheus' own linter sees them
    parsed = _parse(text)
    for name, f in parsed.items():
        assert name.startswith("edgeq_")
        assert name.endswith(
            ("_seconds", "_bytes", "_joules", "_watts", "_ratio", "_celsius", "_up", "_info", "_ok", "_passed", "_cached")
            + ("_inferences",)  # a count of timed inferences (a gauge of the latest run, not a counter: no _total)
        ), name
        for s in f.samples:
            assert set(s.labels) <= BOUNDED, (name, s.labels)
            assert "20260102" not in str(s.labels)  # never a run id or a timestamp
    lat = {
        (s.labels["device"], s.labels["variant"], s.labels.get("quantile")): s.value
        for s in parsed["edgeq_latency_seconds"].samples
        if s.name == "edgeq_latency_seconds"
    }
    assert {q for (_, _, q) in lat} == {"0.5", "0.9", "0.99"}
    assert lat[("pi5", "int8", "0.5")] == pytest.approx(0.5e-3, rel=0.05)  # seconds, not ms
    p50 = {(s.labels["device"], s.labels["variant"]): s.value for s in parsed["edgeq_latency_p50_seconds"].samples}
    assert p50[("pi5", "int8")] == lat[("pi5", "int8", "0.5")]  # the gauge and the deprecated summary agree
    names = set(parsed)
    assert {
        "edgeq_init_seconds",
        "edgeq_peak_memory_bytes",
        "edgeq_power_watts",
        "edgeq_energy_per_inference_joules",
        "edgeq_model_size_bytes",
        "edgeq_accuracy_ratio",
        "edgeq_accuracy_drop_ratio",
        "edgeq_stage_duration_seconds",
        "edgeq_last_success_timestamp_seconds",
        "edgeq_device_up",
    } <= names
    stage = {(s.labels["stage"], s.labels["variant"]): s.value for s in parsed["edgeq_stage_duration_seconds"].samples}
    assert stage[("train", "")] == 40.0 and stage[("validate", "int8")] == 0.0  # cached: no time spent in this run


def test_textfile_for_node_exporter(db, tmp_path, edgeq):
    out = tmp_path / "textfile" / "edgeq.prom"
    out.parent.mkdir()
    r = edgeq("metrics", "textfile", out, "--db", db, "--json")
    assert r.code == 0, r.stderr
    text = out.read_text()
    _promtool_check(text)
    parsed = _parse(text)
    assert {s.labels["pipeline"] for s in parsed["edgeq_last_run_timestamp_seconds"].samples} == {"synth", "other"}
    assert len({s.name for f in parsed.values() for s in f.samples}) > 10
    assert sorted(p.name for p in out.parent.iterdir()) == ["edgeq.prom"]  # temp file renamed, none left behind
    r = edgeq("metrics", "textfile", tmp_path / "no" / "such" / "dir" / "x.prom", "--db", tmp_path / "missing.db")
    assert_clean_error(r, 10, "no results history")


def _pg_series(url: str) -> dict:
    code, body = http_get(f"{url}/metrics")
    assert code == 200
    return _parse(body.decode())


def test_push_replaces_the_pipeline_group(tmp_path, edgeq, pushgateway):  # noqa: F811
    url, _ = pushgateway
    db = tmp_path / "h.db"
    record_run(load_manifest(synthetic_manifest("r1", devices=("pi5", "pi4"), started="2026-01-01T02:30:00+00:00")), db)
    record_run(
        load_manifest(synthetic_manifest("o1", pipeline="other", devices=("jetson",), started="2026-01-01T03:30:00+00:00")), db
    )
    assert edgeq("metrics", "push", "r1", "--gateway", url, "--db", db).code == 0
    r = edgeq("metrics", "push", "o1", "--gateway", url, "--db", db, "--json")
    assert r.code == 0 and r.json()["grouping_key"] == {"job": "edgeq", "pipeline": "other"}
    up = {(s.labels["pipeline"], s.labels["device"]) for s in _pg_series(url)["edgeq_device_up"].samples}
    assert up == {("synth", "pi5"), ("synth", "pi4"), ("other", "jetson")}
    # pi4 left the fleet: the next nightly's push replaces the whole group, so pi4's series disappear
    record_run(load_manifest(synthetic_manifest("r2", devices=("pi5",), started="2026-01-02T02:30:00+00:00")), db)
    r = edgeq("metrics", "push", "latest", "--gateway", url, "--db", db)
    assert r.code == 0, r.stderr
    parsed = _pg_series(url)
    up = {(s.labels["pipeline"], s.labels["device"]) for s in parsed["edgeq_device_up"].samples}
    assert up == {("synth", "pi5"), ("other", "jetson")}  # and the other pipeline's group is untouched
    assert not [s for s in parsed["edgeq_latency_seconds"].samples if s.labels.get("device") == "pi4"]
    assert all(s.labels["job"] == "edgeq" for s in parsed["edgeq_device_up"].samples)


def test_push_rejected_by_the_gateway_4xx(db, edgeq, pushgateway):  # noqa: F811
    url, _ = pushgateway
    # another job already pushed edgeq_device_up as a counter: the gateway refuses an inconsistent push (400)
    body = b"# TYPE edgeq_device_up counter\nedgeq_device_up 3\n"
    import urllib.request

    req = urllib.request.Request(f"{url}/metrics/job/legacy", data=body, method="PUT")
    with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - loopback test server
        assert resp.status in (200, 202)
    r = edgeq("metrics", "push", "latest", "--gateway", url, "--db", db)
    assert_clean_error(
        r,
        11,
        f"Pushgateway {url}/metrics/job/edgeq/pipeline/",
        "answered HTTP 400",
        "inconsistent with existing metrics",
        "edgeq metrics push RUN_ID",
    )


def test_push_server_error_5xx_and_wrong_server(db, edgeq, promfarm):  # noqa: F811
    # A real server answering 5xx: Prometheus' admin API refuses with a 500 when admin APIs are disabled.
    gw = f"{promfarm.prom_url}/api/v1/admin/tsdb/snapshot?x="
    r = edgeq("metrics", "push", "latest", "--gateway", gw, "--db", db)
    assert_clean_error(r, 11, "answered HTTP 5", promfarm.prom_url, "results are stored in the history")
    # a URL that is not a Pushgateway at all (Prometheus itself): 404
    r = edgeq("metrics", "push", "latest", "--gateway", promfarm.prom_url, "--db", db)
    assert_clean_error(r, 11, "answered HTTP 404")
    r = edgeq("metrics", "push", "latest", "--gateway", "ftp://example/x", "--db", db)
    assert_clean_error(r, 11, "is not an http(s) URL")


def test_push_to_closed_port_stopped_and_paused_gateway(db, edgeq, pushgateway):  # noqa: F811
    url, proc = pushgateway
    closed = f"http://127.0.0.1:{free_port()}"
    r = edgeq("metrics", "push", "latest", "--gateway", closed, "--db", db)
    assert_clean_error(r, 11, f"Pushgateway {closed}/metrics/job/edgeq/pipeline/other unreachable", "refused")
    # a paused gateway accepts the connection (kernel backlog) but never answers: the push times out
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        t = time.monotonic()
        r = edgeq("metrics", "push", "latest", "--gateway", url, "--timeout", "1", "--db", db)
        assert time.monotonic() - t < 20
        assert_clean_error(r, 11, "timed out after 1s")
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert edgeq("metrics", "push", "latest", "--gateway", url, "--db", db).code == 0
    proc.terminate()
    proc.wait(10)
    r = edgeq("metrics", "push", "latest", "--gateway", url, "--db", db, "--json")
    assert_clean_error(r, 11, "unreachable")
    assert r.json()["exit_code"] == 11 and url in r.json()["message"]


def _listening_addresses(port: int) -> set[str]:
    out = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        ip_hex, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:
            out.add(socket.inet_ntoa(bytes.fromhex(ip_hex)[::-1]))
    return out


def test_exporter_scraped_by_real_prometheus(db, tmp_path, promfarm):  # noqa: F811
    env = {**os.environ, "EDGEQ_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeq", "metrics", "serve", "--port", str(promfarm.exporter_port), "--db", str(db)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert "serving http://127.0.0.1:" in proc.stderr.readline()
        assert _listening_addresses(promfarm.exporter_port) == {"127.0.0.1"}  # loopback unless told otherwise
        code, body = http_get(f"http://127.0.0.1:{promfarm.exporter_port}/metrics")
        assert code == 200
        _promtool_check(body.decode())
        promfarm.wait_for('up{job="edgeq-exporter"} == 1')
        health = [t for t in promfarm.targets() if t["labels"]["job"] == "edgeq-exporter"]
        assert health and health[0]["health"] == "up", health
        res = promfarm.wait_for('edgeq_history_up{job="edgeq-exporter"} == 1')
        assert res
        res = promfarm.wait_for('edgeq_latency_p50_seconds{job="edgeq-exporter", pipeline="synth"}')
        assert {r["metric"]["device"] for r in res} == {"pi5", "pi4"}
        # a new run is visible at the next scrape, without restarting the exporter
        record_run(
            load_manifest(synthetic_manifest("r3", devices=("pi5", "pi4", "pi3"), started="2026-01-03T02:30:00+00:00")), db
        )
        promfarm.wait_for('edgeq_device_up{job="edgeq-exporter", device="pi3"} == 1')
        # port already taken: a clear error, exit 11
        p2 = subprocess.run(
            [sys.executable, "-m", "edgeq", "metrics", "serve", "--port", str(promfarm.exporter_port), "--db", str(db)],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        )
        assert p2.returncode == 11 and f"cannot listen on 127.0.0.1:{promfarm.exporter_port}" in p2.stderr, p2.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
