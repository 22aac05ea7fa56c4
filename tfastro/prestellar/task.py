"""Prestellar cores: the Conv3D column network from PPV cubes to 3D density and velocity.

Data. ``data_dir`` holds the cores written by ``python -m tfastro.synthetic prestellar``
(``prestellar.h5``: PPV cubes, log10 density and v_z cubes, each core's parameters; axis
convention of :mod:`tfastro.prestellar.synthetic`). Cores are split by index: the first 80 per cent
train, the next 10 per cent validate, the rest test. The network's normalisation (PPV divided by
the training cores' largest value, log10 density and v_z standardised with the training cores'
mean and spread) is computed when a model is built and saved in it (ColumnNet's config): a
checkpoint keeps the normalisation it was trained with, maps raw PPV cubes to physical units on
its own, and is evaluated with it whatever ``data_dir`` holds.

Training: :class:`tfastro.prestellar.model.ColumnNet` (``column_width`` filters, ``column_depth``
blocks, ``spectral_kernel``, the global-context path unless ``--nocolumn_context``,
``column_dropout``), MSE over both standardised targets, Adam (lr 1e-3, batch 8 by default),
random sky-plane symmetries of whole cores, early stopping with checkpoints every epoch
(:mod:`tfastro.core.loops`: an interrupted run resumes, a finished one only evaluates).

Evaluation (after training, or ``is_training=False``) of the test cores, written under
``<gen_frm_dir>/<iteration>/``: ``metrics.json`` with per-voxel errors of log density and v_z
(RMSE, MAE, bias, the sign of v_z per voxel and per column) of the network and of the
mean-profile baseline (the training cores' mean cubes), radial profiles and fitted Plummer
radius and slope of truth, prediction and baseline against the generating parameters, and the
calibration of the MC-dropout uncertainty (``mc_samples`` passes); ``prediction.npy`` and
``uncertainty.npy`` ((cores, Nx, Ny, Nz, 2) in physical units: log10 n / n_peak and km/s);
PNGs of the PPV cube, profiles, slices and uncertainty maps. With ``scan_window`` > 0 the
cubes are predicted window by window (equal to one pass, in bounded memory).
"""
import os

import numpy as np

from tfastro.core.atomic import save_npy
from tfastro.core.loops import iteration, write_json
from tfastro.core.errors import UserInputError
from tfastro.prestellar.config import validate_config

SPLIT_FRACTIONS = (0.8, 0.1)  # training, validation; the rest is the test set


CHECKPOINT_FLAGS = ("--column_width, --column_depth, --spectral_kernel, --column_context and "
                    "the cubes' grid and channels")


_ARCHITECTURE = ("n_depth", "n_channels", "width", "depth", "spatial_kernel", "spectral_kernel",
                 "spectral_stride", "context", "context_units", "hidden", "in_channels")






def load_cores(cfg):
    """The :class:`tfastro.prestellar.synthetic.CoreSet` of ``data_dir`` and its split:
    {"train", "validation", "test": core indices}."""
    from tfastro.prestellar.io import read_prestellar
    try:
        cores = read_prestellar(cfg.data_dir)
    except UserInputError as err:
        raise UserInputError(f"--data_dir={cfg.data_dir!r}: {err}; `python -m "
                             "tfastro.synthetic prestellar --out DIR` writes synthetic "
                             "cores") from None
    n = len(cores.params)
    n_train, n_valid = (int(round(f * n)) for f in SPLIT_FRACTIONS)
    if n_train < 1 or n_valid < 1 or n - n_train - n_valid < 1:
        raise UserInputError(f"--data_dir={cfg.data_dir!r}: {n} core(s); the 80/10/10 split "
                             "needs at least 10")
    index = np.arange(n)
    return cores, {"train": index[:n_train], "validation": index[n_train:n_train + n_valid],
                   "test": index[n_train + n_valid:]}


def build_model(cfg, cores, train):
    """The compiled ColumnNet for the cubes of ``cores``, normalised by the ``train`` cores (in
    the precision of --mixed_precision; under mixed_float16 Keras wraps Adam in a
    LossScaleOptimizer)."""
    import keras

    from tfastro.core.precision import policy_name, precision_policy
    from tfastro.prestellar.model import ColumnNet, training_normalisation
    n = cores.log_density.shape[-1]
    with precision_policy(policy_name(cfg.mixed_precision)):
        model = ColumnNet(n, cores.ppv.shape[-1], width=cfg.column_width, depth=cfg.column_depth,
                          spectral_kernel=cfg.spectral_kernel, context=cfg.column_context,
                          dropout=cfg.column_dropout, seed=cfg.seed,
                          **training_normalisation(cores.ppv[train], cores.targets[train]))
    model.compile(optimizer=keras.optimizers.Adam(cfg.lr), loss="mse", jit_compile=cfg.jit_compile)
    model.build((None,) + cores.ppv.shape[1:] + (1,))
    model.optimizer.build(model.trainable_variables)
    return model


def architecture(model):
    """What a ColumnNet checkpoint must share with the flags to be used."""
    config = model.get_config()
    return type(model).__name__, {k: config.get(k) for k in _ARCHITECTURE}


def predict(cfg, model, ppv):
    """One-pass (or, with ``scan_window``, windowed) predictions of raw PPV cubes ``ppv``
    ``(B, Nx, Ny, Nv, 1)``, in physical units."""
    from tfastro.prestellar.model import scan_predict
    if not cfg.scan_window:
        return np.asarray(model.predict(ppv, batch_size=cfg.batch_size, verbose=0))
    try:
        return np.stack([scan_predict(model, cube, cfg.scan_window) for cube in ppv])
    except ValueError as err:
        raise UserInputError(f"--scan_window={cfg.scan_window}: {err}") from None


def evaluate(cfg, model, cores, split, log):
    """Score the test cores against the truth and the mean-profile baseline; write the outputs
    of the module docstring. Returns the metrics."""
    from tfastro.core.checkpoints import results_dir
    from tfastro.prestellar import evaluation as scores
    from tfastro.prestellar import figures as viz
    from tfastro.prestellar.model import mc_dropout_predict
    test = split["test"]
    ppv, truth = np.asarray(cores.ppv[test], np.float32)[..., None], cores.targets[test]
    params = [cores.params[i] for i in test]
    predicted = predict(cfg, model, ppv)
    mc_mean, mc_std = mc_dropout_predict(model, ppv, cfg.mc_samples, seed=cfg.seed)
    baseline = scores.mean_baseline(cores.targets[split["train"]])
    threshold = cores.channel_width  # |v_z| below one channel counts as at rest
    metrics = {
        "iteration": iteration(model), "test_cores": int(len(test)),
        "network": scores.voxel_errors(predicted, truth, threshold),
        "mean_profile_baseline": scores.voxel_errors(baseline, truth, threshold),
        "profiles": scores.profile_scores(predicted[..., 0], truth[..., 0], params,
                                          baseline=baseline[..., 0]),
        "mc_dropout": {"samples": cfg.mc_samples,
                       **scores.calibration(mc_mean, mc_std, truth)},
        "units": {"log_density": "log10(n / n_peak)", "v_z": "km/s",
                  "v_sign_threshold": "one channel width"},
        "prediction": "windowed" if cfg.scan_window else "one pass"}
    out = results_dir(cfg.gen_frm_dir, iteration(model))
    write_json(out, "metrics.json", metrics)
    save_npy(os.path.join(out, "prediction.npy"), predicted)
    save_npy(os.path.join(out, "uncertainty.npy"), mc_std)
    viz.plot_ppv(cores.ppv[test[0]], cores.velocities, path=os.path.join(out, "ppv.png"))
    profiles = metrics["profiles"]
    fits = {name: (profiles[name]["a"][0], profiles[name]["p"][0], profiles[name]["log10_peak"][0])
            for name in ("truth", "prediction", "baseline") if profiles[name]["a"][0] is not None}
    viz.plot_profiles(profiles["r"][0], profiles["truth"]["profile"][0],
                      profiles["prediction"]["profile"][0], fits,
                      profiles["baseline"]["profile"][0],
                      (profiles["true_a"][0], profiles["true_p"][0]),
                      path=os.path.join(out, "profiles.png"))
    viz.plot_slices(truth[0], predicted[0], path=os.path.join(out, "slices.png"))
    viz.plot_uncertainty(mc_std[0], mc_mean[0] - truth[0], path=os.path.join(out, "uncertainty.png"))
    net, base = metrics["network"], metrics["mean_profile_baseline"]
    log(f"test cores: {len(test)}; log density RMSE {net['log_density']['rmse']:.3f} (mean "
        f"profile {base['log_density']['rmse']:.3f}); v_z RMSE {net['v_z']['rmse']:.3f} km/s "
        f"(mean {base['v_z']['rmse']:.3f}); sign of v_z right in "
        f"{100 * net['v_sign']['voxel_accuracy']:.1f}% of moving voxels")
    log(f"evaluation written to {out}")
    return metrics


def train(cfg, log=print):
    """Train (resuming from save_dir) with early stopping, then evaluate the test cores."""
    from tfastro.core.checkpoints import worker_strategy
    from tfastro.core.distribute import even_global_batch, shard_by_data
    from tfastro.core.loops import train_epochs
    from tfastro.prestellar.pipeline import core_dataset
    validate_config(cfg)
    strategy, cfg = worker_strategy(cfg)
    cores, split = load_cores(cfg)
    data = {s: (cores.ppv[i], cores.targets[i]) for s, i in split.items() if s != "test"}
    log(f"column: {len(split['train'])} training, {len(split['validation'])} validation, "
        f"{len(split['test'])} test cores of {cores.ppv.shape[1:]} PPV; "
        f"{strategy.num_replicas_in_sync} replica(s)")
    batch = {s: even_global_batch(len(split[s]), cfg.batch_size, strategy, f"{s} cores")
             for s in ("train", "validation")}
    model = train_epochs(
        cfg, strategy, lambda: build_model(cfg, cores, split["train"]), CHECKPOINT_FLAGS,
        lambda seed: shard_by_data(core_dataset(*data["train"], batch["train"], seed=seed,
                                                augment=True)),
        shard_by_data(core_dataset(*data["validation"], batch["validation"], shuffle=False)),
        log, signature=architecture)
    return model, evaluate(cfg, model, cores, split, log)


def test(cfg, log=print):
    """Evaluate a checkpoint (--pretrained_model or the newest in save_dir) on the test cores."""
    from tfastro.core.distribute import use_gpus
    from tfastro.core.loops import evaluation_model
    validate_config(cfg)
    use_gpus(cfg.n_gpu)  # evaluation runs in one process, on the first --n_gpu GPUs
    cores, split = load_cores(cfg)
    model = evaluation_model(cfg, build_model(cfg, cores, split["train"]), CHECKPOINT_FLAGS, log,
                             signature=architecture)
    return evaluate(cfg, model, cores, split, log)


def run(cfg, log=print):
    return train(cfg, log)[1] if cfg.is_training else test(cfg, log)
