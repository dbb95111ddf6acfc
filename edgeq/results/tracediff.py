"""Op-by-op comparison of two numeric traces (edgeq.agent.numeric): where a board's numbers leave the host's.

Pure numpy. Quantized tensors are compared in quantization steps (an integer kernel on another CPU may round
one step differently: the default tolerance is 1 step); float tensors relative to the host's largest value.
The first op in execution order over the tolerance is where the drift starts: later ops inherit it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

import numpy as np

from edgeq.records.numeric import OpError, TraceOp, TraceTensor

DEFAULT_TOLERANCE_LSB = 1.0
DEFAULT_TOLERANCE_REL = 1e-3


def tensor_array(t: TraceTensor) -> np.ndarray:
    return np.frombuffer(base64.b64decode(t.data), dtype=np.dtype(t.dtype)).reshape(t.shape)


def _op_error(op: TraceOp, h: TraceTensor, b: TraceTensor | None, tol_lsb: float, tol_rel: float) -> OpError:
    base = {"op_index": op.index, "op": op.op, "tensor": h.tensor, "name": h.name}
    if b is None or b.dtype != h.dtype or tuple(b.shape) != tuple(h.shape):
        return OpError(**base, error=None, unit="mismatch", exceeds=True)
    ha, ba = tensor_array(h), tensor_array(b)
    if ha.dtype.kind in "iu":
        err = float(np.max(np.abs(ba.astype(np.int64) - ha.astype(np.int64)))) if ha.size else 0.0
        return OpError(**base, error=err, unit="lsb", exceeds=err > tol_lsb)
    h64, b64 = ha.astype(np.float64), ba.astype(np.float64)
    if not (np.isfinite(h64).all() and np.isfinite(b64).all()):
        same = bool(np.array_equal(h64, b64, equal_nan=True))
        return OpError(**base, error=None if not same else 0.0, unit="rel", exceeds=not same)
    scale = max(float(np.max(np.abs(h64))) if h64.size else 0.0, 1e-12)
    err = float(np.max(np.abs(b64 - h64))) / scale if h64.size else 0.0
    return OpError(**base, error=err, unit="rel", exceeds=err > tol_rel)


def compare_traces(
    host: Iterable[TraceOp],
    board: Iterable[TraceOp],
    tolerance_lsb: float = DEFAULT_TOLERANCE_LSB,
    tolerance_rel: float = DEFAULT_TOLERANCE_REL,
) -> list[OpError]:
    """One OpError per host op output, in the host's execution order (the board's tensors matched by index)."""
    by_tensor = {t.tensor: t for op in board for t in op.outputs}
    return [_op_error(op, h, by_tensor.get(h.tensor), tolerance_lsb, tolerance_rel) for op in host for h in op.outputs]


def first_divergent(errors: list[OpError]) -> OpError | None:
    return next((e for e in errors if e.exceeds), None)


def worst(errors: list[OpError]) -> OpError | None:
    """The op with the largest error in steps (quantized) else relative; a mismatch counts as the worst."""
    if not errors:
        return None
    mism = [e for e in errors if e.unit == "mismatch"]
    if mism:
        return mism[0]
    return max(errors, key=lambda e: (e.unit == "lsb", e.error or 0.0))
