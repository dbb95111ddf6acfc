"""train stage: Keras fit with the pipeline's optimizer, learning rate and early stopping."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from edgeq import zoo
from edgeq.config import PipelineSpec
from edgeq.data import Dataset
from edgeq.errors import ModelError
from edgeq.progress import tracker
from edgeq.quiet import import_tensorflow


def train(spec: PipelineSpec, base: Path, ds: Dataset, out_dir: Path, log: Callable[[str], None]) -> dict:
    """Build (or load) the model, fit it, save out_dir/model.keras. Returns the stage's metrics."""
    import_tensorflow()
    import keras

    keras.utils.set_random_seed(spec.seed)
    model = zoo.build(spec.model, base, ds.input_shape, ds.num_classes)
    t = spec.train
    opt = {
        "adam": keras.optimizers.Adam,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
        "adamw": keras.optimizers.AdamW,
    }[t.optimizer](learning_rate=t.learning_rate)
    try:
        model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    except Exception as e:
        raise ModelError(f"cannot compile the model: {type(e).__name__}: {e}", "check the model definition") from None
    out_shape = model.output_shape
    if not (isinstance(out_shape, tuple) and out_shape[-1] == ds.num_classes):
        raise ModelError(
            f"the model's output shape {out_shape} does not match the {ds.num_classes} classes of the dataset",
            "make the last layer Dense(num_classes, activation='softmax')",
        )

    advance = tracker()
    steps = max(1, -(-len(ds.x_train) // t.batch_size))

    class _Log(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            advance("train", self._epoch * steps + batch + 1, t.epochs * steps)

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            parts = " ".join(f"{k}={v:.4f}" for k, v in logs.items() if isinstance(v, float))
            log(f"  train epoch {epoch + 1}/{t.epochs} {parts}")

    callbacks = [_Log()]
    has_val = len(ds.x_val) > 0
    if t.early_stopping and has_val:
        es = t.early_stopping
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor=es.monitor, patience=es.patience, restore_best_weights=es.restore_best_weights)
        )
    start = time.perf_counter()
    history = {}
    if t.epochs > 0:
        try:
            h = model.fit(
                ds.x_train,
                ds.y_train,
                epochs=t.epochs,
                batch_size=t.batch_size,
                validation_data=(ds.x_val, ds.y_val) if has_val else None,
                callbacks=callbacks,
                verbose=0,
                shuffle=True,
            )
        except Exception as e:
            raise ModelError(
                f"training failed: {type(e).__name__}: {str(e).splitlines()[0]}",
                f"check that the model's input shape matches the data (data shape {ds.input_shape}, {ds.num_classes} classes)",
            ) from None
        history = {k: [float(x) for x in v] for k, v in h.history.items()}
    seconds = time.perf_counter() - start
    model.save(out_dir / "model.keras")
    _, keras_acc = model.evaluate(ds.x_test, ds.y_test, verbose=0, batch_size=512)
    return {
        "epochs_run": len(next(iter(history.values()), [])),
        "history": history,
        "train_seconds": round(seconds, 3),
        "keras_test_accuracy": float(keras_acc),  # for reference only: validate measures the .tflite files
        "params": int(model.count_params()),
    }
