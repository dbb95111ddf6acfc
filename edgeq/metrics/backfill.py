"""`edgeq metrics backfill`: the whole history as OpenMetrics with each run's own timestamp, loaded into a
Prometheus data directory with `promtool tsdb create-blocks-from openmetrics`.

A push, the textfile and the exporter all give a result the time Prometheus scraped it; a backfill gives
every stored run the time it was measured, so a dashboard's time axis shows when a board got slower, and a
history recorded before Prometheus existed still becomes a graph. Same families and labels as the live
export (edgeq.metrics.run_families), minus the deprecated summary (new data, no old queries to keep alive).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Literal

from edgeq.errors import ExportError
from edgeq.metrics.families import LEGACY_METRICS, registry_for, run_families
from edgeq.records import Record
from edgeq.results.opstore import load_profiles

FAILED_NAME = "failed.om.txt"  # under HOME/backfill: the file promtool refused last, when no --out was given
PROMTOOL_TIMEOUT_S = 600.0  # a year of nightlies is a few MB of OpenMetrics: seconds; 10 min means promtool hung


class BackfillSummary(Record):
    """What `edgeq metrics backfill --json` prints."""

    ok: Literal[True] = True
    runs: int
    series: int
    samples: int
    first_ts: float | None = None
    last_ts: float | None = None
    openmetrics: str | None = None  # the file written (--out)
    data_dir: str | None = None  # the Prometheus data directory the blocks went to (--prometheus-data)
    promtool_output: str | None = None


def history_families(
    db_path: Path | None = None, pipeline: str | None = None, since_ts: float | None = None
) -> tuple[list[Any], int]:
    """(families with timestamped samples, runs read). One family per name, samples of a series in time order."""
    from prometheus_client.samples import Sample

    from edgeq.results import query

    merged: dict[str, Any] = {}
    last_ok: dict[str, float] = {}
    n = 0
    with query.open_for_reading(db_path) as h:
        for row in query.all_runs(h, pipeline=pipeline):
            ts = row.finished_ts or row.started_ts
            if row.status == "ok":  # as of this run: the last success up to and including it
                last_ok[row.pipeline] = max(ts, last_ok.get(row.pipeline, ts))
            if since_ts is not None and ts < since_ts:
                continue
            n += 1
            for fam in run_families(query.load(h, row), last_ok.get(row.pipeline), load_profiles(h, row.run_id)):
                if fam.name in LEGACY_METRICS:
                    continue
                into = merged.setdefault(fam.name, fam)
                stamped = [Sample(s.name, s.labels, s.value, ts) for s in fam.samples]
                if into is fam:
                    fam.samples[:] = stamped
                else:
                    into.samples.extend(stamped)
    for fam in merged.values():  # OpenMetrics wants each series' samples together and in time order
        fam.samples.sort(key=lambda s: (s.name, sorted(s.labels.items()), s.timestamp))
    return list(merged.values()), n


def openmetrics_text(families: list[Any]) -> bytes:
    from prometheus_client.openmetrics.exposition import generate_latest

    return generate_latest(registry_for(families))


class PromtoolFailed(ExportError):
    """promtool refused the file or the data directory: the OpenMetrics file is worth keeping to look at."""


def create_blocks(om_file: Path, data_dir: Path) -> str:
    """promtool writes 2 h blocks (by default) into data_dir; a running Prometheus picks them up at its next
    block reload (about a minute), a stopped one at start."""
    promtool = shutil.which("promtool")
    if promtool is None:
        raise ExportError("promtool not found on PATH", "install Prometheus' promtool (Debian: apt install prometheus)")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        p = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [promtool, "tsdb", "create-blocks-from", "openmetrics", str(om_file), str(data_dir)],
            capture_output=True,
            text=True,
            timeout=PROMTOOL_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise ExportError(f"promtool did not finish within {PROMTOOL_TIMEOUT_S:g}s", "retry; check the disk") from None
    except OSError as e:
        raise ExportError(f"cannot create blocks in {data_dir}: {e}", "check the folder is writable") from None
    if p.returncode != 0:
        raise PromtoolFailed(
            f"promtool tsdb create-blocks-from openmetrics failed (exit {p.returncode}): {(p.stderr or p.stdout).strip()[-400:]}",
            _kept_hint(om_file),
        )
    return (p.stdout + p.stderr).strip()


def _kept_hint(om_file: Path) -> str:
    return f"the OpenMetrics file is kept at {om_file}; check it with `promtool check metrics`"


def _keep(om: Path, e: PromtoolFailed) -> PromtoolFailed:
    """The temporary file promtool refused, copied to HOME/backfill/failed.om.txt (one file: the next failure
    replaces it) before its temporary folder goes, so the hint names a file that exists."""
    from edgeq import paths

    kept = paths.home() / "backfill" / FAILED_NAME
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        paths.atomic_write_bytes(kept, om.read_bytes())
    except OSError as err:
        return PromtoolFailed(
            e.message, f"rerun with --out FILE to keep the OpenMetrics file (could not keep it at {kept}: {err})"
        )
    return PromtoolFailed(e.message, _kept_hint(kept))


def backfill(
    *,
    db_path: Path | None = None,
    out: Path | None = None,
    data_dir: Path | None = None,
    pipeline: str | None = None,
    since_ts: float | None = None,
) -> BackfillSummary:
    from edgeq import paths

    fams, runs = history_families(db_path, pipeline, since_ts)
    data = openmetrics_text(fams)
    stamps = [s.timestamp for f in fams for s in f.samples]
    summary = BackfillSummary(
        runs=runs,
        series=len({(s.name, tuple(sorted(s.labels.items()))) for f in fams for s in f.samples}),
        samples=len(stamps),
        first_ts=min(stamps, default=None),
        last_ts=max(stamps, default=None),
    )
    with tempfile.TemporaryDirectory(prefix="edgeq-backfill-") as tmp:
        om = out or Path(tmp) / "edgeq.om.txt"
        try:
            paths.atomic_write_bytes(om, data)
        except OSError as e:
            raise ExportError(f"cannot write {om}: {e}", "check the folder exists and is writable") from None
        upd: dict[str, Any] = {"openmetrics": str(out) if out else None}
        if data_dir is not None and runs:
            try:
                upd.update(data_dir=str(data_dir), promtool_output=create_blocks(om, data_dir))
            except PromtoolFailed as e:
                if out is not None:
                    raise
                raise _keep(om, e) from None  # the temporary folder goes with this block
        return summary.model_copy(update=upd)
