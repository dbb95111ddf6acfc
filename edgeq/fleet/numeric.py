"""The numeric check on boards: a model's intermediate tensors on each board against this host's.

Golden inputs (a few rows of real data, stored with the run) go through the model with every intermediate
tensor kept, on the board (agent `tensors`) and here (the same agent code on this host's runtime, or on a
--reference model). Op by op, the first output over the tolerance names the layer where the board's
numbers leave the host's (edgeq.results.tracediff).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from edgeq.errors import DataError, ModelError
from edgeq.fleet.board import AgentBundle, build_agent
from edgeq.fleet.deploy import check_tflite, install_on, model_name
from edgeq.fleet.fanout import ProgressFn, board_session, run_fleet
from edgeq.fleet.inventory.devices import DeviceSpec, Inventory
from edgeq.fleet.transport.base import BoardError, TransportFactory
from edgeq.fleet.transport.factory import open_transport
from edgeq.hashing import file_sha256
from edgeq.records.fleet import BoardOutcome, RuntimeInfo
from edgeq.records.numeric import AgentTensors, NumericCheck, NumericSummary, TraceOp
from edgeq.results import tracediff as numerics


def host_trace(model: Path, inputs: Path) -> tuple[list[TraceOp], RuntimeInfo, int]:
    """The reference: the agent's own trace code on this host's runtime. (ops, runtime, rows)."""
    from edgeq.agent import numeric, tfl
    from edgeq.agent.codes import AgentFailure

    try:
        rt = tfl.find_runtime()
        doc = numeric.trace_file(rt, str(model), tfl.load_npy(str(inputs)))
    except AgentFailure as e:
        if e.kind in ("not_found", "bad_input"):
            raise DataError(f"{inputs}: {e}", "pass a .npy of golden rows shaped like the model input") from None
        raise ModelError(f"{model}: this host cannot trace the model: {e}", "check the model file") from None
    ops = [TraceOp.from_json(o) for o in doc["ops"]]
    return ops, RuntimeInfo.from_json(rt.info()), int(doc["rows"])


def _failed(d: DeviceSpec, variant: str | None, tol: tuple[float, float], e: BaseException) -> NumericCheck:
    kind = e.kind if isinstance(e, BoardError) else "error"
    hint = e.hint if isinstance(e, BoardError) else None
    msg = str(e) if isinstance(e, BoardError) else f"{d.name}: {type(e).__name__}: {e}"
    return NumericCheck(
        device=d.name, variant=variant, ok=False, tolerance_lsb=tol[0], tolerance_rel=tol[1], kind=kind, error=msg, hint=hint
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
    tolerance_lsb: float = numerics.DEFAULT_TOLERANCE_LSB,
    tolerance_rel: float = numerics.DEFAULT_TOLERANCE_REL,
    parallel: int = 5,
    progress: ProgressFn | None = None,
    transport_factory: TransportFactory | None = None,
    agent: AgentBundle | None = None,
) -> NumericSummary:
    """Deploy if needed, trace the golden rows on each board, compare with the host's trace of `reference`
    (default: the artifact itself). Board failures are checks with ok False, never raised."""
    if not Path(inputs).is_file():
        raise DataError(f"{inputs}: golden inputs file not found", "pass a .npy file of a few model input rows")
    size = check_tflite(artifact)
    ref = Path(reference or artifact)
    host_ops, host_rt, rows = host_trace(ref, inputs)
    name = model_name(artifact, name)
    sha = file_sha256(artifact)
    agent = agent or build_agent()
    factory = transport_factory or open_transport
    tol = (tolerance_lsb, tolerance_rel)
    checks: dict[str, NumericCheck] = {}
    lock = threading.Lock()
    started = time.monotonic()

    def job(d: DeviceSpec) -> BoardOutcome:
        t0 = time.monotonic()
        try:
            with board_session(d, agent, factory, progress) as board:
                install_on(board, artifact, size, sha, name, progress, then_lock=True)
                remote = board.upload_tmp(Path(inputs), ".npy")
                try:
                    args = ["--name", name, "--inputs", remote, "--sha256", sha, "--threads", str(d.threads)]
                    doc = board.call("tensors", *args, "--lock-timeout", f"{d.lock_timeout:g}")
                finally:
                    board.t.remove(remote)
        except BoardError as e:
            with lock:
                checks[d.name] = _failed(d, variant, tol, e)
            raise
        assert isinstance(doc, AgentTensors)  # noqa: S101 - read_agent_doc's contract for "tensors"
        errors = numerics.compare_traces(host_ops, doc.ops, tolerance_lsb, tolerance_rel)
        first = numerics.first_divergent(errors)
        rec = NumericCheck(
            device=d.name,
            variant=variant,
            ok=first is None,
            rows=doc.rows,
            ops_compared=len(errors),
            tolerance_lsb=tolerance_lsb,
            tolerance_rel=tolerance_rel,
            first_divergent=first,
            worst=numerics.worst(errors),
            runtime=doc.runtime,
            ops=tuple(errors),
        )
        with lock:
            checks[d.name] = rec
        status = "ok" if rec.ok else "failed"
        return BoardOutcome(device=d.name, address=d.address, status=status, seconds=round(time.monotonic() - t0, 3))

    res = run_fleet(inventory.select(targets), job, parallel=parallel, progress=progress)
    out = []
    for b in res.devices:  # boards the fan-out gave up on or skipped have no check of their own yet
        c = checks.get(b.device)
        if c is None:
            err = BoardError(b.device, b.error or f"{b.device}: {b.status}", b.hint, kind=b.kind or b.status)
            c = _failed(inventory.get(b.device), variant, tol, err)
        out.append(c)
    return NumericSummary(
        ok=all(c.ok for c in out),
        artifact=str(artifact),
        reference=str(ref),
        sha256=sha,
        rows=rows,
        host_runtime=host_rt,
        checks=tuple(out),
        seconds=round(time.monotonic() - started, 3),
    )


def golden_rows(x: np.ndarray, n: int) -> np.ndarray:
    """The first n rows of the test split: what a pipeline stores as golden inputs beside its artifacts."""
    return np.ascontiguousarray(x[:n])
