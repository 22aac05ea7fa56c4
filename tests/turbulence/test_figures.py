"""Turbulence figures: PNGs at the documented pixel size, and plotted values equal to the data."""
import numpy as np
import pytest

from tests import pngs
from tfastro.core.figures import PLOT_PANEL
from tfastro.turbulence.evaluation import confusion_matrix, gaussian_transfer
from tfastro.turbulence.figures import (CONFUSION_SIZE, plot_blur_sweep, plot_blurred_spectra,
                                        plot_confusion_matrix, plot_occlusion, plot_saliency)

DPI = 40
NAMES = ["MHD", "advection", "diffusion"]


def read_png(path, width_in, height_in):
    return pngs.read_png(path, width_in, height_in, DPI)


@pytest.fixture(scope="module")
def tiles():
    rng = np.random.default_rng(3)
    images = rng.random((3, 16, 16, 1)).astype(np.float32)
    rows, cols = np.indices((16, 16))
    maps = np.stack([np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / 18.0)
                     for r, c in [(4, 4), (8, 12), (12, 6)]])
    return images, maps


def test_confusion_matrix_shows_the_matrix(tmp_path):
    labels, predicted = [0, 0, 0, 1, 1, 2, 2, 2], [0, 0, 1, 1, 2, 2, 2, 2]
    matrix = confusion_matrix(labels, predicted, 3)
    fig = plot_confusion_matrix(matrix, NAMES, title="test")
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.images[0].get_array(), matrix)
    assert ax.images[0].get_clim() == (0, 1.0)
    assert [t.get_text() for t in ax.texts] == ["0.67", "0.33", "0.00", "0.00", "0.50", "0.50",
                                                "0.00", "0.00", "1.00"]
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES
    counts = plot_confusion_matrix(confusion_matrix(labels, predicted, 3, normalise=None))
    assert counts.axes[0].texts[0].get_text() == "2"
    assert counts.axes[0].images[0].get_clim() == (0, 3)
    path = str(tmp_path / "figs" / "confusion.png")
    assert plot_confusion_matrix(matrix, NAMES, path, dpi=DPI) == path
    read_png(path, *CONFUSION_SIZE)
    with pytest.raises(ValueError, match="class_names"):
        plot_confusion_matrix(matrix, NAMES[:2])


def test_saliency_overlay_and_contour(tiles, tmp_path):
    images, maps = tiles
    fig = plot_saliency(images, maps, titles=["a", "b", "c"], level=0.6)
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 6
    for n in range(3):
        np.testing.assert_allclose(image_axes[n].images[0].get_array(), images[n, ..., 0])
        overlay = image_axes[3 + n].images
        np.testing.assert_allclose(overlay[0].get_array(), images[n, ..., 0])
        np.testing.assert_allclose(overlay[1].get_array(), maps[n])
        contour = image_axes[3 + n].collections[0]
        np.testing.assert_allclose(contour.levels, [0.6 * maps[n].max()])
    assert image_axes[0].get_title() == "a"
    path = plot_saliency(images, maps, path=str(tmp_path / "saliency.png"), dpi=DPI,
                         panel_size=1.5)
    read_png(path, 3 * 1.5, 2 * 1.5)
    with pytest.raises(ValueError, match="maps"):
        plot_saliency(images, maps[:2])


def test_occlusion_colour_scale_is_symmetric(tiles, tmp_path):
    images, maps = tiles
    drops = maps - 0.3 * maps[::-1]
    fig = plot_occlusion(images, drops)
    bottom = [ax for ax in fig.axes if ax.images][3:]
    limit = np.abs(drops).max()
    for n, ax in enumerate(bottom):
        np.testing.assert_allclose(ax.images[0].get_array(), drops[n])
        np.testing.assert_allclose(ax.images[0].get_clim(), (-limit, limit))
    path = plot_occlusion(images, drops, path=str(tmp_path / "occlusion.png"), dpi=DPI)
    read_png(path, 3 * 2.0, 2 * 2.0)


def test_blur_sweep_plots_the_chosen_class(tmp_path):
    sigmas = [0.0, 2.0, 4.0]
    rng = np.random.default_rng(0)
    means = rng.dirichlet(np.ones(3), size=(3, 3))  # (sigma, true, class)
    summary = {"sigmas": sigmas, "support": [4, 0, 5],
               "mean_probability": [[means[s, 0].tolist(), None, means[s, 2].tolist()]
                                    for s in range(3)]}
    ax = plot_blur_sweep(summary, class_index=2, class_names=NAMES).axes[0]
    assert [line.get_label() for line in ax.lines] == ["true MHD", "true diffusion"]
    np.testing.assert_allclose(ax.lines[0].get_xdata(), sigmas)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), means[:, 0, 2])
    np.testing.assert_allclose(ax.lines[1].get_ydata(), means[:, 2, 2])
    assert ax.get_ylabel() == "mean P(diffusion)"
    other = plot_blur_sweep(summary, class_index=0).axes[0]
    np.testing.assert_allclose(other.lines[1].get_ydata(), means[:, 2, 0])
    path = plot_blur_sweep(summary, path=str(tmp_path / "blur.png"), dpi=DPI)
    read_png(path, *PLOT_PANEL)
    with pytest.raises(ValueError, match="class_index"):
        plot_blur_sweep(summary, class_index=3)


def test_blurred_spectra_ratio_and_transfer(tmp_path):
    k = np.linspace(0.1, 3.0, 20)
    sigmas = (0.0, 2.0, 4.0)
    spectra = np.stack([k**-2 * gaussian_transfer(k, s) ** 2 * (1 + 0.1 * s) for s in sigmas])
    fig = plot_blurred_spectra(k, spectra, sigmas)
    top, bottom = fig.axes
    np.testing.assert_allclose(top.lines[1].get_ydata(), spectra[1])
    # per sigma: the measured ratio, then the dashed analytic transfer
    np.testing.assert_allclose(bottom.lines[2].get_ydata(), spectra[1] / spectra[0])
    np.testing.assert_allclose(bottom.lines[3].get_ydata(), np.exp(-(k * 2.0) ** 2))
    np.testing.assert_allclose(bottom.lines[4].get_ydata(), 1.4 * bottom.lines[5].get_ydata())
    path = plot_blurred_spectra(k, spectra, sigmas, str(tmp_path / "spectra.png"), dpi=DPI)
    read_png(path, PLOT_PANEL[0], PLOT_PANEL[1] * 1.5)
    with pytest.raises(ValueError, match="spectra"):
        plot_blurred_spectra(k, spectra[:2], sigmas)
