"""Edge TPU compatibility of an inspected model, by Coral's published model requirements.

Source: https://coral.ai/docs/edgetpu/models-intro/#supported-operations ("Model requirements" and the
"Supported operations" table, Edge TPU compiler 16 / runtime 14). Requirements checked here:
  * tensor parameters are quantized to 8 bits (int8/uint8); constant int32 tensors (biases, shapes)
    are allowed since they are compile-time constants;
  * tensor sizes are constant at compile time (a -1 in a shape signature, e.g. a free batch
    dimension, makes the compiler fail with "dynamic-sized tensors");
  * tensors are 1-, 2- or 3-D; with more dimensions only the 3 innermost may be larger than 1 (read as
    the activations: CONV_2D, which the table supports, always takes a 4-D OHWI filter);
  * every op is in the supported table.
The compiler maps ops to the TPU up to the first op that breaks a rule and runs everything after it
on the CPU, so the first offending op is what decides how much of the graph the TPU gets. Per-op
"known limitations" (e.g. pools without fused activation, strided slice with stride 1) are enforced by
the compiler itself; they are listed here as notes, not checked.
"""

from __future__ import annotations

from collections.abc import Sequence

from edgeq.records.inspect import EdgeTpuNote, EdgeTpuProblem, EdgeTpuVerdict, OffendingOp, Subgraph, TensorInfo

DOCS_URL = "https://coral.ai/docs/edgetpu/models-intro/#supported-operations"

# Coral's table (display name -> TFLite builtin), with the minimum runtime version where it is not "All".
SUPPORTED_OPS: dict[str, str] = {
    "ADD": "All",
    "AVERAGE_POOL_2D": "All",
    "CONCATENATION": "All",
    "CONV_2D": "All",
    "DEPTHWISE_CONV_2D": "All",
    "EXPAND_DIMS": ">=13",
    "FULLY_CONNECTED": "All",
    "L2_NORMALIZATION": "All",
    "LOGISTIC": "All",
    "LSTM": ">=14",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": ">=14",
    "MAXIMUM": "All",
    "MAX_POOL_2D": "All",
    "MEAN": "All",
    "MINIMUM": "All",
    "MUL": "All",
    "PACK": ">=13",
    "PAD": "All",
    "PRELU": ">=13",
    "QUANTIZE": ">=13",
    "REDUCE_MAX": ">=14",
    "REDUCE_MIN": ">=14",
    "RELU": "All",
    "RELU6": "All",
    "RELU_N1_TO_1": "All",
    "RESHAPE": "All",
    "RESIZE_BILINEAR": "All",
    "RESIZE_NEAREST_NEIGHBOR": "All",
    "RSQRT": ">=14",
    "SLICE": "All",
    "SOFTMAX": "All",
    "SPACE_TO_DEPTH": "All",
    "SPLIT": "All",
    "SQUEEZE": "All",
    "STRIDED_SLICE": "All",
    "SUB": "All",
    "SUM": ">=13",
    "SQUARED_DIFFERENCE": ">=14",
    "TANH": "All",
    "TRANSPOSE": ">=14",
    "TRANSPOSE_CONV": ">=13",
}

LIMITATIONS: dict[str, str] = {
    "AVERAGE_POOL_2D": "no fused activation function",
    "MAX_POOL_2D": "no fused activation function",
    "CONCATENATION": "no fused activation; a constant input must be all zeroes with exactly 2 inputs",
    "CONV_2D": "same dilation in x and y",
    "DEPTHWISE_CONV_2D": "same dilation in x and y (runtime >= 13), no dilation before",
    "FULLY_CONNECTED": "default weights format only; output tensor is one-dimensional",
    "MEAN": "no reduction in the batch dimension; a z-reduction needs z a multiple of 4",
    "PAD": "no padding in the batch dimension",
    "RESIZE_BILINEAR": "3-D input/output; may stay on CPU to avoid precision loss",
    "RESIZE_NEAREST_NEIGHBOR": "3-D input/output; may stay on CPU to avoid precision loss",
    "SOFTMAX": "1-D input with at most 16,000 elements",
    "SPLIT": "no splitting in the batch dimension",
    "STRIDED_SLICE": "all strides 1, ellipsis-axis-mask and new-axis-mask 0",
    "PACK": "no packing in the batch dimension",
    "SUM": "cannot reduce the batch dimension",
    "REDUCE_MAX": "cannot reduce the batch dimension",
    "REDUCE_MIN": "cannot reduce the batch dimension",
    "LSTM": "unidirectional only",
}

COMPILED_OP = "edgetpu-custom-op"  # what edgetpu_compiler leaves in place of the ops it mapped


def _tensor_problem(t: TensorInfo) -> tuple[str, str] | None:
    """(check, reason) for the first rule this tensor breaks, or None."""
    dt = t.dtype
    if dt not in ("int8", "uint8") and not (t.constant and dt in ("int32", "int64")):
        what = "a constant" if t.constant else "an activation"
        return "8bit", f"tensor {t.index} '{t.name}' is {what} of type {dt}, not 8-bit (int8/uint8)"
    if t.constant:
        return None  # weights are fixed at compile time; 4-D conv filters are what CONV_2D takes
    if any(d < 0 for d in t.shape_signature):
        return (
            "static-shape",
            (f"tensor {t.index} '{t.name}' has a dynamic shape {list(t.shape_signature)} (-1 = size known only at run time)"),
        )
    outer = t.shape[:-3]
    if any(d > 1 for d in outer):
        return (
            "rank",
            (f"tensor {t.index} '{t.name}' has shape {list(t.shape)}: only the 3 innermost dimensions may be larger than 1"),
        )
    return None


def _note(name: str) -> str:
    runtime = f"needs Edge TPU runtime {SUPPORTED_OPS[name]}" if SUPPORTED_OPS[name] != "All" else ""
    return "; ".join(x for x in (runtime, LIMITATIONS.get(name, "")) if x)


def check(subgraphs: Sequence[Subgraph]) -> EdgeTpuVerdict:
    """Compatibility verdict for an inspected model's subgraphs: first offending op, every problem, and notes."""
    problems: list[EdgeTpuProblem] = []
    notes: list[EdgeTpuNote] = []
    compiled = False
    for sg in subgraphs:
        for op in sg.ops:
            name = op.op
            if name == COMPILED_OP:
                compiled = True
                continue
            if name not in SUPPORTED_OPS:
                kind = "custom op" if op.custom else "op"
                reason = f"{kind} {name} is not in the Edge TPU's supported operations"
                problems.append(EdgeTpuProblem(op=name, index=op.index, subgraph=sg.index, check="op", reason=reason))
                continue
            if SUPPORTED_OPS[name] != "All" or name in LIMITATIONS:
                notes.append(EdgeTpuNote(op=name, index=op.index, subgraph=sg.index, note=_note(name)))
            for ti in op.inputs + op.outputs:
                if ti < 0:
                    continue  # an omitted optional input
                bad = _tensor_problem(sg.tensors[ti])
                if bad:
                    problems.append(
                        EdgeTpuProblem(op=name, index=op.index, subgraph=sg.index, check=bad[0], tensor=ti, reason=bad[1])
                    )
                    break  # one problem per op: the first is enough to keep it off the TPU
    first = problems[0] if problems else None
    main_ops = subgraphs[0].ops
    mapped = len(main_ops)
    if first is not None and first.subgraph == 0:
        mapped = next((i for i, op in enumerate(main_ops) if op.index == first.index), len(main_ops))
    return EdgeTpuVerdict(
        compatible=not problems,
        first_offending=OffendingOp(op=first.op, index=first.index, reason=first.reason) if first else None,
        problems=tuple(problems),
        notes=tuple(notes),
        already_compiled=compiled,
        ops_before_first_offending=mapped,
        ops_total=len(main_ops),
        reference=DOCS_URL,
    )
