"""Turbulence classifier and U-net: sizes against the layer formulas, PyTorch-style padding, the
MSE + alpha (1 - SSIM) loss against image_metrics.ssim2d, AdamW against its update rule, early
stopping's restore, planted tasks both models must learn, their own compile, the model checks
(saving, resuming, mixed precision, the Keras workflow) on TensorFlow and JAX, the same loss
curves on both, Keras' layer test of TilePreprocessing, the JAX backend."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.testing import TestCase
from scipy.ndimage import uniform_filter
from scipy.stats import rankdata

from tests import jax_backend
from tests.model_testing import check_model
from tfastro.fields.image_metrics import ssim2d
from tfastro.fields.random_fields import gaussian_random_field
from tfastro.turbulence.model import (SSIM_ALPHAS, SSIMMSELoss, TilePreprocessing,
                                      TurbulenceClassifier, TurbulenceUNet, adamw,
                                      compile_classifier, compile_unet, early_stopping,
                                      ssim_mse_loss, turbulence_classifier, turbulence_unet)


def n_trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def conv_params(k, c_in, c_out):
    """Weights and bias of a k x k convolution (also a transposed one)."""
    return k * k * c_in * c_out + c_out


def equalised(field):
    """Rank (histogram) equalisation of a map to (0, 1), as the turbulence pipeline does."""
    return ((rankdata(field, method="ordinal").reshape(field.shape) - 0.5) / field.size)


def random_tiles(n, side, slope, seed):
    """(n, side, side, 1) float32 equalised Gaussian fields with P(k) ~ k^-slope."""
    return np.stack([equalised(gaussian_random_field((side, side), side, lambda k: k**-slope,
                                                     (seed, i)))
                     for i in range(n)])[..., None].astype(np.float32)


@pytest.fixture(scope="module")
def smooth_vs_rough():
    """Planted two-class toy at 64^2: smooth (P ~ k^-4, label 0) vs rough (k^-2, label 1)
    fields, equalised, so only texture tells them apart. Returns (x, y, x_test, y_test)."""
    x = np.concatenate([random_tiles(128, 64, 4.0, 1), random_tiles(128, 64, 2.0, 2)])
    x_test = np.concatenate([random_tiles(64, 64, 4.0, 3), random_tiles(64, 64, 2.0, 4)])
    return x, np.repeat([0, 1], 128), x_test, np.repeat([0, 1], 64)


def test_classifier_has_29749_parameters_as_the_layer_formula_gives():
    model = turbulence_classifier(128, 5)
    expected, c_in = 0, 1
    for c_out in (8, 16, 32, 64):
        expected += conv_params(3, c_in, c_out) + 2 * c_out  # conv + batch-norm gamma, beta
        c_in = c_out
    expected += 4 * 4 * 64 * 5 + 5  # dense on the flattened 4 x 4 x 64 pool
    assert n_trainable(model) == expected == 29_749
    assert sum(int(np.prod(w.shape)) for w in model.non_trainable_weights) == 2 * 120
    sides = [model.get_layer(f"conv{i}").output.shape[1] for i in range(1, 5)]
    assert sides == [64, 32, 16, 8]
    assert tuple(model.get_layer("pool").output.shape[1:]) == (4, 4, 64)


def test_unet_parameter_count_and_batch_norm_follow_pytorch():
    model = turbulence_unet(128)
    filters, expected, c_in = (8, 16, 32, 64), 0, 1
    for width in filters:  # encoder and bottleneck: 2 x (conv + BN)
        expected += conv_params(3, c_in, width) + conv_params(3, width, width) + 4 * width
        c_in = width
    for width in filters[-2::-1]:  # decoder: transposed conv, conv on the concatenation, conv
        expected += conv_params(2, 2 * width, width) + conv_params(3, 2 * width, width)
        expected += conv_params(3, width, width) + 4 * width
    expected += conv_params(1, 8, 1)
    assert n_trainable(model) == expected == 121_385
    norms = [layer for model in (model, turbulence_classifier(64, 5)) for layer in model.layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 14 + 4
    assert all(n.momentum == 0.9 and n.epsilon == 1e-5 for n in norms)


def test_stride_two_convolution_pads_one_pixel_on_every_side(rng):
    """Output (i, j) of the first convolution is centred on input pixel (2i, 2j), as PyTorch's
    Conv2d(k=3, s=2, padding=1); Keras' 'same' would centre it on (2i + 1, 2j + 1)."""
    model = turbulence_classifier(64, 5)
    conv = model.get_layer("conv1")
    x = rng.random((1, 64, 64, 1)).astype(np.float32)
    got = keras.Model(model.input, conv.output)(x).numpy()[0]
    kernel, bias = (w.numpy() for w in conv.weights)
    padded = np.pad(x[0, :, :, 0], 1)
    patches = np.stack([padded[di:di + 64:2, dj:dj + 64:2] for di in range(3) for dj in range(3)],
                       axis=-1)
    np.testing.assert_allclose(got, patches @ kernel.reshape(9, -1) + bias, rtol=1e-5, atol=1e-5)


def test_kernels_start_from_pytorchs_uniform_one_over_sqrt_fan_in():
    model = turbulence_unet(32)
    for name, fan_in in (("bottleneck_conv2", 9 * 64), ("up1_transpose", 4 * 8), ("maps", 8)):
        kernel = model.get_layer(name).kernel.numpy()
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(kernel).max() <= np.float32(bound)  # the float32 bound Keras draws up to
        if kernel.size > 1000:
            assert kernel.std() == pytest.approx(bound / np.sqrt(3), rel=0.05)


@pytest.mark.parametrize("tile", [64, 192])
def test_classifier_pools_to_four_by_four_for_tiles_divisible_by_64(rng, tile):
    model = turbulence_classifier(tile, 3)
    assert tuple(model.get_layer("pool").output.shape[1:]) == (4, 4, 64)
    assert model(rng.random((2, tile, tile, 1)).astype(np.float32)).shape == (2, 3)


@pytest.mark.parametrize("tile", [32, 64])
def test_unet_maps_tiles_to_tiles(rng, tile):
    out = turbulence_unet(tile)(rng.random((2, tile, tile, 1)).astype(np.float32))
    assert out.shape == (2, tile, tile, 1) and out.dtype == "float32"


def test_bad_tiles_and_arguments_are_rejected():
    with pytest.raises(ValueError, match="tile=96.*multiple of 64"):
        turbulence_classifier(96)
    with pytest.raises(ValueError, match="tile=36.*multiple of 8"):
        turbulence_unet(36)
    with pytest.raises(ValueError, match="dropout"):
        turbulence_classifier(64, dropout=1.0)
    with pytest.raises(ValueError, match="alpha"):
        ssim_mse_loss(-0.1)


def planted_maps(rng, n=4, side=32):
    true = rng.random((n, side, side, 1))
    pred = np.clip(true + 0.2 * rng.standard_normal(true.shape), 0, 1)
    return pred, true


def reference_loss(pred, true, alpha):
    """MSE + alpha (1 - SSIM) with image_metrics.ssim2d, averaged over the batch (float64)."""
    mse = np.mean((pred - true) ** 2, axis=(1, 2, 3))
    return np.mean(mse + alpha * (1 - ssim2d(pred, true)))


@pytest.mark.parametrize("alpha", SSIM_ALPHAS)
def test_ssim_mse_loss_is_mse_plus_alpha_one_minus_ssim2d(rng, alpha):
    pred, true = planted_maps(rng)
    got = float(ssim_mse_loss(alpha)(true.astype(np.float32), pred.astype(np.float32)))
    np.testing.assert_allclose(got, reference_loss(pred, true, alpha), rtol=1e-5)
    got64 = float(SSIMMSELoss(alpha, dtype="float64")(true, pred))
    np.testing.assert_allclose(got64, reference_loss(pred, true, alpha), rtol=1e-12)


def test_ssim_mse_loss_gradient_matches_finite_differences_of_ssim2d(rng):
    alpha = 0.1
    pred, true = planted_maps(rng)
    direction = rng.standard_normal(pred.shape)
    pred_t = tf.constant(pred)
    with tf.GradientTape() as tape:
        tape.watch(pred_t)
        loss = SSIMMSELoss(alpha, dtype="float64")(tf.constant(true), pred_t)
    grad = tape.gradient(loss, pred_t).numpy()
    assert np.all(np.isfinite(grad))
    eps = 1e-5
    slope = (reference_loss(pred + eps * direction, true, alpha)
             - reference_loss(pred - eps * direction, true, alpha)) / (2 * eps)
    np.testing.assert_allclose(np.sum(grad * direction), slope, rtol=1e-6)
    # The SSIM term contributes: the MSE gradient alone misses the slope.
    mse_grad = 2 * (pred - true) / pred.size
    assert abs(np.sum(mse_grad * direction) - slope) > 1e-3 * abs(slope)


def test_adamw_step_is_decoupled_decay_plus_adam():
    """First AdamW step: w <- w (1 - lr wd) - lr g / (|g| + eps) (m_hat = g, v_hat = g^2)."""
    lr, wd = 1e-2, 0.5
    w0, g = np.array([1.0, -2.0, 3.0], np.float32), np.array([0.5, 0.25, -4.0], np.float32)
    var = keras.Variable(w0)
    adamw(lr, wd).apply_gradients([(keras.ops.convert_to_tensor(g), var)])
    np.testing.assert_allclose(var.numpy(), w0 * (1 - lr * wd) - lr * g / (np.abs(g) + 1e-8),
                               rtol=1e-6)


def test_compiled_classifier_loss_is_cross_entropy_of_its_logits(smooth_vs_rough):
    x, y, _, _ = smooth_vs_rough
    model = compile_classifier(turbulence_classifier(64, 2))
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert model.optimizer.weight_decay == pytest.approx(1e-4)
    logits = model.predict(x[:32], verbose=0).astype(np.float64)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -np.mean(log_p[np.arange(32), y[:32]])
    assert model.evaluate(x[:32], y[:32], batch_size=32, verbose=0)[0] == pytest.approx(
        expected, rel=1e-5)


def test_classifier_learns_smooth_vs_rough_fields(smooth_vs_rough):
    x, y, x_test, y_test = smooth_vs_rough
    keras.utils.set_random_seed(0)
    model = compile_classifier(turbulence_classifier(64, 2))
    model.fit(x, y, batch_size=16, epochs=6, shuffle=True, verbose=0)
    accuracy = model.evaluate(x_test, y_test, verbose=0)[1]
    print(f"held-out accuracy on smooth vs rough fields: {accuracy:.3f} (chance 0.5)")
    assert accuracy > 0.9


def test_early_stopping_restores_the_weights_of_the_best_validation_epoch(smooth_vs_rough):
    """Validation labels are the training labels flipped: the better the fit, the worse the
    validation loss, so the best epoch comes before the last and must be restored."""
    x, y, x_test, y_test = smooth_vs_rough
    keras.utils.set_random_seed(0)
    model = compile_classifier(turbulence_classifier(64, 2))
    snapshots = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: snapshots.append(model.get_weights()))
    history = model.fit(x[::2], y[::2], batch_size=16, epochs=8, verbose=0,
                        validation_data=(x_test[::2], 1 - y_test[::2]),
                        callbacks=[record, early_stopping(patience=2)])
    val_loss = history.history["val_loss"]
    print("validation losses per epoch:", np.round(val_loss, 3))
    best = int(np.argmin(val_loss))
    assert best < len(val_loss) - 1 < 7  # the planted situation: it got worse, and stopped
    restored = model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(restored, snapshots[best]))
    assert not all(np.array_equal(a, b) for a, b in zip(restored, snapshots[-1]))


def local_nonlinear_target(x):
    """Planted local map: 4 u (1 - u) of the periodic 3 x 3 mean u of x; in [0, 1]."""
    u = uniform_filter(x, size=(1, 3, 3, 1), mode="wrap")
    return 4 * u * (1 - u)


def test_unet_beats_identity_and_mean_baselines_on_a_local_nonlinear_map():
    x, x_test = random_tiles(256, 32, 3.0, 5), random_tiles(64, 32, 3.0, 6)
    y, y_test = local_nonlinear_target(x), local_nonlinear_target(x_test)
    keras.utils.set_random_seed(0)
    model = compile_unet(turbulence_unet(32))
    model.fit(x, y, batch_size=32, epochs=8, verbose=0)
    unet_mse = np.mean((model.predict(x_test, verbose=0) - y_test) ** 2)
    identity_mse = np.mean((x_test - y_test) ** 2)
    mean_mse = np.mean((y.mean() - y_test) ** 2)
    print(f"test MSE: U-net {unet_mse:.4f}, identity {identity_mse:.4f}, mean {mean_mse:.4f}")
    assert unet_mse < 0.5 * min(identity_mse, mean_mse)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A classifier (64^2, 3 classes) and a U-net (32^2, alpha 0.1), compiled, fitted one (eager)
    epoch and saved as .keras; with inputs x64, x32 saved as .npy. Returns (models, directory)."""
    rng = np.random.default_rng(7)
    directory = tmp_path_factory.mktemp("turbulence_models")
    classifier = compile_classifier(turbulence_classifier(64, 3), run_eagerly=True)
    classifier.fit(rng.random((8, 64, 64, 1)), rng.integers(0, 3, 8), epochs=1, verbose=0)
    unet = compile_unet(turbulence_unet(32), alpha=0.1, run_eagerly=True)
    maps = rng.random((8, 32, 32, 1))
    unet.fit(maps, maps**2, epochs=1, verbose=0)
    models = {"classifier": classifier, "unet": unet}
    for name, model in models.items():
        model.save(str(directory / f"{name}.keras"))
    for side in (64, 32):
        np.save(directory / f"x{side}.npy", rng.random((4, side, side, 1)).astype(np.float32))
    return models, directory


@pytest.mark.parametrize("network", ["classifier", "unet"])
def test_model_checks(rng, tmp_path, network):
    """Both models, compiled as the task compiles them (eager, as tracing the U-net's loss is
    slow on 2 cores)."""
    if network == "classifier":
        x, y = rng.random((8, 64, 64, 1)).astype(np.float32), rng.integers(0, 3, 8)
        make, compile_model, kwargs = turbulence_classifier, compile_classifier, {}
    else:
        x = rng.random((8, 32, 32, 1)).astype(np.float32)
        y = x**2
        make, compile_model, kwargs = turbulence_unet, compile_unet, {"alpha": 0.1}
    checked = check_model(lambda: compile_model(make(x.shape[1]), run_eagerly=True, **kwargs),
                          x, y, tmp_path=tmp_path)
    if network == "unet":
        loss = checked.loaded.loss
        assert isinstance(loss, SSIMMSELoss) and loss.alpha == 0.1


def test_compile_defaults_to_the_papers_training(rng):
    """``compile()`` alone: AdamW with the paper's rates, cross-entropy of the logits with
    accuracy for the classifier, MSE + 0.02 (1 - SSIM) with an MSE metric for the U-net."""
    classifier, unet = TurbulenceClassifier(64, 3), TurbulenceUNet(16, filters=(4, 8))
    for model, lr, decay in ((classifier, 1e-3, 1e-4), (unet, 1e-2, 1e-2)):
        model.compile()
        assert isinstance(model.optimizer, keras.optimizers.AdamW)
        assert float(model.optimizer.learning_rate) == pytest.approx(lr)
        assert model.optimizer.weight_decay == pytest.approx(decay)
    x, labels = rng.random((4, 64, 64, 1)).astype(np.float32), np.array([0, 2, 1, 2])
    logits = classifier.predict(x, verbose=0).astype(np.float64)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    results = classifier.evaluate(x, labels, verbose=0, return_dict=True)
    assert results["loss"] == pytest.approx(-np.mean(log_p[np.arange(4), labels]), rel=1e-5)
    assert results["accuracy"] == np.mean(np.argmax(logits, axis=1) == labels)
    maps = rng.random((4, 16, 16, 1))
    predicted = unet.predict(maps, verbose=0).astype(np.float64)
    results = unet.evaluate(maps, maps**2, verbose=0, return_dict=True)
    assert results["loss"] == pytest.approx(reference_loss(predicted, maps**2, 0.02), rel=1e-5)
    assert results["mse"] == pytest.approx(np.mean((predicted - maps**2) ** 2), rel=1e-5)


class TilePreprocessingLayerTest(TestCase):
    """Keras' own layer test (config, saving, training, mixed precision) of the one custom
    layer: it passes the tiles unchanged and has no weights (the project's check_layer, which
    trains weights, does not apply)."""

    def test_keras_layer_test(self):
        tiles = keras.ops.convert_to_tensor(np.random.default_rng(0).random((2, 8, 8, 1)),
                                            "float32")
        for kwargs in ({"field": "density", "flattened_power": True,
                        "class_names": ["mhd", "cr_advection"]},
                       {"equalised": False, "target_field": "cr_energy_density"}):
            self.run_layer_test(TilePreprocessing, init_kwargs=kwargs, input_data=tiles,
                                expected_output=tiles,
                                expected_num_trainable_weights=0,
                                expected_num_non_trainable_weights=0,
                                expected_num_seed_generators=0, expected_num_losses=0,
                                supports_masking=False)


def small_models():
    """{"classifier": (64^2 tiles, 3 classes), "unet": (16^2 tiles, filters (4, 8))}, built
    fresh by each call: the models of the checks on JAX and of the loss curves."""
    return {"classifier": TurbulenceClassifier(64, 3), "unet": TurbulenceUNet(16, filters=(4, 8))}


def loss_curves(directory):
    """{network: losses of 4 steps of its own compile (AdamW at the paper's rates, its own loss)
    on the batch in <network>.npz, from the weights in <network>.keras} (the classifier
    without dropout, batch norm on batch statistics: no randomness)."""
    curves = {}
    for network in ("classifier", "unet"):
        model = keras.saving.load_model(directory / f"{network}.keras")
        model.compile()
        data = np.load(directory / f"{network}.npz")
        curves[network] = model.fit(data["x"], data["y"], batch_size=4, epochs=4, shuffle=False,
                                    verbose=0).history["loss"]
    return curves


JAX_SCRIPT = """
import json, sys
import jax, keras, numpy as np
from tfastro.turbulence.model import (compile_classifier, compile_unet, ssim_mse_loss,
                                       turbulence_classifier, turbulence_unet)
directory, full = sys.argv[1], sys.argv[2] == "full"
x64, x32 = np.load(directory + "/x64.npy"), np.load(directory + "/x32.npy")
load = lambda name: keras.saving.load_model(directory + "/" + name + ".keras")
loss = ssim_mse_loss(0.1)
out = {"backend": keras.backend.backend(), "loss": float(loss(x32 ** 2, x32)),
       "grad": np.asarray(jax.grad(lambda p: loss(x32 ** 2, p))(x32)).tolist(),
       "classifier": np.asarray(load("classifier")(x64)).tolist()}
if full:
    out["unet"] = np.asarray(load("unet")(x32)).tolist()
    rng = np.random.default_rng(0)
    fit = lambda model, x, y: model.fit(x, y, epochs=1, verbose=0).history["loss"]
    out["fits"] = (fit(compile_classifier(turbulence_classifier(64, 3)), x64, rng.integers(0, 3, 4))
                   + fit(compile_unet(turbulence_unet(32)), x32, x32 ** 2))
print("RESULT" + json.dumps(out))
"""


def run_on_jax(directory, mode):
    return jax_backend.run_on_jax(JAX_SCRIPT, directory, mode)


def test_classifier_and_ssim_loss_on_the_jax_backend_match_tensorflow(saved):
    """The classifier saved under TensorFlow gives the same logits on JAX; the loss has the
    same value and the same gradient (jax.grad against tf.GradientTape)."""
    models, directory = saved
    x64, x32 = np.load(directory / "x64.npy"), np.load(directory / "x32.npy")
    out = run_on_jax(directory, "quick")
    np.testing.assert_allclose(out["classifier"], models["classifier"](x64), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(out["loss"], reference_loss(x32, x32.astype(np.float64) ** 2, 0.1),
                               rtol=1e-5)
    pred = tf.constant(x32)
    with tf.GradientTape() as tape:
        tape.watch(pred)
        loss = ssim_mse_loss(0.1)(x32**2, pred)
    np.testing.assert_allclose(out["grad"], tape.gradient(loss, pred).numpy(), rtol=1e-3,
                               atol=1e-8)


@pytest.mark.slow
def test_unet_on_the_jax_backend_matches_tensorflow_and_both_models_train(saved):
    models, directory = saved
    out = run_on_jax(directory, "full")
    x32 = np.load(directory / "x32.npy")
    np.testing.assert_allclose(out["unet"], models["unet"](x32), rtol=1e-4, atol=1e-5)
    assert np.isfinite(out["fits"]).all() and len(out["fits"]) == 2


CHECKS_ON_JAX = """
import json, pathlib, sys, traceback
import jax, keras, numpy as np
from tests.model_testing import check_model
from tests.turbulence.test_model import loss_curves, small_models
directory, what = pathlib.Path(sys.argv[1]), sys.argv[2]
jax.config.update("jax_compilation_cache_dir", str(directory / "jax_cache"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
out = {"backend": keras.backend.backend()}
if what == "curves":
    out["loss_curves"] = loss_curves(directory)
else:
    rng = np.random.default_rng(3)
    x16 = rng.random((8, 16, 16, 1)).astype("float32")
    batches = {"classifier": (rng.random((8, 64, 64, 1)).astype("float32"),
                              rng.integers(0, 3, 8)), "unet": (x16, x16 ** 2)}
    network, batch = what, batches[what]
    def factory():
        model = small_models()[network]
        model.compile()
        return model
    try:
        check_model(factory, *batch, tmp_path=directory / "checks" / network)
        out["checks"] = "passed"
    except Exception:
        out["checks"] = traceback.format_exc()
print("RESULT" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def on_jax(tmp_path_factory):
    """The loss curves run on the JAX backend (one subprocess), from the initial weights and
    batches saved here; returns (its result, the directory)."""
    directory = tmp_path_factory.mktemp("turbulence_jax")
    rng = np.random.default_rng(11)
    keras.utils.set_random_seed(1)
    models = {"classifier": TurbulenceClassifier(64, 3, dropout=0.0),
              "unet": small_models()["unet"]}
    tiles = rng.random((4, 16, 16, 1)).astype(np.float32)
    batches = {"classifier": (random_tiles(4, 64, 3.0, 12), np.array([0, 1, 2, 1])),
               "unet": (tiles, local_nonlinear_target(tiles))}
    for network, model in models.items():
        model.save(directory / f"{network}.keras")
        np.savez(directory / f"{network}.npz", x=batches[network][0], y=batches[network][1])
    return jax_backend.run_on_jax(CHECKS_ON_JAX, directory, "curves"), directory


@pytest.mark.slow  # minutes of JAX compilation on 2 cores; the same checks run on TensorFlow
@pytest.mark.parametrize("network", ["classifier", "unet"])
def test_model_checks_on_jax(on_jax, network):
    """Each model compiled with its own defaults passes the model checks on JAX."""
    out = jax_backend.run_on_jax(CHECKS_ON_JAX, on_jax[1], network)
    assert out["checks"] == "passed", out["checks"]


@pytest.mark.parametrize("network", ["classifier", "unet"])
def test_tensorflow_and_jax_give_the_same_loss_curves(on_jax, network):
    out, directory = on_jax
    curve = loss_curves(directory)[network]
    print(f"{network} loss curve on TensorFlow", np.round(curve, 5), "on JAX",
          np.round(out["loss_curves"][network], 5))
    assert curve[-1] < 0.9 * curve[0]  # it trains
    np.testing.assert_allclose(out["loss_curves"][network], curve, rtol=1e-4)  # float32 round-off
