"""The board's clock against this host's (edgeq.fleet.clock) and the rollback record's rules
(edgeq.agent.boardfs.Store), as pure logic: no board, no runtime."""

from __future__ import annotations

import json

import pytest

from edgeq.agent.boardfs import ROLLBACK_RECORD, Store
from edgeq.agent.codes import AgentFailure
from edgeq.fleet import clock
from edgeq.records.fleet import AgentClock, ClockOffset

A, B, C = "a" * 64, "b" * 64, "c" * 64


def test_offset_is_board_midpoint_minus_host_midpoint():
    # a 10 s bench call; the agent ran 9.6 s of it, its clock a day ahead
    off = clock.measure(AgentClock(start=1000.3 + 86400, end=1009.9 + 86400), 1000.0, 1010.0)
    assert off.offset_s == pytest.approx(86400.1) and off.within_s == pytest.approx(0.2)


def test_note_beyond_the_threshold_and_the_error_only():
    assert clock.note([]) is None
    assert clock.note([ClockOffset(offset_s=4.9, within_s=0.0)]) is None
    assert clock.note([ClockOffset(offset_s=7.0, within_s=3.0)]) is None  # could be 4 s: not worth a note
    said = clock.note([ClockOffset(offset_s=86400.2, within_s=0.1)])
    assert said is not None and said.startswith("clock offset +86400 s") and "ahead of" in said
    behind = clock.note([ClockOffset(offset_s=-3600.0, within_s=0.1)] * 2 + [ClockOffset(offset_s=0.0, within_s=0.0)])
    assert behind is not None and behind.startswith("clock offset -3600 s") and "behind" in behind


def test_host_time_converts_what_the_board_stamped():
    off = ClockOffset(offset_s=86400.4, within_s=0.1)
    assert clock.host_time("2026-12-09T03:00:10Z", off) == "2026-12-08T03:00:10Z"
    assert clock.host_time("2026-12-09T03:00:10Z", None) == "2026-12-09T03:00:10Z"
    assert clock.host_time("not a time", off) == "not a time" and clock.host_time(None, off) is None


def _store(tmp_path, current, previous):
    s = Store(tmp_path)
    s.ensure()
    s.model_dir("m").mkdir()
    for which, sha in (("current", current), ("previous", previous)):
        s.set_pointer("m", which, sha)
    for sha in (current, previous):
        (s.model_dir("m") / (sha + ".tflite")).write_bytes(b"x")
    return s


def _no_check(path):
    return 0.0


def test_rollback_records_what_it_replaced_and_refuses_to_undo_it(tmp_path, monkeypatch):
    monkeypatch.setattr("edgeq.agent.boardfs.sha256_file", lambda p: p.name[:64])  # the blobs "hash" to their names
    s = _store(tmp_path, B, A)
    doc = s.rollback("m", _no_check)
    assert (doc["current"], doc["previous"]) == (A, B)
    assert json.loads((s.model_dir("m") / ROLLBACK_RECORD).read_text())["replaced"] == B
    with pytest.raises(AgentFailure) as e:
        s.rollback("m", _no_check)
    assert e.value.kind == "rolled_back" and e.value.exit_code == 10 and s.pointer("m", "current") == A
    assert s.rollback("m", _no_check, expect=B)["changed"] is False  # --from B: the retry of that rollback
    assert s.rollback("m", _no_check, undo=True)["current"] == B


def test_a_record_that_no_longer_matches_is_ignored(tmp_path, monkeypatch):
    """A crash after the record but before the pointers, or pointers moved since: the record counts for nothing."""
    monkeypatch.setattr("edgeq.agent.boardfs.sha256_file", lambda p: p.name[:64])
    s = _store(tmp_path, B, A)
    (s.model_dir("m") / ROLLBACK_RECORD).write_text(json.dumps({"replaced": B, "restored": A, "at": None}))
    assert s.last_rollback("m") is None
    assert s.rollback("m", _no_check)["current"] == A
    (s.model_dir("m") / ROLLBACK_RECORD).write_text("{torn")
    assert s.last_rollback("m") is None
    s.set_pointer("m", "previous", C)
    (s.model_dir("m") / (C + ".tflite")).write_bytes(b"x")
    assert s.rollback("m", _no_check)["current"] == C
