"""The edgeq home (runs, cache, history) and atomic file writes."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

HOME_ENV = "EDGEQ_HOME"


def home() -> Path:
    """EDGEQ_HOME, else .edgeq/ in the working directory."""
    return Path(os.environ.get(HOME_ENV) or ".edgeq").resolve()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, rename: readers see all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path: Path, doc) -> None:
    atomic_write_bytes(path, (json.dumps(doc, indent=2, default=str) + "\n").encode())
