"""What --jit_compile (XLA) does to each model's training step on this machine.

For every --model_name the model is built and compiled by its task's ``build_model`` at a small
size, once with ``jit_compile=False`` and once with ``True``, and trained on one fixed
in-memory batch: the first step (tracing, and XLA compilation with jit) and the mean of the
next --steps steps are timed. Prints one markdown table.

    python bench/jit_compile.py                     # all models, small sizes, CPU: a few minutes
    python bench/jit_compile.py --models dm2gal,prestellar --steps 20
"""
import argparse
import os
import time
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODELS = ("mim", "multifield", "dm2gal", "turbulence_cnn", "turbulence_unet", "prestellar")


def build(name, jit, rng):
    """(compiled model, one training batch (x, y), size in words) of ``name``."""
    from tfastro.dm2gal import task as dm2gal
    from tfastro.dm2gal.config import DM2GalConfig
    from tfastro.multifield import task as multifield
    from tfastro.multifield.config import MultifieldConfig
    from tfastro.prestellar import task as prestellar
    from tfastro.prestellar.config import PrestellarConfig
    from tfastro.supernova import task as mim3d
    from tfastro.supernova.config import MIM3DConfig
    from tfastro.turbulence import task as turbulence
    from tfastro.turbulence.config import TurbulenceCNNConfig, TurbulenceUNetConfig
    data = lambda *shape: rng.uniform(size=shape).astype("float32")  # noqa: E731
    if name == "mim":
        cfg = MIM3DConfig(img_width=16, img_depth=16, input_length=5, total_length=10,
                          num_hidden="8,8,8,8", filter_size=3, patch_size=2, batch_size=2,
                          remat="false", jit_compile=jit)
        mim3d.configure_tensorflow(cfg)
        return (mim3d.build_model(cfg), (data(2, 10, 16, 16, 16, 1), None),
                "16^3, 10 frames, hidden 8x4, batch 2, reverse pass")
    if name == "multifield":
        cfg = MultifieldConfig(resolution=64, latent_dim=64, gan_width=0.25, jit_compile=jit)
        return (multifield.build_gan(cfg, 3), (2 * data(8, 64, 64, 3) - 1, data(8, 2)),
                "64^2 x 3, width 0.25, batch 8, n_critic 2")
    if name == "dm2gal":
        model = dm2gal.build_model(DM2GalConfig(window=17, dm2gal_ch=8, lr=1e-3,
                                                jit_compile=jit))
        return model, (data(16, 17, 17, 17, 2), data(16, 1)), "window 17^3, ch 8, batch 16"
    if name in ("turbulence_cnn", "turbulence_unet"):
        config = TurbulenceCNNConfig if name == "turbulence_cnn" else TurbulenceUNetConfig
        cfg = config(tile_size=64, jit_compile=jit)
        batch = cfg.batch_size
        y = rng.integers(0, 5, batch) if name == "turbulence_cnn" else data(batch, 64, 64, 1)
        return turbulence.build_model(cfg), (data(batch, 64, 64, 1), y), f"64^2, batch {batch}"
    cores = types.SimpleNamespace(log_density=data(1, 16, 16, 16), ppv=data(1, 16, 16, 16))
    model = prestellar.build_model(PrestellarConfig(jit_compile=jit), cores)
    return model, (data(8, 16, 16, 16, 1), data(8, 16, 16, 16, 2)), "16^3, 16 channels, batch 8"


def time_steps(name, jit, steps, seed):
    """(first step s, mean s per later step, size) or an error string."""
    import keras
    import numpy as np
    keras.utils.set_random_seed(seed)
    model, (x, y), size = build(name, jit, np.random.default_rng(seed))
    try:
        t0 = time.perf_counter()
        model.train_on_batch(x, y)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(x, y)
        return first, (time.perf_counter() - t0) / steps, size
    except Exception as err:  # XLA may refuse an op: report it as a figure
        return f"fails ({type(err).__name__})", None, size


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--steps", type=int, default=5, help="timed steps after the first")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"--models: unknown {unknown}; expected some of {', '.join(MODELS)}")
    import tensorflow as tf
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    print(f"seconds per training step on {device}, mean of {args.steps} after the first "
          "(first: tracing, and XLA compilation with jit)")
    print("| model | size | first step s (no jit / jit) | s/step no jit | s/step jit | "
          "jit speed-up |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in names:
        plain = time_steps(name, False, args.steps, args.seed)
        jit = time_steps(name, True, args.steps, args.seed)
        cells = [f"{v:.2f}" if isinstance(v, float) else v for v in (plain[0], jit[0])]
        speedup = (f"{plain[1] / jit[1]:.2f}x" if plain[1] and jit[1] else "")
        step = [f"{v[1]:.4f}" if v[1] else v[0] for v in (plain, jit)]
        print(f"| {name} | {plain[2]} | {cells[0]} / {cells[1]} | {step[0]} | {step[1]} | "
              f"{speedup} |", flush=True)


if __name__ == "__main__":
    main()
