"""Forecast scores against hand-computed values (SSIM itself: test_image_metrics.py)."""
import json
import warnings

import numpy as np
import pytest

from tfastro.fields.image_metrics import ssim3d
from tfastro.supernova.evaluation import ForecastScores, frame_mae, frame_mse, frame_psnr


def full(value, shape=(2, 4, 4, 4, 1)):
    return np.full(shape, value, dtype=np.float32)


# ---------------------------------------------------------------- frame metrics

def test_mse_is_per_sample_sum_of_squares():
    true = full(0.25)
    pred = full(0.5)
    pred[1] = 0.0  # second sample: error 0.25 too, but of opposite sign
    pred[1, 0, 0, 0, 0] = 1.0  # one voxel off by 0.75
    np.testing.assert_allclose(frame_mse(pred, true), [64 * 0.0625, 63 * 0.0625 + 0.5625])


def test_mae_is_per_sample_mean():
    true = full(0.25)
    pred = np.concatenate([full(0.5, (1, 4, 4, 4, 1)), full(0.0, (1, 4, 4, 4, 1))])
    pred[1, :2] = 1.25  # 32 of 64 voxels off by 1 (unclipped), the rest by 0.25
    np.testing.assert_allclose(frame_mae(pred, true), [0.25, (32 * 1.0 + 32 * 0.25) / 64])


def test_mse_clips_prediction_but_mae_does_not():
    true = np.concatenate([full(1.0, (1, 4, 4, 4, 1)), full(0.0, (1, 4, 4, 4, 1))])
    pred = np.concatenate([full(1.5, (1, 4, 4, 4, 1)), full(-0.5, (1, 4, 4, 4, 1))])
    np.testing.assert_array_equal(frame_mse(pred, true), [0.0, 0.0])
    np.testing.assert_allclose(frame_mae(pred, true), [0.5, 0.5])


def test_psnr_on_uint8_frames():
    # uint8(0.25*255) = 63, uint8(0.5*255) = 127, uint8(0.75*255) = 191.
    true = full(0.25)
    pred = np.concatenate([full(0.5, (1, 4, 4, 4, 1)), full(0.75, (1, 4, 4, 4, 1))])
    np.testing.assert_allclose(frame_psnr(pred, true),
                               [20 * np.log10(255 / 64), 20 * np.log10(255 / 128)])


def test_psnr_truncates_like_np_uint8():
    # 0.999*255 = 254.7 -> 254, against 255: MSE 1, PSNR = 20 log10(255).
    np.testing.assert_allclose(frame_psnr(full(0.999), full(1.0)), 20 * np.log10(255.0))


def test_psnr_of_identical_frames_is_inf_without_warning():
    true = full(0.3)
    pred = true.copy()
    pred[1] = 0.6
    pred[0] += 1e-4  # below one uint8 step: still identical after scaling
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        psnr = frame_psnr(pred, true)
    assert psnr[0] == np.inf
    assert np.isfinite(psnr[1])


def test_psnr_clips_prediction():
    assert frame_psnr(full(1.7), full(1.0))[0] == np.inf


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        frame_mse(full(0.1, (2, 4, 4, 4, 1)), full(0.1, (2, 4, 4, 3, 1)))


# ---------------------------------------------------------------- ForecastScores

def test_scores_average_every_sample_of_every_batch():
    shape = (2, 8, 8, 8, 1)  # (T_out, X, Y, Z, C); 512 voxels a frame
    scores = ForecastScores(output_length=2)
    # batch A: two samples, prediction 0.5 against truth 0.25
    scores.update(np.full((2,) + shape, 0.25), np.full((2,) + shape, 0.5), np.full((2, 8, 8, 8, 1), 0.25))
    # batch B: one sample, prediction 0.75 against truth 0.25
    scores.update(np.full((1,) + shape, 0.25), np.full((1,) + shape, 0.75), np.full((1, 8, 8, 8, 1), 0.25))
    res = scores.result()
    assert res["clips"] == 3

    def ssim_const(a, b):
        return (2 * a * b + 1e-4) / (a**2 + b**2 + 1e-4)

    want = {
        "mse": (2 * 512 * 0.25**2 + 512 * 0.5**2) / 3,  # 64, not the batch-mean 80
        "mae": (2 * 0.25 + 0.5) / 3,
        "psnr": (2 * 20 * np.log10(255 / 64) + 20 * np.log10(255 / 128)) / 3,
        "ssim": (2 * ssim_const(0.5, 0.25) + ssim_const(0.75, 0.25)) / 3,
        "shell_iou": 0.0,  # truth has no shell (equals the initial frame), forecast is all shell
    }
    for key, value in want.items():
        np.testing.assert_allclose(res["per_frame"][key], [value, value], rtol=1e-12, err_msg=key)
        np.testing.assert_allclose(res["mean"][key], value, rtol=1e-12, err_msg=key)
    # The true shell is empty, so no radius error can be formed.
    assert res["per_frame"]["shell_radius_error"] == [None, None]
    assert res["mean"]["shell_radius_error"] is None
    assert res["radius_skipped"] == [3, 3]
    assert res["psnr_infinite"] == [0, 0]
    json.dumps(res, allow_nan=False)


def test_scores_ssim_is_ssim3d_of_clipped_prediction(rng):
    # 8^3 cubes: the 7^3 window of ssim3d; a frame of random noise and one close to the truth.
    true = rng.random((2, 2, 8, 8, 8, 1))
    pred = true + 0.3 * rng.standard_normal(true.shape)
    pred[:, 1] = rng.random(pred[:, 1].shape) * 1.4 - 0.2
    scores = ForecastScores(output_length=2)
    scores.update(true, pred, np.full((2, 8, 8, 8, 1), 0.5))
    got = scores.result()["per_frame"]["ssim"]
    want = [ssim3d(np.clip(pred[:, t], 0, 1), true[:, t]).mean() for t in range(2)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert got[1] < 0.1 < got[0] < 1


def sphere_rim(n, radius, inside=0.2, rim=0.8):
    """(n, n, n, 1) cube: ``rim`` where |r - radius| < 0.5 voxel from the grid centre."""
    c = (n - 1) / 2
    i, j, k = np.indices((n, n, n))
    r = np.sqrt((i - c) ** 2 + (j - c) ** 2 + (k - c) ** 2)
    return np.where(np.abs(r - radius) < 0.5, rim, inside)[..., None]


def test_shell_iou_and_radius_error_on_planted_spheres():
    n = 24
    initial = np.full((1, n, n, n, 1), 0.2)
    # frame 1: identical shells at r=4; frame 2: truth at r=5, forecast at r=7
    true = np.stack([sphere_rim(n, 4), sphere_rim(n, 5)])[None]
    pred = np.stack([sphere_rim(n, 4), sphere_rim(n, 7)])[None]
    scores = ForecastScores(output_length=2)
    scores.update(true, pred, initial)
    res = scores.result()
    assert res["per_frame"]["shell_iou"] == [1.0, 0.0]
    assert res["per_frame"]["shell_radius_error"][0] == 0.0
    assert res["per_frame"]["shell_radius_error"][1] == pytest.approx(2.0, abs=0.2)
    assert res["psnr_infinite"] == [1, 0]
    assert res["per_frame"]["psnr"][0] is None
    assert res["radius_skipped"] == [0, 0]
    json.dumps(res, allow_nan=False)


def test_density_channel_selects_the_mask_channel():
    n = 16
    initial = np.full((1, n, n, n, 2), 0.2)
    true = np.concatenate([sphere_rim(n, 4), np.full((n, n, n, 1), 0.2)], axis=-1)[None, None]
    pred = true.copy()
    pred[..., 1] = 0.9  # a second field that rises everywhere in the forecast only
    summed = ForecastScores(output_length=1)
    summed.update(true, pred, initial)
    density = ForecastScores(output_length=1, density_channel=0)
    density.update(true, pred, initial)
    assert summed.result()["per_frame"]["shell_iou"][0] < 0.1
    assert density.result()["per_frame"]["shell_iou"][0] == 1.0


def test_update_checks_shapes():
    scores = ForecastScores(output_length=3)
    frames = np.zeros((1, 2, 4, 4, 4, 1))
    with pytest.raises(ValueError, match="output frames"):
        scores.update(frames, frames, np.zeros((1, 4, 4, 4, 1)))
    frames = np.zeros((1, 3, 4, 4, 4, 1))
    with pytest.raises(ValueError, match="initial"):
        scores.update(frames, frames, np.zeros((1, 4, 4, 5, 1)))


def test_format_table_has_one_row_per_frame():
    scores = ForecastScores(output_length=3)
    shape = (2, 3, 6, 6, 6, 1)
    scores.update(np.full(shape, 0.25), np.full(shape, 0.5), np.full((2, 6, 6, 6, 1), 0.2))
    lines = scores.format_table().splitlines()
    assert len(lines) == 2 + 3 + 1  # caption, header, frames, mean
    assert lines[0].startswith("2 clips")
    assert lines[2].split()[0] == "1" and lines[-1].split()[0] == "mean"
    mse = 216 * 0.0625
    assert float(lines[2].split()[1]) == pytest.approx(mse, rel=1e-3)
