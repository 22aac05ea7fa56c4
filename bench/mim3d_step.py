"""Training-step speed, peak memory and start-up time of 3D-MIM in run.sh's configuration.

run.sh: num_hidden 32x4, filter 5, patch 1, 20 frames (input 1), batch 1. One step = one clip
forward and backward and an optimizer update, without the reverse pass (with
--reverse-input: then also the time-reversed clip and a second update, as run.sh trains).
Each case runs in a fresh process so that its peak resident memory (ru_maxrss) is its own.

    python bench/mim3d_step.py                      # 16^3 and 32^3, float32 and bfloat16
    python bench/mim3d_step.py --grids 16 --steps 3 --precisions float32

Reference (original stack, same machine kind): 20.3 s per step and 4.06 GB at 16^3; more
than 18.9 GB at 32^3.
"""
import argparse
import json
import os
import subprocess
import sys
import time

from memory import peak_rss_gb


def one_case(grid, precision, remat, steps, reverse_input):
    began = time.time()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np

    from tfastro.supernova.config import MIM3DConfig
    from tfastro.supernova.task import build_model, configure_tensorflow, use_remat
    cfg = MIM3DConfig(img_width=grid, img_depth=grid, input_length=1, total_length=20,
                      num_hidden="32,32,32,32", patch_size=1, batch_size=1,
                      reverse_input=reverse_input,
                      precision=precision, remat=remat)
    configure_tensorflow(cfg)
    model = build_model(cfg)
    clip = np.random.default_rng(0).random((1, 20, grid, grid, grid, 1), dtype=np.float32)
    model.train_on_batch(clip)  # traces the graph and runs the first step
    startup = time.time() - began
    times = []
    for _ in range(steps):
        t0 = time.time()
        loss = model.train_on_batch(clip)
        times.append(time.time() - t0)
    peak_gb = peak_rss_gb()
    return {"grid": grid, "precision": precision, "remat": use_remat(cfg),
            "step_s": float(np.median(times)), "steps": steps, "startup_s": startup,
            "peak_rss_gb": peak_gb, "loss": float(np.asarray(loss).ravel()[0])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grids", default="16,32")
    parser.add_argument("--precisions", default="float32,bfloat16")
    parser.add_argument("--remat", default="auto", choices=["auto", "true", "false"])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--reverse-input", action="store_true",
                        help="also train on the time-reversed clip in each step, as run.sh does")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        grid, precision = args.case.split(":")
        print(json.dumps(one_case(int(grid), precision, args.remat, args.steps,
                                 args.reverse_input)))
        return
    print(f"{'grid':>5} {'precision':>9} {'remat':>5} {'s/step':>8} {'start-up s':>10} {'peak GB':>8}")
    for grid in map(int, args.grids.split(",")):
        for precision in args.precisions.split(","):
            out = subprocess.run([sys.executable, __file__, "--case", f"{grid}:{precision}",
                                  "--remat", args.remat, "--steps", str(args.steps)]
                                 + ["--reverse-input"] * args.reverse_input,
                                 capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{grid:>5} {precision:>9} failed: {out.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{grid:>5} {precision:>9} {str(r['remat']):>5} {r['step_s']:8.2f} "
                  f"{r['startup_s']:10.1f} {r['peak_rss_gb']:8.2f}", flush=True)


if __name__ == "__main__":
    main()
