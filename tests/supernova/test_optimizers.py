"""MIMAdam: the documented update and weight EMA against numpy, the EMA swap, saved state,
and training on the JAX backend."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import jax_backend
from tfastro.supernova.optimizers import MIMAdam

A = np.array([1.0, 4.0, 0.25])  # curvatures of the quadratic 0.5 * sum(A (w - B)^2)
B = np.array([0.5, -1.0, 2.0])
W0 = np.array([0.0, 0.3, -0.2])


def numpy_mim_adam(steps, lr, beta_1, beta_2, epsilon, ema_decay):
    """Weights and EMA after each step, re-implemented (float64) from the documented update."""
    w, m, v, ema = W0.copy(), np.zeros(3), np.zeros(3), W0.copy()
    history = []
    for t in range(1, steps + 1):
        g = A * (w - B)
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        m_hat, v_hat = m / (1 - beta_1 ** t), v / (1 - beta_2 ** t)
        w = w - lr * m_hat / np.sqrt(v_hat + epsilon)  # epsilon inside the square root
        d = min(ema_decay, (1 + t) / (10 + t))
        ema = d * ema + (1 - d) * w
        history.append((w.copy(), ema.copy()))
    return history


def run_mim_adam(optimizer, steps):
    var = keras.Variable(W0.astype("float32"))
    optimizer.build([var])
    history = []
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = 0.5 * tf.reduce_sum(A.astype("float32") * tf.square(var.value - B.astype("float32")))
        optimizer.apply_gradients([(tape.gradient(loss, var.value), var)])
        history.append((np.asarray(var.numpy()), np.asarray(optimizer.ema_of(var).numpy())))
    return var, history


def test_defaults_are_the_original_settings():
    config = MIMAdam().get_config()
    assert (config["learning_rate"], config["beta_1"], config["beta_2"], config["epsilon"],
            config["ema_decay"]) == pytest.approx((1e-3, 0.95, 0.9995, 1e-8, 0.9995))


def test_update_and_ema_match_numpy():
    # betas exact in float32 (else 1 - beta_2^t differs from 1 - beta_2 by 5e-5 relative);
    # epsilon comparable to v_hat, so its place (inside the sqrt) matters; ema_decay 0.2 takes
    # the warm-up (1+t)/(10+t) = 0.18 at t=1 and the decay itself from t=2 on
    hyper = dict(lr=0.1, beta_1=0.9375, beta_2=1 - 2 ** -11, epsilon=0.5, ema_decay=0.2)
    optimizer = MIMAdam(learning_rate=hyper["lr"], beta_1=hyper["beta_1"], beta_2=hyper["beta_2"],
                        epsilon=hyper["epsilon"], ema_decay=hyper["ema_decay"])
    _, got = run_mim_adam(optimizer, 3)
    expected = numpy_mim_adam(3, **hyper)
    for step, ((w, ema), (w_np, ema_np)) in enumerate(zip(got, expected), start=1):
        np.testing.assert_allclose(w, w_np, rtol=1e-5, atol=1e-6, err_msg=f"weights, step {step}")
        np.testing.assert_allclose(ema, ema_np, rtol=1e-5, atol=1e-6, err_msg=f"ema, step {step}")
    # epsilon outside the square root would have moved the weights measurably differently
    outside = W0 - 0.1 * A * (W0 - B) / (np.abs(A * (W0 - B)) + 0.5)
    assert np.abs(got[0][0] - outside).min() > 5e-3
    assert int(optimizer.iterations.numpy()) == 3


def test_ema_weights_swaps_in_and_restores():
    optimizer = MIMAdam(learning_rate=0.1, ema_decay=0.2)
    var, history = run_mim_adam(optimizer, 3)
    trained, ema = history[-1]
    assert np.abs(trained - ema).max() > 1e-3
    with optimizer.ema_weights([var]):
        np.testing.assert_array_equal(var.numpy(), ema)
    np.testing.assert_array_equal(var.numpy(), trained)
    with pytest.raises(RuntimeError):
        with optimizer.ema_weights([var]):
            raise RuntimeError("interrupted")
    np.testing.assert_array_equal(var.numpy(), trained)


def test_optimizer_state_survives_keras_save_and_load(rng, tmp_path):
    x = rng.normal(size=(8, 3)).astype("float32")
    y = rng.normal(size=(8, 2)).astype("float32")

    def compiled():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile(optimizer=MIMAdam(learning_rate=0.05, ema_decay=0.5), loss="mse")
        return model

    model = compiled()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    path = str(tmp_path / "dense.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.optimizer, MIMAdam)
    kinds = [v.name.split("_")[-1] for v in model.optimizer.variables]
    assert [v.name.split("_")[-1] for v in loaded.optimizer.variables] == kinds
    assert sorted(kinds) == sorted(["iteration", "rate"] + ["momentum", "velocity", "ema"] * 2)
    assert int(loaded.optimizer.iterations.numpy()) == 2
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.name)
    kernel = model.layers[0].kernel
    assert np.abs(model.optimizer.ema_of(kernel).numpy() - kernel.numpy()).max() > 1e-4
    # the restored state continues training exactly as the original would
    for m in (model, loaded):
        m.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7, err_msg=a.name)


def test_averages_start_at_the_weights_when_built_inside_a_traced_step(rng):
    """fit on TensorFlow builds the optimizer inside the traced step: the averages still start
    at the weights, and graph training equals eager training."""
    x = rng.normal(size=(8, 3)).astype("float32")
    y = rng.normal(size=(8, 2)).astype("float32")
    runs = []
    for eagerly in (True, False):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile(optimizer=MIMAdam(learning_rate=0.05, ema_decay=0.5), loss="mse",
                      run_eagerly=eagerly)
        initial = model.get_weights()
        model.train_on_batch(x, y)
        # step 1: decay min(0.5, 2/11); the average moved from the initial weights
        d = 2.0 / 11.0
        for average, w0, w1 in zip([model.optimizer.ema_of(v) for v in model.trainable_variables],
                                   initial, model.get_weights()):
            np.testing.assert_allclose(np.asarray(average), d * w0 + (1 - d) * w1, rtol=1e-5,
                                       atol=1e-6)
        model.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False)
        runs.append([np.asarray(v) for v in model.optimizer.variables])
    for eager, graph in zip(*runs):
        np.testing.assert_allclose(graph, eager, rtol=1e-5, atol=1e-6)


JAX_FIT = """
import json, sys
import keras, numpy as np
from tfastro.supernova.optimizers import MIMAdam
data = np.load(sys.argv[1])
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
model.set_weights([data["kernel"], data["bias"]])
# built here, the averages start as copies of the weights; the compiled step donates both
model.compile(optimizer=MIMAdam(learning_rate=0.05, ema_decay=0.5), loss="mse", jit_compile=True)
model.fit(data["x"], data["y"], batch_size=4, epochs=2, verbose=0, shuffle=False)
variables = [np.asarray(v).tolist() for v in model.optimizer.variables]
print("RESULT" + json.dumps({"backend": keras.backend.backend(), "variables": variables}))
"""


def test_jax_training_equals_tensorflow(rng, tmp_path):
    """On JAX (a compiled step donating its state) MIMAdam takes TensorFlow's steps: the same
    weights, moments and averages from the same initial weights and data."""
    x = rng.normal(size=(8, 3)).astype("float32")
    y = rng.normal(size=(8, 2)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=MIMAdam(learning_rate=0.05, ema_decay=0.5), loss="mse")
    kernel, bias = model.get_weights()
    np.savez(tmp_path / "data.npz", x=x, y=y, kernel=kernel, bias=bias)
    out = jax_backend.run_on_jax(JAX_FIT, tmp_path / "data.npz")
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False)
    assert int(model.optimizer.iterations.numpy()) == 4
    assert len(out["variables"]) == len(model.optimizer.variables)
    for got, v in zip(out["variables"], model.optimizer.variables):
        np.testing.assert_allclose(got, np.asarray(v), rtol=1e-5, atol=1e-6, err_msg=v.name)
