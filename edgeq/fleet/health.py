"""Board health (`devices check`): reachable, a runtime present, disk and temperature fine.

A board clock off by more than edgeq.fleet.clock.NOTE_S is a warning, not a problem: edgeq records this host's time.

Per-board failures are returned as records, never raised: the caller decides the exit code.
"""

from __future__ import annotations

from typing import Any

from edgeq.fleet import clock
from edgeq.fleet.agentdoc import failure_facts
from edgeq.fleet.board import AgentBundle
from edgeq.fleet.fanout import ProgressFn, failure_record
from edgeq.fleet.inventory.devices import DeviceSpec, Inventory
from edgeq.fleet.operation import FleetOp
from edgeq.fleet.transport.base import BoardError, TransportFactory
from edgeq.records.fleet import AgentFacts, BoardFacts, BoardHealth, FleetSummary

MIN_FREE_BYTES = 64 << 20  # room for the agent, a few model versions and their temp uploads
MAX_TEMP_C = 80.0  # Raspberry Pi firmware starts soft throttling at 80 C: benchmarks would be skewed
_THROTTLED_NOW = 0xF  # vcgencmd get_throttled bits 0-3: under-voltage, capped, throttled, soft limit NOW


def _facts_fields(b: BoardFacts | None) -> dict[str, Any]:
    """The facts the check table shows, flattened onto the board's record (None where unknown)."""
    b = b or BoardFacts()
    rt = b.runtime
    return {
        "arch": b.arch,
        "cpu": b.cpu_model,
        "board_model": b.board_model,
        "cores": b.cores,
        "kernel": b.kernel,
        "os": b.os,
        "python": b.python,
        "numpy": b.numpy,
        "runtime": rt.name if rt else None,
        "runtime_version": rt.version if rt else None,
        "free_bytes": b.free_bytes,
        "temperature_c": b.temp_c,
        "throttled": b.throttled.raw if b.throttled else None,
    }


def problems(board: BoardFacts) -> list[str]:
    """What makes a reachable board unfit for benchmarks (empty: healthy)."""
    out = []
    free = board.free_bytes
    if free is not None and free < MIN_FREE_BYTES:
        out.append(f"low disk space: {free >> 20} MiB free under the workdir (< {MIN_FREE_BYTES >> 20} MiB)")
    temp = board.temp_c
    if temp is not None and temp >= MAX_TEMP_C:
        out.append(f"hot: {temp:.0f} C (>= {MAX_TEMP_C:.0f} C, the board throttles)")
    flags = board.throttled.flags if board.throttled else None
    if flags is not None and flags & _THROTTLED_NOW:
        out.append(f"throttled now (vcgencmd get_throttled={flags:#x}): check the power supply and cooling")
    return out


def chatty_shell_note(noise: str) -> str:
    from edgeq.fleet.transport.shelltext import noise_excerpt

    return (
        f"the login shell prints {noise_excerpt(noise)!r} before every command (that breaks SFTP; edgeq moves files "
        'over exec channels instead): make ~/.bashrc quiet for non-interactive shells (`[ -z "$PS1" ] && return` at its top)'
    )


def _unhealthy(d: DeviceSpec, e: BaseException, t0: float) -> BoardHealth:
    """The check record of a board that failed (the fan-out's on_failure: raised, or given up by its watchdog)."""
    extra = e.extra if isinstance(e, BoardError) else {}
    facts = failure_facts(extra)
    extra.pop("board", None)  # shown as the flattened fields below, not as a nested document
    rec = failure_record(
        d,
        e,
        t0,
        record=BoardHealth,
        transport=d.transport,
        route=d.route or None,
        reachable=not (isinstance(e, BoardError) and e.unreachable),
        healthy=False,
        **_facts_fields(facts),
    )
    assert isinstance(rec, BoardHealth)  # noqa: S101 - failure_record builds the record= class
    return rec.replace(problems=(rec.error,))


def _check_one(op: FleetOp, d: DeviceSpec) -> BoardHealth:
    with op.board(d) as board:
        doc = board.call("facts", timeout=min(120.0, d.command_timeout))
        noise = board.login_noise or getattr(board.t, "login_noise", None)
    assert isinstance(doc, AgentFacts)  # noqa: S101 - read_agent_doc's contract for "facts"
    found = problems(doc.board)
    notes = [chatty_shell_note(noise)] if noise else []
    off = doc.clock_offset
    said = clock.note([off] if off is not None else [])
    notes += [said] if said else []
    return BoardHealth(
        device=d.name,
        address=d.address,
        transport=d.transport,
        route=d.route or None,
        status="ok" if not found else "failed",
        reachable=True,
        healthy=not found,
        **_facts_fields(doc.board),
        problems=tuple(found),
        **({"warnings": tuple(notes)} if notes else {}),
        **({"clock_offset_s": off.offset_s} if off is not None else {}),
        kind="unhealthy" if found else None,
        error=f"{d.name}: {'; '.join(found)}" if found else None,
        hint=None,
        facts=doc.board,
    )


def check(
    inventory: Inventory,
    targets: list[str],
    *,
    parallel: int = 5,
    progress: ProgressFn | None = None,
    transport_factory: TransportFactory | None = None,
    agent: AgentBundle | None = None,
) -> FleetSummary:
    """Reach each board, run the agent's `facts`; healthy = runtime present, disk, temperature fine.

    Every entry of the summary's `devices` is a BoardHealth.
    """
    op = FleetOp(
        inventory.select(targets), parallel=parallel, progress=progress, transport_factory=transport_factory, agent=agent
    )
    res = op.run(lambda d: _check_one(op, d), on_failure=_unhealthy)
    healthy = all(isinstance(r, BoardHealth) and r.healthy for r in res.devices)
    return FleetSummary(ok=healthy, action="check", devices=res.devices, seconds=op.seconds())
