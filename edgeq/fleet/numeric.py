"""The numeric check on boards: a model's intermediate tensors on each board against this host's.

Golden inputs (a few rows of real data, stored with the run) go through the model with every intermediate
tensor kept, on the board (agent `tensors`) and here (the same agent code on this host's runtime, or on a
--reference model). Op by op, the first output over the tolerance names the layer where the board's
numbers leave the host's (edgeq.results.tracediff).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from edgeq.errors import DataError, ModelError
from edgeq.fleet.board import AgentBundle, runtime_args
from edgeq.fleet.deployment import check_tflite, install_on, model_name
from edgeq.fleet.fanout import ProgressFn
from edgeq.fleet.inventory.devices import DeviceSpec, Inventory
from edgeq.fleet.operation import FleetOp
from edgeq.fleet.transport.base import TransportFactory
from edgeq.hashing import file_sha256
from edgeq.records.fleet import BoardOutcome, RuntimeInfo
from edgeq.records.numeric import AgentTensors, NumericCheck, NumericSummary, TraceOp

if TYPE_CHECKING:
    import numpy as np

# numpy and edgeq.results (the trace comparison) are imported by the calls that use them: this module is part
# of edgeq.fleet's public API, which `edgeq devices list` imports


def host_trace(model: Path, inputs: Path) -> tuple[list[TraceOp], RuntimeInfo, int]:
    """The reference: the agent's own trace code on this host's runtime. (ops, runtime, rows)."""
    from edgeq.agent import numeric
    from edgeq.agent.codes import AgentFailure
    from edgeq.agent.inputs import load_npy
    from edgeq.agent.runtimes import open_runtime

    try:
        rt = open_runtime()
        doc = numeric.trace_file(rt, str(model), load_npy(str(inputs)))
    except AgentFailure as e:
        if e.kind in ("not_found", "bad_input"):
            raise DataError(f"{inputs}: {e}", "pass a .npy of golden rows shaped like the model input") from None
        raise ModelError(f"{model}: this host cannot trace the model: {e}", "check the model file") from None
    ops = [TraceOp.from_json(o) for o in doc["ops"]]
    return ops, RuntimeInfo.from_json(rt.info()), int(doc["rows"])


def _failed(b: BoardOutcome, variant: str | None, tol: tuple[float, float]) -> NumericCheck:
    """The check of a board that could not run it: its outcome's kind, error and hint (edgeq.fleet.fanout)."""
    return NumericCheck(
        device=b.device,
        variant=variant,
        ok=False,
        tolerance_lsb=tol[0],
        tolerance_rel=tol[1],
        kind=b.kind or b.status,
        error=b.error or f"{b.device}: {b.status}",
        hint=b.hint,
    )


def numeric_check(
    inventory: Inventory,
    targets: list[str],
    artifact: Path,
    inputs: Path,
    *,
    reference: Path | None = None,
    name: str | None = None,
    variant: str | None = None,
    tolerance_lsb: float | None = None,
    tolerance_rel: float | None = None,
    parallel: int = 5,
    progress: ProgressFn | None = None,
    transport_factory: TransportFactory | None = None,
    agent: AgentBundle | None = None,
) -> NumericSummary:
    """Deploy if needed, trace the golden rows on each board, compare with the host's trace of `reference`
    (default: the artifact itself). Board failures are checks with ok False, never raised. The tolerances
    default to edgeq.results.tracediff's."""
    from edgeq.results import tracediff as numerics

    if not Path(inputs).is_file():
        raise DataError(f"{inputs}: golden inputs file not found", "pass a .npy file of a few model input rows")
    size = check_tflite(artifact)
    ref = Path(reference or artifact)
    host_ops, host_rt, rows = host_trace(ref, inputs)
    name = model_name(artifact, name)
    sha = file_sha256(artifact)
    tol = (
        numerics.DEFAULT_TOLERANCE_LSB if tolerance_lsb is None else tolerance_lsb,
        numerics.DEFAULT_TOLERANCE_REL if tolerance_rel is None else tolerance_rel,
    )
    op = FleetOp(
        inventory.select(targets), parallel=parallel, progress=progress, transport_factory=transport_factory, agent=agent
    )
    checks: dict[str, NumericCheck] = {}
    lock = threading.Lock()

    def job(d: DeviceSpec) -> BoardOutcome:
        with op.board(d) as board:
            install_on(board, artifact, size, sha, name, progress, then_lock=True)
            remote = board.upload_tmp(Path(inputs), ".npy")
            try:
                args = ["--name", name, "--inputs", remote, "--sha256", sha]
                doc = board.call("tensors", *args, *runtime_args(d, delegate=False))
            finally:
                board.t.remove(remote)
        assert isinstance(doc, AgentTensors)  # noqa: S101 - read_agent_doc's contract for "tensors"
        errors = numerics.compare_traces(host_ops, doc.ops, *tol)
        first = numerics.first_divergent(errors)
        rec = NumericCheck(
            device=d.name,
            variant=variant,
            ok=first is None,
            rows=doc.rows,
            ops_compared=len(errors),
            tolerance_lsb=tol[0],
            tolerance_rel=tol[1],
            first_divergent=first,
            worst=numerics.worst(errors),
            runtime=doc.runtime,
            ops=tuple(errors),
        )
        with lock:
            checks[d.name] = rec
        return BoardOutcome(device=d.name, address=d.address, status="ok" if rec.ok else "failed")

    res = op.run(job)
    # a board whose job raised, that the watchdog gave up on or that was skipped has only its outcome
    out = [checks.get(b.device) or _failed(b, variant, tol) for b in res.devices]
    return NumericSummary(
        ok=all(c.ok for c in out),
        artifact=str(artifact),
        reference=str(ref),
        sha256=sha,
        rows=rows,
        host_runtime=host_rt,
        checks=tuple(out),
        seconds=op.seconds(),
    )


def golden_rows(x: np.ndarray, n: int) -> np.ndarray:
    """The first n rows of the test split: what a pipeline stores as golden inputs beside its artifacts."""
    import numpy as np

    return np.ascontiguousarray(x[:n])
