"""A saved turbulence model records its preprocessing and applies on its own to a raw cube
(apply_to_cube): the classifier trained through the task, its data deleted, recognises the
classes of new synthetic snapshots as well as the task's test tiles; classifier (also on
flattened power) and U-net equal the preprocessing written out by hand followed by the
network; a model saved before it recorded its preprocessing still loads and is refused by
apply_to_cube with one line."""
import dataclasses
import json
import os
import shutil
import zipfile

import keras
import numpy as np
import pytest

from tfastro.core.checkpoints import save_checkpoint
from tfastro.core.loops import BEST_FILE
from tfastro.turbulence.config import TurbulenceCNNConfig, TurbulenceUNetConfig
from tfastro.turbulence.io import TURBULENCE_CLASSES, read_fits_cube
from tfastro.turbulence.model import apply_to_cube
from tfastro.turbulence.pipeline import equalise_histogram
from tfastro.turbulence.synthetic import snapshot_path, write_synthetic_turbulence
from tfastro.turbulence.task import build_model, run

TILE = 64


def _config(root, config=TurbulenceCNNConfig, **overrides):
    cfg = config(data_dir=str(root / "data"), tile_size=TILE, epochs=6, patience=3,
                 saliency_images=1, save_dir=str(root / "ckpt"), gen_frm_dir=str(root / "res"))
    return dataclasses.replace(cfg, **overrides)


@pytest.fixture(scope="module")
def new_snapshots(tmp_path_factory):
    """One new synthetic 128^3 snapshot per class (seed 9), in a new folder:
    [(path, label)]."""
    out = tmp_path_factory.mktemp("new_turbulence")
    write_synthetic_turbulence(out, size=128, snapshots=1, seed=9)
    return [(snapshot_path(out, name, 0), label) for label, name in enumerate(TURBULENCE_CLASSES)]


def _saved(root, config=TurbulenceCNNConfig, **overrides):
    """A model built as the task builds it from ``config`` and ``overrides``, checkpointed and
    loaded back."""
    cfg = _config(root, config, **overrides)
    keras.utils.set_random_seed(0)
    model = build_model(cfg)
    model.optimizer.build(model.trainable_variables)
    return keras.saving.load_model(save_checkpoint(model, cfg.save_dir, 0))


def _tiles(image):
    """(H, W) -> (T, TILE, TILE), row-major, written out with slicing."""
    return np.stack([image[i:i + TILE, j:j + TILE] for i in range(0, image.shape[0], TILE)
                     for j in range(0, image.shape[1], TILE)])


def _byte_scaled(cube):
    log = np.log10(cube.astype(np.float64))
    return ((log - log.min()) * 255.0 / (log.max() - log.min())).astype(np.float32)


def test_trained_classifier_scores_new_snapshots_as_the_tasks_test_tiles(tmp_path,
                                                                         new_snapshots):
    cfg = _config(tmp_path, blur_sigmas="0")
    write_synthetic_turbulence(cfg.data_dir, size=128, snapshots=3, seed=1)
    report = run(cfg, log=lambda *a: None)
    path = tmp_path / "model" / "classifier.keras"
    path.parent.mkdir()
    shutil.copy(os.path.join(cfg.save_dir, BEST_FILE), path)  # the weights the report scored
    for folder in (cfg.data_dir, cfg.save_dir, cfg.gen_frm_dir):
        shutil.rmtree(folder)

    loaded = keras.saving.load_model(str(path))
    settings = loaded.get_layer("preprocessing")
    assert settings.field == "density" and settings.class_names == list(TURBULENCE_CLASSES)
    recall = []
    for snapshot, label in new_snapshots:
        logits = apply_to_cube(loaded, read_fits_cube(snapshot, settings.field))
        assert logits.shape == (128, 4, 5)  # slices, tiles, classes
        recall.append(np.mean(np.argmax(logits, axis=-1) == label))
    print(f"recall on new snapshots {np.round(recall, 3)}, on the task's test tiles "
          f"{np.round(report['per_class']['recall'], 3)}")
    assert np.mean(recall) > report["accuracy"] - 0.1  # classes of equal support in both
    # each class is one new snapshot, its tiles correlated: a marginal class scatters by ~0.2
    np.testing.assert_allclose(recall, report["per_class"]["recall"], atol=0.25)


@pytest.mark.parametrize("flattened_power", [False, True])
def test_classifier_applies_its_recorded_preprocessing(tmp_path, new_snapshots,
                                                       flattened_power):
    model = _saved(tmp_path, flattened_power=flattened_power)
    cube = read_fits_cube(new_snapshots[0][0], "density")
    logits = apply_to_cube(model, cube, batch_size=50)
    slices = _byte_scaled(cube)
    for s in (0, 77):
        image = slices[s].astype(np.float64)
        if flattened_power:  # phases only
            image = np.fft.ifft2(np.exp(1j * np.angle(np.fft.fft2(image)))).real
        tiles = equalise_histogram(_tiles(image.astype(np.float32)))[..., None]
        np.testing.assert_allclose(logits[s], model.predict(tiles, verbose=0), rtol=1e-4,
                                   atol=1e-4)


def test_unet_applies_its_recorded_preprocessing(tmp_path, new_snapshots):
    model = _saved(tmp_path, TurbulenceUNetConfig, turb_target="cr_energy_density")
    settings = model.get_layer("preprocessing")
    assert (settings.field, settings.target_field) == ("density", "cr_energy_density")
    cube = read_fits_cube(new_snapshots[1][0], "density")
    predicted = apply_to_cube(model, cube, projection=3)
    assert predicted.shape == (128, 128, 128, 1)
    windows = np.stack([cube[(s + np.arange(3)) % 128].mean(axis=0, dtype=np.float64)
                        for s in range(128)])  # periodic windows of 3 slices
    image = _byte_scaled(windows.astype(np.float32))[10]
    tiles = model.predict((_tiles(image) / 255.0)[..., None], verbose=0)[..., 0]
    np.testing.assert_allclose(predicted[10, ..., 0], np.block([[tiles[0], tiles[1]],
                                                                [tiles[2], tiles[3]]]),
                               rtol=1e-4, atol=1e-4)


def _without_preprocessing(path, out):
    """A copy of the .keras file ``path`` whose graph has no preprocessing layer (the network
    reads the input directly), as models were saved before they recorded it."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(content)
                config["config"]["layers"] = [layer for layer in config["config"]["layers"]
                                              if layer["name"] != "preprocessing"]
                content = json.dumps(config).replace('"keras_history": ["preprocessing"',
                                                     '"keras_history": ["images"').encode()
            target.writestr(item, content)
    return str(out)


def test_model_saved_before_it_recorded_its_preprocessing(tmp_path, new_snapshots):
    model = _saved(tmp_path)
    functional = keras.Model(model.input, model.output)  # as models were saved then
    path = save_checkpoint(functional, str(tmp_path / "new"), 0)
    old = keras.saving.load_model(_without_preprocessing(path, tmp_path / "old.keras"))
    assert "preprocessing" not in [layer.name for layer in old.layers]
    tiles = np.random.default_rng(0).random((3, TILE, TILE, 1)).astype(np.float32)
    np.testing.assert_array_equal(old.predict(tiles, verbose=0), model.predict(tiles, verbose=0))
    with pytest.raises(ValueError, match="records no preprocessing .saved before models "
                                         "carried it."):
        apply_to_cube(old, read_fits_cube(new_snapshots[0][0], "density"))
