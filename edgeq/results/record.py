"""Store one run manifest (validate + benchmark results, raw latency samples, versions, board facts) in the history.

One transaction per run; recording the same run again replaces it (idempotent per run_id).
"""

from __future__ import annotations

import array
import datetime as dt
import json
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from edgeq.errors import StoreError
from edgeq.records import Record, RecordError
from edgeq.records.fleet import BenchResult, BoardFacts, LatencyStats, PowerSummary, RuntimeInfo
from edgeq.records.run import RunManifest, RunStages, VariantResult
from edgeq.results import numeric
from edgeq.results.db import open_history
from edgeq.results.liveness import process_gone
from edgeq.results.quality import quality_summary
from edgeq.results.rows import as_given
from edgeq.results.staterows import INSERT_STATE, state_row

_LAT = ("p50", "p90", "p99", "mean", "std", "min", "max")


def parse_ts(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        t = dt.datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.timestamp()


def pack_samples(samples: Iterable[float]) -> bytes:
    a = array.array("f", (float(x) for x in samples))
    if sys.byteorder != "little":
        a.byteswap()
    return a.tobytes()


def unpack_samples(blob: bytes | None) -> list[float]:
    if not blob:
        return []
    a = array.array("f")
    a.frombytes(blob)
    if sys.byteorder != "little":
        a.byteswap()
    return a.tolist()


class RawSamples(Record):
    """The part of the agent's bench document (beside the manifest, or inline) the history keeps."""

    samples_s: tuple[float, ...]
    samples_stride: int | None = 1


class _Gate(Record):
    max_accuracy_drop: float | None = None


class _VariantParams(Record):
    name: str | None = None
    type: str | None = None
    gates: _Gate | None = None


class _QuantizeParams(Record):
    variants: tuple[_VariantParams, ...] | None = None


class _ValidateParams(Record):
    gates: _Gate | None = None


class RunParams(Record):
    """The part of a manifest's `params` (the pipeline as run) the history reads: the accuracy-drop budgets."""

    quantize: _QuantizeParams | None = None
    validate_: _ValidateParams | None = Field(None, alias="validate")

    def drop_budget(self, variant: str) -> float | None:
        """The max_accuracy_drop gate that applies to a variant: its own, else the validate section's."""
        for v in (self.quantize.variants if self.quantize else None) or ():
            if (v.name or v.type) == variant and v.gates and v.gates.max_accuracy_drop is not None:
                return float(v.gates.max_accuracy_drop)
        g = self.validate_.gates if self.validate_ else None
        return None if g is None or g.max_accuracy_drop is None else float(g.max_accuracy_drop)


class Recordable(Record):
    """A run as the history reads it: the manifest, its benchmark rows as records, and the file it came from."""

    manifest: RunManifest
    benchmarks: tuple[tuple[BenchResult, RawSamples | str | None], ...]
    params: RunParams
    manifest_path: str | None = None

    @classmethod
    def of(cls, m: RunManifest) -> Recordable:
        """A manifest this process holds (a run just finished): its raw samples are the files its rows name."""
        return _recordable(m, {}, None, _params(m, f"the run manifest of run {m.run_id}"))


_HINT = "give <edgeq home>/runs/<run id>/manifest.json"


def load_manifest(source: str | Path | Mapping[str, Any]) -> Recordable:
    """A stored manifest: a manifest.json, a run folder holding one, or a manifest document read from one.

    This is the history's reading boundary (RunManifest.from_stored: keys of another edgeq version are kept).
    A manifest of the wrong shape is a StoreError naming the file and the field."""
    path: Path | None = None
    if isinstance(source, Mapping):
        doc: Any = source
    else:
        path = Path(source)
        if path.is_dir():
            path = path / "manifest.json"
        doc = _read_json(path)
    if not isinstance(doc, Mapping) or not doc.get("run_id") or not doc.get("pipeline"):
        raise StoreError(f"{path or 'the run manifest'} is not an edgeq run manifest (no run_id/pipeline)", _HINT)
    what = f"run manifest {path}" if path else f"the run manifest of run {doc['run_id']}"
    doc, inline = _split_inline_samples(doc)
    try:
        m = RunManifest.from_stored(doc)
    except RecordError as e:
        raise StoreError(f"{what} has a bad field {e.field!r}: {e.problem}", _HINT) from None
    return _recordable(m, inline, path, _params(m, what))


def _params(m: RunManifest, what: str) -> RunParams:
    try:
        return RunParams.from_stored(m.params)  # the pipeline as run: only the gates are read here
    except RecordError as e:
        raise StoreError(f"{what} has a bad field 'params.{e.field}': {e.problem}", _HINT) from None


def _split_inline_samples(doc: Mapping[str, Any]) -> tuple[Mapping[str, Any], dict[int, RawSamples | None]]:
    """Benchmark rows may carry the agent's samples inline (`raw` an object) instead of a file's path."""
    rows = doc.get("benchmarks")
    if not isinstance(rows, list | tuple) or not any(isinstance(b, Mapping) and isinstance(b.get("raw"), Mapping) for b in rows):
        return doc, {}
    inline: dict[int, RawSamples | None] = {}
    kept = []
    for i, b in enumerate(rows):
        if isinstance(b, Mapping) and isinstance(b.get("raw"), Mapping):
            inline[i] = _inline(b["raw"])
            b = {k: v for k, v in b.items() if k != "raw"}
        kept.append(b)
    return {**doc, "benchmarks": kept}, inline


def _inline(raw: Mapping[str, Any]) -> RawSamples | None:
    try:
        return RawSamples.from_stored(raw)
    except RecordError:
        return None  # no usable samples: the summary is still worth keeping


def _recordable(m: RunManifest, inline: dict[int, RawSamples | None], path: Path | None, params: RunParams) -> Recordable:
    benches = tuple((b, inline[i] if i in inline else b.raw) for i, b in enumerate(m.benchmarks or ()))
    manifest_path = str(path) if path else str(Path(m.run_dir) / "manifest.json") if m.run_dir else None
    return Recordable(manifest=m, benchmarks=benches, params=params, manifest_path=manifest_path)


def _read_json(p: Path) -> Any:
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise StoreError(
            f"no run manifest at {p}", "give a run folder (<edgeq home>/runs/<run id>) or its manifest.json"
        ) from None
    except (OSError, ValueError) as e:
        raise StoreError(f"run manifest {p} is unreadable: {e}", "the run folder is damaged; rerun the pipeline") from None


def _raw(raw: RawSamples | str | None) -> tuple[tuple[float, ...] | None, int | None, str | None]:
    """(samples in seconds, stride, path): a moved or pruned run folder keeps the summary, without the samples."""
    path = raw if isinstance(raw, str) else None
    if path is not None:
        try:
            raw = RawSamples.from_stored(json.loads(Path(path).read_text()))
        except (OSError, ValueError):  # RecordError is a ValueError
            return None, None, path
    if isinstance(raw, RawSamples):
        return raw.samples_s, int(raw.samples_stride or 1), path
    return None, None, path


def _f(x: float | None, scale: float = 1.0) -> float | None:
    return None if x is None else float(x) * scale


def _stage_rows(run_id: str, st: RunStages) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    if st.train is not None:
        rows.append((run_id, "train", "", int(bool(st.train.cached)), _f(st.train.seconds)))
    for name, per in (("quantize", st.quantize), ("validate", st.validate_)):
        for variant, v in (per or {}).items():
            rows.append((run_id, name, variant, int(bool(v.cached)), _f(v.seconds)))
    if st.deploy is not None and st.deploy.results is not None:
        for variant, r in st.deploy.results.items():
            rows.append((run_id, "deploy", variant, 0, _f(r.seconds)))
    return rows


def _dumps(rec: Record | None) -> str | None:
    doc = as_given(rec)
    return json.dumps(doc) if doc else None


def _session_rows(b: BenchResult) -> tuple[tuple[Any, ...] | None, list[tuple[Any, ...]]]:
    """(the benchmark_session_stats row without its id, the benchmark_sessions rows without it)."""
    if not b.ok or (not b.sessions and b.harness_floor_ms is None):
        return None, []
    ci = b.ci_ms
    stats = (
        len(b.sessions) or 1,
        _f(b.spread),
        _f(b.spread_std_ms, 1e-3),
        None if ci is None else _f(ci.low, 1e-3),
        None if ci is None else _f(ci.high, 1e-3),
        None if ci is None else ci.level,
        _f(b.harness_floor_ms, 1e-3),
    )
    per = [
        (s.session, _f(s.p50, 1e-3), _f(s.p90, 1e-3), _f(s.p99, 1e-3), _f(s.mean, 1e-3), s.count, s.started_at)
        + (_f(s.harness_floor_ms, 1e-3), _f(s.min, 1e-3))
        for s in b.sessions
    ]
    return stats, per


def _bench_row(run_id: str, b: BenchResult, raw: RawSamples | str | None) -> tuple[tuple[Any, ...], bytes | None]:
    lat = b.latency_ms or LatencyStats()
    power = b.power or PowerSummary()
    board = b.board or BoardFacts()
    rt = b.runtime or RuntimeInfo()
    samples, stride, path = _raw(raw) if b.ok else (None, None, None)
    row = (
        run_id,
        b.device or "?",
        b.variant or "?",
        b.threads,
        int(bool(b.ok)),
        b.error,
        b.kind or b.status,
        *[_f(getattr(lat, k), 1e-3) for k in _LAT],
        b.count,
        _f(b.init_ms, 1e-3),
        _f(b.first_invoke_ms, 1e-3),
        b.peak_rss_bytes,
        rt.name,
        rt.version,
        _dumps(b.delegate),
        power.probe,
        _f(power.mean_w),
        _f(power.idle_w),
        _f(power.joules_per_inference),
        board.arch,
        board.board_model,
        board.cpu_model,
        board.hostname,
        _f(board.temp_c),
        None if board.throttled is None else json.dumps(as_given(board.throttled)),
        json.dumps(as_given(b.board) or {}),
        stride,
        path,
    )
    return row, (pack_samples(samples) if samples else None)


_INSERT_RUN = "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_STAGE = "INSERT INTO stages (run_id, stage, variant, cached, seconds) VALUES (?, ?, ?, ?, ?)"
_INSERT_VALIDATION = (
    "INSERT INTO validations (run_id, variant, type, sha256, size_bytes, accuracy, test_samples, "
    "accuracy_drop, accuracy_drop_budget, size_ratio, gates_passed, gates_failed, quality) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_BENCH = (
    "INSERT INTO benchmarks (run_id, device, variant, threads, ok, error, kind, p50_s, p90_s, p99_s, mean_s, std_s, min_s, "
    "max_s, count, init_s, first_invoke_s, peak_rss_bytes, runtime_name, runtime_version, delegate, power_probe, power_mean_w, "
    "power_idle_w, energy_j, arch, board_model, cpu_model, hostname, temp_c, throttled, board, samples_stride, raw_path) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_SAMPLES = "INSERT INTO benchmark_samples (benchmark_id, samples) VALUES (?, ?)"
_INSERT_SESSION_STATS = "INSERT INTO benchmark_session_stats VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_SESSION = (
    "INSERT INTO benchmark_sessions (benchmark_id, session, p50_s, p90_s, p99_s, mean_s, count, started, harness_floor_s, "
    "min_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def record_run(run: Recordable | RunManifest, db_path: Path | None = None, *, timeout: float | None = None) -> str:
    """Store a run: a manifest this process holds, or one read with `load_manifest`. Idempotent per run_id.
    Returns the run id. Runs still in progress are refused: their results are not final."""
    r = run if isinstance(run, Recordable) else Recordable.of(run)
    m = r.manifest
    run_id, status = m.run_id, m.status or "unknown"
    if status == "running":
        raise StoreError(
            f"run {run_id} is still running (or was killed before it finished): its results are not final",
            "record it after it finishes; a killed run has nothing worth comparing",
        )
    rt = m.runtime or RuntimeInfo()
    run_row = (
        run_id,
        m.pipeline,
        m.pipeline_file,
        m.pipeline_sha256,
        status,
        m.started,
        m.finished,
        parse_ts(m.started) or time.time(),
        parse_ts(m.finished),
        _f(m.wall_seconds),
        m.error,
        rt.name,
        rt.version,
        json.dumps(m.versions or {}),
        json.dumps(list(m.gates_failed or ())),
        json.dumps(list(m.fleet_failed or ())),
        r.manifest_path,
        time.time(),
        int(bool(m.adhoc)),
    )
    val_rows = [_validation_row(run_id, k, v, r.params) for k, v in m.variants.items()]
    bench_rows = [(*_bench_row(run_id, b, raw), *_session_rows(b), state_row(b)) for b, raw in r.benchmarks]
    stage_rows = _stage_rows(run_id, m.stages)

    with open_history(db_path, create=True, timeout=timeout) as h, h.write(f"recording run {run_id}") as c:
        c.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))  # cascades: recording again replaces the run
        c.execute(_INSERT_RUN, run_row)
        c.executemany(_INSERT_STAGE, stage_rows)
        c.executemany(_INSERT_VALIDATION, [v for v in val_rows if v is not None])
        for row, blob, stats, sessions, state in bench_rows:
            bid = c.execute(_INSERT_BENCH, row).lastrowid
            if blob is not None:
                c.execute(_INSERT_SAMPLES, (bid, blob))
            if stats is not None:
                c.execute(_INSERT_SESSION_STATS, (bid, *stats))
                c.executemany(_INSERT_SESSION, [(bid, *s) for s in sessions])
            if state is not None:
                c.execute(INSERT_STATE, (bid, *state))
        c.executemany(numeric.INSERT, numeric.rows_of(run_id, m.stages.benchmark_numeric or ()))
    return run_id


def _validation_row(run_id: str, variant: str, v: VariantResult, params: RunParams) -> tuple[Any, ...] | None:
    if v.accuracy is None and v.size_bytes is None:
        return None
    return (
        run_id,
        variant,
        v.type,
        v.sha256,
        v.size_bytes,
        _f(v.accuracy),
        v.test_samples,
        _f(v.accuracy_drop),
        params.drop_budget(variant),
        _f(v.size_ratio),
        None if v.gates is None else int(bool(v.gates.passed)),
        json.dumps(list(v.gates.failed) if v.gates else []),
        json.dumps(quality_summary(v).to_json()),
    )


class Skipped(Record):
    path: str
    reason: str


class Interrupted(Record):
    """A manifest still `running` whose process is gone: recorded as `interrupted` (`reason` says why)."""

    path: str
    run_id: str
    reason: str


class ImportReport(Record):
    """What `edgeq history --import` did: the run ids recorded (those recorded as interrupted again in
    `interrupted`), and each manifest skipped with the reason."""

    recorded: tuple[str, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    interrupted: tuple[Interrupted, ...] = ()


def _as_interrupted(r: Recordable, path: Path) -> tuple[Recordable, Interrupted] | None:
    """A `running` manifest whose process is gone, as the interrupted run it is (the file is left as it is)."""
    m = r.manifest
    why = process_gone(m.pid, parse_ts(m.started))
    if why is None:
        return None
    reason = f"its process (pid {m.pid}) is gone ({why}): the run was killed before it finished; recorded as interrupted"
    done = m.without("pid").replace(status="interrupted", error=reason)
    return r.replace(manifest=done), Interrupted(path=str(path), run_id=m.run_id, reason=reason)


def import_runs(sources: Iterable[str | Path], db_path: Path | None = None) -> ImportReport:
    """Record every finished run found in the given run folders, manifest files or runs/ folders."""
    found: list[Path] = []
    for s in sources:
        p = Path(s)
        if p.is_dir() and not (p / "manifest.json").exists():
            found += sorted(x for x in p.glob("*/manifest.json"))
        else:
            found.append(p)
    recorded: list[str] = []
    skipped: list[Skipped] = []
    interrupted: list[Interrupted] = []
    for p in found:
        try:
            r = load_manifest(p)
            note = None
            if r.manifest.status == "running":
                gone = _as_interrupted(r, p)
                if gone is None:
                    pid = r.manifest.pid
                    why = f"still running (pid {pid})" if pid else "still running or killed (the manifest has no pid to check)"
                    skipped.append(Skipped(path=str(p), reason=why))
                    continue
                r, note = gone
            recorded.append(record_run(r, db_path))
            if note is not None:
                interrupted.append(note)
        except StoreError as e:
            if "history database" in e.message:
                raise
            skipped.append(Skipped(path=str(p), reason=e.message))
    return ImportReport(recorded=tuple(recorded), skipped=tuple(skipped), interrupted=tuple(interrupted))
