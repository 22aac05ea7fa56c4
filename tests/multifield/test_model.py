"""MultifieldGAN: the gradient penalty against analytic values (and its second derivatives
through layer norm against finite differences), the counter-based noise against a numpy
implementation, reconstruction targets, train steps with both losses (weights, EMA, counters),
evaluation (numbers by hand, nothing updated), fit with validation data and callbacks, epoch
means, what compile refuses, mixed precision, the model checks (.keras resume with intact
optimizer state, Keras workflows) of the GAN and of each network, sampling, the per-replica
loss scaling under tf.distribute; and on the JAX backend (a subprocess) the same training as
TensorFlow's from the same weights, evaluation, sampling, resuming from a .keras file, and
(slow) the networks' checks."""
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import jax_backend
from tests.model_testing import check_model
from tests.multifield.tiny import LATENT, R, batch, half, network_case, tiny_gan
from tfastro.core.errors import UserInputError
from tfastro.core.layers import TensorLayerNorm
from tfastro.multifield.model import (Discriminator, Generator, MultifieldGAN, counter_key,
                                      counter_normal, counter_quadrants, counter_uniform,
                                      gradient_penalty, reconstruction_targets, take_quadrant)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRACKED = {"d_loss", "g_loss", "gp", "recon", "wasserstein"}


def values(variables):
    return [np.array(v) for v in variables]


# --- gradient penalty -------------------------------------------------------------------------

def linear_critic(w_full, w_half):
    return lambda full, half: (tf.reduce_sum(full * w_full, axis=[1, 2, 3])
                               + tf.reduce_sum(half * w_half, axis=[1, 2, 3]))


@pytest.mark.parametrize("norm, expected", [(1.0, 0.0), (2.0, 10.0), (3.0, 40.0)])
def test_gradient_penalty_of_a_linear_critic(rng, norm, expected):
    # D = <w, (full, half)> has gradient w at every x_hat: penalty lambda (|w| - 1)^2, with the
    # norm taken jointly over both resolutions (here |w| is split between them)
    w_full, w_half = rng.normal(size=(8, 8, 3)), rng.normal(size=(4, 4, 3))
    scale = norm / np.sqrt((w_full ** 2).sum() + (w_half ** 2).sum())
    critic = linear_critic((w_full * scale).astype("float32"), (w_half * scale).astype("float32"))
    real, fake = ((rng.normal(size=(5, 8, 8, 3)).astype("float32"),
                   rng.normal(size=(5, 4, 4, 3)).astype("float32")) for _ in range(2))
    gp = float(gradient_penalty(critic, real, fake, rng.uniform(size=5), weight=10.0))
    np.testing.assert_allclose(gp, expected, rtol=1e-5, atol=1e-6)


def test_gradient_penalty_interpolates_both_resolutions_with_one_epsilon(rng):
    # D = |full|^2 + |half|^2 has gradient 2 x_hat: the penalty depends on where x_hat lies
    real = (rng.normal(size=(6, 4, 4, 2)), rng.normal(size=(6, 2, 2, 2)))
    fake = (rng.normal(size=(6, 4, 4, 2)), rng.normal(size=(6, 2, 2, 2)))
    eps = rng.uniform(size=6)
    e = eps[:, None, None, None]
    squared = sum(((e * x + (1 - e) * y) ** 2).sum(axis=(1, 2, 3)) for x, y in zip(real, fake))
    expected = 10.0 * np.mean((2.0 * np.sqrt(squared) - 1.0) ** 2)
    def critic(full, half):
        return tf.reduce_sum(full ** 2, [1, 2, 3]) + tf.reduce_sum(half ** 2, [1, 2, 3])

    as32 = lambda pair: tuple(a.astype("float32") for a in pair)  # noqa: E731
    got = float(gradient_penalty(critic, as32(real), as32(fake), eps, weight=10.0))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # a different epsilon per resolution (here: 1 - eps at half resolution) would differ
    wrong = sum(((ee * x + (1 - ee) * y) ** 2).sum(axis=(1, 2, 3))
                for x, y, ee in zip(real, fake, (e, 1 - e)))
    assert abs(10.0 * np.mean((2.0 * np.sqrt(wrong) - 1.0) ** 2) - expected) > 1e-2 * expected


def test_gradient_penalty_differentiates_layer_norm_twice():
    """Training a critic on the penalty needs its mixed second derivatives. For a critic
    sum(w * LN(a * x)) with layer norm (as in the discriminator's blocks) the penalty's
    gradient with respect to the weights a before the norm matches central finite differences
    (Richardson-extrapolated); a variance whose mean is held constant under differentiation
    (tf.nn.moments) gives 7% less here."""
    rng = np.random.default_rng(0)
    shape = (1, 3, 1)  # on few pixels the mean's share of the variance's derivative is large
    norm = TensorLayerNorm()
    norm.build((None, *shape))
    for weight in norm.weights:
        weight.assign(rng.normal(1.0, 0.5, size=weight.shape).astype("float32"))
    w = rng.normal(size=shape).astype("float32")
    real, fake = (rng.normal(size=(3, *shape)).astype("float32") for _ in range(2))
    epsilon = rng.uniform(size=3).astype("float32")
    a, direction = rng.normal(1.0, 0.3, size=shape).astype("float32"), rng.normal(size=shape)

    def penalty(a):
        critic = lambda x: keras.ops.sum(norm(x * a) * w, axis=(1, 2, 3))  # noqa: E731
        return gradient_penalty(critic, (real,), (fake,), epsilon, weight=10.0)

    weights = tf.constant(a)
    with tf.GradientTape() as tape:
        tape.watch(weights)
        value = penalty(weights)
    analytic = float(np.sum(tape.gradient(value, weights).numpy() * direction))

    def central(h):
        step = (h * direction).astype("float32")
        return (float(penalty(a + step)) - float(penalty(a - step))) / (2 * h)

    numeric = (4 * central(2e-3) - central(4e-3)) / 3
    assert abs(numeric) > 1.0
    np.testing.assert_allclose(analytic, numeric, rtol=2e-3)


# --- reconstruction targets -------------------------------------------------------------------

def test_reconstruction_targets_are_pooled_map_and_quadrant(rng):
    real = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    pooled, again, part = (np.asarray(t) for t in
                           reconstruction_targets(real, 2, np.array([1, 2])))
    expected = real.reshape(2, 2, 4, 2, 4, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(pooled, expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(again, pooled)
    quadrants = [real[0, :4, 4:], real[1, 4:, :4]]  # 1 = top right, 2 = bottom left
    for b, q in enumerate(quadrants):
        np.testing.assert_allclose(part[b], q.reshape(2, 2, 2, 2, 3).mean(axis=(1, 3)), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(take_quadrant(real, 3)), real[:, 4:, 4:])


# --- noise ------------------------------------------------------------------------------------

M32 = 2**32


def lowbias32(x):
    """numpy lowbias32 on uint64 arrays holding uint32 values."""
    x = np.asarray(x, np.uint64)
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) % np.uint64(M32)
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) % np.uint64(M32)
    return x ^ (x >> np.uint64(16))


def fold(key, word):
    return lowbias32(np.asarray(key, np.uint64) ^ lowbias32((np.asarray(word, np.uint64)
                                                             + np.uint64(0x9E3779B9)) % M32))


def test_counter_noise_against_numpy():
    """Every draw is lowbias32 hashes of (key, element index): the same bits as a numpy
    implementation, and uniform, normal and quadrant draws with the right moments."""
    key = counter_key(7, 3, 0, 2)
    expected_key = fold(fold(fold(fold(0, 7), 3), 0), 2)
    assert int(keras.ops.convert_to_numpy(key)) == int(expected_key)
    index = np.arange(6, dtype=np.uint64).reshape(2, 3)
    bits = fold(expected_key, index)
    np.testing.assert_array_equal(np.asarray(counter_uniform(key, (2, 3))),
                                  (bits >> np.uint64(8)).astype(np.float64) * 2.0**-24)
    np.testing.assert_array_equal(np.asarray(counter_quadrants(key, 6)),
                                  fold(expected_key, np.arange(6)) >> np.uint64(30))
    u = 1.0 - (fold(fold(expected_key, 1), index) >> np.uint64(8)) * 2.0**-24
    v = (fold(fold(expected_key, 2), index) >> np.uint64(8)) * 2.0**-24
    np.testing.assert_allclose(np.asarray(counter_normal(key, (2, 3))),
                               np.sqrt(-2 * np.log(u)) * np.cos(2 * np.pi * v), rtol=1e-5,
                               atol=1e-6)
    n = 200_000
    z = np.asarray(counter_normal(key, (n,)), np.float64)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01 and abs(np.mean(z**4) - 3) < 0.06
    uniform = np.asarray(counter_uniform(key, (n,)), np.float64)
    assert abs(uniform.mean() - 0.5) < 0.005 and abs(uniform.var() - 1 / 12) < 0.002
    counts = np.bincount(np.asarray(counter_quadrants(key, n)), minlength=4)
    np.testing.assert_allclose(counts / n, 0.25, atol=0.005)
    other = np.asarray(counter_normal(counter_key(7, 4, 0, 2), (n,)), np.float64)
    assert abs(np.corrcoef(z, other)[0, 1]) < 0.01  # the next iteration's draws


def test_gan_noise_is_keyed_on_seed_iteration_and_draw():
    gan = tiny_gan(seed=5)
    z, epsilon, quadrant = (np.asarray(a) for a in gan.noise(3, 1, 4))
    assert z.shape == (4, LATENT) and epsilon.shape == quadrant.shape == (4,)
    assert quadrant.dtype == np.int32 and set(quadrant) <= {0, 1, 2, 3}
    np.testing.assert_array_equal(np.asarray(gan.noise(3, 1, 4)[0]), z)
    for other in (tiny_gan(seed=6).noise(3, 1, 4), gan.noise(4, 1, 4), gan.noise(3, 2, 4)):
        assert np.abs(np.asarray(other[0]) - z).min() > 0
    # the draws of a smaller batch are rows of a larger one
    np.testing.assert_array_equal(np.asarray(gan.noise(3, 1, 2)[0]), z[:2])
    for a, b in zip(gan.noise(3, 1, 2, first=2), (z, epsilon, quadrant)):
        np.testing.assert_array_equal(np.asarray(a), b[2:])


# --- training ---------------------------------------------------------------------------------

@pytest.mark.parametrize("loss, n_params", [("wgan-gp", 2), ("hinge", 2), ("wgan-gp", 0)])
def test_train_steps_move_both_networks_and_the_ema(rng, loss, n_params):
    gan = tiny_gan(n_params, loss=loss, ema_decay=0.5)
    gan.compile(run_eagerly=True)
    maps, theta = batch(rng, n_params=n_params)
    data = (maps, theta) if n_params else maps
    ema0 = values(gan.ema_generator.weights)
    np.testing.assert_array_equal(ema0[0], np.asarray(gan.generator.weights[0]))  # EMA starts at G
    for t in (1, 2):
        g_before = values(gan.generator.trainable_weights)
        d_before = values(gan.discriminator.trainable_weights)
        ema_before = values(gan.ema_generator.weights)
        gan.reset_metrics()
        logs = {k: float(v) for k, v in gan.train_step(data).items()}
        assert all(np.isfinite(v) for v in logs.values()), logs
        assert int(gan.iteration.numpy()) == t
        for optimizer in (gan.d_optimizer, gan.g_optimizer):
            assert int(optimizer.iterations.numpy()) == t
        for before, net in ((g_before, gan.generator), (d_before, gan.discriminator)):
            for b, w in zip(before, net.trainable_weights):
                # the logit bias cancels between the real and the fake terms (always for WGAN)
                if not w.path.endswith("logit/bias"):
                    assert np.abs(b - np.asarray(w)).max() > 0, f"{w.path} did not move"
        # EMA: ema_t = d ema_{t-1} + (1 - d) w_t with d = min(decay, (1 + t) / (10 + t))
        decay = min(0.5, (1 + t) / (10 + t))
        for e0, w, e in zip(ema_before, gan.generator.weights, gan.ema_generator.weights):
            np.testing.assert_allclose(np.asarray(e), decay * e0 + (1 - decay) * np.asarray(w),
                                       rtol=1e-5, atol=1e-7)
        if loss == "wgan-gp":
            assert logs["gp"] > 0
            parts = -logs["wasserstein"] + logs["gp"] + logs["recon"]
            np.testing.assert_allclose(logs["d_loss"], parts, rtol=1e-5, atol=1e-6)
        else:
            assert logs["gp"] == 0.0
            assert logs["d_loss"] >= logs["recon"]  # hinge terms are non-negative
        assert 0.0 < logs["recon"] < 6.0  # three mean absolute errors of maps in [-1, 1]


def test_fit_on_a_dataset_of_maps_and_theta(rng):
    gan = tiny_gan(n_critic=2)
    gan.compile(run_eagerly=True)
    maps, theta = batch(rng, size=8)
    data = tf.data.Dataset.from_tensor_slices((maps, theta)).batch(4).repeat()
    history = gan.fit(data, steps_per_epoch=2, epochs=1, verbose=0)
    assert set(history.history) == {"d_loss", "g_loss", "gp", "recon", "wasserstein"}
    assert int(gan.iteration.numpy()) == 2
    assert int(gan.d_optimizer.iterations.numpy()) == 4  # n_critic = 2
    assert int(gan.g_optimizer.iterations.numpy()) == 2
    with pytest.raises(ValueError, match="theta"):
        gan.train_step(maps[:2])


def test_evaluate_reports_the_losses_and_updates_nothing(rng):
    """evaluate: the losses of the trained generator (inference mode) and the critic on the
    noise of iteration 0, recomputed here from the networks; no variable moves."""
    gan = tiny_gan(seed=2)
    gan.compile(run_eagerly=True)
    gan.fit(*batch(rng), batch_size=4, verbose=0)
    maps, theta = batch(rng)
    before = values(gan.weights + gan.optimizer.variables)
    results = gan.evaluate(maps, theta, batch_size=4, verbose=0, return_dict=True)
    assert set(results) == TRACKED
    for b, a in zip(before, values(gan.weights + gan.optimizer.variables)):
        np.testing.assert_array_equal(a, b)
    assert gan.evaluate(maps, theta, batch_size=4, verbose=0, return_dict=True) == results
    batched = gan.evaluate(maps, theta, batch_size=3, verbose=0, return_dict=True)
    for name in TRACKED:  # sample k draws noise row k in batches of 3 and 1 too
        np.testing.assert_allclose(batched[name], results[name], rtol=1e-5, err_msg=name)
    z = np.asarray(gan.noise(0, 0, 4)[0])
    fake = gan.generator([z, theta], training=False)
    fake_logits = np.asarray(gan.discriminator([*fake, theta]))
    real_logits = np.asarray(gan.discriminator([maps, half(maps), theta]))
    np.testing.assert_allclose(results["g_loss"], -fake_logits.mean(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(results["wasserstein"], real_logits.mean() - fake_logits.mean(),
                               rtol=1e-5, atol=1e-6)
    assert results["gp"] > 0 and 0 < results["recon"] < 6
    np.testing.assert_allclose(results["d_loss"],
                               -results["wasserstein"] + results["gp"] + results["recon"],
                               rtol=1e-5)
    # in training mode the generator's batch norm takes the batch's statistics: other losses
    trained = gan.discriminator([*gan.generator([z, theta], training=True), theta])
    assert np.abs(np.asarray(trained) - fake_logits).max() > 1e-4


def test_fit_with_validation_data_early_stopping_and_checkpoints(rng, tmp_path):
    """Validation metrics val_<name> at each epoch, which EarlyStopping and ModelCheckpoint
    monitor (told the direction: Keras cannot tell it for a metric of its own): the best
    checkpoint evaluates to the best val_d_loss."""
    gan = tiny_gan(seed=1)
    gan.compile(run_eagerly=True)
    (maps, theta), validation = batch(rng, 6), batch(rng, 4)
    path = str(tmp_path / "best.keras")
    stopping = keras.callbacks.EarlyStopping("val_g_loss", patience=3, mode="min")
    checkpoint = keras.callbacks.ModelCheckpoint(path, "val_d_loss", save_best_only=True,
                                                 mode="min")
    history = gan.fit(maps, theta, batch_size=3, epochs=3, shuffle=False, verbose=0,
                      validation_data=validation, callbacks=[stopping, checkpoint]).history
    assert set(history) == TRACKED | {f"val_{name}" for name in TRACKED}
    assert stopping.best == min(history["val_g_loss"])
    best = keras.saving.load_model(path)
    results = best.evaluate(*validation, verbose=0, return_dict=True)
    np.testing.assert_allclose(results["d_loss"], min(history["val_d_loss"]), rtol=1e-5)
    assert int(best.iteration.numpy()) == 2 * (1 + int(np.argmin(history["val_d_loss"])))


def test_history_holds_epoch_means(rng):
    """An epoch's logged losses are the means of its steps' losses."""
    a, b = tiny_gan(seed=4), tiny_gan(seed=4)
    for gan in (a, b):
        gan.compile(run_eagerly=True)
    b.set_weights(a.get_weights())
    maps, theta = batch(rng, 6)
    history = a.fit(maps, theta, batch_size=2, epochs=1, shuffle=False, verbose=0).history
    steps = []
    for i in range(0, 6, 2):
        b.reset_metrics()
        logs = b.train_step((maps[i:i + 2], theta[i:i + 2]))
        steps.append({k: float(v) for k, v in logs.items()})
    assert len({s["g_loss"] for s in steps}) == 3
    for name in TRACKED:
        np.testing.assert_allclose(history[name][0], np.mean([s[name] for s in steps]),
                                   rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("argument, value, match", [
    ("loss", "mse", r"compile\(loss='mse'\): the GAN's losses are set by MultifieldGAN\(loss="),
    ("loss_weights", [1.0], r"compile\(loss_weights=\[1.0\]\): .*gp_weight"),
    ("metrics", ["mae"], r"compile\(metrics=\['mae'\]\): the GAN's metrics are fixed"),
    ("weighted_metrics", ["mae"], "metrics are fixed"),
    ("optimizer", "adam", "pass d_optimizer and g_optimizer"),
])
def test_compile_refuses_what_the_gan_sets_itself(argument, value, match):
    gan = tiny_gan()
    with pytest.raises(UserInputError, match=match):
        gan.compile(**{argument: value})
    gan.compile(loss=None, metrics=None)  # Keras' defaults are accepted
    assert [type(o) for o in gan.optimizer.optimizers] == [keras.optimizers.Adam] * 2
    assert gan.optimizer.iterations is gan.g_optimizer.iterations


def test_compile_refuses_one_optimizer_for_both_networks():
    optimizer = keras.optimizers.Adam()
    with pytest.raises(UserInputError, match="each network needs its own optimizer"):
        tiny_gan().compile(optimizer, optimizer)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(rng, policy):
    gan = tiny_gan(dtype=policy)
    gan.compile(run_eagerly=True)
    scaled = isinstance(gan.d_optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == isinstance(gan.g_optimizer, keras.optimizers.LossScaleOptimizer) == (
        policy == "mixed_float16")
    before = values(gan.generator.trainable_weights)
    logs = gan.train_step(batch(rng))
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert all(w.dtype == "float32" for w in gan.weights if w.dtype != "int64")
    after = values(gan.generator.trainable_weights)
    assert max(np.abs(b - a).max() for b, a in zip(before, after)) > 0
    compute = policy.split("_")[1]
    assert gan.generator.ups[32].conv.compute_dtype == compute
    z = rng.normal(size=(2, LATENT)).astype("float32")
    full, half = gan.generator([z, batch(rng, 2)[1]])
    assert full.dtype == half.dtype == "float32"  # losses are computed in float32
    assert gan.discriminator([full, half, batch(rng, 2)[1]]).dtype == "float32"


def test_model_checks(rng, tmp_path):
    """Resuming from the .keras file is exact: G, D, the EMA (with batch-norm statistics), the
    iteration counter and both optimizers' state are restored, and the next step of the loaded
    model is the next step of the original one."""
    def factory():
        gan = tiny_gan(seed=5)
        gan.compile(run_eagerly=True)
        return gan

    maps, theta = batch(rng)
    z = rng.normal(size=(4, LATENT)).astype("float32")
    checked = check_model(factory, maps, theta, tmp_path=tmp_path,
                          predict=lambda gan: gan([z, theta]),
                          optimizers=lambda gan: [gan.d_optimizer, gan.g_optimizer],
                          losses=("d_loss", "g_loss", "wasserstein"), predict_inputs=[z, theta])
    saved = keras.saving.load_model(checked.path)  # the state after one step
    assert int(saved.iteration.numpy()) == 1
    for name in ("d_optimizer", "g_optimizer"):
        optimizer = getattr(saved, name)
        assert int(optimizer.iterations.numpy()) == 1
        assert len(optimizer.variables) > 2
        assert np.abs(np.asarray(optimizer.variables[2])).max() > 0  # the moments are not zeros
    # fresh optimizer state (what a resume without built optimizers gives) takes another step
    saved.compile(run_eagerly=True)
    saved.fit(maps, theta, batch_size=len(maps), shuffle=False, verbose=0)
    moved = max(np.abs(a - b).max() for a, b in zip(saved.get_weights(),
                                                      checked.model.get_weights()))
    assert moved > 1e-5


@pytest.mark.filterwarnings("ignore:Gradients do not exist")  # the decoders: no reconstructions
@pytest.mark.parametrize("network", ["generator", "discriminator"])
def test_generator_and_discriminator_pass_the_model_checks_on_their_own(rng, tmp_path, network):
    """Each network as a model of its own, trained on MSE to given maps (at R and R/2) or
    logits."""
    factory, x, y = network_case(rng, network, run_eagerly=True)
    check_model(factory, x, y, tmp_path=tmp_path)



def test_generate(rng):
    gan = tiny_gan()
    gan.compile(run_eagerly=True)
    gan.train_step(batch(rng))
    theta = rng.uniform(size=(5, 2))
    maps = gan.generate(theta, seed=3, batch_size=2)
    assert maps.shape == (5, R, R, 3) and maps.dtype == np.float32
    assert np.abs(maps).max() <= 1.0
    np.testing.assert_array_equal(gan.generate(theta, seed=3, batch_size=2), maps)
    # another batch size: the same maps up to float32 round-off (the convolutions' summation
    # order depends on the batch the CPU kernels block over)
    np.testing.assert_allclose(gan.generate(theta, seed=3), maps, rtol=0, atol=1e-6)
    z = np.random.default_rng(3).standard_normal((5, LATENT)).astype("float32")
    np.testing.assert_allclose(gan.generate(theta, z=z), maps, rtol=0, atol=1e-6)
    assert np.abs(gan.generate(theta, seed=3, use_ema=False) - maps).max() > 1e-5
    assert np.abs(gan.generate(theta, seed=4) - maps).max() > 1e-4
    with pytest.raises(ValueError, match="theta must have shape"):
        gan.generate(theta[:, :1])
    unconditional = tiny_gan(n_params=0)
    assert unconditional.generate(np.zeros((2, 0)), seed=0).shape == (2, R, R, 3)


def test_argument_errors():
    with pytest.raises(ValueError, match="loss must be one of"):
        tiny_gan(loss="bce")
    with pytest.raises(ValueError, match="differ in resolution"):
        MultifieldGAN(Generator(32, width=1 / 16), Discriminator(64, width=1 / 16))
    with pytest.raises(ValueError, match="n_critic"):
        tiny_gan(n_critic=0)


# --- tf.distribute ----------------------------------------------------------------------------

DISTRIBUTED = textwrap.dedent("""
    import numpy as np, tensorflow as tf
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from tfastro.multifield.model import Discriminator, Generator, MultifieldGAN

    rng = np.random.default_rng(0)
    maps = np.tanh(rng.normal(size=(4, 32, 32, 3))).astype("float32")
    theta = rng.uniform(size=(4, 2)).astype("float32")

    def run(strategy, data):
        with strategy.scope():
            keras.utils.set_random_seed(1)
            gan = MultifieldGAN(Generator(32, 3, 8, 2, width=1 / 16),
                                Discriminator(32, 3, 2, width=1 / 16), gp_weight=0.0,
                                reconstruction_weight=0.0)
            gan.compile(keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1), run_eagerly=True)
            kernel = gan.generator.stem.kernel  # fakes independent of z: replicas agree
            kernel.assign(np.concatenate([np.zeros(kernel.shape[:3] + (8,), "float32"),
                                          np.asarray(kernel)[..., 8:]], axis=-1))
        logs = gan.fit(data, epochs=1, verbose=0).history
        # the zero z-columns of the stem kernel get z-dependent gradients: compare the rest
        weights = [np.asarray(v)[..., 8:] if v.path.endswith("/stem/kernel")
                   else np.asarray(v) for v in gan.weights]
        return logs, weights, strategy.num_replicas_in_sync

    single = run(tf.distribute.get_strategy(), tf.data.Dataset.from_tensors((maps, theta)))
    both = tf.data.Dataset.from_tensors((np.concatenate([maps, maps]),
                                         np.concatenate([theta, theta])))
    mirrored = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), both)
    assert mirrored[2] == 2, mirrored[2]
    for key in set(single[0]) - {"recon"}:  # recon: decoder quadrants are drawn per replica
        np.testing.assert_allclose(mirrored[0][key], single[0][key], rtol=1e-5, atol=1e-6,
                                   err_msg=key)
    moved = max(np.abs(a - b).max() for a, b in zip(single[1], mirrored[1]))
    assert moved < 1e-5, moved
    print("OK")
""")


def test_mirrored_replicas_step_like_one_device():
    # Each of two replicas gets the same 4 maps: with losses divided by the number of replicas
    # the summed gradients equal the single-device ones (not twice them), and the metrics agree.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    result = subprocess.run([sys.executable, "-c", DISTRIBUTED], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-3000:]


# --- the JAX backend --------------------------------------------------------------------------

JAX_SCRIPT = """
import json, pathlib, sys
sys.path.insert(0, sys.argv[1])
import keras, numpy as np, tensorflow as tf
from tests.multifield.tiny import tiny_gan
from tfastro.core.errors import UserInputError
directory = pathlib.Path(sys.argv[2])
data = np.load(directory / "data.npz")
maps, theta, z = data["maps"], data["theta"], data["z"]
validation = (data["val_maps"], data["val_theta"])
gan = keras.saving.load_model(directory / "initial.keras")
out = {"backend": keras.backend.backend(),
       "history": gan.fit(maps, theta, batch_size=2, epochs=3, shuffle=False, verbose=0,
                          validation_data=validation).history,
       "evaluate": gan.evaluate(*validation, batch_size=3, verbose=0, return_dict=True),
       "generate": gan.generate(validation[1], seed=3).tolist(),
       "predict": gan.predict([z, validation[1]], batch_size=3, verbose=0)[0].tolist()}
gan.save(directory / "jax.keras")
loaded = keras.saving.load_model(directory / "jax.keras")
out["continued"] = [m.fit(maps, theta, batch_size=2, epochs=1, shuffle=False, verbose=0).history
                    for m in (gan, loaded)]
out["continued_apart"] = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                             for a, b in zip(gan.weights + gan.optimizer.variables,
                                             loaded.weights + loaded.optimizer.variables))
out["counters"] = [int(np.asarray(v)) for v in (loaded.iteration, loaded.d_optimizer.iterations,
                                                loaded.g_optimizer.iterations)]
try:
    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        tiny_gan().compile()
except UserInputError as err:
    out["distribute"] = str(err)
print("RESULT" + json.dumps(out))
"""

NETWORKS_SCRIPT = """
import json, pathlib, sys, traceback
sys.path.insert(0, sys.argv[1])
import keras, numpy as np
from tests.model_testing import check_model
from tests.multifield.tiny import network_case
directory, network = pathlib.Path(sys.argv[2]), sys.argv[3]
try:
    check_model(*network_case(np.random.default_rng(5), network), tmp_path=directory)
    checks = "passed"
except Exception:
    checks = traceback.format_exc()
print("RESULT" + json.dumps({"backend": keras.backend.backend(), "checks": checks}))
"""


@pytest.fixture(scope="module")
def on_jax(tmp_path_factory):
    """One subprocess on the JAX backend: a tiny GAN (n_critic 2) saved by TensorFlow before
    training, trained from that file (3 epochs of 2 steps with validation data), evaluated,
    sampled, saved and continued one epoch from the saved file, and the same on TensorFlow in
    this process: {"jax": the subprocess's results, "tensorflow": this process's}."""
    directory = tmp_path_factory.mktemp("gan_jax")
    rng = np.random.default_rng(11)
    (maps, theta), (val_maps, val_theta) = batch(rng), batch(rng, 3)
    z = rng.normal(size=(3, LATENT)).astype("float32")
    np.savez(directory / "data.npz", maps=maps, theta=theta, val_maps=val_maps,
             val_theta=val_theta, z=z)
    keras.utils.set_random_seed(3)
    gan = tiny_gan(n_critic=2, seed=7, ema_decay=0.5)
    gan.compile()
    gan.save(directory / "initial.keras")
    out = jax_backend.run_on_jax(JAX_SCRIPT, REPO, directory, timeout=1500)
    gan = keras.saving.load_model(directory / "initial.keras")
    gan.run_eagerly = True  # no tracing: faster here
    tensorflow = {"history": gan.fit(maps, theta, batch_size=2, epochs=3, shuffle=False, verbose=0,
                                     validation_data=(val_maps, val_theta)).history,
                  "evaluate": gan.evaluate(val_maps, val_theta, batch_size=3, verbose=0,
                                           return_dict=True),
                  "generate": gan.generate(val_theta, seed=3),
                  "predict": gan.predict([z, val_theta], batch_size=3, verbose=0)[0],
                  "continued": gan.fit(maps, theta, batch_size=2, epochs=1, shuffle=False,
                                       verbose=0).history}
    return {"jax": out, "tensorflow": tensorflow}


@pytest.mark.slow  # the JAX subprocess compiles for over a minute on 2 cores
def test_jax_trains_evaluates_and_samples_as_tensorflow(on_jax):
    """From the same weights, data and seed, the JAX backend's loss curve (training and
    validation), evaluation and maps are TensorFlow's to float32 round-off."""
    jax, tensorflow = on_jax["jax"], on_jax["tensorflow"]
    assert set(jax["history"]) == TRACKED | {f"val_{name}" for name in TRACKED}
    for name, curve in tensorflow["history"].items():
        assert len(curve) == 3
        np.testing.assert_allclose(jax["history"][name], curve, rtol=1e-4, atol=1e-5,
                                   err_msg=name)
    for name in TRACKED:
        np.testing.assert_allclose(jax["evaluate"][name], tensorflow["evaluate"][name],
                                   rtol=1e-4, atol=1e-5, err_msg=name)
    for key in ("generate", "predict"):
        np.testing.assert_allclose(jax[key], tensorflow[key], rtol=0, atol=1e-4, err_msg=key)


@pytest.mark.slow  # the JAX subprocess compiles for over a minute on 2 cores
def test_jax_continues_training_from_a_keras_file(on_jax):
    """On JAX a GAN saved after training and loaded takes the step the original takes, as
    TensorFlow's does; counters: 3 epochs of 2 iterations then 1 of 2, n_critic = 2."""
    jax, tensorflow = on_jax["jax"], on_jax["tensorflow"]
    original, loaded = jax["continued"]
    for name in TRACKED:
        np.testing.assert_allclose(loaded[name], original[name], rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(original[name], tensorflow["continued"][name], rtol=1e-4,
                                   atol=1e-5, err_msg=name)
    assert jax["continued_apart"] < 1e-6
    assert jax["counters"] == [8, 16, 8]


@pytest.mark.slow  # the JAX subprocess compiles for over a minute on 2 cores
def test_tf_distribute_is_refused_on_jax(on_jax):
    assert "tf.distribute needs the TensorFlow backend" in on_jax["jax"]["distribute"]


@pytest.mark.slow  # minutes of JAX compilation on 2 cores; the same checks run on TensorFlow
@pytest.mark.parametrize("network", ["generator", "discriminator"])
def test_networks_pass_the_model_checks_on_jax(tmp_path, network):
    out = jax_backend.run_on_jax(NETWORKS_SCRIPT, REPO, tmp_path, network, timeout=1500)
    assert out["checks"] == "passed", out["checks"]
