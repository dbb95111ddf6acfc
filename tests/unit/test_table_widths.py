"""Every table at 80, 100 and 120 columns: it fits, and no number, unit or run id is split across lines.

Tables are drawn by the real renderer (edgeq.cli.output.table) into a stdout of $COLUMNS width, on realistic
records: long run ids, six-digit figures, flag lists (foreign_load, throttled), long board names and errors.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.cells import cell_len

from edgeq.cli import layout, output, tables
from edgeq.records.fleet import (
    BenchRun,
    BenchSession,
    BoardHealth,
    BoardOutcome,
    FleetSummary,
    LatencyStats,
    MedianCI,
)
from edgeq.records.run import RunManifest
from edgeq.results import compare_runs, load_manifest, query, record_run
from edgeq.testing.promfarm import synthetic_manifest

DATA = Path(__file__).resolve().parents[1] / "data"
WIDTHS = (80, 100, 120)
RUN_A = "20260301T023000Z-5f3a9c"
RUN_B = "20260302T023000Z-a07be1"
BOX = "┏┃┡│└┗━┳╇┩┓┛┠┨─┴┬├┤╋┼"

# a token that must never be split: a number (1,234.5 / 98.33% / -0.09 / 2e-05), a run id, a unit, a flag
MUST_STAY_WHOLE = re.compile(
    r"[-+]?\d[\d,.]*(e[-+]?\d+)?%?|\d{8}T\d{6}Z-\w+|ms|µs|MiB|MB|kB|GB|B|C|W|pts"
    r"|foreign_load|throttled|freq_drop|cooldown_timeout|hot|\[[-\d,]+\]"
)


def _draw(table: tables.Table, width: int | None, monkeypatch: pytest.MonkeyPatch) -> str:
    """The table as the CLI prints it on a stdout `width` columns wide (None: --wide)."""
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stdout", buf)
    monkeypatch.setenv("COLUMNS", str(width or 80))
    output.reset()
    output.use_wide(width is None)
    try:
        output.table(*table)
    finally:
        output.reset()
    return buf.getvalue()


def _tokens(cell: str) -> list[str]:
    return [t for t in (w.strip(",;()") for w in cell.split()) if MUST_STAY_WHOLE.fullmatch(t)]


def _check(table: tables.Table, monkeypatch: pytest.MonkeyPatch) -> None:
    title, cols, rows = table
    cells = [["" if v is None else str(v) for v in r] for r in rows]
    by_col = [[r[i] for r in cells] for i in range(len(cols))]
    for width in WIDTHS:
        text = _draw(table, width, monkeypatch)
        lines = text.splitlines()
        assert all(cell_len(x.rstrip()) <= width for x in lines), f"wider than {width}:\n{text}"
        shown, _ = layout.fit(
            [c if isinstance(c, layout.Col) else layout.guess(c, by_col[i]) for i, c in enumerate(cols)], by_col, width
        )
        body = [x for x in lines if x[:1] in BOX]
        for i in shown:
            for cell in by_col[i]:
                for tok in _tokens(cell):
                    assert any(tok in x for x in body), f"{tok!r} of column {cols[i]!r} is split at {width} columns:\n{text}"
        hidden = [c for i, c in enumerate(cols) if i not in shown]
        if hidden:
            assert f"not shown at {width} columns: {', '.join(hidden)} (--wide shows them)" in " ".join(x.strip() for x in lines)
    wide = _draw(table, None, monkeypatch)
    for c in cols:  # --wide: every column, every cell on one line
        assert c in wide, f"--wide lost column {c!r}"
    for r in cells:
        for cell in r:
            for line in cell.splitlines():
                assert line in wide


# ------------------------------------------------------------------------------------------ realistic records


def _manifest() -> RunManifest:
    doc = json.loads((DATA / "manifest-v0.1.json").read_text())
    m = RunManifest.from_json(doc)
    b = m.benchmarks[1]
    slow = b.replace(
        device="raspberrypi-5-bench-lab-07",
        latency_ms=LatencyStats(p50=362551.2, p90=362899.9, p99=551002.7, mean=362600.0),
        sessions=tuple(
            BenchSession(session=i, p50=362551.2 + i, p90=362899.9, p99=551002.7, mean=362600.0, count=1000) for i in range(5)
        ),
        ci_ms=MedianCI(low=362401.5, high=362700.25),
        spread=0.0123,
        init_ms=123456.7,
        peak_rss_bytes=123_456_789_012,
    )
    failed = b.replace(
        device="coral-dev-board-mini", ok=False, error="coral-dev-board-mini: agent bench failed: model did not load"
    )
    v = m.variants["int8"].replace(size_bytes=123_456_789)
    return m.replace(benchmarks=(*m.benchmarks, slow, failed), variants={**m.variants, "int8-mixed-precision": v})


def _bench() -> FleetSummary:
    run = BenchRun(
        threads=4,
        ok=True,
        latency_ms=LatencyStats(p50=362551.2, p90=362899.9, p99=551002.7, mean=362600.0),
        count=100000,
        sessions=tuple(
            BenchSession(session=i, p50=362551.2, p90=362899.9, p99=551002.7, mean=362600.0, count=20000) for i in range(5)
        ),
        ci_ms=MedianCI(low=362401.5, high=362700.25),
        spread=0.0123,
        flags=("foreign_load", "throttled", "cooldown_timeout"),
        trend=1.0123,
    )
    bad = BoardOutcome(
        device="jetson-orin-nano-02", status="unreachable", error="jetson-orin-nano-02: ssh: connection timed out after 10 s"
    )
    ok = BoardOutcome(device="raspberrypi-5-bench-lab-07", status="ok", results=(run, run.replace(threads=1, flags=())))
    return FleetSummary(ok=False, action="bench", name="mobilenetv2-int8", sha256="ab" * 32, devices=(ok, bad), seconds=1234.5)


def _check_summary() -> FleetSummary:
    good = BoardHealth(
        device="raspberrypi-5-bench-lab-07",
        status="ok",
        route="via bastion-lab-2",
        reachable=True,
        healthy=True,
        arch="aarch64",
        python="3.11.2",
        runtime="ai-edge-litert",
        runtime_version="2.3.0",
        free_bytes=123_456_789_012,
        temperature_c=71.4,
        warnings=("the login shell prints a banner (MOTD): set PrintMotd no",),
        seconds=0.4,
    )
    bad = BoardHealth(
        device="coral-dev-board-mini",
        status="failed",
        reachable=True,
        healthy=False,
        arch="aarch64",
        python="3.7.3",
        runtime="tflite-runtime",
        runtime_version="2.11.0",
        free_bytes=512_000_000,
        temperature_c=48.0,
        problems=("numpy 1.16.2 is older than 1.19", "free disk 512.0 MB is under 1.0 GB"),
        seconds=0.3,
    )
    return FleetSummary(ok=False, action="check", devices=(good, bad), seconds=0.5)


def _rollout() -> FleetSummary:
    done = BoardOutcome(
        device="raspberrypi-5-bench-lab-07",
        status="changed",
        action="uploaded and installed",
        bytes_uploaded=123_456_789,
        seconds=12.3,
    )
    held = BoardOutcome(
        device="raspberrypi-4-bench-lab-03",
        status="failed",
        kind="locked",
        error="raspberrypi-4-bench-lab-03: the board is held by `edgeq bench` (pid 123456) since 2026-03-01T02:30:00Z",
        seconds=600.0,
        details={"holder": {"pid": 123456}},
    )
    return FleetSummary(ok=False, action="deploy", devices=(done, held), seconds=612.3, bytes_uploaded=123_456_789)


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    db = tmp_path_factory.mktemp("h") / "history.db"
    shutil.copyfile(DATA / "history-main.db", db)
    slow = {("raspberrypi-5-bench-lab-07", "int8"): 0.3625512, ("raspberrypi-5-bench-lab-07", "fp32"): 0.5510027}
    for run_id, day, scale in ((RUN_A, "01", 1.0), (RUN_B, "02", 1.4)):
        m = synthetic_manifest(
            run_id,
            pipeline="fashion-mnist-mobilenetv2",
            started=f"2026-03-{day}T02:30:00+00:00",
            devices=("raspberrypi-5-bench-lab-07", "coral-dev-board-mini"),
            variants=("fp32", "int8", "dynamic"),
            threads=(1, 4),
            p50_s={k: v * scale for k, v in slow.items()},
            n=40,
            seed=int(day),
        )
        record_run(load_manifest(m), db)
    return db


# ------------------------------------------------------------------------------------------ the tables


def test_run_summary_tables(monkeypatch):
    m = _manifest()
    _check(tables.run_variants(m), monkeypatch)
    bench = tables.run_benchmarks(m.benchmarks or ())
    assert bench is not None
    _check(bench, monkeypatch)


def test_several_pipelines_table(monkeypatch):
    rows = [
        ("pipelines/fashion-mnist-mobilenetv2.yaml", RUN_A, "ok", 0, ""),
        ("pipelines/quickstart.yaml", RUN_B, "gate_failed", 7, "variant int8: accuracy drop 2.31 pts > 2.00 pts"),
    ]
    _check(tables.runs_table(rows), monkeypatch)


def test_fleet_tables(monkeypatch):
    _check(tables.bench_table(_bench()), monkeypatch)
    _check(tables.check_table(_check_summary()), monkeypatch)
    _check(tables.rollout_table(_rollout(), "deploy mobilenetv2-int8.tflite"), monkeypatch)
    boards = [
        SimpleNamespace(
            name="raspberrypi-5-bench-lab-07",
            transport="ssh",
            address="10.20.30.107",
            route="via bastion-lab-2",
            user="pi",
            tags=("pi5", "lab-2", "aarch64"),
            python="/home/pi/edgeq/venv/bin/python3",
            workdir="/home/pi/edgeq",
            model="Raspberry Pi 5 Model B Rev 1.0, 8 GB",
            description="",
        ),
        SimpleNamespace(
            name="local",
            transport="local",
            address="local",
            route="",
            user="",
            tags=("local", "x86"),
            python="python3",
            workdir="~/.edgeq/boards/local",
            model="",
            description="this machine; the same agent runs in a subprocess",
        ),
    ]
    _check(tables.devices_table(boards, "devices.yaml"), monkeypatch)


def test_history_and_compare_tables(history, monkeypatch):
    with query.open_for_reading(history) as h:
        runs = query.list_runs(h, limit=50)
    assert {RUN_A, RUN_B} <= {r.run_id for r in runs}
    _check(tables.history_table(runs, str(history)), monkeypatch)
    c = compare_runs(RUN_A, RUN_B, db_path=history)
    for t in tables.comparison_tables(c):
        _check(t, monkeypatch)


# ------------------------------------------------------------------------------------------ the layout rules


def test_columns_give_way_by_priority_and_lists_break_between_items():
    cols = [layout.Col("run"), layout.Col("a", 2), layout.Col("b", 1), layout.Col("list", items=True)]
    by_col = [[RUN_A], ["x" * 30], ["y" * 10], ["pi5/int8/t1 362,551.2; pi4/int8/t1 551,002.7"]]
    shown, widths = layout.fit(cols, by_col, 80)
    assert shown == [0, 2, 3] and widths is not None  # "a" (drop 2) goes before "b" (drop 1)
    assert layout.wrap_items(by_col[3][0], 25) == "pi5/int8/t1 362,551.2;\npi4/int8/t1 551,002.7"
    assert layout.fit(cols, by_col, 1000) == ([0, 1, 2, 3], None)  # room enough: natural widths
    narrow, _ = layout.fit(cols, by_col, 20)  # the columns that never give way stay, whole
    assert narrow == [0, 3]
