"""Store one run manifest (validate + benchmark results, raw latency samples, versions, board facts) in the history.

One transaction per run; recording the same run again replaces it (idempotent per run_id).
"""

from __future__ import annotations

import array
import datetime as dt
import json
import sys
import time
from pathlib import Path

from edgeq.errors import StoreError
from edgeq.results.db import open_history
from edgeq.results.quality import quality_summary

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


def pack_samples(samples) -> bytes:
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


def load_manifest(source) -> dict:
    """A manifest dict, a manifest.json path, or a run folder holding one."""
    if isinstance(source, dict):
        return source
    p = Path(source)
    if p.is_dir():
        p = p / "manifest.json"
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise StoreError(
            f"no run manifest at {p}", "give a run folder (<edgeq home>/runs/<run id>) or its manifest.json"
        ) from None
    except (OSError, ValueError) as e:
        raise StoreError(f"run manifest {p} is unreadable: {e}", "the run folder is damaged; rerun the pipeline") from None
    if not isinstance(doc, dict) or not doc.get("run_id") or not doc.get("pipeline"):
        raise StoreError(
            f"{p} is not an edgeq run manifest (no run_id/pipeline)", "give <edgeq home>/runs/<run id>/manifest.json"
        )
    doc.setdefault("manifest_path", str(p))
    return doc


def _raw(row: dict) -> tuple[list | None, int | None, str | None]:
    """The raw latency samples (seconds) of a benchmark row: the agent's JSON beside the manifest, or inline."""
    raw = row.get("raw")
    path = None
    if isinstance(raw, str):
        path = raw
        try:
            raw = json.loads(Path(raw).read_text())
        except (OSError, ValueError):
            return None, None, path  # a moved or pruned run folder: the summary is still worth keeping
    if isinstance(raw, dict) and isinstance(raw.get("samples_s"), list):
        return raw["samples_s"], int(raw.get("samples_stride") or 1), path
    return None, None, path


def _f(x, scale: float = 1.0):
    return None if x is None else float(x) * scale


def _budget(manifest: dict, variant: str) -> float | None:
    q = (manifest.get("params") or {}).get("quantize") or {}
    for v in q.get("variants") or []:
        key = v.get("name") or v.get("type")
        if key == variant and v.get("gates") and v["gates"].get("max_accuracy_drop") is not None:
            return float(v["gates"]["max_accuracy_drop"])
    g = ((manifest.get("params") or {}).get("validate") or {}).get("gates") or {}
    return None if g.get("max_accuracy_drop") is None else float(g["max_accuracy_drop"])


def _stage_rows(run_id: str, stages: dict) -> list[tuple]:
    rows = []
    for name, st in (stages or {}).items():
        if not isinstance(st, dict):
            continue
        if name == "train":
            rows.append((run_id, name, "", int(bool(st.get("cached"))), _f(st.get("seconds"))))
        elif name in ("quantize", "validate"):
            for variant, v in st.items():
                if isinstance(v, dict):
                    rows.append((run_id, name, variant, int(bool(v.get("cached"))), _f(v.get("seconds"))))
        elif name == "deploy" and isinstance(st.get("results"), dict):
            for variant, r in st["results"].items():
                if isinstance(r, dict):
                    rows.append((run_id, name, variant, 0, _f(r.get("seconds"))))
    return rows


def _bench_row(run_id: str, b: dict) -> tuple[tuple, bytes | None]:
    lat = b.get("latency_ms") or {}
    power = b.get("power") or {}
    board = b.get("board") or {}
    rt = b.get("runtime") or {}
    samples, stride, path = _raw(b) if b.get("ok") else (None, None, None)
    thr = board.get("throttled")
    row = (
        run_id,
        b.get("device") or "?",
        b.get("variant") or "?",
        b.get("threads"),
        int(bool(b.get("ok"))),
        b.get("error"),
        b.get("kind") or b.get("status"),
        *[_f(lat.get(k), 1e-3) for k in _LAT],
        b.get("count"),
        _f(b.get("init_ms"), 1e-3),
        _f(b.get("first_invoke_ms"), 1e-3),
        b.get("peak_rss_bytes"),
        rt.get("name"),
        rt.get("version"),
        json.dumps(b.get("delegate")) if b.get("delegate") else None,
        power.get("probe"),
        _f(power.get("mean_w")),
        _f(power.get("idle_w")),
        _f(power.get("joules_per_inference")),
        board.get("arch"),
        board.get("board_model"),
        board.get("cpu_model"),
        board.get("hostname"),
        _f(board.get("temp_c")),
        None if thr is None else json.dumps(thr),
        json.dumps(board, default=str),
        stride,
        path,
    )
    return row, (pack_samples(samples) if samples else None)


_INSERT_RUN = "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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


def record_run(manifest, db_path: Path | None = None, *, timeout: float | None = None) -> str:
    """Store a run (a manifest dict, a manifest.json path or a run folder). Idempotent per run_id. Returns the run id.

    Runs still in progress are refused: their results are not final."""
    m = load_manifest(manifest)
    run_id, status = str(m["run_id"]), m.get("status") or "unknown"
    if status == "running":
        raise StoreError(
            f"run {run_id} is still running (or was killed before it finished): its results are not final",
            "record it after it finishes; a killed run has nothing worth comparing",
        )
    started_ts = parse_ts(m.get("started")) or time.time()
    rt = m.get("runtime") or {}
    run_row = (
        run_id,
        str(m["pipeline"]),
        m.get("pipeline_file"),
        m.get("pipeline_sha256"),
        status,
        m.get("started"),
        m.get("finished"),
        started_ts,
        parse_ts(m.get("finished")),
        _f(m.get("wall_seconds")),
        m.get("error"),
        rt.get("name"),
        rt.get("version"),
        json.dumps(m.get("versions") or {}),
        json.dumps(m.get("gates_failed") or []),
        json.dumps(m.get("fleet_failed") or []),
        m.get("manifest_path") or (str(Path(m["run_dir"]) / "manifest.json") if m.get("run_dir") else None),
        time.time(),
    )
    val_rows = []
    for variant, v in (m.get("variants") or {}).items():
        if v.get("accuracy") is None and v.get("size_bytes") is None:
            continue
        gates = v.get("gates") or {}
        val_rows.append(
            (
                run_id,
                variant,
                v.get("type"),
                v.get("sha256"),
                v.get("size_bytes"),
                _f(v.get("accuracy")),
                v.get("test_samples"),
                _f(v.get("accuracy_drop")),
                _budget(m, variant),
                _f(v.get("size_ratio")),
                None if not gates else int(bool(gates.get("passed"))),
                json.dumps(gates.get("failed") or []),
                json.dumps(quality_summary(v)),
            )
        )
    bench_rows = [_bench_row(run_id, b) for b in (m.get("benchmarks") or []) if isinstance(b, dict)]
    stage_rows = _stage_rows(run_id, m.get("stages") or {})

    with open_history(db_path, create=True, timeout=timeout) as h, h.write(f"recording run {run_id}") as c:
        c.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))  # cascades: recording again replaces the run
        c.execute(_INSERT_RUN, run_row)
        c.executemany(_INSERT_STAGE, stage_rows)
        c.executemany(_INSERT_VALIDATION, val_rows)
        for row, blob in bench_rows:
            bid = c.execute(_INSERT_BENCH, row).lastrowid
            if blob is not None:
                c.execute(_INSERT_SAMPLES, (bid, blob))
    return run_id


def import_runs(sources, db_path: Path | None = None) -> dict:
    """Record every finished run found in the given run folders, manifest files or runs/ folders."""
    found: list[Path] = []
    for s in sources:
        p = Path(s)
        if p.is_dir() and not (p / "manifest.json").exists():
            found += sorted(x for x in p.glob("*/manifest.json"))
        else:
            found.append(p)
    recorded, skipped = [], []
    for p in found:
        try:
            m = load_manifest(p)
            if m.get("status") == "running":
                skipped.append({"path": str(p), "reason": "still running or killed"})
                continue
            recorded.append(record_run(m, db_path))
        except StoreError as e:
            if "history database" in e.message:
                raise
            skipped.append({"path": str(p), "reason": e.message})
    return {"recorded": recorded, "skipped": skipped}
