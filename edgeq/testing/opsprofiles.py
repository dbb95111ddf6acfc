"""Synthetic per-op profiles for tests (what `edgeq bench --ops` aggregates from agent `profile` documents): an fp32
and an int8 MobileNet-like op list on one board, the int8 first conv 4.17x slower (the issue's probe figure)."""

from __future__ import annotations

from edgeq.records.ops import OpProfile
from edgeq.results.ops import aggregate

F32 = "Convolution (NHWC, F32) IGEMM"
QC8 = "Convolution (NHWC, QC8) IGEMM"


def row(node: int, op: str, kernel: str, p50: float, *, index: int | None = None, exact: bool = False) -> dict:
    return {
        "source": "tflite" if exact else "xnnpack",
        "section": None if exact else 0,
        "subgraph": 0 if exact else None,
        "node": index if exact else node,
        "op": op,
        "kernel": kernel,
        "maps_to": None if index is None else {"index": index, "op": op.upper() if exact else "CONV_2D"},
        "mapping": "exact" if exact else ("guess" if index is not None else "none"),
        "p50_us": p50,
        "p90_us": p50 * 1.1,
        "count": 30,
    }


def doc(rows: list[dict], invoke: float) -> dict:
    return {
        "ok": True,
        "kind": "ok",
        "runtime": {"name": "litert-compiled", "version": "2.3.0"},
        "ops": rows,
        "invoke_us": {"p50": invoke, "p90": invoke, "count": 30},
        "unprofiled_invoke_us": {"p50": invoke - 5, "p90": invoke, "count": 30},
        "overhead_us": 10.0,
    }


def profile(variant: str, rows: list[dict], *, device: str = "pi5", jitter=(0.0, 1.0, -1.0)) -> OpProfile:
    docs = [
        (i + 1, doc([{**r, "p50_us": r["p50_us"] + j} for r in rows], sum(r["p50_us"] for r in rows) + 20 + j))
        for i, j in enumerate(jitter)
    ]
    return aggregate(device, variant, 1, docs, interpreter_p50_us=100.0)


def fp32_rows(kernel: str = F32) -> list[dict]:
    return [
        row(0, "Convolution", kernel, 100.0, index=0),
        row(1, "Convolution", kernel, 300.0, index=1),
        row(2, "Fully Connected", "Fully Connected (NC, F32) GEMM", 50.0, index=2),
        row(0, "Softmax", "SOFTMAX", 5.0, index=3, exact=True),
    ]


def int8_rows() -> list[dict]:
    return [
        row(0, "Convert", "Convert (NC, F32, QS8)", 4.0),
        row(1, "Convolution", QC8, 417.0, index=1),  # the first conv loses in int8 on this board
        row(2, "Convolution", QC8, 120.0, index=2),
        row(3, "Fully Connected", "Fully Connected (NC, QS8) GEMM", 20.0, index=3),
        row(0, "Softmax", "SOFTMAX", 5.0, index=3, exact=True),
    ]
