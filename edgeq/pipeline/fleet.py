"""deploy and benchmark stages: never cached (boards change), results stored per device x variant x threads.

They reach the boards through edgeq.fleet's public API only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np

from edgeq import fleet, paths
from edgeq.config import BenchmarkStageSpec, DeployStageSpec, PipelineSpec
from edgeq.errors import EdgeqError
from edgeq.progress import fleet_counter
from edgeq.records.fleet import AccuracyCheck, BenchResult, BoardOutcome, FleetSummary
from edgeq.records.run import BenchmarkStage, DeployStage, VariantResult
from edgeq.results.baseline import BASELINE_SUFFIX
from edgeq.results.opstore import OPS_FILE


def inventory(spec: PipelineSpec, base: Path) -> fleet.Inventory:
    """The boards the pipeline deploys to: its devices file (relative to the YAML), else the default one."""
    if spec.devices:
        p = Path(spec.devices).expanduser()
        return fleet.load_inventory(p if p.is_absolute() else base / p)
    return fleet.load_inventory(None)


def leased(inv: fleet.Inventory, log: Callable[[str], None]) -> AbstractContextManager[fleet.Inventory]:
    """The boards the deploy and benchmark stages run on, released after them (errors, Ctrl-C and SIGTERM
    included): edgeq.fleet.open_inventory (labgrid places are reserved for the stages)."""
    return fleet.open_inventory(inv, log)


def _progress(log: Callable[[str], None], label: str, boards: int, heading: Callable[[dict], None] | None = None):
    bar = fleet_counter(label, boards)

    def cb(ev: dict) -> None:
        bar(ev)
        kind = ev.get("event")
        if kind == "session" and heading is not None:
            heading(ev)
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
        except fleet.FleetInterrupted as e:
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
    baselines: dict[str, Path] | None = None,
) -> tuple[BenchmarkStage, tuple[AccuracyCheck, ...] | None, list[str]]:
    """Benchmark each variant on each target (and, if asked, its accuracy on the boards).

    `baselines` ({variant: an earlier artifact}) are measured right after their variant in every session, as
    variant "<variant>@baseline" under their own model name on the boards (the deployed model stays current).
    Returns the stage, the accuracy checks (None when not asked) and the failure messages.
    """
    inputs = None
    if b.inputs == "test":
        inputs = run_dir / "bench-inputs.npy"
        paths.atomic_write_bytes(inputs, _npy_bytes(dataset().x_test[: b.input_samples]))
    keys = b.variants or list(variants)
    models: list[fleet.BenchModel] = []
    for k in keys:
        models.append(fleet.BenchModel(k, Path(variants[k].artifact)))
        if baselines and k in baselines:
            name = f"{Path(variants[k].artifact).stem}-baseline"  # the deployed model stays current
            models.append(fleet.BenchModel(k + BASELINE_SUFFIX, Path(baselines[k]), name))
    done, failures = _measure(b, targets, inv, models, inputs, log, keep, run_dir / "bench")
    checks = None
    if b.accuracy_check:
        checks = _accuracy_check(inv, targets, b.accuracy_tolerance, variants, dataset(), run_dir, keys, log)
        failures += [f"accuracy check {r.variant} on {r.device}: {r.error}" for r in checks if not r.ok]
    return BenchmarkStage(cached=False, results=tuple(done)), checks, failures


def _measure(b: BenchmarkStageSpec, targets, inv, models: list[fleet.BenchModel], inputs, log, keep, raw_dir: Path):
    """Every variant on every target, in edgeq.fleet's session loop (per board: session 1 of every variant, then
    session 2, ...: A B A B, a board's slow drift hits every variant alike). (manifest rows, failure messages)."""
    k = b.sessions
    runs, seconds = fleet.per_session(b.runs, b.min_seconds, k)
    names = [d.name for d in inv.select(targets)]
    gone: set[str] = set()  # unreachable: the headings name the boards still measured
    said: set[tuple[str, int]] = set()
    lock = threading.Lock()  # events come from the boards' worker threads

    def heading(ev: dict) -> None:  # once per variant and session, when the first board begins it
        step = (ev["model"], ev["session"])
        with lock:
            if step in said:
                return
            said.add(step)
            on = ", ".join(n for n in names if n not in gone) if gone else ", ".join(targets)
        tag = f"benchmark {step[0]}" + (f" session {step[1]}/{k}" if k > 1 else "")
        log(f"{tag}: on {on} ({runs} runs, >= {seconds:.3g}s)")

    label = "benchmark " + ", ".join(m.key for m in models) if len(models) <= 3 else f"benchmark {len(models)} variants"
    shown = _progress(log, label, len(names), heading)

    def progress(ev: dict) -> None:
        if ev.get("event") == "done" and ev.get("status") == "unreachable":
            with lock:
                gone.add(ev["device"])
        shown(ev)

    try:
        res = fleet.bench_models(
            inv,
            targets,
            models,
            runs=b.runs,
            warmup=b.warmup,
            min_seconds=b.min_seconds,
            threads=b.threads,
            inputs=inputs,
            parallel=b.parallel,
            progress=progress,
            sessions=k,
            controls=b.controls(),
            sizing=_sizing(b),
        )
    except fleet.FleetInterrupted as e:  # the boards measured before Ctrl-C/SIGTERM are kept, as with edgeq bench
        kept = {key: [d for d in devices if d.results] for key, devices in e.by_model.items()}
        keep(BenchmarkStage(cached=False, results=tuple(_rows(kept, raw_dir))))
        raise
    failures = [f for key, s in res.items() for d in s.devices for f in _failures(d, key)]
    if b.ops:  # after the latency sessions, never mixed into them; recorded with the run (edgeq.results.record_history)
        mine = {key: s for key, s in res.items() if not key.endswith(BASELINE_SUFFIX)}
        log(f"benchmark: per-op profiles, {k} session(s)")
        ops = fleet.profile_ops(inv, targets, mine, runs=b.runs, warmup=b.warmup, sessions=k, parallel=b.parallel)
        paths.atomic_write_json(raw_dir / OPS_FILE, ops.to_json())
    return _rows({key: s.devices for key, s in res.items()}, raw_dir), failures


def _sizing(b: BenchmarkStageSpec):
    """benchmark.ci_target as the session loop's self-sizing (None without it)."""
    if b.ci_target is None:
        return None
    return fleet.Sizing(target=fleet.parse_ci_target(b.ci_target), max_sessions=b.max_sessions, max_seconds=b.max_seconds)


def _failures(d: BoardOutcome, key: str) -> list[str]:
    if not d.results:
        return [f"benchmark {key} on {d.device}: {d.error or d.status}"]
    return [f"benchmark {key} on {d.device} ({r.threads} threads): {r.error}" for r in d.results if not r.ok or r.kind]


def _rows(by_model: Mapping[str, Iterable[BoardOutcome]], raw_dir: Path) -> list[BenchResult]:
    """Manifest rows, variant by variant and board by board (raw samples kept beside the manifest)."""
    rows: list[BenchResult] = []
    for key, devices in by_model.items():
        for d in devices:
            if not d.results:
                rows.append(fleet.unmeasured_result(d, key))
            for r in d.results:
                raw_path = None
                if r.ok and r.raw is not None:
                    raw_path = raw_dir / f"{d.device}-{key}-t{r.threads}.json"
                    paths.atomic_write_json(raw_path, r.raw.to_json())
                rows.append(fleet.bench_result(d.device, key, r, raw_path))
    return rows


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
