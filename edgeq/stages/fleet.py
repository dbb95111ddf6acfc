"""deploy and benchmark stages: never cached (boards change), results stored per device x variant x threads.

They reach the boards through edgeq.fleet's public API only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeq import fleet, paths
from edgeq.config import BenchmarkStageSpec, DeployStageSpec, PipelineSpec
from edgeq.errors import EdgeqError
from edgeq.fleet.fanout import FleetInterrupted
from edgeq.progress import fleet_counter
from edgeq.records.fleet import AccuracyCheck, BenchResult, BoardOutcome, FleetSummary
from edgeq.records.run import BenchmarkStage, DeployStage, VariantResult


def inventory(spec: PipelineSpec, base: Path):
    """The boards the pipeline deploys to: its devices file (relative to the YAML), else the default one."""
    if spec.devices:
        p = Path(spec.devices).expanduser()
        return fleet.load_inventory(p if p.is_absolute() else base / p)
    return fleet.load_inventory(None)


def leased(inv, log):
    """A labgrid inventory: the places reserved for the deploy and benchmark stages, released after them
    (errors, Ctrl-C and SIGTERM included). A plain inventory passes through. See edgeq.fleet.labgrid."""
    from edgeq.fleet.labgrid import leased as lease

    return lease(inv, log)


def _progress(log: Callable[[str], None], label: str, boards: int):
    bar = fleet_counter(label, boards)

    def cb(ev: dict) -> None:
        bar(ev)
        kind = ev.get("event")
        if kind in ("connect", "install", "bench", "done", "stopped"):
            extra = " ".join(
                f"{k}={v}"
                for k, v in ev.items()
                if k not in ("event", "device") and v is not None and not isinstance(v, (dict, list))
            )
            log(f"  {ev.get('device', '')}: {kind} {extra}".rstrip())

    return cb


def deploy_stage(
    d: DeployStageSpec, inv, variants: dict[str, VariantResult], log, keep: Callable[[DeployStage], None]
) -> tuple[DeployStage, list[str]]:
    """Deploy each variant the pipeline names to its targets. Returns the stage and its failure messages.

    On Ctrl-C or SIGTERM, keep() gets what finished (the interrupted variant's finished boards included)
    before the interrupt propagates: the manifest says which boards run which version.
    """
    out: dict[str, FleetSummary] = {}
    failures: list[str] = []
    for key in d.variants or list(variants):
        log(f"deploy {key}: to {', '.join(d.targets)}")
        t0 = time.monotonic()
        try:
            res = fleet.deploy(
                inv,
                d.targets,
                Path(variants[key].artifact),
                parallel=d.parallel,
                progress=_progress(log, f"deploy {key}", len(inv.select(d.targets))),
            )
        except FleetInterrupted as e:
            out[key] = e.summary("deploy", time.monotonic() - t0)
            keep(DeployStage(cached=False, results=out))
            raise
        out[key] = res
        failures += [f"deploy {key} on {b.device}: {b.error or b.status}" for b in res.devices if not b.succeeded]
    return DeployStage(cached=False, results=out), failures


def benchmark_stage(
    b: BenchmarkStageSpec,
    targets: list[str],
    inv,
    variants: dict[str, VariantResult],
    run_dir: Path,
    dataset,
    log,
    keep: Callable[[BenchmarkStage], None],
) -> tuple[BenchmarkStage, tuple[AccuracyCheck, ...] | None, list[str]]:
    """Benchmark each variant on each target (and, if asked, its accuracy on the boards).

    Returns the stage, the accuracy checks (None when not asked) and the failure messages.
    """
    inputs = None
    if b.inputs == "test":
        inputs = run_dir / "bench-inputs.npy"
        paths.atomic_write_bytes(inputs, _npy_bytes(dataset().x_test[: b.input_samples]))
    rows: list[BenchResult] = []
    failures: list[str] = []
    keys = b.variants or list(variants)
    for key in keys:
        log(f"benchmark {key}: on {', '.join(targets)} ({b.runs} runs, >= {b.min_seconds:g}s)")
        try:
            res = fleet.bench(
                inv,
                targets,
                Path(variants[key].artifact),
                runs=b.runs,
                warmup=b.warmup,
                min_seconds=b.min_seconds,
                threads=b.threads,
                inputs=inputs,
                parallel=b.parallel,
                progress=_progress(log, f"benchmark {key}", len(inv.select(targets))),
            )
        except FleetInterrupted as e:  # the boards measured before Ctrl-C/SIGTERM are kept, as with edgeq bench
            for d in e.rollout.devices:
                if d.results:
                    _bench_rows(d, key, run_dir / "bench", rows, [])
            keep(BenchmarkStage(cached=False, results=tuple(rows)))
            raise
        for d in res.devices:
            _bench_rows(d, key, run_dir / "bench", rows, failures)
    checks = None
    if b.accuracy_check:
        checks = _accuracy_check(inv, targets, b.accuracy_tolerance, variants, dataset(), run_dir, keys, log)
        failures += [f"accuracy check {r.variant} on {r.device}: {r.error}" for r in checks if not r.ok]
    return BenchmarkStage(cached=False, results=tuple(rows)), checks, failures


def _bench_rows(d: BoardOutcome, key: str, raw_dir: Path, rows: list[BenchResult], failures: list[str]) -> None:
    """One board's benchmark results as manifest rows (raw samples kept beside the manifest)."""
    if not d.results:
        rows.append(fleet.unmeasured_result(d, key))
        failures.append(f"benchmark {key} on {d.device}: {d.error or d.status}")
    for r in d.results:
        raw_path = None
        if r.ok and r.raw is not None:
            raw_path = raw_dir / f"{d.device}-{key}-t{r.threads}.json"
            paths.atomic_write_json(raw_path, r.raw.to_json())
        else:
            failures.append(f"benchmark {key} on {d.device} ({r.threads} threads): {r.error}")
        rows.append(fleet.bench_result(d.device, key, r, raw_path))


def _npy_bytes(arr: np.ndarray) -> bytes:
    import io

    b = io.BytesIO()
    np.save(b, np.ascontiguousarray(arr, dtype=np.float32), allow_pickle=False)
    return b.getvalue()


def compare_accuracy(preds: np.ndarray, labels: np.ndarray, host: float, tol: float):
    """(board accuracy, board - host, error or None) for a board's predictions on the test split."""
    if len(preds) != len(labels):
        return None, None, f"{len(preds)} predictions for {len(labels)} inputs"
    acc = float(np.mean(np.asarray(preds) == np.asarray(labels)))
    delta = acc - host
    if abs(delta) <= tol + 1e-12:
        return acc, delta, None
    return (
        acc,
        delta,
        (
            f"accuracy on the board {acc:.4f} differs from validate's {host:.4f} by {delta * 100:+.2f} pts "
            f"(tolerance {tol * 100:.2f} pts): the board's runtime computes differently; compare "
            "runtimes with `edgeq devices check`"
        ),
    )


def _accuracy_check(inv, targets, tol, variants, ds, run_dir, keys, log) -> tuple[AccuracyCheck, ...]:
    """Run the whole test split on each board and compare with the validate stage's accuracy."""
    inputs = run_dir / "test-inputs.npy"
    paths.atomic_write_bytes(inputs, _npy_bytes(ds.x_test))
    out = []
    for dev in inv.select(targets):
        for key in keys:
            name = Path(variants[key].artifact).stem
            try:
                preds = np.asarray(fleet.predict(inv, dev.name, name, inputs, sha256=variants[key].sha256))
                host = variants[key].accuracy
                acc, delta, err = compare_accuracy(preds, ds.y_test, host, tol)
                out.append(
                    AccuracyCheck(
                        device=dev.name,
                        variant=key,
                        ok=err is None,
                        board_accuracy=acc,
                        validate_accuracy=host,
                        accuracy_delta=delta,
                        tolerance=tol,
                        error=err,
                    )
                )
                log(
                    f"  {dev.name}: {key} accuracy on the board {acc} (validate {host:.4f}"
                    + (f", {delta * 100:+.2f} pts)" if delta is not None else ")")
                )
            except EdgeqError as e:
                out.append(AccuracyCheck(device=dev.name, variant=key, ok=False, error=e.message))
    return tuple(out)
