"""Which supernova forecaster to use: 3D-MIM and the 3D U-Net (one shot and rolled out) trained
for the same CPU time on synthetic turbulent-medium clips, with persistence and the
Sedov-Taylor rescaling beside them, scored on held-out turbulent clips and on uniform-medium
clips none of them saw.

    python bench/sn_forecast.py --quick          # 16^3 clips, 45 s of training a model
    python bench/sn_forecast.py                  # 32^3 clips, 10 minutes a model

Data: ``tfastro.supernova.synthetic`` blasts (turbulent: lognormal clouds, sigma 1; uniform:
the analytic Sedov-Taylor blast), all sets normalised by the largest density of the training
set (clipped to [0, 1]), so the unseen uniform medium is in the units the models learnt.
Training: batches of 4 clips (the U-Nets: every context-target pair of them), 3D-MIM with
MIMAdam at its default lr 1e-3, the U-Nets (log input) with Adam at lr 3e-3, for the budget
of seconds after the first step (which traces the program; its time is printed). 3D-MIM
trains without scheduled sampling or reversed clips (what it forecasts is what it trains on,
and a step costs one pass).

Table, per model and test set: MSE (mean over voxels) and SSIM of the last frame; shell IoU
(mean over forecast frames); shell radius (``baselines.measured_radius``, as the library
measures it: the sector mean of the excess-density-weighted radius about the periodic
explosion centre) error against the truth in voxels and per cent, and against
Sedov-Taylor, R_ST(t) = R_true(t_last context) (t / t_last context)^(2/5), in per cent;
trainable parameters; seconds per training step (steps taken); forecast latency of the clip's
output frames at 32^3 on this machine, batch 1 and batch 8 (seconds per call).
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tfastro.supernova.baselines import (Persistence, SedovTaylorRescaling,  # noqa: E402
                                         measured_radius)
from tfastro.supernova.evaluation import ForecastScores  # noqa: E402
from tfastro.supernova.model import MIM3D  # noqa: E402
from tfastro.supernova.optimizers import MIMAdam  # noqa: E402
from tfastro.supernova.synthetic import normalise_density, sn_density_clips  # noqa: E402
from tfastro.supernova.task import training_pairs  # noqa: E402
from tfastro.supernova.unet import UNet3D  # noqa: E402

SETTINGS = {
    "quick": dict(size=16, length=12, input_length=4, train_clips=16, test_clips=4,
                  budget=45.0),
    "full": dict(size=32, length=20, input_length=10, train_clips=48, test_clips=8,
                 budget=600.0),
}
BATCH = 4
LATENCY_GRID = 32


def clips_of(density, n_clips, length, scale):
    """(n_clips, T, X, Y, Z, 1) float32 in [0, 1]: densities / ``scale``, clipped."""
    frames = np.clip(density / scale, 0.0, 1.0).astype(np.float32)
    return frames.reshape((n_clips, length) + frames.shape[1:] + (1,))


def make_sets(s, seed):
    """Training, held-out turbulent and uniform clips (see the module docstring)."""
    train_density = sn_density_clips(s["train_clips"], s["length"], s["size"], seed=seed)
    _, scale = normalise_density(train_density)
    sets = {"train": clips_of(train_density, s["train_clips"], s["length"], scale)}
    for medium, n, offset in (("turbulent", s["test_clips"], 1), ("uniform", 2, 2)):
        density = sn_density_clips(n, s["length"], s["size"], medium=medium, seed=seed + offset)
        sets[medium] = clips_of(density, n, s["length"], scale)
    return sets


def forecasters(s):
    """name -> (factory(input_length, total_length) of a compiled model, its training batch
    from a batch of clips)."""
    n_in, n_out = s["input_length"], s["length"] - s["input_length"]

    def mim():
        model = MIM3D(num_hidden=(16, 16, 16), filter_size=3, patch_size=2, input_length=n_in,
                      total_length=s["length"], peephole="channel", reverse_input=False,
                      scheduled_sampling=False, seed=0)
        model.compile(optimizer=MIMAdam(1e-3))
        return model

    def unet(horizon):
        def make():
            model = UNet3D(input_length=n_in, horizon=horizon, filters=(16, 32, 64))
            model.compile(optimizer=keras.optimizers.Adam(3e-3))
            return model
        return make

    def pairs(horizon):
        return lambda clips: tuple(np.asarray(a) for a in training_pairs(clips, n_in, horizon))

    return {"mim": (mim, lambda clips: (clips,)),
            "unet": (unet(n_out), pairs(n_out)),
            "unet_rollout": (unet(1), pairs(1))}


def train(model, batch_of, clips, budget, rng):
    """Train on random batches of ``clips`` until ``budget`` seconds have passed after the
    first step (which traces the program); returns (steps after the first, seconds per step,
    seconds of the first step)."""
    began = time.time()
    model.train_on_batch(*batch_of(clips[:BATCH]))
    first = time.time() - began
    began, steps = time.time(), 0
    while time.time() - began < budget:
        picked = clips[rng.choice(len(clips), BATCH, replace=False)]
        model.train_on_batch(*batch_of(picked))
        steps += 1
    return steps, (time.time() - began) / steps, first


def forecast_all(forecaster, clips, n_in):
    """``forecaster``'s forecasts of the frames after the first ``n_in`` of every clip."""
    n_out = clips.shape[1] - n_in
    return np.concatenate([forecaster.forecast(clips[i:i + BATCH, :n_in], n_out)
                           for i in range(0, len(clips), BATCH)])


def score(pred, clips, n_in):
    """The table's scores of forecasts ``pred`` of ``clips`` (see the module docstring)."""
    n_out = clips.shape[1] - n_in
    scores = ForecastScores(n_out)
    scores.update(clips[:, n_in:], pred, clips[:, 0])
    result = scores.result()
    truth_errors, st_errors, relative = [], [], []
    for clip, forecast in zip(clips, np.clip(pred, 0.0, 1.0)):
        initial = clip[0, ..., 0]
        r_last = measured_radius(clip[n_in - 1, ..., 0], initial)
        for j in range(n_out):
            r_pred = measured_radius(forecast[j, ..., 0], initial)
            r_true = measured_radius(clip[n_in + j, ..., 0], initial)
            r_st = r_last * ((n_in + j) / (n_in - 1)) ** 0.4
            truth_errors.append(abs(r_pred - r_true))
            relative.append(abs(r_pred - r_true) / r_true)
            st_errors.append(abs(r_pred - r_st) / r_st)
    voxels = np.prod(clips.shape[2:])
    return {"mse": result["per_frame"]["mse"][-1] / voxels, "ssim": result["per_frame"]["ssim"][-1],
            "iou": result["mean"]["shell_iou"], "dr": np.nanmean(truth_errors),
            "dr_pct": 100 * np.nanmean(relative), "dst_pct": 100 * np.nanmean(st_errors)}


def latency(forecaster, n_in, n_out, batch, rng, repeats=3):
    """Median seconds of forecasting ``n_out`` frames of ``batch`` 32^3 clips."""
    context = rng.uniform(size=(batch, n_in) + (LATENCY_GRID,) * 3 + (1,)).astype(np.float32)
    context[:, 0] = 0.02  # a blast-free first frame, so the Sedov-Taylor region is defined
    forecaster.forecast(context, n_out)  # traces the program
    times = []
    for _ in range(repeats):
        began = time.time()
        forecaster.forecast(context, n_out)
        times.append(time.time() - began)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="16^3 clips, 45 s a model")
    parser.add_argument("--budget", type=float, help="seconds of training a model")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    s = dict(SETTINGS["quick" if args.quick else "full"])
    if args.budget:
        s["budget"] = args.budget
    n_in, n_out = s["input_length"], s["length"] - s["input_length"]
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    sets = make_sets(s, args.seed)
    print(f"{keras.backend.backend()} backend, {os.cpu_count()} CPU(s); {s['size']}^3 clips of "
          f"{s['length']} frames ({n_in} context); {s['train_clips']} training clips, "
          f"{len(sets['turbulent'])} held-out turbulent, {len(sets['uniform'])} uniform; "
          f"{s['budget']:.0f} s of training a model", flush=True)

    rows = []
    for name, (factory, batch_of) in forecasters(s).items():
        model = factory()
        steps, step_s, first = train(model, batch_of, sets["train"], s["budget"], rng)
        timing = factory()  # the same network at 32^3 (weights do not change the cost)
        lat = [latency(timing, n_in, n_out, b, rng) for b in (1, 8)]
        params = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        rows.append((name, model, params, f"{step_s:.3f} ({steps})", lat))
        print(f"trained {name}: first step (tracing) {first:.1f} s, then {steps} steps, "
              f"{step_s:.3f} s a step", flush=True)
    for baseline in (Persistence(), SedovTaylorRescaling()):
        lat = [latency(baseline, n_in, n_out, b, rng) for b in (1, 8)]
        rows.append((baseline.name, baseline, 0, "-", lat))
    rows.append(("truth", None, 0, "-", None))  # the floor of the radius measurement

    header = (f"{'test set':<10} {'model':<13} {'MSE last':>9} {'SSIM last':>9} {'IoU':>6} "
              f"{'dR vox':>7} {'dR %':>6} {'dR_ST %':>7} {'params':>7} {'s/step (steps)':>15} "
              f"{'lat b1 s':>8} {'lat b8 s':>8}")
    print("\n" + header + "\n" + "-" * len(header))
    for medium in ("turbulent", "uniform"):
        for name, forecaster, params, step, lat in rows:
            clips = sets[medium]
            pred = clips[:, n_in:] if forecaster is None else forecast_all(forecaster, clips, n_in)
            r = score(pred, clips, n_in)
            lat_text = "-" if lat is None else f"{lat[0]:>8.3f} {lat[1]:>8.3f}"
            print(f"{medium:<10} {name:<13} {r['mse']:>9.2e} {r['ssim']:>9.4f} {r['iou']:>6.3f} "
                  f"{r['dr']:>7.3f} {r['dr_pct']:>6.2f} {r['dst_pct']:>7.2f} {params:>7} "
                  f"{step:>15} {lat_text}")


if __name__ == "__main__":
    main()
