"""Read the history: resolve run references, list runs, load a run's results (optionally with raw samples)."""

from __future__ import annotations

import json
from pathlib import Path

from edgeq.errors import StoreError
from edgeq.results.db import History, open_history
from edgeq.results.record import unpack_samples

RESULT_STATUSES = ("ok", "gate_failed", "fleet_failed")  # runs whose measurements are complete enough to compare

# Literal SQL only (no string building); `SELECT *` is cheap because the sample blobs live in their own table.
_RUN_BY_ID = "SELECT * FROM runs WHERE run_id = ?"
_RUN_BY_PREFIX = "SELECT * FROM runs WHERE run_id LIKE ? ESCAPE '\\' ORDER BY run_id LIMIT 2"
_LATEST = "SELECT * FROM runs WHERE (? IS NULL OR pipeline = ?) ORDER BY started_ts DESC, run_id DESC LIMIT 1"
_PREVIOUS = (
    "SELECT * FROM runs WHERE pipeline = ? AND run_id != ? AND status IN ('ok', 'gate_failed', 'fleet_failed') "
    "AND (started_ts < ? OR (started_ts = ? AND run_id < ?)) ORDER BY started_ts DESC, run_id DESC LIMIT 1"
)
_LIST = (
    "SELECT * FROM runs WHERE (? IS NULL OR pipeline = ?) "
    "AND (? IS NULL OR run_id IN (SELECT run_id FROM benchmarks WHERE device = ?)) "
    "ORDER BY started_ts DESC, run_id DESC LIMIT ?"
)
_TREND = "SELECT * FROM runs WHERE pipeline = ? AND started_ts <= ? ORDER BY started_ts DESC, run_id DESC LIMIT ?"
_PIPELINES = "SELECT DISTINCT pipeline FROM runs ORDER BY pipeline"
_LATEST_OF = "SELECT * FROM runs WHERE pipeline = ? ORDER BY started_ts DESC, run_id DESC LIMIT 1"


def _rows(h: History, sql: str, args=()) -> list[dict]:
    cur = h.execute(sql, args)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=False)) for r in cur.fetchall()]


def _run_dict(d: dict) -> dict:
    d = dict(d)
    for k in ("versions", "gates_failed", "fleet_failed"):
        d[k] = json.loads(d[k] or "null")
    d["runtime"] = {"name": d.pop("runtime_name"), "version": d.pop("runtime_version")}
    d.pop("recorded_ts", None)
    return d


def _one(h: History, sql: str, args=()) -> dict | None:
    rows = _rows(h, sql, args)
    return _run_dict(rows[0]) if rows else None


def resolve(h: History, ref: str | None, pipeline: str | None = None) -> dict:
    """'latest' (optionally of a pipeline), a run id, or an unambiguous run id prefix. Unknown -> StoreError naming it."""
    ref = ref or "latest"
    if ref == "latest":
        run = _one(h, _LATEST, (pipeline, pipeline))
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
        run = _run_dict(rows[0]) if rows else None
    if run is None:
        raise StoreError(
            f"unknown run {ref!r}: not in the history {h.path}",
            "`edgeq history` lists stored runs; a run folder can be added with `edgeq history --import DIR`",
        )
    return run


def previous(h: History, run: dict) -> dict | None:
    """The run of the same pipeline just before this one that has comparable results."""
    return _one(h, _PREVIOUS, (run["pipeline"], run["run_id"], run["started_ts"], run["started_ts"], run["run_id"]))


def validations(h: History, run_id: str) -> dict:
    out = {}
    for r in _rows(h, "SELECT * FROM validations WHERE run_id = ? ORDER BY rowid", (run_id,)):
        r.pop("run_id")
        r["gates_passed"] = None if r["gates_passed"] is None else bool(r["gates_passed"])
        r["gates_failed"] = json.loads(r["gates_failed"] or "[]")
        r["quality"] = json.loads(r.get("quality") or "{}")
        out[r.pop("variant")] = r
    return out


def benchmarks(h: History, run_id: str, samples: bool = False) -> list[dict]:
    out = []
    for d in _rows(h, "SELECT * FROM benchmarks WHERE run_id = ? ORDER BY id", (run_id,)):
        d.pop("run_id")
        d["ok"] = bool(d["ok"])
        d["board"] = json.loads(d["board"] or "{}")
        d["delegate"] = json.loads(d["delegate"]) if d["delegate"] else None
        d["throttled"] = json.loads(d["throttled"]) if d["throttled"] else None
        out.append(d)
    if samples:
        blobs = dict(
            h.execute(
                "SELECT s.benchmark_id, s.samples FROM benchmark_samples s JOIN benchmarks b "
                "ON b.id = s.benchmark_id WHERE b.run_id = ?",
                (run_id,),
            ).fetchall()
        )
        for d in out:
            d["samples_s"] = unpack_samples(blobs.get(d["id"]))
    return out


def stages(h: History, run_id: str) -> list[dict]:
    rows = h.execute("SELECT stage, variant, cached, seconds FROM stages WHERE run_id = ? ORDER BY rowid", (run_id,))
    return [{"stage": s, "variant": v, "cached": bool(c), "seconds": sec} for s, v, c, sec in rows.fetchall()]


def load(h: History, run: dict, samples: bool = False) -> dict:
    """A run with its validations, benchmarks and stage durations."""
    return {
        **run,
        "validations": validations(h, run["run_id"]),
        "benchmarks": benchmarks(h, run["run_id"], samples),
        "stages": stages(h, run["run_id"]),
    }


def list_runs(h: History, pipeline: str | None = None, device: str | None = None, limit: int = 20) -> list[dict]:
    out = []
    for r in _rows(h, _LIST, (pipeline, pipeline, device, device, int(limit))):
        full = load(h, _run_dict(r))
        if device:
            full["benchmarks"] = [b for b in full["benchmarks"] if b["device"] == device]
        out.append(full)
    return out


def trend(h: History, pipeline: str, before_ts: float, limit: int) -> list[dict]:
    """The last `limit` runs of a pipeline up to (and including) a time, oldest first, without samples."""
    rows = _rows(h, _TREND, (pipeline, before_ts, int(limit)))
    return [load(h, _run_dict(r)) for r in reversed(rows)]


def latest_per_pipeline(h: History) -> list[dict]:
    """The newest run of every pipeline (what the exporter and the textfile show)."""
    return [_one(h, _LATEST_OF, (p,)) for (p,) in h.execute(_PIPELINES).fetchall()]


def last_success_ts(h: History, pipeline: str) -> float | None:
    row = h.execute(
        "SELECT max(coalesce(finished_ts, started_ts)) FROM runs WHERE pipeline = ? AND status = 'ok'", (pipeline,)
    ).fetchone()
    return row[0] if row else None


def open_for_reading(db_path: Path | None = None) -> History:
    return open_history(db_path, create=False)
