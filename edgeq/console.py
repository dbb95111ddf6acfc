"""Output helpers shared by CLI modules: human tables on stdout, logs on stderr, --json documents.

The core never prints; only the CLI layer uses these.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.table import Table

_err: Console | None = None
_out: Console | None = None


def err_console() -> Console:
    global _err
    if _err is None:
        _err = Console(stderr=True, highlight=False, soft_wrap=True)
    return _err


def out_console() -> Console:
    global _out
    if _out is None:
        # piped output is read by people in logs and CI: don't fold tables to 80 columns
        _out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
    return _out


def log(message: str) -> None:
    """A progress/log line: always stderr, so --json stdout stays one clean document."""
    err_console().print(message, markup=False)


def print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def table(title: str, columns: list[str], rows: Iterable[Iterable[Any]]) -> None:
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*["" if v is None else str(v) for v in r])
    out_console().print(t)


def progress_enabled(json_mode: bool) -> bool:
    """Progress bars only when a person watches: stderr is a TTY and stdout is not a JSON stream."""
    return not json_mode and sys.stderr.isatty()


@contextmanager
def progress_bars(enabled: bool) -> Iterator[None]:
    """Rich progress bars on stderr for edgeq.progress reports while the block runs (if enabled)."""
    from edgeq import progress as _p

    if not enabled:
        with _p.reporting(None):
            yield
        return
    import threading

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console(),
        transient=False,
    )
    tasks: dict[str, Any] = {}
    lock = threading.Lock()

    def advance(label: str, done: int, total: int) -> None:
        with lock:  # fleet workers report from their own threads
            if label not in tasks:
                tasks[label] = bars.add_task(label, total=max(total, 1))
            bars.update(tasks[label], completed=done, total=max(total, 1))

    with bars, _p.reporting(advance):
        yield
