"""The local transport's agent dies with edgeq: `edgeq bench` on the local board killed with SIGKILL (no handler
runs) must not leave its agent measuring and holding the board's lock until the agent's own --deadline
(~895 s with the default command_timeout): the next `edgeq bench` gets the board within seconds.
Real processes: edgeq, its real agent, the real flock on the board's work dir."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from tests.func.test_sighup import _alive, _bench_argv, _env, board, reap_stray, wait_for_agent  # noqa: F401 - fixture

AGENT_GONE_S = 8.0  # the agent notices its stdin closed at once; GRACE_SECONDS (3 s) bounds a runtime stuck in C


def _start_bench(b: dict, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603 - fixed argv
        _bench_argv(b, *extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(b["home"]),
        cwd=b["model"].parent,
    )


def test_sigkilled_edgeq_releases_the_local_board(board):  # noqa: F811 - the imported fixture
    first = _start_bench(board, "--min-seconds", "120")
    agent = None
    try:
        agent = wait_for_agent(first.pid)
        time.sleep(1.0)  # measuring, with the board's lock held
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        killed = time.monotonic()
        # the board is free within seconds: the next bench (lock_timeout 15 s) gets the lock and measures
        r = subprocess.run(  # noqa: S603 - fixed argv
            [*_bench_argv(board, "--min-seconds", "0.2"), "--json"],
            capture_output=True,
            text=True,
            env=_env(board["home"]),
            timeout=120,
        )
        took = time.monotonic() - killed
        assert r.returncode == 0, r.stderr
        assert took < 20, f"the next bench took {took:.1f}s"
        assert json.loads(r.stdout)["ok"] is True
        while _alive(agent) and time.monotonic() - killed < AGENT_GONE_S:
            time.sleep(0.05)
        assert not _alive(agent), f"the agent (pid {agent}) still runs {time.monotonic() - killed:.1f}s after edgeq was killed"
        print(f"next bench done {took:.1f}s after the SIGKILL")
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        if agent is not None:
            reap_stray(agent)


def test_a_bench_that_finishes_is_unchanged(board):  # noqa: F811 - the imported fixture
    """The pipe the agent watches stays open while edgeq waits: a normal bench is not cut short."""
    r = subprocess.run(  # noqa: S603 - fixed argv
        [*_bench_argv(board, "--min-seconds", "3"), "--json"],
        capture_output=True,
        text=True,
        env=_env(board["home"]),
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] is True, doc
