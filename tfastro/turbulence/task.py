"""Cosmic-ray transport from images of turbulent gas: the CNN classifier and the U-net.

Data. ``data_dir`` holds one folder of snapshot FITS cubes per class (``turb_classes``, in
label order). Each cube is cut along its first axis into six parts: training slices come from
part 1, validation from part 3, test from part 5, with a whole part of buffer between sets.
Slices become ``tile_size``^2 tiles (log10, min-max over the cube, optionally phases only,
periodic shifts, histogram equalisation: :mod:`tfastro.turbulence.io`). With
``projection`` > 1 the test images average that many adjacent slices, like an observed
column: the network is still trained and validated on single slices.

``turbulence_cnn`` classifies tiles into the classes (cross-entropy, AdamW, random flips);
``turbulence_unet`` maps the ``turb_field`` tile onto the ``turb_target`` tile (MSE +
ssim_alpha (1 - SSIM), AdamW). Their defaults of ``lr``, ``weight_decay`` and ``batch_size``
differ (CNN 1e-3, 1e-4, 64; U-net 1e-2, 1e-2, 32: :mod:`tfastro.turbulence.config`).
The model records its preprocessing (``turb_field``, ``flattened_power``, the classes or
``turb_target``), so a checkpoint applies on its own to a raw cube:
:func:`tfastro.turbulence.model.apply_to_cube`.

Training runs up to ``epochs`` epochs with early stopping on the validation loss
(``patience`` epochs) and ends on the best epoch's weights; a checkpoint and the early-stopping
state are written after every epoch, so an interrupted run resumes where it stopped and a
finished one only evaluates (:mod:`tfastro.core.loops`).

Evaluation (after training, or ``is_training=False``) writes under
``<gen_frm_dir>/<iteration>/``: for the classifier ``metrics.json`` (accuracy, per-class
precision, recall, F1, one-vs-rest accuracy, the row-normalised confusion matrix),
``blur_sweep.json`` (class probabilities of the test images blurred by ``blur_sigmas`` pixels,
and their power spectra), and PNGs of the confusion matrix, saliency maps, the blur sweep
(``blur_sweep_<class>.png``: P(class) against blur for each true class), the blurred spectra
and (``occlusion_patch`` > 0) occlusion maps; for the U-net ``metrics.json``
(MSE, SSIM, PSNR of the prediction, and of the identity and training-mean baselines) and
``mapping.png``.
"""
import os

import numpy as np

from tfastro.core.loops import iteration, write_json
from tfastro.core.errors import UserInputError
from tfastro.turbulence.config import validate_config

CHECKPOINT_FLAGS = "--model_name, --tile_size, --turb_classes"  # fix a checkpoint's shapes








def snapshot_files(cfg):
    """[(FITS path, label)] of the class folders (``turb_classes`` under ``data_dir``)."""
    from tfastro.turbulence.io import class_files
    if not os.path.isdir(cfg.data_dir):
        raise UserInputError(f"--data_dir={cfg.data_dir!r}: no such folder (expected one folder "
                             f"of FITS snapshots per class: {', '.join(cfg.classes)}); "
                             "`python -m tfastro.synthetic turbulence --out DIR` writes "
                             "synthetic ones")
    return class_files(cfg.data_dir, cfg.classes)


def check_projection(cfg, files):
    """Refuse, before anything is trained, a --projection longer than a part of a snapshot."""
    from astropy.io import fits

    from tfastro.turbulence.pipeline import buffered_split
    for path, _ in files:
        try:
            slices = fits.getheader(path, extname=cfg.turb_field)["NAXIS3"]
        except (OSError, KeyError):
            continue  # reading the cube names what is wrong with the file
        try:
            buffered_split(slices, projection=cfg.projection)
        except UserInputError as err:
            raise UserInputError(f"--projection={cfg.projection}: {path}: {err}") from None


def split_images(cfg, files, split):
    """(images, labels) for the classifier or (inputs, targets) for the U-net of ``split``:
    training slices get the extra shifted copies, test images the ``projection``."""
    from tfastro.turbulence import pipeline
    options = {"projection": cfg.projection if split == "test" else 1,
               "shifts": None if split == "train" else (), "seed": cfg.seed}
    classifier = cfg.model_name == "turbulence_cnn"
    try:
        if classifier:
            return pipeline.classification_images(files, split, cfg.tile_size, cfg.turb_field,
                                                  phase_only=cfg.flattened_power, **options)
        return pipeline.mapping_images(files, split, cfg.tile_size, cfg.turb_field,
                                       cfg.turb_target, **options)
    except UserInputError as err:
        target = "" if classifier else f", --turb_target={cfg.turb_target!r}"
        raise UserInputError(f"--turb_field={cfg.turb_field!r}{target}, --tile_size="
                             f"{cfg.tile_size}, --projection={cfg.projection}: {err}") from None


def build_model(cfg):
    """The compiled classifier or U-net of ``cfg`` (in the precision of --mixed_precision;
    under mixed_float16 Keras wraps AdamW in a LossScaleOptimizer)."""
    from tfastro.core.precision import policy_name, precision_policy
    from tfastro.turbulence import model as models
    lr, decay = cfg.lr, cfg.weight_decay
    with precision_policy(policy_name(cfg.mixed_precision)):
        if cfg.model_name == "turbulence_cnn":
            return models.compile_classifier(
                models.turbulence_classifier(cfg.tile_size, len(cfg.classes),
                                             field=cfg.turb_field,
                                             flattened_power=cfg.flattened_power,
                                             class_names=cfg.classes), lr, decay,
                jit_compile=cfg.jit_compile)
        return models.compile_unet(models.turbulence_unet(cfg.tile_size, field=cfg.turb_field,
                                                          target_field=cfg.turb_target),
                                   lr, decay, cfg.ssim_alpha, jit_compile=cfg.jit_compile)


def _shown(labels, count):
    """Indices of ``count`` test images spread over the classes (round robin)."""
    by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    order = [i for rank in range(max(map(len, by_class))) for idx in by_class
             if rank < len(idx) for i in [idx[rank]]]
    return np.asarray(order[:count])


def evaluate_classifier(cfg, model, images, labels, out_dir, log):
    """Scores, confusion matrix, saliency, (occlusion,) blur sweep and spectra of the test tiles."""
    from tfastro.turbulence import evaluation as classification
    from tfastro.turbulence import evaluation as saliency
    from tfastro.turbulence import figures as viz
    from tfastro.turbulence.io import CLASS_LABELS, TURBULENCE_CLASSES
    names = [CLASS_LABELS[TURBULENCE_CLASSES.index(c)] if c in TURBULENCE_CLASSES else c
             for c in cfg.classes]
    n = len(names)
    predicted = np.argmax(saliency.class_logits(model, images), axis=-1)
    report = classification.classification_report(labels, predicted, n, class_names=names)
    report["confusion_matrix_row_normalised"] = classification.confusion_matrix(
        labels, predicted, n).tolist()
    report.update(iteration=iteration(model), flattened_power=cfg.flattened_power,
                  projection=cfg.projection, field=cfg.turb_field, tile_size=cfg.tile_size)
    write_json(out_dir, "metrics.json", report)
    viz.plot_confusion_matrix(np.asarray(report["confusion_matrix_row_normalised"]), names,
                              os.path.join(out_dir, "confusion_matrix.png"),
                              title="flattened power" if cfg.flattened_power else None)

    shown = _shown(labels, cfg.saliency_images)
    titles = [f"{names[labels[i]]}\n-> {names[predicted[i]]}" for i in shown]
    maps = saliency.saliency_maps(model, images[shown], labels[shown])
    viz.plot_saliency(images[shown], maps, titles, path=os.path.join(out_dir, "saliency.png"))
    if cfg.occlusion_patch:
        occluded = saliency.occlusion_maps(model, images[shown], labels[shown],
                                           patch=cfg.occlusion_patch)
        viz.plot_occlusion(images[shown], occluded, titles,
                           path=os.path.join(out_dir, "occlusion.png"))

    sigmas = cfg.sigmas
    sweep = saliency.blur_summary(saliency.blur_sweep(model, images, sigmas), labels, sigmas)
    k, spectra, _ = saliency.blurred_spectra(images, sigmas)
    sweep.update(class_names=names, k=k.tolist(), power=np.asarray(spectra).tolist(),
                 units={"sigma": "pixel", "k": "radian / pixel", "power": "pixel^2"})
    write_json(out_dir, "blur_sweep.json", sweep)
    for c, name in enumerate(cfg.classes):
        viz.plot_blur_sweep(sweep, c, names, os.path.join(out_dir, f"blur_sweep_{name}.png"))
    viz.plot_blurred_spectra(k, spectra, sigmas, os.path.join(out_dir, "blurred_spectra.png"))
    f1 = " / ".join(f"{100 * v:.1f}" for v in report["per_class"]["f1"])
    log(f"test tiles: {len(labels)}, accuracy {report['accuracy']:.3f}; F1 per class (%): {f1}")
    return report


def evaluate_unet(cfg, model, inputs, targets, train_mean, out_dir, log):
    """MSE, SSIM and PSNR of the predicted test tiles against the identity and mean baselines."""
    from tfastro.fields.image_metrics import psnr, ssim2d
    from tfastro.turbulence import figures as viz
    predicted = np.asarray(model.predict(inputs, batch_size=cfg.batch_size, verbose=0))
    candidates = {"unet": predicted, "identity": inputs,
                  "training_mean": np.full_like(targets, train_mean)}
    metrics = {name: {"mse": float(np.mean((guess - targets) ** 2)),
                      "ssim": float(np.mean(ssim2d(guess, targets))),
                      "psnr": float(np.mean(psnr(guess, targets)))}
               for name, guess in candidates.items()}
    metrics.update(iteration=iteration(model), input=cfg.turb_field, target=cfg.turb_target,
                   test_tiles=int(len(targets)), projection=cfg.projection)
    write_json(out_dir, "metrics.json", metrics)
    shown = np.linspace(0, len(inputs) - 1, min(cfg.saliency_images, len(inputs))).astype(int)
    viz.plot_mapping(inputs[shown], targets[shown], predicted[shown], cfg.turb_field,
                     cfg.turb_target, os.path.join(out_dir, "mapping.png"))
    log("test tiles: {}; MSE {:.5f} (identity {:.5f}, training mean {:.5f}), SSIM {:.3f}".format(
        len(targets), metrics["unet"]["mse"], metrics["identity"]["mse"],
        metrics["training_mean"]["mse"], metrics["unet"]["ssim"]))
    return metrics


def evaluate(cfg, model, files, train_mean, log):
    """Score the test split; outputs under ``<gen_frm_dir>/<iteration>/``."""
    from tfastro.core.checkpoints import results_dir
    x, y = split_images(cfg, files, "test")
    out_dir = results_dir(cfg.gen_frm_dir, iteration(model))
    if cfg.model_name == "turbulence_cnn":
        result = evaluate_classifier(cfg, model, x, y, out_dir, log)
    else:
        result = evaluate_unet(cfg, model, x, y, train_mean, out_dir, log)
    log(f"evaluation written to {out_dir}")
    return result


def train(cfg, log=print):
    """Train (resuming from save_dir) with early stopping, then evaluate on the test split."""
    from tfastro.core.checkpoints import worker_strategy
    from tfastro.core.distribute import even_global_batch, shard_by_data
    from tfastro.core.loops import train_epochs
    from tfastro.turbulence.pipeline import turbulence_dataset
    validate_config(cfg)
    strategy, cfg = worker_strategy(cfg)
    files = snapshot_files(cfg)
    check_projection(cfg, files)
    (x, y), validation = (split_images(cfg, files, s) for s in ("train", "validation"))
    batch = {name: even_global_batch(len(images), cfg.batch_size, strategy,
                                     f"{name} tiles")
             for name, images in (("training", x), ("validation", validation[0]))}
    log(f"{cfg.model_name}: {len(x)} training and {len(validation[0])} validation tiles of "
        f"{cfg.tile_size}^2 from {len(files)} snapshots; "
        f"{strategy.num_replicas_in_sync} replica(s)")
    model = train_epochs(
        cfg, strategy, lambda: build_model(cfg), CHECKPOINT_FLAGS,
        lambda seed: shard_by_data(turbulence_dataset(x, y, batch["training"], seed=seed)),
        shard_by_data(turbulence_dataset(*validation, batch["validation"], shuffle=False,
                                         flips=False)), log)
    return model, evaluate(cfg, model, files, float(np.mean(y)), log)


def test(cfg, log=print):
    """Evaluate a checkpoint (--pretrained_model or the newest in save_dir) on the test split."""
    from tfastro.core.distribute import use_gpus
    from tfastro.core.loops import evaluation_model
    validate_config(cfg)
    use_gpus(cfg.n_gpu)  # evaluation runs in one process, on the first --n_gpu GPUs
    files = snapshot_files(cfg)
    check_projection(cfg, files)
    model = evaluation_model(cfg, build_model(cfg), CHECKPOINT_FLAGS, log)
    train_mean = (float(np.mean(split_images(cfg, files, "train")[1]))
                  if cfg.model_name == "turbulence_unet" else None)
    return evaluate(cfg, model, files, train_mean, log)


def run(cfg, log=print):
    return train(cfg, log)[1] if cfg.is_training else test(cfg, log)
