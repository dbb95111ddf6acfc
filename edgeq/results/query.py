"""Read the history: resolve run references, list runs, load a run's results (optionally with raw samples).

Every function returns records (edgeq.results.rows); their to_json() is what `edgeq history --json` shows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from edgeq.errors import StoreError
from edgeq.records import RecordError
from edgeq.results import numeric
from edgeq.results.db import History, open_history
from edgeq.results.record import unpack_samples
from edgeq.results.rows import BenchmarkRow, RunRow, SessionRow, StageRow, StoredRun, ValidationRow

R = TypeVar("R")

RESULT_STATUSES = ("ok", "gate_failed", "fleet_failed")  # runs whose measurements are complete enough to compare

# Literal SQL only (no string building); `SELECT *` is cheap because the sample blobs live in their own table.
_RUN_BY_ID = "SELECT * FROM runs WHERE run_id = ?"
_RUN_BY_PREFIX = "SELECT * FROM runs WHERE run_id LIKE ? ESCAPE '\\' ORDER BY run_id LIMIT 2"
_LATEST = (
    "SELECT * FROM runs WHERE (? IS NULL OR pipeline = ?) AND (? IS NULL OR adhoc = ?) "
    "ORDER BY started_ts DESC, run_id DESC LIMIT 1"
)
_PREVIOUS = (
    "SELECT * FROM runs WHERE pipeline = ? AND run_id != ? AND status IN ('ok', 'gate_failed', 'fleet_failed') "
    "AND (? OR adhoc = 0) AND (started_ts < ? OR (started_ts = ? AND run_id < ?)) ORDER BY started_ts DESC, run_id DESC LIMIT 1"
)
_LIST = (
    "SELECT * FROM runs WHERE (? IS NULL OR pipeline = ?) "
    "AND (? IS NULL OR run_id IN (SELECT run_id FROM benchmarks WHERE device = ?)) AND (? IS NULL OR adhoc = ?) "
    "ORDER BY started_ts DESC, run_id DESC LIMIT ?"
)
_TREND = "SELECT * FROM runs WHERE pipeline = ? AND started_ts <= ? ORDER BY started_ts DESC, run_id DESC LIMIT ?"
# exports (textfile, exporter, backfill) and baselines read pipeline runs only: an ad hoc `edgeq bench` is no nightly
_PIPELINES = "SELECT DISTINCT pipeline FROM runs WHERE adhoc = 0 ORDER BY pipeline"
_ALL = "SELECT * FROM runs WHERE (? IS NULL OR pipeline = ?) AND adhoc = 0 ORDER BY started_ts, run_id"
_LATEST_OF = "SELECT * FROM runs WHERE pipeline = ? AND adhoc = 0 ORDER BY started_ts DESC, run_id DESC LIMIT 1"
# the run a dashboard shows at a time: the last pipeline run finished by then (what the exporter served)
_AT = (
    "SELECT * FROM runs WHERE pipeline = ? AND adhoc = 0 AND coalesce(finished_ts, started_ts) <= ? "
    "ORDER BY coalesce(finished_ts, started_ts) DESC, run_id DESC LIMIT 1"
)


def _rows(h: History, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    cur = h.execute(sql, args)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _read(h: History, what: str, make: Callable[[dict[str, Any]], R], row: dict[str, Any]) -> R:
    """One stored row as its record: a row of the wrong shape is a StoreError naming the database and the field."""
    try:
        return make(row)
    except RecordError as e:
        raise StoreError(
            f"history database {h.path}: {what} has a bad field {e.field!r}: {e.problem}",
            "move the database aside and rebuild it from the run folders: edgeq history --import <edgeq home>/runs",
        ) from None


def _run(h: History, row: dict[str, Any]) -> RunRow:
    return _read(h, f"run {row.get('run_id')!r}", RunRow.from_row, row)


def _one(h: History, sql: str, args: tuple[Any, ...] = ()) -> RunRow | None:
    rows = _rows(h, sql, args)
    return _run(h, rows[0]) if rows else None


def resolve(h: History, ref: str | None, pipeline: str | None = None, adhoc: bool | None = False) -> RunRow:
    """'latest' (optionally of a pipeline), a run id, or an unambiguous run id prefix. Unknown -> StoreError naming it.

    `latest` is the latest pipeline run (adhoc False), the latest `edgeq bench` run (True) or either (None)."""
    ref = ref or "latest"
    if ref == "latest":
        flag = None if adhoc is None else int(adhoc)
        run = _one(h, _LATEST, (pipeline, pipeline, flag, flag))
        if run is None:
            raise StoreError(
                f"no runs recorded in {h.path}" + (f" for pipeline {pipeline!r}" if pipeline else ""),
                "run a pipeline first (edgeq run PIPELINE.yaml); `edgeq history` lists what is stored",
            )
        return run
    run = _one(h, _RUN_BY_ID, (ref,))
    if run is None:
        esc = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = _rows(h, _RUN_BY_PREFIX, (esc + "%",))
        if len(rows) > 1:
            raise StoreError(f"run id prefix {ref!r} matches several runs in {h.path}", "give more characters of the run id")
        run = _run(h, rows[0]) if rows else None
    if run is None:
        raise StoreError(
            f"unknown run {ref!r}: not in the history {h.path}",
            "`edgeq history` lists stored runs; a run folder can be added with `edgeq history --import DIR`",
        )
    return run


def previous(h: History, run: RunRow, include_adhoc: bool = False) -> RunRow | None:
    """The run of the same pipeline just before this one that has comparable results. Ad hoc `edgeq bench` runs are
    baselines only when asked, or for another ad hoc run."""
    adhoc_ok = int(include_adhoc or bool(run.adhoc))
    return _one(h, _PREVIOUS, (run.pipeline, run.run_id, adhoc_ok, run.started_ts, run.started_ts, run.run_id))


def validations(h: History, run_id: str) -> dict[str, ValidationRow]:
    rows = _rows(h, "SELECT * FROM validations WHERE run_id = ? ORDER BY rowid", (run_id,))
    return {r["variant"]: _read(h, f"run {run_id!r} variant {r['variant']!r}", ValidationRow.from_row, r) for r in rows}


_BENCHMARKS = (
    "SELECT b.*, s.sessions, s.spread, s.spread_std_s, s.ci_low_s, s.ci_high_s, s.ci_level, s.harness_floor_s, "
    "st.flags, st.trend, st.temp_max_c AS state_temp_max_c, st.trajectory_s, st.notes, st.session_state "
    "FROM benchmarks b LEFT JOIN benchmark_session_stats s ON s.benchmark_id = b.id "
    "LEFT JOIN benchmark_state st ON st.benchmark_id = b.id WHERE b.run_id = ? ORDER BY b.id"
)
_SESSIONS = (
    "SELECT s.* FROM benchmark_sessions s JOIN benchmarks b ON b.id = s.benchmark_id "
    "WHERE b.run_id = ? ORDER BY s.benchmark_id, s.session"
)


def _per_session(h: History, run_id: str) -> dict[int, tuple[SessionRow, ...]]:
    out: dict[int, list[SessionRow]] = {}
    for r in _rows(h, _SESSIONS, (run_id,)):
        bid = r.pop("benchmark_id")
        out.setdefault(bid, []).append(_read(h, f"run {run_id!r} benchmark session", SessionRow.from_json, r))
    return {k: tuple(v) for k, v in out.items()}


def benchmarks(h: History, run_id: str, samples: bool = False) -> list[BenchmarkRow]:
    rows = _rows(h, _BENCHMARKS, (run_id,))
    out = [_read(h, f"run {run_id!r} benchmark on {r['device']!r}", BenchmarkRow.from_row, r) for r in rows]
    per = _per_session(h, run_id)
    if per:
        out = [b.model_copy(update={"per_session": per[b.id]}) if b.id in per else b for b in out]
    if samples:
        blobs = dict(
            h.execute(
                "SELECT s.benchmark_id, s.samples FROM benchmark_samples s JOIN benchmarks b "
                "ON b.id = s.benchmark_id WHERE b.run_id = ?",
                (run_id,),
            ).fetchall()
        )
        out = [b.model_copy(update={"samples_s": tuple(unpack_samples(blobs.get(b.id)))}) for b in out]
    return out


def stages(h: History, run_id: str) -> list[StageRow]:
    rows = h.execute("SELECT stage, variant, cached, seconds FROM stages WHERE run_id = ? ORDER BY rowid", (run_id,))
    return [StageRow(stage=s, variant=v, cached=bool(c), seconds=sec) for s, v, c, sec in rows.fetchall()]


def load(h: History, run: RunRow, samples: bool = False) -> StoredRun:
    """A run with its validations, benchmarks and stage durations."""
    return StoredRun(
        **dict(run),
        validations=validations(h, run.run_id),
        benchmarks=tuple(benchmarks(h, run.run_id, samples)),
        stages=tuple(stages(h, run.run_id)),
        numeric=numeric.read(h, run.run_id) or None,
    )


def list_runs(
    h: History, pipeline: str | None = None, device: str | None = None, limit: int = 20, adhoc: bool | None = None
) -> list[StoredRun]:
    """Newest first; adhoc None: every run, True: only `edgeq bench` runs, False: only pipeline runs."""
    out = []
    flag = None if adhoc is None else int(adhoc)
    for r in _rows(h, _LIST, (pipeline, pipeline, device, device, flag, flag, int(limit))):
        full = load(h, _run(h, r))
        if device:
            full = full.model_copy(update={"benchmarks": tuple(b for b in full.benchmarks if b.device == device)})
        out.append(full)
    return out


def trend(h: History, pipeline: str, before_ts: float, limit: int) -> list[StoredRun]:
    """The last `limit` runs of a pipeline up to (and including) a time, oldest first, without samples."""
    rows = _rows(h, _TREND, (pipeline, before_ts, int(limit)))
    return [load(h, _run(h, r)) for r in reversed(rows)]


def all_runs(h: History, pipeline: str | None = None) -> list[RunRow]:
    """Every run (of a pipeline), oldest first, without results: what a backfill walks."""
    return [_run(h, r) for r in _rows(h, _ALL, (pipeline, pipeline))]


def latest_per_pipeline(h: History) -> list[RunRow]:
    """The newest run of every pipeline (what the exporter and the textfile show)."""
    out = []
    for (p,) in h.execute(_PIPELINES).fetchall():
        run = _one(h, _LATEST_OF, (p,))
        if run is not None:
            out.append(run)
    return out


def last_success_ts(h: History, pipeline: str) -> float | None:
    row = h.execute(
        "SELECT max(coalesce(finished_ts, started_ts)) FROM runs WHERE pipeline = ? AND status = 'ok' AND adhoc = 0", (pipeline,)
    ).fetchone()
    return row[0] if row else None


def open_for_reading(db_path: Path | None = None) -> History:
    return open_history(db_path, create=False)


def run_at(h: History, pipeline: str, ts: float) -> RunRow | None:
    """The pipeline run a dashboard point at `ts` (seconds since the epoch) shows: the last one finished by then."""
    return _one(h, _AT, (pipeline, ts))


def pipeline_version(h: History, pipeline: str) -> tuple[int, float, float]:
    """Changes whenever a run of the pipeline (ad hoc ones too: they are in its trend) is recorded, recorded again or
    removed: every write replaces a run whole with a new recorded_ts. What a cached report of one of its runs is keyed on."""
    n, newest, total = h.execute(
        "SELECT count(*), max(recorded_ts), total(recorded_ts) FROM runs WHERE pipeline = ?", (pipeline,)
    ).fetchone()
    return int(n), float(newest or 0.0), float(total)
