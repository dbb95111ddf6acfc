"""Where the agent's runtime code lived before edgeq.agent.runtimes: names kept for host-side callers.

Host only, not shipped to boards (AGENT_MODULES). edgeq.fleet.numeric and tests/farm/test_mixed_fleet.py
still import these; new code imports edgeq.agent.runtimes, .inputs and .loadcheck. Delete this module once
nothing imports it.
"""

from __future__ import annotations

from .inputs import describe_tensor, load_npy, random_input, split_samples, to_model_dtype
from .loadcheck import check_runs
from .runtimes import DELEGATES, RUNTIME_ENV, load_numpy
from .runtimes import open_runtime as find_runtime
from .runtimes.interpreter import EDGETPU_LIBRARY, parse_op_error
from .runtimes.interpreter import InterpreterRuntime as Runtime  # Runtime(name, version, cls, load_delegate, resolver)

__all__ = [
    "DELEGATES",
    "EDGETPU_LIBRARY",
    "RUNTIME_ENV",
    "Runtime",
    "check_runs",
    "describe_tensor",
    "find_runtime",
    "load_npy",
    "load_numpy",
    "parse_op_error",
    "random_input",
    "split_samples",
    "to_model_dtype",
]
