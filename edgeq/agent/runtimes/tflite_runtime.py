"""tflite-runtime (tflite_runtime.interpreter): the runtime of Coral boards and older Pis.

Its last release (2.14, 2023) is built for numpy 1: under numpy 2 its import fails ("_ARRAY_API not found"),
which open_runtime reports under "tried". The Edge TPU delegate (libedgetpu) loads through its load_delegate,
as through the other runtimes' (interpreter.py).

Runs on boards: stdlib + numpy + one TFLite runtime, Python 3.7+.
"""

from __future__ import annotations

from .interpreter import InterpreterRuntime, from_api_module

NAME = "tflite-runtime"
DISTRIBUTIONS = ("tflite-runtime", "tflite-runtime-nightly")


def open_runtime() -> InterpreterRuntime:
    """This runtime, if tflite_runtime imports here (raises otherwise)."""
    import tflite_runtime.interpreter

    return from_api_module(NAME, DISTRIBUTIONS, tflite_runtime, tflite_runtime.interpreter)
