"""Pictures of prestellar cores: the mock observation, and the recovered 3D structure.

Conventions of :mod:`tfastro.prestellar.synthetic`: cubes ``[ix, iy, iz]`` = (x, y, z) on a grid
over [-1, 1], z the line of sight; a PPV cube ``[ix, iy, ic]`` with channel velocities
``v_channels``; targets ``(Nx, Ny, Nz, 2)`` = (log10 density, v_z), v_z > 0 receding.
Every map is drawn with its first named axis horizontal and the second vertical, origin at
the bottom left (so an image array is the transposed slice), over extents in grid units (and
velocity for PPV slices). Velocities use a diverging colour map symmetric about 0 (red
receding). As in :mod:`tfastro.core.figures`: an Agg Figure without pyplot state; with ``path``
a PNG is written there (folders created) at ``dpi`` and the path returned, without it the
Figure is returned. Sizes in inches: :func:`plot_ppv` ``3 panel_size`` x ``1.25
panel_size``; :func:`plot_profiles` ``PLOT_PANEL``; :func:`plot_uncertainty` ``1.25
panel_size`` per column (1, or 3 with errors) x ``2 panel_size``; :func:`plot_slices`
``3.75 panel_size`` x ``4 panel_size``.
"""
import itertools

import numpy as np

from tfastro.core.figures import PLOT_PANEL, agg_figure, figure_or_png
from tfastro.prestellar.evaluation import (TARGET_NAMES, PlummerFit, plummer_log_profile,
                                           uncertainty_maps)

__all__ = ["plot_slices", "plot_ppv", "plot_profiles", "plot_uncertainty"]


_GRID = (-1.0, 1.0)


_LABELS = {"log_density": r"$\log_{10}\rho$", "v_z": r"$v_z$"}


_STYLES = {"truth": dict(color="black", label="truth"),
           "prediction": dict(color="tab:orange", label="prediction"),
           "baseline": dict(color="tab:blue", label="mean baseline")}


def _symmetric(values):
    """(-m, m) with m the largest finite |value| (1 if none is non-zero)."""
    values = np.asarray(values)
    finite = np.abs(values[np.isfinite(values)])
    top = finite.max() if finite.size and finite.max() > 0 else 1.0
    return -top, top


def _checked_targets(values, name):
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 4 or values.shape[-1] != len(TARGET_NAMES):
        raise ValueError(f"{name}: expected targets (Nx, Ny, Nz, 2) (log10 density, v_z), got "
                         f"shape {values.shape}")
    return values


def _map(ax, picture, extent, **style):
    """``picture`` [i, j] drawn with i horizontal and j vertical."""
    return ax.imshow(np.asarray(picture).T, origin="lower", extent=extent,
                     interpolation="nearest", aspect="auto", **style)


def plot_ppv(ppv, v_channels, pixel=None, path=None, panel_size=3.0, dpi=100):
    """A PPV cube: moment-0 map, the spectrum of one pixel, a position-velocity slice.

    Args:
      ppv: ``(Nx, Ny, Nv)`` intensity per channel.
      v_channels: ``(Nv,)`` evenly spaced channel-centre velocities (e.g. km/s).
      pixel: (ix, iy) of the spectrum and of the slice (taken at y = iy); default the centre
        ``(Nx // 2, Ny // 2)``, marked on the map.
      path, dpi: PNG file and resolution, or path None to return the Figure.
      panel_size: inches per panel.
    Returns:
      ``path``, or the Figure when ``path`` is None. Panels: moment 0 = sum over channels x
      channel width (x horizontal, y vertical); the spectrum; intensity at y = iy (x
      horizontal, velocity vertical).
    """
    ppv = np.asarray(ppv, dtype=np.float64)
    v = np.asarray(v_channels, dtype=np.float64)
    if ppv.ndim != 3 or v.shape != ppv.shape[-1:] or len(v) < 2:
        raise ValueError(f"ppv, v_channels: expected (Nx, Ny, Nv) and (Nv,) with Nv >= 2, got "
                         f"{ppv.shape} and {v.shape}")
    dv = (v[-1] - v[0]) / (len(v) - 1)
    ix, iy = (ppv.shape[0] // 2, ppv.shape[1] // 2) if pixel is None else pixel
    if not (0 <= ix < ppv.shape[0] and 0 <= iy < ppv.shape[1]):
        raise ValueError(f"pixel=({ix}, {iy}): expected a pixel inside {ppv.shape[:2]}")
    x, y = (-1.0 + (np.array([ix, iy]) + 0.5) * 2.0 / np.array(ppv.shape[:2]))
    fig = agg_figure(3 * panel_size, 1.25 * panel_size)
    moment, spectrum, slice_ = fig.subplots(1, 3)
    image = _map(moment, ppv.sum(axis=2) * abs(dv), _GRID + _GRID, cmap="inferno")
    moment.plot([x], [y], marker="+", color="cyan")
    moment.set(xlabel="x", ylabel="y", title="moment 0")
    fig.colorbar(image, ax=moment, location="bottom", shrink=0.9)
    spectrum.plot(v, ppv[ix, iy], color="black", drawstyle="steps-mid")
    spectrum.set(xlabel="v", ylabel="intensity", title=f"spectrum at ({ix}, {iy})")
    image = _map(slice_, ppv[:, iy, :], _GRID + (v[0] - dv / 2, v[-1] + dv / 2),
                 cmap="inferno")
    slice_.set(xlabel="x", ylabel="v", title=f"position-velocity, y index {iy}")
    fig.colorbar(image, ax=slice_, location="bottom", shrink=0.9)
    return figure_or_png(fig, path, dpi)


def plot_profiles(r, true_profile, predicted_profile, fits=None, baseline_profile=None,
                  true_params=None, path=None, dpi=100):
    """Radial log10 density profiles of one core, truth against prediction, with Plummer fits.

    Args:
      r: ``(n_bins,)`` shell radii (grid units), e.g. from
        :func:`tfastro.prestellar.evaluation.radial_profile`.
      true_profile, predicted_profile, baseline_profile: ``(n_bins,)`` mean log10 density
        per shell (baseline optional); NaN shells are not drawn.
      fits: dict of ``truth`` / ``prediction`` / ``baseline`` to
        :class:`~tfastro.prestellar.evaluation.PlummerFit` (or (a, p, log10_peak)), drawn
        dashed from r = 0 to the last radius; None for none.
      true_params: (a, p) of the generator, shown in the title, or None.
      path, dpi: PNG file and resolution, or path None to return the Figure.
    Returns:
      ``path``, or the Figure when ``path`` is None. Lines: the profiles (truth, prediction,
      baseline), then the fits in the order given.
    """
    r = np.asarray(r, dtype=np.float64)
    profiles = {"truth": true_profile, "prediction": predicted_profile}
    if baseline_profile is not None:
        profiles["baseline"] = baseline_profile
    profiles = {name: np.asarray(values, dtype=np.float64) for name, values in profiles.items()}
    if r.ndim != 1 or any(values.shape != r.shape for values in profiles.values()):
        raise ValueError(f"r, profiles: expected (n_bins,) arrays of one shape, got {r.shape} "
                         f"and {[values.shape for values in profiles.values()]}")
    fits = {} if fits is None else fits
    unknown = set(fits) - set(_STYLES)
    if unknown:
        raise ValueError(f"fits: unknown sources {sorted(unknown)}; expected {list(_STYLES)}")
    fig = agg_figure(*PLOT_PANEL)
    ax = fig.subplots()
    for name, values in profiles.items():
        ax.plot(r, values, marker="o", markersize=3, linestyle="none", **_STYLES[name])
    fine = np.linspace(0.0, np.nanmax(r), 100)
    for name, fit in fits.items():
        fit = PlummerFit(*fit)
        ax.plot(fine, plummer_log_profile(fine, *fit), linestyle="--",
                color=_STYLES[name]["color"], label=f"fit a={fit.a:.3g}, p={fit.p:.3g}")
    title = "radial profile" if true_params is None else \
        f"true a={true_params[0]:.3g}, p={true_params[1]:.3g}"
    ax.set(xlabel="r (grid units)", ylabel=r"mean $\log_{10}\rho$ in shell", title=title)
    ax.legend(fontsize="x-small")
    return figure_or_png(fig, path, dpi)


def plot_uncertainty(std, error=None, path=None, panel_size=2.5, dpi=100):
    """MC-dropout uncertainty: sky maps of the line-of-sight mean std of each target, and
    with the errors also their RMS along the line of sight and the histogram of error / std.

    Args:
      std: ``(Nx, Ny, Nz, 2)`` MC-dropout std per voxel (log10 density, v_z).
      error: ``(Nx, Ny, Nz, 2)`` mean prediction - truth, or None.
      path, dpi: PNG file and resolution, or path None to return the Figure.
      panel_size: inches per panel.
    Returns:
      ``path``, or the Figure when ``path`` is None. One row per target; columns: std map,
      (RMS error map on the std map's colour scale, density histogram of error / std over
      [-4, 4] with the unit normal dashed).
    """
    std = _checked_targets(std, "std")
    error = None if error is None else _checked_targets(error, "error")
    maps = uncertainty_maps(std, error)
    n_cols = 1 if error is None else 3
    fig = agg_figure(1.25 * panel_size * n_cols, 2 * panel_size)
    axes = fig.subplots(2, n_cols, squeeze=False)
    for c, name in enumerate(TARGET_NAMES):
        limits = (0.0, max(np.nanmax(m[..., c]) for m in maps.values()) or 1.0)
        image = _map(axes[c, 0], maps["std"][..., c], _GRID + _GRID, cmap="viridis",
                     vmin=limits[0], vmax=limits[1])
        axes[c, 0].set(xlabel="x", ylabel="y", title=f"{_LABELS[name]}: mean std along z")
        if error is not None:
            _map(axes[c, 1], maps["rmse"][..., c], _GRID + _GRID, cmap="viridis",
                 vmin=limits[0], vmax=limits[1])
            axes[c, 1].set(xlabel="x", ylabel="y", title="RMS error along z")
            spread = std[..., c] > 0
            ratio = error[..., c][spread] / std[..., c][spread]
            axes[c, 2].hist(ratio, bins=np.linspace(-4, 4, 33), density=True, color="tab:orange")
            z = np.linspace(-4, 4, 161)
            axes[c, 2].plot(z, np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi), color="black",
                            linestyle="--")
            axes[c, 2].set(xlabel="error / std", title="calibration")
        fig.colorbar(image, ax=axes[c, :2], location="bottom", shrink=0.8)
    return figure_or_png(fig, path, dpi)


def plot_slices(true, predicted, index=None, path=None, panel_size=2.5, dpi=100):
    """Truth, prediction and their difference, sliced through the core.

    Args:
      true, predicted: targets ``(Nx, Ny, Nz, 2)`` (log10 density, v_z).
      index: (iy, iz), the y index of the x-z slices and the z index of the x-y slices;
        default the centre ``(Ny // 2, Nz // 2)``.
      path, dpi: PNG file and resolution, or path None to return the Figure.
      panel_size: inches per panel.
    Returns:
      ``path``, or the Figure when ``path`` is None. Rows: log10 density in x-z (x
      horizontal, line of sight z vertical), log10 density in x-y, v_z in x-z, v_z in x-y;
      columns: truth, prediction (colour limits shared per row), prediction - truth
      (symmetric limits).
    """
    true, predicted = _checked_targets(true, "true"), _checked_targets(predicted, "predicted")
    if true.shape != predicted.shape:
        raise ValueError(f"predicted: shape {predicted.shape} differs from true {true.shape}")
    iy, iz = (true.shape[1] // 2, true.shape[2] // 2) if index is None else index
    if not (0 <= iy < true.shape[1] and 0 <= iz < true.shape[2]):
        raise ValueError(f"index=({iy}, {iz}): expected (iy, iz) inside {true.shape[1:3]}")
    cuts = {f"x-z, y index {iy}": (lambda cube: cube[:, iy, :], "z"),
            f"x-y, z index {iz}": (lambda cube: cube[:, :, iz], "y")}
    fig = agg_figure(3.75 * panel_size, 4 * panel_size)
    axes = fig.subplots(4, 3)
    rows = itertools.product(enumerate(TARGET_NAMES), cuts.items())
    for row, ((c, name), (cut, (take, vertical))) in enumerate(rows):
        pair = [take(true[..., c]), take(predicted[..., c])]
        if name == "v_z":
            low, high = _symmetric(pair)
            style = dict(cmap="RdBu_r", vmin=low, vmax=high)
        else:
            style = dict(cmap="magma", vmin=np.nanmin(pair), vmax=np.nanmax(pair))
        for ax, picture, title in zip(axes[row], pair, ("truth", "prediction")):
            image = _map(ax, picture, _GRID + _GRID, **style)
            ax.set(xlabel="x", ylabel=vertical, title=f"{title}, {_LABELS[name]}\n{cut}")
        fig.colorbar(image, ax=axes[row, :2], location="right", shrink=0.9)
        difference = pair[1] - pair[0]
        limits = _symmetric(difference)
        image = _map(axes[row, 2], difference, _GRID + _GRID, cmap="coolwarm",
                     vmin=limits[0], vmax=limits[1])
        axes[row, 2].set(xlabel="x", ylabel=vertical, title=f"prediction - truth\n{cut}")
        fig.colorbar(image, ax=axes[row, 2], location="right", shrink=0.9)
    return figure_or_png(fig, path, dpi)
