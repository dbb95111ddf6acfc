"""`edgeq metrics backfill` when promtool fails (real promtool, refused by a data directory it cannot write:
/proc/self): the hint names an OpenMetrics file that is still there afterwards, with or without --out."""

from __future__ import annotations

import json
import re
from pathlib import Path

from edgeq.results import load_manifest, record_run
from edgeq.testing.promfarm import ensure_installed, synthetic_manifest

UNWRITABLE = "/proc/self"  # a directory that exists; promtool's mkdir of a block folder in it fails, even as root


def _kept(hint: str) -> Path:
    m = re.search(r"kept at (\S+?);", hint)
    assert m, hint
    return Path(m.group(1))


def test_failed_backfill_hint_names_a_file_that_exists(tmp_path, edgeq, home):
    ensure_installed()
    db = tmp_path / "history.db"
    record_run(load_manifest(synthetic_manifest("r0", devices=("pi5",))), db)

    r = edgeq("metrics", "backfill", "--db", db, "--prometheus-data", UNWRITABLE, "--json")
    assert r.code == 11, (r.code, r.stderr)
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and "promtool" in doc["message"], doc
    kept = _kept(doc["hint"])
    assert kept.is_file(), f"the hint names {kept}, which does not exist: {doc['hint']}"
    assert f"hint: {doc['hint']}" in r.stderr
    text = kept.read_text()
    assert "edgeq_latency_p50_seconds{" in text and text.rstrip().endswith("# EOF"), text[-200:]
    # a second failure replaces it (one file, not one per night)
    r = edgeq("metrics", "backfill", "--db", db, "--prometheus-data", UNWRITABLE)
    assert r.code == 11 and _kept(r.stderr.split("hint: ", 1)[1]) == kept and kept.is_file(), r.stderr
    assert [p.name for p in kept.parent.iterdir()] == [kept.name]

    # with --out the file asked for is the one kept and named
    out = tmp_path / "mine.om.txt"
    r = edgeq("metrics", "backfill", "--db", db, "--prometheus-data", UNWRITABLE, "--out", out)
    assert r.code == 11 and _kept(r.stderr.split("hint: ", 1)[1]) == out and out.is_file(), r.stderr


def test_successful_backfill_leaves_no_file_behind(tmp_path, edgeq, home):
    ensure_installed()
    db = tmp_path / "history.db"
    record_run(load_manifest(synthetic_manifest("r0", devices=("pi5",))), db)
    r = edgeq("metrics", "backfill", "--db", db, "--prometheus-data", tmp_path / "data", "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["openmetrics"] is None
    assert not (home / "backfill").exists() or not any((home / "backfill").iterdir())
