"""Building blocks of a FastGAN-style conditional GAN (Liu et al. 2021) for 2D multifield maps.

All images and feature maps are channels-last, (B, H, W, C). Generator blocks may use batch
norm; discriminator blocks never do: the WGAN gradient penalty is a per-sample quantity, and
batch statistics would make each sample's critic value depend on the rest of the batch, so
the discriminator normalises each sample on its own (layer norm, ``TensorLayerNorm``).
"""
import keras
from keras import ops

from tfastro.core.layers import TensorLayerNorm

NORMS = ("batch", "layer", "none")


def _check_norm(norm):
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    return norm


def _check_channels(layer, name, shape, expected):
    """ValueError unless ``shape`` (None: not given) ends in ``expected`` channels."""
    if shape is not None and shape[-1] != expected:
        raise ValueError(f"{layer}: {name} must have {expected} channels (last axis), got "
                         f"shape {tuple(shape)}")


def _normalization(norm, policy, name):
    """The normalisation layer called ``norm`` (None for "none")."""
    if norm == "batch":
        return keras.layers.BatchNormalization(dtype=policy, name=name)
    if norm == "layer":
        return TensorLayerNorm(dtype=policy, name=name)
    return None


@keras.saving.register_keras_serializable(package="tfastro")
class GLU(keras.layers.Layer):
    """Gated linear unit over channels: (B, ..., 2C) split into halves a, b -> a * sigmoid(b).

    No weights. Output (B, ..., C).
    """

    def call(self, x):
        channels = x.shape[-1]
        if channels is None or channels % 2:
            raise ValueError(f"GLU needs an even number of channels, got {channels}")
        a, b = ops.split(x, 2, axis=-1)
        return a * ops.sigmoid(b)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (input_shape[-1] // 2,)


def adaptive_average_pool(x, size):
    """Average-pool (B, H, W, C) to (B, size, size, C); H and W must be multiples of ``size``."""
    _, h, w, c = x.shape
    blocks = ops.reshape(x, (-1, size, h // size, size, w // size, c))
    return ops.mean(blocks, axis=(2, 4))


@keras.saving.register_keras_serializable(package="tfastro")
class SkipLayerExcitation(keras.layers.Layer):
    """Skip-layer excitation: channel gates computed from ``source`` rescale ``target``.

    ``call(source, target)``: source (B, Hs, Ws, Cs) with Hs, Ws multiples of 4 is
    average-pooled to 4x4, convolved 4x4 'valid' to (B, 1, 1, channels), passed through
    swish, convolved 1x1 and squashed by a sigmoid into per-channel gates g in (0, 1);
    returns ``target * g``, target (B, Ht, Wt, channels) of any size.
    In the generator the source is a low-resolution feature map and the target a
    high-resolution one; in the discriminator it is the other way round.
    ``build(source_shape, target_shape=None)``, Keras' convention for several inputs.
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.squeeze = keras.layers.Conv2D(self.channels, 4, padding="valid",
                                           dtype=self.dtype_policy, name="squeeze")
        self.excite = keras.layers.Conv2D(self.channels, 1, dtype=self.dtype_policy, name="excite")

    def build(self, source_shape, target_shape=None):
        _, h, w, c = source_shape
        if h is None or w is None or h % 4 or w % 4:
            raise ValueError(f"{self.name}: the source's height and width must be multiples "
                             f"of 4, got shape {tuple(source_shape)}")
        _check_channels(self.name, "target", target_shape, self.channels)
        self.squeeze.build((None, 4, 4, c))
        self.excite.build((None, 1, 1, self.channels))

    def call(self, source, target):
        gates = ops.swish(self.squeeze(adaptive_average_pool(source, 4)))
        gates = ops.sigmoid(self.excite(gates))
        return target * ops.cast(gates, target.dtype)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@keras.saving.register_keras_serializable(package="tfastro")
class UpBlock(keras.layers.Layer):
    """Nearest-neighbour x2 upsampling, 3x3 convolution to 2*filters, normalisation, an
    optional conditional scale and shift, GLU.

    norm: "batch" (the generator's; behaves differently in training and inference),
    "layer" (per-sample, ``TensorLayerNorm``) or "none" (the convolution then has a bias).
    condition_dim: size E of a condition embedding c; when > 0, ``call(x, c)`` multiplies the
    normalised features by (1 + gamma(c)) and adds beta(c) (gamma, beta linear in c and
    zero at initialisation), so the condition sets the amplitude of the features at every
    scale, which an additive condition cannot do.
    Input (B, H, W, C) [and c (B, E)] -> output (B, 2H, 2W, filters).
    ``build(x_shape, condition_shape=None)``, Keras' convention for several inputs.
    """

    def __init__(self, filters, norm="batch", condition_dim=0, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.norm = _check_norm(norm)
        self.condition_dim = int(condition_dim)
        self.conv = keras.layers.Conv2D(2 * self.filters, 3, padding="same",
                                        use_bias=self.norm == "none",
                                        dtype=self.dtype_policy, name="conv")
        self.normalization = _normalization(self.norm, self.dtype_policy, "norm")
        self.modulation = (keras.layers.Dense(4 * self.filters, kernel_initializer="zeros",
                                              dtype=self.dtype_policy, name="modulation")
                           if self.condition_dim else None)
        self.glu = GLU(dtype=self.dtype_policy, name="glu")

    def build(self, x_shape, condition_shape=None):
        b, h, w, c = x_shape
        _check_channels(self.name, "condition", condition_shape, self.condition_dim)
        up = (b, None if h is None else 2 * h, None if w is None else 2 * w, c)
        self.conv.build(up)
        if self.normalization is not None:
            self.normalization.build(up[:-1] + (2 * self.filters,))
        if self.modulation is not None:
            self.modulation.build((b, self.condition_dim))

    def call(self, x, condition=None, training=None):
        y = self.conv(ops.repeat(ops.repeat(x, 2, axis=1), 2, axis=2))
        if self.normalization is not None:
            y = (self.normalization(y, training=training) if self.norm == "batch"
                 else self.normalization(y))
        if self.modulation is not None:
            if condition is None:
                raise ValueError(f"{self.name} is conditioned: call it with (x, condition)")
            gamma, beta = ops.split(self.modulation(condition)[:, None, None, :], 2, axis=-1)
            y = y * (1.0 + gamma) + beta
        return self.glu(y)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "norm": self.norm,
                "condition_dim": self.condition_dim}


@keras.saving.register_keras_serializable(package="tfastro")
class DownBlock(keras.layers.Layer):
    """Stride-2 4x4 convolution, normalisation ("layer", per sample, or "none"),
    LeakyReLU(0.2); optionally averaged with a shortcut (2x2 average pool, 1x1 convolution,
    LeakyReLU(0.2)).

    No batch norm: this is a discriminator block and must treat samples independently
    (see the module docstring). Input (B, H, W, C), H and W even -> (B, H/2, W/2, filters).
    """

    def __init__(self, filters, shortcut=True, norm="layer", **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.shortcut = bool(shortcut)
        self.norm_name = _check_norm(norm)
        if norm == "batch":
            raise ValueError("DownBlock: norm='batch' would couple the samples of a batch")
        self.conv = keras.layers.Conv2D(self.filters, 4, strides=2, padding="same",
                                        use_bias=norm == "none", dtype=self.dtype_policy,
                                        name="conv")
        self.norm = _normalization(norm, self.dtype_policy, "norm")
        self.skip = (keras.layers.Conv2D(self.filters, 1, dtype=self.dtype_policy, name="skip")
                     if self.shortcut else None)

    def build(self, input_shape):
        b, h, w, c = input_shape
        half = (b, None if h is None else h // 2, None if w is None else w // 2)
        self.conv.build(input_shape)
        if self.norm is not None:
            self.norm.build(half + (self.filters,))
        if self.skip is not None:
            self.skip.build(half + (c,))

    def call(self, x):
        y = self.conv(x)
        y = ops.leaky_relu(y if self.norm is None else self.norm(y), 0.2)
        if self.skip is None:
            return y
        pooled = ops.average_pool(x, 2, 2, padding="valid")
        return 0.5 * (y + ops.leaky_relu(self.skip(pooled), 0.2))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "shortcut": self.shortcut,
                "norm": self.norm_name}


@keras.saving.register_keras_serializable(package="tfastro")
class SimpleDecoder(keras.layers.Layer):
    """The discriminator's self-supervised decoder: features -> image in (-1, 1).

    Up-blocks (layer norm, see ``UpBlock``) double the input size until ``output_size``;
    block i has ``max(filters // 2**i, 4)`` channels; a 3x3 convolution to ``channels`` and
    tanh follow. Input (B, S, S, C) with output_size / S a power of two
    -> (B, output_size, output_size, channels).
    """

    def __init__(self, output_size, channels=3, filters=64, **kwargs):
        super().__init__(**kwargs)
        self.output_size = int(output_size)
        self.channels = int(channels)
        self.filters = int(filters)
        self.to_image = keras.layers.Conv2D(self.channels, 3, padding="same",
                                            dtype=self.dtype_policy, name="to_image")

    def build(self, input_shape):
        b, size, _, c = input_shape
        ratio = self.output_size // size if size else 0
        if ratio < 1 or ratio * size != self.output_size or ratio & (ratio - 1):
            raise ValueError(f"{self.name}: output_size {self.output_size} must be the input "
                             f"size {size} times a power of two")
        self.blocks = []
        for i in range(ratio.bit_length() - 1):
            block = UpBlock(max(self.filters // 2 ** i, 4), norm="layer",
                            dtype=self.dtype_policy, name=f"up_{i}")
            block.build((b, size, size, c))
            size, c = 2 * size, block.filters
            self.blocks.append(block)
        self.to_image.build((b, size, size, c))

    def call(self, x):
        for block in self.blocks:
            x = block(x)
        return ops.tanh(self.to_image(x))

    def get_config(self):
        return {**super().get_config(), "output_size": self.output_size,
                "channels": self.channels, "filters": self.filters}


@keras.saving.register_keras_serializable(package="tfastro")
class ConditionProjection(keras.layers.Layer):
    """Projection-discriminator term <embed(theta), phi> (Miyato & Koyama 2018).

    ``call(features, theta)``: features phi (B, F), theta (B, n_params) the (normalised)
    parameters; embed is a two-layer MLP (``hidden`` units, LeakyReLU 0.2) to F features.
    Returns (B,). ``build(features_shape, theta_shape=None)``, Keras' convention for several
    inputs.
    """

    def __init__(self, n_params, hidden=64, **kwargs):
        super().__init__(**kwargs)
        self.n_params = int(n_params)
        self.hidden = int(hidden)
        if self.n_params < 1:
            raise ValueError(f"n_params must be at least 1, got {n_params}")
        self.embed_hidden = keras.layers.Dense(self.hidden, dtype=self.dtype_policy, name="hidden")

    def build(self, features_shape, theta_shape=None):
        _check_channels(self.name, "theta", theta_shape, self.n_params)
        self.embed_hidden.build((None, self.n_params))
        self.embed = keras.layers.Dense(features_shape[-1], dtype=self.dtype_policy, name="embed")
        self.embed.build((None, self.hidden))

    def call(self, features, theta):
        embedding = self.embed(ops.leaky_relu(self.embed_hidden(theta), 0.2))
        return ops.sum(embedding * features, axis=-1)

    def get_config(self):
        return {**super().get_config(), "n_params": self.n_params, "hidden": self.hidden}
