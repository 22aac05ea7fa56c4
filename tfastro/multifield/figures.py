"""Pictures of multifield maps and of the emulator statistics (generated against real).

Maps are ``(N, R, R, C)`` arrays with channels in the order of ``fields``; they are shown as
given, so pass log10 maps (or the normalised log10 maps in [-1, 1]), as the CAMELS maps are
usually shown: gas density Mgas with the "hot" colour map, neutral hydrogen HI with "Greens",
magnetic field B with "cividis" (:data:`FIELD_CMAPS`; other fields "viridis"), row 0 at the
bottom. The statistics plots take the dicts of :mod:`tfastro.multifield.evaluation`.

Every function builds a matplotlib Figure on the Agg canvas, without pyplot (no global state,
nothing to close). With ``path`` it writes a PNG there (folders created) at ``dpi`` and returns
the path; without, it returns the Figure (shown inline by a notebook). Sizes are fixed, in
inches: a map panel is ``panel_size`` square; a statistics panel is :data:`PLOT_PANEL`.
"""
import numpy as np
from matplotlib.ticker import NullFormatter

from tfastro.core.figures import PLOT_PANEL, agg_figure, figure_or_png
from tfastro.multifield.evaluation import checked_maps, regression_scores
from tfastro.multifield.io import CMD_FIELDS

__all__ = ["FIELD_CMAPS", "sample_grid", "real_vs_generated_grid", "plot_spectra", "plot_pdfs",
           "plot_cross_correlations", "plot_conditioning", "plot_amplitude_vs_sigma8"]


#: Colour map of each CAMELS field.
FIELD_CMAPS = {"Mgas": "hot", "HI": "Greens", "B": "cividis"}


_REAL, _GENERATED = dict(color="black", label="real"), dict(color="tab:orange", label="generated")


def _cmap(field):
    return FIELD_CMAPS.get(field, "viridis")


def _array(values):
    """A float array of JSON-style values (None -> NaN)."""
    return np.asarray(values, dtype=np.float64)


def _format(value):
    """A score for a title: 3 decimals, or n/a for None (non-finite)."""
    return "n/a" if value is None else f"{value:.3f}"


def _map_grid(panels, fields, limits, column_titles, row_titles, panel_size):
    """Figure of ``panels`` (N, R, R, K): rows = maps, column j shows field ``fields[j]``
    with colour limits ``limits[j]`` and a colour bar below."""
    n_rows, n_cols = panels.shape[0], panels.shape[-1]
    fig = agg_figure(n_cols * panel_size, n_rows * panel_size)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for j in range(n_cols):
        for i in range(n_rows):
            ax = axes[i, j]
            image = ax.imshow(panels[i, ..., j], cmap=_cmap(fields[j]), vmin=limits[j][0],
                              vmax=limits[j][1], origin="lower", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row_titles is not None and j == 0:
                ax.set_ylabel(row_titles[i])
        axes[0, j].set_title(column_titles[j])
        fig.colorbar(image, ax=axes[:, j], location="bottom", shrink=0.9)
    return fig


def _limits(maps):
    """(min, max) of each channel of (N, R, R, C) maps."""
    return list(zip(maps.min(axis=(0, 1, 2)), maps.max(axis=(0, 1, 2))))


def sample_grid(maps, fields=CMD_FIELDS, path=None, titles=None, panel_size=2.0, dpi=100):
    """Maps as a grid: one row per map, one column per field, colour limits shared per field.

    Args:
      maps: ``(N, R, R, C)`` log10 (or normalised log10) maps.
      fields: the C field names (column titles and colour maps).
      path: PNG file to write, or None to return the Figure.
      titles: N row labels (e.g. the parameters of each map), or None.
      panel_size: inches per map panel: the figure is ``C * panel_size`` wide and
        ``N * panel_size`` high.
      dpi: PNG resolution.
    Returns:
      ``path``, or the Figure when ``path`` is None.
    """
    maps = checked_maps(maps, "maps", fields)
    if titles is not None and len(titles) != len(maps):
        raise ValueError(f"titles: expected {len(maps)} row labels, got {len(titles)}")
    fig = _map_grid(maps, list(fields), _limits(maps), list(fields), titles, panel_size)
    return figure_or_png(fig, path, dpi)


def real_vs_generated_grid(real, generated, fields=CMD_FIELDS, path=None, panel_size=2.0,
                           dpi=100):
    """Real maps (left C columns) beside generated maps (right C columns), one pair per row.

    Both use the colour limits of the real maps of each field, so generated values outside
    the real range show saturated.

    Args:
      real, generated: ``(N, R, R, C)`` log10 (or normalised log10) maps, the same N.
      fields, path, panel_size, dpi: as in :func:`sample_grid`; the figure is
        ``2 C * panel_size`` wide and ``N * panel_size`` high.
    Returns:
      ``path``, or the Figure when ``path`` is None.
    """
    real = checked_maps(real, "real", fields)
    generated = checked_maps(generated, "generated", fields)
    if real.shape != generated.shape:
        raise ValueError(f"generated: shape {generated.shape} differs from real {real.shape}")
    fields = list(fields)
    titles = [f"real {f}" for f in fields] + [f"generated {f}" for f in fields]
    fig = _map_grid(np.concatenate([real, generated], axis=-1), fields * 2, _limits(real) * 2,
                    titles, None, panel_size)
    return figure_or_png(fig, path, dpi)


def _band(ax, x, summary, prefix, style, shown=slice(None)):
    """Mean line and mean +- spread band of ``summary[prefix + '_mean' / '_std']`` at the
    points ``shown`` of ``x``."""
    x = x[shown]
    mean = _array(summary[f"{prefix}_mean"])[shown]
    std = _array(summary[f"{prefix}_std"])[shown]
    ax.plot(x, mean, **style)
    ax.fill_between(x, mean - std, mean + std, color=style["color"], alpha=0.25, linewidth=0)


def plot_spectra(comparison, path=None, dpi=100):
    """Auto power spectra, real and generated (mean +- spread over maps), and their ratio
    (+- its standard error), over the bins up to k_Nyquist; a dashed line marks k_max.

    Args:
      comparison: the dict of :func:`tfastro.multifield.evaluation.spectra_comparison` (or the
        ``spectra`` entry of ``emulator_report``).
      path, dpi: as in :func:`sample_grid`; the figure has one column per field, P(k) above
        the ratio, ``PLOT_PANEL[0]`` wide per field and ``PLOT_PANEL[1] * 1.5`` high.
    Returns:
      ``path``, or the Figure when ``path`` is None.
    """
    channels = comparison["channels"]
    k = _array(comparison["k"])
    shown = k <= comparison["k_nyquist"]
    fig = agg_figure(PLOT_PANEL[0] * len(channels), PLOT_PANEL[1] * 1.5)
    axes = fig.subplots(2, len(channels), squeeze=False, sharex=True,
                        gridspec_kw={"height_ratios": (2, 1)})
    for j, (field, summary) in enumerate(channels.items()):
        top, bottom = axes[0, j], axes[1, j]
        _band(top, k, summary, "real", _REAL, shown)
        _band(top, k, summary, "generated", _GENERATED, shown)
        top.set(xscale="log", yscale="log", ylabel=r"$P(k)$ [$(h^{-1}$Mpc$)^2$]",
                title=f"{field}: $R^2_{{\\log}}$ = {_format(summary['r2_log'])}")
        top.legend(fontsize="small")
        ratio, error = _array(summary["ratio"])[shown], _array(summary["ratio_error"])[shown]
        bottom.plot(k[shown], ratio, color=_GENERATED["color"])
        bottom.fill_between(k[shown], ratio - error, ratio + error, color=_GENERATED["color"],
                            alpha=0.25, linewidth=0)
        bottom.axhline(1.0, color="black", linewidth=0.8)
        if comparison["k_max"] < comparison["k_nyquist"]:
            bottom.axvline(comparison["k_max"], color="grey", linestyle="--", linewidth=0.8)
        bottom.set(xlabel=r"$k$ [$h$ Mpc$^{-1}$]", ylabel="generated / real")
        bottom.xaxis.set_minor_formatter(NullFormatter())  # a narrow k range labels minor ticks
    return figure_or_png(fig, path, dpi)


def plot_pdfs(comparison, path=None, dpi=100):
    """Pixel PDFs of each field, real and generated (mean +- spread over maps).

    Args:
      comparison: the dict of :func:`tfastro.multifield.evaluation.pdf_comparison`.
      path, dpi: as in :func:`sample_grid`; one ``PLOT_PANEL`` per field, in a row.
    Returns:
      ``path``, or the Figure when ``path`` is None.
    """
    channels = comparison["channels"]
    fig = agg_figure(PLOT_PANEL[0] * len(channels), PLOT_PANEL[1])
    axes = fig.subplots(1, len(channels), squeeze=False)[0]
    for ax, (field, summary) in zip(axes, channels.items()):
        edges = _array(summary["edges"])
        centres = 0.5 * (edges[1:] + edges[:-1])
        _band(ax, centres, summary, "real", _REAL)
        _band(ax, centres, summary, "generated", _GENERATED)
        ax.set(xlabel=f"{field} (as given: log10 or normalised)", ylabel="PDF",
               title=f"{field}: KS = {_format(summary['ks_distance'])}")
        ax.legend(fontsize="small")
    return figure_or_png(fig, path, dpi)


def plot_cross_correlations(comparison, path=None, dpi=100):
    """Correlation coefficients r_ij(k) of each field pair, real and generated (mean +- spread
    over maps), over the bins up to k_Nyquist.

    Args:
      comparison: the dict of
        :func:`tfastro.multifield.evaluation.cross_correlation_comparison` (or the
        ``cross_correlations`` entry of ``emulator_report``).
      path, dpi: as in :func:`sample_grid`; one ``PLOT_PANEL`` per pair, in a row.
    Returns:
      ``path``, or the Figure when ``path`` is None.
    """
    pairs = comparison["pairs"]
    k = _array(comparison["k"])
    shown = k <= comparison["k_nyquist"]
    fig = agg_figure(PLOT_PANEL[0] * len(pairs), PLOT_PANEL[1])
    axes = fig.subplots(1, len(pairs), squeeze=False)[0]
    for ax, (pair, summary) in zip(axes, pairs.items()):
        _band(ax, k, summary, "real", _REAL, shown)
        _band(ax, k, summary, "generated", _GENERATED, shown)
        ax.set(xscale="log", ylim=(-1.05, 1.05), xlabel=r"$k$ [$h$ Mpc$^{-1}$]",
               ylabel=r"$r(k)$",
               title=f"{pair}: max $|\\Delta r|$ = {_format(summary['max_abs_diff'])}")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize="small")
    return figure_or_png(fig, path, dpi)


def plot_conditioning(theta_true, theta_pred, names=("Omega_m", "sigma_8"), path=None, dpi=100):
    """Regressed against true parameters, one scatter panel per parameter, RMSE and R^2.

    Args:
      theta_true, theta_pred: ``(N, P)`` parameters (e.g. those asked of the emulator and
        those a :class:`~tfastro.multifield.regressor.ParameterRegressor` reads from its maps).
      names: the P parameter names.
      path, dpi: as in :func:`sample_grid`; one ``PLOT_PANEL[1]``-inch square panel per
        parameter, in a row.
    Returns:
      ``path``, or the Figure when ``path`` is None.
    """
    scores = regression_scores(theta_true, theta_pred, names)
    theta_true, theta_pred = _array(theta_true), _array(theta_pred)
    side = PLOT_PANEL[1]
    fig = agg_figure(side * len(names), side)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for p, (ax, name) in enumerate(zip(axes, names)):
        low = min(theta_true[:, p].min(), theta_pred[:, p].min())
        high = max(theta_true[:, p].max(), theta_pred[:, p].max())
        ax.plot([low, high], [low, high], color="black", linewidth=0.8)
        ax.scatter(theta_true[:, p], theta_pred[:, p], s=6, color=_GENERATED["color"])
        ax.set(xlabel=f"true {name}", ylabel=f"regressed {name}",
               title=f"RMSE {_format(scores[name]['rmse'])}, "
                     f"$R^2$ {_format(scores[name]['r2'])}")
    return figure_or_png(fig, path, dpi)


def plot_amplitude_vs_sigma8(ordering, path=None, dpi=100):
    """Large-scale P(k) amplitude of each field against sigma_8, with Spearman's rho.

    Args:
      ordering: the dict of :func:`tfastro.multifield.evaluation.amplitude_ordering`.
      path, dpi: as in :func:`sample_grid`; one ``PLOT_PANEL`` per field, in a row.
    Returns:
      ``path``, or the Figure when ``path`` is None.
    """
    channels = ordering["channels"]
    sigma8 = _array(ordering["sigma8"])
    fig = agg_figure(PLOT_PANEL[0] * len(channels), PLOT_PANEL[1])
    axes = fig.subplots(1, len(channels), squeeze=False)[0]
    for ax, (field, summary) in zip(axes, channels.items()):
        ax.errorbar(sigma8, _array(summary["amplitude"]), yerr=_array(summary["amplitude_error"]),
                    marker="o", color=_GENERATED["color"])
        ax.set(yscale="log", xlabel=r"$\sigma_8$",
               ylabel=f"mean P, first {ordering['n_bins']} k bins",
               title=f"{field}: Spearman $\\rho$ = {_format(summary['spearman'])}")
    return figure_or_png(fig, path, dpi)
