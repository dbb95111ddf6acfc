"""TensorFlow's tf.lite.Interpreter: for a board with the full TensorFlow and neither runtime package, tried last.

Runs on boards: stdlib + numpy + one TFLite runtime, Python 3.7+.
"""

from __future__ import annotations

import importlib

from . import dist_version
from .interpreter import InterpreterRuntime

NAME = "tensorflow"
DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-aarch64", "tf-nightly", "tensorflow-intel")


def open_runtime() -> InterpreterRuntime:
    """This runtime, if tensorflow imports here (raises otherwise; its import takes seconds)."""
    # by name: the base install's modules (this package among them) never import tensorflow statically
    # (the import-linter contract in pyproject.toml); a board that has only TensorFlow still gets a runtime
    tf = importlib.import_module("tensorflow")
    lite = tf.lite
    return InterpreterRuntime(
        NAME,
        dist_version(DISTRIBUTIONS, tf),
        lite.Interpreter,
        lite.experimental.load_delegate,
        getattr(lite.experimental, "OpResolverType", None),
    )
