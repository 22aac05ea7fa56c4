"""Tiny multifield networks (32^2 maps, 4 to 16 channels per feature map) and data for the
tests, importable by the subprocesses that run them on the JAX backend."""
import numpy as np

from tfastro.multifield.model import Discriminator, Generator, MultifieldGAN

R, LATENT, TINY = 32, 8, 1 / 16


def tiny_gan(n_params=2, dtype=None, **kwargs):
    policy = {} if dtype is None else {"dtype": dtype}
    return MultifieldGAN(Generator(R, 3, LATENT, n_params, width=TINY, **policy),
                         Discriminator(R, 3, n_params, width=TINY, **policy), **kwargs)


def batch(rng, size=4, n_params=2):
    """(maps (size, R, R, 3) in (-1, 1), theta (size, n_params) in [0, 1)) float32."""
    maps = np.tanh(rng.normal(size=(size, R, R, 3))).astype("float32")
    return maps, rng.uniform(size=(size, n_params)).astype("float32")


def half(maps):
    """The 2x2 average pool of (B, R, R, C) maps."""
    return maps.reshape(len(maps), R // 2, 2, R // 2, 2, maps.shape[-1]).mean(axis=(2, 4))


def network_case(rng, network, size=4, run_eagerly=False):
    """(factory of the network compiled with Adam on MSE, x, y) for a network trained on its
    own: the generator maps [z, theta] to given maps at R and R/2, the discriminator maps
    [full, half, theta] to given logits."""
    maps, theta = batch(rng, size)
    if network == "generator":
        network_class, sizes = Generator, (R, 3, LATENT, 2)
        x, y = [rng.normal(size=(size, LATENT)).astype("float32"), theta], (maps, half(maps))
    else:
        network_class, sizes = Discriminator, (R, 3, 2)
        x, y = [maps, half(maps), theta], rng.normal(size=size).astype("float32")

    def factory():
        model = network_class(*sizes, width=TINY)
        model.compile(optimizer="adam", loss="mse", run_eagerly=run_eagerly)
        return model

    return factory, x, y
