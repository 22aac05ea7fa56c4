"""Pictures of dm2gal test cubes: target, dm2gal prediction and HOD stellar masses.

The statistics plots take the dict of :func:`tfastro.dm2gal.evaluation.compare_cubes`
(target black, dm2gal orange, HOD blue; the HOD only where the dict holds it); the slices take
the mass cubes (Msun/h per voxel) and show log10(1 + M). As in :mod:`tfastro.core.figures`: an Agg
Figure without pyplot state; with ``path`` a PNG is written there (folders created) at ``dpi``
and the path returned, without it the Figure is returned. Statistics figures are
``PLOT_PANEL[0]`` wide and ``1.5 PLOT_PANEL[1]`` high; slices ``panel_size`` per cube wide and
``1.25 panel_size`` high (room for the colour bar).
"""
import numpy as np
from matplotlib.ticker import NullFormatter

from tfastro.core.figures import PLOT_PANEL, agg_figure, figure_or_png

__all__ = ["plot_power_spectra", "plot_bispectra", "plot_slices", "plot_mass_histograms"]


_STYLES = {"target": dict(color="black", label="target (hydro)"),
           "prediction": dict(color="tab:orange", label="dm2gal"),
           "hod": dict(color="tab:blue", label="HOD")}


def _values(values):
    """JSON-style values (None -> NaN) as a float array."""
    return np.asarray(values, dtype=np.float64)


def _two_panels():
    fig = agg_figure(PLOT_PANEL[0], PLOT_PANEL[1] * 1.5)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (2, 1)})
    return fig, top, bottom


def _ratio_panel(ax, x, ratios, ylabel):
    for name, ratio in ratios.items():
        ax.plot(x, _values(ratio), color=_STYLES[name]["color"])
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_ylabel(ylabel)


def plot_power_spectra(comparison, path=None, dpi=100):
    """P(k) of the overdensity of each cube (log-log) above its ratio to the target's."""
    fig, top, bottom = _two_panels()
    k = _values(comparison["k"])
    for name, power in comparison["power"].items():
        top.plot(k, _values(power), **_STYLES[name])
    top.set(xscale="log", yscale="log", ylabel=r"$P(k)$ [$(h^{-1}$Mpc$)^3$]",
            title=f"stellar-mass power spectrum (MAS {comparison['mas']})")
    top.legend(fontsize="small")
    _ratio_panel(bottom, k, comparison["power_ratio"], "ratio to target")
    bottom.set_xlabel(r"$k$ [$h$ Mpc$^{-1}$]")
    bottom.xaxis.set_minor_formatter(NullFormatter())  # a narrow k range labels minor ticks
    return figure_or_png(fig, path, dpi)


def plot_bispectra(comparison, path=None, dpi=100):
    """Reduced bispectrum Q(theta) of each cube for the fixed k1, k2, above its ratio to the
    target's."""
    fig, top, bottom = _two_panels()
    spectra = comparison["bispectrum"]
    theta = _values(spectra["thetas"]) / np.pi
    for name, q in spectra["Q"].items():
        top.plot(theta, _values(q), marker=".", **_STYLES[name])
    top.set(ylabel=r"$Q(\theta)$",
            title=rf"$k_1$ = {spectra['k1']:.3g}, $k_2$ = {spectra['k2']:.3g} $h$ Mpc$^{{-1}}$")
    top.legend(fontsize="small")
    _ratio_panel(bottom, theta, spectra["Q_ratio"], "ratio to target")
    bottom.set_xlabel(r"$\theta / \pi$")
    return figure_or_png(fig, path, dpi)


def plot_mass_histograms(comparison, path=None, dpi=100):
    """Histograms of log10 M over the non-empty voxels of each cube (counts, log scale)."""
    fig = agg_figure(PLOT_PANEL[0], PLOT_PANEL[1] * 1.5)
    ax = fig.subplots()
    histogram = comparison["histogram"]
    edges = _values(histogram["log10_edges"])
    for name, counts in histogram["counts"].items():
        ax.stairs(np.asarray(counts), edges, **_STYLES[name])
    ax.set(yscale="log", xlabel=r"$\log_{10} M_*$ [$M_\odot/h$] per voxel", ylabel="voxels")
    ax.legend(fontsize="small")
    return figure_or_png(fig, path, dpi)


def plot_slices(target, prediction, hod=None, path=None, axis=2, index=None, panel_size=3.0,
                dpi=100):
    """log10(1 + M) slices of the cubes side by side, with shared colour limits.

    Args:
      target, prediction, hod: ``(N, N, N)`` masses per voxel (Msun/h); ``hod`` optional.
        NaN voxels (unpredicted, masked) show blank.
      path, dpi: as in :func:`tfastro.core.figures.sample_grid`.
      axis: the axis cut; index: the slice along it (default the middle, N // 2).
      panel_size: inches per panel.
    Returns:
      ``path``, or the Figure when ``path`` is None.
    """
    cubes = {"target": target, "prediction": prediction}
    if hod is not None:
        cubes["hod"] = hod
    shape = np.shape(target)
    if len(shape) != 3 or any(np.shape(c) != shape for c in cubes.values()):
        raise ValueError(f"cubes: expected (N, N, N) cubes of one shape, got "
                         f"{[np.shape(c) for c in cubes.values()]}")
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis!r}")
    index = shape[axis] // 2 if index is None else int(index)
    if not 0 <= index < shape[axis]:
        raise ValueError(f"index={index}: expected a slice in [0, {shape[axis]})")
    slices = {name: np.log10(1.0 + np.maximum(np.take(np.asarray(c, np.float64), index, axis),
                                              0.0))
              for name, c in cubes.items()}
    finite = np.concatenate([s[np.isfinite(s)] for s in slices.values()])
    vmin, vmax = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    fig = agg_figure(panel_size * len(slices), panel_size * 1.25)
    axes = fig.subplots(1, len(slices), squeeze=False)[0]
    for ax, (name, picture) in zip(axes, slices.items()):
        image = ax.imshow(picture.T, origin="lower", cmap="magma", vmin=vmin, vmax=vmax,
                          interpolation="nearest")
        ax.set(xticks=[], yticks=[], title=_STYLES[name]["label"])
    fig.colorbar(image, ax=axes, location="bottom", shrink=0.8,
                 label=rf"$\log_{{10}}(1 + M_*)$, slice {index} along axis {axis}")
    return figure_or_png(fig, path, dpi)
