"""Results history: every validate and benchmark result of every run, in one SQLite file, and comparisons over time.

    record_run(run, db_path=None)               store a finished run (a RunManifest, or a stored one: load_manifest(path))
    compare_runs(base, candidate, ...)          a Comparison: latency (ratio + Mann-Whitney U), accuracy, memory, energy
    open_for_reading(db_path) + query.*         records (edgeq.results.rows): runs, results, trends

The database is $EDGEQ_HISTORY_DB, else <edgeq home>/history.db. Errors are StoreError (exit 10).
"""

from __future__ import annotations

from pathlib import Path

from edgeq.errors import StoreError
from edgeq.records.run import RunManifest
from edgeq.results.compare import compare, compare_runs, compare_with_previous
from edgeq.results.db import DB_ENV, History, default_db_path, open_history
from edgeq.results.query import open_for_reading
from edgeq.results.record import ImportReport, import_runs, load_manifest, record_run
from edgeq.results.rows import BenchmarkRow, RunRow, StageRow, StoredRun, ValidationRow

__all__ = [
    "DB_ENV",
    "BenchmarkRow",
    "History",
    "ImportReport",
    "RunRow",
    "StageRow",
    "StoredRun",
    "ValidationRow",
    "compare",
    "compare_runs",
    "compare_with_previous",
    "default_db_path",
    "import_runs",
    "load_manifest",
    "open_for_reading",
    "open_history",
    "record_run",
    "record_history",
]


def record_history(manifest: RunManifest, home: Path | None = None, run_dir: Path | None = None) -> StoreError | None:
    """Record a just-finished run; returns the StoreError instead of raising (the pipeline decides what it means).

    With run_dir, the error's hint says how to store that run once the history is usable again."""
    try:
        record_run(manifest, default_db_path(home))
        if run_dir is not None:  # per-op profiles (benchmark.ops): tables of their own, after the run's row
            from edgeq.results.opstore import record_run_profiles

            record_run_profiles(manifest.run_id, run_dir, default_db_path(home))
    except StoreError as e:
        hint = e.hint
        if run_dir is not None:
            later = f"the run's results are kept in {run_dir}: store them later with `edgeq history --import {run_dir}`"
            hint = f"{hint}; {later}" if hint else later
        return StoreError(e.message, hint, result=manifest)  # so `edgeq run --json` still reports what was measured
    return None
