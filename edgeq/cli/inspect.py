"""`edgeq inspect MODEL.tflite`: parse, call edgeq.inspect.inspect_model, render (rich tables or --json).

Nothing heavy at import time: the report comes from a flatbuffer reader, not TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from edgeq.cli import output
from edgeq.cli.options import JsonOpt


def _fmt(x: float | None) -> str:
    if x is None:
        return ""
    return f"{x:.6g}"


def _shape(t: dict[str, Any]) -> str:
    sig = t["shape_signature"]
    return str(sig if sig != t["shape"] else t["shape"]).replace(" ", "")


def _quant_cell(q: dict[str, Any] | None) -> tuple[str, str, str]:
    """(scale, zero point, real range) cells; per-channel tensors show the spread over channels."""
    if not q or not q["scale"]:
        return "", "", ""
    if not q["per_channel"]:
        rng = f"[{_fmt(q['range'][0][0])}, {_fmt(q['range'][0][1])}]" if q["range"] else ""
        return _fmt(q["scale"][0]), str(q["zero_point"][0]), rng
    sc, zp = q["scale"], q["zero_point"]
    lo = min(r[0] for r in q["range"]) if q["range"] else None
    hi = max(r[1] for r in q["range"]) if q["range"] else None
    zps = str(zp[0]) if len(set(zp)) == 1 else f"{min(zp)}..{max(zp)}"
    rng = f"[{_fmt(lo)}, {_fmt(hi)}] widest" if lo is not None else ""
    return f"{_fmt(min(sc))}..{_fmt(max(sc))} ({q['channels']} ch, axis {q['axis']})", zps, rng


def render(doc: dict[str, Any], channels: bool = False) -> None:
    size = doc["size"]
    output.current().out.print(
        f"[bold]{escape(doc['path'])}[/bold]  {size['file_bytes']:,} bytes · schema v{doc['schema_version']} · "
        f"{len(doc['subgraphs'])} subgraph(s)" + (f" · {escape(doc['description'])}" if doc["description"] else "")
    )
    prec_of: dict[str, set[str]] = {}
    for p, ops in doc["precision"].items():
        for name in ops:
            prec_of.setdefault(name, set()).add(p)
    output.table(
        "ops", ["op", "count", "runs in"], [[n, c, ", ".join(sorted(prec_of.get(n, ())))] for n, c in doc["op_counts"].items()]
    )
    for sg in doc["subgraphs"]:
        tensors = sg["tensors"]
        output.table(
            f"subgraph {sg['index']} {sg['name']}: ops in execution order",
            ["#", "op", "runs in", "inputs", "outputs"],
            [
                [op["index"], op["op"], op["precision"], " ".join(map(str, op["inputs"])), " ".join(map(str, op["outputs"]))]
                for op in sg["ops"]
            ],
        )
        rows = []
        for t in tensors:
            scale, zp, rng = _quant_cell(t["quantization"])
            kind = (
                "input"
                if t["index"] in sg["inputs"]
                else "output"
                if t["index"] in sg["outputs"]
                else ("const" if t["constant"] else "")
            )
            rows.append(
                [t["index"], t["name"], t["dtype"], _shape(t), kind, f"{t['bytes']:,}" if t["bytes"] else "", scale, zp, rng]
            )
        output.table(
            f"subgraph {sg['index']}: tensors (real value = scale × (q − zero point))",
            ["#", "name", "dtype", "shape", "kind", "bytes", "scale", "zero point", "real range"],
            rows,
        )
        if channels:
            for t in tensors:
                q = t["quantization"]
                if q and q["per_channel"]:
                    output.table(
                        f"tensor {t['index']} {t['name']}: per-channel (axis {q['axis']})",
                        ["channel", "scale", "zero point", "real range"],
                        [
                            [i, _fmt(s), z, f"[{_fmt(r[0])}, {_fmt(r[1])}]" if r else ""]
                            for i, (s, z, r) in enumerate(
                                zip(q["scale"], q["zero_point"], q["range"] or [None] * len(q["scale"]), strict=False)
                            )
                        ],
                    )
    wrows = [[f"weights ({dt})", f"{b:,}"] for dt, b in size["weights_by_dtype"].items()]
    output.table(
        "size",
        ["part", "bytes"],
        [
            *wrows,
            ["weights (total)", f"{size['weights_bytes']:,}"],
            ["metadata", f"{size['metadata_bytes']:,}"],
            ["graph (tables, names, shapes, quantization params)", f"{size['graph_bytes']:,}"],
            ["file", f"{size['file_bytes']:,}"],
        ],
    )
    output.table(
        "compute precision (by each op's non-constant tensors)",
        ["runs in", "ops", "which"],
        [[p, sum(ops.values()), ", ".join(f"{n}×{c}" for n, c in ops.items())] for p, ops in doc["precision"].items()],
    )
    _render_edgetpu(doc["edgetpu"])


def _render_edgetpu(e: dict[str, Any]) -> None:
    if e["compatible"]:
        output.current().out.print(
            f"Edge TPU: [green]compatible[/green] (all {e['ops_total']} ops)"
            + (" · already compiled" if e["already_compiled"] else ""),
            highlight=False,
        )
    else:
        f = e["first_offending"]
        output.current().out.print(
            f"Edge TPU: [red]not compatible[/red]: first offending op {escape(f['op'])} (op #{f['index']}): "
            f"{escape(f['reason'])} · {e['ops_before_first_offending']} of {e['ops_total']} ops precede it",
            highlight=False,
        )
        output.table(
            "Edge TPU problems",
            ["op #", "op", "check", "reason"],
            [[p["index"], p["op"], p["check"], p["reason"]] for p in e["problems"]],
        )
    output.current().out.print(f"rules: {escape(e['reference'])}", highlight=False)


def inspect_cmd(
    model: Annotated[Path, typer.Argument(help="A .tflite model file.", metavar="MODEL.tflite")],
    json_out: JsonOpt = False,
    channels: Annotated[bool, typer.Option("--channels", help="Also list every channel of per-channel tensors.")] = False,
) -> None:
    """Ops, tensors, quantization (scale, zero point, real range), size breakdown and Edge TPU compatibility."""
    output.use_json(json_out)
    from edgeq.inspect import inspect_model

    doc = inspect_model(model)
    if json_out:
        output.emit(doc)
    else:
        render(doc, channels=channels)


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect_cmd)
