"""The TFLite Interpreter API (tf.lite.Interpreter), which ai-edge-litert, tflite-runtime and tensorflow share.

litert.py, tflite_runtime.py and tensorflow.py each import their package and hand its classes to an
InterpreterRuntime; the --delegate modes (the Edge TPU's libedgetpu included), the load errors and the
loaded model's calls live here once.

Runs on boards: stdlib + numpy + one TFLite runtime, Python 3.7+.
"""

from __future__ import annotations

import os
import re
import time

from ..codes import AgentFailure
from . import Model, Runtime, dist_version

EDGETPU_LIBRARY = "libedgetpu.so.1"

_OP_PATTERNS = (
    re.compile(r"builtin opcode '([A-Za-z0-9_]+)' version '(\d+)'"),
    re.compile(r"unresolved custom op: ([A-Za-z0-9_]+(?:[.\-][A-Za-z0-9_]+)*)"),
)


def parse_op_error(message: str):
    """(op, op_version) named in a runtime's load error, e.g. ("FULLY_CONNECTED", 12); (None, None) if none."""
    for pattern in _OP_PATTERNS:
        m = pattern.search(message or "")
        if m:
            version = int(m.group(2)) if m.lastindex and m.lastindex >= 2 else None
            return m.group(1), version
    return None, None


def from_api_module(name: str, dists, package, api) -> InterpreterRuntime:
    """The runtime of an imported `package` whose Interpreter and load_delegate live in its module `api`."""
    return InterpreterRuntime(
        name, dist_version(dists, package), api.Interpreter, api.load_delegate, getattr(api, "OpResolverType", None)
    )


class InterpreterModel(Model):
    """A model in a tf.lite-style Interpreter, allocated."""

    def __init__(self, interp, delegate: dict | None = None, init_seconds: float = 0.0):
        self._interp = interp
        self.delegate = delegate or {}
        self.init_seconds = init_seconds
        self.run = interp.invoke
        self.set_input = interp.set_tensor

    def inputs(self) -> list:
        return self._interp.get_input_details()

    def outputs(self) -> list:
        return self._interp.get_output_details()

    def tensors(self) -> list:
        return self._interp.get_tensor_details()

    def tensor(self, index: int):
        return self._interp.get_tensor(index)

    def ops(self) -> list:
        return self._interp._get_ops_details()

    def resize_input(self, index: int, shape: list) -> None:
        self._interp.resize_tensor_input(index, shape, strict=False)
        self._interp.allocate_tensors()


class InterpreterRuntime(Runtime):
    """A runtime package with the Interpreter API: its Interpreter class, load_delegate and OpResolverType (or None)."""

    api = "interpreter"

    def __init__(self, name: str, version: str | None, interpreter_cls, load_delegate, op_resolver_type):
        self.name = name
        self.version = version
        self._interpreter_cls = interpreter_cls
        self._load_delegate = load_delegate
        self._op_resolver_type = op_resolver_type

    def _without_default_delegates(self):
        """The op resolver that keeps the default delegate (XNNPACK) off, or None if this runtime has none."""
        if not self._op_resolver_type:
            return None
        return getattr(self._op_resolver_type, "BUILTIN_WITHOUT_DEFAULT_DELEGATES", None)

    def delegates(self) -> list:
        return ["xnnpack"] + (["none"] if self._without_default_delegates() is not None else []) + ["edgetpu"]

    def _delegate_options(self, delegate: str):
        """(Interpreter kwargs, the answer's "delegate") for a --delegate mode."""
        info = {"requested": delegate}
        kwargs: dict = {}
        if delegate == "edgetpu":
            try:
                kwargs["experimental_delegates"] = [self._load_delegate(EDGETPU_LIBRARY)]
            except Exception as exc:  # OSError (library missing) or ValueError (no device) depending on runtime
                raise AgentFailure(
                    "delegate_missing",
                    "cannot load the Edge TPU delegate " + EDGETPU_LIBRARY + " (" + str(exc)[:200] + "): install "
                    "libedgetpu1-std from the Coral apt repository and plug in the Edge TPU, or use --delegate xnnpack",
                    runtime=self.info(),
                ) from None
            info["used"] = "edgetpu"
            info["note"] = "ops not compiled for the Edge TPU run on the CPU"
        elif delegate == "none":
            no_default = self._without_default_delegates()
            if no_default is not None:
                kwargs["experimental_op_resolver_type"] = no_default
                info["used"] = "none"
                info["note"] = "default delegates disabled (BUILTIN_WITHOUT_DEFAULT_DELEGATES): builtin CPU kernels only"
            else:
                info["used"] = "runtime-default"
                info["note"] = "this runtime cannot disable its default delegate: XNNPACK may run supported ops"
        else:
            info["used"] = "xnnpack"
            info["note"] = "XNNPACK is the runtime's default CPU delegate: it runs the ops it supports, builtin kernels the rest"
        return kwargs, info

    def load(self, path, threads: int = 1, delegate: str = "xnnpack") -> InterpreterModel:
        kwargs = {"model_path": str(path), "num_threads": int(threads)}
        options, info = self._delegate_options(delegate)
        kwargs.update(options)
        start = time.perf_counter()
        try:
            interp = self._interpreter_cls(**kwargs)
            interp.allocate_tensors()
        except Exception as exc:  # ValueError (not a flatbuffer), RuntimeError (op missing), ...
            message = str(exc).strip() or type(exc).__name__
            op, op_version = parse_op_error(message)
            raise AgentFailure(
                "unloadable",
                "the " + self.name + " runtime cannot load " + os.path.basename(str(path)) + ": " + message[:500],
                runtime=self.info(),
                op=op,
                op_version=op_version,
            ) from None
        return InterpreterModel(interp, info, time.perf_counter() - start)

    def load_traced(self, path, threads: int = 1) -> InterpreterModel:
        # builtin kernels only: a delegate fuses ops and keeps no intermediate tensors
        kwargs = {"model_path": str(path), "num_threads": int(threads), "experimental_preserve_all_tensors": True}
        no_default = self._without_default_delegates()
        if no_default is not None:
            kwargs["experimental_op_resolver_type"] = no_default
        try:
            interp = self._interpreter_cls(**kwargs)
        except TypeError:  # a runtime without experimental_preserve_all_tensors (older than TF 2.5)
            raise AgentFailure(
                "unsupported",
                "the " + self.name + " runtime " + str(self.version) + " cannot keep intermediate tensors "
                "(experimental_preserve_all_tensors): install a newer runtime with `edgeq devices setup`",
                runtime=self.info(),
            ) from None
        except Exception as exc:
            raise AgentFailure("unloadable", "the " + self.name + " runtime cannot load the model: " + str(exc)[:300]) from None
        interp.allocate_tensors()
        if not hasattr(interp, "_get_ops_details"):
            raise AgentFailure(
                "unsupported", "the " + self.name + " runtime does not list its ops (_get_ops_details)", runtime=self.info()
            )
        return InterpreterModel(interp)

    def load_inline(self, content: bytes, threads: int = 1) -> InterpreterModel:
        interp = self._interpreter_cls(model_content=content, num_threads=int(threads))
        interp.allocate_tensors()
        return InterpreterModel(interp)
