"""Records of the numeric check: the board's intermediate tensors compared with the host's, op by op."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import StrictInt

from edgeq.records.base import Record
from edgeq.records.fleet import AgentDoc, RuntimeInfo

ErrorUnit = Literal["lsb", "rel", "mismatch"]


class TraceTensor(Record):
    tensor: StrictInt
    name: str = ""
    dtype: str
    shape: tuple[int, ...]
    scale: float = 0.0
    zero_point: StrictInt = 0
    data: str  # base64 of the raw bytes, C order


class TraceOp(Record):
    index: StrictInt
    op: str
    outputs: tuple[TraceTensor, ...] = ()


class AgentTensors(AgentDoc):
    """The agent's `tensors` document."""

    ops: tuple[TraceOp, ...]
    rows: StrictInt
    model: dict[str, Any] | None = None
    runtime: RuntimeInfo | None = None
    seconds: float | None = None


class OpError(Record):
    """How far one op's output on the board is from the host's, over every golden row."""

    op_index: StrictInt
    op: str
    tensor: StrictInt
    name: str
    error: float | None  # max |board - host|: in quantization steps (lsb) or relative to max |host| (rel)
    unit: ErrorUnit
    exceeds: bool

    omit_if_none = frozenset({"error"})


class NumericCheck(Record):
    """One board's numeric check of one model: ok when no op exceeds the tolerance."""

    device: str
    variant: str | None = None
    ok: bool
    rows: StrictInt = 0
    ops_compared: StrictInt = 0
    tolerance_lsb: float
    tolerance_rel: float
    first_divergent: OpError | None = None
    worst: OpError | None = None
    runtime: RuntimeInfo | None = None
    ops: tuple[OpError, ...] = ()
    kind: str | None = None
    error: str | None = None
    hint: str | None = None

    omit_if_none = frozenset({"variant", "first_divergent", "worst", "runtime", "kind", "error", "hint"})


class NumericSummary(Record):
    """`edgeq numerics` --json document."""

    ok: bool
    artifact: str
    reference: str
    sha256: str
    rows: StrictInt
    host_runtime: RuntimeInfo | None = None
    checks: tuple[NumericCheck, ...]
    seconds: float
