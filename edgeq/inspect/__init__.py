"""Look inside a .tflite model without TensorFlow: ops, tensors, quantization, sizes, Edge TPU fit.

Public API (used by the CLI, the edgetpu variant and other stages):
  inspect_model(path_or_bytes) -> dict          the whole report, JSON-ready
  edgetpu_compatibility(report_or_path) -> dict {"compatible", "first_offending", "problems", ...}
Bad input (missing file, directory, not a flatbuffer, wrong identifier, truncated) raises
edgeq.errors.ModelError (exit code 5).
"""

from __future__ import annotations

from edgeq.inspect import coral, reader, report

__all__ = ["edgetpu_compatibility", "inspect_model"]


def inspect_model(path_or_bytes) -> dict:
    """Parse a .tflite file (path) or its bytes; return the inspection report with Edge TPU compatibility."""
    buf, where = reader.load_bytes(path_or_bytes)
    doc = report.build(reader.parse(buf, where), where)
    doc["edgetpu"] = coral.check(doc)
    return doc


def edgetpu_compatibility(report_or_path) -> dict:
    """Edge TPU verdict for an inspect report (dict), a path, or model bytes."""
    if isinstance(report_or_path, dict):
        return report_or_path.get("edgetpu") or coral.check(report_or_path)
    return inspect_model(report_or_path)["edgetpu"]
