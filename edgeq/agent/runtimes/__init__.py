"""The runtimes a board can run a model on: one module per runtime behind one protocol.

A Runtime is a runtime package this board has (describe, load); load() gives a Model, one model loaded and
allocated (tensors, set_input, run). The agent's commands drive only these two: no module outside this
package calls a runtime's own API, so adding a runtime is one module here and one line in RUNTIMES.

    litert.py          ai-edge-litert's Interpreter (ai_edge_litert.interpreter): the maintained runtime
    tflite_runtime.py  tflite-runtime (tflite_runtime.interpreter): Coral / Mendel boards, numpy < 2
    tensorflow.py      tensorflow's tf.lite.Interpreter: a board with the full TensorFlow
    interpreter.py     the Interpreter API those three share (delegate modes, load errors, the Model)
    litert_compiled.py LiteRT's CompiledModel through libLiteRt.so's C API (litert_capi.py): per-op profiles,
                       used by the profile command only (not in RUNTIMES: bench and predict keep the Interpreter)

A runtime with another API (LiteRT's CompiledModel, for per-op profiles) subclasses Runtime and Model in its
own module and says what it can do in describe() (can_profile).

Runs on boards: stdlib + numpy + one TFLite runtime, Python 3.7+.
"""

from __future__ import annotations

import os

from ..codes import AgentFailure

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: `status` pays for every import
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

np = None  # set by load_numpy(): `status` (every deploy) never needs numpy, and importing it was most of its run time

RUNTIMES = ("ai-edge-litert", "tflite-runtime", "tensorflow")  # as reported (each module's NAME), in the order tried
RUNTIME_ENV = "EDGEQ_AGENT_RUNTIME"  # optional comma list restricting RUNTIMES, e.g. "tflite-runtime"
DELEGATES = ("xnnpack", "none", "edgetpu")


def load_numpy():
    """numpy, imported on first need (None if missing: open_runtime reports kind "no_runtime")."""
    global np
    if np is None:
        try:
            import numpy
        except ImportError:
            return None
        np = numpy
    return np


def numpy_version() -> str | None:
    """numpy's version if something has imported it already (never imports it)."""
    return np.__version__ if np is not None else None


def dist_version(dists, module) -> str | None:
    """The installed version of the first distribution in `dists`, else the module's __version__."""
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover - Python < 3.8
        metadata = None  # type: ignore[assignment]
    if metadata is not None:
        for dist in dists:
            try:
                return metadata.version(dist)
            except Exception:  # noqa: S112 - PackageNotFoundError or a broken dist-info: try the next name
                continue
    version = getattr(module, "__version__", None)
    return str(version) if version is not None else None


class Model:
    """One model loaded and allocated by a runtime, ready to run.

    Tensor details are dicts as the TFLite Interpreter gives them: name, index, shape, dtype,
    quantization (scale, zero_point).
    """

    delegate: dict  # the answer's "delegate": requested, used, note
    init_seconds: float  # creating the model and allocating its tensors
    # The runtime's own calls, bound once: the timed loop adds nothing of ours around them.
    run: Callable[[], Any]  # one inference (the Interpreter's invoke)
    set_input: Callable[[int, Any], Any]  # (tensor index, array of that tensor's shape and dtype)

    def inputs(self) -> list:
        raise NotImplementedError

    def outputs(self) -> list:
        raise NotImplementedError

    def tensors(self) -> list:
        """Details of every tensor (the intermediate ones too)."""
        raise NotImplementedError

    def tensor(self, index: int):
        """A copy of a tensor's data (an intermediate one only when loaded with load_traced)."""
        raise NotImplementedError

    def ops(self) -> list:
        """{"index", "op_name", "outputs"} per op, in execution order."""
        raise NotImplementedError

    def resize_input(self, index: int, shape: list) -> None:
        """Give an input another shape (a batch size) and allocate again; raises if the model refuses."""
        raise NotImplementedError


class Runtime:
    """A runtime package installed on this board (a Protocol in spirit: typing.Protocol needs Python 3.8)."""

    name: str  # as reported: "ai-edge-litert", "tflite-runtime", "tensorflow"
    version: str | None
    api = ""  # which of the runtime's APIs this is: "interpreter"
    can_profile = False  # per-op timings of a run (LiteRT's CompiledModel path has them; the Interpreter not)

    def info(self) -> dict:
        """What every answer's "runtime" holds."""
        return {"name": self.name, "version": self.version}

    def delegates(self) -> list:
        """The --delegate modes this runtime honours as asked (others fall back, saying so)."""
        raise NotImplementedError

    def describe(self) -> dict:
        """info() and what this runtime can do."""
        doc = self.info()
        doc.update(api=self.api, delegates=self.delegates(), can_profile=self.can_profile)
        return doc

    def load(self, path, threads: int = 1, delegate: str = "xnnpack") -> Model:
        """Load and allocate a model file. Raises AgentFailure "delegate_missing" or "unloadable"."""
        raise NotImplementedError

    def load_traced(self, path, threads: int = 1) -> Model:
        """Load keeping every intermediate tensor, builtin kernels only. AgentFailure "unsupported" if it can't."""
        raise NotImplementedError

    def load_inline(self, content: bytes, threads: int = 1) -> Model:
        """Load a model held in memory (a helper model: the harness floor's); the runtime's own errors."""
        raise NotImplementedError


def _wanted() -> list:
    return [w.strip() for w in os.environ.get(RUNTIME_ENV, "").split(",") if w.strip()]


def _openers() -> dict:
    """name -> open_runtime of its module (imported here, not before: a zipapp holds no .pyc to spare the compile)."""
    from . import litert, tensorflow, tflite_runtime

    return {m.NAME: m.open_runtime for m in (litert, tflite_runtime, tensorflow)}


def open_runtime() -> Runtime:
    """The first importable runtime: ai-edge-litert, tflite-runtime, tensorflow (or those named in $EDGEQ_AGENT_RUNTIME)."""
    if load_numpy() is None:
        raise AgentFailure("no_runtime", "numpy is not importable on this board: install it (pip install numpy)")
    wanted = _wanted()
    openers = _openers()
    tried = {}
    for name in RUNTIMES:
        if wanted and name not in wanted:
            continue
        try:
            return openers[name]()
        except Exception as exc:  # tflite_runtime built for numpy 1 raises ImportError/AttributeError under numpy 2
            tried[name] = type(exc).__name__ + ": " + str(exc)[:300]
    raise AgentFailure(
        "no_runtime",
        "no TFLite runtime importable on this board: install ai-edge-litert (pip install ai-edge-litert) "
        "or tflite-runtime (pip install tflite-runtime, needs numpy<2)",
        tried=tried,
    )
