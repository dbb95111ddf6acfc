"""The board's wall clock against this host's.

A board with no RTC and no NTP yet (a Pi in an offline lab) can run hours or days off. edgeq records this host's
time; the board's clock is only compared with it. Every agent document carries `clock` (the board's time when the
agent started and when it answered); around the call this host read its own clock, so

    offset = board midpoint - host midpoint = ((b_start + b_end) - (h_start + h_end)) / 2

and the error is at most half of the call's time spent outside the agent (process start, the connection):
`within_s`. A bench session of 10 s still measures the offset to a fraction of a second.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Sequence

from edgeq.records.fleet import AgentClock, ClockOffset

# Beyond this (and beyond the measurement's own error) `devices check` and the bench result say so: a clock a few
# seconds off is ordinary on a board whose NTP has not settled; minutes or a day are a board without the time.
NOTE_S = 5.0
_ISO = "%Y-%m-%dT%H:%M:%SZ"  # the agent's started_at (UTC, to the second)


def measure(board: AgentClock, host_start: float, host_end: float) -> ClockOffset:
    offset = ((board.start + board.end) - (host_start + host_end)) / 2.0
    within = max(0.0, ((host_end - host_start) - (board.end - board.start)) / 2.0)
    return ClockOffset(offset_s=round(offset, 3), within_s=round(within, 3))


def note(offsets: Sequence[ClockOffset]) -> str | None:
    """'clock offset +86400 s ...' when the board's clock is off by more than NOTE_S (the median of `offsets`)."""
    if not offsets:
        return None
    mid = sorted(offsets, key=lambda o: o.offset_s)[len(offsets) // 2]
    if abs(mid.offset_s) - mid.within_s <= NOTE_S:
        return None
    way = "ahead of" if mid.offset_s > 0 else "behind"
    return f"clock offset {mid.offset_s:+.0f} s (the board runs {way} this host; edgeq records host time): set its clock (NTP)"


def host_time(board_iso: str | None, offset: ClockOffset | None) -> str | None:
    """A time the board stamped (UTC, to the second) on this host's clock; as given when it cannot be converted."""
    if board_iso is None or offset is None:
        return board_iso
    try:
        t = calendar.timegm(time.strptime(board_iso, _ISO))
    except ValueError:
        return board_iso
    return time.strftime(_ISO, time.gmtime(round(t - offset.offset_s)))
