"""The edgetpu variant: real int8 conversion by TF 2.21, the real compatibility check, and edgetpu_compiler.

edgetpu_compiler itself cannot be installed here (x86-64 only, from Coral's own apt repository), so the
compiler path runs against a FAKE of that external binary: a small script named edgetpu_compiler put on
PATH that behaves like the real CLI (`--out_dir DIR MODEL` writes DIR/<name>_edgetpu.tflite, prints the
version and the on-TPU/on-CPU op counts). It copies its input instead of compiling. Everything else —
the conversion, the check naming the first offending op, the pipeline and CLI — is real.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeq.config import VariantSpec
from edgeq.errors import QuantizeError
from edgeq.inspect import edgetpu_compatibility
from edgeq.stages import edgetpu
from edgeq.testing.common import assert_clean_error

QUANTIZE = 6

FAKE = r'''#!{python}
"""FAKE edgetpu_compiler for tests (mimics the CLI of Coral's Edge TPU Compiler 16; copies instead of compiling)."""
import os, shutil, sys, time
args = sys.argv[1:]
if os.environ.get("FAKE_EDGETPU_LOG"):
    with open(os.environ["FAKE_EDGETPU_LOG"], "a") as f:
        f.write(" ".join(args) + "\n")
print("Edge TPU Compiler version 16.0.384591198")
if "--version" in args:
    sys.exit(0)
mode = os.environ.get("FAKE_EDGETPU_MODE", "ok")
if mode == "hang":
    time.sleep(60)
if mode == "fail":
    print("ERROR: Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'", file=sys.stderr)
    print("Compilation failed!", file=sys.stderr)
    sys.exit(1)
out = args[args.index("--out_dir") + 1] if "--out_dir" in args else "."
model = [a for a in args if a.endswith(".tflite")][-1]
stem = os.path.splitext(os.path.basename(model))[0]
shutil.copyfile(model, os.path.join(out, stem + "_edgetpu.tflite"))
open(os.path.join(out, stem + "_edgetpu.log"), "w").write("fake log\n")
print("Model compiled successfully in 1 ms.")
print("Number of operations that will run on Edge TPU: 3")
print("Number of operations that will run on CPU: 0")
'''


@pytest.fixture
def fake_compiler(tmp_path, monkeypatch):
    """Put the FAKE edgetpu_compiler first on PATH; returns the file its argv lines are logged to."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "edgetpu_compiler"
    exe.write_text(FAKE.replace("{python}", sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "compiler-argv.log"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_EDGETPU_LOG", str(log))
    monkeypatch.delenv(edgetpu.COMPILER_ENV, raising=False)
    return log


@pytest.fixture
def no_compiler(tmp_path, monkeypatch):
    empty = tmp_path / "emptybin"
    empty.mkdir()
    monkeypatch.setenv("PATH", f"{empty}{os.pathsep}{Path(sys.executable).parent}")
    monkeypatch.delenv(edgetpu.COMPILER_ENV, raising=False)


@pytest.fixture(scope="module")
def keras_models(tmp_path_factory):
    """Saved .keras files: a plain mlp (Edge TPU friendly) and one with LeakyReLU (int8 kernel, not on Coral's list)."""
    from edgeq.stages.quiet import import_tensorflow

    import_tensorflow()
    import keras

    d = tmp_path_factory.mktemp("keras")
    keras.utils.set_random_seed(0)
    mlp = keras.Sequential(
        [
            keras.Input((4, 4, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    leaky = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(8), keras.layers.LeakyReLU(0.1), keras.layers.Dense(3, activation="softmax")]
    )
    mlp.save(d / "mlp.keras")
    leaky.save(d / "leaky.keras")
    return {"mlp": d / "mlp.keras", "leaky": d / "leaky.keras"}


def _load(p):
    import keras

    return keras.saving.load_model(p)


def _calib(shape):
    return np.random.default_rng(0).random((12, *shape), dtype=np.float32)


def test_compiles_a_compatible_model_with_the_compiler_on_path(keras_models, fake_compiler, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    meta = edgetpu.quantize_edgetpu(keras_models["mlp"], VariantSpec(type="edgetpu"), _calib((4, 4, 1)), out, load_model=_load)
    cpu = (out / "model_cpu.tflite").read_bytes()
    assert (out / "model.tflite").read_bytes() == cpu  # the fake copies; the real one rewrites into edgetpu-custom-op
    c = edgetpu_compatibility(cpu)
    assert c.compatible, c.problems
    argv = fake_compiler.read_text().split()
    assert argv[0] == "--show_operations" and argv[1] == "--out_dir" and argv[-1].endswith("model.tflite")
    assert meta.edgetpu is not None and meta.edgetpu["compiler_version"] == "16.0.384591198"
    assert meta.edgetpu["ops_on_edgetpu"] == 3 and meta.edgetpu["ops_on_cpu"] == 0
    assert meta.eval_file == "model_cpu.tflite" and meta.type == "edgetpu"


def test_without_the_compiler_says_where_to_get_it(keras_models, no_compiler, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(QuantizeError) as e:
        edgetpu.quantize_edgetpu(keras_models["mlp"], VariantSpec(type="edgetpu"), _calib((4, 4, 1)), out, load_model=_load)
    assert "compatible" in e.value.message and "edgetpu_compiler is not on PATH" in e.value.message
    for needle in ("packages.cloud.google.com/apt", "coral-edgetpu-stable", "edgetpu-compiler", "x86-64"):
        assert needle in e.value.hint
    assert not list(out.iterdir()), "nothing written when the stage fails"


def test_incompatible_op_is_named_before_the_compiler_runs(keras_models, fake_compiler, tmp_path):
    with pytest.raises(QuantizeError) as e:
        edgetpu.quantize_edgetpu(keras_models["leaky"], VariantSpec(type="edgetpu"), _calib((16,)), tmp_path, load_model=_load)
    assert "first offending op LEAKY_RELU (op #1)" in e.value.message
    assert "edgeq inspect" in e.value.hint
    assert not fake_compiler.exists(), "the compiler must not run on an incompatible model"


def test_float_io_is_not_fully_8_bit(keras_models, fake_compiler, tmp_path):
    with pytest.raises(QuantizeError) as e:
        edgetpu.quantize_edgetpu(
            keras_models["mlp"], VariantSpec(type="edgetpu", io="float"), _calib((4, 4, 1)), tmp_path, load_model=_load
        )
    assert "first offending op QUANTIZE (op #0)" in e.value.message and "float32, not 8-bit" in e.value.message


def test_compiler_failure_and_hang(keras_models, fake_compiler, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_EDGETPU_MODE", "fail")
    with pytest.raises(QuantizeError) as e:
        edgetpu.quantize_edgetpu(keras_models["mlp"], VariantSpec(type="edgetpu"), _calib((4, 4, 1)), tmp_path, load_model=_load)
    assert "edgetpu_compiler failed (exit 1): Compilation failed!" in e.value.message
    monkeypatch.setenv("FAKE_EDGETPU_MODE", "hang")
    with pytest.raises(QuantizeError) as e:
        edgetpu.quantize_edgetpu(
            keras_models["mlp"], VariantSpec(type="edgetpu"), _calib((4, 4, 1)), tmp_path, load_model=_load, timeout=2
        )
    assert "did not finish in 2 s" in e.value.message


@pytest.mark.slow
def test_pipeline_edgetpu_variant_cli(edgeq, write_pipeline, tmp_path, fake_compiler, monkeypatch):
    """`edgeq run` with an edgetpu variant: exit 6 and the install hint without the compiler; with it, the compiled
    artifact and an accuracy measured on the int8 model (train reused from the first run's cache)."""
    p = write_pipeline({"quantize": {"variants": [{"type": "fp32"}, {"type": "edgetpu", "calibration_samples": 50}]}})
    path_without = os.pathsep.join(x for x in os.environ["PATH"].split(os.pathsep) if not Path(x, "edgetpu_compiler").exists())
    r = edgeq("run", p, env={"PATH": path_without})
    assert_clean_error(r, QUANTIZE, "variant edgetpu", "edgetpu_compiler is not on PATH", "coral-edgetpu-stable")
    r = edgeq("run", p, "--json")
    assert r.code == 0, r.stderr
    doc = r.json()
    v = doc["variants"]["edgetpu"]
    assert v["type"] == "edgetpu" and 0.5 < v["accuracy"] <= 1.0
    assert abs(v["accuracy_drop"]) < 0.1
    assert Path(v["artifact"]).exists()
    assert doc["stages"]["train"]["cached"] is True
    q = doc["stages"]["quantize"]["edgetpu"]
    assert q["edgetpu"]["ops_on_edgetpu"] == 3 and q["eval_file"] == "model_cpu.tflite"
    r = edgeq("inspect", v["artifact"], "--json")
    assert r.code == 0 and json.loads(r.stdout)["edgetpu"]["compatible"] is True
