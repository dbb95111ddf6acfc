"""Stopping the agent from outside: its own --deadline, a SIGTERM, and the host going away.

The host passes --deadline (seconds) so the agent stops by itself, releasing W/lock, before the host gives
up on it; over SSH it also passes --watch-stdin: sshd closes the agent's stdin when the channel closes
(command timeout, Ctrl-C, SIGTERM or death of edgeq), and the agent stops then. A stop raises Stop in the
main thread; code stuck in a runtime's C loop never sees it, so a watchdog then kills the load-check
children and exits the process hard: the kernel drops the flock either way.

Runs on boards: stdlib only, Python 3.9+.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

GRACE_SECONDS = 3.0  # after a stop request, how long the main thread gets to unwind before a hard exit

_children: set = set()  # process groups of running load checks, killed on a hard exit
_state: dict = {"out_fd": None, "stop": None}
_cleanups: list = []


class Stop(BaseException):
    """A stop request (deadline, signal, host gone); BaseException so `except Exception` never eats it."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


def add_child(pgid: int) -> None:
    _children.add(pgid)


def drop_child(pgid: int) -> None:
    _children.discard(pgid)


def kill_children() -> None:
    for pgid in list(_children):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass


def add_cleanup(fn) -> None:
    """Run `fn` on a hard exit too (a governor to restore): os._exit skips finally blocks."""
    _cleanups.append(fn)


def _run_cleanups() -> None:
    for fn in list(_cleanups):
        try:
            fn()
        except Exception:  # noqa: S110 - best effort on the way out
            pass


def set_output(fd: int) -> None:
    _state["out_fd"] = fd


def _request(kind: str, message: str) -> None:
    if _state["stop"] is None:
        _state["stop"] = (kind, message)
    threading.Thread(target=_hard_exit_later, name="edgeq-agent-stop", daemon=True).start()


def _hard_exit_later() -> None:
    time.sleep(GRACE_SECONDS)
    from .codes import EXIT_CODES, PROTOCOL

    kind, message = _state["stop"]
    kill_children()
    _run_cleanups()
    if _state.get("finished"):
        return
    fd = _state["out_fd"]
    if fd is not None:
        doc = {"ok": False, "kind": kind, "error": message + " (hard stop: the runtime did not return)", "protocol": PROTOCOL}
        try:
            os.write(fd, (json.dumps(doc) + "\n").encode())
        except OSError:
            pass
    os._exit(EXIT_CODES[kind])


def _on_signal(signum, frame):
    if signum == signal.SIGALRM:
        kind, message = _state["stop"] or ("deadline", _state.get("deadline_message", "the agent's --deadline passed"))
    else:
        kind, message = _state["stop"] or ("interrupted", "stopped by " + signal.Signals(signum).name)
    _request(kind, message)
    raise Stop(kind, message)


def _watch_signals(rfd: int) -> None:
    # Python runs handlers only between bytecodes: a model spinning inside invoke() would never see one,
    # but the C-level handler still writes the signal number here
    while True:
        try:
            data = os.read(rfd, 16)
        except OSError:
            return
        if not data:
            return
        for signum in data:
            if signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                _request("interrupted", "stopped by " + signal.Signals(signum).name)


def _watch_deadline(seconds: float) -> None:
    time.sleep(seconds)
    _request("deadline", _state["deadline_message"])
    os.kill(os.getpid(), signal.SIGALRM)


def _watch_stdin() -> None:
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    _request("interrupted", "the host went away (its SSH channel closed)")
    os.kill(os.getpid(), signal.SIGTERM)


def arm(deadline: float | None, watch_stdin: bool) -> None:
    """Install the stop paths for this run (main thread only)."""
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(sig, _on_signal)
    rfd, wfd = os.pipe()
    os.set_blocking(wfd, False)
    signal.set_wakeup_fd(wfd)
    threading.Thread(target=_watch_signals, args=(rfd,), name="edgeq-agent-signals", daemon=True).start()
    if deadline:
        _state["deadline_message"] = "the agent's --deadline of " + format(deadline, "g") + " s passed: stopped, W/lock released"
        threading.Thread(target=_watch_deadline, args=(float(deadline),), name="edgeq-agent-deadline", daemon=True).start()
    if watch_stdin:
        threading.Thread(target=_watch_stdin, name="edgeq-agent-stdin", daemon=True).start()


def finished() -> None:
    """The result is on its way out: a late stop must not print a second document."""
    _state["finished"] = True
