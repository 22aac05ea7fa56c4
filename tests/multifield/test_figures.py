"""Map grids and emulator plots: PNG pixel sizes, colour maps and limits, plotted values."""
import numpy as np
import pytest

from tests import pngs
from tests.pngs import image_axes
from tfastro.core.figures import PLOT_PANEL
from tfastro.multifield.evaluation import (amplitude_ordering, cross_correlation_comparison,
                                           pdf_comparison, regression_scores, spectra_comparison)
from tfastro.multifield.figures import (plot_amplitude_vs_sigma8, plot_conditioning,
                                        plot_cross_correlations, plot_pdfs, plot_spectra,
                                        real_vs_generated_grid, sample_grid)

FIELDS = ("Mgas", "HI", "B")
CMAPS = {"Mgas": "hot", "HI": "Greens", "B": "cividis"}
DPI = 50


def read_png(path, width_in, height_in):
    return pngs.read_png(path, width_in, height_in, DPI)



@pytest.fixture(scope="module")
def maps():
    """Log10-like maps (4, 16, 16, 3): each channel with its own offset and scale."""
    rng = np.random.default_rng(0)
    return rng.standard_normal((4, 16, 16, 3)) * [0.5, 1.0, 0.8] + [10.4, 4.8, -12.5]


def test_sample_grid_colour_maps_limits_and_png(maps, tmp_path):
    fig = sample_grid(maps[:2], FIELDS, titles=["a", "b"])
    axes = image_axes(fig)
    assert len(axes) == 6  # rows = maps, columns = fields
    for i, ax in enumerate(axes):
        c = i % 3  # row-major: column c shows field c
        image = ax.images[0]
        assert image.get_cmap().name == CMAPS[FIELDS[c]]
        np.testing.assert_allclose(image.get_clim(), (maps[:2, ..., c].min(),
                                                      maps[:2, ..., c].max()))
        np.testing.assert_array_equal(image.get_array(), maps[i // 3, ..., c])
    path = sample_grid(maps[:2], FIELDS, str(tmp_path / "grids" / "samples.png"), dpi=DPI)
    assert path == str(tmp_path / "grids" / "samples.png")
    read_png(path, 3 * 2.0, 2 * 2.0)
    with pytest.raises(ValueError, match="maps"):
        sample_grid(maps[..., :2], FIELDS)


def test_real_vs_generated_grid_shares_the_real_limits(maps, tmp_path):
    real, generated = maps[:3], maps[1:] * 1.1
    fig = real_vs_generated_grid(real, generated, FIELDS)
    axes = image_axes(fig)
    assert len(axes) == 3 * 6
    for i, ax in enumerate(axes):
        c = i % 6
        image = ax.images[0]
        assert image.get_cmap().name == CMAPS[FIELDS[c % 3]]
        np.testing.assert_allclose(image.get_clim(), (real[..., c % 3].min(),
                                                      real[..., c % 3].max()))
        shown = (real if c < 3 else generated)[i // 6, ..., c % 3]
        np.testing.assert_array_equal(image.get_array(), shown)
    path = real_vs_generated_grid(real, generated, FIELDS, str(tmp_path / "pairs.png"),
                                  panel_size=1.5, dpi=DPI)
    read_png(path, 6 * 1.5, 3 * 1.5)
    with pytest.raises(ValueError, match="generated"):
        real_vs_generated_grid(real, generated[:2], FIELDS)


def test_spectra_plot_shows_the_comparison(maps, tmp_path):
    comparison = spectra_comparison(maps[:2], maps[2:], 25.0, FIELDS)
    fig = plot_spectra(comparison)
    top = fig.axes[0]
    shown = np.asarray(comparison["k"]) <= comparison["k_nyquist"]  # complete shells only
    mgas = comparison["channels"]["Mgas"]
    np.testing.assert_allclose(top.lines[0].get_xdata(), np.asarray(comparison["k"])[shown])
    np.testing.assert_allclose(top.lines[0].get_ydata(), np.asarray(mgas["real_mean"])[shown])
    np.testing.assert_allclose(top.lines[1].get_ydata(), np.asarray(mgas["generated_mean"])[shown])
    assert f"{comparison['channels']['Mgas']['r2_log']:.3f}" in top.get_title()
    path = plot_spectra(comparison, str(tmp_path / "spectra.png"), dpi=DPI)
    read_png(path, 3 * PLOT_PANEL[0], 1.5 * PLOT_PANEL[1])


def test_pdf_and_cross_correlation_plots(maps, tmp_path):
    pdfs = pdf_comparison(maps[:2], maps[2:], FIELDS, bins=10)
    ks = pdfs["channels"]["HI"]["ks_distance"]
    assert f"{ks:.3f}" in plot_pdfs(pdfs).axes[1].get_title()
    read_png(plot_pdfs(pdfs, str(tmp_path / "pdfs.png"), dpi=DPI), 3 * PLOT_PANEL[0],
             PLOT_PANEL[1])
    correlations = cross_correlation_comparison(maps[:2], maps[2:], 25.0, FIELDS)
    fig = plot_cross_correlations(correlations)
    assert [ax.get_title().split(":")[0] for ax in fig.axes] == ["Mgas-HI", "Mgas-B", "HI-B"]
    shown = np.asarray(correlations["k"]) <= correlations["k_nyquist"]
    np.testing.assert_allclose(fig.axes[2].lines[1].get_ydata(),
                               np.asarray(correlations["pairs"]["HI-B"]["generated_mean"])[shown])
    read_png(plot_cross_correlations(correlations, str(tmp_path / "r.png"), dpi=DPI),
             3 * PLOT_PANEL[0], PLOT_PANEL[1])


def test_conditioning_and_amplitude_plots(maps, rng, tmp_path):
    theta = rng.uniform(0, 1, (50, 2))
    predicted = theta + 0.05 * rng.standard_normal(theta.shape)
    fig = plot_conditioning(theta, predicted, ("Omega_m", "sigma_8"))
    scores = regression_scores(theta, predicted, ("Omega_m", "sigma_8"))
    assert f"{scores['sigma_8']['r2']:.3f}" in fig.axes[1].get_title()
    np.testing.assert_allclose(fig.axes[0].collections[0].get_offsets(),
                               np.column_stack([theta[:, 0], predicted[:, 0]]))
    read_png(plot_conditioning(theta, predicted, ("Omega_m", "sigma_8"),
                               str(tmp_path / "theta.png"), dpi=DPI),
             2 * PLOT_PANEL[1], PLOT_PANEL[1])
    ordering = amplitude_ordering({s: s * maps for s in (0.6, 0.8, 1.0)}, 25.0, FIELDS)
    fig = plot_amplitude_vs_sigma8(ordering)
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(),
                               ordering["channels"]["Mgas"]["amplitude"])
    read_png(plot_amplitude_vs_sigma8(ordering, str(tmp_path / "amp.png"), dpi=DPI),
             3 * PLOT_PANEL[0], PLOT_PANEL[1])


def test_no_pyplot_figure_is_left_open(maps, tmp_path):
    import matplotlib.pyplot as plt

    sample_grid(maps, FIELDS, str(tmp_path / "a.png"), dpi=DPI)
    assert plt.get_fignums() == []
