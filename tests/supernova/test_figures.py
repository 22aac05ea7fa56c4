"""Cross-section PNGs and forecast GIFs: files, counts, pixel values, frame counts."""
import os

import numpy as np
import pytest
from PIL import Image

from tfastro.supernova.figures import central_slice, save_cross_sections, save_forecast_gif


def test_central_slice_uses_the_real_grid_middle(rng):
    clip = rng.random((3, 10, 12, 9, 2))
    np.testing.assert_array_equal(central_slice(clip), clip[:, :, :, 4, 0])
    np.testing.assert_array_equal(central_slice(clip, axis=0, channel=1), clip[:, 5, :, :, 1])
    np.testing.assert_array_equal(central_slice(clip, axis=1), clip[:, :, 6, :, 0])
    with pytest.raises(ValueError):
        central_slice(clip[0])


def test_cross_sections_names_counts_and_pixels(rng, tmp_path):
    clip = rng.random((5, 10, 12, 9, 1)) * 1.2 - 0.1  # includes values outside [0, 1]
    pred = clip[2:] * 0.5
    paths = save_cross_sections(clip, pred, tmp_path / "out")
    names = sorted(os.listdir(tmp_path / "out"))
    assert names == sorted([f"gt{i}.png" for i in range(1, 6)] + ["pd3.png", "pd4.png", "pd5.png"])
    assert len(paths) == 8
    for i in range(1, 6):
        with Image.open(tmp_path / "out" / f"gt{i}.png") as im:
            assert im.format == "PNG" and im.mode == "L" and im.size == (12, 10)
            want = np.uint8(np.clip(clip[i - 1, :, :, 9 // 2, 0], 0, 1) * 255)
            np.testing.assert_array_equal(np.asarray(im), want)
    with Image.open(tmp_path / "out" / "pd4.png") as im:
        want = np.uint8(np.clip(pred[1, :, :, 4, 0], 0, 1) * 255)
        np.testing.assert_array_equal(np.asarray(im), want)


def test_cross_sections_reject_a_longer_forecast(rng, tmp_path):
    clip = rng.random((3, 8, 8, 8, 1))
    with pytest.raises(ValueError):
        save_cross_sections(clip[:2], clip, tmp_path)


def test_forecast_gif_has_one_frame_per_step(rng, tmp_path):
    import matplotlib.pyplot as plt

    n_frames = 6
    truth = rng.random((n_frames, 16, 16, 16, 1))
    pred = np.clip(truth + 0.1 * rng.standard_normal(truth.shape), 0, 1)
    path = save_forecast_gif(truth, pred, str(tmp_path / "gifs" / "clip.gif"), fps=4)
    with Image.open(path) as im:
        assert im.format == "GIF"
        assert im.n_frames == n_frames
        assert im.info["duration"] == 250
        first = np.asarray(im.convert("RGB"))
        im.seek(n_frames - 1)
        last = np.asarray(im.convert("RGB"))
    assert first.shape[1] > first.shape[0]  # two panels side by side
    assert not np.array_equal(first, last)
    assert plt.get_fignums() == []  # no pyplot figure created or left open


def test_forecast_gif_rejects_mismatched_shapes(rng, tmp_path):
    truth = rng.random((4, 8, 8, 8, 1))
    with pytest.raises(ValueError):
        save_forecast_gif(truth, truth[:3], str(tmp_path / "x.gif"))
