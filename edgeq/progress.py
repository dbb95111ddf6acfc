"""Progress of long steps (training, calibration, fleet fan-out, benchmarks), reported without printing.

The core calls `tracker()` once, in the thread that starts the step, and then `advance(label, done, total)`
from anywhere (fleet workers included). The CLI decides what that does: rich progress bars on a TTY's
stderr (`edgeq.console.progress_bars`), nothing under --json or when stderr is piped. A ContextVar keeps
the choice per call instead of a module-level singleton.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Advance = Callable[[str, int, int], None]  # (label, done, total)

_current: ContextVar[Advance | None] = ContextVar("edgeq_progress", default=None)


def _nothing(label: str, done: int, total: int) -> None:
    return None


def tracker() -> Advance:
    """The active progress sink (a no-op when nobody watches). Capture it before handing work to threads."""
    return _current.get() or _nothing


@contextmanager
def reporting(sink: Advance | None) -> Iterator[None]:
    token = _current.set(sink)
    try:
        yield
    finally:
        _current.reset(token)


def fleet_counter(label: str, total: int) -> Callable[[dict], None]:
    """A fleet progress callback (events from worker threads) that advances one bar per finished board."""
    import threading

    advance = tracker()
    done = {"n": 0}
    lock = threading.Lock()

    def on_event(ev: dict) -> None:
        if ev.get("event") == "done":
            with lock:
                done["n"] += 1
                n = done["n"]
            advance(label, min(n, total), total)

    advance(label, 0, total)
    return on_event
