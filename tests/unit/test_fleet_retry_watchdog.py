"""Retry policy with full jitter, the per-address connection cap, key-file modes and the fan-out watchdog.

Pure: no network, seeded random sources, real threads.
"""

from __future__ import annotations

import random
import threading
import time

import pytest

from edgeq.fleet import fanout
from edgeq.fleet.inventory.devices import DeviceSpec
from edgeq.fleet.transport.base import current_watch, watched
from edgeq.fleet.transport.keyformat import key_file_problem
from edgeq.fleet.transport.retry import ConnectGate, RetryPolicy
from edgeq.records.fleet import BoardOutcome


def test_full_jitter_is_uniform_under_the_exponential_cap():
    p = RetryPolicy(attempts=8, base_delay=0.5, factor=2, max_delay=4, jitter=True)
    caps = list(p.caps())
    assert caps == [0.5, 1, 2, 4, 4, 4, 4]
    a = list(p.delays(random.Random(11)))
    assert a == list(p.delays(random.Random(11)))  # seeded: reproducible
    assert all(0 <= d <= c for d, c in zip(a, caps, strict=True))
    assert len(set(a)) == len(a) and a != caps
    # two boards that failed together do not retry together
    b = list(p.delays(random.Random(12)))
    assert all(abs(x - y) > 1e-9 for x, y in zip(a, b, strict=True))
    # over many draws the waits fill [0, cap] (full jitter, not "cap/2 + jitter")
    many = [d for s in range(300) for d in RetryPolicy(attempts=2, base_delay=1, jitter=True).delays(random.Random(s))]
    assert min(many) < 0.05 and max(many) > 0.95
    assert abs(sum(many) / len(many) - 0.5) < 0.06


def test_no_jitter_keeps_the_deterministic_schedule():
    assert list(RetryPolicy(attempts=4, base_delay=0.25, factor=3, max_delay=10).delays()) == [0.25, 0.75, 2.25]


def test_call_sleeps_the_jittered_waits():
    slept: list[float] = []
    calls = []

    def fn():
        calls.append(1)
        raise ConnectionError("x")

    p = RetryPolicy(attempts=4, base_delay=1, factor=2, max_delay=30, jitter=True)
    with pytest.raises(ConnectionError):
        p.call(fn, retryable=lambda e: True, sleep=slept.append, rng=random.Random(3))
    assert len(calls) == 4 and slept == list(p.delays(random.Random(3)))


def test_connect_gate_caps_concurrent_attempts_per_address():
    gate = ConnectGate(limit=3)
    active = {"a": 0, "b": 0}
    peak = {"a": 0, "b": 0}
    lock = threading.Lock()

    def one(host: str) -> None:
        with gate.attempt(host, 22, timeout=10):
            with lock:
                active[host] += 1
                peak[host] = max(peak[host], active[host])
            time.sleep(0.03)
            with lock:
                active[host] -= 1

    threads = [threading.Thread(target=one, args=(h,)) for h in ("a", "b") for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == {"a": 3, "b": 3}  # the cap is per address, and reached
    assert gate.peak == {("a", 22): 3, ("b", 22): 3}


def test_connect_gate_wait_is_bounded():
    gate = ConnectGate(limit=1)
    with gate.attempt("h", 22), pytest.raises(TimeoutError, match="no connection slot"):
        with gate.attempt("h", 22, timeout=0.1):
            pass


@pytest.mark.parametrize(("mode", "bad"), [(0o600, False), (0o400, False), (0o640, True), (0o604, True), (0o666, True)])
def test_key_file_modes_like_openssh(tmp_path, mode, bad):
    k = tmp_path / "id_key"
    k.write_text("x")
    k.chmod(mode)
    problem = key_file_problem(str(k))
    assert (problem is not None) == bad
    if bad:
        assert str(k) in problem and f"{mode:04o}" in problem


def _dev(name: str) -> DeviceSpec:
    return DeviceSpec(name=name, host="127.0.0.1")


def test_watchdog_gives_up_a_wedged_board_without_joining_it(monkeypatch):
    monkeypatch.setattr(fanout, "WATCHDOG_GRACE", 0.2)
    release = threading.Event()
    closed = threading.Event()

    def job(d: DeviceSpec) -> BoardOutcome:
        if d.name == "stuck":
            w = current_watch()
            assert w is not None
            w.closers.append(closed.set)
            with watched("the exec request for facts", 0.3):
                release.wait(60)  # a wait no timeout reaches: only the watchdog ends it
        return BoardOutcome(device=d.name, status="ok")

    t0 = time.monotonic()
    try:
        res = fanout.run_fleet([_dev("a"), _dev("stuck"), _dev("b")], job, parallel=3)
    finally:
        release.set()
    took = time.monotonic() - t0
    assert took < 0.3 + 0.2 + 1.0, took
    by = {r.device: r for r in res.devices}
    assert by["a"].status == by["b"].status == "ok"
    s = by["stuck"]
    assert s.status == "unreachable" and s.kind == "timeout"
    assert "the exec request for facts" in (s.error or "") and "connect_timeout" in (s.hint or "")
    assert closed.wait(2)  # its connection was closed to unblock the worker


def test_a_slow_board_in_a_long_step_is_not_given_up(monkeypatch):
    monkeypatch.setattr(fanout, "WATCHDOG_GRACE", 0.1)

    def job(d: DeviceSpec) -> BoardOutcome:
        with watched("running bench", 5.0):
            time.sleep(0.5)
        return BoardOutcome(device=d.name, status="ok")

    res = fanout.run_fleet([_dev("a")], job)
    assert res.devices[0].status == "ok"
