"""3D convolution followed by the optional tensor layer norm, and the original initialiser."""
import math

import keras
from keras import ops

from tfastro.layers.norm import TensorLayerNorm


@keras.saving.register_keras_serializable(package="tfastro")
class ChannelGlorotUniform(keras.initializers.Initializer):
    """Uniform in +-sqrt(6 / (fan_in + fan_out)) with fans counted in channels only.

    This is the 3D-MIM initialiser: the kernel size does not enter the fans, so kernels are
    larger than Keras' Glorot initialiser would make them.
    """

    def __init__(self, seed=None):
        self.seed = seed

    def __call__(self, shape, dtype=None):
        limit = math.sqrt(6.0 / (shape[-2] + shape[-1]))
        return keras.random.uniform(shape, -limit, limit, dtype=dtype, seed=self.seed)

    def get_config(self):
        return {"seed": self.seed}


@keras.saving.register_keras_serializable(package="tfastro")
class ConvNorm3D(keras.layers.Layer):
    """Conv3D ('same' padding, stride 1, with bias) then, if ``layer_norm``, TensorLayerNorm.

    Input (B, X, Y, Z, C_in) -> output (B, X, Y, Z, filters).
    ``zero_response()`` gives the output for an all-zero input, a (filters,) vector that is
    the same at every voxel, without running the convolution.
    """

    def __init__(self, filters, kernel_size, layer_norm=True, kernel_initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.layer_norm = bool(layer_norm)
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer if kernel_initializer is not None else ChannelGlorotUniform())
        self.conv = keras.layers.Conv3D(
            self.filters, self.kernel_size, padding="same",
            kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy, name="conv")
        self.norm = TensorLayerNorm(dtype=self.dtype_policy, name="norm") if self.layer_norm else None

    def build(self, input_shape):
        self.conv.build(input_shape)
        if self.norm is not None:
            self.norm.build(tuple(input_shape[:-1]) + (self.filters,))

    def call(self, x):
        y = self.conv(x)
        return self.norm(y) if self.norm is not None else y

    def zero_response(self):
        bias = ops.cast(self.conv.bias, "float32")
        y = self.norm.normalize_constant(bias) if self.norm is not None else bias
        return ops.cast(y, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "layer_norm": self.layer_norm,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}
