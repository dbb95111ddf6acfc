"""Fleet paths under the edgeq home (edgeq.paths.home(): $EDGEQ_HOME, else ./.edgeq).

Resolved at call time, never cached, so tests and callers can point EDGEQ_HOME elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from edgeq.paths import home as edgeq_home


def default_known_hosts() -> Path:
    """The fleet's own trust store: kept apart from ~/.ssh/known_hosts so trusting a board for
    edgeq never changes what the user's ssh client trusts (and vice versa)."""
    return edgeq_home() / "known_hosts"


def local_board_dir(name: str) -> Path:
    return edgeq_home() / "boards" / name


def agent_cache_dir() -> Path:
    return edgeq_home() / "agent"
