"""The worst int8 layers by quantization error, with their measured time where the variant was profiled per op:
"worst layer" read by error and by cost together.

A layer error names its tensor (TFLite's QuantizationDebugger); the variant's artifact says which op writes that
tensor (edgeq.inspect: exact, by name); the profile says how long that op took (edgeq.results.opsfind.op_times:
exact for ops the interpreter ran, a guess for XNNPACK operators, which carry no op index). Needs the run's
manifest and artifact on this machine; without them the table is not drawn (the report says why).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeq.records.ops import OpProfile
from edgeq.results.opsfind import OpTime, op_times
from edgeq.results.rows import StoredRun

TOP = 10


@dataclass(frozen=True)
class LayerCost:
    variant: str
    device: str
    threads: int
    layer: str
    op: str
    rmse_scale: float | None
    max_abs_error: float | None
    op_index: int | None  # the model op writing the layer's tensor (None: not found in the artifact)
    time: OpTime | None


def _writers(artifact: Path) -> dict[str, int]:
    """Output tensor name -> index of the op writing it (main subgraph)."""
    from edgeq.inspect import inspect_model

    sg = inspect_model(artifact).subgraphs[0]
    names = {t.index: t.name for t in sg.tensors}
    return {names[o]: op.index for op in sg.ops for o in op.outputs if o in names}


def layer_costs(run: StoredRun, profiles: list[OpProfile]) -> tuple[list[LayerCost], str | None]:
    """(rows, why there are none) for every variant with layer errors and an ok profile."""
    from edgeq.errors import EdgeqError
    from edgeq.results.record import load_manifest

    ok = [p for p in profiles if p.kind == "ok" and p.ops]
    if not ok:
        return [], None
    if not run.manifest_path or not Path(run.manifest_path).is_file():
        return [], f"the run's manifest {run.manifest_path or '(none recorded)'} is not on this machine"
    try:
        manifest = load_manifest(run.manifest_path).manifest
    except EdgeqError as e:
        return [], f"the run's manifest is unreadable: {e.message}"
    out: list[LayerCost] = []
    why = None
    for v, res in manifest.variants.items():
        errs = res.layer_errors
        worst = (errs.worst if errs is not None else None) or ()
        profs = [p for p in ok if p.variant == v]
        if not worst or not profs:
            continue
        art = Path(res.artifact)
        if not art.is_file():
            why = f"the artifact {art} of {v} is not on this machine"
            continue
        try:
            writers = _writers(art)
        except EdgeqError as e:
            why = f"the artifact {art} of {v} is unreadable: {e.message}"
            continue
        for p in profs:
            times = op_times(p)
            for w in worst[:TOP]:
                idx = writers.get(w.tensor)
                out.append(
                    LayerCost(
                        variant=v,
                        device=p.device,
                        threads=p.threads,
                        layer=w.layer,
                        op=w.op,
                        rmse_scale=None if w.rmse_scale is None else float(w.rmse_scale),
                        max_abs_error=None if w.max_abs_error is None else float(w.max_abs_error),
                        op_index=idx,
                        time=None if idx is None else times.get(idx),
                    )
                )
    return out, None if out else why
