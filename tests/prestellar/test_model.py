"""ColumnNet: shapes and parameter count against the layer formulas, the local receptive field
and the global context (perturbations far away, a planted global target), the windowed scanner
against one-pass prediction (edges included), Monte-Carlo dropout, fitting, its own compile
(the MSE of standardised targets), the model checks (saving, resuming, mixed precision, the
Keras workflow) on TensorFlow and JAX, the same loss curve on both, JAX."""
import keras
import numpy as np
import pytest

import tfastro.prestellar.model as column
from tests import jax_backend
from tests.model_testing import check_model
from tfastro.prestellar.model import (ColumnNet, mc_dropout_predict, scan_predict,
                                      training_normalisation)


def n_trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def expected_parameters(n_depth, n_channels, width, depth, ks, kv, stride, context, units,
                        hidden, in_channels=1):
    """Trainable parameters written out layer by layer (convolutions and dense with biases)."""
    convs = ks * ks * kv * in_channels * width + width
    convs += (depth - 1) * (ks * ks * kv * width * width + width)
    reduced = n_channels
    for _ in range(depth - 1):
        reduced = -(-reduced // stride)
    flat = reduced * width
    head_in = flat + (units if context else 0)
    return (convs + (flat * units + units if context else 0) + head_in * hidden + hidden
            + hidden * 2 * n_depth + 2 * n_depth)


def small_net(**kwargs):
    """A tiny ColumnNet (Nv = 16, Nz = 8, halo 2) with every weight and bias random, so that no
    bias is trivially zero."""
    args = dict(n_depth=8, n_channels=16, width=4, depth=2, spectral_kernel=5, context_units=6,
                hidden=12, dropout=0.0)
    model = ColumnNet(**{**args, **kwargs})
    model.build((None, None, None, 16, 1))
    rng = np.random.default_rng(3)
    for w in model.trainable_weights:
        w.assign(rng.normal(0.0, 0.4, w.shape).astype("float32"))
    return model


def random_cubes(shape, seed):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def test_default_model_has_51904_parameters_at_32_channels_and_32_depth_bins():
    model = ColumnNet(32, 32)
    model.build((None, 32, 32, 32, 1))
    assert model.halo == 3 and model.reduced_channels == 8
    assert n_trainable(model) == expected_parameters(32, 32, 16, 3, 3, 7, 2, True, 32, 64)
    assert n_trainable(model) == 51_904


@pytest.mark.parametrize("context", [True, False])
def test_parameter_formula_for_other_shapes(context):
    """Nv = 20 with stride 3 over three later blocks: 20 -> 7 -> 3 -> 1 (ceil)."""
    model = ColumnNet(5, 20, width=3, depth=4, spatial_kernel=5, spectral_kernel=4,
                      spectral_stride=3, context=context, context_units=7, hidden=9,
                      in_channels=2)
    model.build((None, 6, 6, 20, 2))
    assert model.reduced_channels == 1 and model.halo == 8
    assert n_trainable(model) == expected_parameters(5, 20, 3, 4, 5, 4, 3, context, 7, 9, 2)


@pytest.mark.parametrize("nx, ny", [(16, 16), (13, 7)])
def test_output_is_a_column_of_two_targets_per_pixel_for_any_map_size(nx, ny):
    model = ColumnNet(12, 16, width=4)
    out = model(random_cubes((3, nx, ny, 16, 1), 0))
    assert tuple(out.shape) == (3, nx, ny, 12, 2) and out.dtype == "float32"
    features = model.local_features(random_cubes((3, nx, ny, 16, 1), 0))
    assert tuple(features.shape) == (3, nx, ny, model.reduced_channels, 4)


def test_mixed_precision_keeps_float32_weights_and_outputs():
    model = ColumnNet(4, 8, width=4, dtype="mixed_bfloat16")
    out = model(random_cubes((1, 8, 8, 8, 1), 0))
    assert out.dtype == "float32" and np.all(np.isfinite(out))
    assert all(w.dtype == "float32" for w in model.trainable_weights)


def output_change(model, cube, pixel, at):
    """Largest change of the output column at pixel ``at`` when the spectrum at ``pixel`` is
    replaced by another random one."""
    other = cube.copy()
    other[0, pixel[0], pixel[1]] = random_cubes(other.shape[3:], 9)
    return float(np.max(np.abs(model(other)[0, at[0], at[1]] - model(cube)[0, at[0], at[1]])))


def test_local_path_reaches_exactly_the_halo():
    """Without context a column changes with the spectra within ``halo`` pixels (Chebyshev
    distance) of it and with no other."""
    model = small_net(context=False)
    cube = random_cubes((1, 12, 12, 16, 1), 1)
    assert model.halo == 2
    assert output_change(model, cube, (6, 8), (6, 6)) > 1e-4
    assert output_change(model, cube, (4, 4), (6, 6)) > 1e-4
    assert output_change(model, cube, (6, 9), (6, 6)) == 0.0
    assert output_change(model, cube, (3, 6), (6, 6)) == 0.0


def test_context_path_lets_every_column_see_the_whole_cube():
    cube = random_cubes((1, 16, 16, 16, 1), 2)
    assert output_change(small_net(context=False), cube, (0, 0), (15, 15)) == 0.0
    assert output_change(small_net(context=True), cube, (0, 0), (15, 15)) > 1e-4


def half_lit_cubes(n, seed):
    """Planted global target: cube k is lit on x < 8 only, with intensity a_k * U(0.5, 1.5);
    every column of both targets is the standardised a_k ~ U(0.5, 1.5). Columns at x >= 10
    (more than the halo 2 from the lit half) see only zeros locally."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 1.5, n).astype(np.float32)
    x = np.zeros((n, 16, 16, 8, 1), np.float32)
    x[:, :8] = a[:, None, None, None, None] * rng.uniform(0.5, 1.5, (n, 8, 16, 8, 1))
    y = np.broadcast_to(((a - 1) * np.sqrt(12))[:, None, None, None, None], (n, 16, 16, 2, 2))
    return x, np.ascontiguousarray(y, dtype=np.float32)


def test_context_path_learns_a_global_target_the_local_path_cannot():
    """Without context the dark columns' prediction cannot depend on the cube, so its error is at
    least the targets' variance there; with context the model learns the target everywhere."""
    x, y = half_lit_cubes(64, 1)
    x_test, y_test = half_lit_cubes(64, 2)
    errors = {}
    for context in (False, True):
        keras.utils.set_random_seed(0)
        model = ColumnNet(2, 8, width=8, depth=2, spectral_kernel=3, context=context,
                          context_units=8, hidden=16, dropout=0.0)
        model.compile(keras.optimizers.Adam(1e-2), "mse")
        model.fit(x, y, batch_size=8, epochs=10, verbose=0)
        squared = (model.predict(x_test, verbose=0) - y_test) ** 2
        errors[context] = squared.mean(axis=(0, 2, 3, 4))  # per x
    dark_variance = y_test.var()
    print(f"dark-column MSE without context {errors[False][10:].mean():.3f} (bound "
          f"{dark_variance:.3f}), with context {errors[True][10:].mean():.3f}; "
          f"all columns with context {errors[True].mean():.3f}")
    assert np.all(errors[False][10:] >= dark_variance - 1e-4)
    assert errors[True].max() < 0.1 * dark_variance


@pytest.mark.parametrize("window, stride", [(7, None), (9, 2), (5, 1), (40, None)])
@pytest.mark.parametrize("context", [True, False])
def test_scanner_equals_one_pass_prediction_everywhere(window, stride, context):
    """A 21 x 19 map (not a multiple of any window), windows smaller and larger than the map,
    overlapping interiors (stride < window - 2 halo) and interiors of one pixel."""
    model = small_net(context=context, dropout=0.2)
    cube = random_cubes((21, 19, 16), 4)
    one_pass = np.asarray(model(cube[None, ..., None]))[0]
    scanned = scan_predict(model, cube, window, stride, batch_size=5)
    assert scanned.shape == (21, 19, 8, 2)
    np.testing.assert_allclose(scanned, one_pass, rtol=1e-5, atol=1e-5)


def test_scanner_without_edge_masking_would_differ_at_the_edges(monkeypatch):
    """The control: windows that treat the zero padding beyond the cube as data (footprint all
    ones) let the second block see first-block features computed on the padding, which one pass
    pads with zeros: the outermost columns (1 pixel for 2 blocks of kernel 3) differ."""
    model = small_net(context=False)
    cube = random_cubes((14, 14, 16, 1), 5)
    one_pass = np.asarray(model(cube[None]))[0]
    cut = column._cut
    monkeypatch.setattr(column, "_cut", lambda *a: (cut(*a)[0], np.ones_like(cut(*a)[1])))
    scanned = scan_predict(model, cube, 8)
    error = np.abs(scanned - one_pass).max(axis=(2, 3))
    ring = np.concatenate([error[0], error[-1], error[1:-1, 0], error[1:-1, -1]])
    assert np.mean(ring > 1e-3) > 0.5  # the outermost columns see the padding's features
    assert error[1:-1, 1:-1].max() < 1e-5


def test_scanner_reads_a_memory_mapped_cube(tmp_path):
    model = small_net()
    cube = np.lib.format.open_memmap(tmp_path / "ppv.npy", "w+", np.float32, (17, 17, 16))
    cube[:] = random_cubes((17, 17, 16), 6)
    one_pass = model(np.asarray(cube)[None, ..., None])[0]
    np.testing.assert_allclose(scan_predict(model, cube, 8), one_pass, rtol=1e-5, atol=1e-5)


def test_dropout_masks_a_fraction_rate_and_rescales_the_rest():
    """One block: sampled features are 0 at a fraction 0.3 of the voxels and the clean ones
    divided by 0.7 elsewhere; without a seed and not training they are the clean ones."""
    model = small_net(dropout=0.3, depth=1)
    cube = random_cubes((2, 12, 12, 16, 1), 7)
    clean = np.asarray(model.local_features(cube))
    noisy = np.asarray(model.local_features(cube, dropout_seed=keras.random.SeedGenerator(0)))
    np.testing.assert_array_equal(clean, np.maximum(np.asarray(model.convs[0](cube)), 0))
    dropped = (noisy == 0) & (clean != 0)
    assert np.mean(dropped[clean != 0]) == pytest.approx(0.3, abs=0.01)
    kept = noisy != 0
    np.testing.assert_allclose(noisy[kept], clean[kept] / 0.7, rtol=1e-6)


def test_mc_dropout_is_reproducible_and_matches_direct_sampling():
    model = small_net(dropout=0.2)
    cube = random_cubes((2, 10, 10, 16, 1), 8)
    state = np.asarray(model.seed_generator.state)
    mean, std = mc_dropout_predict(model, cube, n_samples=6, seed=11)
    generator = keras.random.SeedGenerator(11)
    samples = np.stack([model(cube, dropout_seed=generator) for _ in range(6)])
    np.testing.assert_allclose(mean, samples.mean(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(std, samples.std(axis=0), rtol=1e-4, atol=1e-5)
    assert std.shape == (2, 10, 10, 8, 2) and np.mean(std > 0) > 0.99
    again = mc_dropout_predict(model, cube, n_samples=6, seed=11)
    np.testing.assert_array_equal(again[0], mean)
    np.testing.assert_array_equal(again[1], std)
    assert not np.allclose(mc_dropout_predict(model, cube, n_samples=6, seed=12)[0], mean)
    np.testing.assert_array_equal(np.asarray(model.seed_generator.state), state)
    np.testing.assert_array_equal(model(cube), model(cube))  # inference stays deterministic


def test_mc_dropout_without_dropout_has_zero_spread():
    model = small_net(dropout=0.0)
    cube = random_cubes((1, 10, 10, 16, 1), 8)
    mean, std = mc_dropout_predict(model, cube, n_samples=4, seed=0)
    assert np.all(std == 0)
    np.testing.assert_allclose(mean, model(cube), rtol=1e-6, atol=1e-6)


def local_toy(n, seed):
    """Toy local mapping at Nv = Nz = 8 on standardised cubes (normal deviates): density bins =
    the pixel's own spectrum, velocity bins = its x + 1 neighbour's minus its x - 1 neighbour's
    spectrum (signed; periodic in x)."""
    x = np.random.default_rng(seed).standard_normal((n, 12, 12, 8, 1)).astype(np.float32)
    velocity = np.roll(x, -1, axis=1) - np.roll(x, 1, axis=1)
    return x, np.concatenate([x, velocity], axis=-1)


def test_quick_fit_learns_a_local_toy_mapping():
    x, y = local_toy(64, 1)
    x_test, y_test = local_toy(16, 2)
    keras.utils.set_random_seed(0)
    model = ColumnNet(8, 8, width=8, depth=2, spectral_kernel=3, spectral_stride=1, hidden=32,
                      dropout=0.0)
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    before = model.evaluate(x_test, y_test, verbose=0)
    model.fit(x, y, batch_size=8, epochs=8, verbose=0)
    after = model.evaluate(x_test, y_test, verbose=0)
    # Edge columns (x = 0, 11) have wrapped neighbours the model cannot see; judge the rest.
    error = np.mean((model.predict(x_test, verbose=0) - y_test)[:, 1:-1] ** 2)
    baseline = np.mean((y.mean(axis=(0, 1, 2)) - y_test) ** 2)
    print(f"toy MSE: untrained {before:.4f}, trained {after:.4f} (interior {error:.4f}), "
          f"mean predictor {baseline:.4f}")
    assert error < 0.1 * baseline and after < 0.2 * before


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="spatial_kernel must be odd"):
        ColumnNet(4, 8, spatial_kernel=4)
    with pytest.raises(ValueError, match="dropout"):
        ColumnNet(4, 8, dropout=1.0)
    with pytest.raises(ValueError, match="n_depth"):
        ColumnNet(0, 8)
    with pytest.raises(ValueError, match=r"ppv: expected shape \(B, Nx, Ny, 8, 1\)"):
        ColumnNet(4, 8)(np.zeros((1, 4, 4, 9, 1), np.float32))
    model = small_net()
    cube = random_cubes((10, 10, 16), 0)
    with pytest.raises(ValueError, match="window=4: expected more than 2 halo = 4"):
        scan_predict(model, cube, 4)
    with pytest.raises(ValueError, match="stride=4: expected at most window - 2 halo = 3"):
        scan_predict(model, cube, 7, 4)
    with pytest.raises(ValueError, match=r"ppv: expected shape \(Nx, Ny, 16\)"):
        scan_predict(model, cube[..., :8], 7)
    with pytest.raises(ValueError, match="model: expected a ColumnNet"):
        mc_dropout_predict(keras.Sequential([keras.layers.Dense(1)]), cube[None], 2)


def small_compiled_net():
    """A small ColumnNet with dropout 0.2 (seeded), unbuilt, compiled with its own defaults."""
    model = ColumnNet(8, 16, width=4, depth=2, spectral_kernel=5, context_units=6, hidden=12,
                      dropout=0.2, seed=5)
    model.compile()
    return model


def check_batch():
    """(PPV cubes (4, 13, 11, 16, 1), columns (4, 13, 11, 8, 2)) of the model checks."""
    return random_cubes((4, 13, 11, 16, 1), 10), random_cubes((4, 13, 11, 8, 2), 11)


def test_compile_defaults_to_adam_and_the_mse_of_standardised_targets():
    x, y = check_batch()
    y = y * [3.0, 0.5] + [-1.0, 0.2]  # physical columns: log10 density, v_z
    model = ColumnNet(8, 16, width=4, depth=2, spectral_kernel=5, dropout=0.0,
                      ppv_scale=2.0, target_mean=(-1.0, 0.2), target_std=(3.0, 0.5))
    model.compile()
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    standardised_error = (model.predict(x, verbose=0) - y) / [3.0, 0.5]
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), np.mean(standardised_error**2),
                               rtol=1e-5)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small ColumnNet (dropout 0.2) fitted one epoch and saved as .keras, with a cube
    (1, 13, 11, 16, 1) saved as .npy. Returns (model, directory)."""
    directory = tmp_path_factory.mktemp("column_model")
    keras.utils.set_random_seed(0)
    model = small_compiled_net()
    x = random_cubes((4, 13, 11, 16, 1), 10)
    model.fit(x, random_cubes((4, 13, 11, 8, 2), 11), batch_size=2, epochs=1, verbose=0)
    model.save(str(directory / "column.keras"))
    np.save(directory / "ppv.npy", x[:1])
    return model, directory


def test_model_checks(tmp_path):
    x, y = check_batch()
    checked = check_model(small_compiled_net, x, y, tmp_path=tmp_path)
    assert isinstance(checked.loaded.loss, keras.losses.MeanSquaredError)
    # the original and the loaded copy end with the same weights: the same Monte-Carlo spread
    np.testing.assert_array_equal(mc_dropout_predict(checked.loaded, x[:1], 3, seed=1)[1],
                                  mc_dropout_predict(checked.model, x[:1], 3, seed=1)[1])


JAX_SCRIPT = """
import json, sys
import keras, numpy as np
from tfastro.prestellar.model import mc_dropout_predict, scan_predict
directory, full = sys.argv[1], sys.argv[2] == "full"
x = np.load(directory + "/ppv.npy")
model = keras.saving.load_model(directory + "/column.keras")
out = {"backend": keras.backend.backend(), "one_pass": np.asarray(model(x)).tolist(),
       "scanned": scan_predict(model, x[0], 7, 2).tolist()}
if full:
    out["mc_std"] = mc_dropout_predict(model, x, 2, seed=1)[1].tolist()
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    y = np.zeros((1, 13, 11, 8, 2), np.float32)
    out["loss"] = model.fit(x, y, epochs=2, verbose=0).history["loss"]
print("RESULT" + json.dumps(out))
"""


def run_on_jax(directory, mode):
    return jax_backend.run_on_jax(JAX_SCRIPT, directory, mode)


def test_saved_model_predicts_and_scans_on_the_jax_backend(saved):
    """On JAX the model saved under TensorFlow gives the same columns, in one pass and scanned."""
    model, directory = saved
    out = run_on_jax(directory, "quick")
    x = np.load(directory / "ppv.npy")
    np.testing.assert_allclose(out["one_pass"], model(x), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["scanned"], model(x)[0], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_saved_model_samples_and_trains_on_the_jax_backend(saved):
    """Monte-Carlo masks on JAX come from JAX's own random bits, so only the spread's scale is
    compared with TensorFlow's; two fit epochs lower the loss."""
    model, directory = saved
    out = run_on_jax(directory, "full")
    std_tf = mc_dropout_predict(model, np.load(directory / "ppv.npy"), 2, seed=1)[1]
    assert 0.3 < np.mean(out["mc_std"]) / np.mean(std_tf) < 3
    assert np.isfinite(out["loss"]).all() and out["loss"][1] < out["loss"][0]


MODULE = "tests.prestellar.test_model"


@pytest.fixture(scope="module")
def on_jax(tmp_path_factory):
    """The loss curve run on the JAX backend (one subprocess), from the
    initial weights and batch saved here (the local toy, targets scaled to physical-like
    columns, the model normalised by them); returns (its result, the directory)."""
    directory = tmp_path_factory.mktemp("prestellar_jax")
    x, y = local_toy(4, 3)
    y = y * [3.0, 0.5] + [-1.0, 0.2]
    keras.utils.set_random_seed(1)
    model = ColumnNet(8, 8, width=4, depth=2, spectral_kernel=3, context_units=6, hidden=12,
                      dropout=0.0, **training_normalisation(x[..., 0], y))
    model.build(x.shape)
    model.save(directory / "initial.keras")
    np.savez(directory / "batch.npz", x=x, y=y)
    out = jax_backend.model_on_jax(MODULE, "small_compiled_net", directory, 1e-2)
    return out, directory


@pytest.mark.slow  # minutes of JAX compilation on 2 cores; the same checks run on TensorFlow
def test_model_checks_on_jax(on_jax):
    out = jax_backend.model_on_jax(MODULE, "small_compiled_net", on_jax[1], 1e-2, checks=True)
    assert out["checks"] == "passed", out["checks"]


def test_tensorflow_and_jax_give_the_same_loss_curve(on_jax):
    out, directory = on_jax
    curve = jax_backend.loss_curve(directory, 1e-2)
    print("loss curve on TensorFlow", np.round(curve, 5), "on JAX", np.round(out["loss_curve"], 5))
    assert np.all(np.diff(curve) < -1e-4)  # it trains, by more than the tolerance
    np.testing.assert_allclose(out["loss_curve"], curve, rtol=1e-5)  # float32 round-off
