"""Bench controls on the board: cool-down before a session, CPU affinity, the cpufreq governor, sustained mode.

`--controls JSON` (all keys optional):
    {"cooldown": {"temp_c": 60, "max_wait_s": 120} | {"seconds": 30},
     "cpu_affinity": [2, 3], "governor": "performance", "sustained_s": 10, "window_s": 1.0,
     "state_interval_s": 1.0, "hot_temp_c": 80, "foreign_load": 0.5, "own_load": 4}

A governor that cannot be set (no cpufreq, not root) is a warning recorded in the result, not a failure:
the benchmark still measures, and the result says the governor was left alone. The old governor is put
back when the bench ends, also on an error or a stop signal (and from the hard-exit path: control.add_cleanup).

Runs on boards: stdlib only, Python 3.7+.
"""

from __future__ import annotations

import json
import os
import sys
import time

from . import boardstate, control
from .codes import AgentFailure

COOLDOWN_POLL_S = 1.0  # thermal zones update about once a second on Pis; polling faster only adds load
GOVERNOR_PATH = "/sys/devices/system/cpu/cpu{}/cpufreq/scaling_governor"
# own_load: the most interpreter threads of the sessions the host interleaves (foreign load discounts it)
KEYS = (
    "cooldown",
    "cpu_affinity",
    "governor",
    "sustained_s",
    "window_s",
    "state_interval_s",
    "hot_temp_c",
    "foreign_load",
    "own_load",
)


def parse(text) -> dict:
    if not text:
        return {}
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise AgentFailure("usage", "--controls is not JSON: " + str(exc)) from None
    if not isinstance(doc, dict) or set(doc) - set(KEYS):
        raise AgentFailure("usage", "--controls takes an object with keys " + ", ".join(KEYS) + " (got " + str(text)[:200] + ")")
    return doc


def set_affinity(cpus) -> list:
    """Pin this process (and the interpreter threads it creates later) to `cpus`; usage error if the board lacks one."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        raise AgentFailure("usage", "cpu_affinity: this board's Python cannot set CPU affinity (no sched_setaffinity)") from None
    wanted = sorted(set(int(c) for c in cpus))
    missing = [c for c in wanted if c not in allowed]
    if not wanted or missing:
        raise AgentFailure(
            "usage",
            "cpu_affinity "
            + str(wanted)
            + " names cpus this board does not offer "
            + str(missing)
            + ": the agent may run on "
            + str(allowed)
            + "; fix cpu_affinity in devices.yaml or the benchmark options",
        )
    os.sched_setaffinity(0, wanted)
    return sorted(os.sched_getaffinity(0))


def cooldown(spec) -> dict:
    """Wait before the session: a fixed time, or until the hottest zone is at or under temp_c (bounded)."""
    start = time.monotonic()
    if spec.get("seconds") is not None:
        time.sleep(float(spec["seconds"]))
        return {"mode": "seconds", "waited_s": round(time.monotonic() - start, 3)}
    target = float(spec["temp_c"])
    max_wait = float(spec.get("max_wait_s", 120.0))
    temp = boardstate.snapshot(vcgencmd=False).get("temp_c")
    if temp is None:
        return {"mode": "temp", "waited_s": 0.0, "note": "no thermal zone on this board: did not wait"}
    while temp is not None and temp > target:
        if time.monotonic() - start >= max_wait:
            return {"mode": "temp", "waited_s": round(time.monotonic() - start, 3), "temp_c": temp, "timed_out": True}
        time.sleep(COOLDOWN_POLL_S)
        temp = boardstate.snapshot(vcgencmd=False).get("temp_c")
    return {"mode": "temp", "waited_s": round(time.monotonic() - start, 3), "temp_c": temp}


class Governor:
    """Set scaling_governor on the cpus used; restore() puts each old value back (idempotent)."""

    def __init__(self, wanted, cpus):
        self.wanted = wanted
        self.cpus = list(cpus)
        self.old = {}
        self.doc = {"requested": wanted, "set": False}

    def apply(self) -> dict:
        paths = [(c, GOVERNOR_PATH.format(c)) for c in self.cpus]
        paths = [(c, p) for c, p in paths if os.path.exists(p)]
        if not paths:
            return self._warn("no cpufreq on this board (no scaling_governor): the governor was left alone")
        control.add_cleanup(self.restore)
        for cpu, path in paths:
            try:
                with open(path) as f:
                    old = f.read().strip()
                with open(path, "w") as f:
                    f.write(self.wanted)
            except OSError as exc:
                self.restore()
                why = "needs root on the board" if exc.errno in (1, 13, 30) else str(exc)
                return self._warn(
                    "cannot set the "
                    + self.wanted
                    + " governor on cpu"
                    + str(cpu)
                    + " ("
                    + why
                    + "): the governor was left alone"
                )
            self.old[cpu] = old
        self.doc.update(set=True, previous=sorted(set(self.old.values())), cpus=sorted(self.old))
        return self.doc

    def _warn(self, message) -> dict:
        print("edgeq-agent: " + message, file=sys.stderr)
        self.doc["error"] = message
        return self.doc

    def restore(self):
        for cpu, old in list(self.old.items()):
            try:
                with open(GOVERNOR_PATH.format(cpu), "w") as f:
                    f.write(old)
            except OSError as exc:
                print("edgeq-agent: could not restore the governor of cpu" + str(cpu) + ": " + str(exc), file=sys.stderr)
            self.old.pop(cpu, None)
        if self.doc.get("set"):
            self.doc["restored"] = True
