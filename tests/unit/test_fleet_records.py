"""Fleet records and the agent-document boundary: pure logic, no sshd, no TFLite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from edgeq.fleet import load_inventory
from edgeq.fleet.agentdoc import read_agent_doc
from edgeq.fleet.board import AgentBundle, Board
from edgeq.fleet.transport.base import BoardError
from edgeq.records.fleet import (
    AgentBench,
    AgentFacts,
    AgentStatus,
    BenchResult,
    BenchRun,
    BoardHealth,
    BoardOutcome,
    FleetSummary,
)

FACTS = {
    "hostname": "pi",
    "arch": "aarch64",
    "cpu_model": "Cortex-A76",
    "board_model": "Raspberry Pi 5 Model B Rev 1.0",
    "cores": 4,
    "cores_available": 4,
    "kernel": "6.6.31+rpt-rpi-2712",
    "os": "Debian GNU/Linux 12 (bookworm)",
    "python": "3.11.2",
    "numpy": "1.26.4",
    "runtime": {"name": "tflite-runtime", "version": "2.14.0"},
    "workdir": "/home/pi/edgeq",
    "free_bytes": 20 << 30,
    "temp_c": 51.2,
    "thermal_zones": [{"zone": "thermal_zone0", "type": "cpu-thermal", "temp_c": 51.2}],
    "cpu_freq_khz": 2400000,
    "cpu_governor": "ondemand",
    "throttled": {"raw": "0x0", "flags": 0},
}
LATENCY = {"p50": 0.002, "p90": 0.0025, "p99": 0.003, "mean": 0.0021, "std": 0.0002, "min": 0.0018, "max": 0.004}
BENCH = {
    "ok": True,
    "protocol": 1,
    "command": "bench",
    "model": {"path": "/home/pi/edgeq/models/m/ab.tflite", "name": "m", "sha256": "ab", "size_bytes": 9728},
    "runtime": {"name": "tflite-runtime", "version": "2.14.0"},
    "threads": 2,
    "delegate": {"requested": "xnnpack", "used": "xnnpack", "note": "XNNPACK is the runtime's default CPU delegate"},
    "inputs_source": "random(seed=0)",
    "started_at": "2026-11-27T19:53:32Z",
    "init_seconds": 0.001,
    "first_invoke_seconds": 0.0001,
    "warmup_runs": 5,
    "runs_requested": 50,
    "min_seconds": 1.0,
    "stopped_by": "runs+min_seconds",
    "timed_seconds": 1.0,
    "window_seconds": 1.1,
    "latency_s": {**LATENCY, "count": 3},
    "samples_s": [0.002, 0.0021, 0.0019],
    "samples_stride": 1,
    "memory": {"vmhwm_before_init_bytes": 1, "vmhwm_after_init_bytes": 2, "vmhwm_after_runs_bytes": 67260416},
    "power": None,
    "board": FACTS,
    "board_after": {"temp_c": 52.0, "cpu_freq_khz": 2400000, "throttled": {"raw": "0x0", "flags": 0}},
}


# --------------------------------------------------------------------------- the boundary


def test_good_agent_documents_become_records_and_round_trip():
    raw = read_agent_doc("pi", "bench", BENCH)
    assert isinstance(raw, AgentBench) and raw.latency_s.count == 3 and raw.board.runtime.version == "2.14.0"
    assert raw.to_json() == BENCH and list(raw.to_json()) == list(BENCH)
    facts = read_agent_doc("pi", "facts", {"ok": True, "protocol": 1, "command": "facts", "board": FACTS})
    assert isinstance(facts, AgentFacts) and facts.board.throttled.flags == 0
    st = read_agent_doc("pi", "status", {"ok": True, "current": None, "have": True, "newer_key": [1]})
    assert isinstance(st, AgentStatus) and st.have is True
    assert st.to_json() == {"ok": True, "current": None, "have": True, "previous": None, "name": None} | {
        "blobs": [],
        "free_bytes": None,
        "newer_key": [1],
    }  # a newer agent's extra keys travel on


@pytest.mark.parametrize(
    "sub,doc,field",
    [
        ("bench", {k: v for k, v in BENCH.items() if k != "latency_s"}, "latency_s"),
        ("bench", {**BENCH, "latency_s": {**LATENCY}}, "latency_s.count"),
        ("bench", {**BENCH, "samples_s": "many"}, "samples_s"),
        ("bench", {**BENCH, "board": {**FACTS, "cores": "four"}}, "board.cores"),
        ("bench", {**BENCH, "memory": {"vmhwm_after_runs_bytes": True}}, "memory.vmhwm_after_runs_bytes"),
        ("facts", {"ok": True}, "board"),
        ("facts", {"ok": True, "board": {**FACTS, "throttled": {"raw": "0x0", "flags": "0"}}}, "board.throttled.flags"),
        ("status", {"ok": True, "current": 5}, "current"),
        ("install", {"ok": True}, "current"),
        ("predict", {"ok": True, "predictions": [1, True, 2]}, "predictions.1"),
        ("predict", {"ok": True, "predictions": "1 2 3"}, "predictions"),
    ],
)
def test_agent_document_of_the_wrong_shape_names_board_and_field(sub, doc, field):
    with pytest.raises(BoardError) as ei:
        read_agent_doc("pi", sub, doc)
    e = ei.value
    assert e.kind == "protocol" and e.device == "pi" and e.extra["field"] == field
    assert e.message.startswith(f"pi: agent {sub} sent a document of the wrong shape: field {field!r}"), e.message
    assert "W/agent/" in e.hint
    json.dumps(e.to_dict())


def test_not_an_object_is_a_protocol_error():
    with pytest.raises(BoardError) as ei:
        read_agent_doc("pi", "facts", ["ok"])
    assert ei.value.kind == "protocol" and "the document" in ei.value.message


class _Replies:
    """Pure-logic fake transport: prints one canned agent reply."""

    def __init__(self, out: str):
        self.out = out

    def run(self, argv, timeout):
        return 0, self.out, ""

    def home(self):
        return "/home/pi"


def test_board_call_goes_through_the_boundary(tmp_path):
    p = tmp_path / "devices.yaml"
    p.write_text("devices:\n  - {name: pi, host: 192.0.2.9}\n")
    dev = load_inventory(p).devices[0]
    bundle = AgentBundle(Path("/x/edgeq-agent-0.pyz"), "0" * 64)
    good = Board(dev, _Replies(json.dumps(BENCH)), bundle).call("bench", "--name", "m")
    assert isinstance(good, AgentBench)
    bad = Board(dev, _Replies(json.dumps({**BENCH, "latency_s": None})), bundle)
    with pytest.raises(BoardError) as ei:
        bad.call("bench", "--name", "m")
    assert ei.value.kind == "protocol" and "'latency_s'" in ei.value.message and ei.value.message.startswith("pi: ")


# --------------------------------------------------------------------------- orchestrator records keep today's JSON


def test_outcomes_write_only_the_keys_their_producer_set():
    deployed = BoardOutcome(
        device="b1", address="h:22", status="changed", action="uploaded and installed", previous=None, sha256="ab"
    )
    deployed = deployed.replace(model_bytes=10, current="ab", error=None, bytes_uploaded=20, seconds=0.5)
    j = deployed.to_json()
    assert "kind" not in j and "hint" not in j and "results" not in j and j["previous"] is None
    assert BoardOutcome.from_json(j).to_json() == j
    failed = BoardOutcome(
        device="b2", status="failed", kind="locked", error="b2: held", hint=None, details={"holder": {"pid": 4}}
    )
    assert failed.to_json()["holder"] == {"pid": 4} and failed.to_json()["hint"] is None and "details" not in failed.to_json()
    assert BoardOutcome.from_stored(failed.to_json()).to_json() == failed.to_json()  # a stored --json document
    with pytest.raises(ValidationError, match="holder"):  # built in code, an undeclared field is a mistake
        BoardOutcome.model_validate({**failed.to_json(), "details": {}})
    run = BenchRun(threads=1, ok=False, kind="agent_killed", error="x", hint="y")
    assert run.to_json() == {"threads": 1, "ok": False, "kind": "agent_killed", "error": "x", "hint": "y"}


def test_summary_round_trips_with_health_records():
    health = BoardHealth(
        device="pi", status="ok", reachable=True, healthy=True, runtime="tflite-runtime", problems=(), seconds=0.1
    )
    s = FleetSummary(ok=True, action="check", devices=(health,), seconds=0.2)
    j = s.to_json()
    assert set(j) == {"ok", "action", "devices", "seconds"}
    assert j["devices"][0]["runtime"] == "tflite-runtime" and j["devices"][0]["healthy"] is True
    assert json.loads(json.dumps(j)) == j


def test_manifest_rows_round_trip():
    ok = {
        "device": "pi",
        "variant": "int8",
        "threads": 1,
        "ok": True,
        "latency_ms": {k: v * 1000 for k, v in LATENCY.items()},
        "count": 3,
        "init_ms": 1.0,
        "first_invoke_ms": 0.1,
        "peak_rss_bytes": 67260416,
        "runtime": {"name": "ai-edge-litert", "version": "2.3.0"},
        "delegate": {"requested": "xnnpack", "used": "xnnpack", "note": "n"},
        "power": None,
        "board": FACTS,
        "raw": "/runs/r/bench/pi-int8-t1.json",
    }
    never = {"device": "pi", "variant": "int8", "threads": None, "ok": False, "status": "unreachable", "error": "e", "hint": None}
    failed = {"device": "pi", "variant": "int8", "threads": 2, "ok": False, "error": "e", "kind": "locked", "hint": "h"}
    for row in (ok, never, failed):
        assert BenchResult.from_json(row).to_json() == row


def test_one_sha256_helper(tmp_path):
    from edgeq.hashing import bytes_sha256, file_sha256

    data = bytes(range(256)) * 9000  # more than one read chunk
    (tmp_path / "m.tflite").write_bytes(data)
    assert file_sha256(tmp_path / "m.tflite") == bytes_sha256(data) == __import__("hashlib").sha256(data).hexdigest()


def test_failure_record_survives_agent_details_that_collide_with_our_fields(tmp_path):
    from edgeq.fleet.fanout import failure_record
    from edgeq.records.fleet import BoardHealth

    p = tmp_path / "devices.yaml"
    p.write_text("devices:\n  - {name: pi, host: 192.0.2.9}\n")
    dev = load_inventory(p).devices[0]
    e = BoardError("pi", "agent install failed: x", kind="locked", holder={"pid": 7}, previous=5, bytes_uploaded="x")
    rec = failure_record(dev, e, 0.0)
    j = rec.to_json()
    assert rec.status == "failed" and j["holder"] == {"pid": 7} and "previous" not in j and j["bytes_uploaded"] == 0
    e = BoardError("pi", "no runtime", kind="no_runtime", problems="all", current="ab", bytes_uploaded=12)
    rec = failure_record(dev, e, 0.0, record=BoardHealth, reachable=True, healthy=False, problems=["pi: no runtime"])
    assert isinstance(rec, BoardHealth) and rec.problems == ("pi: no runtime",) and rec.current == "ab"
    assert rec.bytes_uploaded == 12


def test_manifest_rows_from_bench_runs():
    from edgeq.fleet import bench_result, unmeasured_result
    from edgeq.fleet.benchmarks import bench_run

    power = {"probe": "hwmon", "interval_s": 0.05, "idle_s": 1.0, "note": "n", "mean_w": 2.5, "samples_w": [2.5]}
    raw = AgentBench.from_json({**BENCH, "power": power})
    row = bench_result("pi", "int8", bench_run(2, raw), "/runs/r/bench/pi-int8-t2.json").to_json()
    assert list(row) == ["device", "variant", "threads", "ok", "latency_ms", "count", "init_ms", "first_invoke_ms"] + [
        "peak_rss_bytes",
        "runtime",
        "delegate",
        "power",
        "board",
        "raw",
    ]
    assert row["latency_ms"]["p50"] == 2.0 and row["count"] == 3 and row["init_ms"] == 1.0
    assert row["power"] == {"probe": "hwmon", "mean_w": 2.5} and row["board"] == FACTS
    assert row["peak_rss_bytes"] == 67260416 and row["raw"].endswith("pi-int8-t2.json")
    assert bench_result("pi", "int8", bench_run(2, AgentBench.from_json(BENCH)), None).to_json()["power"] is None
    failed = BenchRun(threads=4, ok=False, kind="locked", error="pi: held", hint="wait")
    assert bench_result("pi", "fp32", failed, None).to_json() == {
        "device": "pi",
        "variant": "fp32",
        "threads": 4,
        "ok": False,
        "error": "pi: held",
        "kind": "locked",
        "hint": "wait",
    }
    gone = BoardOutcome(device="pi", status="unreachable", error="pi: refused", hint="h", kind="refused")
    assert unmeasured_result(gone, "int8").to_json() == {
        "device": "pi",
        "variant": "int8",
        "threads": None,
        "ok": False,
        "status": "unreachable",
        "error": "pi: refused",
        "hint": "h",
    }


def test_cli_tables_read_the_records():
    from edgeq.cli import tables
    from edgeq.records.fleet import FleetCounts

    health = BoardHealth(
        device="pi",
        status="failed",
        reachable=True,
        healthy=False,
        arch="aarch64",
        python="3.11.2",
        runtime="tflite-runtime",
        runtime_version="2.14.0",
        free_bytes=20 << 30,
        temperature_c=81.4,
        problems=("hot: 81 C", "throttled now"),
        error="pi: hot",
        seconds=0.2,
    )
    _, _, rows = tables.check_table(FleetSummary(ok=False, action="check", devices=(health,), seconds=0.3))
    assert rows[0][:6] == ["pi", "yes", "NO", "aarch64", "3.11.2", "tflite-runtime 2.14.0"]
    assert rows[0][7:] == ["81 C", "hot: 81 C; throttled now"]
    dep = BoardOutcome(device="b1", status="changed", action="uploaded and installed", bytes_uploaded=2500, error=None)
    s = FleetSummary(ok=True, action="deploy", counts=FleetCounts(changed=1), devices=(dep,), bytes_uploaded=2500, seconds=1.25)
    assert tables.rollout_table(s, "t")[2] == [["b1", "changed", "uploaded and installed", "2.5 kB", "0.0s", ""]]
    assert tables.rollout_line(s) == "1 changed; 2.5 kB uploaded in 1.2s"
    run = BenchRun.model_validate({"threads": 1, "ok": True, "latency_ms": LATENCY_MS, "count": 3})
    b = BoardOutcome(device="b1", status="ok", results=(run,), error=None)
    gone = BoardOutcome(device="b2", status="unreachable", error="b2: refused")
    title, cols, rows = tables.bench_table(
        FleetSummary(ok=False, action="bench", name="m", sha256="ab" * 32, devices=(b, gone), seconds=1)
    )
    assert title == f"bench m ({'ab' * 6})" and cols[2] == "p50 ms" and rows[0][0:2] == ["b1", 1] and rows[0][-1] == "ok"
    assert rows[1] == ["b2", *[""] * 11, "unreachable: b2: refused"]  # 11: the figures, sessions, CI, spread, trend, flags


LATENCY_MS = {k: v * 1000 for k, v in LATENCY.items()}
