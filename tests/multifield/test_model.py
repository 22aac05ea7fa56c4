"""MultifieldGAN: the gradient penalty against analytic values, reconstruction targets, train
steps with both losses (weights, EMA, counters), mixed precision, the model checks (.keras
resume with intact optimizer state) of the GAN and of each network, sampling, and the
per-replica loss scaling under tf.distribute."""
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.model_testing import check_model
from tfastro.multifield.model import (Discriminator, Generator, MultifieldGAN, gradient_penalty,
                                      reconstruction_targets, take_quadrant)

R, LATENT, TINY = 32, 8, 1 / 16


def tiny_gan(n_params=2, dtype=None, **kwargs):
    policy = {} if dtype is None else {"dtype": dtype}
    return MultifieldGAN(Generator(R, 3, LATENT, n_params, width=TINY, **policy),
                         Discriminator(R, 3, n_params, width=TINY, **policy), **kwargs)


def batch(rng, size=4, n_params=2):
    maps = np.tanh(rng.normal(size=(size, R, R, 3))).astype("float32")
    return maps, rng.uniform(size=(size, n_params)).astype("float32")


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
    # MultifieldGAN has no test_step yet: evaluate is not checked
    checked = check_model(factory, maps, theta, tmp_path=tmp_path,
                          predict=lambda gan: gan([z, theta]),
                          optimizers=lambda gan: [gan.d_optimizer, gan.g_optimizer],
                          losses=("d_loss", "g_loss"), evaluate=False)
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
    maps, theta = batch(rng)
    half = maps.reshape(4, R // 2, 2, R // 2, 2, 3).mean(axis=(2, 4))
    if network == "generator":
        network_class, sizes = Generator, (R, 3, LATENT, 2)
        x, y = [rng.normal(size=(4, LATENT)).astype("float32"), theta], (maps, half)
    else:
        network_class, sizes = Discriminator, (R, 3, 2)
        x, y = [maps, half, theta], rng.normal(size=4).astype("float32")

    def factory():
        model = network_class(*sizes, width=TINY)
        model.compile(optimizer="adam", loss="mse", run_eagerly=True)
        return model

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
        MultifieldGAN(Generator(32, width=TINY), Discriminator(64, width=TINY))
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
