"""MIM3D model: patching, the sampling schedule and draws, argument checks, forecasting without
hidden state, clips of any valid layout (and clear errors for others), ``forecast`` with the
weight average, the model checks (saving, resuming, mixed precision), the custom train_step
(iterations, reverse pass, remat), Keras' loops (evaluate, validation, metrics, epoch means)
and the JAX backend (gradients, and training that follows TensorFlow's)."""
import contextlib
import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import jax_backend
from tests.model_testing import check_model
from tfastro.supernova.model import (MIM3D, check_num_hidden, frame_loss, reshape_patch,
                                     reshape_patch_back, sampling_draws, sampling_eta)
from tfastro.supernova.optimizers import MIMAdam

SMALL = dict(num_hidden=(2, 2), filter_size=3, input_length=1, total_length=3)


def clips(rng, batch=4, grid=(4, 4, 4), length=SMALL["total_length"]):
    return rng.uniform(size=(batch, length) + grid + (1,)).astype("float32")


# --- patching -------------------------------------------------------------------------------

def test_reshape_patch_back_inverts_reshape_patch(rng):
    frames = rng.normal(size=(2, 3, 4, 6, 2, 2)).astype("float32")
    patches = np.asarray(reshape_patch(frames, 2))
    assert patches.shape == (2, 3, 2, 3, 1, 16)
    np.testing.assert_array_equal(np.asarray(reshape_patch_back(patches, 2)), frames)
    np.testing.assert_array_equal(np.asarray(reshape_patch(frames, 1)), frames)


def test_reshape_patch_orders_block_offsets_xyz_before_channel():
    p, c = 2, 2
    frames = np.arange(1 * 2 * 4 * 2 * 6 * c, dtype="float32").reshape(1, 2, 4, 2, 6, c)
    expected = np.zeros((1, 2, 2, 1, 3, p ** 3 * c), "float32")
    for t, bx, by, bz, dx, dy, dz, ch in itertools.product(
            range(2), range(2), range(1), range(3), range(p), range(p), range(p), range(c)):
        expected[0, t, bx, by, bz, ((dx * p + dy) * p + dz) * c + ch] = \
            frames[0, t, bx * p + dx, by * p + dy, bz * p + dz, ch]
    np.testing.assert_array_equal(np.asarray(reshape_patch(frames, p)), expected)


def test_reshape_patch_rejects_indivisible_grid():
    with pytest.raises(ValueError, match="divisible"):
        reshape_patch(np.zeros((1, 1, 4, 4, 3, 1), "float32"), 2)


# --- schedule and arguments ---------------------------------------------------------------------

def test_sampling_eta_schedule():
    iterations = np.array([0, 1, 10, 1000, 49999, 50000, 50001, 80000])
    got = np.asarray(sampling_eta(iterations))
    expected = np.where(iterations < 50000, 1.0 - 2e-5 * iterations, 0.0)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert got[4] > 0.0  # still positive on the last scheduled iteration
    # a fast schedule reaches zero before stop_iter and stays there, never negative
    steep = np.asarray(sampling_eta(np.arange(200), start_value=0.5, changing_rate=0.01, stop_iter=150))
    np.testing.assert_allclose(steep[:50], 0.5 - 0.01 * np.arange(50), atol=1e-6)
    assert np.all(steep[50:] == 0.0)


def _lowbias32(x):
    """The integer hash of sampling_draws, in Python integers."""
    for shift, multiplier in ((16, 0x7FEB352D), (15, 0x846CA68B)):
        x = ((x ^ (x >> shift)) * multiplier) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_sampling_draws_are_the_documented_hash_and_uniform():
    seed, iteration, batch, steps = 7, 12, 3, 5
    key = _lowbias32((iteration + _lowbias32(seed)) & 0xFFFFFFFF)
    expected = [[(_lowbias32((b * steps + j + key) & 0xFFFFFFFF) >> 8) / 2**24
                 for j in range(steps)] for b in range(batch)]
    for it in (iteration, np.int64(iteration), tf.constant(iteration, tf.int64)):
        np.testing.assert_array_equal(np.asarray(sampling_draws(seed, it, batch, steps)), expected)
    draws = np.asarray(sampling_draws(0, 1, 1000, 20))
    assert draws.shape == (1000, 20) and draws.min() >= 0.0 and draws.max() < 1.0
    assert abs(draws.mean() - 0.5) < 0.01  # 20000 draws: standard error 0.002
    assert abs((draws < 0.3).mean() - 0.3) < 0.015  # the feedback fraction is eta
    for other in (sampling_draws(1, 1, 1000, 20), sampling_draws(0, 2, 1000, 20)):
        assert np.mean(np.asarray(other) == draws) < 0.01  # another seed or iteration: new draws
    assert np.asarray(sampling_draws(0, 1, 4, 0)).shape == (4, 0)  # no feedback step


@pytest.mark.parametrize("bad, message", [
    ([64], "at least two"), ([64, 0], "at least two"), ([64, 32], "equal"),
    ("ab", "list of positive integers"), (None, "list of positive integers")])
def test_check_num_hidden_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        check_num_hidden(bad)


def test_check_num_hidden_accepts_strings_of_digits():
    assert check_num_hidden(["32", 32, "32"]) == (32, 32, 32)


@pytest.mark.parametrize("kwargs", [dict(input_length=3), dict(input_length=0),
                                    dict(peephole="pixel")])
def test_mim3d_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        MIM3D(**{**SMALL, **kwargs})


# --- forecasting --------------------------------------------------------------------------------

def test_forecast_keeps_no_state_and_treats_samples_independently(rng):
    model = MIM3D(**SMALL, patch_size=2, seed=0)
    frames = clips(rng, batch=2)
    first = np.asarray(model(frames))
    assert first.shape == (2, 2, 4, 4, 4, 1)
    np.testing.assert_array_equal(np.asarray(model(frames)), first)  # no state left on layers
    for b in range(2):
        np.testing.assert_allclose(np.asarray(model(frames[b:b + 1]))[0], first[b], rtol=0, atol=1e-6)
    # feeding the true frame back (mask 1) instead of the prediction changes the last frame only
    fed = np.asarray(model(frames, sampling_mask=np.ones((2, 1), "float32")))
    np.testing.assert_allclose(fed[:, 0], first[:, 0], rtol=0, atol=1e-6)
    assert np.abs(fed[:, 1] - first[:, 1]).max() > 1e-6


def test_channel_peephole_model_forecasts_on_a_larger_grid(rng):
    for peephole in ("channel", "voxel"):
        model = MIM3D(**SMALL, patch_size=2, peephole=peephole)
        model.build((1, 3, 8, 8, 8, 1))
        big = clips(rng, batch=1, grid=(16, 16, 16))
        if peephole == "channel":
            assert model(big).shape == (1, 2, 16, 16, 16, 1)
        else:
            with pytest.raises(ValueError, match="per-voxel peephole"):
                model(big)


# --- clips of any valid layout; one-line errors for others --------------------------------------

@pytest.mark.parametrize("peephole, shapes", [
    ("voxel", [(2, 4, 8), (3, 3, 8), (1, 1, 8)]),  # batch and length vary
    ("channel", [(2, 4, 8), (3, 3, 16), (2, 2, 8), (1, 4, 12)])])  # and the grid
def test_predict_takes_clips_of_any_batch_length_and_grid(peephole, shapes, rng):
    model = MIM3D(**SMALL, patch_size=2, peephole=peephole, seed=0)
    for batch, length, size in shapes:  # one predict function, traced anew with relaxed shapes
        frames = clips(rng, batch=batch, length=length, grid=(size,) * 3)
        expected = np.asarray(model(frames))
        assert expected.shape == (batch, 2, size, size, size, 1)
        for data in (frames, tf.data.Dataset.from_tensor_slices(frames).batch(2)):
            np.testing.assert_allclose(model.predict(data, verbose=0), expected, rtol=0, atol=1e-6)
        np.testing.assert_allclose(model.predict_on_batch(frames), expected, rtol=0, atol=1e-6)


BAD_CLIPS = {  # for a model of input_length 2, total_length 4, patch_size 2, built on 8^3
    "another grid": ((2, 4, 8, 8, 4, 1), r"\(batch, time.*, 8, 8, 8, 1\).*per-voxel"),
    "channels first": ((2, 4, 1, 8, 8, 8), r"\(batch, time.*, 8, 8, 8, 1\) \(channels last"),
    "no time axis": ((2, 8, 8, 8, 1), r"\(batch, time.*, 8, 8, 8, 1\)"),
    "too few frames": ((2, 1, 8, 8, 8, 1), r"\(batch, time(>=2|=4|=2), 8, 8, 8, 1\)"),
    "grid not divisible": ((2, 4, 8, 8, 7, 1), r"divisible by patch_size 2"),
}


@pytest.mark.parametrize("what", BAD_CLIPS)
def test_clips_of_another_layout_raise_one_line_errors(what, rng):
    shape, message = BAD_CLIPS[what]
    model = MIM3D(num_hidden=(2, 2), filter_size=3, patch_size=2, input_length=2,
                  total_length=4, layer_norm=False, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    good = rng.uniform(size=(2, 4, 8, 8, 8, 1)).astype("float32")
    model.predict(good, verbose=0)  # later traces of predict relax the sizes that change
    model.predict(good[:1, :3], verbose=0)
    bad = rng.uniform(size=shape).astype("float32")
    calls = {"call": lambda: model(bad), "predict": lambda: model.predict(bad, verbose=0),
             "predict_on_batch": lambda: model.predict_on_batch(bad),
             "predict a dataset": lambda: model.predict(
                 tf.data.Dataset.from_tensor_slices(bad).batch(2), verbose=0),
             "evaluate": lambda: model.evaluate(bad, verbose=0),
             "fit": lambda: model.fit(bad, verbose=0),
             "forecast": lambda: model.forecast(bad[:, :2] if len(shape) == 6 else bad, 2)}
    for name, call in calls.items():
        with pytest.raises(ValueError, match=message) as err:
            call()
        # one line; a direct call's Keras frames it with the arguments received
        lines = [line for line in str(err.value).split("\n") if "expected shape" in line]
        assert len(lines) == 1 and ", got (" in lines[0], (name, err.value)
        if name != "call":
            assert str(err.value) == lines[0]


def test_fit_and_evaluate_refuse_targets(rng):
    model = MIM3D(**SMALL, layer_norm=False)
    model.compile(optimizer=keras.optimizers.SGD(0.0), run_eagerly=True)
    frames = clips(rng)
    for call in (lambda: model.fit(frames, frames[:, 1:], verbose=0),
                 lambda: model.evaluate(frames, frames[:, 1:], verbose=0)):
        with pytest.raises(ValueError, match="clips alone"):
            call()


# --- forecast: the weight average, any number of frames, float32 -----------------------------

def test_forecast_uses_the_weight_average_and_continues_the_recurrence(rng):
    frames = clips(rng, batch=2, length=4)
    context = frames[:, :1]
    model = MIM3D(**{**SMALL, "total_length": 4}, layer_norm=False, seed=1)
    model.compile(optimizer=MIMAdam(learning_rate=0.05, ema_decay=0.5), run_eagerly=True)
    model.fit(frames, batch_size=2, epochs=2, verbose=0)
    got = model.forecast(context, 3)
    assert got.shape == (2, 3, 4, 4, 4, 1) and got.dtype == np.float32
    with model.optimizer.ema_weights(model.trainable_variables):
        expected = np.asarray(model(context))  # frames 1..3 from frame 0
        averaged = model.get_weights()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert np.abs(got - np.asarray(model(context))).max() > 1e-4  # not the trained weights
    np.testing.assert_allclose(model.forecast(context, 2), expected[:, :2], rtol=0, atol=1e-6)
    # 6 frames: what a model for clips of 7 frames with the same weights forecasts
    longer = MIM3D(**{**SMALL, "total_length": 7}, layer_norm=False)
    longer.build((None, 7, 4, 4, 4, 1))
    longer.set_weights(averaged)
    np.testing.assert_allclose(model.forecast(context, 6), np.asarray(longer(context)),
                               rtol=0, atol=1e-5)
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match="positive integer"):
            model.forecast(context, bad)
    with pytest.raises(ValueError, match=r"forecast context: expected shape \(batch, time=1,"):
        model.forecast(frames[:, :2], 2)


def test_forecast_without_a_weight_average_uses_the_weights(rng):
    frames = clips(rng, batch=2)
    model = MIM3D(**SMALL, layer_norm=False, seed=1)
    model.compile(optimizer="adam", run_eagerly=True)
    model.fit(frames, batch_size=2, verbose=0)
    np.testing.assert_allclose(model.forecast(frames[:, :1], 2), np.asarray(model(frames[:, :1])),
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_forecast_stays_float32_under_mixed_precision(policy, rng):
    frames = clips(rng, batch=2)
    model = MIM3D(**SMALL, layer_norm=False, seed=1, dtype=policy)
    average = MIMAdam(learning_rate=0.05, ema_decay=0.5)
    # under mixed_float16 MIMAdam goes into a LossScaleOptimizer (one of a low initial scale:
    # the first steps' gradients stay finite in float16, so they are taken)
    optimizer = (keras.optimizers.LossScaleOptimizer(average, initial_scale=16.0)
                 if policy == "mixed_float16" else average)
    model.compile(optimizer=optimizer, run_eagerly=True)
    model.fit(frames, batch_size=2, epochs=2, verbose=0)
    got = model.forecast(frames[:, :1], 2)
    assert got.dtype == np.float32
    assert model.predict_on_batch(frames).dtype == np.float32
    with average.ema_weights(model.trainable_variables):
        expected = np.asarray(model(frames[:, :1]))
    np.testing.assert_allclose(got, expected, rtol=0, atol=2.0**-5)
    assert np.abs(got - np.asarray(model(frames[:, :1]))).max() > 10 * np.abs(got - expected).max()


# --- training -----------------------------------------------------------------------------------
# Tracing a MIM3D train step takes seconds on 2 CPU cores, the more so the more variables the
# optimizer updates: graph-mode fits use SGD and no layer norm; the MIMAdam save test runs eagerly.

def dataset(frames, batch=2):
    return tf.data.Dataset.from_tensor_slices(frames).batch(batch).repeat()


def test_fit_counts_iterations_sets_eta_and_updates_twice_with_reverse_input(rng):
    model = MIM3D(**SMALL, layer_norm=False, reverse_input=True, sampling_changing_rate=0.1, seed=3)
    model.compile(optimizer=keras.optimizers.SGD(1e-3))  # graph mode, model unbuilt before fit
    data = dataset(clips(rng))
    for fits in (1, 2):
        history = model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        assert int(model.iteration.numpy()) == 2 * fits
        np.testing.assert_allclose(float(model.sampling_eta.numpy()), 1.0 - 0.1 * 2 * fits, atol=1e-6)
        np.testing.assert_allclose(history.history["sampling_eta"][0], 1.0 - 0.1 * 2 * fits,
                                   atol=1e-6)
        # reverse_input: one update on the clip, one on the time-reversed clip
        assert int(model.optimizer.iterations.numpy()) == 2 * int(model.iteration.numpy())


@pytest.mark.parametrize("mirrored", [False, True])
def test_reverse_input_step_is_sequential_updates(rng, mirrored):
    """The views run in one symbolic loop (unrolled under a strategy); the result must equal an
    update on the clip, then on the time-reversed clip, then on the z-flipped clip, each from
    the weights the previous one left."""
    keras.utils.set_random_seed(0)  # the same initial weights every run
    frames = clips(rng, batch=2, length=4)
    kwargs = dict(SMALL, total_length=4, reverse_input=True, reverse_img=True,
                  scheduled_sampling=False, seed=3)
    scope = tf.distribute.MirroredStrategy(["/cpu:0"]).scope() if mirrored else contextlib.nullcontext()
    looped, sequential = [], MIM3D(**kwargs)
    with scope:
        looped = MIM3D(**kwargs)
        for model in (looped, sequential):
            model.compile(optimizer=keras.optimizers.SGD(0.02))
            model.build(frames.shape)
            model.optimizer.build(model.trainable_variables)
    sequential.set_weights(looped.get_weights())
    initial = [np.asarray(w) for w in looped.trainable_weights]
    looped.train_on_batch(frames)  # graph: fori_loop over the three views
    no_feedback = np.zeros((2, 2), "float32")
    # traced as the loop is: eager kernels sum in other orders, which weights ending near zero
    # show above atol for some initial draws
    update = tf.function(sequential._tf_update)
    for view in (frames, frames[:, ::-1], frames[:, :, :, :, ::-1]):
        update(tf.constant(view), no_feedback)  # one after the other
    assert int(looped.optimizer.iterations.numpy()) == 3
    assert any(not np.allclose(w0, w) for w0, w in zip(initial, looped.trainable_weights))
    for a, b in zip(looped.trainable_weights, sequential.trainable_weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6, err_msg=a.path)


def test_model_checks(rng, tmp_path):
    frames = clips(rng)

    def factory():
        model = MIM3D(**SMALL, sampling_changing_rate=0.1, seed=3)
        model.compile(optimizer=MIMAdam(learning_rate=1e-2), run_eagerly=True)
        return model

    checked = check_model(factory, frames, tmp_path=tmp_path, predict=lambda model: model(frames))
    assert isinstance(checked.loaded.optimizer, MIMAdam)
    saved = keras.saving.load_model(checked.path)  # the state after one step
    assert int(saved.iteration.numpy()) == 1
    np.testing.assert_allclose(float(saved.sampling_eta.numpy()), 0.9, atol=1e-6)
    assert int(saved.optimizer.iterations.numpy()) == 2  # the clip and the time-reversed clip


def test_remat_trains_like_plain_backprop(rng):
    frames = clips(rng, length=7)  # 6 steps: remat runs them in segments of 3
    runs = []
    weights = None
    for remat in (False, True):  # graph mode, where rematerialisation matters
        model = MIM3D(**{**SMALL, "total_length": 7}, layer_norm=False, remat=remat,
                      reverse_input=False, scheduled_sampling=False)
        model.build(frames.shape)
        if weights is None:
            weights = model.get_weights()
        model.set_weights(weights)
        model.compile(optimizer=keras.optimizers.SGD(1e-3))
        history = model.fit(dataset(frames[:2]), steps_per_epoch=1, epochs=2, verbose=0)
        assert int(model.optimizer.iterations.numpy()) == int(model.iteration.numpy()) == 2
        runs.append((history.history["loss"], model.get_weights()))
    (loss0, w0), (loss1, w1) = runs
    assert loss0[1] < (1 - 1e-3) * loss0[0]  # same batch and mask twice: the update lowered the loss
    np.testing.assert_allclose(loss1, loss0, rtol=1e-5)
    for a, b in zip(w0, w1):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


# --- Keras' loops: logs, evaluate and validation, metrics ----------------------------------------

def test_logs_hold_epoch_means_and_the_iteration_values(rng):
    """History's loss is the mean over the epoch of the iterations' losses, each the model's
    loss of its batch; iteration_loss and sampling_eta are those of the last iteration."""
    scale = np.repeat([1.0, 0.6, 0.3], 2).reshape(6, 1, 1, 1, 1, 1)
    frames = (clips(rng, batch=6) * scale).astype("float32")
    model = MIM3D(**SMALL, layer_norm=False, reverse_input=False, scheduled_sampling=False)
    model.compile(optimizer=keras.optimizers.SGD(0.0))  # the weights stay the initial ones
    batch_logs = []
    history = model.fit(frames, batch_size=2, shuffle=False, verbose=0,
                        callbacks=[keras.callbacks.LambdaCallback(
                            on_train_batch_end=lambda batch, logs: batch_logs.append(logs))])
    expected = [float(frame_loss(frames[k:k + 2], model(frames[k:k + 2]))) for k in (0, 2, 4)]
    assert expected[0] > 2 * expected[2]  # the last batch's loss is far from the mean
    np.testing.assert_allclose([logs["iteration_loss"] for logs in batch_logs], expected,
                               rtol=1e-5)
    np.testing.assert_allclose(history.history["loss"], [np.mean(expected)], rtol=1e-5)
    np.testing.assert_allclose(history.history["iteration_loss"], [expected[-1]], rtol=1e-5)
    assert history.history["sampling_eta"] == [0.0]


def test_metrics_compare_true_frames_with_training_and_forecast_predictions(rng):
    """Training metrics see the predictions of the clip under scheduled sampling (here eta 1:
    every true frame fed back), evaluate those of the forecast without feedback."""
    frames = clips(rng, batch=4)
    model = MIM3D(**SMALL, layer_norm=False, reverse_input=False, sampling_changing_rate=0.0)
    model.compile(optimizer=keras.optimizers.SGD(0.0),
                  metrics=["mae", keras.metrics.MeanSquaredError(name="mse")])
    history = model.fit(frames, batch_size=4, epochs=2, verbose=0)  # metrics of two epochs
    fed = np.asarray(model(frames, sampling_mask=np.ones((4, 1), "float32"))) - frames[:, 1:]
    np.testing.assert_allclose(history.history["mae"], [np.abs(fed).mean()] * 2, rtol=1e-5)
    np.testing.assert_allclose(history.history["mse"], [np.square(fed).mean()] * 2, rtol=1e-5)
    forecast = np.asarray(model(frames)) - frames[:, 1:]
    assert np.abs(np.abs(forecast).mean() - np.abs(fed).mean()) > 1e-3
    results = model.evaluate(frames, batch_size=4, return_dict=True, verbose=0)
    np.testing.assert_allclose(results["mae"], np.abs(forecast).mean(), rtol=1e-5)
    np.testing.assert_allclose(results["mse"], np.square(forecast).mean(), rtol=1e-5)
    np.testing.assert_allclose(results["loss"], 0.5 * np.square(forecast).sum() / 4, rtol=1e-5)


def test_compile_refuses_a_loss():
    with pytest.raises(ValueError, match="its own loss.*loss='mse'"):
        MIM3D(**SMALL).compile(optimizer="adam", loss="mse")


def test_validation_drives_early_stopping_and_checkpoints(rng, tmp_path):
    """val_loss is the original loss of the forecast without feedback (batches weighted by
    their size); EarlyStopping and ModelCheckpoint monitor it."""
    frames, valid = clips(rng), clips(rng, batch=3)
    model = MIM3D(**SMALL, layer_norm=False, seed=2)
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    best = tmp_path / "best.keras"
    history = model.fit(frames, batch_size=2, epochs=4, validation_data=valid,
                        validation_batch_size=2, verbose=0, callbacks=[
                            keras.callbacks.ModelCheckpoint(best, monitor="val_loss",
                                                            save_best_only=True),
                            keras.callbacks.EarlyStopping(monitor="val_loss", patience=1)])
    forecast = np.asarray(model(valid))
    batches = [frame_loss(valid[:2], forecast[:2]), frame_loss(valid[2:], forecast[2:])]
    np.testing.assert_allclose(history.history["val_loss"][-1],
                               (2 * float(batches[0]) + float(batches[1])) / 3, rtol=1e-5)
    saved = keras.saving.load_model(best)
    np.testing.assert_allclose(saved.evaluate(valid, batch_size=2, verbose=0),
                               min(history.history["val_loss"]), rtol=1e-5)


JAX_GRADIENT = """
import json, sys
import jax, keras, numpy as np
from tfastro.supernova.model import frame_loss
directory = sys.argv[1]
model = keras.saving.load_model(directory + "/mim.keras")
data = np.load(directory + "/batch.npz")
trainable = [v.value for v in model.trainable_variables]
non_trainable = [v.value for v in model.non_trainable_variables]

def loss_fn(trainable):
    pred, _ = model.stateless_call(trainable, non_trainable, data["frames"],
                                   sampling_mask=data["mask"], training=True)
    return frame_loss(data["frames"], pred)

loss, grads = jax.value_and_grad(loss_fn)(trainable)
print("RESULT" + json.dumps({"backend": keras.backend.backend(), "loss": float(loss),
                             "grads": [np.asarray(g).tolist() for g in grads]}))
"""


@pytest.mark.slow  # JAX compilation; JAX's training equal to TensorFlow's stays in the suite
def test_jax_backend_differentiates_the_time_loop_like_tensorflow(rng, tmp_path):
    """On JAX (the GPU path) the loss and every weight gradient of a clip whose time loop runs
    4 symbolic steps equal TensorFlow's for the same saved weights and feedback mask."""
    model = MIM3D(num_hidden=(3, 3), filter_size=3, input_length=2, total_length=7,
                  peephole="channel", seed=0)
    frames = clips(rng, batch=2, length=7)
    mask = (rng.random((2, 4)) < 0.5).astype("float32")
    model(frames)  # builds
    with tf.GradientTape() as tape:
        loss = frame_loss(frames, model(frames, sampling_mask=mask, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    model.save(tmp_path / "mim.keras")
    np.savez(tmp_path / "batch.npz", frames=frames, mask=mask)
    out = jax_backend.run_on_jax(JAX_GRADIENT, tmp_path)
    np.testing.assert_allclose(out["loss"], float(loss), rtol=1e-5)
    assert len(out["grads"]) == len(grads)
    for jax_grad, tf_grad in zip(out["grads"], grads):  # float32 sums in another order
        np.testing.assert_allclose(jax_grad, tf_grad, rtol=1e-4,
                                   atol=1e-5 * float(np.abs(tf_grad).max()))


JAX_TRAINING = """
import json, sys
import keras, numpy as np
import tfastro.supernova
directory = sys.argv[1]
data = np.load(directory + "/data.npz")
model = keras.saving.load_model(directory + "/initial.keras")
model.compile(optimizer=model.optimizer, metrics=["mae"], jit_compile=True)  # one XLA program
losses = []
record = keras.callbacks.LambdaCallback(
    on_train_batch_end=lambda batch, logs: losses.append(float(logs["iteration_loss"])))
history = model.fit(data["train"], batch_size=2, epochs=2, shuffle=False, verbose=0,
                    validation_data=data["valid"], callbacks=[record])
model.save(directory + "/jax.keras")
loaded = keras.saving.load_model(directory + "/jax.keras")
predict = model.predict(data["valid"], verbose=0)
import tensorflow as tf
try:
    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        type(model).from_config(model.get_config()).build(data["train"].shape)
    refused = ""
except ValueError as err:
    refused = str(err)
print("RESULT" + json.dumps({
    "backend": keras.backend.backend(), "iteration_losses": losses,
    "history": {k: [float(x) for x in v] for k, v in history.history.items()},
    "counters": [int(model.iteration.numpy()), float(model.sampling_eta.numpy()),
                 int(model.optimizer.iterations.numpy())],
    "evaluate": model.evaluate(data["valid"], batch_size=2, verbose=0, return_dict=True),
    "loaded_evaluate": loaded.evaluate(data["valid"], batch_size=2, verbose=0, return_dict=True),
    "predict": predict.tolist(),
    "loaded_predict_equal": bool(np.array_equal(loaded.predict(data["valid"], verbose=0), predict)),
    "forecast": model.forecast(data["valid"][:, :1], 5).tolist(),
    "strategy_refused": refused}))
"""


def test_jax_training_follows_tensorflow(rng, tmp_path):
    """fit on JAX (Keras' stateless train_step, MIMAdam, scheduled sampling, all three views,
    remat) gives TensorFlow's loss curve and weights from the same initial state and data;
    evaluate, predict, forecast and .keras save/load work there too, and a tf.distribute
    strategy is refused."""
    model = MIM3D(num_hidden=(3, 3), filter_size=3, input_length=1, total_length=4,
                  peephole="channel", remat=True, reverse_img=True, seed=5,
                  sampling_changing_rate=0.3)
    model.compile(optimizer=MIMAdam(learning_rate=0.01, ema_decay=0.5), metrics=["mae"])
    model.build((None, 4, 4, 4, 4, 1))
    model.optimizer.build(model.trainable_variables)
    model.save(tmp_path / "initial.keras")
    train, valid = clips(rng, batch=4, length=4), clips(rng, batch=3, length=4)
    np.savez(tmp_path / "data.npz", train=train, valid=valid)
    out = jax_backend.run_on_jax(JAX_TRAINING, tmp_path)

    losses = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: losses.append(logs["iteration_loss"]))
    history = model.fit(train, batch_size=2, epochs=2, shuffle=False, verbose=0,
                        validation_data=valid, callbacks=[record])
    # 4 iterations, eta 0.7, 0.4, 0.1, 0: masks from the same draws on both backends
    np.testing.assert_allclose(out["iteration_losses"], losses, rtol=1e-4)
    assert set(out["history"]) == set(history.history)
    for name, values in history.history.items():
        np.testing.assert_allclose(out["history"][name], values, rtol=2e-4, err_msg=name)
    assert out["counters"] == pytest.approx([4, 0.0, 12])
    assert int(model.optimizer.iterations.numpy()) == 12
    on_jax = keras.saving.load_model(tmp_path / "jax.keras")
    for a, b in zip(on_jax.weights + on_jax.optimizer.variables,
                    model.weights + model.optimizer.variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-5,
                                   err_msg=b.path)
    assert out["evaluate"] == out["loaded_evaluate"] and out["loaded_predict_equal"]
    expected = model.evaluate(valid, batch_size=2, verbose=0, return_dict=True)
    assert out["evaluate"] == pytest.approx(expected, rel=1e-4)
    np.testing.assert_allclose(out["predict"], model.predict(valid, verbose=0), atol=1e-4)
    np.testing.assert_allclose(out["forecast"], model.forecast(valid[:, :1], 5), atol=1e-4)
    assert "tf.distribute strategies need the TensorFlow backend" in out["strategy_refused"]
