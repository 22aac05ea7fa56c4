"""Prestellar figures: PNGs at the documented pixel size, and the plotted values equal to the
data (maps are drawn transposed: first named axis horizontal, origin at the bottom)."""
import numpy as np
import pytest

from tests import pngs
from tests.pngs import image_axes
from tfastro.core.figures import PLOT_PANEL
from tfastro.prestellar.evaluation import PlummerFit, plummer_log_profile
from tfastro.prestellar.figures import plot_ppv, plot_profiles, plot_slices, plot_uncertainty

DPI = 40


def read_png(path, width_in, height_in):
    return pngs.read_png(path, width_in, height_in, DPI)



@pytest.fixture(scope="module")
def targets():
    """(true, predicted) targets (8, 6, 10, 2): a non-cubic grid catches swapped axes."""
    rng = np.random.default_rng(5)
    true = rng.normal(size=(8, 6, 10, 2))
    return true, true + 0.1 * rng.normal(size=true.shape)


def test_ppv_moment_spectrum_and_pv_slice(tmp_path):
    ppv = np.random.default_rng(0).random((8, 6, 10))
    v = np.linspace(-2.0, 2.5, 10)  # channel width 0.5
    fig = plot_ppv(ppv, v)
    moment, pv = image_axes(fig)
    np.testing.assert_allclose(moment.images[0].get_array(), 0.5 * ppv.sum(axis=2).T)
    np.testing.assert_allclose(pv.images[0].get_array(), ppv[:, 3, :].T)
    np.testing.assert_allclose(pv.images[0].get_extent(), [-1, 1, -2.25, 2.75])
    spectrum = fig.axes[1]
    np.testing.assert_allclose(spectrum.lines[0].get_xdata(), v)
    np.testing.assert_allclose(spectrum.lines[0].get_ydata(), ppv[4, 3])
    # the marker sits on the centre of pixel (4, 3): x = -1 + 4.5 / 4, y = -1 + 3.5 / 3
    np.testing.assert_allclose(moment.lines[0].get_xydata(), [[0.125, 1 / 6]])
    other = plot_ppv(ppv, v, pixel=(1, 2))
    np.testing.assert_allclose(other.axes[1].lines[0].get_ydata(), ppv[1, 2])
    np.testing.assert_allclose(image_axes(other)[1].images[0].get_array(), ppv[:, 2, :].T)
    path = plot_ppv(ppv, v, path=str(tmp_path / "figs" / "ppv.png"), panel_size=2.0, dpi=DPI)
    read_png(path, 6.0, 2.5)
    with pytest.raises(ValueError, match="v_channels"):
        plot_ppv(ppv, v[:-1])
    with pytest.raises(ValueError, match="pixel"):
        plot_ppv(ppv, v, pixel=(8, 0))


def test_profiles_and_plummer_curves(tmp_path):
    r = np.linspace(0.05, 0.95, 10)
    true = plummer_log_profile(r, 0.3, 2.0)
    predicted, baseline = true + 0.05, true - 0.1
    predicted[0] = np.nan  # an empty shell
    fits = {"truth": PlummerFit(0.3, 2.0, 0.0), "prediction": (0.35, 1.8, 0.05)}
    fig = plot_profiles(r, true, predicted, fits, baseline, true_params=(0.3, 2.0))
    ax = fig.axes[0]
    assert len(ax.lines) == 5
    for line, values in zip(ax.lines, (true, predicted, baseline)):
        np.testing.assert_allclose(line.get_xdata(), r)
        np.testing.assert_allclose(line.get_ydata(), values)
    fine = ax.lines[4].get_xdata()
    assert fine[0] == 0.0 and fine[-1] == pytest.approx(0.95)
    np.testing.assert_allclose(ax.lines[4].get_ydata(),
                               plummer_log_profile(fine, 0.35, 1.8, 0.05))
    assert ax.lines[4].get_label() == "fit a=0.35, p=1.8"
    assert ax.get_title() == "true a=0.3, p=2"
    path = plot_profiles(r, true, predicted, path=str(tmp_path / "profiles.png"), dpi=DPI)
    read_png(path, *PLOT_PANEL)
    with pytest.raises(ValueError, match="fits"):
        plot_profiles(r, true, predicted, {"model": fits["truth"]})
    with pytest.raises(ValueError, match="profiles"):
        plot_profiles(r, true, predicted[:-1])


def test_uncertainty_maps_and_calibration_histogram(targets, tmp_path):
    true, predicted = targets
    std = np.abs(true) + 0.1
    error = 0.5 * std  # every error is half its std
    fig = plot_uncertainty(std, error)
    maps = image_axes(fig)
    assert len(maps) == 4
    for c in range(2):
        std_map, rmse_map = maps[2 * c], maps[2 * c + 1]
        np.testing.assert_allclose(std_map.images[0].get_array(), std[..., c].mean(axis=2).T)
        np.testing.assert_allclose(rmse_map.images[0].get_array(),
                                   np.sqrt(np.mean(error[..., c] ** 2, axis=2)).T)
        assert std_map.images[0].get_clim() == rmse_map.images[0].get_clim()
        histogram = fig.axes[3 * c + 2]
        heights = np.array([patch.get_height() for patch in histogram.patches])
        # all of the ratios fall in the bin [0.5, 0.75): density 1 / 0.25
        np.testing.assert_allclose(heights[18], 4.0)
        assert heights.sum() == pytest.approx(4.0)
        np.testing.assert_allclose(histogram.lines[0].get_ydata().max(), 1 / np.sqrt(2 * np.pi))
    only_std = plot_uncertainty(std)
    assert len(image_axes(only_std)) == 2
    read_png(plot_uncertainty(std, error, path=str(tmp_path / "unc.png"), panel_size=2.0,
                              dpi=DPI), 7.5, 4.0)
    read_png(plot_uncertainty(std, path=str(tmp_path / "std.png"), panel_size=2.0, dpi=DPI),
             2.5, 4.0)
    with pytest.raises(ValueError, match="error"):
        plot_uncertainty(std, error[..., :1])


def test_slices_through_the_centre(targets, tmp_path):
    true, predicted = targets
    fig = plot_slices(true, predicted)
    axes = image_axes(fig)
    assert len(axes) == 12
    cuts = [lambda cube: cube[:, 3, :], lambda cube: cube[:, :, 5]]  # y = 6 // 2, z = 10 // 2
    for row in range(4):
        c, take = row // 2, cuts[row % 2]
        truth, prediction, difference = (ax.images[0] for ax in axes[3 * row:3 * row + 3])
        np.testing.assert_allclose(truth.get_array(), take(true[..., c]).T)
        np.testing.assert_allclose(prediction.get_array(), take(predicted[..., c]).T)
        np.testing.assert_allclose(difference.get_array(),
                                   take(predicted[..., c] - true[..., c]).T)
        assert truth.get_clim() == prediction.get_clim()
        low, high = difference.get_clim()
        assert low == -high == -np.abs(take(predicted[..., c] - true[..., c])).max()
    assert axes[0].get_ylabel() == "z" and axes[3].get_ylabel() == "y"
    low, high = axes[6].images[0].get_clim()  # v_z: symmetric about 0
    assert low == -high == -max(np.abs(true[:, 3, :, 1]).max(), np.abs(predicted[:, 3, :, 1]).max())
    shifted = image_axes(plot_slices(true, predicted, index=(1, 2)))
    np.testing.assert_allclose(shifted[3].images[0].get_array(), true[:, :, 2, 0].T)
    path = plot_slices(true, predicted, path=str(tmp_path / "slices.png"), panel_size=1.6,
                       dpi=DPI)
    read_png(path, 3.75 * 1.6, 4 * 1.6)
    with pytest.raises(ValueError, match="predicted"):
        plot_slices(true, predicted[:4])
    with pytest.raises(ValueError, match="index"):
        plot_slices(true, predicted, index=(6, 0))
