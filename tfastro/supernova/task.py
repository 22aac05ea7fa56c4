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
(forecast of the output frames), ``<k>/gt<i>.png``, ``<k>/pd<i>.png`` and ``<k>/forecast.gif``.
"""
import os

import numpy as np

from tfastro.core.atomic import write_json
from tfastro.core.errors import UserInputError
from tfastro.supernova.config import validate_config

MEMORY_FRACTION_FOR_ACTIVATIONS = 0.25






def load_clips(cfg, flag):
    """Read and check the data of ``flag`` ('train_data_paths' or 'valid_data_paths')."""
    from tfastro.supernova.io import check_sn_config, load_sn_npz
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


def build_model(cfg):
    """A compiled, built MIM3D (and built optimizer) for ``cfg``."""
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
                  dtype=None if cfg.policy == "float32" else cfg.policy)
    # under mixed_float16 Keras wraps MIMAdam in a LossScaleOptimizer; train_step scales the loss
    model.compile(optimizer=MIMAdam(cfg.lr), jit_compile=cfg.jit_compile)
    model.build((None, cfg.total_length) + cfg.grid + (cfg.img_channel,))
    model.optimizer.build(model.trainable_variables)
    return model


ARCHITECTURE = ("num_hidden", "filter_size", "patch_size", "layer_norm", "peephole")


def restore(model, path, frame_shape, flag="--pretrained_model"):
    """Load weights, optimizer state and counters of checkpoint ``path`` into ``model``,
    after checking it was written for the same architecture, channels and (with per-voxel
    peepholes) grid; ``frame_shape`` is (X, Y, Z, C) of the current run."""
    from tfastro.core.checkpoints import read_checkpoint_config
    stored, shape = read_checkpoint_config(path, flag)
    mine = model.get_config()
    differ = [f"{k}: checkpoint {stored.get(k)!r}, flags {mine[k]!r}"
              for k in ARCHITECTURE if stored.get(k) != mine[k]]
    if shape is not None:
        compared = slice(2, None) if model.peephole == "voxel" else slice(-1, None)
        if list(shape[compared]) != list(((None, None) + tuple(frame_shape))[compared]):
            differ.append(f"grid and channels: checkpoint {shape[2:]}, flags {list(frame_shape)}")
    if differ:
        raise UserInputError(f"{flag}: checkpoint {path!r} has another configuration ("
                             + "; ".join(differ) + ")")
    model.load_weights(path)
    return path


def forecast_and_score(model, data, cfg, out_dir, log=print):
    """Forecast every validation clip from its context with the EMA weights; score and save."""
    from tfastro.supernova.evaluation import ForecastScores
    from tfastro.supernova.figures import save_cross_sections, save_forecast_gif
    from tfastro.supernova.pipeline import sn_dataset

    n_in, n_out = cfg.input_length, cfg.total_length - cfg.input_length
    scores = ForecastScores(n_out)
    saved = 0
    dataset = sn_dataset(data, cfg.total_length, cfg.batch_size, shuffle=False)
    for batch in dataset:
        clips = batch.numpy()
        pred = model.forecast(clips[:, :n_in], n_out)
        scores.update(clips[:, n_in:], pred, clips[:, 0])
        for clip, forecast in zip(clips, pred):
            if saved >= cfg.num_save_samples:
                break
            saved += 1
            sample_dir = os.path.join(out_dir, str(saved))
            os.makedirs(sample_dir, exist_ok=True)
            np.save(os.path.join(sample_dir, "gt.npy"), clip)
            np.save(os.path.join(sample_dir, "pd.npy"), forecast)
            save_cross_sections(clip, forecast, sample_dir)
            save_forecast_gif(clip[n_in:], np.clip(forecast, 0, 1),
                              os.path.join(sample_dir, "forecast.gif"))
    result = scores.result()
    result["iteration"] = int(model.iteration.numpy())
    write_json(os.path.join(out_dir, "metrics.json"), result)
    log(scores.format_table())
    log(f"forecasts and scores written to {out_dir}")
    return result


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
    from tfastro.core.distribute import global_batch, shard_by_data
    from tfastro.core.loops import train_iterations
    from tfastro.supernova.pipeline import sn_dataset

    validate_config(cfg)
    configure_tensorflow(cfg)
    strategy, cfg = worker_strategy(cfg)
    batch = global_batch(cfg.batch_size, strategy)
    train_data = load_clips(cfg, "train_data_paths")
    valid_data = load_clips(cfg, "valid_data_paths")
    if train_data.num_clips < batch:
        raise UserInputError(f"--batch_size={cfg.batch_size} x {strategy.num_replicas_in_sync} "
                             f"replica(s): the training data {cfg.train_data_paths!r} holds only "
                             f"{train_data.num_clips} clips")

    def describe(model, start):
        return (f"iteration {start}, sampling eta {float(model.sampling_eta.numpy()):.6f}, "
                f"remat {model.remat}, precision {cfg.policy}, "
                f"{strategy.num_replicas_in_sync} replica(s)")

    def dataset(start):
        return shard_by_data(sn_dataset(train_data, cfg.total_length, batch, shuffle=True,
                                        seed=cfg.seed, repeat=True, drop_remainder=True,
                                        start_batch=start))

    return train_iterations(
        cfg, strategy, lambda: build_model(cfg),
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
    configure_tensorflow(cfg)
    model = build_model(cfg)
    restore(model, path, cfg.grid + (cfg.img_channel,), flag)
    log(f"forecasting with {path} (iteration {int(model.iteration.numpy())})")
    return forecast_and_score(model, valid_data, cfg,
                              results_dir(cfg.gen_frm_dir, int(model.iteration.numpy())), log)


def run(cfg, log=print):
    return train(cfg, log) if cfg.is_training else test(cfg, log)
