"""Multifield GAN on CPU: training images per second and peak memory, evaluation maps per second.

Training: one MultifieldGAN step (critic with gradient penalty, reconstruction decoders,
generator, EMA) on batches of 3-channel maps, at 64^2 and 256^2 with batch 8 (width 1, the
default model), each case in a fresh process so that its peak resident memory is its own.
Evaluation: the statistics of tfastro.multifield.evaluation (auto and cross P(k), r(k), pixel PDFs
with KS distance) on 3-channel 256^2 maps, real against generated sets of equal size.

    python bench/multifield_gan.py                         # 64 and 256, batch 8, 5 steps
    python bench/multifield_gan.py --resolutions 64 --steps 3 --eval-maps 200
"""
import argparse
import json
import os
import subprocess
import sys
import time

from memory import peak_rss_gb


def train_case(resolution, batch, steps, loss, precision):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    import numpy as np

    from tfastro.multifield.config import MultifieldConfig
    from tfastro.multifield.task import build_gan
    cfg = MultifieldConfig(resolution=resolution, gan_loss=loss, precision=precision)
    began = time.time()
    gan = build_gan(cfg, channels=3)
    rng = np.random.default_rng(0)
    maps = rng.uniform(-1, 1, (batch, resolution, resolution, 3)).astype("float32")
    theta = rng.uniform(-1, 1, (batch, 2)).astype("float32")
    gan.train_on_batch(maps, theta)  # traces the step and runs it once
    startup = time.time() - began
    times = []
    for _ in range(steps):
        t0 = time.time()
        gan.train_on_batch(maps, theta)
        times.append(time.time() - t0)
    step = float(np.median(times))
    return {"resolution": resolution, "batch": batch, "loss": loss, "precision": precision,
            "step_s": step, "images_per_s": batch / step, "startup_s": startup,
            "parameters": int(gan.generator.count_params() + gan.discriminator.count_params()),
            "peak_rss_gb": peak_rss_gb()}


def evaluation_case(n_maps, resolution):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np

    from tfastro.multifield.evaluation import emulator_report
    rng = np.random.default_rng(0)
    real = rng.normal(size=(n_maps, resolution, resolution, 3)).astype("float32")
    generated = rng.normal(size=(n_maps, resolution, resolution, 3)).astype("float32")
    emulator_report(real[:2], generated[:2])  # first call: graph tracing
    t0 = time.time()
    emulator_report(real, generated)
    seconds = time.time() - t0
    return {"maps": 2 * n_maps, "resolution": resolution, "seconds": seconds,
            "maps_per_s": 2 * n_maps / seconds}


def _fresh_process(args):
    out = subprocess.run([sys.executable, __file__] + args, capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resolutions", default="64,256")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--loss", default="wgan-gp", choices=["wgan-gp", "hinge"])
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--eval-maps", type=int, default=500,
                        help="maps per set (real and generated) in the evaluation case")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        kind, *values = args.case.split(":")
        result = (train_case(int(values[0]), args.batch, args.steps, args.loss, args.precision)
                  if kind == "train" else evaluation_case(int(values[0]), int(values[1])))
        print(json.dumps(result))
        return
    common = ["--batch", str(args.batch), "--steps", str(args.steps), "--loss", args.loss,
              "--precision", args.precision]
    print(f"{'resolution':>10} {'batch':>5} {'params':>9} {'s/step':>8} {'images/s':>9} "
          f"{'start-up s':>10} {'peak GB':>8}")
    for resolution in map(int, args.resolutions.split(",")):
        r = _fresh_process(["--case", f"train:{resolution}"] + common)
        if "error" in r:
            print(f"{resolution:>10} failed: {r['error']}")
            continue
        print(f"{resolution:>10} {r['batch']:>5} {r['parameters']:>9} {r['step_s']:8.3f} "
              f"{r['images_per_s']:9.1f} {r['startup_s']:10.1f} {r['peak_rss_gb']:8.2f}",
              flush=True)
    r = _fresh_process(["--case", f"eval:{args.eval_maps}:256"])
    if "error" in r:
        print(f"evaluation failed: {r['error']}")
    else:
        print(f"evaluation (P(k), r(k), PDFs, KS) of {r['maps']} 3-channel 256^2 maps: "
              f"{r['seconds']:.2f} s, {r['maps_per_s']:.0f} maps/s")


if __name__ == "__main__":
    main()
