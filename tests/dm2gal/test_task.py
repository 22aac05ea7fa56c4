"""dm2gal end to end on synthetic TNG files: fields and their standardisation, buffered
samples, training with validation, the stitched test cube, outputs, resuming and bad input."""
import dataclasses
import json
import os

import numpy as np
import pytest

from tfastro.core.errors import UserInputError
from tfastro.dm2gal.config import DM2GalConfig
from tfastro.dm2gal.synthetic import TNGSyntheticParams, tng_paths, write_synthetic_tng
from tfastro.dm2gal.task import run

GRID, WINDOW = 64, 17


def _quiet(*args):
    pass


@pytest.fixture(scope="module")
def tng_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tng")
    write_synthetic_tng(out, TNGSyntheticParams(grid=GRID, particles_per_side=64, seed=2))
    return out


def small_config(tmp_path, tng_dir, **overrides):
    paths = tng_paths(tng_dir)
    cfg = DM2GalConfig(tng_dark_snapshot=paths["snapshot"], tng_dark_groups=paths["dark_groups"],
                       tng_hydro_groups=paths["hydro_groups"], field_dir=str(tmp_path / "fields"),
                       grid_size=GRID, test_region="12,30", validation_region="34,52",
                       window=WINDOW, standardisation="training", dm2gal_batchnorm=False,
                       weighted_sampling=False, dm2gal_ch=8, lr=1e-3, batch_size=32, max_iterations=4,
                       display_interval=2, test_interval=2, snapshot_interval=2,
                       save_dir=str(tmp_path / "ckpt"), gen_frm_dir=str(tmp_path / "res"))
    return dataclasses.replace(cfg, **overrides)


def test_training_explains_held_out_targets_and_writes_the_test_cube(tmp_path, tng_dir):
    """1000 steps on synthetic TNG fields: the held-out test centres' stellar mass is mostly
    explained (a linear fit on the centre voxel's inputs reaches R^2 0.80 on them; seeds 0-3
    reach 0.82-0.84)."""
    cfg = small_config(tmp_path, tng_dir, max_iterations=1000, test_interval=100,
                       snapshot_interval=1000, display_interval=100)
    lines = []
    model = run(cfg, log=lines.append)
    out = os.path.join(cfg.gen_frm_dir, "1000")
    with open(os.path.join(out, "scores.json")) as f:
        scores = json.load(f)
    assert scores["stitch"] == "all" and scores["test"]["centres"] > 50
    assert scores["test"]["r2"] > 0.5, scores
    with open(os.path.join(out, "statistics.json")) as f:
        statistics = json.load(f)
    target, prediction, hod = (np.load(os.path.join(out, f"{n}.npy"))
                               for n in ("target", "prediction", "hod"))
    assert target.shape == prediction.shape == hod.shape == (18, 18, 18)
    np.testing.assert_allclose(statistics["total_mass"]["target"], target.sum(), rtol=1e-5)
    assert len(statistics["bispectrum"]["thetas"]) == 25
    for png in ("power_spectra.png", "bispectra.png", "mass_histograms.png", "slices.png"):
        assert os.path.getsize(os.path.join(out, png)) > 1000
    assert any("validation loss" in line for line in lines)
    # the field files are reused by the next run, not recomputed or overwritten
    stamp = os.path.getmtime(os.path.join(cfg.field_dir, "inputs.npy"))
    again = run(dataclasses.replace(cfg, is_training=False, stitch="above_threshold"), log=_quiet)
    assert os.path.getmtime(os.path.join(cfg.field_dir, "inputs.npy")) == stamp
    assert again["stitch"] == "above_threshold"
    with open(os.path.join(cfg.gen_frm_dir, "1000_2", "statistics.json")) as f:
        assert json.load(f)["stitch"] == "above_threshold"
    assert int(model.optimizer.iterations.numpy()) == 1000
    with open(os.path.join(cfg.field_dir, "standardisation.json")) as f:
        stats = json.load(f)
    stellar = np.load(os.path.join(cfg.field_dir, "stellar.npy"))
    held_out = np.zeros(stellar.shape, bool)
    for lo, hi in ((12, 30), (34, 52)):
        held_out[lo:hi, lo:hi, lo:hi] = True
    samples = ~held_out & (stellar > cfg.stellar_threshold)
    for field in ("dark_matter", "subhalo", "stellar"):
        values = np.log10(1 + np.load(os.path.join(cfg.field_dir, f"{field}.npy"))[samples])
        np.testing.assert_allclose(stats[field], [values.mean(), values.std()], rtol=1e-5)


def test_resuming_continues_the_iteration_count(tmp_path, tng_dir):
    cfg = small_config(tmp_path, tng_dir, max_iterations=2)
    run(cfg, log=_quiet)
    assert sorted(os.listdir(cfg.save_dir)) == ["ckpt-2.keras"]
    lines = []
    model = run(dataclasses.replace(cfg, max_iterations=4), log=lines.append)
    assert any("resuming from" in line for line in lines)
    assert int(model.optimizer.iterations.numpy()) == 4
    assert sorted(os.listdir(cfg.save_dir)) == ["ckpt-2.keras", "ckpt-4.keras"]


@pytest.mark.parametrize("overrides, flag", [
    (dict(tng_dark_snapshot="/nonexistent"), "--tng_dark_snapshot"),
    (dict(test_region="12"), "--test_region"),
    (dict(window=24), "--window"),
    (dict(stellar_threshold=1e30), "--stellar_threshold"),
    (dict(dataset_name="cmd"), "--dataset_name"),
    (dict(stitch="some"), "--stitch"),
])
def test_bad_input_names_the_flag(tmp_path, tng_dir, overrides, flag):
    with pytest.raises(UserInputError, match=flag):
        run(small_config(tmp_path, tng_dir, **overrides), log=_quiet)
    assert not os.path.exists(tmp_path / "ckpt")
