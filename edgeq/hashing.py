"""The orchestrator's one sha256 helper (the board agent keeps its own copy: it ships alone)."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20  # read big files (models, datasets) a MiB at a time, never whole into memory


def file_sha256(path: Path | str) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def bytes_sha256(data: bytes) -> str:
    """Hex sha256 of bytes in memory."""
    return hashlib.sha256(data).hexdigest()
