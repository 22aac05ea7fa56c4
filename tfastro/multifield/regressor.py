"""A CNN regressing cosmological parameters from multifield maps (the conditioning check).

Trained on real maps and applied to generated maps at known parameters, it tells whether a
conditional emulator's maps carry the parameters they were asked for.
"""
import math

import keras

__all__ = ["ParameterRegressor"]


@keras.saving.register_keras_serializable(package="tfastro")
class ParameterRegressor(keras.Model):
    """Convolution-pooling blocks, global average pooling and a dense head: maps -> theta.

    Each block is two 3x3 convolutions ('same' padding, leaky ReLU 0.2) and a 2x2 average
    pooling; there are floor(log2(resolution / 4)) blocks (3 at 32^2, 6 at 256^2), so the
    last feature map is 4^2 to 7^2 pixels, with ``width * 2^b`` channels in block b, capped at
    ``8 * width``.

    Args:
      resolution: R, the side of the input maps in pixels (>= 8).
      channels: C, channels per map (e.g. 3 for Mgas, HI, B).
      n_params: P, parameters regressed (e.g. 2 for Omega_m, sigma_8).
      width: channels of the first block.

    ``call(maps)``: maps ``(B, R, R, C)`` (e.g. normalised log10 maps in [-1, 1]); returns
    ``(B, P)`` float32 parameters in the normalisation they were trained on. The input shape
    follows from the arguments, so the model is built when made, as a functional model is.
    """

    def __init__(self, resolution, channels=3, n_params=2, width=16, **kwargs):
        super().__init__(**kwargs)
        for name, value, least in (("resolution", resolution, 8), ("channels", channels, 1),
                                   ("n_params", n_params, 1), ("width", width, 1)):
            if int(value) != value or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
        self.resolution = int(resolution)
        self.channels = int(channels)
        self.n_params = int(n_params)
        self.width = int(width)
        n_blocks = int(math.log2(self.resolution / 4))
        self.feature_layers = []
        for b in range(n_blocks):
            filters = self.width * min(2**b, 8)
            self.feature_layers += [
                keras.layers.Conv2D(filters, 3, padding="same", activation="leaky_relu",
                                    dtype=self.dtype_policy, name=f"block{b}_conv1"),
                keras.layers.Conv2D(filters, 3, padding="same", activation="leaky_relu",
                                    dtype=self.dtype_policy, name=f"block{b}_conv2"),
                keras.layers.AveragePooling2D(2, dtype=self.dtype_policy, name=f"block{b}_pool"),
            ]
        self.feature_layers += [
            keras.layers.GlobalAveragePooling2D(dtype=self.dtype_policy, name="global_pool"),
            keras.layers.Dense(8 * self.width, activation="leaky_relu", dtype=self.dtype_policy,
                               name="hidden"),
        ]
        self.head = keras.layers.Dense(self.n_params, dtype="float32", name="theta")
        self.input_spec = keras.InputSpec(shape=(None, self.resolution, self.resolution,
                                                 self.channels))
        self.build(self.input_spec.shape)

    def build(self, input_shape):
        expected = (self.resolution, self.resolution, self.channels)
        if len(input_shape) != 4 or tuple(input_shape[1:]) != expected:
            raise ValueError(f"maps: expected shape (B, {self.resolution}, {self.resolution}, "
                             f"{self.channels}), got {tuple(input_shape)}")
        shape = tuple(input_shape)
        for layer in self.feature_layers + [self.head]:
            if not layer.built:
                layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def call(self, maps):
        x = maps
        for layer in self.feature_layers:
            x = layer(x)
        return self.head(x)

    def get_config(self):
        return {**super().get_config(), "resolution": self.resolution, "channels": self.channels,
                "n_params": self.n_params, "width": self.width}
