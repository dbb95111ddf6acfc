"""train stage: Keras fit with the pipeline's optimizer, learning rate and early stopping."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from edgeq.config import PipelineSpec, TrainSpec
from edgeq.data import zoo
from edgeq.data.datasets import Dataset
from edgeq.errors import ModelError
from edgeq.progress import tracker
from edgeq.records.stages import TrainOutput
from edgeq.stages.quiet import import_tensorflow


def train(spec: PipelineSpec, base: Path, ds: Dataset, out_dir: Path, log: Callable[[str], None]) -> TrainOutput:
    """Build (or load) the model, fit it, save out_dir/model.keras. Returns the stage's metrics."""
    import_tensorflow()
    import keras

    keras.utils.set_random_seed(spec.seed)
    model = zoo.build(spec.model, base, ds.input_shape, ds.num_classes)
    t = spec.train
    steps = max(1, -(-len(ds.x_train) // t.batch_size))
    _compile(model, t.optimizer, _rate(t.learning_rate, t.lr_schedule, t.epochs * steps))
    out_shape = model.output_shape
    if not (isinstance(out_shape, tuple) and out_shape[-1] == ds.num_classes):
        raise ModelError(
            f"the model's output shape {out_shape} does not match the {ds.num_classes} classes of the dataset",
            "make the last layer Dense(num_classes, activation='softmax')"
            + (" (or remove model.classes: it defaults to the dataset's)" if spec.model.classes else ""),
        )
    start = time.perf_counter()
    history = _fit(model, ds, t, t.epochs, "train", log)
    if spec.model.freeze_base and t.fine_tune_epochs:
        # the head has learned on the frozen base: now every layer, at a lower rate so the base's weights survive
        for layer in model.layers:
            if isinstance(layer, keras.Model):
                layer.trainable = True
        _compile(model, t.optimizer, _rate(t.fine_tune_lr or t.learning_rate / 10, t.lr_schedule, t.fine_tune_epochs * steps))
        log(f"  fine-tuning every layer for {t.fine_tune_epochs} epochs (lr {t.fine_tune_lr or t.learning_rate / 10:g})")
        tuned = _fit(model, ds, t, t.fine_tune_epochs, "fine-tune", log)
        history = {k: history.get(k, []) + tuned.get(k, []) for k in dict.fromkeys([*history, *tuned])}
    seconds = time.perf_counter() - start
    model.save(out_dir / "model.keras")
    _, keras_acc = model.evaluate(ds.x_test, ds.y_test, verbose=0, batch_size=512)
    return TrainOutput(
        epochs_run=len(history.get("loss", [])),
        history={k: tuple(v) for k, v in history.items()},
        train_seconds=round(seconds, 3),
        keras_test_accuracy=float(keras_acc),  # for reference only: validate measures the .tflite files
        params=int(model.count_params()),
    )


def _rate(lr: float, schedule: str, total_steps: int):
    """The optimizer's learning rate: a float, or a cosine decay to 1% of it over total_steps."""
    if schedule == "constant":
        return lr
    import keras

    return keras.optimizers.schedules.CosineDecay(initial_learning_rate=lr, decay_steps=max(1, total_steps), alpha=0.01)


def _compile(model, optimizer: str, lr) -> None:
    import keras

    opt = {
        "adam": keras.optimizers.Adam,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
        "adamw": keras.optimizers.AdamW,
    }[optimizer](learning_rate=lr)
    try:
        model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    except Exception as e:
        raise ModelError(f"cannot compile the model: {type(e).__name__}: {e}", "check the model definition") from None


def _fit(model, ds: Dataset, t: TrainSpec, epochs: int, phase: str, log: Callable[[str], None]) -> dict:
    """One fit phase; its history ({metric: per-epoch values}), empty when epochs is 0."""
    import keras

    if epochs == 0:
        return {}
    advance = tracker()
    steps = max(1, -(-len(ds.x_train) // t.batch_size))

    class _Log(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            advance(phase, self._epoch * steps + batch + 1, epochs * steps)

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            parts = " ".join(f"{k}={v:.4f}" for k, v in logs.items() if isinstance(v, float))
            log(f"  {phase} epoch {epoch + 1}/{epochs} {parts}")

    callbacks = [_Log()]
    has_val = len(ds.x_val) > 0
    if t.early_stopping and has_val:
        es = t.early_stopping
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor=es.monitor, patience=es.patience, restore_best_weights=es.restore_best_weights)
        )
    try:
        h = model.fit(
            ds.x_train,
            ds.y_train,
            epochs=epochs,
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
    return {k: [float(x) for x in v] for k, v in h.history.items()}
