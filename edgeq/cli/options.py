"""Options shared by several commands, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

JSON_HELP = "Print one JSON document on stdout (logs go to stderr)."
DEVICES_HELP = "devices.yaml to use (else $EDGEQ_DEVICES, else the working folder's devices.yaml, else one `local` board)."
TARGET_HELP = "Device name, tag, or `all` (repeatable)."
DB_HELP = "History database (else $EDGEQ_HISTORY_DB, else <edgeq home>/history.db)."

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
DevicesOpt = Annotated[Path | None, typer.Option("--devices", envvar="EDGEQ_DEVICES", help=DEVICES_HELP, show_envvar=True)]
TargetOpt = Annotated[list[str], typer.Option("--target", "-t", help=TARGET_HELP)]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Say what would change on which board; upload, install and switch nothing.")
]
DbOpt = Annotated[Path | None, typer.Option("--db", envvar="EDGEQ_HISTORY_DB", help=DB_HELP, show_envvar=True)]


def _wide(value: bool) -> bool:
    from edgeq.cli import output

    output.use_wide(value)
    return value


# a command that draws tables takes `wide: WideOpt = False`; parsing it is all it takes (edgeq.cli.output.table)
WideOpt = Annotated[
    bool,
    typer.Option("--wide", callback=_wide, help="Show every table column (a narrow terminal hides the least needed ones)."),
]


def parse_batch(value: str | None) -> str | None:
    """--batch is checked at parse time (a usage error, exit 2), with the core's own parser."""
    if value is None:
        return None
    from edgeq.errors import ConfigError
    from edgeq.fleet.fanout import parse_batches

    try:
        parse_batches(value)
    except ConfigError as e:
        raise typer.BadParameter(e.message) from None
    return value


def distinct_threads(value: list[int] | None) -> list[int] | None:
    """A repeated --threads value would be measured and exported twice as the same series: refused (exit 2)."""
    seen: set[int] = set()
    for n in value or ():
        if n in seen:
            raise typer.BadParameter(f"{n} is given twice: each thread count is measured once")
        seen.add(n)
    return value


ThreadsOpt = Annotated[
    list[int] | None,
    typer.Option(
        "--threads", min=1, callback=distinct_threads, help="Interpreter threads (repeatable; default: the device's threads)."
    ),
]
BatchOpt = Annotated[
    str | None,
    typer.Option("--batch", callback=parse_batch, help="Canary batches: cumulative counts/percentages, e.g. 1,25%,100%."),
]
MaxFailOpt = Annotated[
    int | None, typer.Option("--max-fail", min=0, help="Stop before the next batch once more boards than this have failed.")
]
