"""Text to and from a board's shell: the one way an argv is quoted for it, and how its noise is shown."""

from __future__ import annotations

import shlex


def quote_argv(argv: list[str]) -> str:
    """The only way a command reaches a remote shell: every argument shlex-quoted."""
    return " ".join(shlex.quote(str(a)) for a in argv)


def noise_excerpt(text: str, limit: int = 80) -> str:
    """What a chatty login shell printed, as one short line for messages."""
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return first if len(first) <= limit else first[: limit - 1] + "…"
