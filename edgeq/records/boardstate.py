"""Board state through a bench's timed window, as the agent reports it (edgeq.agent.boardstate, benchctl).

Every reading is best effort: a board without thermal zones, cpufreq or vcgencmd leaves those fields None.
`flags` name what makes a session's figures suspect:
- throttled: vcgencmd get_throttled shows throttling now, or a throttle event during the window;
- freq_drop: the slowest CPU clock seen in the window is under 95 % of the fastest one seen;
- foreign_load: the 1-min load average minus the agent's own threads is over a threshold (default 0.5);
- hot: the hottest thermal zone went over the board's hot_temp_c (devices.yaml, default 80 °C);
- cooldown_timeout: the cool-down before the session gave up at max_wait_s (the session still ran);
- cpu_starved: the agent got less CPU than its window needed: process CPU time / wall time under 0.85 (CPU-bound
  runs), or the cgroup's CFS quota throttled it over 5 % of the window, or steal over 5 % (`BoardState.cpu`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from pydantic import StrictInt

from edgeq.records.base import Record

FLAGS: tuple[str, ...] = ("throttled", "freq_drop", "foreign_load", "hot", "cooldown_timeout", "cpu_starved")


class ThrottleBits(Record):
    raw: str | None = None
    flags: StrictInt | None = None


class StateReading(Record):
    """One snapshot, before or after the window (vcgencmd only there: it forks)."""

    omit_if_none: ClassVar[frozenset[str]] = frozenset(
        {"temp_c", "freq_khz", "cpuinfo_max_khz", "loadavg", "throttled", "vc_temp_c"}
    )

    temp_c: float | None = None  # the hottest thermal zone
    freq_khz: StrictInt | None = None  # the slowest scaling_cur_freq of the cpus used
    cpuinfo_max_khz: StrictInt | None = None
    loadavg: tuple[float, ...] | None = None
    throttled: ThrottleBits | None = None
    vc_temp_c: float | None = None  # vcgencmd measure_temp


class StateDuring(Record):
    """What the sampler thread saw inside the window."""

    omit_if_none: ClassVar[frozenset[str]] = frozenset({"temp_max_c", "freq_min_khz", "freq_max_khz"})

    samples: StrictInt = 0
    interval_s: float | None = None
    temp_max_c: float | None = None
    freq_min_khz: StrictInt | None = None
    freq_max_khz: StrictInt | None = None


class CooldownReport(Record):
    omit_if_none: ClassVar[frozenset[str]] = frozenset({"temp_c", "timed_out", "note"})

    mode: str | None = None  # "seconds" or "temp"
    waited_s: float | None = None
    temp_c: float | None = None
    timed_out: bool | None = None
    note: str | None = None


class GovernorReport(Record):
    """What setting the cpufreq governor did: set and restored, or left alone with the reason in `error`."""

    omit_if_none: ClassVar[frozenset[str]] = frozenset({"previous", "cpus", "error", "restored"})

    requested: str | None = None
    set: bool = False
    previous: tuple[str, ...] | None = None
    cpus: tuple[int, ...] | None = None
    error: str | None = None
    restored: bool | None = None


class CpuWindow(Record):
    """The agent's CPU over the timed window (edgeq.agent.boardstate.cpu_window): what cpu_starved is decided on."""

    omit_if_none: ClassVar[frozenset[str]] = frozenset(
        {"steal_s", "steal_fraction", "cgroup", "cgroup_version", "nr_throttled", "throttled_s", "throttled_fraction"}
    )

    cpu_s: float  # the agent process's user + system seconds (every thread)
    wall_s: float
    ratio: float  # cpu_s / wall_s
    expected: float | None = None  # 1.0 for a CPU-bound run; None (rule off) with a delegate that offloads
    steal_s: float | None = None  # /proc/stat steal of the cpus used
    steal_fraction: float | None = None
    cgroup: str | None = None  # the most throttled of the agent's cpu cgroup and its ancestors
    cgroup_version: StrictInt | None = None
    nr_throttled: StrictInt | None = None
    throttled_s: float | None = None
    throttled_fraction: float | None = None
    starved: bool = False


class BoardState(Record):
    omit_if_none: ClassVar[frozenset[str]] = frozenset({"cooldown", "cpu_affinity", "governor", "cpu"})

    before: StateReading = StateReading()
    during: StateDuring = StateDuring()
    after: StateReading = StateReading()
    flags: tuple[str, ...] = ()
    foreign_load: tuple[float | None, ...] = ()
    cooldown: CooldownReport | None = None
    cpu_affinity: tuple[int, ...] | None = None
    governor: GovernorReport | None = None
    cpu: CpuWindow | None = None


class Trend(Record):
    """Burst vs sustained: median of the last 10 % of the samples over the median of the first 10 %."""

    ratio: float
    first_p50_s: float | None = None
    last_p50_s: float | None = None
    fraction: float | None = None
    n: StrictInt | None = None


class TrajectoryWindow(Record):
    """The median latency of one window of the timed run (seconds in the agent's document, ms in results)."""

    window: StrictInt
    p50: float
    count: StrictInt


class AgentTrajectoryWindow(Record):
    window: StrictInt
    p50_s: float
    count: StrictInt


def union_flags(groups: Iterable[Iterable[str]]) -> tuple[str, ...]:
    """The flags of several sessions together, in FLAGS order (unknown ones after, sorted)."""
    seen = {f for g in groups for f in g}
    return tuple(f for f in FLAGS if f in seen) + tuple(sorted(seen - set(FLAGS)))
