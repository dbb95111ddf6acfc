"""Records of `edgeq inspect`: what a .tflite flatbuffer holds (ops, tensors, quantization, sizes) and whether
it fits the Edge TPU. edgeq.inspect builds them; `to_json()` is the `edgeq inspect --json` document."""

from __future__ import annotations

from typing import ClassVar

from pydantic import StrictBool, StrictInt

from edgeq.records.base import Record


class Quantization(Record):
    """A tensor's affine mapping, real value = scale × (q − zero point), per tensor or per channel.

    `range` is the real interval each channel covers: [scale × (qmin − zp), scale × (qmax − zp)]."""

    per_channel: StrictBool
    axis: StrictInt | None
    channels: StrictInt
    scale: tuple[float, ...]
    zero_point: tuple[StrictInt, ...]
    range: tuple[tuple[float, float], ...]
    qmin: StrictInt | None
    qmax: StrictInt | None
    calibrated_min: tuple[float, ...]
    calibrated_max: tuple[float, ...]


class TensorInfo(Record):
    index: StrictInt
    name: str
    dtype: str
    shape: tuple[StrictInt, ...]
    shape_signature: tuple[StrictInt, ...]  # -1 where the size is known only at run time
    buffer: StrictInt
    bytes: StrictInt
    constant: StrictBool
    variable: StrictBool
    quantization: Quantization | None


class OpInfo(Record):
    index: StrictInt
    op: str
    version: StrictInt
    custom: StrictBool
    inputs: tuple[StrictInt, ...]  # tensor indices; -1: an omitted optional input
    outputs: tuple[StrictInt, ...]
    subgraph: StrictInt
    precision: str  # int8, int16, float, hybrid, conversion, constant, or an integer type (shape arithmetic)


class Subgraph(Record):
    index: StrictInt
    name: str
    inputs: tuple[StrictInt, ...]
    outputs: tuple[StrictInt, ...]
    ops: tuple[OpInfo, ...]
    tensors: tuple[TensorInfo, ...]


class IOTensor(Record):
    """A model input or output, with its (first) scale and zero point when quantized."""

    index: StrictInt
    name: str
    dtype: str
    shape: tuple[StrictInt, ...]
    shape_signature: tuple[StrictInt, ...]
    scale: float | None
    zero_point: StrictInt | None


class ModelIO(Record):
    inputs: tuple[IOTensor, ...]
    outputs: tuple[IOTensor, ...]


class SizeBreakdown(Record):
    """Where a model's bytes go: weights (constant tensors' buffers, by dtype), metadata, and the graph (the
    rest: tables, names, shapes, quantization parameters, flatbuffer padding)."""

    file_bytes: StrictInt
    weights_bytes: StrictInt
    weights_by_dtype: dict[str, StrictInt]
    metadata_bytes: StrictInt
    external_bytes: StrictInt
    graph_bytes: StrictInt
    weights_fraction: float


class OffendingOp(Record):
    op: str
    index: StrictInt
    reason: str


class EdgeTpuProblem(Record):
    """An op that keeps the graph off the Edge TPU from there on; `tensor` when a tensor breaks the rule."""

    omit_if_none: ClassVar[frozenset[str]] = frozenset({"tensor"})

    op: str
    index: StrictInt
    subgraph: StrictInt
    check: str  # op, 8bit, static-shape, rank
    tensor: StrictInt | None = None
    reason: str


class EdgeTpuNote(Record):
    op: str
    index: StrictInt
    subgraph: StrictInt
    note: str


class EdgeTpuVerdict(Record):
    """Edge TPU compatibility by Coral's published model requirements (edgeq.inspect.coral)."""

    compatible: StrictBool
    first_offending: OffendingOp | None
    problems: tuple[EdgeTpuProblem, ...]
    notes: tuple[EdgeTpuNote, ...]
    already_compiled: StrictBool
    ops_before_first_offending: StrictInt  # of the main graph: what the compiler maps before falling back to the CPU
    ops_total: StrictInt
    reference: str


class InspectReport(Record):
    """`edgeq inspect MODEL.tflite`: everything the flatbuffer says, read without TensorFlow."""

    path: str
    schema_version: StrictInt
    description: str
    subgraphs: tuple[Subgraph, ...]
    op_counts: dict[str, StrictInt]  # most frequent first
    precision: dict[str, dict[str, StrictInt]]  # compute precision -> op -> count
    io: ModelIO
    size: SizeBreakdown
    metadata: tuple[str, ...]
    edgetpu: EdgeTpuVerdict
