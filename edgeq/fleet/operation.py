"""The frame of every fleet operation (deploy, rollback, their dry runs, check, bench, predict, numerics, setup).

An operation names its boards and gets the rest from here: the agent bundle (built on first use), the transport
factory (default: a real connection), the progress callback, the clock, a connected board with the agent in
place, the fan-out that runs one job per board and times it, and the summary deploy and rollback return. A
board's failure becomes its record in one way (edgeq.fleet.fanout.failure_fields), whichever operation it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from edgeq.fleet.board import AgentBundle, Board, build_agent
from edgeq.fleet.fanout import FailureFn, ProgressFn, board_session, run_fleet
from edgeq.fleet.inventory.devices import DeviceSpec
from edgeq.fleet.transport.base import TransportFactory
from edgeq.records.fleet import Action, BoardOutcome, FleetSummary, Rollout

R = TypeVar("R", bound=BoardOutcome)


class FleetOp:
    """One fleet operation over `devices`: what its jobs share, and the fan-out that runs them."""

    def __init__(
        self,
        devices: list[DeviceSpec],
        *,
        parallel: int = 5,
        progress: ProgressFn | None = None,
        transport_factory: TransportFactory | None = None,
        agent: AgentBundle | None = None,
    ) -> None:
        self.devices = devices
        self.parallel = parallel
        self.progress = progress
        self._agent = agent
        self._factory = transport_factory
        self.started = time.monotonic()

    @property
    def agent(self) -> AgentBundle:
        """The agent zipapp, built (or found in its cache) on first use (`devices setup` only names it in its
        work-dir check: it uploads no agent)."""
        if self._agent is None:
            self._agent = build_agent()
        return self._agent

    @property
    def factory(self) -> TransportFactory:
        if self._factory is None:
            from edgeq.fleet.transport.factory import open_transport  # the transports: only once a board is reached

            self._factory = open_transport
        return self._factory

    def board(self, device: DeviceSpec, *, ensure_agent: bool = True) -> AbstractContextManager[Board]:
        """A connected board with the agent in place (ensure_agent False: a dry run sends nothing), closed after."""
        return board_session(device, self.agent, self.factory, self.progress, ensure_agent=ensure_agent)

    def run(
        self,
        job: Callable[[DeviceSpec], R],
        *,
        batches: str | list | None = None,
        max_fail: int | None = None,
        on_failure: FailureFn | None = None,
    ) -> Rollout:
        """job(device) on every board (edgeq.fleet.fanout.run_fleet); a record without `seconds` gets the board's
        wall time. A job that raises becomes on_failure's record (default: failure_record)."""

        def timed(d: DeviceSpec) -> BoardOutcome:
            t0 = time.monotonic()
            rec = job(d)
            return rec if "seconds" in rec.model_fields_set else rec.replace(seconds=round(time.monotonic() - t0, 3))

        return run_fleet(
            self.devices,
            timed,
            parallel=self.parallel,
            batches=batches,
            max_fail=max_fail,
            progress=self.progress,
            on_failure=on_failure,
        )

    def seconds(self) -> float:
        """Since the operation started, rounded as every summary writes it."""
        return round(time.monotonic() - self.started, 3)

    def summary(self, action: Action, res: Rollout, **fields: Any) -> FleetSummary:
        """deploy's and rollback's document: ok only when no board failed, was unreachable or skipped."""
        bad = res.counts.failed + res.counts.unreachable + res.counts.skipped
        return FleetSummary(
            ok=bad == 0,
            action=action,
            **fields,
            batches=res.batches,
            stopped_after_batch=res.stopped_after_batch,
            counts=res.counts,
            devices=res.devices,
            bytes_uploaded=sum(r.bytes_uploaded for r in res.devices),
            seconds=self.seconds(),
        )
