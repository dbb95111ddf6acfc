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


def umask() -> int:
    """The process umask, read without changing it (os.umask can only be read by setting it, racing threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write to a temp file in the same folder, fsync, rename: readers see all or nothing.

    The file gets `mode`, else the mode of the file it replaces (an edit keeps its permissions), else what
    open() would give under the umask (0644 usually): node_exporter, a web server or a teammate running as
    another user reads the textfile, the report and the manifest. mkstemp's 0600 would lock them out.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o7777
        except OSError:
            mode = 0o666 & ~umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
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
