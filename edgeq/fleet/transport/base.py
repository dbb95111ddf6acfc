"""The transport interface and the one error type every board failure becomes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from edgeq.errors import FleetError

if TYPE_CHECKING:
    from edgeq.fleet.inventory.devices import DeviceSpec

# kinds that mean "we never got to talk to the board" (summary status "unreachable")
UNREACHABLE_KINDS = frozenset({"unreachable", "refused", "timeout", "dns"})


class BoardError(FleetError):
    """A failure on one board. The message starts with the device name; `kind` is machine-readable."""

    def __init__(
        self, device: str, message: str, hint: str | None = None, *, kind: str = "error", retryable: bool = False, **extra
    ):
        super().__init__(f"{device}: {message}", hint)
        self.device = device
        self.kind = kind
        self.retryable = retryable  # only connection failures are retried
        self.extra = extra

    @property
    def unreachable(self) -> bool:
        return self.kind in UNREACHABLE_KINDS

    def to_dict(self) -> dict:
        return {**super().to_dict(), "device": self.device, "kind": self.kind, **self.extra}


Progress = Callable[[int, int], None]  # (bytes done, bytes total)


class Transport(Protocol):
    """How edgeq reaches one board. Every command is an argv list; implementations quote it."""

    def run(self, argv: list[str], timeout: float) -> tuple[int, str, str]:
        """Run argv on the board; (exit code, stdout, stderr). Negative/255 codes: killed or lost."""
        ...

    def put_file(self, local: Path, remote_path: str, callback: Progress | None = None) -> int:
        """Copy a local file to remote_path (the caller picks a temp name); returns bytes sent."""
        ...

    def size(self, remote_path: str) -> int | None:
        """Size of a regular file on the board, None if absent."""
        ...

    def makedirs(self, remote_path: str) -> None: ...

    def rename(self, src: str, dst: str) -> None:
        """Atomic replace on the board's filesystem."""
        ...

    def remove(self, remote_path: str) -> None:
        """Best effort: a missing file is not an error."""
        ...

    def home(self) -> str:
        """The login user's home directory on the board (resolves `~` in workdir)."""
        ...

    def close(self) -> None: ...


TransportFactory = Callable[["DeviceSpec"], Transport]  # a connected transport for one device


class BoardWatch:
    """What one board's worker is waiting for, and until when: read by the fan-out's watchdog.

    The transport names each network step and its bound (`step`); the watchdog gives the board up
    when a step overruns its bound by WATCHDOG_GRACE, and calls `closers` to unblock the worker.
    """

    def __init__(self, device: str):
        self.device = device
        self.what: str | None = None
        self.deadline: float | None = None  # time.monotonic() bound of the current step; None: no wait
        self.bound: float = 0.0
        self.closers: list[Callable[[], object]] = []
        self.abandoned = False  # set by the watchdog: the worker's result no longer counts

    @contextmanager
    def step(self, what: str, seconds: float) -> Iterator[None]:
        outer = (self.what, self.deadline, self.bound)
        self.what, self.bound, self.deadline = what, seconds, time.monotonic() + seconds
        try:
            yield
        finally:
            self.what, self.deadline, self.bound = outer

    def overdue(self, now: float, grace: float) -> bool:
        return self.deadline is not None and now > self.deadline + grace


_current = threading.local()


def current_watch() -> BoardWatch | None:
    """The watch of the board this thread works for (set by the fan-out), or None."""
    return getattr(_current, "watch", None)


def set_current_watch(w: BoardWatch | None) -> None:
    _current.watch = w


@contextmanager
def watched(what: str, seconds: float) -> Iterator[None]:
    """Name a network wait and its bound for the watchdog (a no-op outside a fan-out)."""
    w = current_watch()
    if w is None:
        yield
        return
    with w.step(what, seconds):
        yield
