"""What a parsed model says about quantization: op counts, per-op compute precision, the real range each
quantized tensor covers, and where the bytes go, as an InspectReport."""

from __future__ import annotations

from collections import Counter
from typing import Any

from edgeq.inspect import coral
from edgeq.records.inspect import InspectReport, IOTensor, ModelIO, OpInfo, Quantization, SizeBreakdown, Subgraph, TensorInfo

FLOAT = {"float32", "float16", "float64", "bfloat16"}
EIGHT_BIT = {"int8", "uint8"}
# Integer range of each quantized storage type; real value = scale * (q - zero_point).
QRANGE = {
    "int8": (-128, 127),
    "uint8": (0, 255),
    "int16": (-32768, 32767),
    "uint16": (0, 65535),
    "int32": (-(2**31), 2**31 - 1),
    "int4": (-8, 7),
    "int2": (-2, 1),
}


def affine(q: dict[str, Any], dtype: str) -> Quantization:
    """Per-tensor or per-channel view of the affine mapping, with the real interval each channel covers."""
    scale, zp = q["scale"], q["zero_point"]
    if len(zp) == 1 and len(scale) > 1:
        zp = zp * len(scale)
    lohi = QRANGE.get(dtype)
    ranges = [(s * (lohi[0] - z), s * (lohi[1] - z)) for s, z in zip(scale, zp, strict=False)] if lohi else []
    per_channel = len(scale) > 1
    return Quantization(
        per_channel=per_channel,
        axis=q["axis"] if per_channel else None,
        channels=len(scale),
        scale=tuple(scale),
        zero_point=tuple(zp),
        range=tuple(ranges),
        qmin=lohi[0] if lohi else None,
        qmax=lohi[1] if lohi else None,
        calibrated_min=tuple(q["min"]),
        calibrated_max=tuple(q["max"]),
    )


def compute_precision(op: dict[str, Any], tensors: list[dict[str, Any]]) -> str:
    """What the op computes in, judged by its non-constant tensors: int8, int16, float, hybrid (float
    compute with int8 weights: dynamic-range), conversion (QUANTIZE/DEQUANTIZE at a float boundary)."""
    acts = [tensors[i] for i in op["inputs"] + op["outputs"] if i >= 0 and not tensors[i]["constant"]]
    consts = [tensors[i] for i in op["inputs"] if i >= 0 and tensors[i]["constant"]]
    dts = {t["dtype"] for t in acts}
    if op["op"] in ("QUANTIZE", "DEQUANTIZE") and (dts | {t["dtype"] for t in consts}) & FLOAT:
        return "conversion"
    if dts & FLOAT:
        return "hybrid" if any(t["dtype"] in EIGHT_BIT for t in consts) else "float"
    if "int16" in dts:
        return "int16"
    if dts & EIGHT_BIT:
        return "int8"
    if not dts:
        return "constant"
    return min(dts)  # e.g. int32 index/shape arithmetic


def _tensor(t: dict[str, Any]) -> TensorInfo:
    q = t["quantization"]
    return TensorInfo.model_validate({**t, "quantization": None if q is None else affine(q, t["dtype"])})


def build(parsed: dict[str, Any], where: str) -> InspectReport:
    """The inspection report of a model parsed by edgeq.inspect.reader, with its Edge TPU verdict."""
    subgraphs = []
    counts: Counter[str] = Counter()
    by_precision: dict[str, Counter[str]] = {}
    for g, sg in enumerate(parsed["subgraphs"]):
        tensors = sg["tensors"]
        ops = []
        for op in sg["ops"]:
            prec = compute_precision(op, tensors)
            counts[op["op"]] += 1
            by_precision.setdefault(prec, Counter())[op["op"]] += 1
            ops.append(OpInfo.model_validate({**op, "subgraph": g, "precision": prec}))
        subgraphs.append(
            Subgraph(
                index=g,
                name=sg["name"],
                inputs=tuple(sg["inputs"]),
                outputs=tuple(sg["outputs"]),
                ops=tuple(ops),
                tensors=tuple(_tensor(t) for t in tensors),
            )
        )
    return InspectReport(
        path=where,
        schema_version=parsed["schema_version"],
        description=parsed["description"],
        subgraphs=tuple(subgraphs),
        op_counts=dict(counts.most_common()),
        precision={p: dict(c.most_common()) for p, c in sorted(by_precision.items())},
        io=_io(subgraphs[0]),
        size=_sizes(parsed),
        metadata=tuple(md["name"] for md in parsed["metadata"]),
        edgetpu=coral.check(subgraphs),
    )


def _io(sg: Subgraph) -> ModelIO:
    def one(i: int) -> IOTensor:
        t = sg.tensors[i]
        q = t.quantization
        return IOTensor(
            index=i,
            name=t.name,
            dtype=t.dtype,
            shape=t.shape,
            shape_signature=t.shape_signature,
            scale=q.scale[0] if q and q.scale else None,
            zero_point=q.zero_point[0] if q and q.zero_point else None,
        )

    return ModelIO(inputs=tuple(one(i) for i in sg.inputs), outputs=tuple(one(i) for i in sg.outputs))


def _sizes(parsed: dict[str, Any]) -> SizeBreakdown:
    """Weights (constant tensors' buffers, by dtype), metadata buffers, and the graph (the rest: tables,
    names, shapes, quantization parameters, flatbuffer padding)."""
    meta_bufs = {md["buffer"] for md in parsed["metadata"]}
    by_dtype: Counter[str] = Counter()
    seen = set()
    for sg in parsed["subgraphs"]:
        for t in sg["tensors"]:
            if t["constant"] and t["buffer"] not in seen:
                seen.add(t["buffer"])  # buffers shared by several tensors count once
                by_dtype[t["dtype"]] += t["bytes"]
    bufs = parsed["buffers"]
    metadata = sum(bufs[b]["bytes"] for b in meta_bufs if 0 <= b < len(bufs))
    external = sum(b["bytes"] for b in bufs if b["external"])
    weights = sum(by_dtype.values())
    inside = weights - sum(bufs[b]["bytes"] for b in seen if bufs[b]["external"])
    file_bytes = parsed["size_bytes"]
    return SizeBreakdown(
        file_bytes=file_bytes,
        weights_bytes=weights,
        weights_by_dtype=dict(by_dtype.most_common()),
        metadata_bytes=metadata,
        external_bytes=external,
        graph_bytes=max(file_bytes - inside - metadata, 0),
        weights_fraction=round(inside / file_bytes, 4) if file_bytes else 0.0,
    )
