"""The plumbing every fan-out command shares: progress lines, and what a Ctrl-C leaves on screen."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from edgeq.cli import output, tables

Progress = Callable[[dict[str, Any]], None]
R = TypeVar("R")


def progress_logger(label: str, boards: int) -> Callable[[dict[str, Any]], None]:
    from edgeq.progress import fleet_counter

    bar = fleet_counter(label, boards)

    def progress(ev: dict[str, Any]) -> None:
        bar(ev)
        kind = ev.get("event")
        if kind == "batch" and ev.get("of", 1) > 1:
            output.log(f"batch {ev['batch']}/{ev['of']}: {', '.join(ev['devices'])}")
        elif kind == "done":
            err = ev.get("error") if ev["status"] != "ok" else None
            output.log(f"{ev['device']}: {ev['status']}" + (f" - {err.removeprefix(ev['device'] + ': ')}" if err else ""))
        elif kind == "lock_wait":
            output.log(
                f"{ev['device']}: the board is held by {ev['holder']}; waiting up to {ev['wait_s']:g} s for it (lock_timeout)"
            )
        elif kind == "stopped":
            output.log(
                f"stopping the rollout after batch {ev['batch']}: {ev['failures']} failure(s) > --max-fail {ev['max_fail']}"
            )

    return progress


def keep_finished(action: Any, json_out: bool, title: str, run: Callable[[], R]) -> R:
    """run(); on Ctrl-C (or SIGTERM) show what finished before the interrupt propagates (exit 130/143)."""
    import time

    from edgeq.fleet.fanout import FleetInterrupted

    t0 = time.monotonic()
    try:
        return run()
    except FleetInterrupted as e:
        part = e.summary(action, time.monotonic() - t0)
        if json_out:
            output.emit(part.to_json())
        else:
            output.table(*tables.rollout_table(part, f"{title} (interrupted)"))
        raise


def fan_out(action: str, devices: Path | None, target: list[str], call: Callable[[Any, Progress], R]) -> R:
    """Load the inventory, run one fleet call with progress lines and bars; on Ctrl-C show what finished.

    With a labgrid: section the boards are places reserved for this call and released after it (errors,
    Ctrl-C and SIGTERM included)."""
    from edgeq.fleet import open_inventory

    with open_inventory(devices, output.log) as inv, output.progress_bars():
        progress = progress_logger(action, len(inv.select(target)))
        return keep_finished(action, output.current().json, action, lambda: call(inv, progress))
