"""Read the history: resolve run references, list runs, load a run's results (optionally with raw samples)."""

from __future__ import annotations

import json
from pathlib import Path

from edgeq.errors import StoreError
from edgeq.results.db import History, open_history
from edgeq.results.record import unpack_samples

RESULT_STATUSES = ("ok", "gate_failed", "fleet_failed")  # runs whose measurements are complete enough to compare

_RUN_COLS = ("run_id, pipeline, pipeline_file, pipeline_sha256, status, started, finished, started_ts, finished_ts, "
             "wall_seconds, error, runtime_name, runtime_version, versions, gates_failed, fleet_failed, manifest_path")
_BENCH_COLS = ("device, variant, threads, ok, error, kind, p50_s, p90_s, p99_s, mean_s, std_s, min_s, max_s, count, init_s, "
               "first_invoke_s, peak_rss_bytes, runtime_name, runtime_version, delegate, power_probe, power_mean_w, "
               "power_idle_w, energy_j, arch, board_model, cpu_model, hostname, temp_c, throttled, board, samples_stride, "
               "raw_path")


def _run_dict(row) -> dict:
    d = dict(zip([c.strip() for c in _RUN_COLS.split(",")], row))
    for k in ("versions", "gates_failed", "fleet_failed"):
        d[k] = json.loads(d[k] or "null")
    d["runtime"] = {"name": d.pop("runtime_name"), "version": d.pop("runtime_version")}
    return d


def resolve(h: History, ref: str | None, pipeline: str | None = None) -> dict:
    """'latest' (optionally of a pipeline), a run id, or an unambiguous run id prefix. Unknown -> StoreError naming it."""
    ref = ref or "latest"
    where, args = "", []
    if pipeline:
        where, args = " WHERE pipeline = ?", [pipeline]
    if ref == "latest":
        row = h.execute(f"SELECT {_RUN_COLS} FROM runs{where} ORDER BY started_ts DESC, run_id DESC LIMIT 1", args).fetchone()
        if row is None:
            raise StoreError(f"no runs recorded in {h.path}" + (f" for pipeline {pipeline!r}" if pipeline else ""),
                             "run a pipeline first (edgeq run PIPELINE.yaml); `edgeq history` lists what is stored")
        return _run_dict(row)
    row = h.execute(f"SELECT {_RUN_COLS} FROM runs WHERE run_id = ?", (ref,)).fetchone()
    if row is None:
        esc = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = h.execute(f"SELECT {_RUN_COLS} FROM runs WHERE run_id LIKE ? ESCAPE '\\' LIMIT 2", (esc + "%",)).fetchall()
        if len(rows) == 1:
            row = rows[0]
        elif len(rows) > 1:
            raise StoreError(f"run id prefix {ref!r} matches several runs in {h.path}", "give more characters of the run id")
    if row is None:
        raise StoreError(f"unknown run {ref!r}: not in the history {h.path}",
                         "`edgeq history` lists stored runs; a run folder can be added with `edgeq history --import DIR`")
    return _run_dict(row)


def previous(h: History, run: dict) -> dict | None:
    """The run of the same pipeline just before this one that has comparable results."""
    row = h.execute(
        f"SELECT {_RUN_COLS} FROM runs WHERE pipeline = ? AND run_id != ? AND status IN ({','.join('?' * len(RESULT_STATUSES))})"
        " AND (started_ts < ? OR (started_ts = ? AND run_id < ?)) ORDER BY started_ts DESC, run_id DESC LIMIT 1",
        (run["pipeline"], run["run_id"], *RESULT_STATUSES, run["started_ts"], run["started_ts"], run["run_id"])).fetchone()
    return None if row is None else _run_dict(row)


def validations(h: History, run_id: str) -> dict:
    rows = h.execute("SELECT variant, type, sha256, size_bytes, accuracy, test_samples, accuracy_drop, accuracy_drop_budget, "
                     "size_ratio, gates_passed, gates_failed FROM validations WHERE run_id = ? ORDER BY rowid", (run_id,))
    out = {}
    for r in rows.fetchall():
        out[r[0]] = {"type": r[1], "sha256": r[2], "size_bytes": r[3], "accuracy": r[4], "test_samples": r[5],
                     "accuracy_drop": r[6], "accuracy_drop_budget": r[7], "size_ratio": r[8],
                     "gates_passed": None if r[9] is None else bool(r[9]), "gates_failed": json.loads(r[10] or "[]")}
    return out


def benchmarks(h: History, run_id: str, samples: bool = False) -> list[dict]:
    cols = _BENCH_COLS + (", samples" if samples else "")
    names = [c.strip() for c in cols.split(",")]
    out = []
    for r in h.execute(f"SELECT {cols} FROM benchmarks WHERE run_id = ? ORDER BY id", (run_id,)).fetchall():
        d = dict(zip(names, r))
        d["ok"] = bool(d["ok"])
        d["board"] = json.loads(d["board"] or "{}")
        d["delegate"] = json.loads(d["delegate"]) if d["delegate"] else None
        d["throttled"] = json.loads(d["throttled"]) if d["throttled"] else None
        if samples:
            d["samples_s"] = unpack_samples(d.pop("samples"))
        out.append(d)
    return out


def stages(h: History, run_id: str) -> list[dict]:
    rows = h.execute("SELECT stage, variant, cached, seconds FROM stages WHERE run_id = ? ORDER BY rowid", (run_id,))
    return [{"stage": s, "variant": v, "cached": bool(c), "seconds": sec} for s, v, c, sec in rows.fetchall()]


def load(h: History, run: dict, samples: bool = False) -> dict:
    """A run with its validations, benchmarks and stage durations."""
    return {**run, "validations": validations(h, run["run_id"]), "benchmarks": benchmarks(h, run["run_id"], samples),
            "stages": stages(h, run["run_id"])}


def list_runs(h: History, pipeline: str | None = None, device: str | None = None, limit: int = 20) -> list[dict]:
    where, args = [], []
    if pipeline:
        where.append("pipeline = ?")
        args.append(pipeline)
    if device:
        where.append("run_id IN (SELECT run_id FROM benchmarks WHERE device = ?)")
        args.append(device)
    sql = f"SELECT {_RUN_COLS} FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY started_ts DESC, run_id DESC LIMIT ?"
    runs = [_run_dict(r) for r in h.execute(sql, (*args, int(limit))).fetchall()]
    out = []
    for r in runs:
        full = load(h, r)
        if device:
            full["benchmarks"] = [b for b in full["benchmarks"] if b["device"] == device]
        out.append(full)
    return out


def trend(h: History, pipeline: str, before_ts: float, limit: int) -> list[dict]:
    """The last `limit` runs of a pipeline up to (and including) a time, oldest first, without samples."""
    rows = h.execute(f"SELECT {_RUN_COLS} FROM runs WHERE pipeline = ? AND started_ts <= ? "
                     "ORDER BY started_ts DESC, run_id DESC LIMIT ?", (pipeline, before_ts, int(limit))).fetchall()
    return [load(h, _run_dict(r)) for r in reversed(rows)]


def latest_per_pipeline(h: History) -> list[dict]:
    """The newest run of every pipeline (what the exporter and the textfile show)."""
    out = []
    for (pipeline,) in h.execute("SELECT DISTINCT pipeline FROM runs ORDER BY pipeline").fetchall():
        row = h.execute(f"SELECT {_RUN_COLS} FROM runs WHERE pipeline = ? ORDER BY started_ts DESC, run_id DESC LIMIT 1",
                        (pipeline,)).fetchone()
        out.append(_run_dict(row))
    return out


def last_success_ts(h: History, pipeline: str) -> float | None:
    row = h.execute("SELECT max(coalesce(finished_ts, started_ts)) FROM runs WHERE pipeline = ? AND status = 'ok'",
                    (pipeline,)).fetchone()
    return row[0] if row else None


def open_for_reading(db_path: Path | None = None) -> History:
    return open_history(db_path, create=False)
