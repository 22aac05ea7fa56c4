"""UNet3D: periodic padding against numpy's wrap, the convolution block's layer checks (ours
and Keras'), translation equivariance of the periodic network, persistence at initialisation,
the forecast contract (one shot, rollout, last frames read, errors), the model checks and
training on JAX that follows TensorFlow's; run.py --model_name unet: training pairs, outputs
with the baselines' scores, exact resume, settings."""
import dataclasses
import json
import os

import keras
import numpy as np
import pytest
from absl.testing import parameterized
from keras.src import testing  # Keras' own layer test case (run_layer_test)

from tests import jax_backend
from tests.layer_testing import check_layer, randomize_weights
from tests.model_testing import check_model
from tests.supernova.conftest import GRID
from tfastro.core.errors import UserInputError
from tfastro.supernova.config import UNet3DConfig, validate_config
from tfastro.supernova.io import load_sn_npz
from tfastro.supernova.task import run, trained_iterations, training_pairs
from tfastro.supernova.unet import ConvBlock3D, UNet3D, log_features, periodic_pad

SMALL = dict(input_length=2, horizon=2, filters=(3, 4))


def fields(rng, shape):
    return rng.uniform(size=shape).astype("float32")


def trained_weights(model, rng):
    """Give every weight random values of the size training leaves (the head starts at
    zero: persistence)."""
    for w in model.weights:
        w.assign(rng.normal(0.0, 0.2, size=w.shape).astype("float32"))
    return model


def assert_close(actual, expected):
    """Equal within float32 round-off of the graph and eager programs (relative to the
    largest value)."""
    expected = np.asarray(expected)
    np.testing.assert_allclose(actual, expected, rtol=0,
                               atol=1e-5 * max(1.0, float(np.abs(expected).max())))


# --- padding and the convolution block --------------------------------------------------------

@pytest.mark.parametrize("width", [0, 1, 2])
def test_periodic_pad_is_numpy_wrap(width, rng):
    x = rng.normal(size=(2, 4, 3, 5, 2)).astype("float32")
    expected = np.pad(x, [(0, 0)] + [(width, width)] * 3 + [(0, 0)], mode="wrap")
    np.testing.assert_array_equal(np.asarray(periodic_pad(x, width)), expected)


def test_periodic_pad_refuses_a_grid_smaller_than_the_padding():
    with pytest.raises(ValueError, match="at least 3 voxels"):
        periodic_pad(np.zeros((1, 2, 4, 4, 1), "float32"), 3)


@pytest.mark.parametrize("padding", ["periodic", "zeros"])
def test_conv_block_passes_layer_checks(padding, rng, tmp_path):
    outputs = check_layer(lambda **kw: ConvBlock3D(3, 3, padding, **kw),
                          (rng.normal(size=(2, 4, 4, 4, 2)).astype("float32"),), tmp_path)
    assert outputs[0].shape == (2, 4, 4, 4, 3)


def test_periodic_conv_block_commutes_with_rolls_zero_padding_does_not(rng):
    x = rng.normal(size=(1, 6, 6, 6, 2)).astype("float32")
    shift = dict(shift=(2, -1, 3), axis=(1, 2, 3))
    for padding, equivariant in (("periodic", True), ("zeros", False)):
        block = ConvBlock3D(3, 3, padding)
        block.build(x.shape)
        randomize_weights(block, rng)
        rolled_out = np.roll(np.asarray(block(x)), **shift)
        out_of_rolled = np.asarray(block(np.roll(x, **shift)))
        assert np.allclose(out_of_rolled, rolled_out, atol=1e-5) == equivariant, padding


def test_conv_block_rejects_bad_arguments():
    with pytest.raises(ValueError, match="padding must be one of"):
        ConvBlock3D(3, padding="reflect")
    with pytest.raises(ValueError, match="odd"):
        ConvBlock3D(3, kernel_size=4)


class KerasLayerTest(testing.TestCase):
    """Keras' run_layer_test of ConvBlock3D: symbolic and eager calls, serialisation, a
    training step and, under mixed_float16, float32 weights and float16 outputs."""

    def tearDown(self):
        keras.config.enable_traceback_filtering()  # setUp turned it off for the whole process

    @parameterized.named_parameters(("periodic", "periodic"), ("zeros", "zeros"))
    def test_run_layer_test(self, padding):
        self.run_layer_test(ConvBlock3D, {"filters": 3, "kernel_size": 3, "padding": padding},
                            input_shape=(2, 4, 4, 4, 2), expected_output_shape=(2, 4, 4, 4, 3),
                            expected_num_trainable_weights=4)


# --- the model ---------------------------------------------------------------------------------

def test_log_features_are_decades_about_one_per_cent():
    x = np.array([1.0, 0.1, 1e-2, 1e-4, 1e-6, 0.0], "float32")
    np.testing.assert_allclose(np.asarray(log_features(x)), [2.0, 1.0, 0.0, -2.0, -2.0, -2.0],
                               atol=1e-6)


def test_log_input_changes_what_the_network_reads(rng):
    context = fields(rng, (1, 2, 4, 4, 4, 1))
    linear, log = UNet3D(**SMALL, log_input=False), UNet3D(**SMALL)
    for model in (linear, log):
        model.build(context.shape)
    trained_weights(linear, rng)
    log.set_weights(linear.get_weights())
    np.testing.assert_allclose(np.asarray(log(context)),
                               np.asarray(linear(np.asarray(log_features(context)))
                                          - log_features(context[:, -1:]) + context[:, -1:]),
                               atol=1e-5)


def test_untrained_model_forecasts_persistence(rng):
    """The head starts at zero: every output frame is the last context frame."""
    context = fields(rng, (3, 4, 4, 4, 4, 2))
    model = UNet3D(input_length=2, horizon=3, filters=(3, 4))
    out = np.asarray(model(context))
    np.testing.assert_array_equal(out, np.repeat(context[:, -1:], 3, axis=1))


def test_periodic_model_commutes_with_rolls_by_the_pooling_size(rng):
    context = fields(rng, (1, 2, 8, 8, 8, 1))
    model = UNet3D(**SMALL)
    model.build(context.shape)
    trained_weights(model, rng)
    shift = dict(shift=(2, 4, -2), axis=(2, 3, 4))
    np.testing.assert_allclose(np.asarray(model(np.roll(context, **shift))),
                               np.roll(np.asarray(model(context)), **shift), atol=1e-5)


def test_forecast_is_one_shot_then_rolled_out_from_the_last_frames(rng):
    context = fields(rng, (2, 3, 4, 4, 4, 1))
    model = UNet3D(**SMALL)
    model.build(context.shape)
    trained_weights(model, rng)
    first = np.asarray(model(context))  # reads the last input_length = 2 frames
    assert_close(first, np.asarray(model(context[:, 1:])))
    forecast = model.forecast(context, 3)
    assert forecast.shape == (2, 3, 4, 4, 4, 1) and forecast.dtype == np.float32
    assert_close(forecast[:, :2], first)
    # continued from the last two frames forecast (fed back as forecast returns them: the
    # log of small values would magnify the round-off between graph and eager calls)
    assert_close(forecast[:, 2], np.asarray(model(forecast[:, :2]))[:, 0])
    assert_close(model.forecast(context, 1), first[:, :1])
    # clips are forecast independently of each other
    assert_close(model.forecast(context[1:], 3), forecast[1:])


def test_rollout_model_feeds_back_one_frame_at_a_time(rng):
    context = fields(rng, (1, 1, 4, 4, 4, 1))
    model = UNet3D(input_length=1, horizon=1, filters=(2,))
    model.build(context.shape)
    trained_weights(model, rng)
    forecast = model.forecast(context, 4)
    assert_close(forecast[:, :1], np.asarray(model(context)))
    for k in range(1, 4):  # each frame from the one before, as forecast returned it
        assert_close(forecast[:, k:k + 1], np.asarray(model(forecast[:, k - 1:k])))


@pytest.mark.parametrize("shape, message", [
    ((2, 1, 4, 4, 4, 1), r"time>=2"),  # too few frames
    ((2, 2, 4, 4, 5, 1), r"multiples of 2"),  # grid not divisible by the pooling
    ((2, 2, 4, 4, 4), r"channels last"),  # no channel axis
])
def test_contexts_of_another_layout_raise_one_line_errors(shape, message):
    model = UNet3D(**SMALL)
    with pytest.raises(ValueError, match=message) as err:
        model.forecast(np.zeros(shape, "float32"), 2)
    assert "\n" not in str(err.value)


def test_built_model_refuses_another_channel_count(rng):
    model = UNet3D(**SMALL)
    model.build((None, 2, 4, 4, 4, 1))
    with pytest.raises(ValueError, match=r"X, Y, Z, 1\)"):
        model(fields(rng, (1, 2, 4, 4, 4, 2)))


@pytest.mark.parametrize("kwargs, message", [
    (dict(input_length=0), "input_length and horizon"),
    (dict(horizon=0), "input_length and horizon"),
    (dict(filters=()), "filters"),
    (dict(padding="reflect"), "padding"),
])
def test_model_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UNet3D(**kwargs).build((None, 2, 4, 4, 4, 1))


def test_forecast_rejects_a_bad_number_of_frames(rng):
    with pytest.raises(ValueError, match="n_frames"):
        UNet3D(**SMALL).forecast(fields(rng, (1, 2, 4, 4, 4, 1)), 0)


def test_compile_defaults_to_the_mean_squared_error(rng):
    context, target = fields(rng, (2, 2, 4, 4, 4, 1)), fields(rng, (2, 2, 4, 4, 4, 1))
    model = UNet3D(**SMALL)
    model.compile(optimizer="sgd")
    loss = model.evaluate(context, target, verbose=0)
    expected = np.mean((np.repeat(context[:, -1:], 2, axis=1) - target) ** 2)  # persistence
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_model_checks(rng, tmp_path):
    context, target = fields(rng, (4, 2, 4, 4, 4, 1)), fields(rng, (4, 2, 4, 4, 4, 1))

    def factory():
        model = UNet3D(**SMALL)
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        return model

    check_model(factory, context, target, tmp_path=tmp_path)


JAX_TRAINING = """
import json, sys
import keras, numpy as np
import tfastro.supernova.unet
directory = sys.argv[1]
data = np.load(directory + "/data.npz")
model = keras.saving.load_model(directory + "/initial.keras")
history = model.fit(data["context"], data["target"], batch_size=2, epochs=3, shuffle=False,
                    verbose=0)
print("RESULT" + json.dumps({
    "backend": keras.backend.backend(), "loss": history.history["loss"],
    "weights": [w.tolist() for w in model.get_weights()],
    "forecast": model.forecast(data["context"], 3).tolist()}))
"""


def test_jax_training_follows_tensorflow(rng, tmp_path):
    """fit on JAX from the same initial .keras file and data gives TensorFlow's loss curve,
    weights and forecasts."""
    model = UNet3D(**SMALL)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.build((None, 2, 4, 4, 4, 1))
    model.optimizer.build(model.trainable_variables)
    model.save(tmp_path / "initial.keras")
    context, target = fields(rng, (4, 2, 4, 4, 4, 1)), fields(rng, (4, 2, 4, 4, 4, 1))
    np.savez(tmp_path / "data.npz", context=context, target=target)
    out = jax_backend.run_on_jax(JAX_TRAINING, tmp_path)

    history = model.fit(context, target, batch_size=2, epochs=3, shuffle=False, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    np.testing.assert_allclose(out["loss"], history.history["loss"], rtol=1e-4)
    for a, b in zip(out["weights"], model.get_weights()):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(out["forecast"], model.forecast(context, 3), atol=1e-4)


# --- run.py --model_name unet ----------------------------------------------------------------

def unet_config(tmp_path, data_path, **overrides):
    """A tiny U-Net run on the 8^3 clips of ``sn_file`` writing under ``tmp_path``."""
    cfg = UNet3DConfig(train_data_paths=str(data_path), valid_data_paths=str(data_path),
                       save_dir=str(tmp_path / "ckpt"), gen_frm_dir=str(tmp_path / "res"),
                       img_width=GRID, img_depth=GRID, input_length=2, total_length=6,
                       filters="2,4", batch_size=2, max_iterations=2, display_interval=1,
                       test_interval=2, snapshot_interval=1, num_save_samples=1)
    return dataclasses.replace(cfg, **overrides)


def test_training_pairs_are_the_windows_of_each_clip(rng):
    clips = rng.uniform(size=(2, 6, 2, 2, 2, 1)).astype("float32")
    context, target = (np.asarray(a) for a in training_pairs(clips, 2, 3))
    assert context.shape == (4, 2, 2, 2, 2, 1) and target.shape == (4, 3, 2, 2, 2, 1)
    for start in range(2):
        for b in range(2):
            np.testing.assert_array_equal(context[2 * start + b], clips[b, start:start + 2])
            np.testing.assert_array_equal(target[2 * start + b], clips[b, start + 2:start + 5])
    with pytest.raises(UserInputError, match="no context of 2 frames followed by 5"):
        training_pairs(clips, 2, 5)


def _persistence_mse(data, cfg):
    """Mean over clips and output frames of the summed squared error of the last context frame."""
    errors = [np.square(clip[cfg.input_length:] - clip[cfg.input_length - 1]).sum(axis=(1, 2, 3, 4))
              for clip in (data.clip(i, cfg.total_length) for i in range(data.num_clips))]
    return np.mean(errors, axis=0)


def test_unet_run_writes_the_outputs_and_scores_the_baselines(tmp_path, sn_file):
    cfg = unet_config(tmp_path, sn_file)
    model = run(cfg, log=lambda message: None)
    assert trained_iterations(model) == 2 and model.horizon == 4
    out = os.path.join(cfg.gen_frm_dir, "2")
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["clips"] == 6 and metrics["iteration"] == 2
    np.testing.assert_allclose(metrics["baselines"]["persistence"]["per_frame"]["mse"],
                               _persistence_mse(load_sn_npz(sn_file), cfg), rtol=1e-5)
    assert set(metrics["baselines"]) == {"persistence", "sedov_taylor"}
    gt, pd = (np.load(os.path.join(out, "1", name)) for name in ("gt.npy", "pd.npy"))
    assert gt.shape == (6, GRID, GRID, GRID, 1)
    np.testing.assert_allclose(pd, model.forecast(gt[None, :2], 4)[0], atol=1e-6)
    for name in ("forecast.gif", "gt6.png", "pd6.png"):
        assert os.path.exists(os.path.join(out, "1", name))
    # evaluating the checkpoint gives the scores of the training run's evaluation
    again = run(dataclasses.replace(cfg, is_training=False), log=lambda message: None)
    np.testing.assert_allclose(again["per_frame"]["mse"], metrics["per_frame"]["mse"], rtol=1e-5)
    with pytest.raises(UserInputError, match="horizon: checkpoint 4, flags 1"):
        run(dataclasses.replace(cfg, rollout=True, max_iterations=3), log=lambda m: None)


@pytest.mark.slow
def test_unet_run_resumes_exactly(tmp_path, sn_file):
    whole = run(unet_config(tmp_path / "a", sn_file, max_iterations=4, rollout=True),
                log=lambda message: None)
    split = unet_config(tmp_path / "b", sn_file, max_iterations=2, rollout=True)
    run(split, log=lambda message: None)
    resumed = run(dataclasses.replace(split, max_iterations=4), log=lambda message: None)
    assert trained_iterations(resumed) == 4 and resumed.horizon == 1
    for a, b in zip(whole.weights + whole.optimizer.variables,
                    resumed.weights + resumed.optimizer.variables):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("overrides, message", [
    (dict(rollout=True, horizon=3), "--horizon=3 with --rollout"),
    (dict(horizon=5), "--horizon=5: expected 0 .. total_length - input_length = 4"),
    (dict(filters="2,4,8", img_width=10), "--img_width=10: .* multiple of 4"),
    (dict(filters="2,x"), "--filters='2,x'"),
    (dict(filter_size=4), "--filter_size=4: must be odd"),
    (dict(dataset_name="mnist"), "--dataset_name='mnist'"),
])
def test_unet_settings_are_checked(tmp_path, overrides, message):
    cfg = unet_config(tmp_path, tmp_path / "unused.npz", **overrides)
    with pytest.raises(UserInputError, match=message):
        validate_config(cfg)


def test_horizon_and_rollout_set_the_frames_of_one_call(tmp_path):
    cfg = unet_config(tmp_path, "unused.npz")
    assert cfg.frames_per_call == 4
    assert dataclasses.replace(cfg, horizon=2).frames_per_call == 2
    assert dataclasses.replace(cfg, rollout=True).frames_per_call == 1
