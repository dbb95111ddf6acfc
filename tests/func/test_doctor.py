"""`edgeq doctor` through the real CLI: what is installed and in use, human and --json, and a history database
that it reads without creating or migrating it."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"
CHECKS = {"ai-edge-litert", "tflite-runtime", "[train]", "[labgrid]", "[tflite-quant]", "[torch]", "home", "devices file"}
CHECKS |= {"history", "promtool", "pushgateway", "node_exporter"}


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_doctor_names_the_runtime_and_the_home(edgeq, home):
    r = edgeq("doctor", env={"COLUMNS": "80"})
    assert r.code == 0, r.stderr
    assert "ai-edge-litert" in r.stdout and f"home: {home.resolve()}" in r.stdout, r.stdout
    assert "[train]" in r.stdout and "history" in r.stdout
    assert not home.exists(), "doctor created the edgeq home"
    assert "history yet" in r.stdout  # a missing part says what to do


def test_doctor_json_has_every_check_and_ok(edgeq, home, tmp_path):
    (tmp_path / "devices.yaml").write_text("devices:\n  - name: pi5\n    address: 10.0.0.5\n")
    r = edgeq("doctor", "--json")
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] is True
    for key in ("edgeq", "python", "platform", "home", "devices_file", "history_db", "history_schema", "agent_sha256"):
        assert key in doc, key
    assert {c["name"] for c in doc["checks"]} == CHECKS
    assert doc["home"] == str(home.resolve())
    assert Path(doc["devices_file"]).resolve() == (tmp_path / "devices.yaml").resolve()
    assert doc["history_schema"] is None and len(doc["agent_sha256"]) == 64
    litert = next(c for c in doc["checks"] if c["name"] == "ai-edge-litert")
    assert litert["found"] and litert["version"]
    for c in doc["checks"]:
        assert c["found"] or c["hint"] or c["group"] == "runtime", c  # every missing part names what to do


def test_doctor_reads_the_history_schema_without_touching_the_file(edgeq, home):
    home.mkdir()
    db = home / "history.db"
    shutil.copyfile(DATA / "history-main.db", db)  # schema 2: an older edgeq's database
    before = _sha(db)
    r = edgeq("doctor", "--json")
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["history_db"] == str(db.resolve()) and doc["history_schema"] == 2
    hist = next(c for c in doc["checks"] if c["name"] == "history")
    assert hist["found"] and hist["version"] == "schema 2" and "upgrades it" in hist["hint"], hist
    assert _sha(db) == before, "doctor modified the history database"
    r = edgeq("doctor")
    assert r.code == 0 and "schema 2" in r.stdout, r.stdout
    assert _sha(db) == before
