"""Runs the stages in order, caches each by the hash of its inputs and params, writes the run manifest.

Like DVC: a stage whose key (inputs + params + tool versions) already has a completed output in the
cache is reused. Outputs are built in a temp folder and renamed into the cache only when complete,
so a run killed mid-stage leaves nothing a later run trusts, and the next run resumes after the
last completed stage.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import secrets
import shutil
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from edgeq import __version__, paths, zoo
from edgeq import data as data_mod
from edgeq.config import PipelineSpec, load_pipeline
from edgeq.errors import ConfigError, FleetError, GateError

CACHE_VERSION = 1  # bump when a stage's output format or semantics change
LAYER_ERRORS_VERSION = 1  # int8 validate outputs carry per-layer error statistics (edgeq/stages/debug.py)


def _h(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:24]


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


class StageCache:
    """Content-addressed stage outputs under HOME/cache/<stage>/<key>/ (complete or absent)."""

    def __init__(self, root: Path):
        self.root = root
        self.tmp = root / ".tmp"

    def get(self, stage: str, key: str) -> Path | None:
        d = self.root / stage / key
        return d if (d / "meta.json").exists() else None

    @contextlib.contextmanager
    def build(self, stage: str, key: str, replace: bool = False):
        self.tmp.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp / f"{stage}-{key}-{os.getpid()}-{secrets.token_hex(3)}"
        tmp.mkdir()
        try:
            yield tmp
            if not (tmp / "meta.json").exists():
                raise RuntimeError(f"stage {stage} wrote no meta.json")
            final = self.root / stage / key
            final.parent.mkdir(parents=True, exist_ok=True)
            old = None
            if replace and final.exists():  # --force: the fresh output wins
                old = self.tmp / f"old-{stage}-{key}-{os.getpid()}-{secrets.token_hex(3)}"
                os.rename(final, old)
            try:
                os.rename(tmp, final)
            except OSError:  # another run finished the same stage first: theirs is as good
                shutil.rmtree(tmp, ignore_errors=True)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def clean_stale(self) -> None:
        """Remove temp folders left by killed runs (their pid is gone)."""
        if not self.tmp.exists():
            return
        for d in self.tmp.iterdir():
            parts = d.name.split("-")
            try:
                pid = int(parts[-2])
            except (ValueError, IndexError):
                continue
            if pid != os.getpid() and not _alive(pid):
                shutil.rmtree(d, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Lazy:
    def __init__(self, fn):
        self.fn, self.value, self.done = fn, None, False

    def __call__(self):
        if not self.done:
            self.value, self.done = self.fn(), True
        return self.value


def _check_spec(spec: PipelineSpec, file: Path) -> None:
    has_fp32 = any(v.type == "fp32" for v in spec.quantize.variants)
    wants_drop = spec.validate_.gates.max_accuracy_drop is not None or any(
        v.gates and v.gates.max_accuracy_drop is not None for v in spec.quantize.variants
    )
    if wants_drop and not has_fp32:
        raise ConfigError(
            f"{file}: max_accuracy_drop needs an fp32 variant as the baseline", "add '- type: fp32' under quantize.variants"
        )
    budget = [i for i, v in enumerate(spec.quantize.variants) if v.accuracy_budget is not None]
    if budget and spec.data.validation_split == 0:
        from edgeq.config import _where, read_yaml

        where = _where(str(file), read_yaml(file)[1], ("quantize", "variants", budget[0], "accuracy_budget"))
        raise ConfigError(
            f"{where}: accuracy_budget needs a validation split (data.validation_split is 0): the "
            "mixed-precision search measures there, never on the test split",
            "set data.validation_split, e.g. 0.1",
        )


def run_pipeline(
    pipeline_file: Path, *, force: bool = False, log: Callable[[str], None] = lambda s: None, home: Path | None = None
) -> dict:
    """Run train -> quantize -> validate. Returns the run summary (also written as the manifest)."""
    pipeline_file = Path(pipeline_file)
    spec, base = load_pipeline(pipeline_file)
    _check_spec(spec, pipeline_file)
    home = home or paths.home()
    cache = StageCache(home / "cache")
    cache.clean_stale()
    run_id = new_run_id()
    run_dir = home / "runs" / run_id
    run_dir.mkdir(parents=True)
    versions = library_versions()
    manifest: dict = {
        "run_id": run_id,
        "pipeline": spec.name,
        "pipeline_file": str(pipeline_file.resolve()),
        "pipeline_sha256": _file_sha(pipeline_file),
        "status": "running",
        "started": _now(),
        "pid": os.getpid(),
        "params": spec.model_dump(mode="json", by_alias=True),
        "versions": versions,
        "inputs": {},
        "stages": {},
        "variants": {},
    }
    paths.atomic_write_json(run_dir / "manifest.json", manifest)
    t0 = time.perf_counter()
    try:
        _run_stages(spec, base, cache, run_dir, manifest, versions, force, log)
        manifest["status"] = (
            "gate_failed" if manifest["gates_failed"] else "fleet_failed" if manifest.get("fleet_failed") else "ok"
        )
    except KeyboardInterrupt:
        manifest["status"] = "interrupted"
        raise
    except BaseException as e:
        manifest["status"] = "failed"
        manifest["error"] = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
        raise
    finally:
        manifest["finished"] = _now()
        manifest["wall_seconds"] = round(time.perf_counter() - t0, 3)
        manifest.pop("pid", None)
        paths.atomic_write_json(run_dir / "manifest.json", manifest)
        from edgeq.results import record_history  # results are stored locally before anything is exported

        history_error = record_history({**manifest, "run_dir": str(run_dir)}, home)
        if history_error is not None and manifest["status"] in ("failed", "interrupted"):
            log(f"warning: {history_error.message}")  # don't hide the run's own error behind the store's
    if history_error is not None:
        raise history_error
    manifest["run_dir"] = str(run_dir)
    return manifest


def _run_stages(spec, base, cache, run_dir, manifest, versions, force, log) -> None:
    data_fp = data_mod.fingerprint(spec.data, base)
    model_fp = zoo.fingerprint(spec.model, base)
    manifest["inputs"] = {"data": data_fp, "model": model_fp}
    data_key = _h({"data": spec.data.model_dump(mode="json"), "fp": data_fp, "seed": spec.seed})
    ds = _Lazy(lambda: data_mod.load(spec.data, base, spec.seed))
    saved_model = zoo.is_saved_model(spec.model, base)
    tf_v = {k: versions[k] for k in ("tensorflow", "keras")}

    # ---- train
    train_key = _h(
        {
            "v": CACHE_VERSION,
            "stage": "train",
            "data": data_key,
            "model": spec.model.model_dump(mode="json"),
            "model_fp": model_fp,
            "train": spec.train.model_dump(mode="json", exclude={"qat"}),
            "seed": spec.seed,
            "libs": tf_v,
        }
    )  # train.qat fine-tunes a copy: turning it on must not retrain the float model
    if saved_model:
        if spec.train.epochs:
            raise ConfigError(
                f"model.path {spec.model.path} is a SavedModel directory: it can be quantized but not trained",
                "set train.epochs: 0, or give a .keras file",
            )
        model_path = zoo.saved_model_dir(spec.model, base)
        manifest["stages"]["train"] = {"key": train_key, "cached": True, "skipped": "SavedModel input", "output": str(model_path)}
    else:
        out, cached, meta = _stage(
            cache, "train", train_key, force, manifest, log, lambda tmp: _do_train(spec, base, ds(), tmp, log)
        )
        model_path = out / "model.keras"
        manifest["stages"]["train"] = {"key": train_key, "cached": cached, "output": str(model_path), **meta}

    # ---- quantize
    qstage = {}
    for v in spec.quantize.variants:
        qkey = _h(
            {
                "v": CACHE_VERSION,
                "stage": "quantize",
                "train": train_key,
                "variant": v.model_dump(mode="json", exclude={"gates", "name"}),
                "seed": spec.seed,
                "libs": tf_v,
            }
        )

        def build_q(tmp, v=v):
            from edgeq.stages.quantize import calibration_set, quantize

            d = ds()
            calib = (
                calibration_set(d.x_train, v.calibration_samples, spec.seed, v.calibration_selection, d.y_train)
                if v.type in ("int8", "int16x8", "edgetpu")
                else None
            )
            if calib is not None:
                log(f"  calibrating {v.key} on {len(calib)} training samples ({v.calibration_selection})")
            return quantize(
                model_path,
                v,
                calib,
                tmp,
                saved_model=saved_model,
                load_model=lambda mp: zoo.load_trained(mp, spec.model, base),
                val=(d.x_val, d.y_val) if v.accuracy_budget is not None else None,
                log=log,
            )

        if v.qat:  # fine-tuned with fake quantization in a tf-keras child process (edgeq/stages/qat.py)
            from edgeq.stages import qat

            qkey = _h(
                {
                    "v": CACHE_VERSION,
                    "stage": "qat",
                    "train": train_key,
                    "data": data_key,
                    "train_spec": spec.train.model_dump(mode="json"),
                    "variant": v.model_dump(mode="json", exclude={"gates", "name"}),
                    "seed": spec.seed,
                    "libs": {**tf_v, **qat.versions()},
                }
            )
            out, cached, meta = _stage(
                cache,
                "qat",
                qkey,
                force,
                manifest,
                log,
                lambda tmp, v=v: qat.run_qat(spec, base, v, model_path, tmp, log, saved_model=saved_model),
                label=f"qat {v.key}",
            )
        else:
            out, cached, meta = _stage(cache, "quantize", qkey, force, manifest, log, build_q, label=f"quantize {v.key}")
        qstage[v.key] = {"key": qkey, "cached": cached, "output": str(out / "model.tflite"), **meta}
        art = run_dir / "artifacts" / f"{spec.name}-{v.key}.tflite"
        _link(out / "model.tflite", art)
        manifest["variants"][v.key] = {
            "type": v.type,
            **({"qat": True} if v.qat else {}),
            "artifact": str(art),
            "sha256": _file_sha(out / "model.tflite"),
            "size_bytes": meta["size_bytes"],
        }
        if meta.get("mixed_precision"):
            mp = manifest["variants"][v.key]["mixed_precision"] = _mixed_summary(meta["mixed_precision"])
            log(
                f"{v.key}: accuracy_budget {'met' if mp['met'] else 'NOT met'}; kept float: "
                f"{', '.join(f['layer'] for f in mp['float_layers']) or 'none'}; {mp['int8_op_fraction']:.0%} of ops int8; "
                f"size x{mp['size_ratio_vs_plain']:.2f} and latency x{mp['latency_ratio_vs_plain'] or 0:.2f} vs plain int8"
            )
    manifest["stages"]["quantize"] = qstage

    # ---- validate
    from edgeq import runtime as rt

    runtime = rt.pick()
    vstage = {}
    for v in spec.quantize.variants:
        vkey = _h(
            {
                "v": CACHE_VERSION,
                "stage": "validate",
                "model": qstage[v.key]["key"],
                "data": data_key,
                "runtime": runtime.describe(),
                "batch": spec.validate_.batch_size,
                **({"layer_errors": LAYER_ERRORS_VERSION} if v.type == "int8" else {}),
            }
        )

        def build_v(tmp, v=v):
            from edgeq.stages.validate import evaluate, layer_errors_of

            d = ds()
            # edgetpu: accuracy of the int8 model before compilation (eval_file: same arithmetic, runs on CPU)
            q = Path(qstage[v.key]["output"]).with_name(qstage[v.key].get("eval_file", "model.tflite"))
            extra = {"layer_errors": layer_errors_of(q.parent, v, d.x_test)} if v.type == "int8" else {}
            return {**evaluate(runtime, q, d.x_test, d.y_test, spec.validate_.batch_size), "runtime": runtime.describe(), **extra}

        out, cached, meta = _stage(cache, "validate", vkey, force, manifest, log, build_v, label=f"validate {v.key}")
        vstage[v.key] = {"key": vkey, "cached": cached, **meta}
    manifest["stages"]["validate"] = vstage
    manifest["runtime"] = runtime.describe()

    # ---- derived metrics and gates (never cached: gates may change without changing measurements)
    from edgeq.stages.validate import check_gates

    base_v = next((v for v in spec.quantize.variants if v.type == "fp32"), None)
    base_m = vstage[base_v.key] if base_v else None
    failures = []
    for v in spec.quantize.variants:
        m = vstage[v.key]
        entry = manifest["variants"][v.key]
        entry.update({"accuracy": m["accuracy"], "test_samples": m["test_samples"]})
        if m.get("layer_errors"):
            entry["layer_errors"] = m["layer_errors"]
            worst = m["layer_errors"].get("worst") or []
            if worst:
                log(
                    f"{v.key}: worst int8 layers (RMSE/scale): "
                    + ", ".join(f"{w['layer']} {w['op']} {w['rmse_scale']:.2f}" for w in worst)
                )
        if base_m is not None:
            entry["accuracy_drop"] = round(base_m["accuracy"] - m["accuracy"], 6)
            entry["size_ratio"] = round(m["size_bytes"] / base_m["size_bytes"], 4)
        gates = v.gates or spec.validate_.gates
        failed = check_gates(v.key, entry, gates, is_baseline=(v is base_v))
        entry["gates"] = {"passed": not failed, "failed": failed}
        failures += failed
    manifest["gates_failed"] = failures

    # ---- deploy and benchmark (never cached: the boards are the input)
    if spec.deploy is not None or spec.benchmark is not None:
        if failures:
            manifest["stages"]["deploy"] = {"skipped": "validation gates failed: nothing is deployed"}
            log("deploy/benchmark skipped: validation gates failed")
        else:
            from edgeq.stages.fleet import run_fleet_stages

            manifest["fleet_failed"] = run_fleet_stages(spec, base, manifest, run_dir, ds, log)


def _mixed_summary(mp: dict) -> dict:
    """What the manifest shows of a mixed-precision search (the stage meta keeps every step)."""
    keys = (
        "met",
        "budget",
        "float_layers",
        "tried",
        "int8_op_fraction",
        "val_drop",
        "size_bytes",
        "plain_size_bytes",
        "size_ratio_vs_plain",
        "latency_us",
        "latency_ratio_vs_plain",
        "search_seconds",
    )
    return {k: mp.get(k) for k in keys}


def _do_train(spec, base, ds, tmp, log):
    from edgeq.stages.train import train

    log(
        f"  training {spec.model.builtin or spec.model.path or spec.model.factory} on {len(ds.x_train)} samples "
        f"({spec.train.epochs} epochs, batch {spec.train.batch_size})"
    )
    return train(spec, base, ds, tmp, log)


def _stage(cache: StageCache, stage: str, key: str, force: bool, manifest: dict, log, build, label: str | None = None):
    label = label or stage
    hit = None if force else cache.get(stage, key)
    if hit is not None:
        meta = json.loads((hit / "meta.json").read_text())
        log(f"{label}: cached (from run {meta.get('run_id')})")
        return hit, True, {k: v for k, v in meta.items() if k != "run_id"} | {"from_run": meta.get("run_id")}
    log(f"{label}: running")
    t = time.perf_counter()
    with cache.build(stage, key, replace=force) as tmp:
        metrics = build(tmp) or {}
        meta = {**metrics, "seconds": round(time.perf_counter() - t, 3), "run_id": manifest["run_id"]}
        (tmp / "meta.json").write_text(json.dumps(meta, default=str))
    out = cache.root / stage / key
    log(f"{label}: done in {meta['seconds']:.1f}s")
    return out, False, {k: v for k, v in meta.items() if k != "run_id"}


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def raise_for_failures(result: dict, already_reported: bool = False) -> None:
    """Gate failures first (exit 7), then boards that failed to deploy or benchmark (exit 8)."""
    fleet_failed = result.get("fleet_failed") or []
    failed = result.get("gates_failed") or []
    if fleet_failed and not failed:
        err = FleetError(
            f"{len(fleet_failed)} fleet step(s) failed:\n  " + "\n  ".join(fleet_failed),
            "results of the boards that succeeded are stored in the run; run `edgeq devices check`",
        )
        err.result = result
        err._json_printed = already_reported
        raise err
    if failed:
        err = GateError(
            "validation gates failed:\n  " + "\n  ".join(failed),
            "improve the model or relax the gates under validate.gates in the pipeline YAML",
            result=result,
        )
        err._json_printed = already_reported  # the run document with its failures is already on stdout
        raise err
