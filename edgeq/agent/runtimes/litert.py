"""ai-edge-litert's Interpreter (ai_edge_litert.interpreter): LiteRT, the maintained TFLite runtime, tried first.

Runs on boards: stdlib + numpy + one TFLite runtime, Python 3.7+.
"""

from __future__ import annotations

from .interpreter import InterpreterRuntime, from_api_module

NAME = "ai-edge-litert"
DISTRIBUTIONS = ("ai-edge-litert", "ai-edge-litert-nightly")


def open_runtime() -> InterpreterRuntime:
    """This runtime, if ai_edge_litert imports here (raises otherwise)."""
    import ai_edge_litert.interpreter

    return from_api_module(NAME, DISTRIBUTIONS, ai_edge_litert, ai_edge_litert.interpreter)
