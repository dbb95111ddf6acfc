"""Builtin Keras models and loading a user's own (.keras file, SavedModel dir, module:function)."""

from __future__ import annotations

import hashlib
import importlib
import sys
from pathlib import Path

from edgeq.config import ModelSpec
from edgeq.errors import ModelError


def _resolve(p: str, base: Path) -> Path:
    path = Path(p).expanduser()
    return path if path.is_absolute() else base / path


def fingerprint(spec: ModelSpec, base: Path) -> dict:
    """What identifies the model's definition, for the stage cache: a user's file content counts."""
    if spec.builtin:
        return {"builtin": spec.builtin}
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
    module = spec.factory.split(":")[0]
    spec_ = _find_module(module, base)
    if spec_ is None or not spec_.origin or not Path(spec_.origin).exists():
        raise ModelError(
            f"model.factory {spec.factory!r}: module {module!r} not found",
            f"put {module.replace('.', '/')}.py next to the pipeline YAML or on PYTHONPATH",
        )
    return {"factory": spec.factory, "sha256": hashlib.sha256(Path(spec_.origin).read_bytes()).hexdigest()}


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
    if spec.path:
        return _load_file(_resolve(spec.path, base))
    return _from_factory(spec.factory, base, input_shape, num_classes)


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
    import inspect

    module, func = factory.split(":")
    sys.path.insert(0, str(base))
    try:
        mod = importlib.import_module(module)
    except Exception as e:
        raise ModelError(
            f"model.factory {factory!r}: cannot import {module!r}: {type(e).__name__}: {e}",
            f"check that {module.replace('.', '/')}.py exists next to the pipeline YAML or on PYTHONPATH and imports cleanly",
        ) from None
    finally:
        if str(base) in sys.path:
            sys.path.remove(str(base))
    fn = getattr(mod, func, None)
    if not callable(fn):
        raise ModelError(f"model.factory {factory!r}: {module} has no function {func!r}", "check the function name")
    try:
        params = inspect.signature(fn).parameters
        kwargs = {k: v for k, v in (("input_shape", input_shape), ("num_classes", num_classes)) if k in params}
        model = fn(**kwargs)
    except Exception as e:
        raise ModelError(f"model.factory {factory!r} raised {type(e).__name__}: {e}", "fix the factory function") from None
    import keras

    if not isinstance(model, keras.Model):
        raise ModelError(f"model.factory {factory!r} returned {type(model).__name__}, not a keras.Model", "return a Keras model")
    return model


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
