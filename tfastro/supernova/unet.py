"""A 3D U-Net forecaster of supernova shells: the last context frames to later frames.

The gas around a supernova a fixed time later in one shot, as the 3D-MIM authors' follow-up
surrogate does, or the next frame rolled out frame by frame. Frames are channels-last voxel
cubes of the normalised fields of the sn data, in [0, 1], exactly as 3D-MIM reads them: a
context is (B, input_length, X, Y, Z, C); the model returns (B, horizon, X, Y, Z, C), the
frames 1 .. horizon after the last context frame, as that frame plus a learned change.
"""
import keras
import numpy as np
from keras import ops

from tfastro.supernova.io import Normalisation

PADDINGS = ("periodic", "zeros")

#: Smallest value log_features resolves: fields span 4 decades below their maximum, 1.
LOG_FLOOR = 1e-4


def log_features(x):
    """log10 of the normalised fields ``x`` (in [0, 1]) in units of 1 % of their maximum,
    floored at LOG_FLOOR: log10(max(x, LOG_FLOOR) / 0.01), in [-2, 2]; float32, the shape of
    ``x``. The ambient gas (a few per cent of the maximum) and the shell then differ by O(1),
    not by O(0.01)."""
    return ops.log(ops.maximum(ops.cast(x, "float32"), LOG_FLOOR) / 0.01) / np.log(10.0)


def periodic_pad(x, width):
    """Pad the three grid axes of ``x`` (B, X, Y, Z, C) by ``width`` voxels on each side with
    the voxels of the opposite side (a periodic box); returns (B, X+2w, Y+2w, Z+2w, C)."""
    if width == 0:
        return x
    for axis in (1, 2, 3):
        size = x.shape[axis]
        if size is not None and size < width:
            raise ValueError(f"periodic padding of {width} voxels needs a grid of at least "
                             f"{width} voxels, got {size} along axis {axis}")
        head = ops.take(x, ops.arange(width), axis=axis)
        tail = ops.take(x, ops.arange(-width, 0) + ops.shape(x)[axis], axis=axis)
        x = ops.concatenate([tail, x, head], axis=axis)
    return x


@keras.saving.register_keras_serializable(package="tfastro")
class ConvBlock3D(keras.layers.Layer):
    """Two k^3 convolutions, each followed by GELU: (B, X, Y, Z, C_in) -> (B, X, Y, Z, filters).

    Args:
      filters: output channels of both convolutions.
      kernel_size: k (odd).
      padding: "periodic" (the box wraps around, as the simulations' boundaries do) or
        "zeros" (Keras' "same").
    """

    def __init__(self, filters, kernel_size=3, padding="periodic", **kwargs):
        super().__init__(**kwargs)
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        if int(kernel_size) % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.filters, self.kernel_size, self.padding = int(filters), int(kernel_size), padding
        conv_padding = "valid" if padding == "periodic" else "same"
        self.convs = [keras.layers.Conv3D(self.filters, self.kernel_size, padding=conv_padding,
                                          dtype=self.dtype_policy, name=f"conv{i + 1}")
                      for i in range(2)]

    def build(self, input_shape):
        shape = tuple(input_shape)
        pad = 2 * (self.kernel_size // 2) if self.padding == "periodic" else 0
        padded = shape[:1] + tuple(None if d is None else d + pad for d in shape[1:4])
        for conv in self.convs:
            conv.build(padded + shape[-1:])
            shape = shape[:-1] + (self.filters,)

    def call(self, x):
        for conv in self.convs:
            if self.padding == "periodic":
                x = periodic_pad(x, self.kernel_size // 2)
            x = keras.activations.gelu(conv(x))
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.filters,)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "padding": self.padding}


@keras.saving.register_keras_serializable(package="tfastro")
class UNet3D(keras.Model):
    """3D U-Net forecaster of supernova-shell clips.

    The context frames are stacked on channels; an encoder of ConvBlock3D levels (each
    halving the grid by 2^3 average pooling) and a decoder (nearest upsampling, the skip of
    the same level concatenated, a ConvBlock3D) end in a 1^3 convolution giving the change of
    each of the ``horizon`` output frames from the last context frame. That convolution starts
    at zero: the untrained model forecasts persistence.

    Args:
      input_length: context frames read (the last ones of a longer context).
      horizon: frames forecast in one shot, 1 .. horizon after the last context frame; 1 is
        the next frame (rolled out by ``forecast``).
      filters: channels per level, e.g. (8, 16, 32): len(filters) - 1 halvings, so X, Y and Z
        must be divisible by 2^(len(filters) - 1).
      kernel_size: k of the k^3 convolutions.
      padding: "periodic" or "zeros" (see ConvBlock3D).
      log_input: the network reads :func:`log_features` of the context (its output stays the
        change of the fields themselves).
      normalisation: how the frames it learns from map the density to [0, 1], a dict of
        :class:`tfastro.supernova.io.Normalisation` (default: the original's max-scaling);
        kept in the config so that a checkpoint says what data it was trained on.

    ``call(context)``: context (B, T, X, Y, Z, C), T >= input_length; returns (B, horizon, X,
    Y, Z, C) float32, also under a mixed precision policy. ``fit`` takes (context, target)
    pairs, target (B, horizon, X, Y, Z, C) (``tfastro.supernova.task.training_pairs`` cuts
    them from clips); ``compile`` without a loss uses the mean squared error.
    ``forecast(context, n_frames)`` has MIM3D.forecast's contract.
    """

    def __init__(self, input_length=1, horizon=1, filters=(8, 16, 32), kernel_size=3,
                 padding="periodic", log_input=True, normalisation=None, **kwargs):
        super().__init__(**kwargs)
        self.normalisation = Normalisation.from_json(
            normalisation or {}, "UNet3D normalisation").model_config()
        if int(input_length) < 1 or int(horizon) < 1:
            raise ValueError(f"input_length and horizon must be >= 1, got {input_length}, "
                             f"{horizon}")
        self.input_length, self.horizon = int(input_length), int(horizon)
        self.filters = tuple(int(f) for f in filters)
        if not self.filters or min(self.filters) < 1:
            raise ValueError(f"filters must be positive integers, got {filters!r}")
        self.kernel_size, self.padding = int(kernel_size), padding
        self.log_input = bool(log_input)
        dt = self.dtype_policy
        self.encoder = [ConvBlock3D(f, kernel_size, padding, dtype=dt, name=f"down{i}")
                        for i, f in enumerate(self.filters)]
        self.decoder = [ConvBlock3D(f, kernel_size, padding, dtype=dt, name=f"up{i}")
                        for i, f in enumerate(self.filters[:-1])]
        self.pool = keras.layers.AveragePooling3D(2, dtype=dt)
        self.upsample = keras.layers.UpSampling3D(2, dtype=dt)
        self._channels = None

    @property
    def grid_multiple(self):
        """X, Y and Z must be multiples of this (2 per halving)."""
        return 2 ** (len(self.filters) - 1)

    def _check_context(self, shape, what="context"):
        """One-line ValueError unless ``shape`` is (B, T >= input_length, X, Y, Z, C) with X, Y,
        Z multiples of grid_multiple and, once built, C the channels the model was built for."""
        shape = tuple(shape)
        m = self.grid_multiple
        ok = (len(shape) == 6 and (shape[1] is None or shape[1] >= self.input_length)
              and all(d is None or d % m == 0 for d in shape[2:5])
              and (self._channels is None or shape[5] in (None, self._channels)))
        if not ok:
            channels = "C" if self._channels is None else self._channels
            raise ValueError(f"UNet3D {what}: expected shape (batch, time>={self.input_length}, "
                             f"X, Y, Z, {channels}) (channels last; X, Y, Z multiples of {m}), "
                             f"got {shape}")

    def build(self, input_shape):
        self._check_context(input_shape)
        b, _, x, y, z, c = input_shape
        if c is None:
            raise ValueError(f"UNet3D is built for a known channel count, got {input_shape}")
        self._channels = c
        shape = (b, x, y, z, self.input_length * c)
        skips = []
        for i, block in enumerate(self.encoder):
            block.build(shape)
            shape = block.compute_output_shape(shape)
            if i < len(self.decoder):
                skips.append(shape)
                shape = (b,) + tuple(None if d is None else d // 2 for d in shape[1:4]) + shape[4:]
        for block, skip in reversed(list(zip(self.decoder, skips))):
            block.build(skip[:-1] + (skip[-1] + shape[-1],))
            shape = block.compute_output_shape(skip)
        self.head = keras.layers.Conv3D(self.horizon * c, 1, dtype=self.dtype_policy,
                                        kernel_initializer="zeros", name="head")
        self.head.build(shape)

    def call(self, context):
        self._check_context(context.shape)
        context = context[:, -self.input_length:]
        last = ops.cast(context[:, -1], "float32")
        b, t, x, y, z, c = ops.shape(context)
        h = ops.reshape(ops.transpose(context, (0, 2, 3, 4, 1, 5)), (b, x, y, z, t * c))
        if self.log_input:
            h = log_features(h)
        h = ops.cast(h, self.compute_dtype)
        skips = []
        for i, block in enumerate(self.encoder):
            h = block(h)
            if i < len(self.decoder):
                skips.append(h)
                h = self.pool(h)
        for block, skip in reversed(list(zip(self.decoder, skips))):
            h = block(ops.concatenate([skip, self.upsample(h)], axis=-1))
        change = ops.reshape(ops.cast(self.head(h), "float32"), (b, x, y, z, self.horizon, c))
        return last[:, None] + ops.transpose(change, (0, 4, 1, 2, 3, 5))

    def compile(self, optimizer="adam", loss=None, **kwargs):
        """Keras' ``compile``; without a ``loss`` the mean squared error of the frames."""
        super().compile(optimizer=optimizer, loss=loss or "mean_squared_error", **kwargs)

    def compile_from_config(self, config):
        # Keras' own skips a model whose compile() is overridden: compile as it would
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def forecast(self, context, n_frames):
        """Forecast the ``n_frames`` frames that follow ``context``.

        context: (B, T, X, Y, Z, C), T >= input_length, the first frames of clips (array or
          tensor); the last input_length frames are read.
        n_frames: frames to forecast, >= 1. Each call of the model gives ``horizon`` frames;
          more are forecast from the last input_length frames so far (autoregressive rollout;
          one frame a call for horizon 1).
        Returns (B, n_frames, X, Y, Z, C) float32 numpy array, also under a mixed precision
        policy. Context of another layout raises the one-line ValueError of ``call``.
        """
        if int(n_frames) != n_frames or n_frames < 1:
            raise ValueError(f"UNet3D.forecast: n_frames must be a positive integer, got "
                             f"{n_frames!r}")
        self._check_context(context.shape, "forecast context")
        frames = np.asarray(ops.convert_to_numpy(context), "float32")[:, -self.input_length:]
        predicted = []
        for _ in range(-(-int(n_frames) // self.horizon)):
            step = np.asarray(ops.convert_to_numpy(
                self.predict_on_batch(frames[:, -self.input_length:])), "float32")
            predicted.append(step)
            frames = np.concatenate([frames, step], axis=1)
        return np.concatenate(predicted, axis=1)[:, :int(n_frames)]

    def get_config(self):
        return {**super().get_config(), "input_length": self.input_length,
                "horizon": self.horizon, "filters": list(self.filters),
                "kernel_size": self.kernel_size, "padding": self.padding,
                "log_input": self.log_input, "normalisation": dict(self.normalisation)}

