"""Results history: every validate and benchmark result of every run, in one SQLite file, and comparisons over time.

    record_run(manifest | path, db_path=None)   store a finished run (idempotent per run_id)
    compare_runs(base, candidate, ...)          latency (ratio + Mann-Whitney U), accuracy, memory, energy
    open_for_reading(db_path) + query.*         runs, results, trends

The database is $EDGEQ_HISTORY_DB, else <edgeq home>/history.db. Errors are StoreError (exit 10).
"""

from __future__ import annotations

from edgeq.results.compare import compare, compare_runs, compare_with_previous
from edgeq.results.db import DB_ENV, History, default_db_path, open_history
from edgeq.results.query import open_for_reading
from edgeq.results.record import import_runs, load_manifest, record_run

__all__ = [
    "DB_ENV",
    "History",
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


def record_history(manifest: dict, home=None):
    """Record a just-finished run; returns the StoreError instead of raising (the pipeline decides what it means)."""
    from edgeq.errors import StoreError

    try:
        record_run(manifest, default_db_path(home))
    except StoreError as e:
        e.result = manifest  # so `edgeq run --json` still reports what was measured
        return e
    return None
