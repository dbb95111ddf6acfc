"""`edgeq inspect MODEL.tflite`: parse, call edgeq.inspect.inspect_model, render (rich tables or --json).

Nothing heavy at import time: the report comes from a flatbuffer reader, not TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from edgeq.cli import output
from edgeq.cli.layout import Col
from edgeq.cli.options import DbOpt, JsonOpt, WideOpt

if TYPE_CHECKING:
    from edgeq.records.inspect import EdgeTpuVerdict, InspectReport, Quantization, Subgraph, TensorInfo
    from edgeq.results.opsfind import OpTime, ProfileRef


def _fmt(x: float | None) -> str:
    if x is None:
        return ""
    return f"{x:.6g}"


def _shape(t: TensorInfo) -> str:
    sig = t.shape_signature if t.shape_signature != t.shape else t.shape
    return str(list(sig)).replace(" ", "")


def _quant_cell(q: Quantization | None) -> tuple[str, str, str]:
    """(scale, zero point, real range) cells; per-channel tensors show the spread over channels."""
    if not q or not q.scale:
        return "", "", ""
    if not q.per_channel:
        rng = f"[{_fmt(q.range[0][0])}, {_fmt(q.range[0][1])}]" if q.range else ""
        return _fmt(q.scale[0]), str(q.zero_point[0]), rng
    sc, zp = q.scale, q.zero_point
    lo = min(r[0] for r in q.range) if q.range else None
    hi = max(r[1] for r in q.range) if q.range else None
    zps = str(zp[0]) if len(set(zp)) == 1 else f"{min(zp)}..{max(zp)}"
    rng = f"[{_fmt(lo)}, {_fmt(hi)}] widest" if lo is not None else ""
    return f"{_fmt(min(sc))}..{_fmt(max(sc))} ({q.channels} ch, axis {q.axis})", zps, rng


def _kind(sg: Subgraph, t: TensorInfo) -> str:
    if t.index in sg.inputs:
        return "input"
    if t.index in sg.outputs:
        return "output"
    return "const" if t.constant else ""


def _time_cells(t: OpTime | None) -> list[str]:
    """(time, share) of a model op; a guessed mapping (XNNPACK rows carry no op index) is marked `~`."""
    if t is None:
        return ["", ""]
    mark = "" if t.mapping == "exact" else "~"
    us = f"{t.p50_us:.0f}" if t.p50_us >= 10 else f"{t.p50_us:.1f}"
    return [f"{mark}{us} µs", "" if t.share is None else f"{100 * t.share:.1f}%"]


def render(r: InspectReport, channels: bool = False, profile: tuple[ProfileRef, dict[int, OpTime]] | None = None) -> None:
    size = r.size
    output.say(
        f"[bold]{escape(r.path)}[/bold]  {size.file_bytes:,} bytes · schema v{r.schema_version} · "
        f"{len(r.subgraphs)} subgraph(s)" + (f" · {escape(r.description)}" if r.description else "")
    )
    prec_of: dict[str, set[str]] = {}
    for p, ops in r.precision.items():
        for name in ops:
            prec_of.setdefault(name, set()).add(p)
    output.table(
        "ops",
        [Col("op"), Col("count"), Col("runs in", items=True)],
        [[n, c, ", ".join(sorted(prec_of.get(n, ())))] for n, c in r.op_counts.items()],
    )
    for sg in r.subgraphs:
        cols = [Col("#"), Col("op"), Col("runs in", 1), Col("inputs", wrap=True), Col("outputs", wrap=True)]
        rows = [[op.index, op.op, op.precision, " ".join(map(str, op.inputs)), " ".join(map(str, op.outputs))] for op in sg.ops]
        title = f"subgraph {sg.index} {sg.name}: ops in execution order"
        if profile is not None and sg.index == 0:
            ref, times = profile
            cols += [Col("p50"), Col("share", 2)]
            rows = [[*row, *_time_cells(times.get(op.index))] for row, op in zip(rows, sg.ops, strict=True)]
            title += f"; measured on {ref.device} ({ref.variant}, {ref.threads} thr, run {ref.run_id}); ~ = guessed op mapping"
        output.table(title, cols, rows)
        rows = []
        for t in sg.tensors:
            scale, zp, rng = _quant_cell(t.quantization)
            rows.append([t.index, t.name, t.dtype, _shape(t), _kind(sg, t), f"{t.bytes:,}" if t.bytes else "", scale, zp, rng])
        output.table(
            f"subgraph {sg.index}: tensors (real value = scale × (q − zero point))",
            [Col("#"), Col("name", wrap=True), Col("dtype"), Col("shape", 1), Col("kind", 4), Col("bytes", 3)]
            + [Col("scale", 2, wrap=True), Col("zero point", 2), Col("real range", 3, wrap=True)],
            rows,
        )
        if channels:
            for t in sg.tensors:
                q = t.quantization
                if q and q.per_channel:
                    output.table(
                        f"tensor {t.index} {t.name}: per-channel (axis {q.axis})",
                        [Col("channel"), Col("scale"), Col("zero point"), Col("real range")],
                        [
                            [i, _fmt(s), z, f"[{_fmt(rg[0])}, {_fmt(rg[1])}]" if rg else ""]
                            for i, (s, z, rg) in enumerate(
                                zip(q.scale, q.zero_point, q.range or [None] * len(q.scale), strict=False)
                            )
                        ],
                    )
    wrows = [[f"weights ({dt})", f"{b:,}"] for dt, b in size.weights_by_dtype.items()]
    output.table(
        "size",
        [Col("part", wrap=True), Col("bytes")],
        [
            *wrows,
            ["weights (total)", f"{size.weights_bytes:,}"],
            ["metadata", f"{size.metadata_bytes:,}"],
            ["graph (tables, names, shapes, quantization params)", f"{size.graph_bytes:,}"],
            ["file", f"{size.file_bytes:,}"],
        ],
    )
    output.table(
        "compute precision (by each op's non-constant tensors)",
        [Col("runs in"), Col("ops"), Col("which", items=True)],
        [[p, sum(ops.values()), ", ".join(f"{n}×{c}" for n, c in ops.items())] for p, ops in r.precision.items()],
    )
    _render_edgetpu(r.edgetpu)


def _render_edgetpu(e: EdgeTpuVerdict) -> None:
    f = e.first_offending  # None exactly when compatible
    if f is None:
        output.say(
            f"Edge TPU: [green]compatible[/green] (all {e.ops_total} ops)" + (" · already compiled" if e.already_compiled else "")
        )
    else:
        output.say(
            f"Edge TPU: [red]not compatible[/red]: first offending op {escape(f.op)} (op #{f.index}): "
            f"{escape(f.reason)} · {e.ops_before_first_offending} of {e.ops_total} ops precede it"
        )
        output.table(
            "Edge TPU problems",
            [Col("op #"), Col("op"), Col("check", 1), Col("reason", wrap=True)],
            [[p.index, p.op, p.check, p.reason] for p in e.problems],
        )
    output.say(f"rules: {escape(e.reference)}")


def inspect_cmd(
    model: Annotated[Path, typer.Argument(help="A .tflite model file.", metavar="MODEL.tflite")],
    json_out: JsonOpt = False,
    channels: Annotated[bool, typer.Option("--channels", help="Also list every channel of per-channel tensors.")] = False,
    wide: WideOpt = False,
    ops: Annotated[
        bool,
        typer.Option("--ops", help="Add each op's measured time from the latest stored per-op profile of this model."),
    ] = False,
    profile: Annotated[
        str | None,
        typer.Option("--profile", metavar="RUN", help="Like --ops, from run RUN's profile (`edgeq bench --ops` stores it)."),
    ] = None,
    device: Annotated[str | None, typer.Option("--device", help="With --ops/--profile: the profile of this board.")] = None,
    db: DbOpt = None,
) -> None:
    """Ops, tensors, quantization (scale, zero point, real range), size breakdown and Edge TPU compatibility."""
    output.use_json(json_out)
    from edgeq.inspect import inspect_model

    r = inspect_model(model)
    measured = _measured(model, profile, device, db) if ops or profile else None
    if json_out:
        doc = r.to_json()
        if ops or profile:
            doc["profile"] = (
                None if measured is None else {**measured[0].to_json(), "ops": [t.to_json() for t in measured[1].values()]}
            )
        output.emit(doc)
    else:
        render(r, channels=channels, profile=measured)
        if (ops or profile) and measured is None:
            output.log("no per-op profile of this model in the history: `edgeq bench MODEL --ops` records one")


def _measured(model: Path, run: str | None, device: str | None, db: Path | None) -> tuple[ProfileRef, dict[int, OpTime]] | None:
    from edgeq.hashing import file_sha256
    from edgeq.results.opsfind import op_times, profile_for_model

    found = profile_for_model(file_sha256(model), run, device=device, db_path=db)
    return None if found is None else (found[0], op_times(found[1]))


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect_cmd)
