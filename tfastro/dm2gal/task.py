"""dm2gal: paint galaxy stellar mass onto gravity-only dark matter with a 3D CNN.

Fields. The IllustrisTNG files (gravity-only snapshot and group catalogue, hydro group
catalogue) are turned once into CIC mass grids of ``grid_size``^3 voxels in ``field_dir``:
``dark_matter.npy``, ``subhalo.npy`` (gravity-only subhalo masses), ``stellar.npy`` (hydro
stellar masses), all Msun/h per voxel, and the network's inputs ``inputs.npy`` (N, N, N, 2)
and ``target.npy`` (N, N, N): standardised log10(1 + M), with the original constants or
(``standardisation='training'``, for other resolutions and boxes) the training region's mean
and spread over the training samples (voxels above the stellar threshold, as the original's
target constants are), recorded in ``standardisation.json`` and in the model (a checkpoint is
used only with field arrays standardised like its own; saved alone it applies to raw mass grids:
``DM2Gal.predict_stellar_mass``). Most voxels hold no subhalo, so
over all voxels the samples' inputs would differ by a tenth of a standard deviation: training
on them is badly conditioned. Batch norm would undo such a standardisation (its statistics
are dominated by the empty voxels); ``dm2gal_batchnorm=False`` leaves it out. Existing field files are reused, never
overwritten; all are memory-mapped.

Training. Centres are voxels whose stellar mass exceeds ``stellar_threshold``; the test and
validation boxes hold their own centres, and a training centre's whole window stays clear of
both (a buffer the original lacked). Training windows are cut on the fly, drawn with weights
1/count of their target's bin (100 bins) and rotated by one of the 24 cube rotations. Adam
with coupled L2 weight decay; the validation loss every ``test_interval`` iterations drives
reduce-on-plateau (factor 0.1, patience 5). A run resumes from the newest checkpoint in
``save_dir`` where the uninterrupted run would be: the same windows, rotations, validations
and learning-rate reductions follow (the plateau's state is in the checkpoints); nothing is
deleted unless ``fresh_start``.

Evaluation (``is_training=False``, and after training): the scores of the test centres (R^2 of
the standardised target against predicting the training mean); the test cube stitched
voxel by voxel (``stitch``: every voxel, or only where the true stellar mass exceeds the
threshold, which uses the truth: the choice is written into the outputs); the HOD baseline;
P(k), bispectrum and reduced Q over 25 angles, total stellar mass and mass histograms of
target, prediction and HOD. Written under ``<gen_frm_dir>/<iteration>/``: ``scores.json``,
``statistics.json``, ``target.npy``, ``prediction.npy``, ``hod.npy`` (Msun/h per voxel) and
PNG figures.
"""
import json
import math
import os

import numpy as np

from tfastro.core.atomic import save_npy, write_json
from tfastro.core.errors import UserInputError
from tfastro.dm2gal.config import bispectrum_k, validate_config

FIELDS = ("dark_matter", "subhalo", "stellar")


MAX_VALIDATION_SAMPLES = 4096  # validation windows scored every test_interval







def _mass_grid(cfg, field):
    """The mass grid of ``field`` (Msun/h per voxel) computed from the TNG files."""
    from tfastro.dm2gal import io as tng
    sources = {"dark_matter": cfg.tng_dark_snapshot, "subhalo": cfg.tng_dark_groups,
               "stellar": cfg.tng_hydro_groups}
    flag = {"dark_matter": "tng_dark_snapshot", "subhalo": "tng_dark_groups",
            "stellar": "tng_hydro_groups"}[field]
    if not sources[field]:
        raise UserInputError(f"--{flag}: needed to compute {field}.npy in --field_dir="
                             f"{cfg.field_dir!r}, but not given")
    try:
        if field == "dark_matter":
            return tng.dark_matter_grid(tng.snapshot_files(sources[field]), cfg.grid_size)
        subhalos = tng.read_subhalos(tng.snapshot_files(sources[field]))
        grid = tng.subhalo_mass_grid if field == "subhalo" else tng.stellar_mass_grid
        return grid(subhalos, cfg.grid_size)
    except UserInputError as err:
        raise UserInputError(f"--{flag}: {err}") from None


def _stored(path, shape, make, log):
    """The array in .npy file ``path`` (memory-mapped), written by ``make()`` if absent."""
    from tfastro.dm2gal.io import load_field, save_field
    if not os.path.exists(path):
        save_field(path, make())
        log(f"wrote {path}")
    array = load_field(path)
    if array.shape != shape:
        raise UserInputError(f"{path}: holds shape {array.shape}, expected {shape} for "
                             f"--grid_size; move it away or use another --field_dir")
    return array


def training_statistics(mass, stellar, cfg, slab=64):
    """(mean, std) of log10(1 + M) of ``mass`` over the training samples: voxels of the
    training region (outside the test and validation boxes) whose ``stellar`` mass exceeds
    the threshold; read ``slab`` x-planes at a time."""
    from tfastro.dm2gal.io import log_mass
    n = mass.shape[0]
    axis = np.arange(n)
    inside = [(axis >= lo) & (axis < hi) for lo, hi in (cfg.box("test_region"),
                                                        cfg.box("validation_region"))]
    total = np.zeros(3)
    for x0 in range(0, n, slab):
        x = slice(x0, min(n, x0 + slab))
        held_out = np.zeros((x.stop - x0, n, n), bool)
        for box in inside:
            held_out |= box[x, None, None] & box[None, :, None] & box[None, None, :]
        kept = ~held_out & (np.asarray(stellar[x]) > cfg.stellar_threshold)
        values = log_mass(np.asarray(mass[x], np.float64)[kept])
        total += (values.size, values.sum(), np.square(values).sum())
    if total[0] == 0:
        raise UserInputError("--standardisation=training: no voxel of the training region (outside "
                             "--test_region and --validation_region) has stellar mass above "
                             f"--stellar_threshold={cfg.stellar_threshold:g}")
    mean = total[1] / total[0]
    return float(mean), float(np.sqrt(max(total[2] / total[0] - mean ** 2, 0.0)))


def _standardisation(cfg, fields, log):
    """{field: (mean, std)} of log10(1 + M): the original constants or (--standardisation
    training) the training region's, recorded in field_dir/standardisation.json; the network
    arrays already there must have been made with the same."""
    from tfastro.dm2gal.io import STANDARDISATION
    path = os.path.join(cfg.field_dir, "standardisation.json")
    stats = ({f: tuple(STANDARDISATION[f]) for f in FIELDS} if cfg.standardisation == "original"
             else {f: training_statistics(fields[f], fields["stellar"], cfg) for f in FIELDS})
    if os.path.exists(path):
        with open(path) as f:
            stored = {k: tuple(v) for k, v in json.load(f).items()}
        if not all(np.allclose(stored[f], stats[f], rtol=1e-6) for f in FIELDS):
            raise UserInputError(f"--standardisation={cfg.standardisation}: the network arrays in "
                                 f"--field_dir={cfg.field_dir!r} were standardised with {stored}; "
                                 "use another --field_dir or move inputs.npy, target.npy and "
                                 "standardisation.json away")
    else:
        write_json(path, stats)
        log(f"standardisation ({cfg.standardisation}): {stats}")
    return stats


def prepare_fields(cfg, log=print):
    """{"dark_matter", "subhalo", "stellar": mass grids, "inputs", "target": standardised
    network arrays, "stats": their (mean, std) per field}, memory-mapped from ``field_dir``
    (computed there when absent)."""
    from tfastro.dm2gal.io import log_mass, standardise
    os.makedirs(cfg.field_dir, exist_ok=True)
    n = cfg.grid_size
    fields = {f: _stored(os.path.join(cfg.field_dir, f"{f}.npy"), (n,) * 3,
                         lambda f=f: _mass_grid(cfg, f), log) for f in FIELDS}
    stats = fields["stats"] = _standardisation(cfg, fields, log)
    fields["inputs"] = _stored(
        os.path.join(cfg.field_dir, "inputs.npy"), (n,) * 3 + (2,),
        lambda: np.stack([standardise(log_mass(np.asarray(fields[f])), stats=stats[f])
                          for f in ("dark_matter", "subhalo")], axis=-1).astype("float32"), log)
    fields["target"] = _stored(
        os.path.join(cfg.field_dir, "target.npy"), (n,) * 3,
        lambda: standardise(log_mass(np.asarray(fields["stellar"])),
                            stats=stats["stellar"]).astype("float32"), log)
    return fields


def sample_centres(cfg, fields):
    """The regions and {"train", "validation", "test": centres (M, 3)}."""
    from tfastro.dm2gal.pipeline import candidate_centres, split_centres, split_regions
    regions = split_regions(cfg.grid_size, cfg.box("test_region"), cfg.box("validation_region"),
                            cfg.window)
    half = cfg.window // 2
    centres = split_centres(candidate_centres(fields["stellar"], cfg.stellar_threshold, low=half,
                                              high=half + 1), regions)
    for split, found in centres.items():
        if len(found) == 0:
            raise UserInputError(f"no {split} centre: no voxel of the {split} region has stellar "
                                 f"mass above --stellar_threshold={cfg.stellar_threshold:g} with "
                                 f"its --window={cfg.window} inside the grid (and, for training, "
                                 "clear of the test and validation regions)")
    return regions, centres


def build_model(cfg, stats):
    """The compiled, built DM2Gal of ``cfg`` for field arrays standardised with ``stats``
    ({field: (mean, std)}) (in the precision of --mixed_precision; under mixed_float16 Keras
    wraps Adam in a LossScaleOptimizer)."""
    import keras

    from tfastro.core.precision import policy_name, precision_policy
    from tfastro.dm2gal.model import DM2Gal
    try:
        with precision_policy(policy_name(cfg.mixed_precision)):
            model = DM2Gal(cfg.dm2gal_ch, cfg.window, l2=cfg.weight_decay,
                           batch_norm=cfg.dm2gal_batchnorm, standardisation=stats)
    except ValueError as err:
        raise UserInputError(f"--window={cfg.window}: {err}") from None
    loss = keras.losses.Huber() if cfg.dm2gal_loss == "huber" else "mse"
    model.compile(optimizer=keras.optimizers.Adam(cfg.lr), loss=loss, jit_compile=cfg.jit_compile)
    model.build((None,) + (cfg.window,) * 3 + (2,))
    model.optimizer.build(model.trainable_variables)
    return model


def restore(model, path, flag="--pretrained_model"):
    from tfastro.core.checkpoints import read_checkpoint_config
    stored, _ = read_checkpoint_config(path, flag)
    mine = model.get_config()
    differ = [f"{k}: checkpoint {stored.get(k)!r}, flags {mine[k]!r}"
              for k in ("ch", "window", "kernel_sizes", "hidden", "in_channels", "batch_norm")
              if stored.get(k) != mine[k]]
    if differ:
        raise UserInputError(f"{flag}: checkpoint {path!r} has another configuration ("
                             + "; ".join(differ) + ")")
    theirs = stored.get("standardisation")  # absent from checkpoints saved before it was kept
    if theirs is not None and not all(np.allclose(theirs[f], v, rtol=1e-6)
                                      for f, v in model.standardisation.items()):
        raise UserInputError(f"{flag}: checkpoint {path!r} was trained on log10(1 + M) "
                             f"standardised with {theirs}; the field arrays of --field_dir and "
                             f"--standardisation use {model.standardisation}: use field arrays "
                             "standardised like the checkpoint's, or apply it to the raw mass "
                             "grids with DM2Gal.predict_stellar_mass")
    model.load_weights(path)


def centre_scores(model, fields, centres, cfg, train_mean):
    """MSE and R^2 of the standardised target at ``centres`` (predicting the training mean
    gives R^2 = 1 - MSE/variance around that mean)."""
    from tfastro.dm2gal.pipeline import window_dataset
    data = window_dataset(fields["inputs"], fields["target"], centres, cfg.window,
                          cfg.batch_size, augment=False, shuffle=False, repeat=False)
    predicted = np.concatenate([np.asarray(model.predict_on_batch(x))[:, 0] for x, _ in data])
    truth = np.asarray(fields["target"])[tuple(np.asarray(centres).T)]
    mse = float(np.mean((predicted - truth) ** 2))
    return {"centres": int(len(truth)), "mse": mse,
            "r2": 1.0 - mse / float(np.mean((truth - truth.mean()) ** 2)),
            "mse_of_training_mean": float(np.mean((truth - train_mean) ** 2))}


def hod_cube(cfg, region):
    """The HOD baseline's stellar mass (Msun/h per voxel) in ``region``, or None without the
    group catalogues."""
    from tfastro.dm2gal import io as tng
    from tfastro.dm2gal.hod import hod_stellar_masses
    if not (cfg.tng_dark_groups and cfg.tng_hydro_groups):
        return None
    dark = tng.read_subhalos(tng.snapshot_files(cfg.tng_dark_groups))
    hydro = tng.read_subhalos(tng.snapshot_files(cfg.tng_hydro_groups))
    masses = hod_stellar_masses(dark.host_mass, dark.is_central, hydro.host_mass,
                                hydro.is_central, hydro.stellar_mass, seed=cfg.seed)
    return tng.cic_mass_grid([(dark.positions, masses)], dark.box_size, cfg.grid_size, region)


def evaluate(model, fields, centres, cfg, out_dir, log=print):
    """Scores of the test centres, the stitched test cube, the HOD baseline and their
    statistics; writes the outputs listed in the module docstring. Returns the scores."""
    from tfastro.dm2gal import figures as viz
    from tfastro.dm2gal.evaluation import compare_cubes
    from tfastro.dm2gal.io import read_header, snapshot_files
    from tfastro.dm2gal.model import predict_cube

    train_mean = float(np.mean(np.asarray(fields["target"])[tuple(centres["train"].T)]))
    scores = {"iteration": int(model.optimizer.iterations.numpy()),
              "test": centre_scores(model, fields, centres["test"], cfg, train_mean),
              "stitch": cfg.stitch}
    lo, hi = cfg.box("test_region")
    region = ((lo, hi),) * 3
    target = np.asarray(fields["stellar"][lo:hi, lo:hi, lo:hi], dtype=np.float32)
    mask = target > cfg.stellar_threshold if cfg.stitch == "above_threshold" else None
    predicted = predict_cube(model, fields["inputs"], region, cfg.window, cfg.batch_size,
                             mask=mask, fill_value=np.nan)
    prediction = model.stellar_mass(predicted)
    hod = hod_cube(cfg, region)
    box = (read_header(snapshot_files(cfg.tng_dark_snapshot)[0])["BoxSize"] / 1000.0
           if cfg.tng_dark_snapshot else None)  # ckpc/h -> h^-1 Mpc
    side = (hi - lo) * (box / cfg.grid_size) if box else float(hi - lo)  # else voxel units
    k1, k2 = bispectrum_k(cfg, 2 * math.pi / side)
    statistics = compare_cubes(target, prediction, hod, box_size=side, k1=k1, k2=k2)
    statistics["stitch"] = cfg.stitch
    for name, cube in (("target", target), ("prediction", prediction), ("hod", hod)):
        if cube is not None:
            save_npy(os.path.join(out_dir, f"{name}.npy"), cube)
    for name, value in (("scores", scores), ("statistics", statistics)):
        write_json(os.path.join(out_dir, f"{name}.json"), value)
    label = f" (stitched: {cfg.stitch})"
    viz.plot_power_spectra(statistics, os.path.join(out_dir, "power_spectra.png"))
    viz.plot_bispectra(statistics, os.path.join(out_dir, "bispectra.png"))
    viz.plot_mass_histograms(statistics, os.path.join(out_dir, "mass_histograms.png"))
    viz.plot_slices(target, prediction, hod, os.path.join(out_dir, "slices.png"))
    test = scores["test"]
    log(f"test centres: {test['centres']}, R2 {test['r2']:.3f}, MSE {test['mse']:.4f} "
        f"(training mean: {test['mse_of_training_mean']:.4f}); total stellar mass of the test "
        f"cube{label}: prediction {statistics['total_mass']['prediction']:.4g}, target "
        f"{statistics['total_mass']['target']:.4g} Msun/h")
    log(f"evaluation written to {out_dir}")
    return scores


def train(cfg, log=print):
    """Train (resuming from save_dir), snapshot, validate, then evaluate on the test region."""
    from tfastro.core.checkpoints import results_dir, worker_strategy
    from tfastro.core.distribute import even_global_batch, global_batch, shard_by_data
    from tfastro.core.loops import Plateau, iteration, train_iterations
    from tfastro.dm2gal.pipeline import mass_bin_weights, window_dataset

    validate_config(cfg)
    strategy, cfg = worker_strategy(cfg)
    fields = prepare_fields(cfg, log)
    _, centres = sample_centres(cfg, fields)
    train_targets = np.asarray(fields["target"])[tuple(centres["train"].T)]
    validation_centres = centres["validation"][:MAX_VALIDATION_SAMPLES]
    validation = shard_by_data(window_dataset(
        fields["inputs"], fields["target"], validation_centres, cfg.window,
        even_global_batch(len(validation_centres), cfg.batch_size, strategy, "validation centres"),
        augment=False, shuffle=False, repeat=False))

    def describe(model, start):
        return (f"dm2gal: {len(centres['train'])} training, {len(centres['validation'])} "
                f"validation, {len(centres['test'])} test centres; iteration {start}; "
                f"{strategy.num_replicas_in_sync} replica(s)")

    def dataset(start):  # the stream of an uninterrupted run from iteration `start` on
        batch = global_batch(cfg.batch_size, strategy)
        return shard_by_data(window_dataset(
            fields["inputs"], fields["target"], centres["train"], cfg.window, batch,
            seed=cfg.seed, first_sample=start * batch,
            weights=mass_bin_weights(train_targets) if cfg.weighted_sampling else None))

    model = train_iterations(
        cfg, strategy, lambda: build_model(cfg, fields["stats"]), restore, dataset, describe,
        display=lambda logs, steps: f"  loss {logs['loss']:.5f}", validation=validation,
        plateau=Plateau(factor=0.1, patience=5), log=log)
    evaluate(model, fields, centres, cfg, results_dir(cfg.gen_frm_dir, iteration(model)), log)
    return model


def test(cfg, log=print):
    """Evaluate a checkpoint (--pretrained_model or the newest in save_dir) on the test region."""
    from tfastro.core.checkpoints import evaluation_checkpoint, results_dir
    from tfastro.core.distribute import use_gpus
    validate_config(cfg)
    use_gpus(cfg.n_gpu)  # evaluation runs in one process, on the first --n_gpu GPUs
    path, flag = evaluation_checkpoint(cfg.save_dir, cfg.pretrained_model)
    fields = prepare_fields(cfg, log)
    _, centres = sample_centres(cfg, fields)
    model = build_model(cfg, fields["stats"])
    restore(model, path, flag)
    log(f"evaluating {path}")
    return evaluate(model, fields, centres, cfg,
                    results_dir(cfg.gen_frm_dir, int(model.optimizer.iterations.numpy())), log)


def run(cfg, log=print):
    return train(cfg, log) if cfg.is_training else test(cfg, log)
