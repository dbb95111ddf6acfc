"""`edgeq run PIPELINE.yaml`: train -> quantize -> validate (-> deploy -> benchmark), then publish."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edgeq.cli import output, tables
from edgeq.cli.options import JsonOpt


def run(
    pipeline: Annotated[Path, typer.Argument(help="Pipeline YAML file.", metavar="PIPELINE.yaml")],
    force: Annotated[bool, typer.Option("--force", help="Rerun every stage, ignoring the cache.")] = False,
    json_out: JsonOpt = False,
    push_gateway: Annotated[
        str | None,
        typer.Option(
            "--push-gateway",
            envvar="EDGEQ_PUSHGATEWAY",
            show_envvar=True,
            help="Push the run's metrics to this Pushgateway after storing them.",
        ),
    ] = None,
    fail_on_regression: Annotated[
        bool,
        typer.Option("--fail-on-regression", help="Compare with the previous run of the pipeline; exit 9 on a regression."),
    ] = False,
    rerun_baseline: Annotated[
        bool,
        typer.Option(
            "--rerun-baseline",
            help="Re-measure the last good run's artifacts interleaved with the new ones (benchmark.rerun_baseline).",
        ),
    ] = False,
) -> None:
    """Run a pipeline: train -> quantize -> validate (cached by input hash)."""
    output.use_json(json_out)
    from edgeq import pipeline as pl
    from edgeq.publish import publish

    with output.progress_bars():
        result = pl.run_pipeline(pipeline, force=force, log=output.log, rerun_baseline=rerun_baseline)
    doc: dict[str, Any] = result.to_json() if hasattr(result, "to_json") else dict(result)
    pub = publish(
        doc["run_id"], doc["pipeline"], push_gateway=push_gateway, fail_on_regression=fail_on_regression, log=output.log
    )
    doc.update(pub.doc_fields())
    if json_out:
        output.emit(doc)
    else:
        _render(doc)
    pl.raise_for_failures(result)
    err = pub.error()
    if err is not None:
        raise err


def _render(doc: dict[str, Any]) -> None:
    title, cols, rows = tables.run_variants(doc)
    output.table(title, cols, rows)
    bench = tables.run_benchmarks(doc)
    if bench is not None:
        output.table(*bench)
    cached = tables.cached_stages(doc)
    if cached:
        output.log(f"reused from cache: {', '.join(cached)} (use --force to rerun)")
    output.log(f"run folder: {doc.get('run_dir')}  ({doc.get('wall_seconds', 0):.1f}s)")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
