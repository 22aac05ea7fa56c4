"""A saved ColumnNet alone maps raw PPV cubes to physical columns: after training through the
task and deleting its data, the .keras file applied to new cores gives the task's own
predictions and MC-dropout spread, the network with its normalisation written out by hand, and
the trained accuracy; a model saved without its normalisation is refused."""
import json
import os
import shutil
import zipfile

import keras
import numpy as np
import pytest

from tfastro.core.errors import UserInputError
from tfastro.prestellar.config import PrestellarConfig
from tfastro.prestellar.io import read_prestellar, write_prestellar
from tfastro.prestellar.model import ColumnNet, mc_dropout_predict, scan_predict
from tfastro.prestellar.synthetic import synthetic_cores
from tfastro.prestellar.task import run

N_TRAIN_SET, N_NEW = 40, 20  # cores; the task trains on the first 80 per cent


def _quiet(*args):
    pass


def _results(folder):
    (name,) = os.listdir(folder)
    return {n: np.load(os.path.join(folder, name, f"{n}.npy"))
            for n in ("prediction", "uncertainty")}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A ColumnNet trained by the task on 40 cores whose data and side files are then deleted:
    {"model": path of the lone .keras file, "train_ppv", "train_targets": the training cores
    (kept in memory), "rmse": the task's test RMSE (log density, v_z)}."""
    root = tmp_path_factory.mktemp("column")
    data = root / "data"
    cores = synthetic_cores(N_TRAIN_SET, n=16, n_channels=16, seed=4)
    write_prestellar(data, cores, fits_files=False)
    cfg = PrestellarConfig(data_dir=str(data), epochs=12, patience=12, lr=3e-3, mc_samples=4,
                           save_dir=str(root / "ckpt"), gen_frm_dir=str(root / "res"))
    metrics = run(cfg, log=_quiet)
    model = root / "model" / "column.keras"
    model.parent.mkdir()
    shutil.copy(os.path.join(cfg.save_dir, f"ckpt-{metrics['iteration']}.keras"), model)
    n_train = int(0.8 * N_TRAIN_SET)
    kept = {"model": str(model), "train_ppv": cores.ppv[:n_train].copy(),
            "train_targets": cores.targets[:n_train].copy(),
            "rmse": (metrics["network"]["log_density"]["rmse"], metrics["network"]["v_z"]["rmse"])}
    for folder in (data, root / "ckpt", root / "res"):
        shutil.rmtree(folder)
    return kept


@pytest.fixture(scope="module")
def new_cores(tmp_path_factory):
    """20 cores never seen in training, written after it to a new folder."""
    out = tmp_path_factory.mktemp("new_cores")
    write_prestellar(out, synthetic_cores(N_NEW, n=16, n_channels=16, seed=11),
                     fits_files=False)
    return out


def test_loaded_model_gives_the_tasks_physical_predictions_on_new_cores(trained, new_cores,
                                                                        tmp_path):
    cfg = PrestellarConfig(data_dir=str(new_cores), is_training=False, mc_samples=4,
                           pretrained_model=trained["model"], save_dir=str(tmp_path / "none"),
                           gen_frm_dir=str(tmp_path / "res"))
    run(cfg, log=_quiet)
    task = _results(cfg.gen_frm_dir)
    cores = read_prestellar(new_cores)
    test = np.arange(N_NEW)[int(0.9 * N_NEW):]  # the split of the task: the last 10 per cent
    ppv = cores.ppv[..., None]

    model = keras.saving.load_model(trained["model"])
    predicted = model.predict(ppv, verbose=0)
    np.testing.assert_allclose(predicted[test], task["prediction"], rtol=1e-5, atol=1e-5)
    _, mc_std = mc_dropout_predict(model, ppv[test], cfg.mc_samples, seed=cfg.seed)
    np.testing.assert_allclose(mc_std, task["uncertainty"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scan_predict(model, cores.ppv[0], 8), predicted[0],
                               rtol=1e-4, atol=1e-4)

    # normalise -> network -> denormalise, with the training cores' constants taken by hand
    scale = trained["train_ppv"].max()
    mean = trained["train_targets"].mean(axis=(0, 1, 2, 3), dtype=np.float64)
    std = trained["train_targets"].std(axis=(0, 1, 2, 3), dtype=np.float64)
    config = {k: v for k, v in model.get_config().items()
              if k not in ("ppv_scale", "target_mean", "target_std")}
    bare = ColumnNet.from_config({**config, "ppv_scale": 1.0, "target_mean": [0.0, 0.0],
                                  "target_std": [1.0, 1.0]})
    bare.build(ppv.shape)
    bare.set_weights(model.get_weights())
    by_hand = np.asarray(bare(ppv / scale)) * std + mean
    np.testing.assert_allclose(predicted, by_hand, rtol=1e-4, atol=1e-4)

    # physical units: the new cores are predicted as well as the task's own test cores
    truth = cores.targets
    rmse = np.sqrt(np.mean((predicted - truth) ** 2, axis=(0, 1, 2, 3)))
    spread = truth.std(axis=(0, 1, 2, 3))
    print(f"RMSE on new cores {rmse}, task's test RMSE {trained['rmse']}, truth spread {spread}")
    assert np.all(rmse < 1.5 * np.asarray(trained["rmse"])), (rmse, trained["rmse"])
    assert np.all(rmse < 0.8 * spread), (rmse, spread)


def _without_normalisation(path, out):
    """A copy of the .keras file ``path`` whose config lacks the normalisation entries, as
    models were saved before they carried it."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(content)
                for key in ("ppv_scale", "target_mean", "target_std"):
                    del config["config"][key]
                content = json.dumps(config).encode()
            target.writestr(item, content)
    return str(out)


def test_model_saved_without_its_normalisation_is_refused(trained, new_cores, tmp_path):
    old = _without_normalisation(trained["model"], tmp_path / "old.keras")
    with pytest.raises(ValueError, match="ColumnNet config without ppv_scale, target_mean, "
                                         "target_std: saved before"):
        keras.saving.load_model(old)
    cfg = PrestellarConfig(data_dir=str(new_cores), is_training=False, pretrained_model=old,
                           save_dir=str(tmp_path / "none"), gen_frm_dir=str(tmp_path / "res"))
    with pytest.raises(UserInputError, match=r"--pretrained_model: cannot load .*old.keras.*"
                                             "saved before models carried their normalisation"):
        run(cfg, log=_quiet)
    assert not os.path.exists(cfg.gen_frm_dir)
    # as the message says: its weights load into a ColumnNet given the normalisation
    model = keras.saving.load_model(trained["model"])
    rebuilt = ColumnNet.from_config(model.get_config())
    rebuilt.build((None, 16, 16, 16, 1))
    rebuilt.load_weights(old)
    ppv = read_prestellar(new_cores).ppv[:2, ..., None]
    np.testing.assert_array_equal(rebuilt.predict(ppv, verbose=0), model.predict(ppv, verbose=0))

