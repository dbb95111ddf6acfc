"""`deploy --dry-run` and `rollback --dry-run` on real sshd boards: the verdicts, and nothing changed on the board
(no agent uploaded, no work dir created, no pointer moved)."""

from __future__ import annotations

from edgeq.errors import ExitCode
from edgeq.testing import faultkit as fk
from edgeq.testing.fleet import board_entry, by_device, run_json, write_devices


def test_dry_runs_say_what_would_change_and_change_nothing(farm, tmp_path, tflite_models, monkeypatch):
    monkeypatch.setenv("EDGEQ_HOME", str(tmp_path / "home"))
    dev = write_devices(
        tmp_path, board_entry(farm, farm.boards[0], tmp_path, "d1"), board_entry(farm, farm.boards[1], tmp_path, "d2")
    )
    a, b = tflite_models["dense_a"], tflite_models["dense_b"]
    w1 = tmp_path / "boards" / "d1"

    code, doc, err = run_json("deploy", a, "-t", "all", "--name", "m", "--dry-run", "--devices", dev)
    assert code == 0 and doc["dry_run"] is True, (doc, err)
    rec = by_device(doc)["d1"]
    assert rec["status"] == "changed" and rec["action"].startswith("would upload") and "agent" in rec["action"], rec
    assert rec["bytes_uploaded"] > a.stat().st_size  # the model and the agent would cross the wire
    assert not w1.exists(), "a dry run created the work dir"

    code, doc, _ = run_json("deploy", a, "-t", "d1", "--name", "m", "--devices", dev)
    assert code == 0 and "dry_run" not in doc
    code, doc, _ = run_json("deploy", a, "-t", "all", "--name", "m", "--dry-run", "--devices", dev)
    recs = by_device(doc)
    assert recs["d1"]["status"] == "ok" and "already current" in recs["d1"]["action"] and recs["d1"]["bytes_uploaded"] == 0
    assert recs["d2"]["status"] == "changed"

    code, doc, err = run_json("rollback", "-t", "d1", "--name", "m", "--dry-run", "--devices", dev)
    assert code == ExitCode.FLEET and by_device(doc)["d1"]["kind"] == "no_previous", doc

    code, doc, _ = run_json("deploy", b, "-t", "d1", "--name", "m", "--devices", dev)
    sha_b = doc["sha256"]
    code, doc, _ = run_json("rollback", "-t", "d1", "--name", "m", "--dry-run", "--devices", dev)
    rec = by_device(doc)["d1"]
    assert code == 0 and rec["status"] == "changed" and rec["action"].startswith("would make"), rec
    code, doc, _ = run_json("rollback", "-t", "d1", "--name", "m", "--from", "0" * 64, "--dry-run", "--devices", dev)
    assert code == ExitCode.FLEET and by_device(doc)["d1"]["kind"] == "not_current"
    st = fk.board_state(w1, "m", bench=False)
    assert st.current == sha_b and not st.parts, st  # nothing moved
    assert not (tmp_path / "boards" / "d2").exists()


def test_rollback_dry_run_checks_name_and_from_like_the_real_rollback(farm, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEQ_HOME", str(tmp_path / "home"))
    dev = write_devices(tmp_path, board_entry(farm, farm.boards[0], tmp_path, "d1"))
    for extra, says in ((["--name", "bad name!"], "model name"), (["--name", "m", "--from", "abc"], "not a sha256")):
        for dry in (["--dry-run"], []):
            code, doc, err = run_json("rollback", "-t", "d1", *extra, *dry, "--devices", dev)
            assert code == ExitCode.CONFIG and says in (err + str(doc)), (dry, code, doc, err)
    assert not (tmp_path / "boards" / "d1").exists(), "a refused rollback touched the board"
