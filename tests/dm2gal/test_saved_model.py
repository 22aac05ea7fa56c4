"""A saved DM2Gal alone maps raw gravity-only mass grids to stellar mass: after training
through the task and deleting its files, the .keras file applied to a new synthetic box gives
the task's own stitched cube, the network with its standardisation written out by hand, and
the trained accuracy; the task refuses field arrays standardised otherwise; a model saved
without its standardisation is refused by Keras and still used by the task."""
import dataclasses
import json
import os
import shutil
import zipfile

import keras
import numpy as np
import pytest

from tfastro.core.errors import UserInputError
from tfastro.dm2gal.config import DM2GalConfig
from tfastro.dm2gal.model import predict_cube
from tfastro.dm2gal.synthetic import TNGSyntheticParams, tng_paths, write_synthetic_tng
from tfastro.dm2gal.task import prepare_fields, run

GRID, WINDOW, TEST = 64, 17, (12, 30)


def _quiet(*args):
    pass


def _config(root, tng, **overrides):
    paths = tng_paths(tng)
    cfg = DM2GalConfig(tng_dark_snapshot=paths["snapshot"], tng_dark_groups=paths["dark_groups"],
                       tng_hydro_groups=paths["hydro_groups"], field_dir=str(root / "fields"),
                       grid_size=GRID, test_region=",".join(map(str, TEST)),
                       validation_region="34,52", window=WINDOW, dm2gal_batchnorm=False,
                       weighted_sampling=False, dm2gal_ch=8, lr=1e-3, batch_size=32,
                       max_iterations=4, display_interval=100, test_interval=100,
                       snapshot_interval=100, save_dir=str(root / "ckpt"),
                       gen_frm_dir=str(root / "res"))
    return dataclasses.replace(cfg, **overrides)


def _train_and_keep_only_the_model(root, **overrides):
    """Train through the task on a synthetic box (seed 2); keep the final .keras file and the
    task's scores and standardisation, delete everything else. Returns (model path, scores,
    standardisation)."""
    tng = root / "tng"
    write_synthetic_tng(tng, TNGSyntheticParams(grid=GRID, particles_per_side=64, seed=2))
    cfg = _config(root, tng, **overrides)
    cfg = dataclasses.replace(cfg, snapshot_interval=cfg.max_iterations,
                              test_interval=cfg.max_iterations)
    model = run(cfg, log=_quiet)
    step = int(model.optimizer.iterations.numpy())
    path = root / "model" / "dm2gal.keras"
    path.parent.mkdir()
    shutil.copy(os.path.join(cfg.save_dir, f"ckpt-{step}.keras"), path)
    with open(os.path.join(cfg.gen_frm_dir, str(step), "scores.json")) as f:
        scores = json.load(f)
    with open(os.path.join(cfg.field_dir, "standardisation.json")) as f:
        stats = json.load(f)
    for folder in (tng, cfg.field_dir, cfg.save_dir, cfg.gen_frm_dir):
        shutil.rmtree(folder)
    return str(path), scores, stats


@pytest.fixture(scope="module")
def new_box(tmp_path_factory):
    """Synthetic TNG files of a box never seen in training (seed 7), in a new folder."""
    out = tmp_path_factory.mktemp("new_tng")
    write_synthetic_tng(out, TNGSyntheticParams(grid=GRID, particles_per_side=64, seed=7))
    return out


def _raw_grids(root, new_box):
    """The new box's mass grids (Msun/h per voxel) as the task makes them."""
    fields = prepare_fields(_config(root, new_box, standardisation="training"), log=_quiet)
    return {f: np.array(fields[f]) for f in ("dark_matter", "subhalo", "stellar")}


def test_training_standardisation_travels_with_the_model(tmp_path, new_box):
    """Trained with the training region's standardisation; on a new box the loaded model equals
    standardise -> network -> destandardise with the constants the task recorded, explains the
    new box's stellar mass about as well as the task's test centres, and the task refuses the
    new box's field arrays, standardised with other constants."""
    path, scores, stats = _train_and_keep_only_the_model(
        tmp_path / "train", standardisation="training", max_iterations=500)
    grids = _raw_grids(tmp_path / "new", new_box)
    region = (TEST,) * 3
    model = keras.saving.load_model(path)
    predicted = model.predict_stellar_mass(grids["dark_matter"], grids["subhalo"], region)

    inputs = np.stack([(np.log10(1 + grids[f]) - stats[f][0]) / stats[f][1]
                       for f in ("dark_matter", "subhalo")], axis=-1).astype(np.float32)
    network = predict_cube(model, inputs, region, WINDOW)
    by_hand = np.maximum(10.0 ** (network * stats["stellar"][1] + stats["stellar"][0]) - 1, 0)
    np.testing.assert_allclose(predicted, by_hand, rtol=1e-4, atol=1e-3)

    lo, hi = TEST
    truth = grids["stellar"][lo:hi, lo:hi, lo:hi]
    galaxies = truth > 1e8  # the task's test centres: voxels above --stellar_threshold
    log_truth, log_predicted = np.log10(1 + truth[galaxies]), np.log10(1 + predicted[galaxies])
    r2 = 1 - np.mean((log_predicted - log_truth) ** 2) / np.var(log_truth)
    print(f"R2 on the new box {r2:.3f}, on the task's test centres {scores['test']['r2']:.3f}")
    assert galaxies.sum() > 50 and scores["test"]["r2"] > 0.2
    assert r2 > scores["test"]["r2"] - 0.15, (r2, scores["test"])

    cfg = _config(tmp_path / "new", new_box, standardisation="training", is_training=False,
                  pretrained_model=path)
    with pytest.raises(UserInputError, match="--pretrained_model: checkpoint .* was trained on "
                                             "log10.1 . M. standardised with"):
        run(cfg, log=_quiet)


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """A DM2Gal trained 4 steps with the paper's standardisation; only its .keras file is left."""
    return _train_and_keep_only_the_model(tmp_path_factory.mktemp("original"))[0]


def _task_prediction(root, new_box, model_path):
    """The task's stitched prediction (Msun/h) of the new box's test cube with ``model_path``."""
    cfg = _config(root, new_box, is_training=False, pretrained_model=model_path)
    run(cfg, log=_quiet)
    (name,) = os.listdir(cfg.gen_frm_dir)
    return np.load(os.path.join(cfg.gen_frm_dir, name, "prediction.npy")), cfg.field_dir


def test_loaded_model_gives_the_tasks_test_cube_of_a_new_box(tmp_path, original, new_box):
    task, field_dir = _task_prediction(tmp_path, new_box, original)
    model = keras.saving.load_model(original)
    grids = [np.load(os.path.join(field_dir, f"{f}.npy")) for f in ("dark_matter", "subhalo")]
    predicted = model.predict_stellar_mass(*grids, region=(TEST,) * 3, batch_size=100)
    assert predicted.shape == task.shape == (18, 18, 18) and task.max() > 1e8
    np.testing.assert_allclose(predicted, task, rtol=1e-4, atol=1e-2)


def _without_standardisation(path, out):
    """A copy of the .keras file ``path`` without the standardisation in its config, as models
    were saved before they carried it."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(content)
                del config["config"]["standardisation"]
                content = json.dumps(config).encode()
            target.writestr(item, content)
    return str(out)


def test_model_saved_without_its_standardisation(tmp_path, original, new_box):
    """Keras refuses it with one line; the task, which has the field arrays, still uses it."""
    old = _without_standardisation(original, tmp_path / "old.keras")
    with pytest.raises(ValueError, match="DM2Gal config without standardisation: saved before"):
        keras.saving.load_model(old)
    from_old, _ = _task_prediction(tmp_path / "old", new_box, old)
    from_new, _ = _task_prediction(tmp_path / "new", new_box, original)
    np.testing.assert_array_equal(from_old, from_new)


def test_bad_standardisation_and_grids_are_refused():
    from tfastro.dm2gal.model import DM2Gal
    with pytest.raises(ValueError, match="standardisation: expected .* with std > 0 for "
                                         "dark_matter, subhalo, stellar"):
        DM2Gal(2, 17, standardisation={"dark_matter": (5.0, 3.0), "subhalo": (0.4, 1.7),
                                       "stellar": (8.7, 0.0)})
    with pytest.raises(ValueError, match="standardisation: expected"):
        DM2Gal(2, 17, standardisation={"dark_matter": (5.0, 3.0)})
    model = DM2Gal(2, 17, hidden=4)
    with pytest.raises(ValueError, match=r"dark_matter \(8, 8, 8\), subhalo \(8, 8\): expected "
                                         "two"):
        model.predict_stellar_mass(np.ones((8, 8, 8)), np.ones((8, 8)))
