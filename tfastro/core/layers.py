"""Tensor layer normalisation of the 3D-MIM stack."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfastro")
class TensorLayerNorm(keras.layers.Layer):
    """Normalise each sample over all its non-batch axes, then scale and shift per channel.

    ``y = (x - mean) / sqrt(var + epsilon) * scale + offset`` with mean and variance taken
    per sample over (X, Y, Z, C); ``scale`` (init 1) and ``offset`` (init 0) have shape (C,).
    Statistics are computed in float32 whatever the compute dtype.

    Input/output: (batch, ..., C).
    """

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(autocast=False, **kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = input_shape[-1]
        self.scale = self.add_weight(name="scale", shape=(channels,), initializer="ones")
        self.offset = self.add_weight(name="offset", shape=(channels,), initializer="zeros")

    def call(self, x):
        # Statistics in float32; the normalisation is one multiply-add per element in the
        # compute dtype: y = x * a + b with a = scale / sqrt(var + eps), b = offset - mean a.
        # The moments written out: TensorFlow's (ops.moments) stop the gradient of the mean
        # inside the variance, exact for first derivatives only, and a gradient penalty of a
        # critic with this layer needs the second ones.
        axes = tuple(range(1, len(x.shape)))
        x32 = ops.cast(x, "float32")
        mean = ops.mean(x32, axis=axes, keepdims=True)
        var = ops.mean(ops.square(x32 - mean), axis=axes, keepdims=True)
        a = ops.rsqrt(var + self.epsilon) * ops.cast(self.scale, "float32")
        b = ops.cast(self.offset, "float32") - mean * a
        dtype = self.compute_dtype
        return ops.cast(x, dtype) * ops.cast(a, dtype) + ops.cast(b, dtype)

    def normalize_constant(self, values):
        """Normalise a field that is constant in space: ``values`` (C,), the same at every voxel.

        Equals ``call`` on such a field (mean and variance over space reduce to those over
        channels) without materialising it. Returns (C,) float32.
        """
        v = ops.cast(values, "float32")
        mean, var = ops.moments(v, axes=(0,))
        y = (v - mean) * ops.rsqrt(var + self.epsilon)
        return y * ops.cast(self.scale, "float32") + ops.cast(self.offset, "float32")

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
