"""3D-MIM training step on a GPU through Keras 3's JAX backend: seconds per step, device memory.

MIM3D trains on either backend; here one step is the model's own JAX train_step (the original
loss of one clip with scheduled sampling, its gradient and a MIMAdam update, compiled by Keras as
one XLA program) at run.sh's network (num_hidden 32x4, filter 5, 20 frames, input 1, batch 1),
timed through ``train_on_batch``. It also checks the GPU forecast against the CPU forecast of the
same weights and, with --reference, against the original network's forward pass (both at float32
'highest' precision; the timings use the backend's default, TF32 convolutions on recent NVIDIA
GPUs). Per-voxel peepholes up to 32^3, per-channel above; per-cell rematerialisation from 64^3.

    KERAS_BACKEND=jax python bench/mim3d_gpu_jax.py --grids 16,32,64 --precisions float32,bfloat16
"""
import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from tfastro.supernova.model import MIM3D
from tfastro.supernova.optimizers import MIMAdam


def build(grid, precision, peephole, remat):
    model = MIM3D(num_hidden=(32, 32, 32, 32), filter_size=5, input_length=1, total_length=20,
                  peephole=peephole, remat=remat, reverse_input=False,
                  dtype="mixed_bfloat16" if precision == "bfloat16" else None)
    model.build((1, 20, grid, grid, grid, 1))
    model.compile(optimizer=MIMAdam(1e-3))
    return model


def time_case(grid, precision, peephole, remat, steps):
    """(compile s, median s per step, peak device GB, last loss) of ``steps`` train steps."""
    model = build(grid, precision, peephole, remat)
    shape = (1, model.total_length, grid, grid, grid, 1)
    clip = np.random.default_rng(0).random(shape, dtype=np.float32)
    t0 = time.time()
    model.train_on_batch(clip)
    compile_s = time.time() - t0
    times = []
    for _ in range(steps):
        t0 = time.time()
        loss = model.train_on_batch(clip, return_dict=True)["loss"]  # once on the host
        times.append(time.time() - t0)
    stats = jax.devices()[0].memory_stats() or {}
    return compile_s, float(np.median(times)), stats.get("peak_bytes_in_use", 0) / 1e9, float(loss)


def gpu_equals_cpu(grid):
    """Largest |GPU - CPU| of the forecast of one random clip with the same weights."""
    model = build(grid, "float32", "voxel", False)
    rng = np.random.default_rng(1)
    clip = rng.random((1, 20, grid, grid, grid, 1), dtype=np.float32)
    weights = [np.asarray(v.value) for v in model.variables]
    out = {}
    for kind in ("gpu", "cpu"):
        device = jax.devices(kind)[0]
        with jax.default_device(device):
            model = build(grid, "float32", "voxel", False)
            for v, w in zip(model.variables, weights):
                v.assign(w)
            out[kind] = np.asarray(model(jax.device_put(clip, device)))
    return float(np.max(np.abs(out["gpu"] - out["cpu"]))), float(np.max(np.abs(out["cpu"])))


def original_difference(path):
    """Largest |tfastro - original| over the predictions of the original's reference case."""
    from tests.supernova.test_reference import load_original
    ref = np.load(path)
    model = load_original(ref)
    flag = ref["real_input_flag"]
    pred = np.asarray(model(ref["input"], sampling_mask=flag.reshape(flag.shape[:2] + (-1,))[..., 0]))
    return float(np.max(np.abs(pred - ref["gen_images"])))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grids", default="16,32,64")
    parser.add_argument("--precisions", default="float32,bfloat16")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--check-grid", type=int, default=16)
    parser.add_argument("--reference", help="mim3d_original_forward.npz of shared/reference")
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].device_kind}; jax {jax.__version__}, keras {keras.__version__}; "
          f"matmul precision {jax.config.jax_default_matmul_precision or 'default'}")
    with jax.default_matmul_precision("highest"):
        if args.reference:
            print(f"original reference case: max |tfastro - original| = "
                  f"{original_difference(args.reference):.2e}")
        if args.check_grid:
            diff, scale = gpu_equals_cpu(args.check_grid)
            print(f"forecast {args.check_grid}^3, same weights: max |GPU - CPU| = {diff:.2e} "
                  f"(max |forecast| {scale:.2f})")
    print(f"{'grid':>5} {'peephole':>8} {'precision':>9} {'compile s':>9} {'s/step':>8} "
          f"{'peak GB':>8} (device memory, cumulative over the cases)")
    for grid in map(int, args.grids.split(",")):
        peephole = "voxel" if grid <= 32 else "channel"
        for precision in args.precisions.split(","):
            compile_s, step_s, peak, loss = time_case(grid, precision, peephole, grid >= 64,
                                                      args.steps)
            print(f"{grid:>5} {peephole:>8} {precision:>9} {compile_s:9.1f} {step_s:8.3f} "
                  f"{peak:8.2f}   loss {loss:.4f}", flush=True)


if __name__ == "__main__":
    main()
