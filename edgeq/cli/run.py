"""`edgeq run PIPELINE.yaml`: train -> quantize -> validate (-> deploy -> benchmark), then publish."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edgeq.cli import output, tables
from edgeq.cli.options import JsonOpt
from edgeq.errors import EdgeqError, ExitCode


def run(
    pipelines: Annotated[
        list[Path], typer.Argument(help="Pipeline YAML file(s): several run one after another.", metavar="PIPELINE.yaml...")
    ],
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
    """Run a pipeline: train -> quantize -> validate (cached by input hash), deploy and benchmark if it says so.

    Several pipelines (a nightly) are checked first (a config error in the last one costs no training), then
    run one after another whatever each one's outcome; one summary, exit code the highest of theirs.

    Example: edgeq run pipelines/quickstart.yaml --json > manifest.json
    """
    output.use_json(json_out)
    if len(pipelines) == 1:
        _run_one(pipelines[0], force, push_gateway, fail_on_regression, json_out, emit=True, rerun_baseline=rerun_baseline)
        return
    _run_many(pipelines, force, push_gateway, fail_on_regression, json_out, rerun_baseline=rerun_baseline)


def _run_one(
    pipeline: Path,
    force: bool,
    push_gateway: str | None,
    fail_on_regression: bool,
    json_out: bool,
    *,
    emit: bool,
    rerun_baseline: bool = False,
) -> dict[str, Any]:
    """One pipeline run, stored and published; its manifest document. Failures raise (with the document)."""
    from edgeq.pipeline import runner as pl
    from edgeq.pipeline.publish import publish

    with output.progress_bars():
        result = pl.run_pipeline(pipeline, force=force, log=output.log, rerun_baseline=rerun_baseline)
    doc: dict[str, Any] = result.to_json() if hasattr(result, "to_json") else dict(result)
    pub = publish(
        doc["run_id"], doc["pipeline"], push_gateway=push_gateway, fail_on_regression=fail_on_regression, log=output.log
    )
    doc.update(pub.doc_fields())
    if json_out and emit:
        output.emit(doc)
    elif not json_out:
        _render(doc)
    try:
        pl.raise_for_failures(result)
        err = pub.error()
        if err is not None:
            raise err
    except EdgeqError as e:
        e.result = doc
        raise
    return doc


def _run_many(
    pipelines: list[Path],
    force: bool,
    push_gateway: str | None,
    fail_on_regression: bool,
    json_out: bool,
    *,
    rerun_baseline: bool = False,
) -> None:
    from edgeq.config import read_pipeline
    from edgeq.pipeline.runner import check_fleet_targets

    for p in pipelines:  # every file checked before anything trains
        check_fleet_targets(read_pipeline(p))
    runs: list[dict[str, Any]] = []
    for p in pipelines:
        output.log(f"== pipeline {p}")
        try:
            doc = _run_one(p, force, push_gateway, fail_on_regression, json_out, emit=False, rerun_baseline=rerun_baseline)
            runs.append({"pipeline_file": str(p), "exit_code": 0, "ok": True, "run": doc})
        except EdgeqError as e:
            output.log(f"error: {e.message}")
            if e.hint:
                output.log(f"hint: {e.hint}")
            runs.append({"pipeline_file": str(p), "ok": False, **e.to_dict(), "run": e.result})
    worst = max(int(r["exit_code"]) for r in runs)
    summary = {"ok": worst == 0, "exit_code": worst, "runs": runs}
    if json_out:
        output.emit(summary)
    else:
        rows = [
            [r["pipeline_file"], (r["run"] or {}).get("run_id", ""), (r["run"] or {}).get("status", "failed"), r["exit_code"],
             r.get("message", "")]
            for r in runs
        ]  # fmt: skip
        output.table(f"{len(runs)} pipelines", ["Pipeline", "Run", "Status", "Exit", "Error"], rows)
    if worst:
        bad = [r for r in runs if not r["ok"]]
        raise RunsFailed(
            f"{len(bad)} of {len(runs)} pipelines failed: "
            + ", ".join(f"{r['pipeline_file']} (exit {r['exit_code']})" for r in bad),
            "each pipeline's own error is above; the exit code is the highest of theirs",
            exit_code=worst,
        )


class RunsFailed(EdgeqError):
    """Several pipelines, some failed: exit with the highest of their codes (the summary is already printed)."""

    def __init__(self, message: str, hint: str, exit_code: int):
        super().__init__(message, hint)
        self.exit_code = ExitCode(exit_code)


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
