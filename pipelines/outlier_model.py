"""The hard case for int8 post-training quantization (bench/quant_bench.py): a depthwise-separable CNN
whose penultimate activation has a few outlier channels, 500x larger than the rest.

TFLite quantizes an activation tensor with one scale for all its channels, so the outliers stretch
the int8 grid and the ordinary channels collapse onto a handful of levels. Large-magnitude outlier
channels like these are what real models (transformers' LayerNorm outputs, un-normalized heads)
show; here they are fixed by a constant per-channel scale so the case is reproducible.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="edgeq_hard_case")
class ChannelScale(keras.layers.Layer):
    """Multiply the first `channels` channels by `factor` (constant, not trained)."""

    def __init__(self, factor: float = 500.0, channels: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.factor, self.channels = float(factor), int(channels)

    def call(self, x):
        n = x.shape[-1]
        scale = ops.concatenate([ops.full((self.channels,), self.factor), ops.ones((n - self.channels,))])
        return x * ops.cast(scale, x.dtype)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "channels": self.channels}


def build(input_shape, num_classes):
    shape = input_shape if len(input_shape) == 3 else (*input_shape, 1)
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=shape),
            L.Conv2D(16, 3, padding="same", activation="relu"),
            L.MaxPooling2D(2),
            L.DepthwiseConv2D(3, padding="same", activation="relu"),
            L.Conv2D(32, 1, activation="relu"),
            L.MaxPooling2D(2),
            L.DepthwiseConv2D(3, padding="same", activation="relu"),
            L.Conv2D(64, 1, activation="relu"),
            L.Flatten(),
            L.Dense(128, activation="relu"),
            L.Dense(64, activation="relu"),
            ChannelScale(500.0, 2),
            L.Dense(num_classes, activation="softmax"),
        ],
        name="outlier_cnn",
    )


def qat_layer(layer, tf_keras, tfmot):
    """For train.qat (edgeq/stages/qat_worker.py): ChannelScale in tf-keras, its output fake-quantized like any
    activation, so QAT can learn weights that live with a per-tensor int8 range."""
    if not isinstance(layer, ChannelScale):
        return None
    import tensorflow as tf

    q = tfmot.quantization.keras
    factor, channels = layer.factor, layer.channels

    class ChannelScaleTK(tf_keras.layers.Layer):
        def call(self, x):
            n = x.shape[-1]
            return x * tf.concat([tf.fill([channels], factor), tf.ones([n - channels])], 0)

    class OutputOnly(q.QuantizeConfig):  # no weights; quantize what the layer outputs
        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, w):
            pass

        def set_quantize_activations(self, layer, a):
            pass

        def get_output_quantizers(self, layer):
            return [q.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

        def get_config(self):
            return {}

    return q.quantize_annotate_layer(ChannelScaleTK(name=layer.name), OutputOnly())
