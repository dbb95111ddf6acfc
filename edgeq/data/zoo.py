"""Builtin Keras models and loading a user's own (.keras file, SavedModel dir, module:function)."""

from __future__ import annotations

import hashlib
import importlib
import sys
from pathlib import Path

from edgeq.config import ModelSpec
from edgeq.config.pipeline import APPLICATIONS
from edgeq.errors import ModelError
from edgeq.hashing import file_sha256

WEIGHT_SUFFIXES = (".weights.h5", ".h5", ".keras")


def _resolve(p: str, base: Path) -> Path:
    path = Path(p).expanduser()
    return path if path.is_absolute() else base / path


def fingerprint(spec: ModelSpec, base: Path) -> dict:
    """What identifies the model's definition, for the stage cache: a user's file content counts."""
    if spec.builtin:
        if spec.weights:
            w = weights_file(spec, base)
            return {"builtin": spec.builtin, "weights": str(w), "weights_sha256": file_sha256(w)}
        return {"builtin": spec.builtin}
    if spec.tflite:
        p = tflite_file(spec, base)
        return {"tflite": str(p), "sha256": file_sha256(p)}
    if spec.torch:
        if spec.torch.endswith(".pt2"):
            p = torch_export_file(spec, base)
            return {"torch": str(p), "sha256": file_sha256(p)}
        return {"torch": spec.torch, "sha256": _module_sha256(spec.torch, base, "model.torch")}
    if spec.path:
        p = _resolve(spec.path, base)
        if not p.exists():
            raise ModelError(f"model file not found: {p}", "check model.path in the pipeline YAML")
        h = hashlib.sha256()
        files = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
        for f in files:
            h.update(str(f.relative_to(p) if p.is_dir() else f.name).encode())
            h.update(f.read_bytes())
        return {"path": str(p), "sha256": h.hexdigest()}
    return {"factory": spec.factory, "sha256": _module_sha256(spec.factory or "", base, "model.factory")}


def _module_sha256(factory: str, base: Path, key: str) -> str:
    """The content of a factory's module file: editing the model's code changes the stage cache key."""
    module = factory.split(":")[0]
    spec_ = _find_module(module, base)
    if spec_ is None or not spec_.origin or not Path(spec_.origin).exists():
        raise ModelError(
            f"{key} {factory!r}: module {module!r} not found",
            f"put {module.replace('.', '/')}.py next to the pipeline YAML or on PYTHONPATH",
        )
    return hashlib.sha256(Path(spec_.origin).read_bytes()).hexdigest()


def torch_export_file(spec: ModelSpec, base: Path) -> Path:
    p = _resolve(spec.torch or "", base)
    if not p.is_file():
        raise ModelError(
            f"model.torch file not found: {p}",
            "check model.torch in the pipeline YAML (relative paths start at the YAML's folder); "
            "write one with torch.export.save(torch.export.export(model.eval(), (sample,)), 'model.pt2')",
        )
    return p


def _find_module(module: str, base: Path):
    sys.path.insert(0, str(base))
    try:
        return importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    finally:
        sys.path.remove(str(base))


def build(spec: ModelSpec, base: Path, input_shape: tuple, num_classes: int):
    """Return an uncompiled-or-compiled Keras model. TensorFlow is imported here, not at import time."""
    import keras

    if spec.builtin == "mlp":
        layers = [keras.Input(shape=input_shape), keras.layers.Flatten()]
        for units in spec.hidden:
            layers.append(keras.layers.Dense(units, activation="relu"))
            if spec.dropout:
                layers.append(keras.layers.Dropout(spec.dropout))
        layers.append(keras.layers.Dense(num_classes, activation="softmax"))
        return keras.Sequential(layers, name="mlp")
    if spec.builtin == "cnn":
        shape = input_shape if len(input_shape) == 3 else (*input_shape, 1)
        layers = [keras.Input(shape=shape)]
        for f in spec.filters:
            layers += [
                keras.layers.Conv2D(f, spec.kernel_size, padding="same", activation="relu"),
                keras.layers.MaxPooling2D(2) if min(shape[:2]) >= 8 else keras.layers.Identity(),
            ]
            shape = (max(1, shape[0] // 2), max(1, shape[1] // 2), f)
        layers += [keras.layers.Flatten(), keras.layers.Dense(spec.dense, activation="relu")]
        if spec.dropout:
            layers.append(keras.layers.Dropout(spec.dropout))
        layers.append(keras.layers.Dense(num_classes, activation="softmax"))
        return keras.Sequential(layers, name="cnn")
    if spec.builtin in APPLICATIONS:
        return _application(spec, base, input_shape, num_classes)
    if spec.path:
        return _load_file(_resolve(spec.path, base))
    return _from_factory(spec.factory, base, input_shape, num_classes)


def weights_file(spec: ModelSpec, base: Path) -> Path:
    p = _resolve(spec.weights or "", base)
    if not p.name.endswith(WEIGHT_SUFFIXES):
        raise ModelError(
            f"model.weights {p}: not a Keras weights file ({' / '.join(WEIGHT_SUFFIXES)})",
            "save the base network with base.save_weights('base.weights.h5') or base.save('base.keras')",
        )
    if not p.is_file():
        raise ModelError(
            f"model.weights file not found: {p}",
            "edgeq downloads nothing: copy the base's weights file there, or remove model.weights (random init)",
        )
    return p


def _base_network(spec: ModelSpec, shape: tuple):
    import keras

    common = {"include_top": False, "weights": None, "input_shape": shape, "pooling": "avg"}
    alpha = 1.0 if spec.alpha is None else spec.alpha
    if spec.builtin == "mobilenet_v2":
        return keras.applications.MobileNetV2(alpha=alpha, **common)
    if spec.builtin == "efficientnet_b0":
        return keras.applications.EfficientNetB0(**common)  # expects 0..255: it rescales inside (preprocess: efficientnet)
    # include_preprocessing=False: inputs in [-1, 1] (preprocess: mobilenet), like MobileNetV2
    v3 = keras.applications.MobileNetV3Small if spec.builtin == "mobilenet_v3_small" else keras.applications.MobileNetV3Large
    return v3(alpha=alpha, include_preprocessing=False, **common)


def _application(spec: ModelSpec, base: Path, input_shape: tuple, num_classes: int):
    """A keras.applications base (built offline, weights from a local file or random), pooled, then
    Dropout and a softmax Dense. With freeze_base the base runs in inference mode (training=False), so
    its BatchNorm statistics stay those of the weights file through fine-tuning too (Keras's recipe)."""
    import keras

    if len(input_shape) != 3:
        raise ModelError(
            f"{spec.builtin} needs image inputs [height, width, channels]; the data's shape is {input_shape}",
            "use data.source: images (or idx images)",
        )
    h, w = (spec.input_size[0], spec.input_size[1]) if spec.input_size else input_shape[:2]
    try:
        net = _base_network(spec, (h, w, input_shape[2]))
    except ValueError as e:
        raise ModelError(f"cannot build {spec.builtin}: {e}", "check model.input_size and model.alpha") from None
    if spec.weights:
        _load_base_weights(net, weights_file(spec, base))
    if spec.bn_momentum is not None:
        for layer in net.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = spec.bn_momentum
    net.trainable = not spec.freeze_base
    inputs = keras.Input(shape=input_shape)
    x = inputs if (h, w) == tuple(input_shape[:2]) else keras.layers.Resizing(h, w)(inputs)
    x = net(x, training=False) if spec.freeze_base else net(x)
    if spec.dropout:
        x = keras.layers.Dropout(spec.dropout)(x)
    outputs = keras.layers.Dense(spec.classes or num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name=f"{spec.builtin}_classifier")


def _load_base_weights(net, path: Path) -> None:
    """Weights of the base network alone (a .weights.h5 / legacy .h5 of include_top=False), or a .keras
    model that is the base or holds it as its one nested model (a classifier built like ours)."""
    import keras

    hint = (
        f"the file must hold {net.name}'s weights: same family, alpha and input channels, without its "
        "classification top (include_top=False)"
    )
    try:
        if path.name.endswith(".keras"):
            src = keras.models.load_model(path, compile=False)
            nested = [layer for layer in src.layers if isinstance(layer, keras.Model)]
            src = nested[0] if len(nested) == 1 else src
            net.set_weights(src.get_weights())
        else:
            net.load_weights(path)
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else ""
        raise ModelError(f"model.weights {path} does not fit {net.name}: {type(e).__name__}: {msg[:300]}", hint) from None


def tflite_file(spec: ModelSpec, base: Path) -> Path:
    """model.tflite, resolved against the pipeline's folder: a file that starts like a TFLite flatbuffer."""
    p = _resolve(spec.tflite or "", base)
    if not p.is_file():
        raise ModelError(
            f"model.tflite file not found: {p}",
            "check model.tflite in the pipeline YAML (relative paths start at the YAML's folder); "
            "python3 -m edgeq.tools.float_tflite writes one from a pipeline",
        )
    with p.open("rb") as f:
        head = f.read(8)
    if head[4:8] != b"TFL3":  # the flatbuffer's file identifier
        raise ModelError(f"model.tflite {p}: not a TFLite flatbuffer (no TFL3 identifier)", "give a .tflite file")
    return p


def is_saved_model(spec: ModelSpec, base: Path) -> bool:
    return bool(spec.path) and _resolve(spec.path, base).is_dir()


def saved_model_dir(spec: ModelSpec, base: Path) -> Path:
    p = _resolve(spec.path, base)
    if not (p / "saved_model.pb").exists():
        raise ModelError(
            f"{p}: not a SavedModel directory (no saved_model.pb)", "export it with model.export(DIR) or tf.saved_model.save"
        )
    return p


def _load_file(p: Path):
    import keras

    if not p.exists():
        raise ModelError(f"model file not found: {p}", "check model.path in the pipeline YAML")
    try:
        return keras.models.load_model(p)
    except ModelError:
        raise
    except Exception as e:
        raise ModelError(
            f"cannot load model {p}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
            "save it with model.save('model.keras') from Keras 3",
        ) from None


def _from_factory(factory: str, base: Path, input_shape: tuple, num_classes: int):
    model = call_factory(factory, base, input_shape, num_classes, "model.factory")
    import keras

    if not isinstance(model, keras.Model):
        raise ModelError(f"model.factory {factory!r} returned {type(model).__name__}, not a keras.Model", "return a Keras model")
    return model


def call_factory(factory: str, base: Path, input_shape: tuple, num_classes: int, key: str):
    """Import "module:function" (the pipeline's folder first on sys.path) and call it with input_shape and
    num_classes when it takes them; what it returns is the caller's to check."""
    import inspect

    module, func = factory.split(":")
    sys.path.insert(0, str(base))
    try:
        mod = importlib.import_module(module)
    except Exception as e:
        raise ModelError(
            f"{key} {factory!r}: cannot import {module!r}: {type(e).__name__}: {e}",
            f"check that {module.replace('.', '/')}.py exists next to the pipeline YAML or on PYTHONPATH and imports cleanly",
        ) from None
    finally:
        if str(base) in sys.path:
            sys.path.remove(str(base))
    fn = getattr(mod, func, None)
    if not callable(fn):
        raise ModelError(f"{key} {factory!r}: {module} has no function {func!r}", "check the function name")
    try:
        params = inspect.signature(fn).parameters
        kwargs = {k: v for k, v in (("input_shape", input_shape), ("num_classes", num_classes)) if k in params}
        return fn(**kwargs)
    except Exception as e:
        raise ModelError(f"{key} {factory!r} raised {type(e).__name__}: {e}", "fix the factory function") from None


def load_trained(model_path: Path, spec: ModelSpec, base: Path):
    """Load a trained .keras model; a factory's custom layers are found in the factory's module."""
    import keras

    custom = {}
    if spec.factory:
        sys.path.insert(0, str(base))
        try:
            mod = importlib.import_module(spec.factory.split(":")[0])
        except Exception as e:
            raise ModelError(
                f"model.factory {spec.factory!r}: cannot import: {type(e).__name__}: {e}", "check the factory module"
            ) from None
        finally:
            if str(base) in sys.path:
                sys.path.remove(str(base))
        custom = {n: o for n, o in vars(mod).items() if isinstance(o, type) and issubclass(o, keras.layers.Layer)}
    try:
        return keras.models.load_model(model_path, custom_objects=custom)
    except Exception as e:
        raise ModelError(
            f"cannot reload the trained model {model_path}: {type(e).__name__}: {str(e)[:300]}",
            "custom layers must be defined in the factory module (or registered with keras.saving.register_keras_serializable)",
        ) from None
