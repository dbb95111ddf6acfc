"""qat stage: fine-tune the trained model with fake quantization, convert it to full-integer int8.

tensorflow-model-optimization needs tf-keras with TF_USE_LEGACY_KERAS=1 set before TensorFlow is
imported, and this process already runs Keras 3: the work happens in a child process
(edgeq/stages/qat_worker.py). This side writes the job, relays progress, maps the child's outcome
to EdgeqErrors, and checks that the result is full-integer like any PTQ int8 variant.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from edgeq import errors
from edgeq.config import PipelineSpec, VariantSpec
from edgeq.errors import ConfigError, QuantizeError
from edgeq.stages.convert import float_ops
from edgeq.stages.quiet import DEBUG_ENV

_DISTS = ("tf-keras", "tensorflow-model-optimization")
_TERM_GRACE_S = 5.0  # TF may take a moment to leave a fit() loop on SIGTERM before it is killed
_KEPT_LINES = 60  # the child's own output shown when it crashes
MARK = "@@edgeq-qat "  # starts the worker's progress lines; everything else on its stdout is TF's own output


def versions() -> dict:
    """The packages QAT depends on, for the stage's cache key."""
    out = {}
    for d in _DISTS:
        try:
            out[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            out[d] = None
    return out


def _check_installed() -> None:
    missing = [d for d, v in versions().items() if v is None]
    if missing:
        raise QuantizeError(
            f"quantization-aware training needs {', '.join(missing)}, which is not installed",
            'pip install "tf-keras>=2.21,<2.22" "tensorflow-model-optimization>=0.8,<0.9"',
        )


def run_qat(
    spec: PipelineSpec,
    base: Path,
    variant: VariantSpec,
    model_path: Path,
    out_dir: Path,
    log: Callable[[str], None],
    saved_model: bool = False,
) -> dict:
    """Write out_dir/model.tflite (int8, from QAT) and return the stage's metrics."""
    if saved_model or spec.train.qat is None:
        raise ConfigError(
            f"variant {variant.key}: quantization-aware training needs a Keras model and train.qat "
            f"({'model.path is a SavedModel directory' if saved_model else 'train.qat is not set'})",
            "give model.builtin, a .keras file or a factory, and set train.qat.epochs",
        )
    _check_installed()
    job_file, result_file = out_dir / "qat-job.json", out_dir / "qat-result.json"
    job = {
        "spec": spec.model_dump(mode="json", by_alias=True, exclude_unset=True),
        "variant": variant.model_dump(mode="json", exclude_unset=True),
        "base": str(base),
        "model_path": str(model_path),
        "out_dir": str(out_dir),
        "result_file": str(result_file),
        "parent_pid": os.getpid(),
    }
    job_file.write_text(json.dumps(job))
    start = time.perf_counter()
    tail = _run_child([sys.executable, "-m", "edgeq.stages.qat_worker", str(job_file)], log)
    job_file.unlink()
    if not result_file.exists():
        raise QuantizeError(
            f"variant {variant.key}: the QAT process died without a result; its last output:\n" + "\n".join(tail),
            "rerun with --debug to see all of its output",
        )
    result = json.loads(result_file.read_text())
    result_file.unlink()
    if not result.pop("ok"):
        cls = getattr(errors, result.get("error") or "", None)
        if not (isinstance(cls, type) and issubclass(cls, errors.EdgeqError)):
            cls = QuantizeError
        raise cls(f"variant {variant.key}: {result['message']}", result.get("hint"))
    blob = (out_dir / "model.tflite").read_bytes()
    bad = float_ops(blob)
    if bad:
        raise QuantizeError(
            f"variant {variant.key}: op(s) {', '.join(bad)} stayed in float after QAT: the model is not full-integer",
            "replace those ops (they have no integer kernel), or use a 'dynamic' or 'float16' variant",
        )
    return {
        "variant": variant.key,
        "type": variant.type,
        "qat": True,
        "size_bytes": len(blob),
        "calibration_samples": 0,
        "qat_total_seconds": round(time.perf_counter() - start, 3),
        **result,
    }


def _run_child(argv: list[str], log: Callable[[str], None]) -> list[str]:
    """Run the worker, relay its progress lines to log; return its last other lines. Ctrl-C ends it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_USE_LEGACY_KERAS": "1"}
    debug = bool(os.environ.get(DEBUG_ENV))
    tail: collections.deque[str] = collections.deque(maxlen=_KEPT_LINES)
    # its own session: a terminal's Ctrl-C reaches only edgeq, which then stops the child itself
    # (the worker also exits on its own if edgeq dies and it is re-parented)
    proc = subprocess.Popen(  # noqa: S603 - our own module, no shell
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env=env,
        start_new_session=True,
    )
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            if line.startswith(MARK):
                log(line[len(MARK) :])
            else:
                tail.append(line)
                if debug:
                    log(line)
        proc.wait()
    except BaseException:
        _stop(proc)
        raise
    finally:
        proc.stdout.close()
    return list(tail)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(_TERM_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
