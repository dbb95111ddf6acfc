"""Where the CLI's words go: tables on stdout, logs on stderr, or one --json document on stdout.

`Output` is the one place that knows whether this invocation speaks JSON and whether stdout already
holds its document (so an error after a printed summary is not printed twice). One `Output` lives per
invocation in a ContextVar set by `edgeq.cli.main`; nothing else keeps state.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from edgeq.cli import layout
from edgeq.errors import Terminated

# C0 controls but newline and tab, DEL, and C1 controls. Text from a board or a YAML file could otherwise
# drive the terminal: set its title or swallow what follows (OSC), clear the screen, move the cursor, or
# overwrite a line (CR). They are shown as text instead: \x1b, \x07, \x9b.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: str) -> str:
    """text with every terminal control character shown escaped (the render boundary: every line, every cell)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class _CleanFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return clean(super().format(record))


class Output:
    def __init__(self) -> None:
        self.json = False
        self.printed = False  # stdout already holds the one JSON document
        self.debug = False
        self.terminated = 0  # the stop signal that arrived: SIGTERM or SIGHUP (0: none)
        self.verbosity = 0  # -1 with -q (errors, warnings, results), 1 with -v (edgeq's logging records too)
        self.wide = False  # --wide: every table column, however wide the terminal
        self.files: dict[str, str] = {}  # the config and state files this invocation read (output.using)
        self._err: Console | None = None
        self._out: Console | None = None

    @property
    def err(self) -> Console:
        if self._err is None:
            self._err = Console(file=sys.stderr, highlight=False, soft_wrap=True, emoji=False)
        return self._err

    @property
    def out(self) -> Console:
        if self._out is None:
            width = None if self.sized else 200  # None: the terminal's width, or $COLUMNS
            self._out = Console(file=sys.stdout, highlight=False, soft_wrap=True, width=width, emoji=False)
        return self._out

    @property
    def sized(self) -> bool:
        """Stdout has a width to fit: a terminal, or $COLUMNS. Piped output is read whole in logs and CI:
        its tables keep every column, as with --wide."""
        return sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit()


_current: ContextVar[Output | None] = ContextVar("edgeq_output", default=None)


def current() -> Output:
    o = _current.get()
    if o is None:
        o = Output()
        _current.set(o)
    return o


def reset() -> Output:
    """A fresh Output for a new invocation (edgeq.cli.main; in-process test runners)."""
    o = Output()
    _current.set(o)
    return o


def use_json(flag: bool) -> None:
    """Commands with --json call this first, so even an early error is reported as a JSON document."""
    current().json = flag


def use_wide(flag: bool) -> None:
    """--wide: tables show every column, even wider than the terminal."""
    current().wide = current().wide or flag


def using(**files: Any) -> None:
    """Name the files this command reads (devices file, home, history): one `using ...` line on stderr, and a
    `files` object in its --json document. Found by walking up from the working directory (edgeq.paths), they
    may not be where the user stands."""
    named = {k: str(v) for k, v in files.items() if v is not None}
    current().files.update(named)
    log("using " + ", ".join(f"{k} {v}" for k, v in named.items()))


def emit(doc: Any) -> None:
    """Print the command's one JSON document on stdout (with `files` when the command named them: using())."""
    files = current().files
    if files and isinstance(doc, dict) and "files" not in doc:
        doc = {**doc, "files": files}
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()
    current().printed = True


# lines -q keeps: what went wrong and what to do (a quiet nightly's log still says why it failed)
_ALWAYS = ("error:", "hint:", "warning:", "internal error:", "terminated", "interrupted")


def set_verbosity(level: int) -> None:
    """-q (-1): progress and info lines off; -v (1): edgeq's logging records (INFO) on stderr too."""
    current().verbosity = level
    if level > 0:
        logger = logging.getLogger("edgeq")
        if not any(getattr(h, "_edgeq_cli", False) for h in logger.handlers):
            h = logging.StreamHandler(sys.stderr)
            h.setFormatter(_CleanFormatter("%(name)s: %(message)s"))
            h._edgeq_cli = True  # type: ignore[attr-defined]  # one handler however often -v is given
            logger.addHandler(h)
        logger.setLevel(logging.INFO)


def warn(message: str) -> None:
    """A line that -q still shows."""
    log(message if message.startswith(_ALWAYS) else f"warning: {message}")


def log(message: str) -> None:
    """A progress/log line: always stderr, so --json stdout stays one clean document. -q drops it unless it
    reports an error, a warning or a hint."""
    o = current()
    if o.terminated and sys.exc_info()[0] is None and threading.current_thread() is threading.main_thread():
        # SIGTERM (or SIGHUP) came, yet the main thread goes on: the handler's Terminated was swallowed where Python ignores
        # exceptions (a __del__, a weakref callback). Deliver it again at this safe point.
        raise Terminated()
    if o.verbosity < 0 and not message.startswith(_ALWAYS):
        return
    err = o.err
    try:
        err.print(clean(message), markup=False)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (edgeq.errors.Terminated) raised inside the write
        _drop_written(err)
        raise


def _drop_written(console: Console) -> None:
    """Rich empties its buffer only after writing it: a signal raised in between leaves the line there, and
    the next print (the `terminated` line) would write it a second time."""
    buf = getattr(console, "_buffer", None)
    if isinstance(buf, list):
        del buf[:]


def echo(message: str) -> None:
    """One plain line on stdout (no markup: paths and names are foreign text)."""
    current().out.print(clean(message), markup=False)


def say(markup: str) -> None:
    """A line of rich markup on stdout (foreign text in it escaped by the caller); on a terminal it wraps
    between words at its width, as tables do; piped, it stays one line."""
    o = current()
    o.out.print(clean(markup), highlight=False, soft_wrap=not o.sized)  # \x.. holds no markup


def table(title: str, columns: Sequence[str], rows: Iterable[Iterable[Any]]) -> None:
    """Draw a table on stdout. Every cell and the title are data (board text, YAML names): never markup.

    On a terminal (or with $COLUMNS) the table fits its width (edgeq.cli.layout): the least needed columns
    give way, named under the table; lists and prose break between items and words; a number, a unit or an
    id is never broken. --wide, and piped output, keep every column."""
    cells = [["" if v is None else clean(str(v)) for v in r] for r in rows]
    by_col = [[r[i] if i < len(r) else "" for r in cells] for i in range(len(columns))]
    cols = [c if isinstance(c, layout.Col) else layout.guess(c, by_col[i]) for i, c in enumerate(columns)]
    o = current()
    console = o.out
    wide = o.wide or not o.sized
    shown, widths = layout.fit(cols, by_col, 10**6 if wide else console.width)
    t = Table(title=Text(clean(title)), title_justify="left")
    hidden = [c for i, c in enumerate(cols) if i not in shown]
    if hidden:
        t.caption = Text(f"not shown at {console.width} columns: {', '.join(hidden)} (--wide shows them)")
        t.caption_justify = "left"
    for k, i in enumerate(shown):
        w = None if widths is None else widths[k]
        t.add_column(Text(clean(cols[i].header(w))), width=w, overflow="fold")
    for r in range(len(cells)):
        drawn = []
        for k, i in enumerate(shown):
            cell = by_col[i][r]
            if widths is not None and cols[i].items:
                cell = layout.wrap_items(cell, widths[k])
            drawn.append(Text(cell))
        t.add_row(*drawn)
    need = layout.drawn_width([layout.natural(cols[i], by_col[i]) for i in shown] if widths is None else widths)
    if need <= console.width:
        console.print(t, soft_wrap=wide)  # fitted: the title and the note under the table wrap inside its width
        return
    # wider than the terminal (--wide, or columns that never give way): drawn whole, never squeezed
    Console(
        file=console.file, highlight=False, soft_wrap=True, width=need, emoji=False, force_terminal=console.is_terminal
    ).print(t, soft_wrap=wide)


def progress_enabled() -> bool:
    """Progress bars only when a person watches: stderr is a TTY and stdout is not a JSON stream."""
    o = current()
    return not o.json and o.verbosity >= 0 and sys.stderr.isatty()


@contextmanager
def progress_bars() -> Iterator[None]:
    """Rich progress bars on stderr for edgeq.progress reports while the block runs (if a person watches)."""
    from edgeq import progress as _p

    if not progress_enabled():
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
        console=current().err,
        transient=False,
    )
    tasks: dict[str, Any] = {}
    lock = threading.Lock()

    def advance(label: str, done: int, total: int) -> None:
        with lock:  # fleet workers report from their own threads
            if label not in tasks:
                tasks[label] = bars.add_task(escape(clean(label)), total=max(total, 1))
            bars.update(tasks[label], completed=done, total=max(total, 1))

    with bars, _p.reporting(advance):
        yield
