"""Conditional FastGAN-style emulator of multifield maps (Andrianomena et al. 2024 lineage).

Images are channels-last (B, R, R, C) in [-1, 1] (the normalised log fields); the condition
theta is (B, n_params), e.g. normalised (Omega_m, sigma_8); n_params = 0 is the
unconditional model. The generator returns maps at R and R/2; the discriminator looks at
both (the real half-resolution map is the 2x2 average pool of the full one) and returns raw
logits. ``MultifieldGAN`` trains them with WGAN-GP or hinge losses plus the discriminator's
self-supervised reconstruction loss, and keeps an exponential moving average of the
generator for sampling.

The generator records the names of its map channels (``fields``) and of its conditioning
parameters (``param_names``) in its config, so a saved GAN maps physical parameters to maps in
physical units on its own (:meth:`MultifieldGAN.generate_physical`), through the fixed ranges of
:mod:`tfastro.multifield.io` (``LOG10_RANGES``, ``PARAM_RANGES``).

The networks and the GAN train, evaluate and sample on Keras' TensorFlow and JAX backends alike,
with the same noise (a counter-based generator written in keras.ops); tf.distribute is
TensorFlow's only.
"""
import functools
import sys

import keras
import numpy as np
from keras import ops

from tfastro.core.errors import UserInputError
from tfastro.multifield.io import (check_fields, check_param_names, denormalise_maps,
                                   normalise_params)
from tfastro.multifield.layers import (GLU, ConditionProjection, DownBlock, SimpleDecoder,
                                       SkipLayerExcitation, UpBlock)

RESOLUTIONS = (32, 64, 128, 256)


# Channels of the feature maps at each resolution for width = 1 (about 5 M generator and
# 9 M discriminator parameters at 256^2).
FEATURE_WIDTHS = {4: 256, 8: 256, 16: 128, 32: 128, 64: 64, 128: 32, 256: 16}


LOSSES = ("wgan-gp", "hinge")


def check_resolution(resolution):
    """``resolution`` as an int; ValueError unless it is one of RESOLUTIONS."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {resolution!r}")
    return int(resolution)


def feature_widths(width):
    """{resolution: channels} of FEATURE_WIDTHS scaled by ``width`` (at least 4 channels)."""
    if not width > 0:
        raise ValueError(f"width must be positive, got {width!r}")
    return {r: max(4, int(round(c * width))) for r, c in FEATURE_WIDTHS.items()}


def generator_excitations(resolution):
    """(source, target) resolutions of the generator's skip-layer excitations.

    Each source s in (4, 8, 16) excites target min(16 s, R), kept where that is at least 4 s:
    at R = 256 this is FastGAN's 4->64, 8->128, 16->256; smaller R connect each source to
    the highest resolution available (R = 32: 4->32, 8->32).
    """
    pairs = [(s, min(16 * s, resolution)) for s in (4, 8, 16)]
    return [(s, t) for s, t in pairs if t >= 4 * s]


def discriminator_excitations(resolution):
    """(source, target) resolutions of the excitations in a discriminator branch whose input
    has ``resolution``: every feature map of size r >= 32 excites the one of size r / 8
    (at 256: 256->32, 128->16, 64->8, 32->4)."""
    return [(r, r // 8) for r in _halvings(resolution) if r // 8 >= 4]


def _halvings(resolution):
    """resolution, resolution/2, ..., 4."""
    return [resolution >> i for i in range(int(np.log2(resolution)) - 1)]


def average_pool(images, factor):
    """Average (B, H, W, C) over factor x factor blocks -> (B, H/factor, W/factor, C)."""
    return ops.average_pool(images, factor, factor, padding="valid")


def _recorded_names(name, names, count, check):
    """``names`` (None: not recorded) as a tuple of ``count`` names that ``check`` accepts."""
    if names is None:
        return None
    names = tuple(names)
    if names:
        check(names)
    if len(names) != count:
        raise ValueError(f"{name}={names!r}: expected {count} names")
    return names


def _split_inputs(inputs, count):
    """The first ``count`` tensors of ``inputs`` (a tensor or a list/tuple), then theta or None."""
    tensors = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    if len(tensors) not in (count, count + 1):
        raise ValueError(f"expected {count} input(s) and optionally theta, got {len(tensors)}")
    return tensors[:count], (tensors[count] if len(tensors) > count else None)


@keras.saving.register_keras_serializable(package="tfastro")
class Generator(keras.Model):
    """FastGAN-style generator of (B, R, R, channels) maps conditioned on theta.

    z (B, latent_dim) is concatenated with an MLP embedding of theta (B, n_params) (none for
    n_params = 0), a 4x4 transposed convolution (batch norm, GLU) makes the 4x4 stem, and
    up-blocks (nearest x2, 3x3 conv, batch norm scaled and shifted by the theta embedding,
    GLU) double it to R, with skip-layer
    excitations (see ``generator_excitations``). 3x3 convolutions and tanh give the maps at
    R and R/2.

    ``call([z, theta], training=False)`` (``call(z)`` when n_params = 0) returns
    (full (B, R, R, channels), half (B, R/2, R/2, channels)), float32 in (-1, 1).
    Batch norm uses batch statistics when training and its moving averages otherwise.

    ``fields`` (``channels`` names of ``io.LOG10_RANGES``, in channel order) and
    ``param_names`` (``n_params`` names of ``io.PARAM_RANGES``, in the order of theta's
    columns) record what the maps and theta are; None: not recorded.

    The input shapes follow from the arguments, so the model is built when made, as a
    functional model is (``summary()`` and callbacks that need the weights before ``fit``,
    such as BackupAndRestore, work at once).
    """

    def __init__(self, resolution=256, channels=3, latent_dim=256, n_params=2, width=1.0,
                 condition_dim=64, fields=None, param_names=None, **kwargs):
        super().__init__(**kwargs)
        self.resolution = check_resolution(resolution)
        self.channels = int(channels)
        self.latent_dim = int(latent_dim)
        self.n_params = int(n_params)
        self.width = float(width)
        self.condition_dim = int(condition_dim)
        if self.n_params < 0:
            raise ValueError(f"n_params must be >= 0, got {n_params}")
        self.fields = _recorded_names("fields", fields, self.channels, check_fields)
        self.param_names = _recorded_names("param_names", param_names, self.n_params,
                                           check_param_names)
        widths = feature_widths(self.width)
        policy = self.dtype_policy
        if self.n_params:
            self.condition_hidden = keras.layers.Dense(self.condition_dim, dtype=policy,
                                                       name="condition_hidden")
            self.condition_embed = keras.layers.Dense(self.condition_dim, dtype=policy,
                                                      name="condition_embed")
        self.stem = keras.layers.Conv2DTranspose(2 * widths[4], 4, use_bias=False,
                                                 dtype=policy, name="stem")
        self.stem_norm = keras.layers.BatchNormalization(dtype=policy, name="stem_norm")
        self.stem_glu = GLU(dtype=policy, name="stem_glu")
        self.ups = {r: UpBlock(widths[r], norm="batch",
                               condition_dim=self.condition_dim if self.n_params else 0,
                               dtype=policy, name=f"up_{r}")
                    for r in _halvings(self.resolution)[-2::-1]}
        self.excitations = {(s, t): SkipLayerExcitation(widths[t], dtype=policy,
                                                        name=f"excite_{s}_{t}")
                            for s, t in generator_excitations(self.resolution)}
        self.to_full = keras.layers.Conv2D(self.channels, 3, padding="same", dtype=policy,
                                           name="to_full")
        self.to_half = keras.layers.Conv2D(self.channels, 3, padding="same", dtype=policy,
                                           name="to_half")
        self.build()

    def build(self, input_shape=None):
        z = keras.KerasTensor((None, self.latent_dim))
        theta = keras.KerasTensor((None, self.n_params))
        self._forward(z, theta, training=False)

    def call(self, inputs, training=False):
        (z,), theta = _split_inputs(inputs, 1)
        if self.n_params and theta is None:
            raise ValueError(f"{self.name} is conditioned on {self.n_params} parameters: "
                             f"call it with [z, theta]")
        return self._forward(z, theta, training)

    def _forward(self, z, theta, training):
        code, embedding = ops.cast(z, self.compute_dtype), None
        if self.n_params:
            embedding = self.condition_embed(
                ops.leaky_relu(self.condition_hidden(ops.cast(theta, self.compute_dtype)), 0.2))
            code = ops.concatenate([code, embedding], axis=-1)
        x = self.stem(ops.reshape(code, (-1, 1, 1, code.shape[-1])))
        features = {4: self.stem_glu(self.stem_norm(x, training=training))}
        for r, up in self.ups.items():
            x = up(features[r // 2], embedding, training=training)
            for (s, t), excite in self.excitations.items():
                if t == r:
                    x = excite(features[s], x)
            features[r] = x
        full = ops.tanh(self.to_full(features[self.resolution]))
        half = ops.tanh(self.to_half(features[self.resolution // 2]))
        return ops.cast(full, "float32"), ops.cast(half, "float32")

    def get_config(self):
        return {**super().get_config(), "resolution": self.resolution, "channels": self.channels,
                "latent_dim": self.latent_dim, "n_params": self.n_params, "width": self.width,
                "condition_dim": self.condition_dim,
                "fields": None if self.fields is None else list(self.fields),
                "param_names": None if self.param_names is None else list(self.param_names)}


@keras.saving.register_keras_serializable(package="tfastro")
class Discriminator(keras.Model):
    """Two-branch projection discriminator (critic) on maps at R and R/2.

    Each branch: a 3x3 convolution (LeakyReLU 0.2), stride-2 down-blocks to 4x4 with
    skip-layer excitations (see ``discriminator_excitations``), a 4x4 'valid' convolution
    to features (B, F). When n_params > 0, theta is appended to each branch's input as
    constant channels, and the logit, linear in the concatenated features phi, gains the
    projection <embed(theta), phi>. No batch norm anywhere (layer norm in
    the down-blocks), so each sample's logit depends on that sample only, as the gradient
    penalty requires.

    Self-supervised decoders reconstruct the real map average-pooled to
    ``reconstruction_size`` = min(128, R/2): one from each branch's 8x8 features, and one
    from a quadrant of the full branch's 16x16 features (-> the same quadrant of the map).

    ``call([full, half, theta], training=False, return_reconstructions=False, quadrant=0)``
    (no theta when n_params = 0): full (B, R, R, channels), half (B, R/2, R/2, channels);
    quadrant an int or (B,) ints in 0..3 (row-major: 0 top-left, 3 bottom-right).
    Returns logits (B,) float32, or (logits, [from_full, from_half, from_quadrant]) each
    (B, S, S, channels) float32 with S = reconstruction_size.
    Built when made, as the ``Generator``.
    """

    def __init__(self, resolution=256, channels=3, n_params=2, width=1.0, **kwargs):
        super().__init__(**kwargs)
        self.resolution = check_resolution(resolution)
        self.channels = int(channels)
        self.n_params = int(n_params)
        self.width = float(width)
        if self.n_params < 0:
            raise ValueError(f"n_params must be >= 0, got {n_params}")
        self.reconstruction_size = min(128, self.resolution // 2)
        widths = feature_widths(self.width)
        policy = self.dtype_policy
        self.branches = {size: self._branch(size, widths, f"branch_{size}")
                         for size in (self.resolution, self.resolution // 2)}
        self.logit = keras.layers.Dense(1, dtype=policy, name="logit")
        self.projection = (ConditionProjection(self.n_params, dtype=policy, name="projection")
                           if self.n_params else None)
        self.decoders = [SimpleDecoder(self.reconstruction_size, self.channels, widths[64],
                                       dtype=policy, name=f"decoder_{part}")
                         for part in ("full", "half", "quadrant")]
        self.build()

    def _branch(self, size, widths, name):
        policy = self.dtype_policy
        return {
            "stem": keras.layers.Conv2D(widths[size], 3, padding="same", dtype=policy,
                                        name=f"{name}_stem"),
            "downs": {r // 2: DownBlock(widths[r // 2], dtype=policy, name=f"{name}_down_{r // 2}")
                      for r in _halvings(size)[:-1]},
            "excitations": {(s, t): SkipLayerExcitation(widths[t], dtype=policy,
                                                        name=f"{name}_excite_{s}_{t}")
                            for s, t in discriminator_excitations(size)},
            "head": keras.layers.Conv2D(widths[4], 4, padding="valid", dtype=policy,
                                        name=f"{name}_head"),
        }

    def build(self, input_shape=None):
        r, c = self.resolution, self.channels
        inputs = [keras.KerasTensor((None, r, r, c)), keras.KerasTensor((None, r // 2, r // 2, c))]
        if self.n_params:
            inputs.append(keras.KerasTensor((None, self.n_params)))
        self.call(inputs, return_reconstructions=True)

    def _features(self, branch, image, theta):
        """Run one branch on ``image`` with ``theta`` appended as constant channels:
        (features (B, F), {resolution: feature map})."""
        x = ops.cast(image, self.compute_dtype)
        if self.n_params:
            theta = ops.cast(theta, self.compute_dtype)
            planes = ops.ones_like(x[..., :1]) * theta[:, None, None, :]
            x = ops.concatenate([x, planes], axis=-1)
        x = ops.leaky_relu(branch["stem"](x), 0.2)
        maps = {image.shape[1]: x}
        for r, down in branch["downs"].items():
            x = down(x)
            for (s, t), excite in branch["excitations"].items():
                if t == r:
                    x = excite(maps[s], x)
            maps[r] = x
        features = ops.leaky_relu(branch["head"](x), 0.2)
        return ops.reshape(features, (-1, features.shape[-1])), maps

    def call(self, inputs, training=False, return_reconstructions=False, quadrant=0):
        (full, half), theta = _split_inputs(inputs, 2)
        if self.n_params and theta is None:
            raise ValueError(f"{self.name} is conditioned on {self.n_params} parameters: "
                             f"call it with [full, half, theta]")
        phi_full, maps_full = self._features(self.branches[self.resolution], full, theta)
        phi_half, maps_half = self._features(self.branches[self.resolution // 2], half, theta)
        phi = ops.concatenate([phi_full, phi_half], axis=-1)
        logits = self.logit(phi)[:, 0]
        if self.projection is not None:
            logits = logits + self.projection(phi, ops.cast(theta, self.compute_dtype))
        logits = ops.cast(logits, "float32")
        if not return_reconstructions:
            return logits
        sources = [maps_full[8], maps_half[8], take_quadrant(maps_full[16], quadrant)]
        reconstructions = [ops.cast(decoder(x), "float32")
                           for decoder, x in zip(self.decoders, sources)]
        return logits, reconstructions

    def get_config(self):
        return {**super().get_config(), "resolution": self.resolution, "channels": self.channels,
                "n_params": self.n_params, "width": self.width}


def take_quadrant(images, quadrant):
    """Quadrant of (B, H, W, C) -> (B, H/2, W/2, C); quadrant an int (the same for every
    sample) or (B,) ints, row-major 0..3 (0 top-left, 3 bottom-right)."""
    h, w = images.shape[1] // 2, images.shape[2] // 2
    quarters = [images[:, :h, :w], images[:, :h, w:], images[:, h:, :w], images[:, h:, w:]]
    if isinstance(quadrant, int):
        return quarters[quadrant]
    select = ops.one_hot(ops.cast(quadrant, "int32"), 4, dtype=images.dtype)
    return ops.einsum("bq,bqhwc->bhwc", select, ops.stack(quarters, axis=1))


def reconstruction_targets(real_full, size, quadrant):
    """What the decoders must reproduce from a real map (B, R, R, C): the map pooled to
    ``size`` (for the full and the half branch) and its ``quadrant`` pooled to ``size``."""
    pooled = average_pool(real_full, real_full.shape[1] // size)
    part = take_quadrant(real_full, quadrant)
    return [pooled, pooled, average_pool(part, part.shape[1] // size)]


def reconstruction_loss(reconstructions, targets):
    """Sum over decoders of the mean absolute error (L1), float32."""
    return sum(ops.mean(ops.abs(ops.cast(r, "float32") - ops.cast(t, "float32")))
               for r, t in zip(reconstructions, targets))


def input_gradients(scores, inputs):
    """Gradients of ``sum(scores(*inputs))`` with respect to each tensor of ``inputs``, taken
    inside a training step (tf.GradientTape on TensorFlow, jax.grad on JAX), so that they can
    be differentiated again with respect to the variables ``scores`` reads."""
    backend = _check_backend()
    inputs = list(inputs)
    if backend == "jax":
        import jax
        return jax.grad(lambda xs: ops.sum(scores(*xs)))(inputs)
    import tensorflow as tf
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        total = ops.sum(scores(*inputs))
    return tape.gradient(total, inputs)


def gradient_penalty(critic, real, fake, epsilon, weight=10.0):
    """WGAN-GP penalty ``weight * E[(||grad D(x_hat)||_2 - 1)^2]`` (Gulrajani et al. 2017).

    critic: callable taking the images (one positional argument per resolution) and
      returning (B,) scores; it must treat samples independently (no batch norm).
    real, fake: sequences of images at each resolution, (B, ...) each.
    epsilon: (B,) mixing weights in [0, 1]; x_hat = eps * x + (1 - eps) * x_fake at every
      resolution with the same eps per sample.
    The gradient norm is taken over all inputs' pixels jointly: ||g||^2 = sum over the
    resolutions of the squared gradients, i.e. the critic is one function of the pair.
    Returns a float32 scalar.
    """
    eps = ops.cast(epsilon, "float32")
    mixed = []
    for x, x_fake in zip(real, fake):
        e = ops.reshape(eps, (-1,) + (1,) * (len(x.shape) - 1))
        mixed.append(e * ops.cast(x, "float32") + (1.0 - e) * ops.cast(x_fake, "float32"))
    # the gradient of the sum of per-sample scores holds the per-sample gradients
    grads = input_gradients(lambda *images: ops.cast(critic(*images), "float32"), mixed)
    squared = sum(ops.sum(ops.square(g), axis=tuple(range(1, len(g.shape)))) for g in grads)
    norm = ops.sqrt(squared + 1e-12)  # finite gradient of the norm at 0
    return weight * ops.mean(ops.square(norm - 1.0))


# --- noise ------------------------------------------------------------------------------------
# The GAN draws its noise from a counter-based generator written in keras.ops: every value is a
# hash of (seed, iteration, replica, draw, element). Every backend thus draws the same numbers
# (TensorFlow's and JAX's own stateless generators differ), and a run resumed from a
# checkpoint repeats what the uninterrupted run would do.

_LOWBIAS32 = ((16, np.uint32(0x7FEB352D)), (15, np.uint32(0x846CA68B)))
_GOLDEN = np.uint32(0x9E3779B9)


def _mix32(x):
    """lowbias32 (C. Wellons' integer hash) of uint32 words: a bijection in which every
    output bit depends on every input bit."""
    for shift, factor in _LOWBIAS32:
        x = ops.multiply(ops.bitwise_xor(x, ops.right_shift(x, shift)), factor)
    return ops.bitwise_xor(x, ops.right_shift(x, 16))


def _word(value):
    """A Python int (modulo 2^32) or an integer tensor as uint32."""
    if isinstance(value, (int, np.integer)):
        return ops.convert_to_tensor(np.uint32(int(value) % 2**32))
    return ops.cast(value, "uint32")


def _fold(key, word):
    """The uint32 key derived from ``key`` and ``word`` (broadcast against each other)."""
    return _mix32(ops.bitwise_xor(_word(key), _mix32(ops.add(_word(word), _GOLDEN))))


def counter_key(*words):
    """A uint32 key hashed from ``words`` (Python ints or integer tensors, modulo 2^32)."""
    key = _word(0)
    for word in words:
        key = _fold(key, word)
    return key


def _bits(key, shape, first=0):
    """Random uint32 words of ``shape`` ((n,) or (n, m); ints or scalar tensors): ``key``
    folded with each element's row-major index, rows counted from ``first``."""
    index = _word(ops.arange(shape[0])) + _word(first)
    if len(shape) == 2:
        index = index[:, None] * _word(shape[1]) + _word(ops.arange(shape[1]))[None, :]
    return _fold(key, index)


def counter_uniform(key, shape, first=0):
    """Uniform float32 draws in [0, 1) of ``shape`` (24 random bits each) from ``key``; rows
    from ``first`` on of the stream of ``key``."""
    return ops.cast(ops.right_shift(_bits(key, shape, first), 8), "float32") * 2.0**-24


def counter_normal(key, shape, first=0):
    """Standard normal float32 draws of ``shape`` from ``key`` (Box-Muller transform of two
    uniform streams), rows from ``first`` on."""
    u = 1.0 - counter_uniform(_fold(key, 1), shape, first)  # in (0, 1]
    v = counter_uniform(_fold(key, 2), shape, first)
    return ops.sqrt(-2.0 * ops.log(u)) * ops.cos(2.0 * np.pi * v)


def counter_quadrants(key, size, first=0):
    """(size,) int32 draws uniform over 0..3 from ``key`` (the top two random bits), from
    element ``first`` on."""
    return ops.cast(ops.right_shift(_bits(key, (size,), first), 30), "int32")


# --- backends ---------------------------------------------------------------------------------

BACKENDS = ("tensorflow", "jax")


def _check_backend():
    """Keras' backend name; UserInputError unless the GAN can train on it (BACKENDS)."""
    backend = keras.backend.backend()
    if backend not in BACKENDS:
        raise UserInputError(f"KERAS_BACKEND={backend}: the multifield GAN trains on "
                             f"{' or '.join(BACKENDS)} (its gradient penalty differentiates "
                             "the critic inside the step)")
    return backend


def _in_tf_distribute():
    """Whether a tf.distribute strategy is in scope (never when TensorFlow is not imported)."""
    tf = sys.modules.get("tensorflow")
    return tf is not None and tf.distribute.has_strategy()


def _replica_id():
    """This replica's index in a tf.distribute step (0 outside one and on JAX)."""
    if keras.backend.backend() != "tensorflow":
        return 0
    import tensorflow as tf
    context = tf.distribute.get_replica_context()
    return 0 if context is None else context.replica_id_in_sync_group


def _replicas():
    """Replicas in sync of the tf.distribute strategy (1 on JAX)."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf
    return tf.distribute.get_strategy().num_replicas_in_sync


def default_optimizer(learning_rate=2e-4):
    """Adam(learning_rate, beta_1=0.5, beta_2=0.999); 2e-4 is the FastGAN / paper setting."""
    return keras.optimizers.Adam(learning_rate, beta_1=0.5, beta_2=0.999)


_NOT_COMPILED = {
    "optimizer": "a GAN has two optimizers: pass d_optimizer and g_optimizer",
    "loss": "the GAN's losses are set by MultifieldGAN(loss='wgan-gp' or 'hinge', gp_weight, "
            "reconstruction_weight)",
    "loss_weights": "the GAN's losses are weighted by MultifieldGAN(gp_weight, "
                    "reconstruction_weight)",
    "metrics": "the GAN's metrics are fixed (d_loss, g_loss, gp, recon, wasserstein): it has "
               "no (y_true, y_pred) for a metric",
    "weighted_metrics": "the GAN's metrics are fixed (d_loss, g_loss, gp, recon, wasserstein)",
}


class GANOptimizers:
    """The discriminator's and the generator's optimizers as the one ``model.optimizer`` that
    Keras' trainers and callbacks read: their ``variables`` (the optimizer state of the JAX
    step), ``built`` / ``build``, ``iterations`` (the generator's steps, one per iteration)
    and ``optimizers`` (what the learning-rate callbacks adjust, e.g. ReduceLROnPlateau)."""

    def __init__(self, gan):
        self.pairs = ((gan.d_optimizer, gan.discriminator), (gan.g_optimizer, gan.generator))

    @property
    def optimizers(self):
        return [optimizer for optimizer, _ in self.pairs]

    @property
    def variables(self):
        return [v for optimizer in self.optimizers for v in optimizer.variables]

    @property
    def built(self):
        return all(optimizer.built for optimizer in self.optimizers)

    @property
    def iterations(self):
        return self.optimizers[-1].iterations

    def build(self, variables=None):
        """Create each optimizer's variables (moments, step count) for its network's trainable
        variables (``variables``, the whole model's, is not needed), so that a checkpoint
        restores them instead of leaving fresh ones."""
        for optimizer, network in self.pairs:
            if not optimizer.built:
                optimizer.build(network.trainable_variables)


@keras.saving.register_keras_serializable(package="tfastro")
class MultifieldGAN(keras.Model):
    """Adversarial training of a Generator and a Discriminator, with a generator EMA.

    Args:
      generator, discriminator: of the same resolution, channels and n_params.
      loss: "wgan-gp" (d = E[D(fake)] - E[D(real)] + GP) or "hinge"
        (d = E[relu(1 - D(real))] + E[relu(1 + D(fake))]); g = -E[D(fake)] for both.
      gp_weight: lambda of the gradient penalty (wgan-gp only).
      reconstruction_weight: weight of the decoders' L1 loss on real maps, added to d.
      ema_decay: decay d of the generator moving average; at step t the EMA moves with
        min(d, (1 + t) / (10 + t)) (warm-up, as TensorFlow's ExponentialMovingAverage with
        num_updates), so it is useful after short runs too.
      n_critic: discriminator steps per generator step (all on the same real batch).
      seed: seed of the noise drawn in the steps. Every draw (z, interpolation epsilon,
        decoder quadrant) is a counter-based hash of (seed, iteration, replica, draw), the
        same on every backend (see ``noise``), so a run resumed from a checkpoint repeats
        exactly what the uninterrupted run would do.

    ``fit`` takes batches (maps (B, R, R, C) in [-1, 1], theta (B, n_params)); the real
    half-resolution map is the 2x2 average pool of the full one. A step makes ``n_critic``
    discriminator updates, one generator update and the EMA update, and counts one
    ``iteration``. ``evaluate`` (and ``fit``'s ``validation_data``) computes the same losses
    and updates nothing: the trained generator in inference mode (batch norm on its moving
    statistics) and the noise of iteration 0, which training never draws, its row k for the
    k-th sample evaluated, so the results depend neither on the batching nor, from epoch to
    epoch, on anything but the networks. Metrics, means over the samples of the epoch or the
    evaluation: d_loss, g_loss, gp, recon, wasserstein
    (E[D(real)] - E[D(fake)]); fit reports the validation ones as ``val_<name>``, which
    EarlyStopping or ModelCheckpoint can monitor, told the direction (``mode="min"``; Keras
    cannot tell it for a GAN's metric).

    ``compile(d_optimizer, g_optimizer)``: the losses are the constructor's, so compile takes
    no loss nor metrics; ``model.optimizer`` holds both optimizers (``GANOptimizers``). The
    model (with ``ema_generator``, the iteration counter and both optimizers' state) is built
    by ``build()`` and saved whole in ``.keras`` files.

    Backends: TensorFlow and JAX, the same steps on the same noise. On JAX Keras calls the
    stateless ``train_step(state, data)``, and the gradient penalty differentiates the
    critic with jax.grad. Distribution with tf.distribute (``--strategy`` mirrored or
    multi_worker_mirrored) is TensorFlow-only: ``compile`` under a tf.distribute strategy on
    another backend is refused.
    """

    def __init__(self, generator, discriminator, loss="wgan-gp", gp_weight=10.0,
                 reconstruction_weight=1.0, ema_decay=0.999, n_critic=1, seed=0, **kwargs):
        super().__init__(**kwargs)
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        for key in ("resolution", "channels", "n_params"):
            if getattr(generator, key) != getattr(discriminator, key):
                raise ValueError(f"generator and discriminator differ in {key}: "
                                 f"{getattr(generator, key)} vs {getattr(discriminator, key)}")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
        if int(n_critic) < 1:
            raise ValueError(f"n_critic must be at least 1, got {n_critic}")
        self.generator = generator
        self.discriminator = discriminator
        self.loss_name = loss
        self.gp_weight = float(gp_weight)
        self.reconstruction_weight = float(reconstruction_weight)
        self.ema_decay = float(ema_decay)
        self.n_critic = int(n_critic)
        self.seed = int(seed)
        self.ema_generator = Generator.from_config(
            {**generator.get_config(), "name": f"ema_{generator.name}"})
        self.ema_generator.trainable = False
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("d_loss", "g_loss", "gp", "recon", "wasserstein")}
        self.samples = keras.metrics.Sum(name="samples")  # of an evaluation so far
        self.d_optimizer = self.g_optimizer = self.optimizer = None

    @property
    def metrics(self):
        return [*self.trackers.values(), self.samples]

    # --- building, compiling, saving ---------------------------------------------------------

    def build(self, input_shape=None):
        """Build both networks and the EMA copy (initialised to the generator's weights), the
        iteration counter, and the optimizers if compiled."""
        for network in (self.generator, self.discriminator, self.ema_generator):
            if not network.built:
                network.build()
        for average, weight in zip(self.ema_generator.weights, self.generator.weights):
            if average.shape != weight.shape:
                raise ValueError(f"EMA weight {average.path} {average.shape} does not match "
                                 f"{weight.path} {weight.shape}")
            # a copy: on JAX a shared buffer would be donated twice by each step
            average.assign(ops.copy(weight.value))
        self.iteration = self.add_weight(name="iteration", shape=(), dtype="int64",
                                         initializer="zeros", trainable=False,
                                         aggregation="only_first_replica")
        self.built = True
        if self.optimizer is not None:
            self.optimizer.build()

    def get_build_config(self):
        return {"built": True} if self.built else {}

    def build_from_config(self, config):
        if config:
            self.build()

    def compile(self, d_optimizer=None, g_optimizer=None, auto_scale_loss=True, **kwargs):
        """Set the two optimizers (default ``default_optimizer()`` each); under a
        mixed_float16 policy each is wrapped in a LossScaleOptimizer (unless
        ``auto_scale_loss`` is False). Other keyword arguments (run_eagerly, jit_compile,
        steps_per_execution) go to keras' compile; ``optimizer``, ``loss``, ``loss_weights``,
        ``metrics`` and ``weighted_metrics`` are refused (UserInputError: the losses and
        metrics are the GAN's own). Builds the model and both optimizers."""
        for name, reason in _NOT_COMPILED.items():
            if kwargs.get(name) is not None:
                raise UserInputError(f"MultifieldGAN.compile({name}={kwargs[name]!r}): {reason}")
        if d_optimizer is not None and d_optimizer is g_optimizer:
            raise UserInputError("MultifieldGAN.compile: d_optimizer and g_optimizer are one "
                                 "object; each network needs its own optimizer")
        backend = _check_backend()
        if backend != "tensorflow" and _in_tf_distribute():
            raise UserInputError(f"MultifieldGAN compiled in a tf.distribute strategy with "
                                 f"KERAS_BACKEND={backend}: tf.distribute needs the TensorFlow "
                                 "backend (on JAX, keras.distribution spreads a step)")
        kwargs = {k: v for k, v in kwargs.items() if k not in _NOT_COMPILED}
        super().compile(optimizer=None, **kwargs)
        if not self.built:
            self.build()
        self.d_optimizer = self._scaled(d_optimizer or default_optimizer(), self.discriminator,
                                        auto_scale_loss)
        self.g_optimizer = self._scaled(g_optimizer or default_optimizer(), self.generator,
                                        auto_scale_loss)
        self.optimizer = GANOptimizers(self)
        self.optimizer.build()

    @staticmethod
    def _scaled(optimizer, network, auto_scale_loss):
        if (auto_scale_loss and network.dtype_policy.name == "mixed_float16"
                and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer)):
            return keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

    def get_compile_config(self):
        """Both optimizers, run_eagerly and steps_per_execution; jit_compile is left to
        resolve where the model is loaded (its "auto" depends on the backend and devices)."""
        if self.d_optimizer is None:
            return {}
        return {"d_optimizer": keras.saving.serialize_keras_object(self.d_optimizer),
                "g_optimizer": keras.saving.serialize_keras_object(self.g_optimizer),
                "run_eagerly": self.run_eagerly,
                "steps_per_execution": self.steps_per_execution}

    def compile_from_config(self, config):
        config = dict(config)  # files saved before hold the optimizers only
        self.compile(d_optimizer=keras.saving.deserialize_keras_object(config.pop("d_optimizer")),
                     g_optimizer=keras.saving.deserialize_keras_object(config.pop("g_optimizer")),
                     **config)

    def get_config(self):
        return {**super().get_config(),
                "generator": keras.saving.serialize_keras_object(self.generator),
                "discriminator": keras.saving.serialize_keras_object(self.discriminator),
                "loss": self.loss_name, "gp_weight": self.gp_weight,
                "reconstruction_weight": self.reconstruction_weight,
                "ema_decay": self.ema_decay, "n_critic": self.n_critic, "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("generator", "discriminator"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)

    # --- sampling ----------------------------------------------------------------------------

    def call(self, inputs, training=False):
        """The EMA generator's maps: inputs [z, theta] -> (full, half)."""
        return self.ema_generator(inputs, training=False)

    def generate(self, theta, z=None, seed=None, use_ema=True, batch_size=64):
        """Maps for parameters ``theta`` (N, n_params) ((N, 0) when unconditional).

        z: (N, latent_dim) latents, or None to draw standard normals with
        ``numpy.random.default_rng(seed)``. use_ema: sample the moving-average generator
        (else the trained one); batch norm uses its moving statistics either way.
        Returns numpy float32 (N, R, R, channels) in [-1, 1].
        """
        theta = np.asarray(theta, "float32")
        if theta.ndim != 2 or theta.shape[1] != self.generator.n_params:
            raise ValueError(f"theta must have shape (N, {self.generator.n_params}), "
                             f"got {theta.shape}")
        if z is None:
            z = np.random.default_rng(seed).standard_normal(
                (len(theta), self.generator.latent_dim)).astype("float32")
        z = np.asarray(z, "float32")
        if z.shape != (len(theta), self.generator.latent_dim):
            raise ValueError(f"z must have shape ({len(theta)}, {self.generator.latent_dim}), "
                             f"got {z.shape}")
        if not self.built:
            self.build()
        network = self.ema_generator if use_ema else self.generator
        maps = [ops.convert_to_numpy(network([z[i:i + batch_size], theta[i:i + batch_size]],
                                             training=False)[0])
                for i in range(0, len(theta), batch_size)]
        return np.concatenate(maps, axis=0)

    def generate_physical(self, params, z=None, seed=None, use_ema=True, batch_size=64):
        """Maps in physical units for physical parameters: ``params`` (N, n_params), columns
        the generator's ``param_names`` (e.g. Omega_m, sigma_8), are normalised over their
        Latin-hypercube ranges (``io.normalise_params``), and the generated maps are turned
        back into physical units with the fixed log10 ranges of its ``fields``
        (``io.denormalise_maps``). z, seed, use_ema, batch_size: as in :meth:`generate`.
        Returns numpy float32 (N, R, R, channels).
        """
        names, fields = self.generator.param_names, self.generator.fields
        if names is None or fields is None:
            raise ValueError(f"{self.generator.name} records no field and parameter names (saved "
                             "before generators carried them): use generate() with "
                             "io.normalise_params and io.denormalise_maps")
        params = np.asarray(params, np.float64)
        theta = normalise_params(params, names) if names else np.zeros((len(params), 0))
        return denormalise_maps(self.generate(theta.astype("float32"), z, seed, use_ema,
                                              batch_size), fields)

    # --- training and evaluation --------------------------------------------------------------

    def noise(self, iteration, draw, batch, first=0):
        """The noise of draw ``draw`` (critic step ``draw`` < n_critic, the generator step
        = n_critic) of iteration ``iteration`` (0: evaluation) for samples ``first`` to
        ``first + batch - 1`` on this replica: (z (batch, latent_dim) float32 standard normal,
        epsilon (batch,) float32 uniform in [0, 1), quadrant (batch,) int32 uniform over
        0..3)."""
        key = counter_key(self.seed, iteration, _replica_id(), draw)
        return (counter_normal(_fold(key, 0), (batch, self.generator.latent_dim), first),
                counter_uniform(_fold(key, 1), (batch,), first),
                counter_quadrants(_fold(key, 2), batch, first))

    def train_step(self, *args):
        """One iteration on a batch (see the class docstring). Keras calls
        ``train_step(data)`` on TensorFlow and the stateless ``train_step(state, data)`` on JAX,
        which returns the new state with the logs."""
        if keras.backend.backend() == "jax":
            return self._stateless(self._train, *args)
        return self._train(*args)

    def test_step(self, *args):
        """The losses on a batch, updating nothing (see the class docstring);
        ``test_step(data)`` on TensorFlow, ``test_step(state, data)`` on JAX."""
        if keras.backend.backend() == "jax":
            return self._stateless(self._test, *args)
        return self._test(*args)

    def _stateless(self, step, state, data):
        """``step(data)`` on the values of Keras' JAX state (trainable, non-trainable,
        optimizer (training only) and metrics variables, in the order of Keras' JAX trainer)
        instead of the variables: returns (logs, the new state)."""
        groups = [self.trainable_variables, self.non_trainable_variables]
        if len(state) == 4:
            groups.append(self.optimizer.variables)
        groups.append(self.metrics_variables)
        mapping = [(variable, value) for variables, values in zip(groups, state)
                   for variable, value in zip(variables, values)]
        with keras.StatelessScope(state_mapping=mapping) as scope:
            logs = step(data)
        return logs, tuple([scope.get_current_value(v) for v in variables] for variables in groups)

    def _train(self, data):
        """The iteration of ``train_step``, written once for both backends: variables are
        read and assigned as usual (on JAX inside the step's StatelessScope) and only the
        gradient step differs (``_minimise``)."""
        real_full, theta = self._unpack(data)
        real = (real_full, average_pool(real_full, 2))
        self.iteration.assign_add(1)
        iteration = ops.convert_to_tensor(self.iteration)
        batch = ops.shape(real_full)[0]
        critic = self._critic(theta, training=True)
        for step in range(self.n_critic):
            z, epsilon, quadrant = self.noise(iteration, step, batch)
            fake = self.generator([z, theta], training=True)
            d_loss, parts = self._minimise(
                self.d_optimizer, self.discriminator,
                functools.partial(self._critic_loss, critic, real, fake, epsilon, quadrant))
        z = self.noise(iteration, self.n_critic, batch)[0]
        g_loss, _ = self._minimise(
            self.g_optimizer, self.generator,
            lambda: (self._generator_loss(critic, self.generator([z, theta], training=True)), {}))
        self._update_ema(iteration)
        return self._record(batch, d_loss=d_loss, g_loss=g_loss, **parts)

    def _test(self, data):
        """The evaluation of ``test_step`` on both backends."""
        real_full, theta = self._unpack(data)
        batch = ops.shape(real_full)[0]
        # sample k of an evaluation draws row k of the noise, however the data are batched
        z, epsilon, quadrant = self.noise(0, 0, batch, ops.cast(self.samples.result(), "int32"))
        self.samples.update_state(ops.cast(batch, "float32"))
        fake = self.generator([z, theta], training=False)
        critic = self._critic(theta, training=False)
        d_loss, parts = self._critic_loss(critic, (real_full, average_pool(real_full, 2)), fake,
                                          epsilon, quadrant)
        return self._record(batch, d_loss=d_loss, g_loss=self._generator_loss(critic, fake),
                            **parts)

    def _critic(self, theta, training):
        """The discriminator as a function of the maps (full, half) at parameters theta."""
        return lambda full, half, **kwargs: self.discriminator([full, half, theta],
                                                               training=training, **kwargs)

    def _critic_loss(self, critic, real, fake, epsilon, quadrant):
        """(d_loss, {"gp", "recon", "wasserstein"}) float32 of the critic on real and fake
        (full, half) maps; epsilon (B,) mixes them for the gradient penalty, quadrant (B,)
        picks the decoders' targets."""
        real_logits, reconstructions = critic(*real, return_reconstructions=True,
                                              quadrant=quadrant)
        fake_logits = critic(*fake)
        wasserstein = ops.mean(real_logits) - ops.mean(fake_logits)
        if self.loss_name == "wgan-gp":
            adversarial = -wasserstein
            gp = gradient_penalty(critic, real, fake, epsilon, self.gp_weight)
        else:
            adversarial = (ops.mean(ops.relu(1.0 - real_logits))
                           + ops.mean(ops.relu(1.0 + fake_logits)))
            gp = ops.zeros((), "float32")
        targets = reconstruction_targets(real[0], self.discriminator.reconstruction_size,
                                         quadrant)
        recon = reconstruction_loss(reconstructions, targets)
        d_loss = adversarial + gp + self.reconstruction_weight * recon
        return d_loss, {"gp": gp, "recon": recon, "wasserstein": wasserstein}

    @staticmethod
    def _generator_loss(critic, fake):
        """-E[D(fake)] of fake (full, half) maps, float32."""
        return -ops.mean(critic(*fake))

    def _minimise(self, optimizer, network, loss_fn):
        """``loss_fn() -> (loss, parts)``, and one ``optimizer`` step of ``network``'s trainable
        variables down the gradient of loss; returns (loss, parts)."""
        variables = network.trainable_variables
        if keras.backend.backend() == "jax":
            return self._jax_minimise(optimizer, variables, loss_fn)
        import tensorflow as tf
        with tf.GradientTape() as tape:
            loss, parts = loss_fn()
            # tf.distribute sums the replicas' gradients: each replica's loss is its share
            scaled = optimizer.scale_loss(loss / _replicas())
        optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return loss, parts

    def _jax_minimise(self, optimizer, variables, loss_fn):
        """``_minimise`` inside the JAX step's StatelessScope, where each variable reads its
        state value: jax.grad differentiates loss_fn run in an inner scope that maps
        ``variables`` to its arguments (every other variable to its value), and the optimizer
        step and the batch-norm statistics loss_fn updated are assigned to the outer scope."""
        import jax
        values = [(v, v.value) for v in self.variables + self.optimizer.variables]

        def scaled_loss(weights):
            with keras.StatelessScope(state_mapping=values + list(zip(variables, weights))) \
                    as scope:
                loss, parts = loss_fn()
                scaled = optimizer.scale_loss(loss)
            states = [scope.get_current_value(v) for v in self.non_trainable_variables]
            return scaled, (loss, parts, states)

        grads, (loss, parts, states) = jax.grad(scaled_loss, has_aux=True)(
            [v.value for v in variables])
        for variable, state in zip(self.non_trainable_variables, states):
            variable.assign(state)
        weights, optimizer_state = optimizer.stateless_apply(
            [v.value for v in optimizer.variables], grads, [v.value for v in variables])
        for variable, value in zip(list(variables) + optimizer.variables,
                                   weights + optimizer_state):
            variable.assign(value)
        return loss, parts

    def _update_ema(self, iteration):
        """ema <- d ema + (1 - d) w for every generator weight (batch-norm statistics too),
        d = min(ema_decay, (1 + t) / (10 + t)) at step t."""
        t = ops.cast(iteration, "float32")
        decay = ops.minimum(self.ema_decay, (1.0 + t) / (10.0 + t))
        for average, weight in zip(self.ema_generator.weights, self.generator.weights):
            average.assign(decay * average + (1.0 - decay) * weight)

    def _record(self, batch, **values):
        """Add the step's values, means over ``batch`` samples, to the metrics (means over
        samples); returns the metrics' values."""
        for name, value in values.items():
            self.trackers[name].update_state(value, sample_weight=batch)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def _unpack(self, data):
        """(real_full float32 (B, R, R, C), theta float32 (B, n_params)) from a batch."""
        if isinstance(data, (tuple, list)):
            real_full, theta = data[0], (data[1] if len(data) > 1 else None)
        else:
            real_full, theta = data, None
        r, c = self.generator.resolution, self.generator.channels
        if tuple(real_full.shape[1:]) != (r, r, c):
            raise ValueError(f"real maps must have shape (B, {r}, {r}, {c}), got {real_full.shape}")
        n = self.generator.n_params
        if theta is None:
            if n:
                raise ValueError(f"the model is conditioned on {n} parameters: "
                                 f"give batches of (maps, theta)")
            theta = ops.zeros((ops.shape(real_full)[0], 0))
        elif theta.shape[-1] != n:
            raise ValueError(f"theta must have shape (B, {n}), got {theta.shape}")
        return ops.cast(real_full, "float32"), ops.cast(theta, "float32")
