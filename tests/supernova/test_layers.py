"""3D-MIM recurrent cells: the shared layer checks and Keras' own, the exactness of the
known-zero shortcut, the MIM-N initialiser, and per-voxel vs per-channel peepholes."""
import itertools
from functools import partial

import keras
import numpy as np
import pytest
from absl.testing import parameterized
from keras.src import testing  # Keras' own layer test case (run_layer_test)

from tests.layer_testing import check_layer, randomize_weights
from tfastro.supernova.layers import MIMN3D, MIMS3D, MIMBlock3D, SpatioTemporalLSTMCell3D

B, GRID, C_IN, N = 2, (4, 4, 4), 2, 3

# layer, number of state inputs after x, outputs per call
CELLS = {
    "stlstm": (partial(SpatioTemporalLSTMCell3D, N, 3), 3, 3),
    "mim_s": (partial(MIMS3D, N, 3), 2, 2),
    "mim_n_channel": (partial(MIMN3D, N, 3, peephole="channel"), 2, 2),
    "block": (partial(MIMBlock3D, N, 3), 5, 4),
}


def field(rng, channels, grid=GRID, batch=B):
    return rng.normal(size=(batch,) + grid + (channels,)).astype("float32")


# which states are given (True) or None, as the cells meet them in MIM3D
LAYER_CHECK_CASES = [
    ("stlstm", (False, False, False)),  # first time step
    ("mim_s", (True, True)),
    ("mim_n_channel", (False, False)),  # first MIM-N call
    ("block", (True, True, True, True, True)),
    ("block", (False, False, False, True, False)),  # first time step: only m from below
]


# kernels that only ever see a None (zero) state get no gradient, which Keras reports
@pytest.mark.filterwarnings("ignore:Gradients do not exist")
@pytest.mark.parametrize("name, given", LAYER_CHECK_CASES)
def test_cell_passes_layer_checks(name, given, rng, tmp_path):
    factory, n_states, n_out = CELLS[name]
    assert len(given) == n_states
    states = tuple(field(rng, N) if g else None for g in given)
    outputs = check_layer(factory, (field(rng, C_IN),) + states, tmp_path)
    assert len(outputs) == n_out
    for out in outputs:
        assert out.shape == (B,) + GRID + (N,)


def _shapes(x_channels, *states):
    """run_layer_test's inputs: x and the named states, as ``<name>_shape`` keywords."""
    field = (B,) + GRID
    return {"x_shape": field + (x_channels,), **{f"{s}_shape": field + (N,) for s in states}}


class KerasLayerTest(testing.TestCase):
    """Keras' run_layer_test: build from the shapes of every input (Keras' convention for
    several inputs, ``build(x_shape, h_shape=None, ...)``), symbolic and eager calls,
    serialisation, and under mixed_float16 float32 weights and outputs of the dtype
    compute_output_spec gives. Its training step feeds one input, so the cells taking several
    skip it; check_layer trains them."""

    def tearDown(self):
        keras.config.enable_traceback_filtering()  # setUp turned it off for the whole process

    @parameterized.named_parameters(
        ("stlstm", SpatioTemporalLSTMCell3D, {}, _shapes(C_IN, "h", "c", "m"), 3),
        ("stlstm_no_states", SpatioTemporalLSTMCell3D, {}, _shapes(C_IN), 3),
        ("mim_s_voxel", MIMS3D, {}, _shapes(C_IN, "h", "c"), 2),
        ("mim_s_channel", MIMS3D, {"peephole": "channel"}, _shapes(C_IN, "h", "c"), 2),
        ("mim_n_voxel", MIMN3D, {}, _shapes(N, "h", "c"), 2),
        ("mim_n_channel", MIMN3D, {"peephole": "channel", "layer_norm": False},
         _shapes(N, "h", "c"), 2),
        ("block", MIMBlock3D, {}, _shapes(C_IN, "diff_h", "h", "c", "m", "s"), 4),
        ("block_channel_first_step", MIMBlock3D, {"peephole": "channel"}, _shapes(C_IN, "m"), 4),
    )
    def test_run_layer_test(self, cls, kwargs, shapes, n_outputs):
        self.run_layer_test(cls, {"num_hidden": N, "filter_size": 3, **kwargs},
                            input_shape=shapes,
                            expected_output_shape=((B,) + GRID + (N,),) * n_outputs,
                            run_training_check=False)


def test_mim_s_builds_from_the_states_when_x_is_absent(rng):
    """Called first with x None, MIM-S builds from h (Keras passes the given inputs' shapes by
    name) and takes x of num_hidden channels afterwards."""
    layer = MIMS3D(N, 3, peephole="channel")
    h, c = field(rng, N), field(rng, N)
    layer(None, h, c)
    assert tuple(layer.conv_x.conv.kernel.shape) == (3, 3, 3, N, 4 * N)
    assert layer(field(rng, N), h, c)[0].shape == (B,) + GRID + (N,)
    with pytest.raises(ValueError, match=r"state h must have num_hidden=3 channels"):
        MIMS3D(N, 3).build(x_shape=(B,) + GRID + (C_IN,), h_shape=(B,) + GRID + (N + 1,))


def test_mim_n_convolutions_start_from_independent_draws():
    """conv_h and conv_x share one initialiser setting, not its draws (equal shapes here)."""
    layer = MIMN3D(4, 3)
    layer.build((1,) + GRID + (4,))
    kernels = [np.asarray(conv.conv.kernel) for conv in (layer.conv_h, layer.conv_x)]
    assert kernels[0].shape == kernels[1].shape
    assert np.abs(kernels[0] - kernels[1]).max() > 1e-4


@pytest.mark.parametrize("layer_norm", [True, False])
@pytest.mark.parametrize("name", ["stlstm", "block"])
def test_none_states_equal_zero_states(name, layer_norm, rng):
    """Every pattern of None states gives what explicit zero tensors give."""
    factory, n_states, _ = CELLS[name]
    layer = factory(layer_norm=layer_norm)
    x = field(rng, C_IN)
    layer.build(x.shape)
    randomize_weights(layer, rng)
    states = [field(rng, N) for _ in range(n_states)]
    zeros = np.zeros_like(states[0])
    for absent in itertools.product([False, True], repeat=n_states):
        with_none = layer(x, *[None if a else s for a, s in zip(absent, states)])
        with_zeros = layer(x, *[zeros if a else s for a, s in zip(absent, states)])
        for got, expected in zip(with_none, with_zeros):
            np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=0, atol=2e-6,
                                       err_msg=f"{name}, None at {absent}")


@pytest.mark.parametrize("layer_norm", [True, False])
@pytest.mark.parametrize("cls", [MIMS3D, MIMN3D])
def test_mim_module_none_inputs_equal_zero_inputs(cls, layer_norm, rng):
    """x, h and c are each optional; with all three None the outputs carry no batch axis and
    broadcast to the zero-input ones."""
    layer = cls(N, 3, layer_norm=layer_norm)
    layer.build((B,) + GRID + (N,))
    randomize_weights(layer, rng)
    inputs = [field(rng, N) for _ in range(3)]
    zeros = np.zeros_like(inputs[0])
    for absent in itertools.product([False, True], repeat=3):
        with_none = layer(*[None if a else t for a, t in zip(absent, inputs)])
        with_zeros = layer(*[zeros if a else t for a, t in zip(absent, inputs)])
        for got, expected in zip(with_none, with_zeros):
            expected = np.asarray(expected)
            assert np.ptp(expected) > 0.01
            np.testing.assert_allclose(np.broadcast_to(np.asarray(got), expected.shape), expected,
                                       rtol=0, atol=2e-6, err_msg=f"{cls.__name__}, None at {absent}")


def test_mim_n_kernels_start_within_a_thousandth():
    for layer in (MIMN3D(4, 3), MIMN3D.from_config(MIMN3D(4, 3).get_config())):
        layer.build((1,) + GRID + (4,))
        for conv in (layer.conv_h, layer.conv_x):
            kernel = np.abs(np.asarray(conv.conv.kernel))
            assert kernel.max() <= 0.001
            assert kernel.max() > 0.0009
    mim_s = MIMS3D(4, 3)  # same form, channel-Glorot kernels: much larger
    mim_s.build((1,) + GRID + (4,))
    assert np.abs(np.asarray(mim_s.conv_h.conv.kernel)).max() > 0.1


def test_peephole_weight_shapes():
    voxel, channel = MIMS3D(N, 3), MIMS3D(N, 3, peephole="channel")
    for layer in (voxel, channel):
        layer.build((1,) + GRID + (C_IN,))
    assert tuple(voxel.c_t_weight.shape) == GRID + (2 * N,)
    assert tuple(voxel.oc_weight.shape) == GRID + (N,)
    assert tuple(channel.c_t_weight.shape) == (2 * N,)
    assert tuple(channel.oc_weight.shape) == (N,)
    with pytest.raises(ValueError, match="peephole"):
        MIMS3D(N, 3, peephole="pixel")


def test_channel_peephole_is_voxel_peephole_with_equal_weights(rng):
    channel, voxel = MIMS3D(N, 3, peephole="channel"), MIMS3D(N, 3)
    for layer in (channel, voxel):
        layer.build((B,) + GRID + (C_IN,))
    randomize_weights(channel, rng)
    voxel.set_weights([np.broadcast_to(w, v.shape) for w, v in zip(channel.get_weights(), voxel.weights)])
    args = (field(rng, C_IN), field(rng, N), field(rng, N))
    for a, b in zip(channel(*args), voxel(*args)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-6)


@pytest.mark.parametrize("cls, n_states", [(MIMS3D, 2), (MIMN3D, 2), (MIMBlock3D, 5)])
def test_channel_peephole_runs_on_another_grid_voxel_does_not(cls, n_states, rng):
    other = (6, 8, 5)
    for peephole in ("channel", "voxel"):
        layer = cls(N, 3, peephole=peephole)
        layer.build((B,) + GRID + (N,))
        args = (field(rng, N, other),) + tuple(field(rng, N, other) for _ in range(n_states))
        if peephole == "channel":
            for out in layer(*args):
                assert out.shape == (B,) + other + (N,)
        else:
            with pytest.raises(ValueError, match=r"per-voxel peephole.*\(4, 4, 4\).*\(6, 8, 5\)"):
                layer(*args)
            with pytest.raises(ValueError, match="per-voxel peephole"):  # x alone, states None
                layer(args[0])
