"""Whether the process that wrote a `running` manifest is gone, so `edgeq history --import` can record the run.

A run's manifest says `running` with the pid of its edgeq until the run ends; a run killed (SIGKILL, OOM, a
power cut) keeps saying so. The pid is gone when no process has it, when its process has exited (a zombie), or
when the process that has it now started after the run did (the pid was reused). Anything else, and whatever
cannot be read (no procfs), counts as possibly running: such a run is skipped, never recorded half-way.
"""

from __future__ import annotations

import os
from pathlib import Path

# manifest `started` has whole seconds, /proc/stat's btime too: a process that started this much after the run's
# `started` cannot be the run's (edgeq writes `started` after it has started)
START_SLACK_S = 2.0


def _boot_time(proc: Path) -> float | None:
    try:
        for line in (proc / "stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _state_and_start(proc: Path, pid: int) -> tuple[str, float] | None:
    """(state letter, start time in seconds since boot) from /proc/PID/stat, None if unreadable."""
    try:
        fields = (proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def process_gone(pid: int | None, started_ts: float | None, *, proc: Path = Path("/proc")) -> str | None:
    """Why the run's process (pid, run started at started_ts) is gone: "not running", "exited" or "reused by a
    later process"; None if it may still be running or this cannot be told (no pid, no procfs)."""
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "not running"
    except PermissionError:  # another user's process: still there
        pass
    except OSError:
        return None
    st = _state_and_start(proc, pid)
    if st is None:
        return None
    state, since_boot = st
    if state in ("Z", "X"):
        return "exited"
    boot = _boot_time(proc)
    if started_ts is not None and boot is not None and boot + since_boot > started_ts + START_SLACK_S:
        return "reused by a later process"
    return None
