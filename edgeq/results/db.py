"""The history database: one SQLite file (WAL, busy timeout, versioned schema), errors mapped to StoreError.

Why SQLite: embedded, one file, safe for several writers on one machine (WAL + BEGIN IMMEDIATE
serialises them; each waits up to the busy timeout), and readable while a run writes.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from edgeq import paths
from edgeq.errors import StoreError

DB_ENV = "EDGEQ_HISTORY_DB"
TIMEOUT_ENV = "EDGEQ_HISTORY_TIMEOUT"
DEFAULT_TIMEOUT_S = 30.0  # a nightly run and a manual run may record at the same moment; a write takes milliseconds
# 2: validations.quality (mixed precision, QAT, worst int8 layers); 3: benchmark sessions; 4: numeric checks;
# 5: board state through the timed window (benchmark_state); 6: runs.adhoc (an `edgeq bench` run);
# 7: benchmark_sessions.min_s; 8: per-op profiles (op_profiles, op_profile_ops, kernel_fingerprints)
SCHEMA_VERSION = 8

SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    pipeline TEXT NOT NULL,
    pipeline_file TEXT,
    pipeline_sha256 TEXT,
    status TEXT NOT NULL,
    started TEXT,
    finished TEXT,
    started_ts REAL NOT NULL,
    finished_ts REAL,
    wall_seconds REAL,
    error TEXT,
    runtime_name TEXT,
    runtime_version TEXT,
    versions TEXT NOT NULL DEFAULT '{}',        -- JSON: edgeq, python, tensorflow, keras, numpy, ...
    gates_failed TEXT NOT NULL DEFAULT '[]',    -- JSON list
    fleet_failed TEXT NOT NULL DEFAULT '[]',    -- JSON list
    manifest_path TEXT,
    recorded_ts REAL NOT NULL,
    adhoc INTEGER NOT NULL DEFAULT 0            -- 1: `edgeq bench` by hand, never a baseline unless asked
);
CREATE INDEX IF NOT EXISTS runs_by_pipeline ON runs (pipeline, started_ts);
CREATE INDEX IF NOT EXISTS runs_by_time ON runs (started_ts);
CREATE TABLE IF NOT EXISTS stages (
    run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    stage TEXT NOT NULL,
    variant TEXT NOT NULL DEFAULT '',
    cached INTEGER NOT NULL,
    seconds REAL,
    PRIMARY KEY (run_id, stage, variant)
);
CREATE TABLE IF NOT EXISTS validations (
    run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    variant TEXT NOT NULL,
    type TEXT,
    sha256 TEXT,
    size_bytes INTEGER,
    accuracy REAL,
    test_samples INTEGER,
    accuracy_drop REAL,          -- fp32 accuracy minus this variant's (accuracy units, 0..1)
    accuracy_drop_budget REAL,   -- the max_accuracy_drop gate that applied, if any
    size_ratio REAL,
    gates_passed INTEGER,
    gates_failed TEXT NOT NULL DEFAULT '[]',
    quality TEXT NOT NULL DEFAULT '{}',  -- JSON: qat, layers kept float, int8 op share, worst int8 layers
    PRIMARY KEY (run_id, variant)
);
CREATE TABLE IF NOT EXISTS benchmarks (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    device TEXT NOT NULL,
    variant TEXT NOT NULL,
    threads INTEGER,
    ok INTEGER NOT NULL,
    error TEXT,
    kind TEXT,
    p50_s REAL, p90_s REAL, p99_s REAL, mean_s REAL, std_s REAL, min_s REAL, max_s REAL,
    count INTEGER,
    init_s REAL,
    first_invoke_s REAL,
    peak_rss_bytes INTEGER,
    runtime_name TEXT,
    runtime_version TEXT,
    delegate TEXT,
    power_probe TEXT,
    power_mean_w REAL,
    power_idle_w REAL,
    energy_j REAL,               -- joules per inference (mean power x mean latency)
    arch TEXT,
    board_model TEXT,
    cpu_model TEXT,
    hostname TEXT,
    temp_c REAL,
    throttled TEXT,
    board TEXT NOT NULL DEFAULT '{}',   -- JSON: every board fact the agent reported
    samples_stride INTEGER,      -- the agent kept every n-th sample (1 = all)
    raw_path TEXT
);
CREATE INDEX IF NOT EXISTS benchmarks_by_run ON benchmarks (run_id);
CREATE INDEX IF NOT EXISTS benchmarks_by_device ON benchmarks (device, run_id);
CREATE TABLE IF NOT EXISTS benchmark_samples (   -- apart, so listing and exporting never read the blobs
    benchmark_id INTEGER PRIMARY KEY REFERENCES benchmarks (id) ON DELETE CASCADE,
    samples BLOB NOT NULL        -- raw latency samples, seconds, float32 little-endian
);
"""

# Version 3: benchmarks of K sessions. Tables of their own, so a benchmark row (and a version-2 database's
# rows) stay exactly as they were; a benchmark without sessions simply has no rows here.
SESSIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS benchmark_session_stats (
    benchmark_id INTEGER PRIMARY KEY REFERENCES benchmarks (id) ON DELETE CASCADE,
    sessions INTEGER NOT NULL,
    spread REAL,                 -- (max - min) / median of the session medians
    spread_std_s REAL,           -- standard deviation of the session medians
    ci_low_s REAL,               -- bootstrap interval of the median of session medians
    ci_high_s REAL,
    ci_level REAL,
    harness_floor_s REAL         -- a no-op model's invoke time on the board (median over sessions)
);
CREATE TABLE IF NOT EXISTS benchmark_sessions (
    benchmark_id INTEGER NOT NULL REFERENCES benchmarks (id) ON DELETE CASCADE,
    session INTEGER NOT NULL,
    p50_s REAL, p90_s REAL, p99_s REAL, mean_s REAL,
    count INTEGER,
    started TEXT,
    harness_floor_s REAL,
    min_s REAL,                  -- version 7: the session's fastest timed invoke, what compare decides on
    PRIMARY KEY (benchmark_id, session)
);
"""

# Version 5: the board's state through each benchmark (edgeq.records.boardstate). A table of its own, like the
# sessions: older rows simply have none.
# numeric checks of a run (edgeq.results.numeric reads and writes them)
NUMERIC_SCHEMA = """
CREATE TABLE IF NOT EXISTS numeric_checks (
    run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    device TEXT NOT NULL,
    variant TEXT NOT NULL DEFAULT '',
    ok INTEGER NOT NULL,
    rows INTEGER,                -- golden input rows compared
    ops_compared INTEGER,
    tolerance_lsb REAL,          -- quantized tensors: quantization steps
    tolerance_rel REAL,          -- float tensors: relative to the host's largest value
    first_op_index INTEGER,      -- the first op over the tolerance (NULL: every op matches)
    first_op TEXT,
    first_tensor TEXT,
    first_error REAL,
    first_unit TEXT,             -- lsb, rel or mismatch (shape or dtype differ)
    worst_op_index INTEGER,
    worst_error REAL,
    worst_unit TEXT,
    runtime_name TEXT,
    runtime_version TEXT,
    kind TEXT,                   -- why the check could not run (the board's error kind)
    error TEXT,
    PRIMARY KEY (run_id, device, variant)
);
"""

STATE_SCHEMA = """
CREATE TABLE IF NOT EXISTS benchmark_state (
    benchmark_id INTEGER PRIMARY KEY REFERENCES benchmarks (id) ON DELETE CASCADE,
    flags TEXT NOT NULL DEFAULT '[]',   -- JSON list: throttled, freq_drop, foreign_load, hot, cooldown_timeout
    trend REAL,                  -- median of the last 10 % of samples / of the first 10 % (median over sessions)
    temp_max_c REAL,             -- the hottest reading before, during or after the timed windows
    trajectory_s TEXT,           -- JSON list: median latency per window (seconds), sustained mode
    notes TEXT,                  -- JSON list: what the agent could not do as asked (governor, cool-down)
    session_state TEXT           -- JSON list per session: {session, flags, trend, temp_max_c, cooldown_s}
);
"""


# Version 8: per-op profiles (`edgeq bench --ops`, edgeq.results.opstore). Tables of their own: a run without
# profiles has no rows here. `doc` keeps the whole OpProfile (read back with OpProfile.from_stored); the per-op rows
# and the columns are there for queries.
OPS_SCHEMA = """
CREATE TABLE IF NOT EXISTS op_profiles (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    device TEXT NOT NULL,
    variant TEXT NOT NULL,
    threads INTEGER NOT NULL,
    kind TEXT NOT NULL,          -- ok, unsupported (reason, fix), failed (error)
    sessions INTEGER NOT NULL,
    reason TEXT,
    fix TEXT,
    error TEXT,
    runtime TEXT,                -- "litert-compiled 2.3.0"
    invoke_p50_us REAL,          -- profiled Invoke: median of session p50s
    invoke_ci_low_us REAL,
    invoke_ci_high_us REAL,
    unprofiled_p50_us REAL,      -- the CompiledModel without the profiler
    interpreter_p50_us REAL,     -- the latency sessions' p50 of the same bench (the Interpreter)
    overhead_us REAL,
    coverage REAL,               -- sum of op p50s / invoke p50
    fingerprint TEXT,            -- kernel_fingerprints.fingerprint
    doc TEXT NOT NULL DEFAULT '{}',   -- JSON: the whole OpProfile
    UNIQUE (run_id, device, variant, threads)
);
CREATE INDEX IF NOT EXISTS op_profiles_by_run ON op_profiles (run_id);
CREATE TABLE IF NOT EXISTS op_profile_ops (
    profile_id INTEGER NOT NULL REFERENCES op_profiles (id) ON DELETE CASCADE,
    node TEXT NOT NULL,          -- s<section>/<n> (XNNPACK operator) or op<index> (interpreter op)
    op TEXT NOT NULL,
    kernel TEXT,
    maps_to_index INTEGER,
    maps_to_op TEXT,
    mapping TEXT,                -- exact, guess, none
    p50_us REAL,                 -- median of session medians
    ci_low_us REAL,
    ci_high_us REAL,
    session_p50_us TEXT NOT NULL DEFAULT '[]',   -- JSON list, session order
    PRIMARY KEY (profile_id, node, op)
);
CREATE TABLE IF NOT EXISTS kernel_fingerprints (
    fingerprint TEXT PRIMARY KEY,
    kernels TEXT NOT NULL        -- JSON: {node: {op, kernel}}
);
"""


def default_db_path(home: Path | None = None) -> Path:
    """$EDGEQ_HISTORY_DB, else <edgeq home>/history.db."""
    env = os.environ.get(DB_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return (home or paths.home()) / "history.db"


def _timeout(timeout: float | None) -> float:
    if timeout is not None:
        return timeout
    try:
        return float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S)
    except ValueError:
        return DEFAULT_TIMEOUT_S


def store_error(path: Path, exc: Exception, doing: str, timeout: float | None = None) -> StoreError:
    """Translate an sqlite3 error into a StoreError that says which file and what to do."""
    text = str(exc)
    low = text.lower()
    if "locked" in low or "busy" in low:
        return StoreError(
            f"history database {path} is locked by another process ({doing}; waited {_timeout(timeout):g}s)",
            f"wait for the other edgeq command to finish and retry; raise ${TIMEOUT_ENV} (seconds) if runs overlap often; "
            f"`fuser {path}` shows who holds it",
        )
    if "not a database" in low or "malformed" in low or "corrupt" in low or "disk image" in low:
        return StoreError(
            f"history database {path} is corrupt ({text})",
            f"move it aside (mv {path} {path}.corrupt) and rebuild it from the run folders: "
            f"edgeq history --import <edgeq home>/runs",
        )
    if "readonly" in low or "unable to open" in low or "permission" in low:
        return StoreError(
            f"history database {path} cannot be written ({text})",
            f"check the folder exists and is writable, or point ${DB_ENV} elsewhere",
        )
    return StoreError(
        f"history database {path}: {doing} failed: {text}",
        "check the file, or move it aside and rebuild: edgeq history --import <edgeq home>/runs",
    )


class History:
    """An open history database. Use as a context manager; every write is one transaction."""

    def __init__(self, path: Path, conn: sqlite3.Connection, timeout: float):
        self.path, self.conn, self.timeout = path, conn, timeout

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()

    def execute(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self.conn.execute(sql, args)
        except sqlite3.DatabaseError as e:
            raise store_error(self.path, e, "reading", self.timeout) from None

    @contextlib.contextmanager
    def write(self, doing: str = "writing") -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE takes the write lock up front, so a busy database waits (busy timeout) instead of
        failing half-way; everything inside commits together or not at all."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as e:
            raise store_error(self.path, e, doing, self.timeout) from None
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")
            raise store_error(self.path, e, doing, self.timeout) from None
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")
            raise


def open_history(db_path: Path | None = None, *, create: bool = False, timeout: float | None = None) -> History:
    """Open (and with create=True, make) the history database. Raises StoreError, never sqlite3 errors."""
    path = Path(db_path) if db_path is not None else default_db_path()
    t = _timeout(timeout)
    if not path.exists():
        if not create:
            raise StoreError(
                f"no results history at {path}",
                "run a pipeline first (edgeq run PIPELINE.yaml), or point $EDGEQ_HISTORY_DB at the database",
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(
                f"cannot create the folder of history database {path}: {e}", f"point ${DB_ENV} at a writable place"
            ) from None
    try:
        conn = sqlite3.connect(str(path), timeout=t, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as e:
        raise store_error(path, e, "opening", t) from None
    h = History(path, conn, t)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(t * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        _ensure_wal(conn, t)
        _ensure_schema(h)
    except sqlite3.DatabaseError as e:
        h.close()
        raise store_error(path, e, "opening", t) from None
    except BaseException:
        h.close()
        raise
    return h


def _ensure_wal(conn: sqlite3.Connection, timeout: float) -> None:
    # WAL is a property of the file: set once. Switching needs a brief exclusive lock, and SQLite does not
    # always call the busy handler for it, so retry while another process is switching at the same moment.
    deadline = time.monotonic() + timeout
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across app crashes, fast commits
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _ensure_schema(h: History) -> None:
    row = h.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
    if row is not None:
        v = h.conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        if v is not None and v > SCHEMA_VERSION:
            raise StoreError(
                f"history database {h.path} has schema version {v}, newer than this edgeq knows ({SCHEMA_VERSION})",
                "upgrade edgeq, or point $EDGEQ_HISTORY_DB at another database",
            )
        if v == SCHEMA_VERSION:
            return
        if v in (1, 2, 3, 4, 5, 6, 7):  # an older edgeq's database: add what versions 2 to 8 store, keep every result
            with h.write(f"upgrading the schema to version {SCHEMA_VERSION}") as c:
                if "quality" not in {r[1] for r in c.execute("PRAGMA table_info(validations)")}:
                    c.execute("ALTER TABLE validations ADD COLUMN quality TEXT NOT NULL DEFAULT '{}'")
                for stmt in _statements(SESSIONS_SCHEMA + NUMERIC_SCHEMA + STATE_SCHEMA + OPS_SCHEMA):
                    c.execute(stmt)
                if "adhoc" not in {r[1] for r in c.execute("PRAGMA table_info(runs)")}:
                    c.execute("ALTER TABLE runs ADD COLUMN adhoc INTEGER NOT NULL DEFAULT 0")
                if "min_s" not in {r[1] for r in c.execute("PRAGMA table_info(benchmark_sessions)")}:
                    c.execute("ALTER TABLE benchmark_sessions ADD COLUMN min_s REAL")
                c.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
            return
    with h.write("creating the schema") as c:
        # not executescript: it would COMMIT mid-transaction
        for stmt in _statements(SCHEMA + SESSIONS_SCHEMA + NUMERIC_SCHEMA + STATE_SCHEMA + OPS_SCHEMA):
            c.execute(stmt)
        if c.execute("SELECT count(*) FROM schema_version").fetchone()[0] == 0:
            c.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))


def _statements(script: str) -> list[str]:
    lines = [ln.split("--", 1)[0] for ln in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
