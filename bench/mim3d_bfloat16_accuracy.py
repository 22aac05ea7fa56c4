"""Effect of --precision bfloat16 on 3D-MIM accuracy.

1. Same weights, same clips: relative difference of the bfloat16 forecast from the float32
   forecast (run.sh's network at --grid, 19 autoregressive steps).
2. Same training from the same initial weights on synthetic uniform-medium shells (16 clips
   of 8 frames, 8^3): validation MSE per voxel after --iterations, float32 vs bfloat16,
   beside the copy-the-last-frame baseline.

    python bench/mim3d_bfloat16_accuracy.py [--grid 16] [--iterations 300]
"""
import argparse
import dataclasses
import json
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from tfastro.supernova.config import MIM3DConfig
from tfastro.supernova.io import load_sn_npz, save_sn_npz
from tfastro.supernova.synthetic import make_sn_clips
from tfastro.supernova.task import build_model, run


def forecast_difference(grid):
    cfg = MIM3DConfig(img_width=grid, img_depth=grid, input_length=10, total_length=20,
                      num_hidden="32,32,32,32", patch_size=1, batch_size=1)
    frames, clips = make_sn_clips(1, 20, grid, medium="turbulent", seed=1)
    clip = np.moveaxis(frames, 1, -1)[None]
    f32 = build_model(cfg)
    b16 = build_model(dataclasses.replace(cfg, precision="bfloat16"))
    b16.set_weights(f32.get_weights())
    p32 = np.asarray(f32.predict_on_batch(clip[:, :10]), np.float32)
    p16 = np.asarray(b16.predict_on_batch(clip[:, :10]), np.float32)
    axes = (2, 3, 4, 5)
    rel = np.sqrt(np.sum((p16 - p32) ** 2, axis=axes) / np.sum(p32 ** 2, axis=axes))
    print(f"forecast with the same (untrained) weights, {grid}^3: relative L2 difference "
          f"bfloat16 vs float32 per predicted frame: first {rel[0, 0]:.2e}, "
          f"10th (first fed back) {rel[0, 9]:.2e}, last {rel[0, -1]:.2e}")


def training_comparison(iterations):
    folder = tempfile.mkdtemp()
    frames, clips = make_sn_clips(16, 8, 8, medium="uniform", seed=5)
    path = save_sn_npz(os.path.join(folder, "uniform.npz"), frames, clips)
    data = load_sn_npz(path)
    results = {}
    for precision in ("float32", "bfloat16"):
        cfg = MIM3DConfig(dataset_name="sn", train_data_paths=path, valid_data_paths=path,
                          save_dir=os.path.join(folder, precision, "ckpt"),
                          gen_frm_dir=os.path.join(folder, precision, "res"), img_width=8,
                          img_depth=8, input_length=3, total_length=8, num_hidden="8,8",
                          filter_size=3, patch_size=1, batch_size=4, max_iterations=iterations,
                          test_interval=iterations, snapshot_interval=iterations,
                          num_save_samples=0, sampling_stop_iter=iterations * 2 // 3,
                          sampling_changing_rate=1.5 / iterations, lr=0.005,
                          reverse_input=False, precision=precision, remat="false")
        run(cfg, log=lambda *a: None)
        with open(os.path.join(cfg.gen_frm_dir, str(iterations), "metrics.json")) as f:
            results[precision] = json.load(f)["mean"]
    copy_last = np.mean([np.mean((c[3:] - c[2]) ** 2)
                         for c in (data.clip(i, 8) for i in range(data.num_clips))])
    print(f"training {iterations} iterations on 8^3 uniform shells: validation MSE per voxel")
    for precision, mean in results.items():
        print(f"  {precision:9s} {mean['mse'] / 512:.5f}   SSIM {mean['ssim']:.3f}   "
              f"shell IoU {mean['shell_iou']:.3f}")
    print(f"  copy-last {copy_last:.5f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args()
    forecast_difference(args.grid)
    training_comparison(args.iterations)


if __name__ == "__main__":
    main()
