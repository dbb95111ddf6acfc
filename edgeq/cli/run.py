"""`edgeq run PIPELINE.yaml`: train -> quantize -> validate (-> deploy -> benchmark), then publish."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgeq.cli import output, tables
from edgeq.cli.options import JsonOpt, WideOpt
from edgeq.errors import EdgeqError, ExitCode

if TYPE_CHECKING:
    from edgeq.pipeline.publish import Publication
    from edgeq.records.run import RunManifest


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
    wide: WideOpt = False,
) -> None:
    """Run a pipeline: train -> quantize -> validate (cached by input hash), deploy and benchmark if it says so.

    Several pipelines (a nightly) are checked first (a config error in the last one costs no training), then
    run one after another whatever each one's outcome; one summary, exit code the highest of theirs.

    Example: edgeq run pipelines/quickstart.yaml --json > manifest.json
    """
    output.use_json(json_out)
    from edgeq import paths

    output.using(home=paths.home())  # runs, cache, history (the devices file: the pipeline's devices:, else as `devices list`)
    if len(pipelines) == 1:
        _run_one(pipelines[0], force, push_gateway, fail_on_regression, json_out, emit=True, rerun_baseline=rerun_baseline)
        return
    _run_many(pipelines, force, push_gateway, fail_on_regression, json_out, rerun_baseline=rerun_baseline)


@dataclass(frozen=True)
class RunOutcome:
    """One pipeline run as `edgeq run` reports it: its manifest, and what publishing it did."""

    manifest: RunManifest
    publication: Publication

    def to_json(self) -> dict[str, Any]:
        """The --json document: the manifest with the publication's keys (metrics push, regressions)."""
        return {**self.manifest.to_json(), **self.publication.doc_fields()}


def _run_one(
    pipeline: Path,
    force: bool,
    push_gateway: str | None,
    fail_on_regression: bool,
    json_out: bool,
    *,
    emit: bool,
    rerun_baseline: bool = False,
) -> RunOutcome:
    """One pipeline run, stored and published. Failures raise (with the outcome as their result)."""
    from edgeq.pipeline import runner as pl
    from edgeq.pipeline.publish import publish

    with output.progress_bars():
        manifest = pl.run_pipeline(pipeline, force=force, log=output.log, rerun_baseline=rerun_baseline)
    pub = publish(
        manifest.run_id, manifest.pipeline, push_gateway=push_gateway, fail_on_regression=fail_on_regression, log=output.log
    )
    outcome = RunOutcome(manifest, pub)
    if json_out and emit:
        output.emit(outcome.to_json())
    elif not json_out:
        _render(manifest)
    try:
        pl.raise_for_failures(manifest)
        err = pub.error()
        if err is not None:
            raise err
    except EdgeqError as e:
        e.result = outcome
        raise
    return outcome


@dataclass(frozen=True)
class PipelineOutcome:
    """One pipeline of several: its run, or the error that ended it (and what it measured before)."""

    pipeline_file: str
    run: RunOutcome | None = None
    error: EdgeqError | None = None

    @property
    def exit_code(self) -> int:
        return 0 if self.error is None else int(self.error.exit_code)

    def to_json(self) -> dict[str, Any]:
        if self.error is None:
            return {"pipeline_file": self.pipeline_file, "exit_code": 0, "ok": True, "run": _json(self.run)}
        return {"pipeline_file": self.pipeline_file, "ok": False, **self.error.to_dict(), "run": _json(self.error.result)}

    def row(self) -> tuple[str, str, str, int, str]:
        m = self.run.manifest if self.run else _manifest_of(self.error.result if self.error else None)
        status = m.status if m else "failed"
        return self.pipeline_file, m.run_id if m else "", status, self.exit_code, self.error.message if self.error else ""


def _json(x: Any) -> Any:
    return x.to_json() if hasattr(x, "to_json") else x


def _manifest_of(result: object) -> RunManifest | None:
    """The manifest a failed run's error carries, if any (a RunOutcome, or the manifest itself)."""
    from edgeq.records.run import RunManifest

    if isinstance(result, RunOutcome):
        return result.manifest
    return result if isinstance(result, RunManifest) else None


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
    runs: list[PipelineOutcome] = []
    for p in pipelines:
        output.log(f"== pipeline {p}")
        try:
            run = _run_one(p, force, push_gateway, fail_on_regression, json_out, emit=False, rerun_baseline=rerun_baseline)
            runs.append(PipelineOutcome(str(p), run=run))
        except EdgeqError as e:
            output.log(f"error: {e.message}")
            if e.hint:
                output.log(f"hint: {e.hint}")
            runs.append(PipelineOutcome(str(p), error=e))
    worst = max(r.exit_code for r in runs)
    if json_out:
        output.emit({"ok": worst == 0, "exit_code": worst, "runs": [r.to_json() for r in runs]})
    else:
        output.table(*tables.runs_table([r.row() for r in runs]))
    if worst:
        bad = [r for r in runs if r.error is not None]
        raise RunsFailed(
            f"{len(bad)} of {len(runs)} pipelines failed: " + ", ".join(f"{r.pipeline_file} (exit {r.exit_code})" for r in bad),
            "each pipeline's own error is above; the exit code is the highest of theirs",
            exit_code=worst,
        )


class RunsFailed(EdgeqError):
    """Several pipelines, some failed: exit with the highest of their codes (the summary is already printed)."""

    def __init__(self, message: str, hint: str, exit_code: int):
        super().__init__(message, hint)
        self.exit_code = ExitCode(exit_code)


def _render(m: RunManifest) -> None:
    output.table(*tables.run_variants(m))
    bench = tables.run_benchmarks(m.benchmarks or ())
    if bench is not None:
        output.table(*bench)
    cached = tables.cached_stages(m.stages)
    if cached:
        output.log(f"reused from cache: {', '.join(cached)} (use --force to rerun)")
    output.log(f"run folder: {m.run_dir}  ({m.wall_seconds or 0:.1f}s)")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
