"""A poisoned or damaged stage cache, through the real CLI: a `cp` over a run's artifact (a hard link into the
cache) and an empty meta.json (what a crash can leave) are misses with a warning and rebuilt, never trusted and
never `internal error: JSONDecodeError`."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

from edgeq.hashing import file_sha256


def test_poisoned_artifact_and_empty_meta_are_rebuilt(edgeq, write_pipeline, home, tmp_path):
    pipe = write_pipeline()
    r1 = edgeq("run", pipe, "--json")
    assert r1.code == 0, r1.stderr
    first = r1.json()
    art = Path(first["variants"]["int8"]["artifact"])
    assert stat.S_IMODE(art.stat().st_mode) == 0o444  # the cache file behind the hard link is read-only
    subprocess.run(["cp", str(pipe), str(art)], check=True)  # noqa: S603,S607 - root writes through 0444
    train_meta = Path(first["stages"]["train"]["output"]).parent / "meta.json"
    train_meta.chmod(0o644)
    train_meta.write_text("")
    r2 = edgeq("run", pipe, "--json")
    assert r2.code == 0, r2.stderr
    assert "internal error" not in r2.stderr and "Traceback" not in r2.stderr
    warnings = [x for x in r2.stderr.splitlines() if x.startswith("warning:")]
    assert len(warnings) == 2, r2.stderr
    assert "train: cache entry" in warnings[0] and "meta.json is unreadable" in warnings[0]
    assert "quantize int8: cache entry" in warnings[1] and "model.tflite changed after it was cached" in warnings[1]
    doc = r2.json()
    assert not doc["stages"]["train"]["cached"] and not doc["stages"]["quantize"]["int8"]["cached"]
    assert doc["stages"]["quantize"]["fp32"]["cached"]  # an intact entry is still a hit
    new_art = Path(doc["variants"]["int8"]["artifact"])
    assert file_sha256(new_art) == doc["variants"]["int8"]["sha256"]
    assert new_art.read_bytes()[4:8] == b"TFL3"
    assert json.loads(train_meta.read_text())["files"]  # rebuilt and sealed again
