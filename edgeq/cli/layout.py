"""Fitting a table to a terminal's width without breaking what must stay whole: pure functions.

A terminal is often 80 columns. A table that does not fit gives way in this order:
1. columns are dropped by priority (`Col.drop`: highest first, then rightmost first), only while even the
   narrowest layout of the rest does not fit (a header may shrink to its abbreviation, `Col.short`); the
   caller names what was dropped (--wide shows it);
2. the room left goes to the columns that want it, up to their natural width;
3. only list columns (`Col.items`: "a; b; c" or "a, b, c") break, between items, and prose columns
   (`Col.wrap`: notes, errors), between words. A cell of any other column is never broken, so a number,
   a unit or a run id always reads on one line.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len

WORD_CAP = 30  # a word of prose longer than this (a path, a URL) may fold; numbers, units and run ids are shorter
ITEM_CAP = 40  # a list item longer than this breaks between its words


class Col(str):
    """A table column: its header (the string itself), when it gives way, and how its cells may break.

    drop:  0 always shown; otherwise dropped (highest first, rightmost first) until the table fits.
    items: a list ("a; b" or "a, b"): breaks between items, one item never.
    wrap:  prose: breaks between words (one word longer than WORD_CAP may fold).
    short: the header when the column is narrower than its name ("thr" for "threads")."""

    drop: int
    items: bool
    wrap: bool
    short: str

    def __new__(cls, name: str, drop: int = 0, *, items: bool = False, wrap: bool = False, short: str = "") -> Col:
        self = super().__new__(cls, name)
        self.drop = drop
        self.items = items
        self.wrap = wrap
        self.short = short or name
        return self

    def header(self, width: int | None) -> str:
        """The header drawn in a column `width` wide (None: its natural width)."""
        fits = width is None or max((cell_len(w) for w in self.split()), default=0) <= width
        return str(self) if fits else self.short


def guess(name: str, cells: Sequence[str]) -> Col:
    """A column given as a plain string: never dropped; prose when its cells are long and have words."""
    return Col(name, wrap=any(len(c) > 24 and " " in c for c in cells))


def drawn_width(widths: Sequence[int]) -> int:
    """The width a table takes whose columns hold `widths` characters: padding 1 each side, n + 1 rules."""
    return sum(widths) + 3 * len(widths) + 1


def split_items(cell: str) -> tuple[list[str], str]:
    """A list cell's items and their separator ("; " before ", ": items may hold commas)."""
    for sep in ("; ", ", "):
        if sep in cell:
            return cell.split(sep), sep
    return [cell], ""


def wrap_items(cell: str, width: int) -> str:
    """A list cell broken into lines of at most `width` (the separator's mark stays at a line's end)."""
    out: list[str] = []
    for line in cell.splitlines() or [""]:
        items, sep = split_items(line)
        cur = ""
        for k, item in enumerate(items):
            piece = item + (sep.rstrip() if k < len(items) - 1 else "")
            if cur and cell_len(cur) + 1 + cell_len(piece) > width:
                out.append(cur)
                cur = piece
            else:
                cur = f"{cur} {piece}" if cur else piece
        out.append(cur)
    return "\n".join(out)


def natural(col: Col, cells: Sequence[str]) -> int:
    """The width that shows the header and every cell on one line (multi-line cells: their longest line)."""
    return max([cell_len(col), *(cell_len(x) for c in cells for x in c.splitlines()), 1])


def minimum(col: Col, cells: Sequence[str]) -> int:
    """The narrowest the column may be: its longest header word, and its longest unbreakable piece."""
    head = max((cell_len(w) for w in col.short.split()), default=1)
    if col.items:
        pieces = [_item_piece(i) for c in cells for line in c.splitlines() for i in split_items(line)[0]]
    elif col.wrap:
        pieces = [min(cell_len(w), WORD_CAP) for c in cells for w in c.split()]
    else:
        pieces = [cell_len(x) for c in cells for x in c.splitlines()]
    return max([head, *pieces, 1])


def _item_piece(item: str) -> int:
    n = cell_len(item) + 1  # and its separator's mark
    return n if n <= ITEM_CAP else max((min(cell_len(w), WORD_CAP) for w in item.split()), default=1)


def fit(cols: Sequence[Col], columns: Sequence[Sequence[str]], width: int) -> tuple[list[int], list[int] | None]:
    """Which columns to show (indices, in order) and their widths (None: each its natural width) at `width`.

    `columns` holds each column's cells. The result may be wider than `width` only when the columns that
    never give way are: the caller then draws it whole rather than break a cell."""
    n = len(cols)
    nat = [natural(c, columns[i]) for i, c in enumerate(cols)]
    mins = [min(minimum(c, columns[i]), nat[i]) for i, c in enumerate(cols)]
    shown = list(range(n))
    if drawn_width(nat) <= width:
        return shown, None
    dropped = []
    for i in sorted((i for i in range(n) if cols[i].drop), key=lambda i: (-cols[i].drop, -i)):
        if drawn_width([mins[j] for j in shown]) <= width:
            break
        shown.remove(i)
        dropped.append(i)
    for i in reversed(dropped):  # a wide column that had to go may have made room for a narrower, less needed one
        if drawn_width([mins[j] for j in shown] + [mins[i]]) <= width:
            shown = sorted([*shown, i])
    if drawn_width([nat[j] for j in shown]) <= width:
        return shown, None
    w = {j: mins[j] for j in shown}
    room = width - drawn_width(list(w.values()))
    want = {j: nat[j] - w[j] for j in shown if nat[j] > w[j]}
    if room > 0 and want:  # shared in proportion to what each column lacks
        total = sum(want.values())
        for j, lack in want.items():
            w[j] += min(lack, room * lack // total)
        left = width - drawn_width(list(w.values()))
        for j in sorted(want, key=lambda j: nat[j] - w[j], reverse=True):  # the rounding's remainder
            add = min(left, nat[j] - w[j])
            w[j] += add
            left -= add
    return shown, [w[j] for j in shown]
