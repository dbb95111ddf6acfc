"""Running one per-board job over many boards: bounded parallelism, canary batches, a failure budget.

Jobs never raise for a board's failure: every board ends as one record with a status.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError

from edgeq.errors import ConfigError, EdgeqError
from edgeq.fleet.base import BoardError
from edgeq.fleet.board import AgentBundle, Board
from edgeq.fleet.inventory import DeviceSpec
from edgeq.records.fleet import FAILED, BoardOutcome, FleetCounts, Rollout

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


def failure_record(device: DeviceSpec, e: BaseException, started: float, **fields: Any) -> BoardOutcome:
    """The outcome of a board whose job raised; `fields` adds the action's own (check: BoardHealth's)."""
    cls: type[BoardOutcome] = fields.pop("record", BoardOutcome)
    rec: dict[str, Any] = {"device": device.name, "address": device.address, **fields}
    details: dict[str, Any] = {}
    if isinstance(e, BoardError):
        rec.update(status="unreachable" if e.unreachable else "failed", kind=e.kind, error=e.message, hint=e.hint)
        details = {k: v for k, v in e.extra.items() if k not in rec}  # the agent's details (holder, op, ...)
    elif isinstance(e, EdgeqError):
        rec.update(status="failed", kind=type(e).__name__, error=f"{device.name}: {e.message}", hint=e.hint)
    else:  # a bug must not abort the other boards' rollout; it is still reported
        rec.update(
            status="failed",
            kind="internal",
            error=f"{device.name}: internal error: {type(e).__name__}: {e}",
            hint="rerun with --debug and report it",
        )
    up = details.pop("bytes_uploaded", 0)
    rec["bytes_uploaded"] = up if isinstance(up, int) and not isinstance(up, bool) else 0
    rec["seconds"] = round(time.monotonic() - started, 3)
    try:
        return cls.model_validate({**rec, **details})
    except ValidationError:  # a board's detail that collides with a field of ours is dropped, not fatal
        return cls.model_validate({**rec, **{k: v for k, v in details.items() if k not in cls.model_fields}})


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


def run_fleet(
    devices: list[DeviceSpec],
    job: Callable[[DeviceSpec], BoardOutcome],
    *,
    parallel: int = 5,
    batches: str | list | None = None,
    max_fail: int | None = None,
    progress: ProgressFn | None = None,
) -> Rollout:
    """Run job on each device (bounded threads, batch by batch). Returns outcomes and rollout facts."""
    if parallel < 1:
        raise ConfigError(f"--parallel must be at least 1 (got {parallel})")
    if max_fail is not None and max_fail < 0:
        raise ConfigError(f"--max-fail must be 0 or more (got {max_fail})")
    plan = plan_batches(len(devices), batches)
    records: list[BoardOutcome | None] = [None] * len(devices)
    failures = 0
    stopped_after = None

    def guarded(d: DeviceSpec) -> BoardOutcome:
        started = time.monotonic()
        try:
            rec = job(d)
        except Exception as e:
            rec = failure_record(d, e, started)
        if progress:
            progress({"event": "done", "device": d.name, "status": rec.status, "error": rec.error})
        return rec

    for b, idx in enumerate(plan):
        if progress:
            progress({"event": "batch", "batch": b + 1, "of": len(plan), "devices": [devices[i].name for i in idx]})
        with ThreadPoolExecutor(max_workers=min(parallel, len(idx)), thread_name_prefix="edgeq-fleet") as pool:
            for i, rec in zip(idx, pool.map(guarded, [devices[i] for i in idx]), strict=True):
                records[i] = rec
        failures = sum(1 for r in records if r and r.status in FAILED)
        if max_fail is not None and failures > max_fail and b + 1 < len(plan):
            stopped_after = b + 1
            if progress:
                progress({"event": "stopped", "batch": b + 1, "failures": failures, "max_fail": max_fail})
            break
    done = [r or _skipped(d, stopped_after, failures, max_fail) for d, r in zip(devices, records, strict=True)]
    return Rollout(
        batches=tuple(tuple(devices[i].name for i in idx) for idx in plan),
        stopped_after_batch=stopped_after,
        counts=FleetCounts(**Counter(r.status for r in done)),
        devices=tuple(done),
    )


@contextmanager
def board_session(
    device: DeviceSpec, agent: AgentBundle, transport_factory, progress: ProgressFn | None = None
) -> Iterator[Board]:
    """A connected board with the agent in place; the connection is closed afterwards."""
    if progress:
        progress({"event": "connect", "device": device.name, "address": device.address})
    t = transport_factory(device)
    try:
        board = Board(device, t, agent)
        board.ensure_agent()
        yield board
    finally:
        t.close()
