"""Running one per-board job over many boards: bounded parallelism, canary batches, a failure budget.

Jobs never raise for a board's failure: every board ends as one record with a status.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError

from edgeq.errors import ConfigError, EdgeqError, Terminated
from edgeq.fleet.board import AgentBundle, Board
from edgeq.fleet.inventory.devices import DeviceSpec
from edgeq.fleet.transport.base import BoardError, BoardWatch, current_watch, set_current_watch
from edgeq.records.fleet import FAILED, Action, BoardOutcome, FleetCounts, FleetSummary, Rollout

ProgressFn = Callable[[dict], None]  # called from worker threads with small JSON-able events


def parse_batches(spec: str | list | tuple | None) -> list[tuple[str, float]]:
    """'1,25%,100%' -> [('n', 1), ('%', 25), ('%', 100)]: cumulative counts or percentages."""
    if spec is None or spec == "" or spec == []:
        return []
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out = []
    for raw in items:
        s = str(raw).strip()
        try:
            if s.endswith("%"):
                p = float(s[:-1])
                if not 0 < p <= 100:
                    raise ValueError
                out.append(("%", p))
            else:
                k = int(s)
                if k < 1:
                    raise ValueError
                out.append(("n", float(k)))
        except ValueError:
            raise ConfigError(
                f"--batch: {s!r} is not a positive count or a percentage in (0, 100]", "e.g. --batch 1,25%,100%"
            ) from None
    return out


def plan_batches(n: int, spec: str | list | tuple | None) -> list[range]:
    """Split n targets into consecutive batches by cumulative sizes; the rest always ends last."""
    if n == 0:
        return []
    cuts = []
    for kind, v in parse_batches(spec):
        c = min(n, int(v) if kind == "n" else max(1, math.ceil(n * v / 100 - 1e-9)))
        cuts.append(c)
    if not cuts or cuts[-1] < n:
        cuts.append(n)
    out, start = [], 0
    for c in cuts:
        if c > start:
            out.append(range(start, c))
            start = c
    return out


def failure_fields(device: DeviceSpec | str, e: BaseException) -> dict[str, Any]:
    """How a failure on a board reads in every record that reports one (a board's outcome, a bench run, a numeric
    check): status, kind, error (starting with the device name) and hint."""
    name = device if isinstance(device, str) else device.name
    if isinstance(e, BoardError):
        return {"status": "unreachable" if e.unreachable else "failed", "kind": e.kind, "error": e.message, "hint": e.hint}
    if isinstance(e, EdgeqError):
        return {"status": "failed", "kind": type(e).__name__, "error": f"{name}: {e.message}", "hint": e.hint}
    # a bug must not abort the other boards' rollout; it is still reported
    return {
        "status": "failed",
        "kind": "internal",
        "error": f"{name}: internal error: {type(e).__name__}: {e}",
        "hint": "rerun with --debug and report it",
    }


def failure_record(device: DeviceSpec, e: BaseException, started: float, **fields: Any) -> BoardOutcome:
    """The outcome of a board whose job raised; `fields` adds the action's own (check: BoardHealth's)."""
    cls: type[BoardOutcome] = fields.pop("record", BoardOutcome)
    rec: dict[str, Any] = {"device": device.name, "address": device.address, **fields, **failure_fields(device, e)}
    # the agent's details (holder, op, ...)
    details = {k: v for k, v in e.extra.items() if k not in rec} if isinstance(e, BoardError) else {}
    up = details.pop("bytes_uploaded", 0)
    rec["bytes_uploaded"] = up if isinstance(up, int) and not isinstance(up, bool) else 0
    rec["seconds"] = round(time.monotonic() - started, 3)
    fields = {k: v for k, v in details.items() if k in cls.model_fields}  # deploy's `current`, ...
    rec["details"] = {k: v for k, v in details.items() if k not in cls.model_fields}
    try:
        return cls.model_validate({**rec, **fields})
    except ValidationError:  # a board's detail that collides with a field of ours is dropped, not fatal
        return cls.model_validate(rec)


def _skipped(d: DeviceSpec, stopped_after: int | None, failures: int, max_fail: int | None) -> BoardOutcome:
    return BoardOutcome(
        device=d.name,
        address=d.address,
        status="skipped",
        error=None,
        hint=f"rollout stopped after batch {stopped_after}: {failures} failure(s) > --max-fail {max_fail}",
        bytes_uploaded=0,
        seconds=0.0,
    )


WATCHDOG_GRACE = 5.0  # seconds a network step may overrun its own bound before the watchdog gives the board up
_TICK = 0.2  # how often the fan-out looks at the running boards' watches


class FleetInterrupted(KeyboardInterrupt):
    """Ctrl-C during a fan-out: `rollout` holds the finished boards; the others are skipped (kind interrupted)."""

    def __init__(self, rollout: Rollout):
        super().__init__()
        self.rollout = rollout
        # bench of several models (edgeq.fleet.benchmarks.bench_models): each model's finished boards, by its key
        self.by_model: dict[str, tuple[BoardOutcome, ...]] = {}

    def summary(self, action: Action, seconds: float) -> FleetSummary:
        """What finished before the interrupt, as the action's document (not ok: the rest was skipped)."""
        r = self.rollout
        return FleetSummary(
            ok=False,
            action=action,
            batches=r.batches,
            counts=r.counts,
            devices=r.devices,
            bytes_uploaded=sum(d.bytes_uploaded for d in r.devices),
            seconds=round(seconds, 3),
        )


class FleetTerminated(FleetInterrupted, Terminated):
    """The same for SIGTERM (edgeq.errors.Terminated): exit 143 and manifest `terminated` stay as they are."""


# (device, what went wrong, monotonic start) -> the board's record: failure_record, or an action's own (check's)
FailureFn = Callable[[DeviceSpec, BaseException, float], BoardOutcome]


def _failed(d: DeviceSpec, e: BaseException, started: float, on_failure: FailureFn | None) -> BoardOutcome:
    if on_failure is not None:
        try:
            return on_failure(d, e, started)
        except Exception:  # noqa: S110 - the action's own record could not be built: the plain one still reports it
            pass
    return failure_record(d, e, started)


def _stalled(d: DeviceSpec, w: BoardWatch, started: float, on_failure: FailureFn | None) -> BoardOutcome:
    err = BoardError(
        d.name,
        f"stopped answering while {w.what} (no reply within {w.bound:g}s + {WATCHDOG_GRACE:g}s grace); given up",
        "the board accepted the connection and then hung: check its sshd and load (a reboot helps), "
        "or raise connect_timeout / command_timeout in devices.yaml for a slow board",
        kind="timeout",
        step=w.what,
    )
    return _failed(d, err, started, on_failure)


def _interrupted(d: DeviceSpec, running: bool) -> BoardOutcome:
    return BoardOutcome(
        device=d.name,
        address=d.address,
        status="skipped",
        kind="interrupted",
        error=f"{d.name}: interrupted before it finished" if running else None,
        hint="interrupted (Ctrl-C or SIGTERM): " + ("this board was in progress" if running else "this board was not started"),
        bytes_uploaded=0,
        seconds=0.0,
    )


def _close_quietly(w: BoardWatch) -> None:
    """Unblock a worker stuck on the network: close its connection, from a thread of its own (close may block too)."""

    def run() -> None:
        for c in list(w.closers):
            try:
                c()
            except Exception:  # noqa: S110 - the board is given up; a failing close changes nothing
                pass

    threading.Thread(target=run, daemon=True, name=f"edgeq-close-{w.device}").start()


def _run_batch(
    devices: list[DeviceSpec],
    job,
    parallel: int,
    progress: ProgressFn | None,
    out: dict[int, BoardOutcome],
    on_failure: FailureFn | None = None,
) -> None:
    """Run job on devices (at most `parallel` at once) into out[i]; a wedged board is given up, never joined.

    Workers are daemon threads: a stuck one cannot hold back the summary or the process exit.
    """
    done: queue.SimpleQueue[tuple[int, BoardOutcome]] = queue.SimpleQueue()
    running: dict[int, tuple[BoardWatch, float]] = {}
    todo = list(range(len(devices)))

    def worker(i: int, w: BoardWatch) -> None:
        set_current_watch(w)
        started = time.monotonic()
        try:
            rec = job(devices[i])
        except Exception as e:
            rec = _failed(devices[i], e, started, on_failure)
        done.put((i, rec))

    def finish(i: int, rec: BoardOutcome) -> None:
        out[i] = rec
        if progress:
            progress({"event": "done", "device": rec.device, "status": rec.status, "error": rec.error})

    try:
        while todo or running:
            while todo and len(running) < parallel:
                i = todo.pop(0)
                w = BoardWatch(devices[i].name)
                running[i] = (w, time.monotonic())
                threading.Thread(target=worker, args=(i, w), daemon=True, name=f"edgeq-fleet-{devices[i].name}").start()
            try:
                i, rec = done.get(timeout=_TICK)
                if i in running and not running[i][0].abandoned:
                    del running[i]
                    finish(i, rec)
            except queue.Empty:
                pass
            now = time.monotonic()
            for i, (w, started) in list(running.items()):
                if w.overdue(now, WATCHDOG_GRACE):
                    w.abandoned = True
                    del running[i]
                    _close_quietly(w)
                    finish(i, _stalled(devices[i], w, started, on_failure))
    except KeyboardInterrupt:
        for i, (w, _) in running.items():
            w.abandoned = True
            _close_quietly(w)
            out[i] = _interrupted(devices[i], running=True)
        for i in todo:
            out[i] = _interrupted(devices[i], running=False)
        raise


def _rollout(devices, plan, records, stopped_after, failures, max_fail) -> Rollout:
    done = [r or _skipped(d, stopped_after, failures, max_fail) for d, r in zip(devices, records, strict=True)]
    return Rollout(
        batches=tuple(tuple(devices[i].name for i in idx) for idx in plan),
        stopped_after_batch=stopped_after,
        counts=FleetCounts(**Counter[str](r.status for r in done)),
        devices=tuple(done),
    )


def run_fleet(
    devices: list[DeviceSpec],
    job: Callable[[DeviceSpec], BoardOutcome],
    *,
    parallel: int = 5,
    batches: str | list | None = None,
    max_fail: int | None = None,
    progress: ProgressFn | None = None,
    on_failure: FailureFn | None = None,
) -> Rollout:
    """Run job on each device (bounded threads, batch by batch). Returns outcomes and rollout facts.

    A board whose network step overruns its bound by WATCHDOG_GRACE is reported (kind timeout) without
    waiting for its worker. Ctrl-C raises FleetInterrupted (FleetTerminated for SIGTERM) carrying the
    finished boards at once; the boards in progress are cut off, not waited for. `on_failure` builds the record
    of a board whose job raised or was given up (default failure_record: a BoardOutcome; check passes its
    BoardHealth builder).
    """
    if parallel < 1:
        raise ConfigError(f"--parallel must be at least 1 (got {parallel})")
    if max_fail is not None and max_fail < 0:
        raise ConfigError(f"--max-fail must be 0 or more (got {max_fail})")
    plan = plan_batches(len(devices), batches)
    records: list[BoardOutcome | None] = [None] * len(devices)
    failures = 0
    stopped_after = None
    for b, idx in enumerate(plan):
        if progress:
            progress({"event": "batch", "batch": b + 1, "of": len(plan), "devices": [devices[i].name for i in idx]})
        got: dict[int, BoardOutcome] = {}
        try:
            _run_batch([devices[i] for i in idx], job, parallel, progress, got, on_failure)
        except KeyboardInterrupt as e:
            for k, rec in got.items():
                records[idx[k]] = rec
            for later in plan[b + 1 :]:
                for i in later:
                    records[i] = _interrupted(devices[i], running=False)
            cls = FleetTerminated if isinstance(e, Terminated) else FleetInterrupted
            raise cls(_rollout(devices, plan, records, None, failures, max_fail)) from None
        for k, rec in got.items():
            records[idx[k]] = rec
        failures = sum(1 for r in records if r and r.status in FAILED)
        if max_fail is not None and failures > max_fail and b + 1 < len(plan):
            stopped_after = b + 1
            if progress:
                progress({"event": "stopped", "batch": b + 1, "failures": failures, "max_fail": max_fail})
            break
    return _rollout(devices, plan, records, stopped_after, failures, max_fail)


@contextmanager
def board_session(
    device: DeviceSpec, agent: AgentBundle, transport_factory, progress: ProgressFn | None = None, *, ensure_agent: bool = True
) -> Iterator[Board]:
    """A connected board with the agent in place (unless ensure_agent is False: a dry run sends nothing);
    the connection is closed afterwards. The agent check runs with the first agent call (Board.call_ensured):
    one command instead of two when the agent is already there."""
    if progress:
        progress({"event": "connect", "device": device.name, "address": device.address})
    t = transport_factory(device)
    w = current_watch()
    if w is not None:
        w.closers.append(t.close)  # the watchdog's way to unblock this worker if the board wedges
    try:
        board = Board(device, t, agent)
        board.agent_pending = ensure_agent
        yield board
    finally:
        t.close()
