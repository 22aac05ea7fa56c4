"""dm2gal on CPU: does the window pipeline keep up with training, how fast is stitched
inference, how fast is streamed CIC.

1. windows per second out of tfastro.dm2gal.pipeline.window_dataset (weighted draws,
   random rotation, windows cut from a memory-mapped grid) alone, against windows per second
   consumed by DM2Gal training steps fed from an in-memory batch (no pipeline);
2. voxels per second of tfastro.dm2gal.model.predict_cube over a test block;
3. CIC of 10^7 particles streamed in chunks of 2^20 (tfastro.dm2gal.io.cic_mass_grid).

    python bench/dm2gal.py                       # window 65, ch 64, batch 32
    python bench/dm2gal.py --window 33 --ch 16 --grid 96
"""
import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _rate(count, seconds):
    return f"{count / seconds:10.1f}/s ({count} in {seconds:.2f} s)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid", type=int, default=128)
    parser.add_argument("--window", type=int, default=65)
    parser.add_argument("--ch", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--stitch-side", type=int, default=8, help="side of the stitched block")
    parser.add_argument("--particles", type=int, default=10**7)
    args = parser.parse_args()

    import keras
    import numpy as np

    from tfastro.dm2gal.io import cic_mass_grid
    from tfastro.dm2gal.model import DM2Gal, predict_cube
    from tfastro.dm2gal.pipeline import mass_bin_weights, window_dataset

    rng = np.random.default_rng(0)
    n, w, half = args.grid, args.window, args.window // 2
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "inputs.npy")
        inputs = np.lib.format.open_memmap(path, "w+", np.float32, (n, n, n, 2))
        inputs[:] = rng.normal(size=(n, n, n, 2)).astype(np.float32)
        inputs.flush()
        inputs = np.load(path, mmap_mode="r")
        target = rng.normal(size=(n, n, n)).astype(np.float32)
        centres = rng.integers(half, n - half, size=(4096, 3))
        weights = mass_bin_weights(target[tuple(centres.T)])
        data = iter(window_dataset(inputs, target, centres, w, args.batch, weights=weights))
        next(data)
        t0 = time.time()
        for _ in range(args.batches):
            windows, targets = next(data)
        produced = time.time() - t0

        model = DM2Gal(args.ch, w)
        model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="mse")
        batch = (np.asarray(windows), np.asarray(targets))
        model.train_on_batch(*batch)  # traces the step
        t0 = time.time()
        for _ in range(args.batches):
            model.train_on_batch(*batch)
        consumed = time.time() - t0
        count = args.batches * args.batch
        print(f"window {w}^3, DM2Gal ch {args.ch} ({model.count_params():,} parameters), "
              f"batch {args.batch}")
        print(f"  pipeline produces  {_rate(count, produced)}")
        print(f"  training consumes  {_rate(count, consumed)}  -> pipeline/training "
              f"{(count / produced) / (count / consumed):.1f}x")

        side = args.stitch_side
        lo = n // 2 - side // 2
        region = ((lo, lo + side),) * 3
        predict_cube(model, inputs, ((lo, lo + 2),) * 3, w, batch_size=args.batch)  # traces
        t0 = time.time()
        predict_cube(model, inputs, region, w, batch_size=args.batch)
        print(f"  stitched inference {_rate(side ** 3, time.time() - t0)} voxels")

    box = 75000.0
    chunks = [(rng.uniform(0, box, size=(min(2**20, args.particles - i), 3)), 1.0)
              for i in range(0, args.particles, 2**20)]
    cic_mass_grid(chunks[:1], box, 256)  # traces
    t0 = time.time()
    grid = cic_mass_grid(iter(chunks), box, 256)
    seconds = time.time() - t0
    print(f"CIC of {args.particles:.0e} particles in chunks of 2^20 -> 256^3: {seconds:.2f} s, "
          f"mass conserved to {abs(grid.sum(dtype=np.float64) / args.particles - 1):.1e}")


if __name__ == "__main__":
    main()
