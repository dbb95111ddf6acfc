"""Retry with exponential backoff and full jitter, and a cap on connection attempts per address.

Small pure units: the clock, the sleep and the random source are passed in.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3  # total tries, the first included
    base_delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 30.0
    deadline: float | None = None  # seconds for all attempts; no retry would start past it
    # full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): each wait is uniform in
    # [0, cap]; boards that failed together (one sshd's MaxStartups) then retry at different times
    jitter: bool = False

    def caps(self) -> Iterator[float]:
        """The upper bounds of the waits between attempts: base, base*factor, ... capped at max_delay."""
        d = self.base_delay
        for _ in range(max(0, self.attempts - 1)):
            yield min(d, self.max_delay)
            d *= self.factor

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The waits between attempts: the caps themselves, or with jitter uniform in [0, cap]."""
        if not self.jitter:
            yield from self.caps()
            return
        r = rng or random.Random()  # noqa: S311 - backoff spreading, not cryptography
        for cap in self.caps():
            yield r.uniform(0.0, cap)

    def call(
        self,
        fn: Callable[[], T],
        *,
        retryable: Callable[[BaseException], bool],
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_retry: Callable[[int, float, BaseException], None] | None = None,
        rng: random.Random | None = None,
    ) -> T:
        """Call fn; on an exception that `retryable` accepts, wait and try again.

        Non-retryable exceptions, and the last retryable one, propagate unchanged.
        """
        start = clock()
        waits = self.delays(rng)
        attempt = 1
        while True:
            try:
                return fn()
            except Exception as e:
                if not retryable(e):
                    raise
                wait = next(waits, None)
                if wait is None:
                    raise
                if self.deadline is not None and clock() - start + wait > self.deadline:
                    raise
                if on_retry is not None:
                    on_retry(attempt, wait, e)
                sleep(wait)
                attempt += 1


# OpenSSH's MaxStartups defaults to 10:30:100 (random drops from 10 unauthenticated connections on);
# small boards and bastions often set it lower. 4 at once per address stays well under either.
MAX_STARTUPS_PER_ADDRESS = 4


class ConnectGate:
    """At most `limit` connection attempts (TCP + banner + auth) at once per (host, port).

    One gate is shared by every board of a process: boards behind one sshd (port forwards on a
    gateway, a bastion) take turns instead of tripping its MaxStartups together.
    """

    def __init__(self, limit: int = MAX_STARTUPS_PER_ADDRESS):
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._lock = threading.Lock()
        self._slots: dict[tuple[str, int], threading.BoundedSemaphore] = {}
        self._active: dict[tuple[str, int], int] = {}
        self.peak: dict[tuple[str, int], int] = {}  # the most attempts seen at once, per address

    def _slot(self, key: tuple[str, int]) -> threading.BoundedSemaphore:
        with self._lock:
            return self._slots.setdefault(key, threading.BoundedSemaphore(self.limit))

    @contextmanager
    def attempt(self, host: str, port: int, timeout: float | None = None) -> Iterator[None]:
        """Hold one of the address's slots for the block; TimeoutError if none frees within timeout."""
        key = (host, port)
        sem = self._slot(key)
        if not sem.acquire(timeout=timeout):
            raise TimeoutError(f"no connection slot for {host}:{port} within {timeout:g}s")
        with self._lock:
            self._active[key] = self._active.get(key, 0) + 1
            self.peak[key] = max(self.peak.get(key, 0), self._active[key])
        try:
            yield
        finally:
            with self._lock:
                self._active[key] -= 1
            sem.release()


CONNECT_GATE = ConnectGate()  # the process's one gate: a per-address limit only works if it is shared
