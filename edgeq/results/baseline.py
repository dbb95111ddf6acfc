"""The last good artifacts of a pipeline, for `benchmark.rerun_baseline`: re-measured beside the candidate.

Why: a candidate compared with last night's numbers mixes two changes, the model's and the board's or
runtime's. Re-running last night's artifact in the same sessions, interleaved with the candidate (A A' B B'
per session), measures both under the same conditions, so the ratio is the model's alone; last night's
figures against tonight's rerun of the same artifact show the board's or runtime's drift.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgeq.errors import StoreError
from edgeq.hashing import file_sha256
from edgeq.records import Record
from edgeq.results import query
from edgeq.results.db import default_db_path

BASELINE_SUFFIX = "@baseline"  # the variant name of a rerun baseline's benchmark rows


class BaselineArtifact(Record):
    variant: str
    artifact: str
    sha256: str


class Baseline(Record):
    """The run whose artifacts are re-measured, the ones found (file present, hash unchanged) and why others are not."""

    run_id: str | None = None
    artifacts: tuple[BaselineArtifact, ...] = ()
    notes: tuple[str, ...] = ()


_LAST_OK = (
    "SELECT run_id, manifest_path FROM runs WHERE pipeline = ? AND status = 'ok' AND adhoc = 0 "
    "ORDER BY started_ts DESC, run_id DESC LIMIT 1"
)


def last_good(pipeline: str, candidates: dict[str, str], home: Path | None = None, db_path: Path | None = None) -> Baseline:
    """The artifacts of the last fully successful run of `pipeline` for the variants in `candidates`
    ({variant: candidate sha256}); a variant whose artifact did not change has nothing to re-measure."""
    path = db_path or default_db_path(home)
    if not path.exists():
        return Baseline(notes=("no history yet: nothing to re-measure",))
    try:
        with query.open_for_reading(path) as h:
            row = h.execute(_LAST_OK, (pipeline,)).fetchone()
    except StoreError as e:
        return Baseline(notes=(f"history unreadable ({e.message}): nothing re-measured",))
    if row is None or not row[1]:
        return Baseline(notes=(f"no successful run of pipeline {pipeline!r} with a manifest: nothing to re-measure",))
    run_id, manifest = row
    try:
        variants = json.loads(Path(manifest).read_text()).get("variants") or {}
    except (OSError, ValueError) as e:
        return Baseline(run_id=run_id, notes=(f"manifest of run {run_id} unreadable ({e}): nothing re-measured",))
    found, notes = [], []
    for key, sha in candidates.items():
        v = variants.get(key) or {}
        art, old = v.get("artifact"), v.get("sha256")
        if not art or not old:
            notes.append(f"{key}: not in run {run_id}")
        elif old == sha:
            notes.append(f"{key}: unchanged since run {run_id} (same artifact): nothing to re-measure")
        elif not Path(art).is_file() or file_sha256(Path(art)) != old:
            notes.append(f"{key}: the artifact of run {run_id} ({art}) is gone or changed: not re-measured")
        else:
            found.append(BaselineArtifact(variant=key, artifact=str(art), sha256=old))
    return Baseline(run_id=run_id, artifacts=tuple(found), notes=tuple(notes))
