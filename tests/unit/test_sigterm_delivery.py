"""SIGTERM's Terminated is raised by a signal handler, wherever the main thread happens to be: inside a rich write
(the line must not be written twice) or inside a __del__ (Python ignores the exception there; the next log line
in the main thread delivers it again). Real signals, real rich Console."""

from __future__ import annotations

import io
import os
import signal
import threading

import pytest
from rich.console import Console

from edgeq.cli import output
from edgeq.errors import Terminated


@pytest.fixture
def out():
    o = output.reset()
    o._err = Console(file=io.StringIO(), highlight=False, soft_wrap=True, emoji=False)
    yield o
    output.reset()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_swallowed_terminated_is_delivered_at_the_next_log_line(out):
    class Swallows:
        def __del__(self) -> None:
            out.terminated = True
            raise Terminated()  # what the handler does when the signal lands here: Python prints and ignores it

    Swallows()  # collected at once: the exception is ignored
    with pytest.raises(Terminated):
        output.log("next stage: running")
    assert "next stage" not in out.err.file.getvalue()


def test_terminated_is_not_raised_again_while_it_is_handled_or_off_the_main_thread(out):
    out.terminated = True
    try:
        raise Terminated()
    except KeyboardInterrupt:
        output.log("terminated (SIGTERM)")  # the CLI's one line, written while handling it
    seen: list[BaseException] = []

    def worker() -> None:
        try:
            output.log("  b1: done")  # fleet workers log from their threads: never interrupted
        except BaseException as e:  # noqa: BLE001 - the test records anything
            seen.append(e)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert not seen
    assert out.err.file.getvalue().splitlines() == ["terminated (SIGTERM)"]


def test_a_signal_inside_a_log_write_does_not_repeat_the_line(out):
    """The handler raises while rich is writing: the line is out once, and the next line is not preceded by it."""
    old = signal.signal(signal.SIGUSR1, lambda *_: (_ for _ in ()).throw(Terminated()))
    real_write = out.err.file.write

    fired: list[bool] = []

    def write_then_signal(text: str) -> int:
        n = real_write(text)
        if "stage: running" in text and not fired:
            fired.append(True)
            os.kill(os.getpid(), signal.SIGUSR1)  # delivered before write() returns to rich
        return n

    out.err.file.write = write_then_signal  # type: ignore[method-assign]
    try:
        with pytest.raises(Terminated):
            output.log("stage: running")
        out.terminated = False
        try:
            raise Terminated()
        except KeyboardInterrupt:
            output.log("terminated (SIGTERM)")
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert out.err.file.getvalue().splitlines() == ["stage: running", "terminated (SIGTERM)"]
