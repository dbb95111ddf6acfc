"""The one place where a board agent's JSON becomes records.

Board.interpret has already turned failures (ok false, no output, a crash) into BoardErrors; what
arrives here is a success document. A document of the wrong shape (a foreign or buggy agent, a
wrapper that rewrote stdout) is a BoardError of kind "protocol" naming the board and the field,
never a KeyError or a half-filled table later on.
"""

from __future__ import annotations

from typing import Any

from edgeq.fleet import clock
from edgeq.fleet.transport.base import BoardError
from edgeq.records import RecordError
from edgeq.records.fleet import (
    AgentBench,
    AgentDoc,
    AgentFacts,
    AgentPredict,
    AgentStatus,
    AgentSwitch,
    BoardFacts,
)
from edgeq.records.numeric import AgentTensors

# agent subcommand -> the record its success document must fit
SHAPES: dict[str, type[AgentDoc]] = {
    "facts": AgentFacts,
    "status": AgentStatus,
    "install": AgentSwitch,
    "rollback": AgentSwitch,
    "bench": AgentBench,
    "predict": AgentPredict,
    "tensors": AgentTensors,
}

PROTOCOL_HINT = (
    "the board runs an agent this edgeq did not ship (or something rewrote its output): "
    "delete W/agent/ on the board so edgeq uploads its own agent, and retry"
)


def read_agent_doc(device: str, sub: str, doc: Any, called: tuple[float, float] | None = None) -> AgentDoc:
    """The record for `sub`'s success document from board `device`; BoardError(kind="protocol") if it does not fit.

    `called`: this host's clock before and after the call; the record then has `clock_offset` (edgeq.fleet.clock)."""
    shape = SHAPES.get(sub, AgentDoc)
    try:
        # The one place an agent's JSON becomes records: a newer agent's extra keys are tolerated on purpose
        # and travel on untouched (the raw bench file keeps them); everything declared must fit.
        rec = shape.from_json(doc, keep_unknown=True)
        if called is None or rec.clock is None:
            return rec
        return rec.replace(clock_offset=clock.measure(rec.clock, *called))
    except RecordError as e:
        where = f"field {e.field!r}" if e.field else "the document"
        raise BoardError(
            device,
            f"agent {sub} sent a document of the wrong shape: {where}: {e.problem}",
            PROTOCOL_HINT,
            kind="protocol",
            field=e.field,
        ) from None


def failure_facts(extra: dict[str, Any]) -> BoardFacts | None:
    """The board facts an agent attaches to a failed `facts` (no runtime found), if they are readable.

    The failure itself is what gets reported; facts of the wrong shape only leave the table cells empty.
    """
    raw = extra.get("board")
    if raw is None:
        return None
    try:
        return BoardFacts.from_json(raw, keep_unknown=True)  # an agent's document: as read_agent_doc
    except RecordError:
        return None
