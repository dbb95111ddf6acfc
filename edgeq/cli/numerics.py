"""`edgeq numerics`: where a board's numbers leave this host's, op by op (intermediate tensors compared)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgeq.cli import output
from edgeq.cli.fleetrun import progress_logger
from edgeq.cli.layout import Col
from edgeq.cli.options import DevicesOpt, JsonOpt, TargetOpt, WideOpt
from edgeq.errors import FleetError

if TYPE_CHECKING:
    from edgeq.records.numeric import NumericCheck, NumericSummary, OpError


def _err(e: OpError | None) -> str:
    if e is None or e.error is None:
        return "shape/dtype differ" if e is not None else ""
    return f"{e.error:g} {'steps' if e.unit == 'lsb' else 'rel'}"


def numerics_cmd(
    artifact: Annotated[Path, typer.Argument(help="The .tflite artifact to check.", metavar="ARTIFACT.tflite")],
    target: TargetOpt,
    inputs: Annotated[Path, typer.Option("--inputs", help="Golden inputs: .npy of a few rows shaped like the model input.")],
    reference: Annotated[
        Path | None, typer.Option("--reference", help="Compare with this model on this host (default: the artifact itself).")
    ] = None,
    tolerance_lsb: Annotated[
        float, typer.Option("--tolerance-lsb", min=0.0, help="Quantized tensors: allowed difference in quantization steps.")
    ] = 1.0,
    tolerance_rel: Annotated[
        float, typer.Option("--tolerance-rel", min=0.0, help="Float tensors: allowed difference relative to the largest value.")
    ] = 1e-3,
    name: Annotated[str | None, typer.Option("--name", help="Model name on the boards (default: the artifact's stem).")] = None,
    parallel: Annotated[int, typer.Option("--parallel", min=1, help="Boards checked at once.")] = 5,
    devices: DevicesOpt = None,
    json_out: JsonOpt = False,
    wide: WideOpt = False,
) -> None:
    """Run golden inputs with every intermediate tensor kept, on the boards and here; name the first layer that drifts."""
    output.use_json(json_out)
    from edgeq.fleet import open_inventory
    from edgeq.fleet.numeric import numeric_check

    with open_inventory(devices, output.log) as inv, output.progress_bars():
        progress = progress_logger("numerics", len(inv.select(target)))
        res = numeric_check(
            inv,
            target,
            artifact,
            inputs,
            reference=reference,
            name=name,
            tolerance_lsb=tolerance_lsb,
            tolerance_rel=tolerance_rel,
            parallel=parallel,
            progress=progress,
        )
    if json_out:
        output.emit(res.to_json())
    else:
        rows = []
        for c in res.checks:
            first = c.first_divergent
            where = f"#{first.op_index} {first.op} ({first.name})" if first else ""
            rt = f"{c.runtime.name} {c.runtime.version}" if c.runtime else ""
            status = "ok" if c.ok else ("DRIFTS" if c.kind is None else "failed")
            rows.append([c.device, status, c.ops_compared, where, _err(first), _err(c.worst), rt, c.error or ""])
        cols = [Col("Device"), Col("Status"), Col("Ops", 3), Col("First op over tolerance", wrap=True), Col("Its error", 1)]
        cols += [Col("Worst", 2), Col("Runtime", 4, wrap=True), Col("Error", wrap=True)]
        output.table(f"numeric check {artifact.name} vs {res.reference} on this host ({res.rows} golden rows)", cols, rows)
    if not res.ok:
        _fail([c for c in res.checks if not c.ok], len(res.checks), res)


def _fail(bad: list[NumericCheck], total: int, res: NumericSummary) -> None:
    b = bad[0]
    d = b.first_divergent
    if b.kind:
        what = b.error
    elif d is not None:
        what = f"{b.device}: op #{d.op_index} {d.op} ({d.name}) differs by {_err(d)}"
    else:
        what = f"{b.device}: differs"
    raise FleetError(
        f"numeric check failed on {len(bad)} of {total} board(s): {', '.join(c.device for c in bad)}; first: {what}",
        b.hint
        or "the first op over the tolerance is where the board computes differently: compare the runtimes "
        "(`edgeq devices check`) and that op's kernel, or raise --tolerance-lsb if one step is expected",
        result=res,
    )


def register(app: typer.Typer) -> None:
    app.command("numerics")(numerics_cmd)
