"""HTML pieces every report section uses: escaping (board and YAML text is data) and tables."""

from __future__ import annotations

import html
from typing import Any


def _e(x: object) -> str:
    return html.escape("" if x is None else str(x))


def _empty(c: Any) -> bool:
    return c is None or c == "" or c == ()


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    # a column no row fills (no power probe on any board, no board model) says nothing: leave it out
    keep = [i for i in range(len(headers)) if not rows or any(not _empty(r[i]) for r in rows)]
    headers = [headers[i] for i in keep]
    rows = [[r[i] for i in keep] for r in rows]
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
