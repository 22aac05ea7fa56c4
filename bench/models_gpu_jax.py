"""Training steps of the turbulence CNN and U-net, ColumnNet and DM2Gal through Keras 3's JAX
backend (on a GPU when JAX has one): seconds per step in float32 and mixed_bfloat16.

Each model is built as its run.py task builds it (the library's compile functions for the
turbulence models; Adam and MSE for ColumnNet and DM2Gal) under the dtype policy of
--mixed_precision, and trained with ``train_on_batch`` on random data of the task's shapes:
the first step compiles, the median of the next ``--steps`` is reported with the losses of the
first and last step (finite; the same batch every step, so the loss falls as it is fitted).

    KERAS_BACKEND=jax python bench/models_gpu_jax.py --steps 20
"""
import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from tfastro.dm2gal.model import DM2Gal
from tfastro.prestellar.model import ColumnNet
from tfastro.turbulence.model import (compile_classifier, compile_unet, turbulence_classifier,
                                      turbulence_unet)


def _adam_mse(model, input_shape):
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    model.build(input_shape)
    return model


def cases(rng):
    """(name, model factory, batch of inputs, batch of targets) per model at its paper's size."""
    tiles = rng.random((64, 128, 128, 1), dtype=np.float32)
    yield ("turbulence_cnn 128^2", lambda: compile_classifier(turbulence_classifier(128, 5)),
           tiles, rng.integers(0, 5, 64))
    yield ("turbulence_unet 128^2", lambda: compile_unet(turbulence_unet(128)),
           tiles[:32], rng.random((32, 128, 128, 1), dtype=np.float32))
    yield ("prestellar 32^3, 32 channels", lambda: _adam_mse(ColumnNet(32, 32, seed=0),
                                                         (None, 32, 32, 32, 1)),
           rng.random((8, 32, 32, 32, 1), dtype=np.float32),
           rng.random((8, 32, 32, 32, 2), dtype=np.float32))
    yield ("dm2gal window 33^3, ch 32", lambda: _adam_mse(DM2Gal(32, 33), (None, 33, 33, 33, 2)),
           rng.random((32, 33, 33, 33, 2), dtype=np.float32),
           rng.random((32, 1), dtype=np.float32))


def time_steps(make, x, y, policy, steps):
    """(compile s, median s/step, first loss, last loss) of ``steps`` steps under ``policy``."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model = make()
    finally:
        keras.config.set_dtype_policy(previous)
    x, y = jax.device_put(x), jax.device_put(y)
    began = time.perf_counter()
    first = float(np.ravel(model.train_on_batch(x, y))[0])
    compile_s = time.perf_counter() - began
    times = []
    for _ in range(steps):
        began = time.perf_counter()
        last = float(np.ravel(model.train_on_batch(x, y))[0])  # returns host values: synchronous
        times.append(time.perf_counter() - began)
    return compile_s, float(np.median(times)), first, last


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].device_kind}; jax {jax.__version__}, keras "
          f"{keras.__version__}, backend {keras.backend.backend()}")
    print(f"{'model':<26} {'policy':<15} {'batch':>5} {'compile s':>9} {'s/step':>8} "
          f"{'samples/s':>9} {'loss first':>10} {'loss last':>10}")
    for name, make, x, y in cases(np.random.default_rng(0)):
        for policy in args.precisions.split(","):
            compile_s, step, first, last = time_steps(make, x, y, policy, args.steps)
            if not (np.isfinite(first) and np.isfinite(last)):
                raise SystemExit(f"{name} under {policy}: non-finite loss {first}, {last}")
            print(f"{name:<26} {policy:<15} {len(x):>5} {compile_s:9.1f} {step:8.4f} "
                  f"{len(x) / step:9.0f} {first:10.4f} {last:10.4f}", flush=True)


if __name__ == "__main__":
    main()
