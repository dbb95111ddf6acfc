"""Retry with exponential backoff: a small pure unit; the clock and sleep are passed in."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
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

    def delays(self) -> Iterator[float]:
        """The waits between attempts: base, base*factor, ... capped at max_delay."""
        d = self.base_delay
        for _ in range(max(0, self.attempts - 1)):
            yield min(d, self.max_delay)
            d *= self.factor

    def call(
        self,
        fn: Callable[[], T],
        *,
        retryable: Callable[[BaseException], bool],
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_retry: Callable[[int, float, BaseException], None] | None = None,
    ) -> T:
        """Call fn; on an exception that `retryable` accepts, wait and try again.

        Non-retryable exceptions, and the last retryable one, propagate unchanged.
        """
        start = clock()
        waits = self.delays()
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
