"""`rollback` without `--from` is safe to retry: a rollback that would undo a rollback is refused unless asked
(`--undo-rollback`), on a real sshd board and on the local board. `--from` stays a compare-and-swap."""

from __future__ import annotations

from pathlib import Path

from edgeq.errors import ExitCode
from edgeq.testing.fleet import board_entry, by_device, run_cli, run_json, write_devices

BOARDS = ("r1", "local")


def _current(tmp_path: Path, board: str) -> str:
    return (tmp_path / "boards" / board / "models" / "clf" / "current").read_text().strip()


def _rollback(dev: Path, *extra: str) -> tuple[int, dict, str]:
    return run_json("rollback", "-t", "r1", "-t", "local", "--name", "clf", *extra, "--devices", dev)


def test_a_second_rollback_is_refused_and_the_board_keeps_running_a(farm, tmp_path, tflite_models):
    dev = write_devices(tmp_path, board_entry(farm, farm.boards[0], tmp_path, "r1"), local=True)
    _, a, _ = run_json("deploy", tflite_models["dense_a"], "-t", "r1", "-t", "local", "--name", "clf", "--devices", dev)
    _, b, _ = run_json("deploy", tflite_models["dense_b"], "-t", "r1", "-t", "local", "--name", "clf", "--devices", dev)
    a_sha, b_sha = a["sha256"], b["sha256"]

    code, doc, _ = _rollback(dev)
    assert code == 0, doc
    for r in doc["devices"]:
        assert r["status"] == "changed" and r["current"] == a_sha and r["previous"] == b_sha, r

    # the retry (a lost reply, a rerun script): refused, nothing changed, A still current
    code, doc, err = _rollback(dev)
    assert code == ExitCode.FLEET, doc
    for board in BOARDS:
        r = by_device(doc)[board]
        assert r["status"] == "failed" and r["kind"] == "rolled_back" and r["current"] == a_sha, r
        assert r["rolled_back_from"] == b_sha, r
        assert "would undo that rollback" in r["error"] and "--undo-rollback" in r["hint"], r
        assert _current(tmp_path, board) == a_sha
    assert "--undo-rollback" in err

    # the dry run says the same
    code, doc, _ = _rollback(dev, "--dry-run")
    assert code == ExitCode.FLEET and all(r["kind"] == "rolled_back" for r in doc["devices"]), doc

    # the human table names the way out
    code, out, err = run_cli("rollback", "-t", "r1", "--name", "clf", "--devices", dev)
    assert code == ExitCode.FLEET and "--undo-rollback" in err

    # asked for explicitly: back to B
    code, doc, _ = _rollback(dev, "--undo-rollback")
    assert code == 0, doc
    for board in BOARDS:
        r = by_device(doc)[board]
        assert r["status"] == "changed" and r["current"] == b_sha and r["previous"] == a_sha, r
        assert _current(tmp_path, board) == b_sha

    # that undo was a rollback too: a plain retry of it is refused as well
    code, doc, _ = _rollback(dev)
    assert code == ExitCode.FLEET and all(r["kind"] == "rolled_back" for r in doc["devices"]), doc
    assert all(_current(tmp_path, board) == b_sha for board in BOARDS)

    # a new deploy starts afresh: a plain rollback after it is an ordinary one
    run_json("deploy", tflite_models["dense_a"], "-t", "r1", "-t", "local", "--name", "clf", "--devices", dev)
    code, doc, _ = _rollback(dev)
    assert code == 0 and all(r["current"] == b_sha for r in doc["devices"]), doc


def test_rollback_from_is_still_a_compare_and_swap(farm, tmp_path, tflite_models):
    dev = write_devices(tmp_path, board_entry(farm, farm.boards[0], tmp_path, "r1"), local=True)
    _, a, _ = run_json("deploy", tflite_models["dense_a"], "-t", "r1", "-t", "local", "--name", "clf", "--devices", dev)
    _, b, _ = run_json("deploy", tflite_models["dense_b"], "-t", "r1", "-t", "local", "--name", "clf", "--devices", dev)
    code, doc, _ = _rollback(dev, "--from", b["sha256"])
    assert code == 0 and all(r["status"] == "changed" and r["current"] == a["sha256"] for r in doc["devices"]), doc
    code, doc, _ = _rollback(dev, "--from", b["sha256"])  # the retry: nothing to do, exit 0
    assert code == 0 and all(r["status"] == "ok" and r["action"] == "already rolled back" for r in doc["devices"]), doc
    code, doc, _ = _rollback(dev, "--from", "0" * 64)
    assert code == ExitCode.FLEET and all(r["kind"] == "not_current" for r in doc["devices"]), doc
    # naming the version to leave is asking: --from A goes back to B without --undo-rollback
    code, doc, _ = _rollback(dev, "--from", a["sha256"])
    assert code == 0 and all(r["current"] == b["sha256"] for r in doc["devices"]), doc
    assert all(_current(tmp_path, board) == b["sha256"] for board in BOARDS)
