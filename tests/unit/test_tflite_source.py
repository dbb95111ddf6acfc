"""model.tflite config rules and the LiteRT quantizer's recipes (pure logic; the quantizer itself runs in
tests/func/test_from_tflite.py)."""

from __future__ import annotations

import pytest

from edgeq.config import ModelSpec, VariantSpec, read_pipeline
from edgeq.data import zoo
from edgeq.errors import ConfigError, ModelError
from edgeq.stages.litert import recipe

BASE = "name: t\nmodel:\n  tflite: m.tflite\n"


def _read(tmp_path, text: str):
    f = tmp_path / "p.yaml"
    f.write_text(text)
    return read_pipeline(f)


def test_tflite_source_reads_with_the_quantizer_variants(tmp_path):
    text = (
        BASE
        + "quantize:\n  variants:\n"
        + "".join(f"    - type: {t}\n" for t in ("fp32", "int8", "int16x8", "dynamic", "weight_only"))
    )
    spec = _read(tmp_path, text + "train:\n  epochs: 0\n").spec
    assert spec.model.tflite == "m.tflite" and len(spec.quantize.variants) == 5


@pytest.mark.parametrize(
    ("extra", "line", "needle"),
    [
        ("train:\n  epochs: 3\n", 5, "train.epochs does not apply"),
        ("quantize:\n  variants:\n    - type: fp32\n    - type: float16\n", 7, "variant type 'float16' cannot be made"),
        ("quantize:\n  variants:\n    - type: int8\n      io: float\n", 7, "io is a TFLiteConverter option"),
        ("quantize:\n  variants:\n    - type: int8\n      calibration_method: mse\n", 7, "calibration_method is a"),
        ("quantize:\n  variants:\n    - type: fp32\n    - type: int8\n      accuracy_budget: 0.01\n", 8, "accuracy_budget"),
    ],
)
def test_converter_only_keys_are_refused_at_their_line(tmp_path, extra, line, needle):
    with pytest.raises(ConfigError) as e:
        _read(tmp_path, BASE + extra)
    assert f"p.yaml:{line}:" in e.value.message and needle in e.value.message, e.value.message


def test_one_model_source_only(tmp_path):
    with pytest.raises(ConfigError, match=r"exactly one of model.builtin, model.path, model.factory, model.tflite"):
        _read(tmp_path, BASE + "  builtin: mlp\n")


def test_recipes_follow_the_variant():
    cfg = {t: recipe(VariantSpec(type=t))[0]["op_config"] for t in ("int8", "int16x8", "dynamic", "weight_only")}
    assert cfg["int8"]["activation_tensor_config"]["num_bits"] == 8 and not cfg["int8"]["activation_tensor_config"]["symmetric"]
    assert cfg["int16x8"]["activation_tensor_config"] == {
        "num_bits": 16,
        "symmetric": True,
        "granularity": "TENSORWISE",
        "dtype": "INT",
    }
    assert "activation_tensor_config" not in cfg["dynamic"] and cfg["dynamic"]["compute_precision"] == "INTEGER"
    assert cfg["weight_only"]["compute_precision"] == "FLOAT" and cfg["weight_only"]["explicit_dequantize"]
    per_tensor = recipe(VariantSpec(type="int8", per_channel=False))[0]["op_config"]["weight_tensor_config"]
    assert per_tensor["granularity"] == "TENSORWISE"


def test_tflite_file_is_checked_before_anything_reads_it(tmp_path):
    spec = ModelSpec(tflite="m.tflite")
    with pytest.raises(ModelError, match="model.tflite file not found") as e:
        zoo.tflite_file(spec, tmp_path)
    assert "edgeq.tools.float_tflite" in (e.value.hint or "")
    (tmp_path / "m.tflite").write_bytes(b"PK\x03\x04 not a flatbuffer")
    with pytest.raises(ModelError, match="not a TFLite flatbuffer"):
        zoo.tflite_file(spec, tmp_path)
    (tmp_path / "m.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(20))
    assert zoo.tflite_file(spec, tmp_path) == tmp_path / "m.tflite"
    assert zoo.fingerprint(spec, tmp_path)["sha256"]


def test_shipped_from_tflite_pipeline_reads_and_names_the_tool():
    from edgeq.testing.common import REPO

    p = REPO / "pipelines" / "from-tflite.yaml"
    spec = read_pipeline(p).spec
    assert spec.model.tflite == "../data/fashion-mnist-cnn-float.tflite"
    assert [v.type for v in spec.quantize.variants] == ["fp32", "int8", "dynamic", "weight_only"]
    assert (
        "python3 -m edgeq.tools.float_tflite pipelines/fashion-mnist-cnn.yaml data/fashion-mnist-cnn-float.tflite"
        in p.read_text()
    )
