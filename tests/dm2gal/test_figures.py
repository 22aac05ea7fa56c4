"""dm2gal figures: PNGs written at the expected pixel size, plotted values, shared colour limits."""
import numpy as np
import pytest

from tests import pngs
from tfastro.core.figures import PLOT_PANEL
from tfastro.dm2gal.evaluation import compare_cubes
from tfastro.dm2gal.figures import (plot_bispectra, plot_mass_histograms, plot_power_spectra,
                                    plot_slices)

DPI = 40
N = 16


@pytest.fixture(scope="module")
def cubes():
    rng = np.random.default_rng(9)
    target = np.exp(2.0 * rng.standard_normal((N, N, N))) * 1e9
    target[rng.random((N, N, N)) < 0.4] = 0.0
    prediction = target * np.exp(0.2 * rng.standard_normal((N, N, N)))
    hod = rng.permutation(target.ravel()).reshape(target.shape)
    return target, prediction, hod


@pytest.fixture(scope="module")
def comparison(cubes):
    return compare_cubes(*cubes, box_size=50.0, k1=0.5, k2=0.6, bins=20)


def read_png(path, width_in, height_in):
    return pngs.read_png(path, width_in, height_in, DPI)


@pytest.mark.parametrize("plot", [plot_power_spectra, plot_bispectra, plot_mass_histograms])
def test_statistics_pngs(plot, comparison, tmp_path):
    path = str(tmp_path / "figs" / f"{plot.__name__}.png")
    assert plot(comparison, path, dpi=DPI) == path
    read_png(path, PLOT_PANEL[0], PLOT_PANEL[1] * 1.5)


def test_power_spectra_plot_the_comparison(comparison):
    fig = plot_power_spectra(comparison)
    top = fig.axes[0]
    assert [line.get_label() for line in top.lines] == ["target (hydro)", "dm2gal", "HOD"]
    np.testing.assert_allclose(top.lines[1].get_ydata(), comparison["power"]["prediction"])
    bottom = fig.axes[1]
    np.testing.assert_allclose(bottom.lines[0].get_ydata(),
                               comparison["power_ratio"]["prediction"])


def test_bispectra_plot_q_against_theta_over_pi(comparison):
    top = plot_bispectra(comparison).axes[0]
    np.testing.assert_allclose(top.lines[0].get_xdata(), np.linspace(0, 1, 25))
    np.testing.assert_allclose(top.lines[2].get_ydata(), comparison["bispectrum"]["Q"]["hod"])


def test_slices_share_colour_limits_and_png(cubes, tmp_path):
    target, prediction, hod = cubes
    fig = plot_slices(target, prediction, hod, axis=0, index=3)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 3
    expected = np.log10(1.0 + np.stack([c[3] for c in cubes]))
    for image, cube in zip(images, cubes):
        np.testing.assert_allclose(image.get_clim(), (expected.min(), expected.max()))
        np.testing.assert_allclose(image.get_array(), np.log10(1.0 + cube[3]).T)
    path = plot_slices(target, prediction, None, str(tmp_path / "slices.png"), dpi=DPI,
                       panel_size=2.0)
    read_png(path, 2 * 2.0, 2.0 * 1.25)
    with pytest.raises(ValueError, match="index"):
        plot_slices(target, prediction, index=N)
