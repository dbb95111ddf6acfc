"""`~` and `$HOME` in paths that live on a board (python:, workdir:).

The board's shell never sees them (every argument is quoted), so edgeq resolves them itself: the
inventory writes `$HOME/...` as `~/...`, and a session replaces `~` with the login user's home that the
transport reports (SFTP's normalize(".")), the way the workdir always was.
"""

from __future__ import annotations

import re

_HOME = re.compile(r"^\$HOME(?=/|$)")


def normalize_home(path: str) -> str:
    """`$HOME` and `$HOME/x` -> `~` and `~/x`; anything else unchanged."""
    return _HOME.sub("~", path)


def expand_home(path: str, home: str) -> str:
    """Resolve a leading `~` or `$HOME` against `home` (the board's). `python3` and absolute paths stay."""
    p = normalize_home(path)
    if p == "~" or p.startswith("~/"):
        return home.rstrip("/") + p[1:]
    return p


def resolve_workdir(workdir: str, home: str) -> str:
    """What Board does with workdir: `~` and relative paths are under the login user's home."""
    w = expand_home(workdir, home)
    if not w.startswith("/"):
        return home.rstrip("/") + "/" + w
    return w.rstrip("/") or "/"
