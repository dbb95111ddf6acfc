"""Look inside a .tflite model without TensorFlow: ops, tensors, quantization, sizes, Edge TPU fit.

Public API (used by the CLI, the edgetpu variant and other stages):
  inspect_model(path_or_bytes) -> InspectReport           the whole report (`to_json()`: `edgeq inspect --json`)
  edgetpu_compatibility(report_path_or_bytes) -> EdgeTpuVerdict
Bad input (missing file, directory, not a flatbuffer, wrong identifier, truncated) raises
edgeq.errors.ModelError (exit code 5).
"""

from __future__ import annotations

from pathlib import Path

from edgeq.inspect import reader, report
from edgeq.records.inspect import EdgeTpuVerdict, InspectReport

__all__ = ["EdgeTpuVerdict", "InspectReport", "edgetpu_compatibility", "inspect_model"]

Model = str | Path | bytes | bytearray | memoryview


def inspect_model(path_or_bytes: Model) -> InspectReport:
    """Parse a .tflite file (path) or its bytes; return the inspection report with Edge TPU compatibility."""
    buf, where = reader.load_bytes(path_or_bytes)
    return report.build(reader.parse(buf, where), where)


def edgetpu_compatibility(model: InspectReport | Model) -> EdgeTpuVerdict:
    """Edge TPU verdict for an inspect report, a path, or model bytes."""
    return (model if isinstance(model, InspectReport) else inspect_model(model)).edgetpu
