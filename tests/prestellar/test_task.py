"""The column network end to end on synthetic prestellar cores: training recovers the
log-density profiles and the sign of the line-of-sight velocity, windowed evaluation, outputs,
resuming and bad input."""
import dataclasses
import json
import os

import numpy as np
import pytest

from tfastro.core.errors import UserInputError
from tfastro.prestellar.config import PrestellarConfig
from tfastro.prestellar.io import write_prestellar
from tfastro.prestellar.synthetic import synthetic_cores
from tfastro.prestellar.task import run


@pytest.fixture(scope="module")
def cores_dir(tmp_path_factory):
    """80 synthetic cores of 16^3 cells observed in 16 channels."""
    out = tmp_path_factory.mktemp("prestellar")
    write_prestellar(out, synthetic_cores(80, n=16, n_channels=16, seed=4), fits_files=False)
    return out


def small_config(tmp_path, data_dir, **overrides):
    cfg = PrestellarConfig(data_dir=str(data_dir), epochs=30, patience=30, lr=3e-3, mc_samples=4,
                       save_dir=str(tmp_path / "ckpt"), gen_frm_dir=str(tmp_path / "res"))
    return dataclasses.replace(cfg, **overrides)


def test_training_recovers_profiles_and_the_sign_of_the_velocity(tmp_path, cores_dir):
    """On held-out cores the log density along every line of sight and the radial profiles
    are much closer to the truth than the training cores' mean cube, and v_z has the right
    sign almost everywhere it exceeds a channel width."""
    cfg = small_config(tmp_path, cores_dir)
    metrics = run(cfg, log=lambda *a: None)
    net, base = metrics["network"], metrics["mean_profile_baseline"]
    assert net["log_density"]["rmse"] < 0.6 * base["log_density"]["rmse"], (net, base)
    profiles = metrics["profiles"]
    assert (profiles["prediction"]["summary"]["profile_rmse"]
            < 0.6 * profiles["baseline"]["summary"]["profile_rmse"]), profiles
    assert net["v_z"]["rmse"] < 0.5 * base["v_z"]["rmse"]
    assert net["v_sign"]["voxel_accuracy"] > 0.9 and net["v_sign"]["voxel_count"] > 1000
    assert net["v_sign"]["column_accuracy"] > 0.9
    out = os.path.join(cfg.gen_frm_dir, str(metrics["iteration"]))
    prediction, uncertainty = (np.load(os.path.join(out, f"{n}.npy"))
                               for n in ("prediction", "uncertainty"))
    assert prediction.shape == uncertainty.shape == (8, 16, 16, 16, 2)
    assert np.all(uncertainty >= 0) and uncertainty.mean() > 0
    for png in ("ppv.png", "profiles.png", "slices.png", "uncertainty.png"):
        assert os.path.getsize(os.path.join(out, png)) > 1000

    windowed = run(dataclasses.replace(cfg, is_training=False, scan_window=8),
                   log=lambda *a: None)
    assert windowed["prediction"] == "windowed"
    np.testing.assert_allclose(windowed["network"]["log_density"]["rmse"],
                               net["log_density"]["rmse"], rtol=1e-4)
    with open(os.path.join(out, "metrics.json")) as f:
        assert json.load(f)["network"] == net


def test_resuming_continues_the_epochs(tmp_path, cores_dir):
    cfg = small_config(tmp_path, cores_dir, epochs=1, mc_samples=2)
    first = run(cfg, log=lambda *a: None)["iteration"]
    lines = []
    second = run(dataclasses.replace(cfg, epochs=2), log=lines.append)["iteration"]
    assert second == 2 * first and any(line.startswith("resuming from") for line in lines)
    assert sorted(os.listdir(cfg.gen_frm_dir)) == sorted([str(first), str(second)])


@pytest.mark.parametrize("overrides, message", [
    ({"data_dir": "nowhere"}, "--data_dir='nowhere'"),
    ({"column_dropout": 1.0}, "--column_dropout"),
    ({"dataset_name": "turbulence"}, "--dataset_name='turbulence'"),
    ({"scan_window": -1}, "--scan_window"),
])
def test_bad_input_names_the_flag(tmp_path, cores_dir, overrides, message):
    cfg = dataclasses.replace(small_config(tmp_path, cores_dir), **overrides)
    with pytest.raises(UserInputError, match=message):
        run(cfg, log=lambda *a: None)
    assert not os.path.exists(cfg.save_dir)


def test_checkpoint_of_another_architecture_is_refused(tmp_path, cores_dir):
    cfg = small_config(tmp_path, cores_dir, epochs=1, mc_samples=2)
    run(cfg, log=lambda *a: None)
    with pytest.raises(UserInputError, match=r"--save_dir.*'width': 8"):
        run(dataclasses.replace(cfg, column_width=8), log=lambda *a: None)
