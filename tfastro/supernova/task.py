"""3D-MIM supernova-shell forecasting: data + model + training + forecasting + scores.

Mirrors the original run.py: train up to ``max_iterations`` (printing the loss every
``display_interval``, writing a checkpoint every ``snapshot_interval``, forecasting the
validation clips every ``test_interval``), or, with ``is_training=False``, only forecast and
score. Differences from the original: a run resumes from the newest checkpoint in
``save_dir`` (nothing is deleted unless ``fresh_start``), every validation batch is scored,
3D SSIM and shell metrics are computed, pictures cut through the middle of the real grid.

Outputs of one forecast, under ``<gen_frm_dir>/<iteration>/``: ``metrics.json`` (per predicted
frame MSE, MAE, PSNR, SSIM, shell IoU, shell radius error) and, for the first
``num_save_samples`` clips, ``<k>/gt.npy`` (whole clip, (T, X, Y, Z, C)), ``<k>/pd.npy``
(forecast of the output frames), with a data file that states its normalisation
``<k>/pd_density.npy`` (the forecast as physical density), ``<k>/gt<i>.png``,
``<k>/pd<i>.png`` and ``<k>/forecast.gif``. ``metrics.json`` also holds the baselines' scores
(``baselines``: persistence, Sedov-Taylor).

``--model_name unet`` trains and scores the 3D U-Net the same way, into the same outputs
(:func:`train_unet`, :func:`test_unet`).
"""
import os

import numpy as np

from tfastro.core.atomic import save_npy, write_json
from tfastro.core.errors import UserInputError
from tfastro.supernova.config import validate_config

MEMORY_FRACTION_FOR_ACTIVATIONS = 0.25






def load_clips(cfg, flag):
    """Read and check the data of ``flag`` ('train_data_paths' or 'valid_data_paths')."""
    from tfastro.supernova.io import Normalisation, check_sn_config, load_sn_npz
    paths = getattr(cfg, flag)
    if not paths:
        raise UserInputError(f"--{flag}: no data file given")
    try:
        data = load_sn_npz(paths)
    except UserInputError as err:
        raise UserInputError(f"--{flag}: {err}") from None
    x, y, z = cfg.grid
    check_sn_config(data, total_length=cfg.total_length, width=x, height=y, depth=z,
                    channels=cfg.img_channel)
    stored = data.normalisation()
    if stored.kind != cfg.normalisation:
        raise UserInputError(f"--normalisation={cfg.normalisation} does not match --{flag}="
                             f"{paths}: its frames are {stored.kind}-normalised"
                             + (" (it states none: the original's max-scaling)"
                                if stored == Normalisation() else ""))
    return data


def activation_bytes(cfg):
    """Rough memory (bytes) of the activations one training pass keeps without remat.

    About 100 stored values per hidden value per layer and step (gates, norms, states),
    calibrated on the original's 4.06 GB for run.sh's configuration at 16^3.
    """
    x, y, z = cfg.grid
    bytes_per_value = 4 if cfg.policy == "float32" else 2
    return (100 * bytes_per_value * cfg.batch_size * x * y * z * cfg.hidden[0]
            * (cfg.total_length - 1) * len(cfg.hidden))


def use_remat(cfg):
    if cfg.remat != "auto":
        return cfg.remat == "true"
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return activation_bytes(cfg) > MEMORY_FRACTION_FOR_ACTIVATIONS * physical


def build_model(cfg, normalisation=None):
    """A compiled, built MIM3D (and built optimizer) for ``cfg``, learning frames of
    ``normalisation`` (a :class:`tfastro.supernova.io.Normalisation`; default max-scaling)."""
    from tfastro.supernova.model import MIM3D
    from tfastro.supernova.optimizers import MIMAdam
    model = MIM3D(num_hidden=cfg.hidden, filter_size=cfg.filter_size, patch_size=cfg.patch_size,
                  input_length=cfg.input_length, total_length=cfg.total_length,
                  layer_norm=cfg.layer_norm, peephole=cfg.peephole, remat=use_remat(cfg),
                  reverse_input=cfg.reverse_input, reverse_img=cfg.reverse_img,
                  scheduled_sampling=cfg.scheduled_sampling,
                  sampling_start_value=cfg.sampling_start_value,
                  sampling_changing_rate=cfg.sampling_changing_rate,
                  sampling_stop_iter=cfg.sampling_stop_iter, seed=cfg.seed,
                  normalisation=normalisation and normalisation.model_config(),
                  dtype=None if cfg.policy == "float32" else cfg.policy)
    # under mixed_float16 Keras wraps MIMAdam in a LossScaleOptimizer; train_step scales the loss
    model.compile(optimizer=MIMAdam(cfg.lr), jit_compile=cfg.jit_compile)
    model.build((None, cfg.total_length) + cfg.grid + (cfg.img_channel,))
    model.optimizer.build(model.trainable_variables)
    return model


ARCHITECTURE = ("num_hidden", "filter_size", "patch_size", "layer_norm", "peephole")


def training_clips(cfg, strategy):
    """(global batch, training data, validation data, the normalisation they share) of a
    training run; the training data must fill a global batch."""
    from tfastro.core.distribute import global_batch
    batch = global_batch(cfg.batch_size, strategy)
    train_data = load_clips(cfg, "train_data_paths")
    valid_data = load_clips(cfg, "valid_data_paths")
    if train_data.num_clips < batch:
        raise UserInputError(f"--batch_size={cfg.batch_size} x {strategy.num_replicas_in_sync} "
                             f"replica(s): the training data {cfg.train_data_paths!r} holds only "
                             f"{train_data.num_clips} clips")
    normalisation = train_data.normalisation()
    if valid_data.normalisation().model_config() != normalisation.model_config():
        raise UserInputError(f"--valid_data_paths={cfg.valid_data_paths}: normalised as "
                             f"{valid_data.normalisation().model_config()}, the training data "
                             f"as {normalisation.model_config()}")
    return batch, train_data, valid_data, normalisation


def restore(model, path, frame_shape, flag="--pretrained_model"):
    """Load weights, optimizer state and counters of checkpoint ``path`` into ``model``,
    after checking it was written for the same architecture, channels and (with per-voxel
    peepholes) grid; ``frame_shape`` is (X, Y, Z, C) of the current run."""
    def grid_and_channels(shape):
        compared = slice(2, None) if model.peephole == "voxel" else slice(-1, None)
        if list(shape[compared]) != list(((None, None) + tuple(frame_shape))[compared]):
            return f"grid and channels: checkpoint {shape[2:]}, flags {list(frame_shape)}"

    return restore_checked(model, path, flag, ARCHITECTURE + ("normalisation",),
                           grid_and_channels)


def restore_checked(model, path, flag, keys, shape_difference):
    """Load checkpoint ``path`` into ``model`` after checking that its config agrees on
    ``keys`` (a checkpoint without a normalisation counts as max-scaled) and that
    ``shape_difference(input shape)`` finds none (None, or a phrase naming the difference);
    otherwise UserInputError naming ``flag`` and every difference. Returns ``path``."""
    from tfastro.core.checkpoints import read_checkpoint_config
    stored, shape = read_checkpoint_config(path, flag)
    mine = model.get_config()
    stored = {"normalisation": {"kind": "max"}, **stored}  # checkpoints of before it was kept
    differ = [f"{k}: checkpoint {stored.get(k)!r}, flags {mine[k]!r}"
              for k in keys if stored.get(k) != mine[k]]
    shape_differs = shape is not None and shape_difference(shape)
    if shape_differs:
        differ.append(shape_differs)
    if differ:
        raise UserInputError(f"{flag}: checkpoint {path!r} has another configuration ("
                             + "; ".join(differ) + ")")
    model.load_weights(path)
    return path


def trained_iterations(model):
    """Training iterations of a 3D-MIM (its iteration counter) or a U-Net (optimizer steps)."""
    counter = getattr(model, "iteration", None)
    return int((model.optimizer.iterations if counter is None else counter).numpy())


def forecast_and_score(model, data, cfg, out_dir, log=print):
    """Forecast every validation clip from its context (3D-MIM: with the EMA weights); score
    it, and the baselines (persistence, Sedov-Taylor rescaling) beside it; save."""
    from tfastro.supernova.baselines import BASELINES
    from tfastro.supernova.evaluation import ForecastScores, explosion_centre
    from tfastro.supernova.figures import save_cross_sections, save_forecast_gif
    from tfastro.supernova.pipeline import sn_dataset

    n_in, n_out = cfg.input_length, cfg.total_length - cfg.input_length
    scores = ForecastScores(n_out)
    baselines = {b.name: (b, ForecastScores(n_out)) for b in BASELINES}
    saved = 0
    dataset = sn_dataset(data, cfg.total_length, cfg.batch_size, shuffle=False)
    for batch in dataset:
        clips = batch.numpy()
        pred = model.forecast(clips[:, :n_in], n_out)
        # the explosion centre of each clip, from its first frames after frame 0
        centres = [explosion_centre(clip.sum(axis=-1)) for clip in clips]
        scores.update(clips[:, n_in:], pred, clips[:, 0], centre=centres)
        for baseline, baseline_scores in baselines.values():
            baseline_scores.update(clips[:, n_in:], baseline.forecast(clips[:, :n_in], n_out),
                                   clips[:, 0], centre=centres)
        for clip, forecast in zip(clips, pred):
            if saved >= cfg.num_save_samples:
                break
            saved += 1
            sample_dir = os.path.join(out_dir, str(saved))
            os.makedirs(sample_dir, exist_ok=True)
            save_npy(os.path.join(sample_dir, "gt.npy"), clip)
            save_npy(os.path.join(sample_dir, "pd.npy"), forecast)
            normalisation = data.normalisation(saved - 1)
            if normalisation.invertible:
                save_npy(os.path.join(sample_dir, "pd_density.npy"),
                         normalisation.density(forecast))
            save_cross_sections(clip, forecast, sample_dir)
            save_forecast_gif(clip[n_in:], np.clip(forecast, 0, 1),
                              os.path.join(sample_dir, "forecast.gif"))
    result = scores.result()
    result["iteration"] = trained_iterations(model)
    result["baselines"] = {name: s.result() for name, (_, s) in baselines.items()}
    write_json(os.path.join(out_dir, "metrics.json"), result)
    log(scores.format_table())
    for name, (_, baseline_scores) in baselines.items():
        log(f"baseline {name}: mean mse {baseline_scores.result()['mean']['mse']:.4g}, "
            f"shell iou {baseline_scores.result()['mean']['shell_iou']:.4f}")
    log(f"forecasts and scores written to {out_dir}")
    return result


def load_particles(cfg):
    """The two snapshots of --particle_files (GasParticles), or None without it."""
    if not cfg.particle_files:
        return None
    from tfastro.supernova.particles import read_snapshot
    try:
        return tuple(read_snapshot(p.strip()) for p in cfg.particle_files.split(","))
    except UserInputError as err:
        raise UserInputError(f"--particle_files: {err}") from None


def score_particles(model, clip, snapshots, cfg, out_dir, log=print):
    """Flag the gas of ``snapshots[0]`` that the forecast of ``clip`` says is affected by frame
    --particle_frame, score against ``snapshots[1]``; writes ``particles.json`` (scores) and
    ``affected_particles.npy`` (bool per particle of the first snapshot); returns the scores."""
    from tfastro.supernova.evaluation import affected_particles
    n_in = cfg.input_length
    forecast = np.asarray(model.forecast(clip[None, :n_in], cfg.total_length - n_in))[0]
    frame = np.clip(forecast[cfg.particle_frame_index - n_in], 0.0, 1.0).sum(axis=-1)
    flags, scores = affected_particles(frame, snapshots[0], before=clip[0].sum(axis=-1),
                                       size=cfg.particle_cube_size or None,
                                       centre=cfg.particle_cube_centre, later=snapshots[1])
    scores.update(snapshots=[s.path for s in snapshots], frame=cfg.particle_frame_index)
    save_npy(os.path.join(out_dir, "affected_particles.npy"), flags)
    write_json(os.path.join(out_dir, "particles.json"), scores)
    log(f"particles flagged as affected by frame {scores['frame']}: {scores['flagged']} of "
        f"{scores['particles']}; recall {scores['recall']}, precision {scores['precision']}")
    return scores


def configure_tensorflow(cfg):
    """Process-wide TensorFlow settings for a 3D-MIM run (call before building the model).

    - GPU memory growth when ``allow_gpu_growth``;
    - Grappler graph optimisation off: it spent ~20 s of start-up on the 3D-MIM training
      graph (~57,000 nodes with the steps unrolled; ~21,000 with the step loop) without
      making a step faster (bench/mim3d_step.py; the step is dominated by convolutions);
    - with rematerialisation (a run limited by memory), freed tensors return their memory
      to the operating system (:func:`tfastro.core.host_memory.return_freed_tensors_to_os`).
    """
    if use_remat(cfg):
        from tfastro.core.host_memory import return_freed_tensors_to_os
        return_freed_tensors_to_os()
    import tensorflow as tf
    if cfg.allow_gpu_growth:
        from tfastro.core.distribute import allow_gpu_memory_growth
        allow_gpu_memory_growth()
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})


def train(cfg, log=print):
    """Train (resuming from save_dir), snapshot and forecast at the configured intervals."""
    from tfastro.core.checkpoints import worker_strategy
    from tfastro.core.distribute import shard_by_data
    from tfastro.core.loops import train_iterations
    from tfastro.supernova.pipeline import sn_dataset

    validate_config(cfg)
    configure_tensorflow(cfg)
    strategy, cfg = worker_strategy(cfg)
    batch, train_data, valid_data, normalisation = training_clips(cfg, strategy)

    def describe(model, start):
        return (f"iteration {start}, sampling eta {float(model.sampling_eta.numpy()):.6f}, "
                f"remat {model.remat}, precision {cfg.policy}, "
                f"{strategy.num_replicas_in_sync} replica(s)")

    def dataset(start):
        return shard_by_data(sn_dataset(train_data, cfg.total_length, batch, shuffle=True,
                                        seed=cfg.seed, repeat=True, drop_remainder=True,
                                        start_batch=start))

    return train_iterations(
        cfg, strategy, lambda: build_model(cfg, normalisation),
        lambda model, path, flag: restore(model, path, cfg.grid + (cfg.img_channel,), flag),
        dataset, describe,
        display=lambda logs, steps: f"\ntraining loss: {float(logs['iteration_loss'])}",
        iterations_of=lambda model: int(model.iteration.numpy()),
        test=lambda model, out_dir: forecast_and_score(model, valid_data, cfg, out_dir, log),
        log=log)


def test(cfg, log=print):
    """Forecast and score the validation data with a checkpoint (--pretrained_model or the
    newest in save_dir); returns the scores."""
    from tfastro.core.checkpoints import evaluation_checkpoint, results_dir
    from tfastro.core.distribute import use_gpus

    validate_config(cfg)
    use_gpus(cfg.n_gpu)  # evaluation runs in one process, on the first --n_gpu GPUs
    path, flag = evaluation_checkpoint(cfg.save_dir, cfg.pretrained_model)
    valid_data = load_clips(cfg, "valid_data_paths")
    snapshots = load_particles(cfg)
    configure_tensorflow(cfg)
    model = build_model(cfg, valid_data.normalisation())
    restore(model, path, cfg.grid + (cfg.img_channel,), flag)
    log(f"forecasting with {path} (iteration {int(model.iteration.numpy())})")
    out_dir = results_dir(cfg.gen_frm_dir, int(model.iteration.numpy()))
    result = forecast_and_score(model, valid_data, cfg, out_dir, log)
    if snapshots:
        result["particles"] = score_particles(model, valid_data.clip(0, cfg.total_length),
                                              snapshots, cfg, out_dir, log)
    return result


# --- the 3D U-Net (run.py --model_name unet) ------------------------------------------------

UNET_ARCHITECTURE = ("input_length", "horizon", "filters", "kernel_size", "padding", "log_input",
                     "normalisation")


def training_pairs(clips, input_length, horizon):
    """Every (context, target) pair of a batch of clips, as tf.data maps it (TensorFlow).

    clips: (B, T, X, Y, Z, C) with T >= input_length + horizon.
    Returns (context (W B, input_length, X, Y, Z, C), target (W B, horizon, X, Y, Z, C)) for
    the W = T - input_length - horizon + 1 starts of a context in a clip, start-major.
    """
    import tensorflow as tf
    windows = clips.shape[1] - input_length - horizon + 1
    if windows < 1:
        raise UserInputError(f"clips of {clips.shape[1]} frames hold no context of "
                             f"{input_length} frames followed by {horizon}")
    stack = tf.concat([clips[:, s:s + input_length + horizon] for s in range(windows)], axis=0)
    return stack[:, :input_length], stack[:, input_length:]


def build_unet(cfg, normalisation=None):
    """A compiled, built UNet3D (and built Adam) for ``cfg`` and the data's ``normalisation``
    (a :class:`tfastro.supernova.io.Normalisation`; default max-scaling)."""
    import keras

    from tfastro.supernova.unet import UNet3D
    model = UNet3D(input_length=cfg.input_length, horizon=cfg.frames_per_call,
                   filters=cfg.levels, kernel_size=cfg.filter_size, padding=cfg.padding,
                   log_input=cfg.log_input, dtype=None if cfg.policy == "float32" else cfg.policy,
                   normalisation=normalisation and normalisation.model_config())
    model.compile(optimizer=keras.optimizers.Adam(cfg.lr), jit_compile=cfg.jit_compile)
    model.build((None, cfg.input_length) + cfg.grid + (cfg.img_channel,))
    model.optimizer.build(model.trainable_variables)
    return model


def restore_unet(model, path, channels, flag="--pretrained_model"):
    """Load weights and optimizer state of checkpoint ``path`` into the U-Net ``model`` after
    checking it was written for the same architecture and ``channels``."""
    def channels_differ(shape):
        if shape[-1] != channels:
            return f"channels: checkpoint {shape[-1]}, flags {channels}"

    return restore_checked(model, path, flag, UNET_ARCHITECTURE, channels_differ)


def train_unet(cfg, log=print):
    """Train the U-Net (resuming from save_dir), snapshot and forecast at the intervals; each
    iteration fits every context-target pair of a batch of clips."""
    from tfastro.core.checkpoints import worker_strategy
    from tfastro.core.distribute import allow_gpu_memory_growth, shard_by_data
    from tfastro.core.loops import train_iterations
    from tfastro.supernova.pipeline import sn_dataset

    validate_config(cfg)
    if cfg.allow_gpu_growth:
        allow_gpu_memory_growth()
    strategy, cfg = worker_strategy(cfg)
    batch, train_data, valid_data, normalisation = training_clips(cfg, strategy)

    def dataset(start):
        clips = sn_dataset(train_data, cfg.total_length, batch, shuffle=True, seed=cfg.seed,
                           repeat=True, drop_remainder=True, start_batch=start)
        return shard_by_data(clips.map(lambda c: training_pairs(c, cfg.input_length,
                                                                cfg.frames_per_call)))

    return train_iterations(
        cfg, strategy, lambda: build_unet(cfg, normalisation),
        lambda model, path, flag: restore_unet(model, path, cfg.img_channel, flag),
        dataset, lambda model, start: (f"iteration {start}, U-Net {cfg.levels}, "
                                       f"{cfg.frames_per_call} frame(s) a call, precision "
                                       f"{cfg.policy}, {strategy.num_replicas_in_sync} "
                                       f"replica(s)"),
        display=lambda logs, steps: f"\ntraining loss: {float(logs['loss'])}",
        test=lambda model, out_dir: forecast_and_score(model, valid_data, cfg, out_dir, log),
        log=log)


def test_unet(cfg, log=print):
    """Forecast and score the validation data with a U-Net checkpoint (--pretrained_model or
    the newest in save_dir); returns the scores."""
    from tfastro.core.checkpoints import evaluation_checkpoint, results_dir
    from tfastro.core.distribute import use_gpus

    validate_config(cfg)
    use_gpus(cfg.n_gpu)
    path, flag = evaluation_checkpoint(cfg.save_dir, cfg.pretrained_model)
    valid_data = load_clips(cfg, "valid_data_paths")
    model = build_unet(cfg, valid_data.normalisation())
    restore_unet(model, path, cfg.img_channel, flag)
    log(f"forecasting with {path} (iteration {trained_iterations(model)})")
    return forecast_and_score(model, valid_data, cfg,
                              results_dir(cfg.gen_frm_dir, trained_iterations(model)), log)


def run(cfg, log=print):
    if cfg.model_name == "unet":
        return train_unet(cfg, log) if cfg.is_training else test_unet(cfg, log)
    return train(cfg, log) if cfg.is_training else test(cfg, log)
