"""Numeric trace for the board agent: every op's output tensors for a few golden inputs.

The model runs with every intermediate tensor kept (experimental_preserve_all_tensors) on the builtin
kernels (no default delegate: a delegate fuses ops and keeps no intermediates), one golden row at a time.
The host runs the same code on its own runtime and compares op by op (edgeq.results.tracediff), so an accuracy
change after a runtime or OS upgrade is pinned to the first layer that drifts.

Runs on boards: stdlib + numpy + one TFLite runtime, Python 3.7+.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from . import boardfs, inputs, runtimes
from .codes import AgentFailure
from .measure import _pinned_sha, _resolve_model

MAX_TRACE_BYTES = 32 * 1024 * 1024  # what one answer may carry (base64 adds a third): fewer golden rows beyond


def _rows(model, arr):
    detail = model.inputs()[0]
    shape = [int(d) for d in detail["shape"]]
    if arr.ndim != len(shape) or list(arr.shape[1:]) != shape[1:]:
        raise AgentFailure(
            "bad_input",
            "golden inputs of shape " + str(list(arr.shape)) + " are not rows of the model input shape " + str(shape),
        )
    data = inputs.to_model_dtype(arr, detail)
    return detail["index"], [data[i : i + 1] for i in range(data.shape[0])]


def trace(model, arr) -> dict:
    """Per op (execution order): its output tensors over every golden row (stacked), base64 of raw bytes.

    `model` comes from Runtime.load_traced: every intermediate tensor kept, builtin kernels only.
    """
    np: Any = runtimes.load_numpy()
    index, rows = _rows(model, arr)
    ops = model.ops()
    details = {int(d["index"]): d for d in model.tensors()}
    kept: dict = {}
    for row in rows:
        model.set_input(index, row)
        model.run()
        for op in ops:
            for t in op["outputs"]:
                if int(t) >= 0:
                    kept.setdefault(int(t), []).append(np.array(model.tensor(int(t))))
    out, total = [], 0
    for op in ops:
        outs = []
        for t in (int(x) for x in op["outputs"]):
            if t < 0 or t not in kept:
                continue
            arr_t = np.stack(kept[t])
            total += arr_t.nbytes
            scale, zero_point = details[t].get("quantization", (0.0, 0))
            outs.append(
                {
                    "tensor": t,
                    "name": str(details[t].get("name", "")),
                    "dtype": arr_t.dtype.name,
                    "shape": [int(s) for s in arr_t.shape],
                    "scale": float(scale),
                    "zero_point": int(zero_point),
                    "data": base64.b64encode(arr_t.tobytes()).decode("ascii"),
                }
            )
        out.append({"index": int(op["index"]), "op": str(op["op_name"]), "outputs": outs})
    if total > MAX_TRACE_BYTES:
        raise AgentFailure(
            "bad_input",
            "the trace of "
            + str(len(rows))
            + " golden rows is "
            + str(total >> 20)
            + " MiB (limit "
            + str(MAX_TRACE_BYTES >> 20)
            + " MiB): pass fewer rows",
        )
    return {"ops": out, "rows": len(rows)}


def trace_file(rt, path, arr, threads: int = 1) -> dict:
    """trace() of a model file (the host's reference uses this with its own runtime)."""
    return trace(rt.load_traced(path, threads), arr)


def tensors(args) -> dict:
    store = boardfs.Store(args.workdir)
    store.ensure()
    if args.name is not None:
        boardfs.check_name(args.name)
    rt = runtimes.open_runtime()
    with boardfs.WorkdirLock(store.root / "lock", args.lock_timeout, "tensors"):
        path, name = _resolve_model(store, args)
        sha = _pinned_sha(path, args)
        arr = inputs.load_npy(args.inputs)
        start = time.perf_counter()
        doc = trace_file(rt, path, arr, args.threads)
    doc.update(model={"path": path, "name": name, "sha256": sha}, runtime=rt.info(), seconds=time.perf_counter() - start)
    return doc
