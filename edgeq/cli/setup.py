"""`edgeq devices setup`: make bare boards ready (venv + TFLite runtime, installed offline from host wheels)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from edgeq.cli import format as fmt
from edgeq.cli import output
from edgeq.cli.fleetrun import fan_out
from edgeq.cli.layout import Col
from edgeq.cli.options import BatchOpt, DevicesOpt, JsonOpt, MaxFailOpt, WideOpt


def _rows(res: Any) -> list[list[Any]]:
    rows = []
    for r in res.devices:
        rt = " ".join(x for x in (getattr(r, "runtime", None), getattr(r, "runtime_version", None)) if x)
        py = getattr(r, "base_python_version", None) or ""
        note = r.error or "; ".join(getattr(r, "warnings", ()) or ())
        rows.append([r.device, r.status, r.action or "", py, rt, fmt.size(r.bytes_uploaded), fmt.seconds(r.seconds), note])
    return rows


def devices_setup(
    targets: Annotated[list[str], typer.Argument(help="Device names or tags (or `all`).", metavar="NAME|TAG...")],
    write: Annotated[
        bool, typer.Option("--write", help="Point python: in devices.yaml at each board's venv (comments are kept).")
    ] = False,
    parallel: Annotated[int, typer.Option("--parallel", min=1, help="Boards set up at once.")] = 5,
    batch: BatchOpt = None,
    max_fail: MaxFailOpt = None,
    devices: DevicesOpt = None,
    json_out: JsonOpt = False,
    wide: WideOpt = False,
) -> None:
    """Make boards ready offline: a venv in the workdir with a TFLite runtime from wheels this machine downloads."""
    output.use_json(json_out)
    from edgeq.fleet import raise_for_failures
    from edgeq.fleet.setup.run import setup

    res = fan_out(
        "setup",
        devices,
        targets,
        lambda inv, progress: setup(
            inv, targets, write=write, parallel=parallel, batches=batch, max_fail=max_fail, progress=progress
        ),
    )
    if json_out:
        output.emit(res.to_json())
    else:
        cols = [Col("Device"), Col("Status"), Col("Action", 1, wrap=True), Col("Python", 3), Col("Runtime", 2, wrap=True)]
        cols += [Col("Uploaded", 4), Col("Time", 5), Col("Error / note", wrap=True)]
        output.table("devices setup", cols, _rows(res))
        for r in res.devices:
            line = getattr(r, "python_line", None)
            if line and r.succeeded:
                where = " (written)" if getattr(r, "written", None) else ""
                output.echo(f"{r.device}: {line}{where}")
    raise_for_failures(res)
