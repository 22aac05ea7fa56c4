"""3D-MIM training end to end: resuming is exact, outputs are written, training learns."""
import dataclasses
import json
import os

import numpy as np
import pytest

from tests.supernova.conftest import small_config
from tfastro.core.errors import UserInputError
from tfastro.supernova.io import load_sn_npz, save_sn_npz
from tfastro.supernova.model import sampling_eta
from tfastro.supernova.synthetic import make_sn_clips
from tfastro.supernova.task import run


def _quiet(*args):
    pass


def _state(model):
    return ([np.asarray(v) for v in model.weights],
            [np.asarray(v) for v in model.optimizer.variables])


def test_resumed_run_equals_uninterrupted_run(tmp_path, sn_file):
    whole = small_config(tmp_path / "a", sn_file, max_iterations=4, sampling_changing_rate=0.2)
    reference = run(whole, log=_quiet)
    split = small_config(tmp_path / "b", sn_file, max_iterations=2, sampling_changing_rate=0.2)
    run(split, log=_quiet)
    assert sorted(os.listdir(split.save_dir)) == ["ckpt-1.keras", "ckpt-2.keras"]
    lines = []
    resumed = run(dataclasses.replace(split, max_iterations=4), log=lines.append)
    assert any("resuming from" in line and "ckpt-2.keras" in line for line in lines)
    assert int(resumed.iteration.numpy()) == 4
    assert int(resumed.optimizer.iterations.numpy()) == 8  # two passes (reverse_input) each
    np.testing.assert_allclose(float(resumed.sampling_eta.numpy()),
                               float(sampling_eta(4, 1.0, 0.2, 50000)), rtol=1e-6)
    ref_w, ref_opt = _state(reference)
    res_w, res_opt = _state(resumed)
    for a, b in zip(ref_w + ref_opt, res_w + res_opt):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    # A checkpoint written before stays: resuming never deletes what it did not write anew.
    assert os.path.exists(os.path.join(split.save_dir, "ckpt-2.keras"))


def test_forecast_outputs(tmp_path, sn_file):
    cfg = small_config(tmp_path, sn_file, max_iterations=1, test_interval=1, num_save_samples=2)
    run(cfg, log=_quiet)
    out = os.path.join(cfg.gen_frm_dir, "1")
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["clips"] == 6 and metrics["iteration"] == 1
    assert len(metrics["per_frame"]["ssim"]) == cfg.total_length - cfg.input_length
    for k in ("1", "2"):
        gt = np.load(os.path.join(out, k, "gt.npy"))
        pd = np.load(os.path.join(out, k, "pd.npy"))
        assert gt.shape == (6, 8, 8, 8, 1) and pd.shape == (4, 8, 8, 8, 1)
        assert os.path.exists(os.path.join(out, k, "forecast.gif"))
        assert os.path.exists(os.path.join(out, k, "pd6.png"))
    assert not os.path.exists(os.path.join(out, "3"))
    # Forecasting the same checkpoint again writes beside, not over, the first results.
    again = dataclasses.replace(cfg, is_training=False)
    run(again, log=_quiet)
    run(again, log=_quiet)
    assert sorted(os.listdir(cfg.gen_frm_dir)) == ["1", "1_2", "1_3"]
    with open(os.path.join(cfg.gen_frm_dir, "1_2", "metrics.json")) as f:
        repeated = json.load(f)
    with open(os.path.join(cfg.gen_frm_dir, "1_3", "metrics.json")) as f:
        assert json.load(f)["per_frame"] == repeated["per_frame"]  # no state leaks


def _copy_last_frame_loss(data, cfg):
    """Validation MSE of repeating the last context frame over the output frames."""
    errors = []
    for i in range(data.num_clips):
        clip = data.clip(i, cfg.total_length)
        last = clip[cfg.input_length - 1]
        errors.append(np.mean((clip[cfg.input_length:] - last) ** 2))
    return float(np.mean(errors))


def test_training_beats_copying_the_last_frame(tmp_path):
    frames, clips = make_sn_clips(16, 8, 8, medium="uniform", seed=5)
    path = save_sn_npz(tmp_path / "uniform.npz", frames, clips)
    cfg = small_config(tmp_path, path, input_length=3, total_length=8, num_hidden="8,8",
                       patch_size=1, batch_size=4, max_iterations=150, test_interval=150,
                       snapshot_interval=150, num_save_samples=0, sampling_stop_iter=100,
                       sampling_changing_rate=0.01, lr=0.005, reverse_input=False)
    run(cfg, log=_quiet)
    with open(os.path.join(cfg.gen_frm_dir, "150", "metrics.json")) as f:
        metrics = json.load(f)
    voxels = 8 ** 3
    model_mse = metrics["mean"]["mse"] / voxels  # frame_mse sums over voxels
    baseline = _copy_last_frame_loss(load_sn_npz(path), cfg)
    print(f"validation MSE {model_mse:.5f}, copy-the-last-frame {baseline:.5f}")
    assert model_mse < 0.5 * baseline, (model_mse, baseline)


def test_channel_peepholes_forecast_a_larger_grid(tmp_path, sn_file):
    cfg = small_config(tmp_path, sn_file, peephole="channel", max_iterations=1)
    run(cfg, log=_quiet)
    frames, clips = make_sn_clips(2, 6, 16, seed=4)
    big = save_sn_npz(tmp_path / "big.npz", frames, clips)
    on_big = dict(is_training=False, valid_data_paths=big, img_width=16, img_depth=16)
    result = run(dataclasses.replace(cfg, **on_big), log=_quiet)
    assert result["clips"] == 2
    pd = np.load(os.path.join(cfg.gen_frm_dir, "1", "1", "pd.npy"))
    assert pd.shape == (4, 16, 16, 16, 1) and np.all(np.isfinite(pd))
    voxel = small_config(tmp_path / "voxel", sn_file, max_iterations=1)
    run(voxel, log=_quiet)
    with pytest.raises(UserInputError, match="grid"):
        run(dataclasses.replace(voxel, **on_big), log=_quiet)
