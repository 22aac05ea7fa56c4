"""FastGAN layers (shared layer checks, Keras' own run_layer_test, numpy re-computations) and
the multifield Generator and Discriminator (shapes, resolution rules, conditioning, per-sample
independence)."""
from functools import partial

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src import testing

from tests.layer_testing import check_layer, randomize_weights
from tfastro.multifield.layers import (GLU, ConditionProjection, DownBlock, SimpleDecoder,
                                       SkipLayerExcitation, UpBlock)
from tfastro.multifield.model import (Discriminator, Generator, discriminator_excitations,
                                      generator_excitations)

TINY = 1 / 16  # width multiplier: 4-16 channels per feature map


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def conv3x3_same(x, kernel, bias=None):
    """numpy 'same' 3x3 cross-correlation, (B, H, W, Ci) x (3, 3, Ci, Co)."""
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    h, w = x.shape[1:3]
    y = sum(padded[:, i:i + h, j:j + w] @ kernel[i, j] for i in range(3) for j in range(3))
    return y if bias is None else y + bias


# --- shared layer checks ----------------------------------------------------------------------

def test_skip_layer_excitation_passes_layer_checks(rng, tmp_path):
    source, target = rng.normal(size=(2, 8, 8, 3)), rng.normal(size=(2, 16, 16, 5))
    (y,) = check_layer(partial(SkipLayerExcitation, 5), (source, target), tmp_path)
    assert y.shape == target.shape


@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_up_block_passes_layer_checks(rng, tmp_path, norm):
    (y,) = check_layer(partial(UpBlock, 4, norm=norm), (rng.normal(size=(2, 4, 4, 3)),), tmp_path)
    assert y.shape == (2, 8, 8, 4)


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_conditioned_up_block_passes_layer_checks(rng, tmp_path, norm):
    x, condition = rng.normal(size=(2, 4, 4, 3)), rng.normal(size=(2, 5))
    (y,) = check_layer(partial(UpBlock, 4, norm=norm, condition_dim=5), (x, condition), tmp_path)
    assert y.shape == (2, 8, 8, 4)


def test_up_block_condition_scales_and_shifts_the_features(rng):
    x = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    condition = rng.normal(size=(2, 5)).astype("float32")
    plain, conditioned = UpBlock(4, norm="none"), UpBlock(4, norm="none", condition_dim=5)
    plain.build(x.shape)
    conditioned.build(x.shape)
    conditioned.conv.set_weights(plain.conv.get_weights())
    # zero-initialised modulation: the block starts as the unconditioned one
    np.testing.assert_allclose(np.asarray(conditioned(x, condition)), np.asarray(plain(x)),
                               atol=1e-6)
    kernel = rng.normal(size=(5, 16)).astype("float32")
    conditioned.modulation.kernel.assign(kernel)
    gamma, beta = np.split(condition @ kernel, 2, axis=-1)
    features = np.asarray(plain.conv(np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)))
    modulated = features * (1 + gamma[:, None, None]) + beta[:, None, None]
    a, b = np.split(modulated, 2, axis=-1)
    np.testing.assert_allclose(np.asarray(conditioned(x, condition)), a / (1 + np.exp(-b)),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="conditioned"):
        conditioned(x)


@pytest.mark.parametrize("shortcut, norm", [(True, "layer"), (False, "layer"), (True, "none")])
def test_down_block_passes_layer_checks(rng, tmp_path, shortcut, norm):
    x = rng.normal(size=(2, 8, 8, 3))
    (y,) = check_layer(partial(DownBlock, 6, shortcut=shortcut, norm=norm), (x,), tmp_path)
    assert y.shape == (2, 4, 4, 6)


def test_simple_decoder_passes_layer_checks(rng, tmp_path):
    (y,) = check_layer(partial(SimpleDecoder, 16, 3, 8), (rng.normal(size=(2, 4, 4, 6)),), tmp_path)
    assert y.shape == (2, 16, 16, 3)
    assert np.abs(y).max() < 1.0  # tanh


def test_condition_projection_passes_layer_checks(rng, tmp_path):
    features, theta = rng.normal(size=(3, 6)), rng.uniform(size=(3, 2))
    (y,) = check_layer(partial(ConditionProjection, 2, 8), (features, theta), tmp_path)
    assert y.shape == (3,)


# Keras' own checks: configs, build against a call, symbolic and eager calls, a training step,
# mixed_float16 (float32 weights, outputs in the compute dtype). Layers of several inputs take
# their shapes as build(<input>_shape, ...), Keras' convention; Keras' training model passes
# one input, so check_layer above trains them.
KERAS_CASES = [
    (GLU, {}, (2, 4, 4, 6), (2, 4, 4, 3)),
    (UpBlock, {"filters": 4, "norm": "batch"}, (2, 4, 4, 3), (2, 8, 8, 4)),
    (UpBlock, {"filters": 4, "norm": "layer"}, (2, 4, 4, 3), (2, 8, 8, 4)),
    (UpBlock, {"filters": 4, "norm": "none"}, (2, 4, 4, 3), (2, 8, 8, 4)),
    (UpBlock, {"filters": 4, "norm": "batch", "condition_dim": 5},
     {"x_shape": (2, 4, 4, 3), "condition_shape": (2, 5)}, (2, 8, 8, 4)),
    (SkipLayerExcitation, {"channels": 5},
     {"source_shape": (2, 8, 8, 3), "target_shape": (2, 16, 16, 5)}, (2, 16, 16, 5)),
    (DownBlock, {"filters": 6}, (2, 8, 8, 3), (2, 4, 4, 6)),
    (DownBlock, {"filters": 6, "shortcut": False, "norm": "none"}, (2, 8, 8, 3), (2, 4, 4, 6)),
    (SimpleDecoder, {"output_size": 16, "channels": 3, "filters": 8}, (2, 4, 4, 6),
     (2, 16, 16, 3)),
    (ConditionProjection, {"n_params": 2, "hidden": 8},
     {"features_shape": (3, 6), "theta_shape": (3, 2)}, (3,)),
]


@pytest.mark.parametrize("layer_class, kwargs, input_shape, output_shape", KERAS_CASES,
                         ids=[f"{c.__name__}-{i}" for i, (c, *_) in enumerate(KERAS_CASES)])
def test_layers_pass_keras_run_layer_test(layer_class, kwargs, input_shape, output_shape):
    testing.TestCase().run_layer_test(
        layer_class, kwargs, input_shape=input_shape, expected_output_shape=output_shape,
        run_training_check=not isinstance(input_shape, dict), run_mixed_precision_check=True)


def test_layers_of_several_inputs_check_the_other_shapes():
    with pytest.raises(ValueError, match="condition must have 5 channels"):
        UpBlock(4, condition_dim=5).build((2, 4, 4, 3), condition_shape=(2, 4))
    with pytest.raises(ValueError, match="target must have 5 channels"):
        SkipLayerExcitation(5).build((2, 8, 8, 3), target_shape=(2, 16, 16, 4))
    with pytest.raises(ValueError, match="theta must have 2 channels"):
        ConditionProjection(2).build((3, 6), theta_shape=(3, 3))


# --- numbers against numpy --------------------------------------------------------------------

def test_glu_matches_numpy_in_every_mode(rng):
    x = rng.normal(size=(2, 3, 3, 8)).astype("float32")
    expected = x[..., :4] * sigmoid(x[..., 4:])
    layer = GLU()
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(tf.function(layer)(x)), expected, rtol=0, atol=1e-6)
    assert GLU.from_config(layer.get_config()).get_config() == layer.get_config()
    mixed = GLU(dtype="mixed_bfloat16")(x)
    assert keras.backend.standardize_dtype(mixed.dtype) == "bfloat16"
    np.testing.assert_allclose(np.asarray(keras.ops.cast(mixed, "float32")), expected, atol=0.03)
    with pytest.raises(ValueError, match="even number of channels"):
        layer(x[..., :3])


def test_skip_layer_excitation_matches_numpy(rng):
    source = rng.normal(size=(2, 8, 12, 3)).astype("float32")
    target = rng.normal(size=(2, 5, 7, 4)).astype("float32")
    layer = SkipLayerExcitation(4)
    layer.build(source.shape)
    randomize_weights(layer, rng)
    k1, b1 = (np.asarray(w) for w in layer.squeeze.weights)
    k2, b2 = (np.asarray(w) for w in layer.excite.weights)
    pooled = source.reshape(2, 4, 2, 4, 3, 3).mean(axis=(2, 4))  # adaptive pool to 4x4
    hidden = np.einsum("bijc,ijco->bo", pooled, k1) + b1  # 4x4 'valid' convolution
    hidden = hidden * sigmoid(hidden)  # swish
    gates = sigmoid(hidden @ k2[0, 0] + b2)
    expected = target * gates[:, None, None, :]
    np.testing.assert_allclose(np.asarray(layer(source, target)), expected, rtol=1e-5, atol=1e-5)


def test_up_block_with_batch_norm_matches_numpy(rng):
    x = rng.normal(size=(3, 4, 4, 2)).astype("float32")
    layer = UpBlock(3, norm="batch")
    layer.build(x.shape)
    randomize_weights(layer, rng)
    norm = layer.normalization
    norm.moving_variance.assign(np.abs(np.asarray(norm.moving_variance)) + 0.5)
    kernel, gamma, beta, mean, var = (np.asarray(w, "float64") for w in layer.weights)
    y = conv3x3_same(x.repeat(2, axis=1).repeat(2, axis=2).astype("float64"), kernel)
    glu = lambda v: v[..., :3] * sigmoid(v[..., 3:])  # noqa: E731
    eps = norm.epsilon
    inference = glu((y - mean) / np.sqrt(var + eps) * gamma + beta)
    np.testing.assert_allclose(np.asarray(layer(x)), inference, rtol=0, atol=2e-5)
    batch_mean, batch_var = y.mean(axis=(0, 1, 2)), y.var(axis=(0, 1, 2))
    training = glu((y - batch_mean) / np.sqrt(batch_var + eps) * gamma + beta)
    np.testing.assert_allclose(np.asarray(layer(x, training=True)), training, rtol=0, atol=2e-5)


def test_condition_projection_matches_numpy(rng):
    features, theta = rng.normal(size=(4, 5)), rng.uniform(size=(4, 2))
    layer = ConditionProjection(2, hidden=3)
    layer.build(features.shape)
    randomize_weights(layer, rng)
    w1, b1, w2, b2 = (np.asarray(w) for w in layer.weights)
    h = theta @ w1 + b1
    embedding = np.where(h > 0, h, 0.2 * h) @ w2 + b2
    np.testing.assert_allclose(np.asarray(layer(features, theta)), (embedding * features).sum(-1),
                               rtol=1e-5, atol=1e-5)


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="norm must be one of"):
        UpBlock(4, norm="instance")
    with pytest.raises(ValueError, match="multiples of 4"):
        SkipLayerExcitation(4).build((1, 6, 6, 2))
    with pytest.raises(ValueError, match="power of two"):
        SimpleDecoder(24).build((1, 8, 8, 4))
    with pytest.raises(ValueError, match="n_params"):
        ConditionProjection(0)


# --- Generator and Discriminator ---------------------------------------------------------------

def test_excitation_rules():
    assert generator_excitations(256) == [(4, 64), (8, 128), (16, 256)]  # FastGAN's
    assert generator_excitations(128) == [(4, 64), (8, 128), (16, 128)]
    assert generator_excitations(32) == [(4, 32), (8, 32)]
    assert discriminator_excitations(256) == [(256, 32), (128, 16), (64, 8), (32, 4)]
    assert discriminator_excitations(16) == []


@pytest.mark.parametrize("resolution", [32, 64, 256])
def test_generator_and_discriminator_shapes(rng, resolution):
    r = resolution
    generator = Generator(r, channels=3, latent_dim=8, n_params=2, width=TINY)
    discriminator = Discriminator(r, channels=3, n_params=2, width=TINY)
    z, theta = rng.normal(size=(2, 8)).astype("float32"), rng.uniform(size=(2, 2)).astype("float32")
    full, half = generator([z, theta])
    assert full.shape == (2, r, r, 3) and half.shape == (2, r // 2, r // 2, 3)
    assert full.dtype == "float32" and np.abs(np.asarray(full)).max() <= 1.0
    logits, reconstructions = discriminator([full, half, theta], return_reconstructions=True,
                                            quadrant=np.array([0, 3]))
    assert logits.shape == (2,)
    size = min(128, r // 2)
    assert [tuple(x.shape) for x in reconstructions] == [(2, size, size, 3)] * 3
    assert len(generator.excitations) == len(generator_excitations(r))


def test_default_widths_give_a_few_million_parameters():
    generator, discriminator = Generator(256), Discriminator(256)
    generator.build()
    discriminator.build()
    assert 2e6 < generator.count_params() < 8e6
    assert 2e6 < discriminator.count_params() < 12e6


@pytest.mark.parametrize("bad", [16, 48, 512, "64"])
def test_resolution_must_be_a_supported_power_of_two(bad):
    with pytest.raises(ValueError, match="resolution must be one of"):
        Generator(bad)
    with pytest.raises(ValueError, match="resolution must be one of"):
        Discriminator(bad)


def test_unconditional_networks_take_no_theta(rng):
    generator = Generator(32, latent_dim=8, n_params=0, width=TINY)
    discriminator = Discriminator(32, n_params=0, width=TINY)
    full, half = generator(rng.normal(size=(2, 8)).astype("float32"))
    assert discriminator([full, half]).shape == (2,)
    assert discriminator.projection is None
    conditional = Generator(32, latent_dim=8, n_params=2, width=TINY)
    with pytest.raises(ValueError, match="call it with"):
        conditional(rng.normal(size=(2, 8)).astype("float32"))


def test_both_networks_see_the_condition(rng):
    generator = Generator(32, latent_dim=8, n_params=2, width=TINY)
    discriminator = Discriminator(32, n_params=2, width=TINY)
    z = rng.normal(size=(3, 8)).astype("float32")
    theta = rng.uniform(size=(3, 2)).astype("float32")
    other = theta[::-1].copy()
    full, half = generator([z, theta])
    assert np.abs(np.asarray(generator([z, other])[0]) - np.asarray(full)).max() > 1e-4
    logits = np.asarray(discriminator([full, half, theta]))
    moved = np.asarray(discriminator([full, half, other]))
    assert np.abs(moved - logits)[[0, 2]].min() > 1e-5  # samples 0 and 2 changed theta
    np.testing.assert_allclose(moved[1], logits[1], rtol=0, atol=1e-6)  # sample 1 did not
    # the discriminator sees theta only through the projection <embed(theta), phi> and the
    # constant theta channels appended to each branch's input
    for w in discriminator.projection.embed.weights:
        w.assign(np.zeros(w.shape, "float32"))
    assert np.abs(np.asarray(discriminator([full, half, other])) - logits)[[0, 2]].min() > 1e-5
    for branch in discriminator.branches.values():
        kernel = np.asarray(branch["stem"].kernel)
        assert kernel.shape[2] == 3 + 2
        kernel[:, :, 3:] = 0.0
        branch["stem"].kernel.assign(kernel)
    np.testing.assert_allclose(np.asarray(discriminator([full, half, other])),
                               np.asarray(discriminator([full, half, theta])), rtol=0, atol=1e-6)


def test_discriminator_treats_samples_independently(rng):
    # the gradient penalty needs per-sample critic values: no batch statistics anywhere
    discriminator = Discriminator(32, n_params=2, width=TINY)
    full = np.tanh(rng.normal(size=(4, 32, 32, 3))).astype("float32")
    half = full.reshape(4, 16, 2, 16, 2, 3).mean(axis=(2, 4))
    theta = rng.uniform(size=(4, 2)).astype("float32")
    together = np.asarray(discriminator([full, half, theta], training=True))
    alone = [float(discriminator([full[i:i + 1], half[i:i + 1], theta[i:i + 1]], training=True)[0])
             for i in range(4)]
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)
