"""Runs the stages in order over one run context, caches each by the hash of its inputs and params
(edgeq/pipeline/cache.py), and writes the run manifest.

Each stage is a function of the context that returns its record (edgeq.records.run); the manifest
is assembled from those records and written, atomically, at every stage boundary, so a killed
run's manifest says how far it got (its status stays "running", with a pid that is gone).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import secrets
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from edgeq import __version__, paths
from edgeq.config import PipelineFile, read_pipeline
from edgeq.data import datasets as data_mod
from edgeq.data import zoo
from edgeq.errors import ConfigError, FleetError, GateError, Terminated
from edgeq.hashing import file_sha256
from edgeq.pipeline import fleet
from edgeq.pipeline.cache import StageCache, stage_key
from edgeq.pipeline.context import RunContext
from edgeq.pipeline.numeric import numeric_stage
from edgeq.pipeline.steps import gate_variants, quantize_stage, train_stage, validate_stage
from edgeq.records.fleet import RuntimeInfo
from edgeq.records.run import BenchmarkStage, DeployStage, QuantizeStage, RunManifest, RunStages, VariantResult
from edgeq.stages import interpreter as rt


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def library_versions() -> dict:
    return {
        "edgeq": __version__,
        "python": platform.python_version(),
        **{d: _dist_version(d) for d in ("tensorflow", "keras", "numpy", "ai-edge-litert", "scikit-learn")},
    }


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class _ManifestFile:
    """The run's manifest record and its file, rewritten whole (atomically) on every change."""

    def __init__(self, path: Path, manifest: RunManifest):
        self.path, self.manifest = path, manifest
        self.write()

    def write(self) -> None:
        paths.atomic_write_json(self.path, self.manifest.to_json())

    def update(self, **changes: Any) -> None:
        self.manifest = self.manifest.replace(**changes)
        self.write()

    def stage(self, **stages: Any) -> None:
        self.update(stages=self.manifest.stages.replace(**stages))


def run_pipeline(
    pipeline_file: Path,
    *,
    force: bool = False,
    log: Callable[[str], None] = lambda s: None,
    home: Path | None = None,
    rerun_baseline: bool = False,
) -> RunManifest:
    """Run train -> quantize -> validate (-> deploy -> benchmark). Returns the manifest, with `run_dir`.

    rerun_baseline: as benchmark.rerun_baseline: true in the YAML."""
    pipeline_file = Path(pipeline_file)
    loaded = read_pipeline(pipeline_file)
    check_fleet_targets(loaded)  # a typo in a target costs no training
    spec, base = loaded.spec, loaded.base
    if rerun_baseline and spec.benchmark is not None:
        spec = spec.model_copy(update={"benchmark": spec.benchmark.model_copy(update={"rerun_baseline": True})})
    home = home or paths.home()
    cache = StageCache(home / "cache")
    cache.clean_stale()
    run_id = new_run_id()
    run_dir = home / "runs" / run_id
    run_dir.mkdir(parents=True)
    ctx = RunContext(spec, base, cache, run_dir, run_id, library_versions(), force, log)
    out = _ManifestFile(run_dir / "manifest.json", _first_manifest(ctx, pipeline_file))
    t0 = time.perf_counter()
    try:
        _run_stages(ctx, out)
        m = out.manifest
        out.manifest = m.replace(status="gate_failed" if m.gates_failed else "fleet_failed" if m.fleet_failed else "ok")
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM raised as Terminated (edgeq.cli)
        out.manifest = out.manifest.replace(status="terminated" if isinstance(e, Terminated) else "interrupted")
        raise
    except BaseException as e:
        out.manifest = out.manifest.replace(status="failed", error=getattr(e, "message", None) or f"{type(e).__name__}: {e}")
        raise
    finally:
        out.manifest = out.manifest.without("pid").replace(finished=_now(), wall_seconds=round(time.perf_counter() - t0, 3))
        out.write()
        from edgeq.results import record_history  # results are stored locally before anything is exported

        history_error = record_history(out.manifest.replace(run_dir=str(run_dir)), home, run_dir)
        if history_error is not None and out.manifest.status != "ok":
            # don't hide the run's own outcome (its error, a gate's exit 7, the fleet's 8) behind the store's 10
            log(f"warning: {history_error.message}")
            log(f"hint: {history_error.hint}")
    if history_error is not None and out.manifest.status == "ok":
        raise history_error
    return out.manifest.replace(run_dir=str(run_dir))


def check_fleet_targets(loaded: PipelineFile) -> None:
    """Every deploy/benchmark target names a device or tag of the pipeline's devices file (or is `all`)."""
    spec = loaded.spec
    if spec.deploy is None and spec.benchmark is None:
        return
    inv = fleet.inventory(spec, loaded.base)
    if inv.labgrid is not None:  # the boards are places, known once they are leased at the deploy stage
        return
    for section, stage in (("deploy", spec.deploy), ("benchmark", spec.benchmark)):
        for i, target in enumerate((stage.targets if stage is not None else None) or ()):
            try:
                inv.select([target])
            except ConfigError as e:
                raise ConfigError(f"{loaded.where((section, 'targets', i))}: {e.message}", e.hint) from None


def _first_manifest(ctx: RunContext, pipeline_file: Path) -> RunManifest:
    return RunManifest(
        run_id=ctx.run_id,
        pipeline=ctx.spec.name,
        pipeline_file=str(pipeline_file.resolve()),
        pipeline_sha256=file_sha256(pipeline_file),
        status="running",
        started=_now(),
        pid=os.getpid(),
        params=ctx.spec.model_dump(mode="json", by_alias=True),
        versions=ctx.versions,
        inputs={},
        stages=RunStages(),
        variants={},
    )


def data_stage_key(ctx: RunContext, data_fp: dict | None = None) -> str:
    """The key every stage reading the data is cached under (edgeq.tools.float_tflite shares the train stage)."""
    spec = ctx.spec
    data_fp = data_mod.fingerprint(spec.data, ctx.base) if data_fp is None else data_fp
    return stage_key({"data": spec.data.model_dump(mode="json"), "fp": data_fp, "seed": spec.seed})


def _run_stages(ctx: RunContext, out: _ManifestFile) -> None:
    spec = ctx.spec
    data_fp = data_mod.fingerprint(spec.data, ctx.base)
    out.update(inputs={"data": data_fp, "model": zoo.fingerprint(spec.model, ctx.base)})
    data_key = data_stage_key(ctx, data_fp)
    train = train_stage(ctx, data_key, out.manifest.inputs["model"])
    out.stage(train=train)
    quantized: dict[str, QuantizeStage] = {}
    variants: dict[str, VariantResult] = {}
    for v in spec.quantize.variants:
        quantized[v.key], variants[v.key] = quantize_stage(ctx, v, train, data_key)
        out.update(variants=variants)
    out.stage(quantize=quantized)
    runtime = rt.pick()
    validated = {v.key: validate_stage(ctx, v, quantized[v.key], runtime, data_key) for v in spec.quantize.variants}
    out.stage(validate_=validated)
    out.update(runtime=RuntimeInfo.from_json(runtime.describe()))
    variants, failures = gate_variants(ctx, variants, validated)
    out.update(variants=variants, gates_failed=failures)
    if spec.deploy is not None or spec.benchmark is not None:
        if failures:
            out.stage(deploy=DeployStage(skipped="validation gates failed: nothing is deployed"))
            ctx.log("deploy/benchmark skipped: validation gates failed")
        else:
            fleet_stages(ctx, variants, out)


def fleet_stages(ctx: RunContext, variants: dict[str, VariantResult], out: _ManifestFile) -> None:
    """Deploy, then benchmark (never cached: the boards are the input); failures go to fleet_failed."""
    with fleet.leased(fleet.inventory(ctx.spec, ctx.base), ctx.log) as inv:
        _fleet_stages(ctx, inv, variants, out)


def _fleet_stages(ctx: RunContext, inv, variants: dict[str, VariantResult], out: _ManifestFile) -> None:
    spec = ctx.spec
    failures: list[str] = []
    if spec.deploy is not None:
        deployed, failed = fleet.deploy_stage(spec.deploy, inv, variants, ctx.log, lambda st: out.stage(deploy=st))
        out.stage(deploy=deployed)
        failures += failed
    if spec.benchmark is not None:
        targets = spec.benchmark.targets or (spec.deploy.targets if spec.deploy else [])  # config requires one

        def keep(st: BenchmarkStage) -> None:
            out.stage(benchmark=st)
            out.update(benchmarks=st.results)

        baselines, extra = _baselines(ctx, variants)
        bench, checks, failed = fleet.benchmark_stage(
            spec.benchmark, targets, inv, variants, ctx.run_dir, ctx.dataset, ctx.log, keep, baselines
        )
        bench = bench.replace(**extra) if extra else bench
        out.stage(**({"benchmark_accuracy": checks} if checks is not None else {}), benchmark=bench)
        out.update(benchmarks=bench.results)
        failures += failed
        if spec.benchmark.numeric_check:
            keys = spec.benchmark.variants or list(variants)
            golden, numeric, failed = numeric_stage(
                spec.benchmark, targets, inv, variants, keys, ctx.dataset().x_test, ctx.run_dir, ctx.log
            )
            out.stage(benchmark=bench.replace(numeric_inputs=str(golden)), benchmark_numeric=numeric)
            failures += failed
    out.update(fleet_failed=failures)


def _baselines(ctx: RunContext, variants: dict[str, VariantResult]) -> tuple[dict[str, Path] | None, dict[str, Any]]:
    """benchmark.rerun_baseline: the last good run's artifacts to re-measure, and what the stage records about them."""
    b = ctx.spec.benchmark
    if b is None or not b.rerun_baseline:
        return None, {}
    from edgeq.results.baseline import last_good

    keys = b.variants or list(variants)
    found = last_good(ctx.spec.name, {k: variants[k].sha256 for k in keys}, home=ctx.run_dir.parents[1])
    for note in found.notes:
        ctx.log(f"rerun baseline: {note}")
    for a in found.artifacts:
        ctx.log(f"rerun baseline: {a.variant} of run {found.run_id} ({a.sha256[:12]}) measured beside the candidate")
    extra: dict[str, Any] = {"baseline_notes": found.notes}
    if found.run_id:
        extra["baseline_run"] = found.run_id
    return {a.variant: Path(a.artifact) for a in found.artifacts}, extra


def raise_for_failures(manifest: RunManifest) -> None:
    """Gate failures first (GateError, exit 7), then boards that failed to deploy or benchmark (FleetError, exit 8).

    The error carries the manifest as `result`, so --json still reports what was measured.
    """
    fleet_failed = manifest.fleet_failed or ()
    failed = manifest.gates_failed or ()
    if fleet_failed and not failed:
        raise FleetError(
            f"{len(fleet_failed)} fleet step(s) failed:\n  " + "\n  ".join(fleet_failed),
            "results of the boards that succeeded are stored in the run; run `edgeq devices check`",
            result=manifest,
        )
    if failed:
        raise GateError(
            "validation gates failed:\n  " + "\n  ".join(failed),
            "improve the model or relax the gates under validate.gates in the pipeline YAML",
            result=manifest,
        )
