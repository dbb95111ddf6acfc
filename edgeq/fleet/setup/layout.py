"""Where `devices setup` builds on a board, and what it accepts there (pure: judged from the check's document).

W/venvs/ID/ holds a venv edgeq built (ID: 12 hex digits) and W/venv is the symbolic link `venvs/ID` to the
current one. A set-up builds, installs and verifies a new venv beside the current one, then replaces the link
in one rename under W/lock, the board lock a measuring agent holds (scripts.SWITCH): a bench never runs on a
half-built venv, and `python: W/venv/bin/python` in devices.yaml stays right. An older edgeq's W/venv (a
real directory) is accepted, and moved aside and removed at the next build.

Refused as the work-dir check refuses W and W/agent: a W/venv that is a symbolic link edgeq did not make
(`python -m venv --clear` would follow it and empty its target), and W/venv, W/venvs, W/wheels or the venv
W/venv points to when it is a symbolic link, another user's, or writable by others.
"""

from __future__ import annotations

import re
import secrets
import stat
from typing import Any

VENVS = "venvs"
LINK_RE = re.compile(r"venvs/[0-9a-f]{12}")


def new_id() -> str:
    return secrets.token_hex(6)


def paths(workdir: str) -> dict[str, str]:
    return {"venv": f"{workdir}/venv", "venvs": f"{workdir}/{VENVS}", "wheels": f"{workdir}/wheels"}


def owner_problem(st: dict[str, Any], euid: int) -> str | None:
    """What is wrong with a path others could use to plant code (the rules of the work-dir check)."""
    mode, uid = int(st["mode"]), int(st["uid"])
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if uid != euid:
        return f"is owned by {st.get('owner') or uid} (uid {uid}), not by the login user (uid {euid})"
    if mode & 0o022:
        return f"is writable by {'group and others' if mode & 0o022 == 0o022 else 'group' if mode & 0o020 else 'others'}"
    return None


def judge(workdir: str, extra: dict[str, Any], euid: int) -> tuple[str, str, dict[str, Any]] | None:
    """(path, what is wrong, its lstat) for the first path setup must not build in; None when all may be used."""
    p = paths(workdir)
    for key in ("venvs", "wheels"):
        st = extra.get(p[key])
        if st is not None:
            why = owner_problem(st, euid) or (None if stat.S_ISDIR(int(st["mode"])) else "is not a directory")
            if why:
                return p[key], why, st
    st = extra.get(p["venv"])
    if st is None:
        return None
    if not stat.S_ISLNK(int(st["mode"])):  # an older edgeq's venv, a real directory
        why = owner_problem(st, euid) or (None if stat.S_ISDIR(int(st["mode"])) else "is not a directory")
        return (p["venv"], why, st) if why else None
    link = st.get("link")
    if not isinstance(link, str) or not LINK_RE.fullmatch(link):
        return p["venv"], f"is a symbolic link to {link!r} that edgeq did not make (its own point to {VENVS}/ID)", st
    target = st.get("target")
    if target is None:  # the venv it pointed to is gone: the probe finds no python, the set-up builds a new one
        return None
    why = owner_problem(target, euid) or (None if stat.S_ISDIR(int(target["mode"])) else "is not a directory")
    return (f"{workdir}/{link}", why, target) if why else None
