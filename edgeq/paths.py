"""The working folder (found like git's), the edgeq home (runs, cache, history) and atomic file writes.

The working folder is the nearest folder, from the working directory up, that holds `.edgeq/` or
`devices.yaml` (what `edgeq init` writes). The walk stops at the filesystem root and never climbs to $HOME
or a folder above it (a stray ~/devices.yaml does not capture every project under ~), as git's
GIT_CEILING_DIRECTORIES. Explicit settings win: $EDGEQ_HOME for the home, --devices or $EDGEQ_DEVICES for
the devices file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

HOME_ENV = "EDGEQ_HOME"
HOME_DIR = ".edgeq"
DEVICES_FILE = "devices.yaml"


def _ceiling() -> Path | None:
    h = os.environ.get("HOME")
    try:
        return Path(h).resolve() if h else None
    except (OSError, RuntimeError):
        return None


def working_folder(start: Path | None = None) -> Path | None:
    """The nearest folder from `start` (default: the working directory) up holding .edgeq/ or devices.yaml.

    None when there is none below the filesystem root or the $HOME ceiling ($HOME itself is looked at only
    when the walk starts there)."""
    here = (start or Path.cwd()).resolve()
    ceiling = _ceiling()
    for d in (here, *here.parents):
        if d != here and ceiling is not None and (d == ceiling or d in ceiling.parents):
            return None
        if (d / HOME_DIR).is_dir() or (d / DEVICES_FILE).is_file():
            return d
    return None


def home() -> Path:
    """$EDGEQ_HOME, else .edgeq/ in the working folder (working_folder()), else .edgeq/ in the working directory."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).resolve()
    return (working_folder() or Path.cwd().resolve()) / HOME_DIR


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
