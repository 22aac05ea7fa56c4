"""3D-MIM recurrent cells: the shared layer checks, the exactness of the known-zero shortcut,
the MIM-N initialiser, and per-voxel vs per-channel peepholes."""
import itertools
from functools import partial

import numpy as np
import pytest

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
