"""Bench controls on the board: cool-down before a session, CPU affinity, the cpufreq governor, sustained mode.

`--controls JSON` (all keys optional):
    {"cooldown": {"temp_c": 60, "max_wait_s": 120} | {"seconds": 30},
     "cpu_affinity": [2, 3], "governor": "performance", "sustained_s": 10, "window_s": 1.0,
     "state_interval_s": 1.0, "hot_temp_c": 80, "foreign_load": 0.5, "own_load": 4}

A governor that cannot be set (no cpufreq, not root) is a warning recorded in the result, not a failure:
the benchmark still measures, and the result says the governor was left alone. The old governor is put
back when the bench ends, also on an error or a stop signal (and from the hard-exit path: control.add_cleanup);
W/governor.json keeps the old values meanwhile, so after a SIGKILL the next agent command puts them back.
Cores that share a cpufreq policy (every Raspberry Pi) are one governor: handled per policy.

Runs on boards: stdlib only, Python 3.7+.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from pathlib import Path

from . import boardfs, boardstate, control
from .codes import AgentFailure

COOLDOWN_POLL_S = 1.0  # thermal zones update about once a second on Pis; polling faster only adds load
GOVERNOR_PATH = "/sys/devices/system/cpu/cpu{}/cpufreq/scaling_governor"  # tests point it at a simulated sysfs
GOVERNOR_NAME = r"[a-z0-9_]{1,32}"  # the kernel's governor names: ondemand, schedutil, performance, ...
STATE_FILE = "governor.json"  # W/governor.json: the old governors while a bench has them changed
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


# ----------------------------------------------------------------------------------------------- governor


def _read(path) -> str:
    with open(path) as f:
        return f.read().strip()


def _write(path, text) -> None:
    with open(path, "w") as f:
        f.write(text)


def _boot_id():
    try:
        return _read("/proc/sys/kernel/random/boot_id")
    except OSError:
        return None


def _label(cpus) -> str:
    return "cpu" + ",".join(str(c) for c in cpus)


def policies(cpus) -> list:
    """The cpufreq policies of `cpus`, one dict each: {"cpu": its first cpu, "cpus": [...], "path": governor file}.

    Cores of one policy (all four of a Raspberry Pi) share one scaling_governor: cpuN/cpufreq is a symlink to
    ../cpufreq/policyM (older kernels: to the first core's cpufreq), so the file's real path names the policy."""
    groups: dict = {}
    for cpu in sorted(set(int(c) for c in cpus)):
        path = GOVERNOR_PATH.format(cpu)
        if os.path.exists(path):
            real = os.path.realpath(path)
            group = groups.setdefault(
                real, {"cpu": cpu, "cpus": [], "path": path, "policy": os.path.basename(os.path.dirname(real))}
            )
            group["cpus"].append(cpu)
    return list(groups.values())


def _put_back(path, old):
    """Write `old` and read it back: None when the file now reads `old`, else what went wrong."""
    try:
        _write(path, old)
        now = _read(path)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None if now == old else "it reads " + repr(now[:40]) + " after writing " + old


def _available(path, name) -> bool:
    try:
        names = _read(os.path.join(os.path.dirname(path), "scaling_available_governors")).split()
    except OSError:
        return True  # the kernel refuses an unknown name itself; this list only guards a planted state file
    return name in names


def _restore_state(state) -> dict:
    """Put back what a W/governor.json records, policy by policy, only where the governor is still the one the
    dead bench set (an operator's change since is left alone). The file may be planted (a shared work dir):
    only a cpu number and a governor name of the kernel's own list are taken from it."""
    if not isinstance(state, dict) or not isinstance(state.get("policies"), list) or not _name_ok(state.get("set")):
        return {"refused": "not a governor record"}
    if state.get("boot_id") != _boot_id():
        return {"stale": "another boot"}  # a reboot reset the governor already
    out: dict = {"restored": [], "left_alone": [], "failed": [], "refused": []}
    for entry in state["policies"]:
        cpu = entry.get("cpu") if isinstance(entry, dict) else None
        if type(cpu) is not int or cpu < 0 or not _name_ok(entry.get("governor")):
            out["refused"].append(str(entry)[:80])
            continue
        cpus = entry.get("cpus") if isinstance(entry.get("cpus"), list) else [cpu]
        labels = ["cpu" + str(c) for c in cpus if type(c) is int]
        path = GOVERNOR_PATH.format(cpu)
        try:
            now = _read(path)
        except OSError as exc:
            out["failed"].append(_label([cpu]) + ": " + (exc.strerror or str(exc)))
            continue
        if now == entry["governor"]:
            continue
        if now != state["set"]:
            out["left_alone"].extend(labels)
        elif not _available(path, entry["governor"]):
            out["refused"].append(_label([cpu]) + ": " + entry["governor"] + " is not one of this board's governors")
        else:
            error = _put_back(path, entry["governor"])
            if error:
                out["failed"].append(_label([cpu]) + ": " + error)
            else:
                out["restored"].extend(labels)
    return {k: v for k, v in out.items() if v}


def _name_ok(name) -> bool:
    return isinstance(name, str) and re.fullmatch(GOVERNOR_NAME, name) is not None


def _recover_file(path):
    """Restore from a state file left by an agent that never got to restore (caller holds W/lock); removes it."""
    try:
        with open(path) as f:
            state = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        state = None
    result = _restore_state(state)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    who = ""
    if isinstance(state, dict) and isinstance(state.get("pid"), int):
        who = " (pid " + str(state["pid"]) + ", since " + str(state.get("since", "?"))[:40] + ")"
    if result.get("restored"):
        print(
            "edgeq-agent: put back the cpufreq governor of "
            + ",".join(result["restored"])
            + " that a killed bench"
            + who
            + " left changed",
            file=sys.stderr,
        )
    for key, what in (
        ("left_alone", "changed since by someone else: left alone"),
        ("failed", "could not restore"),
        ("refused", "refused"),
    ):
        if result.get(key):
            print("edgeq-agent: " + path + ": " + what + ": " + "; ".join(result[key]), file=sys.stderr)
    return result


def recover(workdir):
    """Put back the governors a killed bench left (W/governor.json), unless W/lock is held: a live bench
    restores its own. Every agent command with a work dir calls this first. None: nothing to do."""
    path = os.path.join(str(workdir), STATE_FILE)
    if not os.path.lexists(path):
        return None
    lock = boardfs.WorkdirLock(os.path.join(str(workdir), "lock"), 0, "restore the cpufreq governor")
    try:
        lock.acquire()
    except (AgentFailure, OSError):
        return None  # held: a live bench restores its own
    try:
        return _recover_file(path)
    finally:
        lock.release()


class Governor:
    """Set scaling_governor on the policies of the cpus used; restore() puts each old value back (idempotent).

    Every old value is read before the first write (the cores of one policy see each other's writes), and with
    a state_dir (the work dir) they are kept in W/governor.json until they are back: the next agent restores
    them if this one dies by SIGKILL. "restored" is claimed only once each value reads back."""

    def __init__(self, wanted, cpus, state_dir=None):
        self.wanted = wanted
        self.cpus = list(cpus)
        self.state_path = os.path.join(str(state_dir), STATE_FILE) if state_dir is not None else None
        self.changed: list = []  # policies written, each with its old "governor"
        self.saved = False
        self.failed: list = []
        self.doc = {"requested": wanted, "set": False}
        # the hard-exit thread may call restore() while the main thread is still writing
        self._lock = threading.RLock()

    def apply(self) -> dict:
        if self.state_path is not None:
            _recover_file(self.state_path)  # under W/lock: a killed bench's change first, or its value reads as "old"
        groups = policies(self.cpus)
        if not groups:
            return self._warn("no cpufreq on this board (no scaling_governor): the governor was left alone")
        for group in groups:
            try:
                group["governor"] = _read(group["path"])
            except OSError as exc:
                return self._left_alone(group, exc)
        with self._lock:
            todo = [g for g in groups if g["governor"] != self.wanted]
            if todo and self.state_path is not None:
                try:
                    self._save(todo)
                except OSError as exc:
                    return self._warn(
                        "cannot record the old governor in "
                        + self.state_path
                        + " ("
                        + (exc.strerror or str(exc))
                        + "): the governor was left alone"
                    )
            control.add_cleanup(self.restore)
            for group in todo:
                self.changed.append(group)
                try:
                    _write(group["path"], self.wanted)
                    now = _read(group["path"])
                except OSError as exc:
                    self.restore()
                    return self._left_alone(group, exc)
                if now != self.wanted:
                    self.restore()
                    return self._warn(
                        "the kernel kept the "
                        + now[:40]
                        + " governor on "
                        + _label(group["cpus"])
                        + " after "
                        + self.wanted
                        + " was written: the governor was left alone"
                    )
        previous = sorted(set(g["governor"] for g in groups))
        self.doc.update(set=True, previous=previous, cpus=sorted(c for g in groups for c in g["cpus"]))
        return self.doc

    def _save(self, todo) -> None:
        if self.state_path is None:
            return
        state = {
            "set": self.wanted,
            "boot_id": _boot_id(),
            "pid": os.getpid(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "policies": [{"cpu": g["cpu"], "cpus": g["cpus"], "policy": g["policy"], "governor": g["governor"]} for g in todo],
        }
        boardfs.write_atomic(Path(self.state_path), json.dumps(state) + "\n")
        self.saved = True

    def _left_alone(self, group, exc) -> dict:
        why = "needs root on the board" if exc.errno in (1, 13, 30) else (exc.strerror or str(exc))
        return self._warn(
            "cannot set the "
            + self.wanted
            + " governor on "
            + _label(group["cpus"])
            + " ("
            + why
            + "): the governor was left alone"
        )

    def _warn(self, message) -> dict:
        print("edgeq-agent: " + message, file=sys.stderr)
        self.doc["error"] = message
        return self.doc

    def restore(self):
        with self._lock:
            for group in list(self.changed):
                error = _put_back(group["path"], group["governor"])
                if error:
                    self.failed.append(_label(group["cpus"]) + " to " + group["governor"] + ": " + error)
                self.changed.remove(group)
            if self.failed:
                message = "could not restore the governor of " + "; ".join(self.failed) + " (the bench's results stand)"
                if message != self.doc.get("error"):
                    print("edgeq-agent: " + message, file=sys.stderr)
                self.doc["error"] = message
            elif self.saved:
                # kept when a restore failed: the next agent tries once more
                try:
                    os.unlink(str(self.state_path))
                except OSError:
                    pass
                self.saved = False
            if self.doc.get("set"):
                self.doc["restored"] = not self.failed
