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
from edgeq.records.fleet import AccuracyCheck, BenchResult, BenchRun, BoardOutcome, FleetSummary
from edgeq.records.run import BenchmarkStage, DeployStage, VariantResult
from edgeq.results.baseline import BASELINE_SUFFIX


def inventory(spec: PipelineSpec, base: Path):
    """The boards the pipeline deploys to: its devices file (relative to the YAML), else the default one."""
    if spec.devices:
        p = Path(spec.devices).expanduser()
        return fleet.load_inventory(p if p.is_absolute() else base / p)
    return fleet.load_inventory(None)


def leased(inv, log):
    """A labgrid inventory: the places reserved for the deploy and benchmark stages, released after them
    (errors, Ctrl-C and SIGTERM included). A plain inventory passes through. See edgeq.fleet.inventory.labgrid."""
    from edgeq.fleet.inventory.labgrid import leased as lease

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
    artifacts: dict[str, tuple[Path, str | None]] = {}
    for k in keys:
        artifacts[k] = (Path(variants[k].artifact), None)
        if baselines and k in baselines:
            artifacts[k + BASELINE_SUFFIX] = (Path(baselines[k]), f"{Path(variants[k].artifact).stem}-baseline")
    done, failures = _interleaved(b, targets, inv, artifacts, inputs, log, keep, run_dir)
    rows = _session_rows(done, run_dir / "bench")
    checks = None
    if b.accuracy_check:
        checks = _accuracy_check(inv, targets, b.accuracy_tolerance, variants, dataset(), run_dir, keys, log)
        failures += [f"accuracy check {r.variant} on {r.device}: {r.error}" for r in checks if not r.ok]
    return BenchmarkStage(cached=False, results=tuple(rows)), checks, failures


def _interleaved(b: BenchmarkStageSpec, targets, inv, artifacts: dict[str, tuple[Path, str | None]], inputs, log, keep, run_dir):
    """Session by session, variant by variant (A B A B ...: a board's slow drift hits every variant alike):
    ({variant: [each session's board outcomes]}, failure messages)."""
    k = b.sessions
    runs, seconds = fleet.per_session(b.runs, b.min_seconds, k)
    done: dict[str, list[tuple[BoardOutcome, ...]]] = {key: [] for key in artifacts}
    failures: list[str] = []
    names = [d.name for d in inv.select(targets)]
    gone: dict[str, BoardOutcome] = {}  # unreachable in a session: not dialled again (each try waits out its timeouts)
    for s in range(1, k + 1):
        for key, (artifact, name) in artifacts.items():
            tag = f"benchmark {key}" + (f" session {s}/{k}" if k > 1 else "")
            live = [n for n in names if n not in gone]
            if not live:
                break
            log(f"{tag}: on {', '.join(live if gone else targets)} ({runs} runs, >= {seconds:.3g}s)")
            try:
                res = fleet.bench(
                    inv,
                    live if gone else targets,
                    artifact,
                    name=name,
                    runs=runs,
                    warmup=b.warmup,
                    min_seconds=seconds,
                    threads=b.threads,
                    inputs=inputs,
                    parallel=b.parallel,
                    progress=_progress(log, tag, len(live)),
                    controls=b.controls(),
                )
            except FleetInterrupted as e:  # the boards measured before Ctrl-C/SIGTERM are kept, as with edgeq bench
                done[key].append(tuple(d for d in e.rollout.devices if d.results))
                keep(BenchmarkStage(cached=False, results=tuple(_session_rows(done, run_dir / "bench"))))
                raise
            done[key].append(res.devices)
            gone.update({d.device: d for d in res.devices if d.status == "unreachable"})
            failures += _session_failures(res.devices, key, s if k > 1 else None)
    for sessions in done.values():  # a board gone before a variant's turn still gets that variant's row
        seen = {d.device for devices in sessions for d in devices}
        sessions.append(tuple(d for name, d in gone.items() if name not in seen))
    return done, failures


def _session_failures(devices: tuple[BoardOutcome, ...], key: str, session: int | None) -> list[str]:
    at = f" session {session}" if session else ""
    out = [f"benchmark {key}{at} on {d.device}: {d.error or d.status}" for d in devices if not d.results]
    return out + [
        f"benchmark {key}{at} on {d.device} ({r.threads} threads): {r.error}" for d in devices for r in d.results if not r.ok
    ]


def _merged(outcomes: list[BoardOutcome]) -> BoardOutcome:
    """One board's sessions of one variant as one outcome: per thread count, the sessions merged."""
    by_threads: dict[int, list[BenchRun]] = {}
    for o in outcomes:
        for r in o.results:
            by_threads.setdefault(r.threads, []).append(r)
    if not by_threads:
        return outcomes[0]
    return outcomes[0].replace(results=tuple(fleet.merge_sessions(v) for v in by_threads.values()))


def _session_rows(done: dict[str, list[tuple[BoardOutcome, ...]]], raw_dir: Path) -> list[BenchResult]:
    """Manifest rows, variant by variant and board by board, each board's sessions merged."""
    rows: list[BenchResult] = []
    for key, sessions in done.items():
        by_device: dict[str, list[BoardOutcome]] = {}
        for devices in sessions:
            for d in devices:
                by_device.setdefault(d.device, []).append(d)
        for outcomes in by_device.values():
            _bench_rows(_merged(outcomes), key, raw_dir, rows)
    return rows


def _bench_rows(d: BoardOutcome, key: str, raw_dir: Path, rows: list[BenchResult]) -> None:
    """One board's benchmark results as manifest rows (raw samples kept beside the manifest)."""
    if not d.results:
        rows.append(fleet.unmeasured_result(d, key))
    for r in d.results:
        raw_path = None
        if r.ok and r.raw is not None:
            raw_path = raw_dir / f"{d.device}-{key}-t{r.threads}.json"
            paths.atomic_write_json(raw_path, r.raw.to_json())
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
