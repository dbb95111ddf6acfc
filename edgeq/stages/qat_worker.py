"""Quantization-aware training, run as `python -m edgeq.stages.qat_worker JOB.json` (see edgeq/stages/qat.py).

tensorflow-model-optimization 0.8 only works with tf-keras (Keras 2), and TensorFlow decides what
`tf.keras` means when it is first imported, from TF_USE_LEGACY_KERAS. The main process has already
imported TensorFlow with Keras 3, so this runs in a fresh process that sets the variable first.

The trained model is a Keras 3 file that tf-keras cannot read (its InputLayer config differs), so it
is loaded with Keras 3 (which coexists with tf-keras in one process) and rebuilt layer by layer in
tf-keras with the same weights; the copy must reproduce the original's outputs before QAT starts.

Run through edgeq/stages/child.py: progress goes to the parent's log through `say`; an EdgeqError raised
here is re-raised in the parent as the same class with its message and hint.
"""

from __future__ import annotations

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # must precede any TensorFlow import, here and in edgeq modules
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import inspect  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

from edgeq.errors import ModelError, QuantizeError  # noqa: E402 - no TensorFlow behind these
from edgeq.stages.child import child_main  # noqa: E402

PROBE_ROWS = 64
# softmax outputs of the same weights on the same graph agree to ~1e-7; more means a layer was
# rebuilt with a different meaning (a config key tf-keras ignored, another default)
PROBE_TOLERANCE = 1e-4
_SKIPPED = ("InputLayer", "Identity")  # no computation: tf-keras gets its own Input


def _translate(value, module, key: str, layer: str):
    """A Keras 3 regularizer/constraint config dict -> the tf-keras object, or a ModelError."""
    try:
        return module.get({"class_name": value["class_name"], "config": value.get("config", {})})
    except Exception as e:
        raise ModelError(
            f"layer {layer!r}: {key} {value.get('class_name')!r} has no tf-keras counterpart ({e})",
            "remove it from the layer, or use a PTQ int8 variant for this model",
        ) from None


def to_tf_keras(model, tf_keras, hook=None, tfmot=None):
    """Rebuild a Keras 3 chain of builtin layers in tf-keras with the same weights.

    hook: the factory module's qat_layer(layer, tf_keras, tfmot), asked for each custom layer; it returns a
    tf-keras layer (wrapped in tfmot's quantize_annotate_layer with a QuantizeConfig when tfmot has no
    rule for it) or None when it cannot.
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(
            f"QAT supports single-input, single-output models; {model.name!r} has "
            f"{len(model.inputs)} inputs and {len(model.outputs)} outputs",
            "use a PTQ int8 variant for this model",
        )
    layers = [tf_keras.Input(shape=tuple(model.inputs[0].shape[1:]))]
    pairs = []
    for layer in model.layers:
        cls_name = type(layer).__name__
        if cls_name in _SKIPPED:
            continue
        where = f"layer {layer.name!r} ({type(layer).__module__}.{cls_name})"
        if isinstance(layer.input, (list, tuple)):
            raise ModelError(
                f"QAT can only rebuild a chain of layers; {where} takes {len(layer.input)} inputs",
                "use a Sequential model (or a functional chain) for QAT, or a PTQ int8 variant",
            )
        target = getattr(tf_keras.layers, cls_name, None)
        if not type(layer).__module__.startswith("keras.") or target is None:
            try:
                new = hook(layer, tf_keras, tfmot) if hook is not None else None
            except Exception as e:
                raise ModelError(
                    f"the factory's qat_layer() failed for {where}: {type(e).__name__}: {e}",
                    "fix qat_layer in the model.factory module",
                ) from None
            if new is None:
                raise ModelError(
                    f"QAT cannot move {where} to tf-keras: it is a custom layer with no tf-keras counterpart",
                    "define qat_layer(layer, tf_keras, tfmot) in the model.factory module "
                    "(docs/quantization.md#quantization-aware-training-trainqat), use builtin Keras layers, "
                    "or a PTQ int8 variant",
                )
            layers.append(new)
            pairs.append((layer, new, where))
            continue
        params = inspect.signature(target.__init__).parameters
        kwargs = {}
        for k, v in layer.get_config().items():
            if k not in params and k not in ("name", "trainable"):
                continue  # Keras-3-only keys (e.g. quantization_config); the output probe catches meaningful ones
            if isinstance(v, dict):
                if k.endswith("_regularizer"):
                    v = _translate(v, tf_keras.regularizers, k, layer.name)
                elif k.endswith("_constraint"):
                    v = _translate(v, tf_keras.constraints, k, layer.name)
                elif k.endswith("_initializer") or k == "dtype":
                    continue  # weights are copied; the dtype policy object is Keras 3's own
                else:
                    raise ModelError(
                        f"QAT cannot move {where} to tf-keras: its {k!r} is a custom object",
                        "use builtin activations and settings, or a PTQ int8 variant for this model",
                    )
            kwargs[k] = v
        try:
            new = target(**kwargs)
        except Exception as e:
            raise ModelError(
                f"QAT cannot rebuild {where} in tf-keras: {type(e).__name__}: {e}",
                "use a PTQ int8 variant for this model",
            ) from None
        layers.append(new)
        pairs.append((layer, new, where))
    try:
        copy = tf_keras.Sequential(layers, name=model.name)
    except Exception as e:
        raise ModelError(
            f"QAT cannot rebuild model {model.name!r} in tf-keras: {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}",
            "use a PTQ int8 variant for this model",
        ) from None
    for old, new, where in pairs:
        try:
            new.set_weights(old.get_weights())
        except Exception as e:
            raise ModelError(
                f"QAT cannot copy the weights of {where}: {type(e).__name__}: {e}",
                "use a PTQ int8 variant for this model",
            ) from None
    return copy


def _check_copy(model, copy, x) -> float:
    import numpy as np

    diff = float(np.max(np.abs(np.asarray(model(x, training=False)) - copy.predict(x, verbose=0))))
    if not diff <= PROBE_TOLERANCE:
        raise ModelError(
            f"the tf-keras copy of the model does not reproduce its outputs (max difference "
            f"{diff:.3g} on {len(x)} training rows)",
            "use builtin Keras layers for QAT, or a PTQ int8 variant",
        )
    return diff


def _quantize_model(copy, per_channel: bool):
    import tensorflow_model_optimization as tfmot

    q = tfmot.quantization.keras
    # quantize_apply clones the model from its config: a hook's layer and QuantizeConfig classes must be known
    custom = {}
    for layer in copy.layers:
        if hasattr(layer, "quantize_config"):  # tfmot's QuantizeAnnotate wrapper (not in its public API)
            for obj in (layer.layer, layer.quantize_config):
                if obj is not None:
                    custom[type(obj).__name__] = type(obj)
    try:
        with q.quantize_scope(custom):
            if per_channel:
                return q.quantize_model(copy)
            from tensorflow_model_optimization.python.core.quantization.keras.experimental.default_n_bit import (
                default_n_bit_quantize_scheme as nbit,
            )

            # the 8-bit default scheme is per-channel for convolutions; this one is the same with per-axis off
            return q.quantize_apply(q.quantize_annotate_model(copy), scheme=nbit.DefaultNBitQuantizeScheme(disable_per_axis=True))
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise QuantizeError(
            f"tensorflow-model-optimization cannot quantize the model: {first[:400]}",
            "replace the unsupported layer, or use a PTQ int8 variant for this model",
        ) from None


def _convert(qmodel, io: str, per_channel: bool) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(qmodel)
    # fake-quant ranges learned in training replace calibration: no representative dataset. Setting
    # TFLITE_BUILTINS_INT8 would make TF 2.21 demand one anyway; float_ops() checks full-integer instead.
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if not per_channel:
        conv._experimental_disable_per_channel = True  # noqa: SLF001 - TF 2.21's only switch for it
    dtype = {"int8": tf.int8, "uint8": tf.uint8, "float": tf.float32}[io]
    conv.inference_input_type = dtype
    conv.inference_output_type = dtype
    try:
        return conv.convert()
    except Exception as e:
        first = next((ln for ln in str(e).splitlines() if "error" in ln.lower()), str(e).splitlines()[0] if str(e) else "")
        raise QuantizeError(
            f"converting the QAT model to int8 failed: {first[:400]}",
            "rerun with --debug for the converter's output",
        ) from None


def _factory_hook(factory: str | None, base: Path):
    """The factory module's optional qat_layer(layer, tf_keras, tfmot): how its custom layers look in tf-keras."""
    if not factory:
        return None
    import importlib

    sys.path.insert(0, str(base))
    try:
        mod = importlib.import_module(factory.split(":")[0])  # zoo.load_trained imported it already: cached
    finally:
        sys.path.remove(str(base))
    hook = getattr(mod, "qat_layer", None)
    return hook if callable(hook) else None


def run(job: dict, say: Callable[[str], None]) -> dict:
    from edgeq.config import PipelineSpec, VariantSpec
    from edgeq.data import datasets as data_mod
    from edgeq.data import zoo

    spec = PipelineSpec.model_validate(job["spec"])
    variant = VariantSpec.model_validate(job["variant"])
    base = Path(job["base"])
    qat, t = spec.train.qat, spec.train
    ds = data_mod.load(spec.data, base, spec.seed)

    import tensorflow as tf  # noqa: F401 - with TF_USE_LEGACY_KERAS=1 set above: tf.keras is tf-keras
    import tensorflow_model_optimization as tfmot
    import tf_keras

    model = zoo.load_trained(Path(job["model_path"]), spec.model, base)  # Keras 3, as the train stage saved it
    copy = to_tf_keras(model, tf_keras, _factory_hook(spec.model.factory, base), tfmot)
    diff = _check_copy(model, copy, ds.x_train[:PROBE_ROWS])
    tf_keras.utils.set_random_seed(spec.seed)
    qmodel = _quantize_model(copy, variant.per_channel)
    lr = qat.learning_rate if qat.learning_rate is not None else t.learning_rate / 10
    batch = qat.batch_size or t.batch_size
    opt = {
        "adam": tf_keras.optimizers.Adam,
        "sgd": tf_keras.optimizers.SGD,
        "rmsprop": tf_keras.optimizers.RMSprop,
        "adamw": tf_keras.optimizers.AdamW,
    }[t.optimizer](learning_rate=lr)
    qmodel.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    class _Log(tf_keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            parts = " ".join(f"{k}={v:.4f}" for k, v in (logs or {}).items() if isinstance(v, float))
            say(f"  qat epoch {epoch + 1}/{qat.epochs} {parts}")

    has_val = len(ds.x_val) > 0
    say(
        f"  qat: fine-tuning with fake quantization on {len(ds.x_train)} samples "
        f"({qat.epochs} epochs, batch {batch}, learning rate {lr:g})"
    )
    start = time.perf_counter()
    try:
        h = qmodel.fit(
            ds.x_train,
            ds.y_train,
            epochs=qat.epochs,
            batch_size=batch,
            verbose=0,
            shuffle=True,
            validation_data=(ds.x_val, ds.y_val) if has_val else None,
            callbacks=[_Log()],
        )
    except Exception as e:
        raise ModelError(
            f"QAT fine-tuning failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
            "check the model and the qat settings",
        ) from None
    seconds = time.perf_counter() - start
    _, keras_acc = qmodel.evaluate(ds.x_test, ds.y_test, verbose=0, batch_size=512)
    t0 = time.perf_counter()
    blob = _convert(qmodel, variant.io, variant.per_channel)
    out = Path(job["out_dir"]) / "model.tflite"
    out.write_bytes(blob)  # the caller's stage folder is a temp dir renamed only when complete
    return {
        "qat_epochs": qat.epochs,
        "qat_learning_rate": lr,
        "qat_batch_size": batch,
        "qat_history": {k: [float(x) for x in v] for k, v in h.history.items()},
        "qat_seconds": round(seconds, 3),
        "qat_keras_test_accuracy": float(keras_acc),  # reference only: validate measures the .tflite
        "transfer_max_diff": diff,
        "convert_seconds": round(time.perf_counter() - t0, 3),
    }


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:], run))
