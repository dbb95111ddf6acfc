"""Image folders and keras.applications builtins through `edgeq run`, with real TensorFlow and a real interpreter.

Tiny on purpose: a few dozen 32x32 images, 1 epoch, alpha 0.35. The full Fashion-MNIST run is bench/ work.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgeq.config import read_pipeline
from edgeq.testing.common import REPO, assert_clean_error
from edgeq.tools.fashion_mnist_images import write_tree

SHIPPED = REPO / "pipelines" / "fashion-mnist-mobilenetv2.yaml"
HAVE_FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists()
needs_fashion = pytest.mark.skipif(not HAVE_FASHION, reason="apt-get install dataset-fashion-mnist")


@pytest.fixture(scope="module")
def tiny_tree(tmp_path_factory) -> Path:
    """Fashion-MNIST as an image folder, 4 images per class and split (40 train, 40 test PNGs)."""
    if not HAVE_FASHION:
        pytest.skip("apt-get install dataset-fashion-mnist")
    out = tmp_path_factory.mktemp("fm") / "fashion-mnist-images"
    assert write_tree(out, per_class=4) == {"train": 40, "test": 40}
    return out


def _shipped_with(tmp_path: Path, **sections) -> Path:
    doc = yaml.safe_load(SHIPPED.read_text())
    for k, v in sections.items():
        doc[k] = {**doc.get(k, {}), **v} if isinstance(v, dict) else v
    p = tmp_path / "pipe.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


def _tiny(tree: Path) -> dict:
    return {
        "data": {"path": str(tree), "image_size": [32, 32], "validation_split": 0.25},
        "train": {"epochs": 1, "batch_size": 16, "early_stopping": None},
        "quantize": {"variants": [{"type": "fp32"}, {"type": "int8", "calibration_samples": 20, "io": "int8"}]},
        "validate": {"gates": {}},  # 1 epoch on 30 images: accuracy is chance, the flow is what is tested
    }


def test_shipped_pipeline_validates_and_a_missing_tree_says_how_to_write_it(edgeq, tmp_path):
    spec = read_pipeline(SHIPPED).spec
    assert (spec.data.source, spec.data.image_size, spec.data.color, spec.data.preprocess) == (
        "images",
        [96, 96],
        "rgb",
        "mobilenet",
    )
    assert (spec.model.builtin, spec.model.alpha) == ("mobilenet_v2", 0.35)
    assert [v.type for v in spec.quantize.variants] == ["fp32", "int8"]
    (tmp_path / "pipelines").mkdir()
    shutil.copy(SHIPPED, tmp_path / "pipelines" / SHIPPED.name)  # its ../data/fashion-mnist-images does not exist here
    r = edgeq("run", tmp_path / "pipelines" / SHIPPED.name)
    assert_clean_error(r, 4, "image folder not found", "fashion-mnist-images", "python3 -m edgeq.tools.fashion_mnist_images")


@pytest.mark.slow  # ~100 s on a loaded 2-core machine: MobileNetV2's graph tracing and conversion, not the data
def test_tiny_fashion_mobilenetv2_end_to_end(edgeq, tmp_path, tiny_tree, home):
    p = _shipped_with(tmp_path, **_tiny(tiny_tree))
    r = edgeq("run", p, "--json")
    assert r.code == 0, r.stderr
    doc = r.json()
    assert doc["status"] == "ok" and doc["inputs"]["data"]["files"] == 80
    v = doc["variants"]
    assert v["fp32"]["test_samples"] == 40 and v["int8"]["test_samples"] == 40
    assert v["int8"]["size_bytes"] < 0.6 * v["fp32"]["size_bytes"]
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=v["int8"]["artifact"])
    inp = it.get_input_details()[0]
    assert inp["dtype"] == np.int8 and tuple(inp["shape"]) == (1, 32, 32, 3)
    assert len(list((home / "cache" / "images").iterdir())) == 1  # decoded once, kept
    again = edgeq("run", p, "--json")
    assert again.code == 0, again.stderr
    assert again.json()["stages"]["train"]["cached"] is True


@pytest.mark.slow  # two fit phases of MobileNetV2: each traces its graph
def test_local_weights_freeze_then_fine_tune(edgeq, tmp_path, tiny_tree):
    import keras

    base = keras.applications.MobileNetV2(alpha=0.35, include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg")
    base.save_weights(tmp_path / "base.weights.h5")
    other = keras.applications.MobileNetV2(alpha=0.5, include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg")
    other.save_weights(tmp_path / "alpha05.weights.h5")
    tiny = _tiny(tiny_tree)
    tiny["data"]["validation_split"] = 0.0
    tiny["quantize"] = {"variants": [{"type": "fp32"}]}  # the int8 path is the end-to-end test's
    model = {"weights": "base.weights.h5", "freeze_base": True}
    tiny["train"] |= {"fine_tune_epochs": 1, "fine_tune_lr": 1e-4}
    p = _shipped_with(tmp_path, **tiny, model=model)
    r = edgeq("run", p, "--json")
    assert r.code == 0, r.stderr
    doc = r.json()
    assert doc["stages"]["train"]["epochs_run"] == 2 and "fine-tune epoch 1/1" in r.stderr
    assert doc["inputs"]["model"]["weights_sha256"]
    trained = keras.models.load_model(doc["stages"]["train"]["output"])
    nested = [layer for layer in trained.layers if isinstance(layer, keras.Model)][0]
    first = next(w for w in nested.weights if "kernel" in w.path)
    assert not np.allclose(first.numpy(), next(w for w in base.weights if "kernel" in w.path).numpy())  # fine-tuned

    tiny["train"]["fine_tune_epochs"] = 0
    p = _shipped_with(tmp_path, **tiny, model={**model, "weights": "alpha05.weights.h5"})
    assert_clean_error(edgeq("run", p), 5, "alpha05.weights.h5 does not fit", "same family, alpha and input channels")
    p = _shipped_with(tmp_path, **tiny, model={**model, "weights": "nowhere.weights.h5"})
    assert_clean_error(edgeq("run", p), 5, "model.weights file not found", "downloads nothing")


@pytest.mark.parametrize(
    "sections, needles",
    [
        ({"train": {"fine_tune_epochs": 2}}, ["pipe.yaml:", "fine_tune_epochs needs model.freeze_base"]),
        ({"model": {"freeze_base": True}}, ["pipe.yaml:", "freeze_base needs model.weights"]),
        ({"model": {"builtin": "efficientnet_b0"}}, ["pipe.yaml:", "alpha applies to the MobileNet builtins only"]),
        ({"model": {"builtin": "cnn", "alpha": None}}, ["pipe.yaml:", "applies to builtin"]),
        ({"model": {"builtin": "cnn", "alpha": None, "bn_momentum": None}}, ["pipe.yaml:", "bn_momentum applies to builtin"]),
        ({"model": {"bn_momentum": 1.0}}, ["pipe.yaml:", "model.bn_momentum"]),
        ({"train": {"lr_schedule": "linear"}}, ["pipe.yaml:", "train.lr_schedule", "cosine"]),
        ({"data": {"image_size": None}}, ["pipe.yaml:", "image_size"]),
        ({"data": {"color": "sepia"}}, ["pipe.yaml:", "data.color"]),
    ],
)
def test_config_errors_name_file_line_and_key(edgeq, tmp_path, sections, needles):
    p = _shipped_with(tmp_path, **sections)
    assert_clean_error(edgeq("run", p), 3, *needles)


@needs_fashion
def test_corrupt_image_exits_4_naming_the_file(edgeq, tmp_path):
    tree = tmp_path / "fashion-mnist-images"
    write_tree(tree, per_class=2)
    bad = sorted((tree / "test" / "3_dress").iterdir())[0]
    bad.write_bytes(bad.read_bytes()[:30])
    p = _shipped_with(tmp_path, **_tiny(tree))
    assert_clean_error(edgeq("run", p), 4, f"{bad}: cannot decode image", "replace or remove it")


@pytest.mark.parametrize("builtin", ["mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0"])
def test_every_application_builds_offline(builtin, tmp_path):
    from edgeq.config import ModelSpec
    from edgeq.data import zoo

    kw = {} if builtin == "efficientnet_b0" else {"alpha": 0.75 if "v3" in builtin else 0.35}
    m = zoo.build(ModelSpec(builtin=builtin, input_size=[48, 48], **kw), tmp_path, (32, 32, 1), 7)
    assert m.input_shape == (None, 32, 32, 1) and m.output_shape == (None, 7)  # a Resizing layer feeds 48x48
    assert m.predict(np.zeros((2, 32, 32, 1), np.float32), verbose=0).shape == (2, 7)


def test_freeze_base_loads_the_file_and_trains_only_the_head(tmp_path):
    import keras

    from edgeq.config import ModelSpec
    from edgeq.data import zoo

    src = keras.applications.MobileNetV2(alpha=0.35, include_top=False, weights=None, input_shape=(32, 32, 1), pooling="avg")
    src.save(tmp_path / "base.keras")
    spec = ModelSpec(builtin="mobilenet_v2", alpha=0.35, weights="base.keras", freeze_base=True)
    m = zoo.build(spec, tmp_path, (32, 32, 1), 5)
    assert [w.path.split("/")[-1] for w in m.trainable_weights] == ["kernel", "bias"]  # the Dense head only
    nested = next(layer for layer in m.layers if isinstance(layer, keras.Model))
    assert all(np.array_equal(a, b) for a, b in zip(nested.get_weights(), src.get_weights(), strict=True))


def test_bn_momentum_sets_how_fast_the_base_moving_statistics_follow_the_data(tmp_path):
    """Keras's 0.999 moves a BatchNorm moving mean 0.1% of the way per step: after a short run from random
    weights the statistics used at inference are still the initial ones (chance accuracy). bn_momentum: 0.5
    moves them 50% of the way: one training step must move them ~500x further."""
    import keras

    from edgeq.config import ModelSpec
    from edgeq.data import zoo

    x = np.random.default_rng(0).normal(3.0, 1.0, (16, 32, 32, 3)).astype(np.float32)
    y = np.arange(16) % 4
    moved = {}
    for momentum in (None, 0.5):
        keras.utils.set_random_seed(0)
        m = zoo.build(ModelSpec(builtin="mobilenet_v2", alpha=0.35, bn_momentum=momentum), tmp_path, (32, 32, 3), 4)
        base = next(layer for layer in m.layers if isinstance(layer, keras.Model))
        bn = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
        assert {layer.momentum for layer in bn} == {0.999 if momentum is None else 0.5}
        m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        m.fit(x, y, batch_size=16, epochs=1, verbose=0)
        moved[momentum] = float(np.abs(bn[0].moving_mean.numpy()).mean())
    assert moved[0.5] > 100 * moved[None] > 0


def test_cosine_schedule_decays_to_one_percent_over_the_run():
    from edgeq.stages.train import _rate

    assert _rate(0.002, "constant", 1000) == 0.002
    cos = _rate(0.002, "cosine", 1000)
    assert float(cos(0)) == pytest.approx(0.002)
    assert float(cos(500)) == pytest.approx(0.002 * (0.01 + 0.99 * 0.5), rel=1e-4)
    assert float(cos(1000)) == pytest.approx(0.002 * 0.01, rel=1e-4)
