"""MIM3D model: patching, the sampling schedule, argument checks, forecasting without hidden
state, grid generality, the model checks (saving, resuming, mixed precision), and the custom
train_step (iterations, reverse pass, remat)."""
import contextlib
import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import jax_backend
from tests.model_testing import check_model
from tfastro.supernova.model import (MIM3D, check_num_hidden, frame_loss, reshape_patch,
                                     reshape_patch_back, sampling_eta)
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
        np.testing.assert_allclose(history.history["eta"][0], 1.0 - 0.1 * 2 * fits, atol=1e-6)
        # reverse_input: one update on the clip, one on the time-reversed clip
        assert int(model.optimizer.iterations.numpy()) == 2 * int(model.iteration.numpy())


@pytest.mark.parametrize("mirrored", [False, True])
def test_reverse_input_step_is_sequential_updates(rng, mirrored):
    """The views run in one symbolic loop (unrolled under a strategy); the result must equal an
    update on the clip, then on the time-reversed clip, then on the z-flipped clip, each from
    the weights the previous one left."""
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
    for view in (frames, frames[:, ::-1], frames[:, :, :, :, ::-1]):
        sequential._train_on(tf.constant(view), no_feedback)  # eager, one after the other
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

    # MIM3D has no test_step yet (evaluate is not checked), and under a mixed policy its
    # predictions are bfloat16, not float32
    checked = check_model(factory, frames, tmp_path=tmp_path, predict=lambda model: model(frames),
                          evaluate=False, float32_outputs=False)
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
