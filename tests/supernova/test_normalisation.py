"""Normalisation as a choice that travels with data and model: physical -> [0, 1] -> physical
round trips against the defining formulas, the .npz keys, MIM3D's .keras file, and a run that
writes forecasts back as densities and refuses data or checkpoints of another normalisation."""
import dataclasses
import os

import keras
import numpy as np
import pytest

from tests.supernova.conftest import GRID, small_config
from tfastro.core.errors import UserInputError
from tfastro.supernova.io import Normalisation, load_sn_npz, save_sn_npz
from tfastro.supernova.model import MIM3D
from tfastro.supernova.synthetic import make_sn_clips, normalise_density, sn_density_clips


def test_log_round_trip_and_clipping():
    norm = Normalisation("log", log_min=-2.0, log_max=1.0, units="g cm-3")
    density = np.array([0.01, 0.1, 1.0, 10.0, 0.316227766, 1e-4, 1e3])
    frames = norm.frames(density)
    np.testing.assert_allclose(frames, [0, 1 / 3, 2 / 3, 1, 0.5, 0, 1], atol=1e-7)
    assert frames.dtype == np.float32
    np.testing.assert_allclose(norm.density(frames)[:5], density[:5], rtol=2e-6)
    np.testing.assert_allclose(norm.density(frames)[5:], [0.01, 10.0], rtol=2e-6)  # clipped
    rng = np.random.default_rng(0)
    inside = 10.0 ** rng.uniform(-2.0, 1.0, size=1000)
    np.testing.assert_allclose(norm.density(norm.frames(inside)), inside, rtol=1e-5)


def test_max_round_trip_and_unknown_scale():
    norm = Normalisation("max", scale=40.0)
    density = np.array([[0.0, 4.0], [20.0, 40.0]])
    np.testing.assert_array_equal(norm.frames(density),
                                  np.array([[0.0, 0.1], [0.5, 1.0]], np.float32))
    clouds = sn_density_clips(1, 3, 8, seed=4)  # the synthetic writer scales by the maximum
    scaled, scale = normalise_density(clouds)
    assert scale == clouds.max() and scaled.max() == 1.0
    np.testing.assert_allclose(scaled, clouds / clouds.max(), rtol=1e-6)
    np.testing.assert_allclose(norm.density(norm.frames(density)), density, rtol=1e-7)
    assert not Normalisation().invertible and norm.invertible
    with pytest.raises(UserInputError, match="without a stored scale"):
        Normalisation().density(density)


@pytest.mark.parametrize("kwargs, match", [
    ({"kind": "sqrt"}, "'sqrt': expected one of max, log"),
    ({"kind": "log", "log_min": 1.0, "log_max": 1.0}, "expected finite log_min < log_max"),
    ({"kind": "log"}, "bounds log10 rho = None, None"),
    ({"kind": "max", "scale": -1.0}, "scale=-1.0; expected a finite positive"),
])
def test_bad_normalisations_are_refused(kwargs, match):
    with pytest.raises(UserInputError, match=match):
        Normalisation(**kwargs)


def test_npz_keeps_the_normalisation_and_files_without_it_still_load(tmp_path):
    frames, clips = make_sn_clips(2, 4, 4, seed=1)
    plain = load_sn_npz(save_sn_npz(tmp_path / "plain.npz", frames, clips))
    assert plain.normalisation() == Normalisation() and plain.metadata[0].keys() == {
        "normalisation"}
    norm = Normalisation("log", log_min=-1.5, log_max=2.0, units="code_density")
    path = save_sn_npz(tmp_path / "log.npz", frames, clips, normalisation=norm,
                       times=np.arange(8.0), box_size=[1.0, 2.0, 3.0], centre=[0.5, 0.5, 0.5],
                       units={"length": "pc", "time": "kyr"})
    data = load_sn_npz(path)
    assert data.normalisation(1) == norm
    np.testing.assert_array_equal(data.metadata[0]["times"], np.arange(8.0))
    assert data.metadata[0]["units"] == {"length": "pc", "time": "kyr"}
    with pytest.raises(UserInputError, match=r"plain.npz: normalised as \{'kind': 'max'\}, "
                       r".*log.npz as \{'kind': 'log'"):
        load_sn_npz(f"{path},{tmp_path / 'plain.npz'}")
    with pytest.raises(UserInputError, match=r"bad.npz: times must be a number array of shape "
                       r"\(8,\)"):
        save_sn_npz(tmp_path / "bad.npz", frames, clips, times=np.arange(3.0))
    assert not (tmp_path / "bad.npz").exists()


def test_mim3d_keeps_its_normalisation_in_the_keras_file(tmp_path):
    norm = {"kind": "log", "log_min": -1.0, "log_max": 2.0}
    model = MIM3D(num_hidden=(2, 2), filter_size=1, input_length=1, total_length=3,
                  normalisation=norm)
    assert MIM3D(num_hidden=(2, 2), input_length=1, total_length=2).normalisation == {
        "kind": "max"}
    model.build((None, 3, 4, 4, 4, 1))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.normalisation == norm
    context = 10.0 ** np.random.default_rng(0).uniform(-1.0, 2.0, (1, 1, 4, 4, 4, 1))
    density = loaded.forecast_density(context, 2)
    frames = loaded.forecast((np.log10(context) + 1.0) / 3.0, 2)
    np.testing.assert_allclose(density, 10.0 ** (-1.0 + 3.0 * np.clip(frames, 0, 1)), rtol=1e-5)
    plain = MIM3D(num_hidden=(2, 2), filter_size=1, input_length=1, total_length=3)
    np.testing.assert_allclose(plain.forecast_density(context, 1, scale=200.0),
                               200.0 * np.clip(plain.forecast(context / 200.0, 1), 0, 1),
                               rtol=1e-5)


def test_run_writes_densities_and_refuses_other_normalisations(tmp_path):
    density = sn_density_clips(4, 6, GRID, seed=2)[:, None]  # (frames, C, X, Y, Z)
    norm = Normalisation("log", log_min=float(np.log10(density.min())),
                         log_max=float(np.log10(density.max())), units="g cm-3")
    frames, clips = make_sn_clips(4, 6, GRID, seed=2)
    path = save_sn_npz(tmp_path / "log.npz", norm.frames(density), clips, normalisation=norm)
    from tfastro.supernova.task import run
    cfg = small_config(tmp_path, path, max_iterations=1, test_interval=1, normalisation="log")
    run(cfg, log=lambda *a: None)
    out = os.path.join(cfg.gen_frm_dir, "1", "1")
    np.testing.assert_allclose(np.load(os.path.join(out, "pd_density.npy")),
                               norm.density(np.load(os.path.join(out, "pd.npy"))), rtol=1e-6)
    with pytest.raises(UserInputError, match=r"--normalisation=max does not match "
                       r"--train_data_paths=.*log.npz: its frames are log-normalised"):
        run(dataclasses.replace(cfg, normalisation="max"), log=None)
    plain = save_sn_npz(tmp_path / "plain.npz", frames, clips)
    with pytest.raises(UserInputError, match=r"ckpt-1.keras' has another configuration "
                       r"\(normalisation: checkpoint \{'kind': 'log'"):
        run(dataclasses.replace(cfg, normalisation="max", is_training=False,
                                valid_data_paths=str(plain)), log=None)
    assert os.listdir(cfg.gen_frm_dir) == ["1"] and os.listdir(cfg.save_dir) == ["ckpt-1.keras"]


def test_a_file_without_normalisation_is_refused_for_log_naming_the_flag(tmp_path, sn_file):
    from tfastro.supernova.task import load_clips
    cfg = small_config(tmp_path, sn_file, normalisation="log")
    with pytest.raises(UserInputError, match=r"^--normalisation=log does not match "
                       r"--valid_data_paths=.*sn.npz: its frames are max-normalised \(it states "
                       r"none: the original's max-scaling\)$"):
        load_clips(cfg, "valid_data_paths")
    assert load_clips(dataclasses.replace(cfg, normalisation="max"),
                      "valid_data_paths").normalisation() == Normalisation()
