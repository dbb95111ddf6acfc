"""edgetpu variant: the int8 conversion, the Edge TPU compatibility check, then Coral's edgetpu_compiler.

Writes out_dir/model.tflite (the compiler's *_edgetpu.tflite, which runs only with the Edge TPU
delegate) and out_dir/model_cpu.tflite (the same int8 model before compilation: validate measures
accuracy on it, since the Edge TPU computes the same quantized arithmetic and a plain interpreter
cannot run the compiled custom op).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from edgeq.config import VariantSpec
from edgeq.errors import ModelError, QuantizeError
from edgeq.inspect import EdgeTpuVerdict, inspect_model
from edgeq.records.stages import QuantizeOutput
from edgeq.stages.convert import convert
from edgeq.stages.quiet import import_tensorflow

COMPILER = "edgetpu_compiler"
COMPILER_ENV = "EDGEQ_EDGETPU_COMPILER"  # an explicit path wins over PATH
# The compiler arms its own 180 s timer per compilation; ours only catches a hung process.
TIMEOUT_S = 600.0
EVAL_FILE = "model_cpu.tflite"
INSTALL_HINT = (
    "edgetpu_compiler is Coral's closed-source compiler for x86-64 Linux only (Debian/Ubuntu): add Coral's apt "
    "repository 'deb https://packages.cloud.google.com/apt coral-edgetpu-stable main' (key: "
    "https://packages.cloud.google.com/apt/doc/apt-key.gpg), then `apt-get install edgetpu-compiler` "
    "(https://coral.ai/docs/edgetpu/compiler/); or set EDGEQ_EDGETPU_COMPILER to its path"
)


def find_compiler() -> str | None:
    explicit = os.environ.get(COMPILER_ENV)
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which(COMPILER)


def static_batch(model):
    """The Keras model with its batch dimension fixed to 1: the Edge TPU needs static shapes, and a free batch
    also adds SHAPE/STRIDED_SLICE/PACK int32 ops around each Flatten that the TPU cannot run."""
    import keras

    if isinstance(model.inputs, list) and len(model.inputs) > 1:
        inputs = [keras.Input(batch_shape=(1, *t.shape[1:]), dtype=t.dtype) for t in model.inputs]
        return keras.Model(inputs, model(inputs))
    inp = keras.Input(batch_shape=(1, *model.inputs[0].shape[1:]), dtype=model.inputs[0].dtype)
    return keras.Model(inp, model(inp))


def check_compatible(blob: bytes, variant: VariantSpec) -> EdgeTpuVerdict:
    """Raise QuantizeError naming the first offending op when the int8 model cannot go to the Edge TPU."""
    compat = inspect_model(blob).edgetpu
    f = compat.first_offending
    if f is not None:
        more = len(compat.problems) - 1
        raise QuantizeError(
            f"variant {variant.key}: not Edge TPU compatible: first offending op {f.op} (op #{f.index}): "
            f"{f.reason}" + (f" (and {more} more problem(s))" if more > 0 else ""),
            "use only ops from the Edge TPU's supported list, 8-bit int8/uint8 I/O (io: int8 or uint8), static "
            f"shapes; `edgeq inspect` on the variant's int8 model lists every problem ({compat.reference})",
        )
    return compat


def _compile(blob: bytes, variant: VariantSpec, exe: str, timeout: float) -> tuple[bytes, dict]:
    with tempfile.TemporaryDirectory(prefix="edgeq-edgetpu-") as d:
        src = Path(d) / "model.tflite"
        src.write_bytes(blob)
        out = Path(d) / "out"
        out.mkdir()
        argv = [exe, "--show_operations", "--out_dir", str(out), str(src)]
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603 - argv list, no shell
        except subprocess.TimeoutExpired:
            raise QuantizeError(
                f"variant {variant.key}: {exe} did not finish in {timeout:.0f} s",
                "a very large model may need more time; compile model_cpu.tflite by hand",
            ) from None
        except OSError as e:
            raise QuantizeError(f"variant {variant.key}: cannot run {exe}: {e.strerror or e}", INSTALL_HINT) from None
        text = (p.stdout or "") + (p.stderr or "")
        compiled = out / "model_edgetpu.tflite"
        if p.returncode != 0 or not compiled.exists():
            last = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "no output")
            raise QuantizeError(
                f"variant {variant.key}: edgetpu_compiler failed (exit {p.returncode}): {last[:400]}",
                "rerun with --debug, or run edgetpu_compiler -s on the variant's model_cpu.tflite to see each op",
            )
        info = {"compiler": exe, "compiler_output": text[-4000:]}
        for key, pat in (
            ("compiler_version", r"Edge TPU Compiler version ([\w.]+)"),
            ("ops_on_edgetpu", r"operations that will run on Edge TPU:\s*(\d+)"),
            ("ops_on_cpu", r"operations that will run on CPU:\s*(\d+)"),
        ):
            m = re.search(pat, text)
            if m:
                info[key] = int(m.group(1)) if key.startswith("ops_") else m.group(1)
        return compiled.read_bytes(), info


def quantize_edgetpu(
    model_path: Path,
    variant: VariantSpec,
    calib: np.ndarray | None,
    out_dir: Path,
    saved_model: bool = False,
    load_model=None,
    timeout: float = TIMEOUT_S,
) -> QuantizeOutput:
    """int8 conversion (same options as an int8 variant) -> compatibility check -> edgetpu_compiler."""
    start = time.perf_counter()
    if saved_model:
        source = model_path  # its signature fixes the shapes; a free batch is reported by the check below
    else:
        import_tensorflow()
        source = static_batch(load_model(model_path))
    as_int8 = variant.model_copy(update={"type": "int8"})
    blob = convert(source, as_int8, calib, saved_model=saved_model)
    compat = check_compatible(blob, variant)
    exe = find_compiler()
    if exe is None:
        raise QuantizeError(
            f"variant {variant.key}: the int8 model is Edge TPU compatible ({compat.ops_total} ops), "
            f"but {COMPILER} is not on PATH",
            INSTALL_HINT,
        )
    compiled, info = _compile(blob, variant, exe, timeout)
    try:
        after = inspect_model(compiled)
    except ModelError as e:
        raise QuantizeError(
            f"variant {variant.key}: edgetpu_compiler wrote an unreadable model: {e.message}",
            "check the compiler installation (edgetpu_compiler --version)",
        ) from None
    (out_dir / EVAL_FILE).write_bytes(blob)
    (out_dir / "model.tflite").write_bytes(compiled)
    return QuantizeOutput(
        variant=variant.key,
        type=variant.type,
        size_bytes=len(compiled),
        cpu_model_bytes=len(blob),
        eval_file=EVAL_FILE,
        convert_seconds=round(time.perf_counter() - start, 3),
        calibration_samples=int(len(calib)) if calib is not None else 0,
        edgetpu={
            **info,
            "ops_checked": compat.ops_total,
            "compiled_custom_ops": after.op_counts.get("edgetpu-custom-op", 0),
        },
    )
