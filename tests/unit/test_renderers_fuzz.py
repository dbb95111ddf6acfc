"""Property tests of every table renderer (edgeq.cli.tables) on every record shape they take: failed boards,
optional fields missing, foreign text with rich markup, `$math$`, unicode and control characters.

Each renderer's rows are drawn through edgeq.cli.output.table into a real rich Console: nothing may raise, and
markup in foreign text is shown as written, never interpreted.
"""

from __future__ import annotations

import io
import typing

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from edgeq.cli import output, tables
from edgeq.config import NAME_RE
from edgeq.fleet.inventory.devices import DeviceSpec
from edgeq.records.fleet import (
    Action,
    BenchRun,
    BoardHealth,
    BoardOutcome,
    FleetCounts,
    FleetSummary,
    LatencyStats,
    RuntimeInfo,
    Status,
)
from edgeq.records.run import RunManifest
from edgeq.results.compare import (
    AccuracyChange,
    BenchKey,
    Comparison,
    EnergyChange,
    LatencyChange,
    MemoryChange,
    RunBrief,
)
from edgeq.results.rows import BenchmarkRow, StoredRun, ValidationRow

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

MARKUP = ["[/etc/passwd]", "[bold red]x[/]", "[link=file:///etc/shadow]a[/link]", "[/]", "\\[x]", "[x"]
FOREIGN = [*MARKUP, "$x^2$", "$", "a $ b", "ünïcødé 中文 😀", "a\nb", "\x1b[31mred", "\t", "", " ", "None"]
text = st.one_of(st.sampled_from(FOREIGN), st.text(max_size=24))
opt_text = st.one_of(st.none(), text)
num = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)
opt_num = st.one_of(st.none(), num)
pos_int = st.integers(min_value=0, max_value=2**40)
opt_int = st.one_of(st.none(), pos_int)


def nullable(s: st.SearchStrategy) -> st.SearchStrategy:
    """An optional key may be absent, or present as null (records keep optional keys exactly as given)."""
    return st.one_of(st.none(), s)


# ---------------------------------------------------------------- run documents (RunManifest JSON)

latency_ms = st.fixed_dictionaries({}, optional={k: num for k in ("p50", "p90", "p99", "mean", "std", "min", "max")})
variant_doc = st.fixed_dictionaries(
    {"type": text, "artifact": text, "sha256": text, "size_bytes": pos_int},
    optional={
        "qat": st.just(True),
        "accuracy": opt_num,
        "test_samples": opt_int,
        "accuracy_drop": opt_num,
        "size_ratio": opt_num,
        "gates": nullable(st.fixed_dictionaries({"passed": st.booleans(), "failed": st.lists(text, max_size=2)})),
        "mixed_precision": nullable(
            st.fixed_dictionaries(
                {},
                optional={
                    "met": st.booleans(),
                    "budget": opt_num,
                    "float_layers": st.lists(st.fixed_dictionaries({"layer": text, "op": text, "tensor": text}), max_size=2),
                    "int8_op_fraction": opt_num,
                },
            )
        ),
        "layer_errors": nullable(
            st.fixed_dictionaries(
                {},
                optional={
                    "skipped": text,
                    "worst": st.lists(
                        st.fixed_dictionaries(
                            {"op": text, "layer": text, "tensor": text, "scale": num, "zero_point": st.integers(-128, 127)},
                            optional={"rmse_scale": opt_num},
                        ),
                        max_size=3,
                    ),
                },
            )
        ),
    },
)
bench_doc = st.fixed_dictionaries(
    {"device": text, "variant": text, "threads": st.one_of(st.none(), st.integers(1, 256)), "ok": st.booleans()},
    optional={
        "status": st.sampled_from(typing.get_args(Status)),
        "latency_ms": nullable(latency_ms),
        "count": opt_int,
        "init_ms": opt_num,
        "peak_rss_bytes": opt_int,
        "runtime": nullable(st.fixed_dictionaries({}, optional={"name": opt_text, "version": opt_text})),
        "power": nullable(st.fixed_dictionaries({}, optional={"mean_w": opt_num, "probe": opt_text})),
        "board": nullable(st.fixed_dictionaries({}, optional={"arch": opt_text, "board_model": opt_text, "hostname": opt_text})),
        "error": opt_text,
        "kind": opt_text,
        "hint": opt_text,
    },
)
stage_doc = st.fixed_dictionaries({}, optional={"cached": st.one_of(st.none(), st.booleans()), "key": opt_text})
manifest_doc = st.fixed_dictionaries(
    {
        "run_id": text,
        "pipeline": text,
        "pipeline_file": text,
        "pipeline_sha256": text,
        "status": st.one_of(st.sampled_from(["ok", "failed", "gate_failed", "fleet_failed", "terminated"]), text),
        "started": text,
        "params": st.just({}),
        "versions": st.dictionaries(text, opt_text, max_size=2),
        "inputs": st.just({}),
        "stages": st.fixed_dictionaries(
            {},
            optional={
                "train": nullable(st.builds(lambda d, out: {**d, "output": out}, stage_doc, text)),
                "quantize": nullable(
                    st.dictionaries(
                        text,
                        st.builds(
                            lambda d, v, size: {**d, "output": "m", "variant": v, "type": v, "size_bytes": size},
                            stage_doc,
                            text,
                            pos_int,
                        ),
                        max_size=2,
                    )
                ),
                "validate": nullable(
                    st.dictionaries(
                        text,
                        st.builds(
                            lambda d, a, n: {**d, "accuracy": a, "test_samples": n, "size_bytes": n}, stage_doc, num, pos_int
                        ),
                        max_size=2,
                    )
                ),
            },
        ),
        "variants": st.dictionaries(text, variant_doc, max_size=3),
    },
    optional={
        "runtime": nullable(st.fixed_dictionaries({}, optional={"name": opt_text, "version": opt_text})),
        "benchmarks": nullable(st.lists(bench_doc, max_size=4)),
        "gates_failed": st.lists(text, max_size=2),
        "fleet_failed": st.lists(text, max_size=2),
        "error": opt_text,
        "wall_seconds": opt_num,
        "run_dir": opt_text,
    },
)

# ---------------------------------------------------------------- fleet summaries

bench_run = st.builds(
    BenchRun,
    threads=st.integers(1, 64),
    ok=st.booleans(),
    latency_ms=st.one_of(st.none(), st.builds(LatencyStats, p50=opt_num, p90=opt_num, p99=opt_num, mean=opt_num)),
    count=opt_int,
    init_ms=opt_num,
    runtime=st.one_of(st.none(), st.builds(RuntimeInfo, name=opt_text, version=opt_text)),
    kind=opt_text,
    error=opt_text,
)
outcome_fields = {
    "device": text,
    "address": opt_text,
    "status": st.sampled_from(typing.get_args(Status)),
    "action": opt_text,
    "sha256": opt_text,
    "current": opt_text,
    "kind": opt_text,
    "error": opt_text,
    "hint": opt_text,
    "bytes_uploaded": pos_int,
    "seconds": st.floats(0, 1e6),
    "results": st.lists(bench_run, max_size=3).map(tuple),
}
board_outcome = st.builds(BoardOutcome, **outcome_fields)
board_health = st.builds(
    BoardHealth,
    **outcome_fields,
    reachable=st.booleans(),
    healthy=st.booleans(),
    arch=opt_text,
    python=opt_text,
    runtime=opt_text,
    runtime_version=opt_text,
    free_bytes=opt_int,
    temperature_c=opt_num,
    problems=st.lists(text, max_size=3).map(tuple),
)
fleet_summary = st.builds(
    FleetSummary,
    ok=st.booleans(),
    action=st.sampled_from(typing.get_args(Action)),
    name=opt_text,
    sha256=opt_text,
    counts=st.one_of(st.none(), st.builds(FleetCounts, ok=st.integers(0, 9), failed=st.integers(0, 9))),
    devices=st.lists(st.one_of(board_outcome, board_health), max_size=4).map(tuple),  # a failed board may lack health
    bytes_uploaded=pos_int,
    seconds=st.floats(0, 1e6),
)
device_spec = st.builds(
    DeviceSpec,
    name=st.from_regex(NAME_RE, fullmatch=True),
    host=st.one_of(st.none(), st.sampled_from(["10.0.0.2", "pi.local", "::1"])),
    transport=st.sampled_from(["ssh", "local"]),
    model=text,
    description=text,
    tags=st.lists(st.from_regex(NAME_RE, fullmatch=True), max_size=2),
)

# ---------------------------------------------------------------- history and comparisons

benchmark_row = st.builds(
    BenchmarkRow,
    id=pos_int,
    device=text,
    variant=text,
    threads=st.one_of(st.none(), st.integers(1, 64)),
    ok=st.booleans(),
    error=opt_text,
    p50_s=opt_num,
    board_model=opt_text,
)
stored_run = st.builds(
    StoredRun,
    run_id=text,
    pipeline=text,
    status=text,
    started=opt_text,
    started_ts=num,
    wall_seconds=opt_num,
    error=opt_text,
    runtime=st.builds(RuntimeInfo, name=opt_text, version=opt_text),
    validations=st.dictionaries(text, st.builds(ValidationRow, type=opt_text, accuracy=opt_num), max_size=3),
    benchmarks=st.lists(benchmark_row, max_size=4).map(tuple),
)
key_fields = {"device": text, "variant": text, "threads": st.one_of(st.none(), st.integers(1, 64))}
comparison = st.builds(
    Comparison,
    base=st.builds(RunBrief, run_id=text, pipeline=text, status=text),
    candidate=st.builds(RunBrief, run_id=text, pipeline=text, status=text),
    same_pipeline_file=st.booleans(),
    threshold=num,
    alpha=num,
    accuracy_tolerance=num,
    latency=st.lists(
        st.builds(
            LatencyChange,
            **key_fields,
            base_p50_s=opt_num,
            candidate_p50_s=opt_num,
            ratio=opt_num,
            p_value=opt_num,
            n_base=pos_int,
            n_candidate=pos_int,
            significant=st.booleans(),
            verdict=text,
            regression=st.booleans(),
        ),
        max_size=3,
    ).map(tuple),
    accuracy=st.lists(
        st.builds(AccuracyChange, variant=text, base=num, candidate=num, delta=num, regression=st.booleans()), max_size=2
    ).map(tuple),
    memory=st.lists(
        st.builds(MemoryChange, **key_fields, base_bytes=pos_int, candidate_bytes=pos_int, ratio=num, regression=st.booleans()),
        max_size=2,
    ).map(tuple),
    energy=st.lists(
        st.builds(EnergyChange, **key_fields, base_j=num, candidate_j=num, ratio=num, regression=st.booleans()), max_size=2
    ).map(tuple),
    only_in_base=st.lists(st.builds(BenchKey, **key_fields), max_size=2).map(tuple),
    only_in_candidate=st.lists(st.builds(BenchKey, **key_fields), max_size=2).map(tuple),
    regressions=st.lists(text, max_size=2).map(tuple),
)


# ---------------------------------------------------------------- drawing


def _draw(*tabs: tuple[str, list[str], list[list]] | None) -> str:
    """Draw tables the way the CLI does (edgeq.cli.output.table) into a wide in-memory console."""
    out = output.reset()
    buf = io.StringIO()
    out._out = Console(file=buf, highlight=False, soft_wrap=True, width=100_000, emoji=False)
    try:
        for t in tabs:
            if t is not None:
                output.table(*t)
    finally:
        output.reset()
    drawn = buf.getvalue()
    for t in tabs:  # markup in a cell is shown as written
        for row in t[2] if t is not None else []:
            for cell in row:
                if isinstance(cell, str) and cell in MARKUP:
                    assert cell in drawn, (cell, drawn)
    return drawn


@FUZZ
@given(manifest_doc)
def test_run_tables(doc):
    m = RunManifest.from_json(doc)  # what `edgeq run` renders: the manifest record
    _draw(tables.run_variants(m), tables.run_benchmarks(m.benchmarks or ()))
    assert all(isinstance(s, str) for s in tables.cached_stages(m.stages))


@FUZZ
@given(fleet_summary, text)
def test_fleet_tables(res, title):
    _draw(tables.check_table(res), tables.rollout_table(res, title), tables.bench_table(res))
    assert isinstance(tables.rollout_line(res), str)


@FUZZ
@given(st.lists(device_spec, max_size=4))
def test_devices_rows(devices):
    _draw(("devices", ["a", "b", "c", "d", "e", "f", "g", "h"], tables.devices_rows(devices)))


@FUZZ
@given(st.lists(stored_run, max_size=4), text)
def test_history_table(runs, db):
    _draw(tables.history_table(runs, db))


@FUZZ
@given(comparison)
def test_comparison_tables(c):
    _draw(*tables.comparison_tables(c))
    assert all(isinstance(n, str) for n in tables.comparison_notes(c))


def test_markup_in_board_text_is_shown_as_written():
    res = FleetSummary(
        ok=False,
        action="check",
        seconds=1.0,
        devices=(
            BoardOutcome(device="[bold]b1[/bold]", status="failed", kind="internal", error="[/etc/edgeq] $x^2$"),
            BoardHealth(device="b2", status="ok", reachable=True, healthy=False, problems=("[red]disk[/red] full",)),
        ),
    )
    drawn = _draw(tables.check_table(res))
    for s in ("[bold]b1[/bold]", "[/etc/edgeq] $x^2$", "[red]disk[/red] full"):
        assert s in drawn, drawn
