"""Turbulence classifier on CPU: the flattened-power experiment end to end, and training speed.

1. Writes synthetic turbulence classes (or reads --data-dir), trains turbulence_cnn on full
   images and on phases only (--flattened_power) through tfastro.turbulence.task, prints the
   per-class F1 of both runs side by side (the paper's table: phases alone still separate
   some classes);
2. seconds per training step and tiles per second of the classifier (batch 64) and the U-net
   (batch 32) at --tile (128 as in the paper), and the peak resident memory of the process.

    python bench/turbulence.py                       # 128^3 synthetic cubes, 6 snapshots, 64^2 tiles
    python bench/turbulence.py --data-dir data/turbulence --tile 128 --epochs 50
"""
import argparse
import os
import tempfile
import time

from memory import peak_rss_gb

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _step_time(model, x, y, steps):
    model.train_on_batch(x, y)  # trace
    t0 = time.time()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return (time.time() - t0) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="", help="class folders (default: synthetic)")
    parser.add_argument("--size", type=int, default=128, help="synthetic cube side")
    parser.add_argument("--snapshots", type=int, default=6, help="synthetic snapshots per class")
    parser.add_argument("--tile", type=int, default=64, help="tile side of the experiment")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--speed-tile", type=int, default=128, help="tile side of the timings")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import numpy as np

    from tfastro.turbulence import model as models
    from tfastro.turbulence.config import TurbulenceCNNConfig
    from tfastro.turbulence.synthetic import write_synthetic_turbulence
    from tfastro.turbulence.task import run

    with tempfile.TemporaryDirectory() as folder:
        data_dir = args.data_dir
        if not data_dir:
            data_dir = os.path.join(folder, "data")
            write_synthetic_turbulence(data_dir, args.size, args.snapshots, seed=args.seed)
        f1, seconds = {}, {}
        for phases in (False, True):
            cfg = TurbulenceCNNConfig(data_dir=data_dir, tile_size=args.tile, epochs=args.epochs,
                                      lr=args.lr, patience=args.epochs, flattened_power=phases,
                                      seed=args.seed, saliency_images=1, blur_sigmas="0",
                                      save_dir=os.path.join(folder, f"ckpt{phases}"),
                                      gen_frm_dir=os.path.join(folder, f"res{phases}"))
            t0 = time.time()
            report = run(cfg, log=lambda *a: None)
            seconds[phases] = time.time() - t0
            f1[phases] = report["per_class"]["f1"], report["accuracy"]
        names = report["class_names"]
        print(f"per-class F1 (%), {args.epochs} epochs, tiles {args.tile}^2"
              f"{'' if args.data_dir else f', synthetic {args.size}^3 x {args.snapshots}'}")
        print(f"{'class':28s} {'full power':>11s} {'phases only':>12s}")
        for c, name in enumerate(names):
            print(f"{name:28s} {100 * f1[False][0][c]:11.1f} {100 * f1[True][0][c]:12.1f}")
        print(f"{'accuracy':28s} {100 * f1[False][1]:11.1f} {100 * f1[True][1]:12.1f}")
        print(f"{'run time (s)':28s} {seconds[False]:11.1f} {seconds[True]:12.1f}")

    rng = np.random.default_rng(0)
    t = args.speed_tile
    for name, model, batch, y in (
            ("classifier", models.compile_classifier(models.turbulence_classifier(t)), 64,
             rng.integers(0, 5, 64)),
            ("U-net", models.compile_unet(models.turbulence_unet(t)), 32,
             rng.random((32, t, t, 1), dtype=np.float32))):
        x = rng.random((batch, t, t, 1), dtype=np.float32)
        step = _step_time(model, x, y, args.steps)
        print(f"{name:10s} {t}^2 batch {batch}: {step:.3f} s/step, {batch / step:.0f} tiles/s")
    peak = peak_rss_gb()
    print(f"peak resident memory {peak:.2f} GB")


if __name__ == "__main__":
    main()
