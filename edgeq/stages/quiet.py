"""Keep TensorFlow's C++ and converter chatter off the terminal (and off --json stdout).

TF and the MLIR converter write straight to file descriptors 1 and 2, bypassing Python; the only
reliable way to keep stdout a clean JSON document is to point those descriptors elsewhere while
they run. What they wrote is kept, so an error can still show it (and --debug shows everything).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

from edgeq.extras import require_train

DEBUG_ENV = "EDGEQ_DEBUG"


@contextlib.contextmanager
def captured_output():
    """Redirect fds 1 and 2 to a temp file; yields a dict whose 'text' is filled on exit."""
    buf = {"text": ""}
    if os.environ.get(DEBUG_ENV):
        yield buf
        return
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(1), os.dup(2)
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        try:
            yield buf
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            tmp.seek(0)
            buf["text"] = tmp.read()[-20000:].decode(errors="replace")


def import_tensorflow():
    """Import TensorFlow (and Keras) without its start-up log lines."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    require_train()
    with captured_output():
        import keras  # noqa: F401
        import tensorflow as tf

        tf.config.list_physical_devices()  # device discovery logs (cuInit on CPU-only hosts) happen here
    return tf
