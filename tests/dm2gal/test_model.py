"""DM2Gal: shapes and parameter count of the released architecture, small windows, its own
compile, the model checks (saving, resuming, mixed precision, the Keras workflow) on TensorFlow
and JAX, the same loss curve on both, and stitched sliding inference against window-by-window
predictions."""
import keras
import numpy as np
import pytest

from tests import jax_backend
from tests.model_testing import check_model
from tfastro.dm2gal.model import DM2Gal, dm2gal_kernel_sizes, predict_cube


def expected_parameters(ch, in_channels=2, hidden=256):
    """Count of the released 65^3 model written out layer by layer (conv with bias, batch norm
    with 4 per channel: gamma, beta, moving mean and variance)."""
    layers = [(7, in_channels, ch), (7, ch, ch), (3, ch, 2 * ch),
              (5, 2 * ch, 2 * ch), (5, 2 * ch, 2 * ch), (3, 2 * ch, 4 * ch),
              (3, 4 * ch, 4 * ch), (3, 4 * ch, 4 * ch), (3, 4 * ch, 8 * ch)]
    convs = sum(k**3 * c_in * c_out + c_out + 4 * c_out for k, c_in, c_out in layers)
    return convs + (8 * ch * hidden + hidden) + (hidden + 1)


def test_released_architecture_builds_with_13_9m_parameters():
    model = DM2Gal(ch=64, window=65)
    model.build((None, 65, 65, 65, 2))
    assert model.count_params() == expected_parameters(64)
    assert 13.8e6 < model.count_params() < 14.0e6
    sides = []
    shape = (None, 65, 65, 65, 2)
    for conv, _, _ in model.blocks:
        shape = conv.compute_output_shape(shape)
        sides.append(shape[1])
    assert sides == [59, 53, 26, 22, 18, 8, 6, 4, 1]


def test_forward_pass_at_65_gives_one_value_per_window():
    model = DM2Gal(ch=4, window=65)
    out = model(np.random.default_rng(0).standard_normal((2, 65, 65, 65, 2)).astype("float32"))
    assert tuple(out.shape) == (2, 1)
    assert model.count_params() == expected_parameters(4)


@pytest.mark.parametrize("window, kernels", [(17, (1, 1, 1)), (25, (5, 1, 1)), (65, (7, 5, 3))])
def test_kernel_rule_and_small_windows(window, kernels):
    assert dm2gal_kernel_sizes(window) == kernels
    model = DM2Gal(ch=2, window=window, hidden=8)
    x = np.random.default_rng(1).standard_normal((3, window, window, window, 2))
    assert tuple(model(x.astype("float32")).shape) == (3, 1)


@pytest.mark.parametrize("window", [14, 67, 64.5, 0])
def test_unmappable_window_raises(window):
    with pytest.raises(ValueError, match="window"):
        DM2Gal(ch=2, window=window)


def test_bad_kernels_and_input_shape_raise():
    with pytest.raises(ValueError, match="kernel_sizes"):
        DM2Gal(ch=2, window=17, kernel_sizes=(3, 3, 3))
    with pytest.raises(ValueError, match="windows"):
        DM2Gal(ch=2, window=17)(np.zeros((1, 19, 19, 19, 2), "float32"))


def small_model(window=17):
    """A ch=2 model (batch norm on), unbuilt, compiled with its own loss and Adam (lr 1e-3)."""
    model = DM2Gal(ch=2, window=window, hidden=8)
    model.compile(optimizer="adam")
    return model


def trained_small_model(window=17):
    """A ch=2 model with one fit step, so the batch-norm statistics are not the defaults."""
    keras.utils.set_random_seed(0)
    model = small_model(window)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, window, window, window, 2)).astype("float32")
    model.fit(x, rng.standard_normal((4, 1)).astype("float32"), epochs=1, verbose=0)
    return model


def check_batch():
    """(windows (4, 17, 17, 17, 2), targets (4, 1)) of the model checks."""
    rng = np.random.default_rng(3)
    return (rng.standard_normal((4, 17, 17, 17, 2)).astype("float32"),
            rng.standard_normal((4, 1)).astype("float32"))


def test_compile_defaults_to_the_papers_adam_and_the_mse():
    model = DM2Gal(ch=2, window=17, hidden=8, l2=0.0)
    model.compile()
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-5)
    x, y = check_batch()
    predicted = model.predict(x, verbose=0)
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), np.mean((predicted - y) ** 2),
                               rtol=1e-5)


def test_model_checks(tmp_path):
    checked = check_model(small_model, *check_batch(), tmp_path=tmp_path)
    assert checked.loaded.get_config()["kernel_sizes"] == [1, 1, 1]
    assert isinstance(checked.loaded.loss, keras.losses.MeanSquaredError)


MODULE = "tests.dm2gal.test_model"


@pytest.fixture(scope="module")
def on_jax(tmp_path_factory):
    """The loss curve run on the JAX backend (one subprocess), from the
    initial weights and batch saved here; returns (its result, the directory)."""
    directory = tmp_path_factory.mktemp("dm2gal_jax")
    keras.utils.set_random_seed(1)
    model = DM2Gal(ch=2, window=17, hidden=8)
    model.build((None, 17, 17, 17, 2))
    model.save(directory / "initial.keras")
    x, y = check_batch()
    np.savez(directory / "batch.npz", x=x, y=y)
    out = jax_backend.model_on_jax(MODULE, "small_model", directory, 1e-3)
    return out, directory


@pytest.mark.slow  # minutes of JAX compilation on 2 cores; the same checks run on TensorFlow
def test_model_checks_on_jax(on_jax):
    out = jax_backend.model_on_jax(MODULE, "small_model", on_jax[1], 1e-3, checks=True)
    assert out["checks"] == "passed", out["checks"]


def test_tensorflow_and_jax_give_the_same_loss_curve(on_jax):
    out, directory = on_jax
    curve = jax_backend.loss_curve(directory, 1e-3)
    print("loss curve on TensorFlow", np.round(curve, 5), "on JAX", np.round(out["loss_curve"], 5))
    assert curve[-1] < 0.5 * curve[0]  # it trains
    # float32 round-off (the batch-norm variances of 4 samples amplify it to ~1e-5)
    np.testing.assert_allclose(out["loss_curve"], curve, rtol=1e-4)


@pytest.fixture(scope="module")
def stitching():
    model = trained_small_model()
    inputs = np.random.default_rng(4).standard_normal((20, 20, 20, 2)).astype("float32")
    return model, inputs


def window_by_window(model, inputs, region, window=17):
    """Each voxel's window cut with periodic wrap (np.roll) and predicted on its own."""
    half = window // 2
    out = {}
    for voxel in np.ndindex(*(hi - lo for lo, hi in region)):
        centre = [v + lo for v, (lo, _) in zip(voxel, region)]
        rolled = np.roll(inputs, [half - c for c in centre], axis=(0, 1, 2))
        out[voxel] = float(model.predict_on_batch(rolled[None, :window, :window, :window])[0, 0])
    return out


def test_predict_cube_equals_window_by_window(stitching, tmp_path):
    model, inputs = stitching
    region = ((1, 4), (16, 19), (9, 12))  # the y windows wrap around the periodic grid
    path = tmp_path / "inputs.npy"
    np.save(path, inputs)
    cube = predict_cube(model, np.load(path, mmap_mode="r"), region, 17, batch_size=5)
    assert cube.shape == (3, 3, 3)
    expected = window_by_window(model, inputs, region)
    for voxel, value in expected.items():
        np.testing.assert_allclose(cube[voxel], value, atol=1e-5)
    assert np.std(cube) > 1e-4  # the voxels do get different predictions


def test_predict_cube_with_mask_fills_the_rest(stitching):
    model, inputs = stitching
    region = ((8, 11), (8, 11), (8, 10))
    mask = np.zeros((3, 3, 2), bool)
    mask[0, 1, 1] = mask[2, 2, 0] = mask[1, 0, 0] = True
    cube = predict_cube(model, inputs, region, 17, batch_size=2, mask=mask)
    full = predict_cube(model, inputs, region, 17, batch_size=7)
    np.testing.assert_allclose(cube[mask], full[mask], atol=1e-5)
    assert np.all(np.isnan(cube[~mask]))
    zeros = predict_cube(model, inputs, region, 17, mask=mask, fill_value=0.0)
    assert np.all(zeros[~mask] == 0.0)


def test_predict_cube_rejects_bad_arguments(stitching):
    model, inputs = stitching
    with pytest.raises(ValueError, match="region"):
        predict_cube(model, inputs, ((0, 3), (0, 3), (0, 21)), 17)
    with pytest.raises(ValueError, match="window"):
        predict_cube(model, inputs, ((0, 3), (0, 3), (0, 3)), 16)
    with pytest.raises(ValueError, match="mask"):
        predict_cube(model, inputs, ((0, 3), (0, 3), (0, 3)), 17, mask=np.ones((3, 3), bool))


def test_batch_norm_can_be_left_out():
    plain = DM2Gal(4, 17, batch_norm=False)
    plain.build((None, 17, 17, 17, 2))
    assert not any(isinstance(layer, keras.layers.BatchNormalization)
                   for block in plain.blocks for layer in block)
    assert DM2Gal.from_config(plain.get_config()).batch_norm is False
    with_norm = DM2Gal(4, 17)
    with_norm.build((None, 17, 17, 17, 2))
    assert plain.count_params() == with_norm.count_params() - 4 * sum(
        block[1].gamma.shape[0] for block in with_norm.blocks)
