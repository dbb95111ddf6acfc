"""Optional parts of edgeq (pip extras): is one installed, and the error that names it when it is not.

`pip install edgeq` is the base (inspect, fleet, results, metrics, report); `edgeq[train]` adds
TensorFlow, tf-keras and tfmot for the train / quantize / validate stages.
"""

from __future__ import annotations

from importlib.util import find_spec

from edgeq.errors import MissingExtraError

TRAIN_MODULES = ("tensorflow", "keras")


def installed(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # a blocked or half-removed package counts as missing
        return False


def require_train(what: str = "training and quantizing") -> None:
    """Exit 12 naming the extra when TensorFlow is missing (a base install), before anything imports it."""
    for module in TRAIN_MODULES:
        if not installed(module):
            raise MissingExtraError(
                f"{what} needs {module}, which is not installed (edgeq's [train] extra)", "pip install 'edgeq[train]'"
            )
