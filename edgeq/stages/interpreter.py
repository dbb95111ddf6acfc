"""Pick a TFLite interpreter: ai_edge_litert if importable, else tflite_runtime, else tensorflow.lite."""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass
from importlib import metadata

from edgeq.errors import EdgeqError

# (module to import, attribute holding Interpreter, distribution name for the version, display name)
_CANDIDATES = (
    ("ai_edge_litert.interpreter", "Interpreter", "ai-edge-litert", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "Interpreter", "tflite-runtime", "tflite-runtime"),
    ("tensorflow.lite", "Interpreter", "tensorflow", "tensorflow.lite"),
)


@dataclass(frozen=True)
class Runtime:
    name: str
    version: str
    interpreter_cls: type

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version}

    def interpreter(self, model_path: str, num_threads: int | None = None):
        from edgeq.stages.quiet import captured_output

        with warnings.catch_warnings(), captured_output():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation warning
            return self.interpreter_cls(model_path=model_path, num_threads=num_threads)


def _version(dist: str, module) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return str(getattr(module, "__version__", "unknown"))


def pick(prefer: str | None = None) -> Runtime:
    """The first importable runtime (or the preferred one by display name)."""
    tried = []
    for mod_name, attr, dist, display in _CANDIDATES:
        if prefer and display != prefer:
            continue
        try:
            mod = importlib.import_module(mod_name)
            cls = getattr(mod, attr)
        except Exception as e:  # ImportError, or numpy ABI errors from old tflite_runtime builds
            tried.append(f"{display}: {type(e).__name__}: {e}")
            continue
        return Runtime(display, _version(dist, mod), cls)
    raise EdgeqError(
        "no TFLite runtime could be imported (" + "; ".join(tried) + ")",
        "pip install ai-edge-litert",
    )
