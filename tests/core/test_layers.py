"""TensorLayerNorm, and ConvNorm3D (convolution + tensor layer norm) with its initialiser:
the shared layer checks and Keras' own, the formulas, the initialiser's limits and seeding."""
import math
from functools import partial

import keras
import numpy as np
import pytest
from absl.testing import parameterized
from keras.src import testing  # Keras' own layer test case (run_layer_test)

from tests import jax_backend
from tests.layer_testing import check_layer, randomize_weights
from tfastro.core.layers import TensorLayerNorm
from tfastro.supernova.layers import ChannelGlorotUniform, ConvNorm3D


def test_tensor_layer_norm_passes_layer_checks(rng, tmp_path):
    x = rng.normal(size=(2, 4, 4, 4, 3))
    (y,) = check_layer(TensorLayerNorm, (x,), tmp_path)
    assert y.shape == x.shape


def test_conv_norm_passes_layer_checks(rng, tmp_path):
    x = rng.normal(size=(2, 4, 4, 4, 2))
    (y,) = check_layer(partial(ConvNorm3D, 6, 3), (x,), tmp_path)
    assert y.shape == (2, 4, 4, 4, 6)


class KerasLayerTest(testing.TestCase):
    """Keras' run_layer_test: build, symbolic and eager calls, serialisation, a training
    step, and under mixed_float16 float32 weights and the output dtype compute_output_spec
    gives."""

    def tearDown(self):
        keras.config.enable_traceback_filtering()  # setUp turned it off for the whole process

    @parameterized.named_parameters(
        ("tensor_layer_norm", TensorLayerNorm, {}, 3),
        ("conv_norm", ConvNorm3D, {"filters": 6, "kernel_size": 3}, 6),
        ("conv_without_norm", ConvNorm3D, {"filters": 6, "kernel_size": 3, "layer_norm": False}, 6),
    )
    def test_run_layer_test(self, cls, kwargs, channels_out):
        self.run_layer_test(cls, kwargs, input_shape=(2, 4, 4, 4, 3),
                            expected_output_shape=(2, 4, 4, 4, channels_out))


def test_tensor_layer_norm_matches_formula(rng):
    # variance ~1e-5, comparable to epsilon: the formula's epsilon placement matters
    x = (5.0 + 3e-3 * rng.normal(size=(3, 4, 5, 6, 4))).astype("float32")
    x[1] *= 40.0  # samples normalised independently
    layer = TensorLayerNorm()
    layer.build(x.shape)
    scale, offset = rng.normal(size=4), rng.normal(size=4)
    layer.scale.assign(scale)
    layer.offset.assign(offset)
    x64 = x.astype("float64")
    mean = x64.mean(axis=(1, 2, 3, 4), keepdims=True)
    var = x64.var(axis=(1, 2, 3, 4), keepdims=True)
    expected = (x64 - mean) / np.sqrt(var + 1e-5) * scale + offset
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=0, atol=2e-4)


def test_normalize_constant_equals_call_on_constant_field(rng):
    layer = TensorLayerNorm()
    layer.build((1, 3, 4, 5, 6))
    randomize_weights(layer, rng)
    values = rng.normal(size=6).astype("float32")
    field = np.broadcast_to(values, (1, 3, 4, 5, 6))
    expected = np.asarray(layer(field))
    got = np.asarray(layer.normalize_constant(values))
    assert got.shape == (6,)
    np.testing.assert_allclose(np.broadcast_to(got, field.shape), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("layer_norm", [True, False])
def test_conv_norm_zero_response_equals_layer_on_zeros(rng, layer_norm):
    layer = ConvNorm3D(5, 3, layer_norm=layer_norm)
    layer.build((1, 4, 4, 4, 2))
    randomize_weights(layer, rng)
    on_zeros = np.asarray(layer(np.zeros((1, 4, 4, 4, 2), "float32")))
    response = np.asarray(layer.zero_response())
    assert response.shape == (5,)
    assert np.ptp(response) > 0.1  # not trivially uniform
    np.testing.assert_allclose(np.broadcast_to(response, on_zeros.shape), on_zeros, rtol=0, atol=1e-5)


def test_channel_glorot_uniform_limits():
    shape = (3, 3, 3, 16, 32)
    limit = math.sqrt(6.0 / (16 + 32))  # fans in channels only, not kernel volume
    values = np.asarray(ChannelGlorotUniform(seed=3)(shape))
    assert values.shape == shape
    assert np.abs(values).max() <= limit
    assert np.abs(values).max() > 0.99 * limit
    assert abs(values.mean()) < 0.02 * limit
    np.testing.assert_allclose(values.std(), limit / math.sqrt(3.0), rtol=0.03)  # uniform std
    # Keras' Glorot counts the kernel volume into the fans, so its limit is sqrt(27) smaller
    keras_glorot = np.asarray(keras.initializers.GlorotUniform(seed=3)(shape))
    assert np.abs(keras_glorot).max() < limit / 5.0
    # seeded and serialisable: the same config draws the same values
    clone = ChannelGlorotUniform.from_config(ChannelGlorotUniform(seed=3).get_config())
    np.testing.assert_array_equal(np.asarray(clone(shape)), values)


def test_conv_norm_uses_channel_glorot_by_default():
    layer = ConvNorm3D(8, 3)
    layer.build((1, 4, 4, 4, 4))
    kernel = np.asarray(layer.conv.kernel)
    limit = math.sqrt(6.0 / (4 + 8))
    assert np.abs(kernel).max() <= limit
    assert np.abs(kernel).max() > 0.9 * limit


def test_unseeded_channel_glorot_uniform_draws_its_seed_when_made():
    """Like Keras' initialisers: one instance gives the same values every call, instances
    differ, and keras.utils.set_random_seed makes them reproducible."""
    shape = (3, 3, 3, 4, 8)
    keras.utils.set_random_seed(7)
    first, second = ChannelGlorotUniform(), ChannelGlorotUniform()
    values = np.asarray(first(shape))
    np.testing.assert_array_equal(np.asarray(first(shape)), values)
    assert np.abs(np.asarray(second(shape)) - values).max() > 0.01
    keras.utils.set_random_seed(7)
    np.testing.assert_array_equal(np.asarray(ChannelGlorotUniform()(shape)), values)
    assert ChannelGlorotUniform().get_config() == {"seed": None}


JAX_TRACED_INIT = """
import json
import jax, keras, numpy as np
from tfastro.supernova.layers import ChannelGlorotUniform
init = ChannelGlorotUniform()
shape = (3, 3, 3, 4, 8)
traced = jax.jit(lambda: init(shape))()
print("RESULT" + json.dumps({"backend": keras.backend.backend(),
                             "traced": np.asarray(traced).tolist(),
                             "eager": np.asarray(init(shape)).tolist()}))
"""


def test_unseeded_channel_glorot_uniform_draws_inside_a_jax_trace():
    out = jax_backend.run_on_jax(JAX_TRACED_INIT)
    traced = np.asarray(out["traced"])
    np.testing.assert_array_equal(traced, out["eager"])
    limit = math.sqrt(6.0 / (4 + 8))
    assert traced.shape == (3, 3, 3, 4, 8) and 0.9 * limit < np.abs(traced).max() <= limit
