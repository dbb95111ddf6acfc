"""edgeq inspect on real models made by the TF 2.21 converter, cross-checked against a real TFLite interpreter;
Edge TPU compatibility on real models; bad files get exit 5 (MODEL) and no traceback."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import numpy as np
import pytest

from edgeq.config import VariantSpec
from edgeq.errors import ModelError
from edgeq.inspect import edgetpu_compatibility, inspect_model
from edgeq.testing.common import REPO, assert_clean_error

MODEL = 5


def _keras():
    from edgeq.stages.quiet import import_tensorflow

    tf = import_tensorflow()
    import keras

    return tf, keras


def _calib(shape, n=16):
    return np.random.default_rng(0).random((n, *shape), dtype=np.float32)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny Keras models converted by edgeq's own converter (and one by TF's with float fallback)."""
    from edgeq.stages.edgetpu import static_batch
    from edgeq.stages.quantize import convert

    tf, keras = _keras()
    d = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(0)
    mlp = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(12, activation="relu"), keras.layers.Dense(4, activation="softmax")]
    )
    cnn = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(5, activation="softmax"),
        ]
    )
    inp = keras.Input(batch_shape=(1, 16))
    # 5-D tensors with two outer dimensions larger than 1, joined by an op the converter cannot fold away
    a = keras.layers.Reshape((2, 2, 2, 4))(keras.layers.Dense(32)(inp))
    b = keras.layers.Reshape((2, 2, 2, 4))(keras.layers.Dense(32)(inp))
    x = keras.layers.Reshape((64,))(keras.layers.Concatenate(axis=2)([a, b]))
    five_d = keras.Model(inp, keras.layers.Dense(4)(x))
    out = {}

    def save(name, blob):
        (d / f"{name}.tflite").write_bytes(blob)
        out[name] = d / f"{name}.tflite"

    save("mlp_fp32", convert(mlp, VariantSpec(type="fp32"), None))
    save("mlp_int8", convert(mlp, VariantSpec(type="int8"), _calib((16,))))
    save("mlp_int8_static", convert(static_batch(mlp), VariantSpec(type="int8"), _calib((16,))))
    save("cnn_int8_static", convert(static_batch(cnn), VariantSpec(type="int8"), _calib((8, 8, 1))))
    save("cnn_int8_per_tensor", convert(static_batch(cnn), VariantSpec(type="int8", per_channel=False), _calib((8, 8, 1))))
    save("five_d_int8", convert(five_d, VariantSpec(type="int8"), _calib((16,))))

    # SIN has no int8 kernel: TF's converter (not edgeq's, which refuses it) leaves a float island
    sin_in = keras.Input(batch_shape=(1, 16))
    sin = keras.Model(sin_in, keras.layers.Dense(4)(keras.layers.Lambda(lambda t: tf.sin(t))(keras.layers.Dense(8)(sin_in))))
    conv = tf.lite.TFLiteConverter.from_keras_model(sin)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    calib = _calib((16,))
    conv.representative_dataset = lambda: ([calib[i : i + 1]] for i in range(len(calib)))
    save("sin_mixed", conv.convert())
    return out


def _interp(path):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(path))


@pytest.mark.parametrize("name", ["mlp_fp32", "mlp_int8", "cnn_int8_static", "cnn_int8_per_tensor", "sin_mixed"])
def test_report_matches_the_interpreter(models, name):
    """Ops, tensors, dtypes, shapes and every scale/zero point agree with what the TFLite runtime loads."""
    r = inspect_model(models[name])
    it = _interp(models[name])
    sg = r.subgraphs[0]
    rt_ops = it._get_ops_details()  # noqa: SLF001
    assert [op.op for op in sg.ops] == [op["op_name"] for op in rt_ops]
    counts = {}
    for op in rt_ops:
        counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    assert r.op_counts == counts
    by_name = {t.name: t for t in sg.tensors}
    for d in it.get_tensor_details():
        if not d["name"]:
            continue  # the runtime's own scratch tensors
        t = by_name[d["name"]]
        assert t.dtype == np.dtype(d["dtype"]).name
        assert list(t.shape) == list(d["shape"]) and list(t.shape_signature) == list(d["shape_signature"])
        qp = d["quantization_parameters"]
        if len(qp["scales"]):
            q = t.quantization
            np.testing.assert_allclose(q.scale, qp["scales"], rtol=1e-7)
            assert list(q.zero_point) == list(qp["zero_points"])
            assert q.per_channel == (len(qp["scales"]) > 1)
            if q.per_channel:
                assert q.axis == qp["quantized_dimension"]
        else:
            assert t.quantization is None or not t.quantization.scale
    size = r.size
    assert size.weights_bytes + size.graph_bytes + size.metadata_bytes == size.file_bytes


def test_affine_ranges_are_the_int8_grid_mapped_to_reals(models):
    r = inspect_model(models["cnn_int8_static"])
    tensors = r.subgraphs[0].tensors
    per_channel = [t for t in tensors if t.quantization and t.quantization.per_channel and t.dtype == "int8"]
    per_tensor = [t for t in tensors if t.quantization and not t.quantization.per_channel and t.dtype == "int8"]
    assert per_channel and per_tensor
    for t in per_channel + per_tensor:
        q = t.quantization
        assert len(q.range) == q.channels == len(q.scale)
        for (lo, hi), s, z in zip(q.range, q.scale, q.zero_point, strict=False):
            assert lo == pytest.approx(s * (-128 - z)) and hi == pytest.approx(s * (127 - z))
            assert lo <= 0.0 <= hi  # TFLite keeps real 0 exactly representable
    # the input was calibrated on [0, 1): its range must cover it and not much more
    (inp,) = r.io.inputs
    lo, hi = next(t for t in tensors if t.index == inp.index).quantization.range[0]
    assert lo == pytest.approx(0.0, abs=0.01) and 0.9 < hi < 1.1
    # per-tensor conversion: weights have one scale
    r2 = inspect_model(models["cnn_int8_per_tensor"])
    assert not any(t.quantization.per_channel for t in r2.subgraphs[0].tensors if t.quantization)


def test_precision_and_size(models):
    fp32, int8 = inspect_model(models["mlp_fp32"]), inspect_model(models["mlp_int8"])
    assert set(fp32.precision) == {"float"}
    assert set(int8.precision) == {"int8"}, int8.precision
    assert int8.size.weights_by_dtype["int8"] > 0 and "float32" not in int8.size.weights_by_dtype
    # one byte per kernel weight (16x12 + 12x4) against four
    assert int8.size.weights_by_dtype["int8"] == 16 * 12 + 12 * 4
    assert fp32.size.weights_by_dtype["float32"] >= 4 * (16 * 12 + 12 * 4)
    mixed = inspect_model(models["sin_mixed"])
    assert mixed.precision["float"] == {"SIN": 1}
    assert "conversion" in mixed.precision and "int8" in mixed.precision


def test_edgetpu_compatibility_on_real_models(models):
    for name in ("mlp_int8_static", "cnn_int8_static"):
        c = edgetpu_compatibility(models[name])
        assert c.compatible and c.first_offending is None and c.problems == (), (name, c.problems)
    c = edgetpu_compatibility(models["mlp_fp32"])
    assert not c.compatible
    assert c.first_offending.index == 0 and "float32" in c.first_offending.reason
    assert "not 8-bit" in c.first_offending.reason
    c = edgetpu_compatibility(models["mlp_int8"])  # a free batch dimension
    assert not c.compatible and "dynamic shape" in c.first_offending.reason
    c = edgetpu_compatibility(models["five_d_int8"])
    assert c.first_offending.op == "RESHAPE" and "3 innermost" in c.first_offending.reason, c
    assert c.problems[0].check == "rank"
    report = inspect_model(models["sin_mixed"])
    c = edgetpu_compatibility(report)  # a report works as well as a path
    assert not c.compatible
    assert any(p.op == "SIN" and p.check == "op" for p in c.problems)
    assert c.ops_before_first_offending == c.first_offending.index
    assert edgetpu_compatibility(models["sin_mixed"].read_bytes()) == c


def test_inspect_does_not_import_tensorflow(models):
    code = (
        "import sys; from edgeq.inspect import inspect_model; "
        f"r = inspect_model({str(models['cnn_int8_static'])!r}); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'heavy import'; print(len(r.op_counts))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert p.returncode == 0, p.stderr


def test_cli_table_and_json(edgeq, models):
    r = edgeq("inspect", models["cnn_int8_static"], "--channels")
    assert r.code == 0, r.stderr
    for needle in ("CONV_2D", "real range", "per-channel (axis 0)", "weights (int8)", "Edge TPU: compatible", "coral.ai"):
        assert needle in r.stdout, needle
    r = edgeq("inspect", models["five_d_int8"])
    assert r.code == 0 and "first offending op RESHAPE" in r.stdout
    r = edgeq("inspect", models["mlp_fp32"], "--json")
    doc = json.loads(r.stdout)
    assert r.code == 0 and doc["edgetpu"]["compatible"] is False
    assert doc["op_counts"] == {"FULLY_CONNECTED": 2, "SOFTMAX": 1}


# --------------------------------------------------------------------------- bad files


def test_bad_files_exit_5_without_traceback(edgeq, models, tmp_path):
    good = models["cnn_int8_static"].read_bytes()
    cases = {
        "random.tflite": random.Random(0).randbytes(4096),
        "empty.tflite": b"",
        "truncated.tflite": good[: len(good) // 2],
        "wrong_id.tflite": good[:4] + b"XXXX" + good[8:],
        "text.tflite": b"hello, this is not a model\n" * 10,
    }
    expect = {
        "random.tflite": "not a TFLite model",
        "empty.tflite": "too short",
        "truncated.tflite": "truncated or corrupt",
        "wrong_id.tflite": "expected b'TFL3'",
        "text.tflite": "not a TFLite model",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        r = edgeq("inspect", tmp_path / name)
        assert_clean_error(r, MODEL, expect[name], "hint:")
    assert_clean_error(edgeq("inspect", tmp_path / "missing.tflite"), MODEL, "file not found")
    assert_clean_error(edgeq("inspect", tmp_path), MODEL, "is a directory")
    r = edgeq("inspect", tmp_path / "random.tflite", "--json")
    assert r.code == MODEL and json.loads(r.stdout)["exit_code"] == MODEL


def test_every_truncation_and_random_corruption_is_a_model_error(models):
    """The unverified flatbuffer reader never escapes as a raw exception (or spins on a forged length)."""
    good = models["cnn_int8_static"].read_bytes()
    for n in range(len(good)):
        with pytest.raises(ModelError):
            inspect_model(good[:n])
    rng = random.Random(7)
    for _ in range(1500):
        b = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(8, len(b))] = rng.randrange(256)
        try:
            inspect_model(bytes(b))
        except ModelError:
            pass


def test_inspect_adds_measured_time_from_a_stored_profile(edgeq, models, tmp_path):
    """--ops: the latest stored profile of this model (its sha256); --profile RUN: that run's; guesses marked ~."""
    from edgeq.hashing import file_sha256
    from edgeq.results import load_manifest, record_run
    from edgeq.results.opstore import record_profiles
    from edgeq.testing.opsprofiles import profile, row
    from edgeq.testing.promfarm import synthetic_manifest

    model = models["cnn_int8_static"]
    db = tmp_path / "h.db"
    m = synthetic_manifest("r1", devices=("pi5",), variants=("int8",))
    m["variants"]["int8"]["sha256"] = file_sha256(model)
    record_run(load_manifest(m), db)
    ops = json.loads(edgeq("inspect", model, "--json").stdout)["subgraphs"][0]["ops"]
    conv = next(o["index"] for o in ops if o["op"] == "CONV_2D")
    soft = next(o["index"] for o in ops if o["op"] == "SOFTMAX")
    rows = [row(0, "Convolution", "Convolution (NHWC, QC8) IGEMM", 40.0, index=conv)]
    rows.append({**row(0, "SOFTMAX", "SOFTMAX", 5.0, index=soft, exact=True)})
    record_profiles("r1", [profile("int8", rows)], db)
    r = edgeq("inspect", model, "--ops", "--db", db)
    assert r.code == 0, r.stderr
    assert "measured on pi5 (int8, 1 thr, run r1)" in r.stdout and "~40 µs" in r.stdout and "5.0 µs" in r.stdout
    doc = json.loads(edgeq("inspect", model, "--profile", "r1", "--db", db, "--json").stdout)
    times = {t["index"]: t for t in doc["profile"]["ops"]}
    assert times[conv]["mapping"] == "guess" and times[conv]["p50_us"] == 40.0 and times[soft]["mapping"] == "exact"
    assert doc["profile"]["run_id"] == "r1" and doc["profile"]["device"] == "pi5"
    assert "profile" not in json.loads(edgeq("inspect", model, "--json").stdout)  # unchanged without the flags
    other = models["mlp_int8"]
    assert json.loads(edgeq("inspect", other, "--ops", "--db", db, "--json").stdout)["profile"] is None
    r = edgeq("inspect", other, "--profile", "r1", "--db", db)
    assert r.code == 10 and "has no per-op profile of this model" in r.stderr


def test_report_reads_the_worst_layers_by_error_and_by_cost(models, tmp_path):
    """A layer error names its tensor; the artifact says which op writes it; the profile how long that op took."""
    from edgeq.inspect import inspect_model
    from edgeq.report.html import render_stored
    from edgeq.results import load_manifest, query, record_run
    from edgeq.results.opstore import record_profiles
    from edgeq.testing.opsprofiles import profile, row
    from edgeq.testing.promfarm import synthetic_manifest

    model = models["cnn_int8_static"]
    sg = inspect_model(model).to_json()["subgraphs"][0]
    conv = next(o for o in sg["ops"] if o["op"] == "CONV_2D")
    tensor = next(t["name"] for t in sg["tensors"] if t["index"] == conv["outputs"][0])
    m = synthetic_manifest("r1", devices=("pi5",), variants=("fp32", "int8"))
    m["variants"]["int8"]["artifact"] = str(model)
    err = {"op": "CONV_2D", "layer": "conv2d", "tensor": tensor, "scale": 0.1, "zero_point": -128, "rmse_scale": 0.87}
    m["variants"]["int8"]["layer_errors"] = {"samples": 8, "layers": [err], "worst": [{**err, "max_abs_error": 0.25}]}
    path = tmp_path / "run" / "manifest.json"
    path.parent.mkdir()
    path.write_text(json.dumps(m))
    db = tmp_path / "h.db"
    record_run(load_manifest(path), db)
    record_profiles(
        "r1", [profile("int8", [row(0, "Convolution", "Convolution (NHWC, QC8) IGEMM", 40.0, index=conv["index"])])], db
    )
    with query.open_for_reading(db) as h:
        html, _ = render_stored(h, query.load(h, query.resolve(h, "r1"), samples=True))
    assert "Worst int8 layers: quantization error and measured time" in html
    cells = (
        "<td>int8</td><td>pi5 (1 thr)</td><td>conv2d</td><td>CONV_2D</td><td>0.87</td><td>0.25</td>"
        f"<td>{conv['index']}</td><td>~40</td>"
    )
    assert cells in html, html[html.index("Worst int8 layers") :][:1500]
    path.unlink()  # the manifest gone: the report says why there is no table
    with query.open_for_reading(db) as h:
        html, _ = render_stored(h, query.load(h, query.resolve(h, "r1"), samples=True))
    assert "worst layers by error and cost: not shown, the run&#x27;s manifest" in html
