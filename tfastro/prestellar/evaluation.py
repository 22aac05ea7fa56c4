"""Prestellar cores recovered from spectral cubes, scored against the truth of the generator.

Conventions (those of :mod:`tfastro.prestellar.synthetic`): a cube is indexed ``[ix, iy, iz]`` =
physical (x, y, z) on N cells over [-1, 1], cell i at its centre ``-1 + (i + 0.5) 2 / N``
(:func:`cell_centres`); z (numpy axis 2 of a cube) is the line of sight. Targets are
channels-last ``(..., Nx, Ny, Nz, 2)``: channel 0 log10 density (any normalisation, e.g.
log10 of density / max), channel 1 the line-of-sight velocity v_z (any unit; thresholds are
in the same unit). Leading axes (cores) are optional.

Scores:
- :func:`voxel_errors`: RMSE, MAE and bias of each target over all voxels, and how often the
  sign of v_z is right where the true speed is significant, per voxel and per column (the
  density-weighted mean v_z of each line of sight, i.e. the line centroid velocity).
- :func:`radial_profile` / :func:`fit_plummer`: mean log10 density in spherical shells about
  a centre (the core's known centre, or :func:`density_centroid`), and the least-squares
  Plummer fit ``log10 rho = log10 rho0 - (p / 2) log10(1 + r^2 / a^2)`` of it.
  :func:`profile_scores` compares the radius a and slope p fitted to the true, predicted and
  baseline cubes with the generating parameters; :func:`mean_baseline` is the baseline (the
  training set's mean target cube).
- :func:`uncertainty_maps` / :func:`calibration`: MC-dropout standard deviations reduced to
  sky maps, and the fraction of voxels whose error lies within 1 and 2 std (0.683 and 0.954
  for Gaussian errors of exactly that std).

Functions returning scores return JSON-serialisable dicts (lists and floats; a non-finite
number, e.g. an accuracy over no voxel, becomes None).
"""
from typing import NamedTuple

import numpy as np
from scipy import optimize

from tfastro.core.json_values import jsonable
from tfastro.prestellar.synthetic import cell_centres

__all__ = ["TARGET_NAMES", "PlummerFit", "voxel_errors", "density_centroid", "radial_profile",
           "plummer_log_profile", "fit_plummer", "mean_baseline", "profile_scores",
           "uncertainty_maps", "calibration"]


#: The target channels, in order.
TARGET_NAMES = ("log_density", "v_z")


class PlummerFit(NamedTuple):
    """Plummer parameters: radius ``a`` (grid units), slope ``p``, and ``log10_peak`` =
    log10 rho0 (the units of the fitted profile); NaN where no fit was possible."""
    a: float
    p: float
    log10_peak: float


def _targets(values, name):
    values = np.asarray(values, dtype=np.float64)
    if values.ndim < 4 or values.shape[-1] != len(TARGET_NAMES):
        raise ValueError(f"{name}: expected targets (..., Nx, Ny, Nz, 2) (log10 density, v_z), "
                         f"got shape {values.shape}")
    return values


def _cube(values, name):
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 3:
        raise ValueError(f"{name}: expected a cube (Nx, Ny, Nz), got shape {values.shape}")
    return values


def _error_stats(error):
    return {"rmse": np.sqrt(np.mean(error**2)), "mae": np.mean(np.abs(error)),
            "bias": np.mean(error)}


def _sign_accuracy(predicted, true, threshold):
    significant = np.abs(true) > threshold
    correct = np.sign(predicted[significant]) == np.sign(true[significant])
    return {"accuracy": correct.mean() if correct.size else np.nan,
            "count": int(significant.sum())}


def _column_velocity(targets):
    """Density-weighted mean v_z of each line of sight: (..., Nx, Ny, Nz, 2) -> (..., Nx, Ny)."""
    log_density = targets[..., 0]
    weight = 10.0 ** (log_density - log_density.max(axis=-1, keepdims=True))
    return (weight * targets[..., 1]).sum(axis=-1) / weight.sum(axis=-1)


def voxel_errors(pred, true, v_threshold=None):
    """Per-voxel errors of predicted targets against the truth.

    Args:
      pred, true: targets ``(..., Nx, Ny, Nz, 2)`` (log10 density, v_z); ``pred`` may be
        anything broadcastable to ``true`` (e.g. one baseline cube for many cores).
      v_threshold: speeds |v_z| above it count as significant for the sign accuracy (same unit
        as v_z); None: 0.1 times the RMS of the true v_z.
    Returns:
      dict: ``log_density`` and ``v_z`` each with ``rmse``, ``mae``, ``bias`` (mean of
      pred - true); ``v_sign`` with the ``threshold`` used, ``voxel_accuracy`` (fraction of
      voxels with |true v_z| > threshold whose predicted v_z has the true sign) over
      ``voxel_count`` voxels, and ``column_accuracy`` over ``column_count`` lines of sight,
      the same for the density-weighted mean v_z of each column (each cube weighted by its own
      density).
    """
    true = _targets(true, "true")
    pred = np.broadcast_to(_targets(pred, "pred"), true.shape)
    error = pred - true
    if v_threshold is None:
        v_threshold = 0.1 * np.sqrt(np.mean(true[..., 1] ** 2))
    elif v_threshold < 0:
        raise ValueError(f"v_threshold: expected a speed >= 0, got {v_threshold}")
    voxel = _sign_accuracy(pred[..., 1], true[..., 1], v_threshold)
    column = _sign_accuracy(_column_velocity(pred), _column_velocity(true), v_threshold)
    return jsonable({
        **{name: _error_stats(error[..., c]) for c, name in enumerate(TARGET_NAMES)},
        "v_sign": {"threshold": v_threshold, "voxel_accuracy": voxel["accuracy"],
                   "voxel_count": voxel["count"], "column_accuracy": column["accuracy"],
                   "column_count": column["count"]}})


def density_centroid(log_density, fraction=0.5):
    """Density-weighted mean position (x, y, z), in grid units, of the voxels of a log10
    density cube denser than ``fraction`` times its peak (0: all voxels).

    The default keeps the core's dense centre: the centroid of all voxels of a core with
    extended wings (Plummer p ~ 2) away from the box centre is pulled towards it by the wings
    cut by the box faces. Prefer the known core centre where there is one.
    """
    log_density = _cube(log_density, "log_density")
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction: expected a fraction of the peak in [0, 1), got {fraction}")
    weight = 10.0 ** (log_density - log_density.max())
    weight = np.where(weight >= fraction, weight, 0.0)
    return np.array([np.sum(weight * cell_centres(n).reshape([-1 if a == axis else 1
                                                               for a in range(3)]))
                     for axis, n in enumerate(log_density.shape)]) / weight.sum()


def _radii(shape, centre):
    x, y, z = (cell_centres(n) - c for n, c in zip(shape, centre))
    return np.sqrt(x[:, None, None] ** 2 + y[None, :, None] ** 2 + z[None, None, :] ** 2)


def radial_profile(log_density, centre=None, n_bins=16, r_max=1.0, return_counts=False):
    """Mean log10 density in spherical shells about ``centre``.

    Shells are ``n_bins`` equal bins of distance over [0, r_max] (grid units, the grid
    spanning [-1, 1]); voxels beyond ``r_max`` are left out. Shells cut by the box faces
    average the voxels inside the box.

    Args:
      log_density: cube ``(Nx, Ny, Nz)`` of log10 density.
      centre: (x, y, z) in grid units; None: :func:`density_centroid`.
      return_counts: also return the number of voxels of each shell.
    Returns:
      ``(r, profile)`` (and ``counts``), each ``(n_bins,)``: the mean distance of the voxels
      of each shell (so a profile linear in r is returned exactly) and their mean log10
      density; both NaN for an empty shell.
    """
    log_density = _cube(log_density, "log_density")
    if n_bins < 1 or not r_max > 0:
        raise ValueError(f"n_bins, r_max: expected n_bins >= 1 and r_max > 0, got {n_bins}, "
                         f"{r_max}")
    centre = density_centroid(log_density) if centre is None else np.asarray(centre, float)
    if centre.shape != (3,):
        raise ValueError(f"centre: expected (x, y, z), got {centre!r}")
    r = _radii(log_density.shape, centre).ravel()
    inside = r <= r_max
    shell = np.minimum((r[inside] / r_max * n_bins).astype(int), n_bins - 1)
    count = np.bincount(shell, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_r = np.bincount(shell, r[inside], n_bins) / count
        profile = np.bincount(shell, log_density.ravel()[inside], n_bins) / count
    return (mean_r, profile, count) if return_counts else (mean_r, profile)


def plummer_log_profile(r, a, p, log10_peak=0.0):
    """log10 rho(r) = log10_peak - (p / 2) log10(1 + r^2 / a^2)."""
    r = np.asarray(r, dtype=np.float64)
    return log10_peak - 0.5 * p * np.log10(1.0 + (r / a) ** 2)


def fit_plummer(r, profile, counts=None, a_bounds=(0.01, 5.0), p_bounds=(0.0, 6.0),
                n_starts=6):
    """Least-squares Plummer fit of a radial profile of log10 density.

    Fits ``log10 rho = log10 rho0 - (p / 2) log10(1 + r^2 / a^2)`` in log10 density, with a
    and p within their bounds and log10 rho0 free, from ``n_starts`` initial radii spaced
    logarithmically over ``a_bounds``; the best fit is kept. Shells with NaN (empty) are
    skipped. With ``counts`` each shell is weighted by its number of voxels (inverse variance
    of a shell mean of independent voxel errors): the few-voxel inner shells, noisy, then
    count less.

    Args:
      r, profile: ``(n_bins,)`` as returned by :func:`radial_profile`.
      counts: ``(n_bins,)`` voxels per shell, or None for equal weights.
    Returns:
      :class:`PlummerFit` (a, p, log10_peak); all NaN with fewer than 3 finite shells.
    """
    r, profile = np.asarray(r, np.float64), np.asarray(profile, np.float64)
    if r.shape != profile.shape or r.ndim != 1:
        raise ValueError(f"r, profile: expected two (n_bins,) arrays, got {r.shape}, "
                         f"{profile.shape}")
    weight = np.ones_like(r) if counts is None else np.sqrt(np.asarray(counts, np.float64))
    if weight.shape != r.shape:
        raise ValueError(f"counts: expected shape {r.shape}, got {weight.shape}")
    finite = np.isfinite(r) & np.isfinite(profile) & (weight > 0)
    if finite.sum() < 3:
        return PlummerFit(np.nan, np.nan, np.nan)
    r, profile, weight = r[finite], profile[finite], weight[finite]

    def residuals(theta):
        return weight * (plummer_log_profile(r, *theta) - profile)

    lower = (a_bounds[0], p_bounds[0], -np.inf)
    upper = (a_bounds[1], p_bounds[1], np.inf)
    p_start = float(np.clip(2.0, *p_bounds))
    fits = [optimize.least_squares(residuals, (a, p_start, profile[np.argmin(r)]),
                                   bounds=(lower, upper))
            for a in np.geomspace(*a_bounds, n_starts + 2)[1:-1]]
    best = min(fits, key=lambda fit: fit.cost)
    return PlummerFit(*(float(v) for v in best.x))


def mean_baseline(train_targets):
    """The mean-profile baseline: the mean cube of the training targets over the cores.

    Args:
      train_targets: ``(B, Nx, Ny, Nz, C)`` (or ``(B, Nx, Ny, Nz)``) training targets.
    Returns:
      ``(Nx, Ny, Nz, C)`` (or ``(Nx, Ny, Nz)``), float32: the prediction made for every core.
    """
    train_targets = np.asarray(train_targets)
    if train_targets.ndim not in (4, 5) or len(train_targets) == 0:
        raise ValueError(f"train_targets: expected (B >= 1, Nx, Ny, Nz[, C]) cubes, got shape "
                         f"{train_targets.shape}")
    return train_targets.mean(axis=0, dtype=np.float64).astype(np.float32)


#: Accepted names of the generating parameters (those of
#: :class:`tfastro.prestellar.synthetic.CoreParams` first).
_PARAM_NAMES = {"a": ("radius", "a"), "p": ("slope", "p"), "centre": ("centre",)}


def _field(source, key):
    """The parameter ``key`` of a mapping or an object under any of its names, or None."""
    for name in _PARAM_NAMES[key]:
        value = source.get(name) if isinstance(source, dict) else getattr(source, name, None)
        if value is not None:
            return value
    return None


def _core_table(params, n_cores):
    """(a, p, centres or None) of the cores, from a mapping of columns or a sequence of
    records (mappings or objects)."""
    if isinstance(params, dict):
        columns = {key: _field(params, key) for key in _PARAM_NAMES}
    else:
        records = list(params)
        columns = {key: [_field(record, key) for record in records] for key in _PARAM_NAMES}
        if any(centre is None for centre in columns["centre"]):
            columns["centre"] = None
    if columns["a"] is None or columns["p"] is None:
        raise ValueError("params: expected the Plummer radius ('radius' or 'a') and slope "
                         "('slope' or 'p') of every core")
    a, p = (np.asarray(columns[key], np.float64).reshape(-1) for key in ("a", "p"))
    centres = columns["centre"]
    centres = None if centres is None else np.asarray(centres, np.float64).reshape(-1, 3)
    if len(a) != n_cores or len(p) != n_cores or (centres is not None
                                                  and len(centres) != n_cores):
        raise ValueError(f"params: expected the radius, slope (and centre) of {n_cores} cores")
    return a, p, centres


def _finite_stat(statistic, values):
    """``statistic`` of the finite values, NaN when there are none."""
    values = np.asarray(values)[np.isfinite(values)]
    return statistic(values) if values.size else np.nan


def _source_summary(fits, true_a, true_p, profiles, true_profiles):
    a = np.array([fit.a for fit in fits])
    p = np.array([fit.p for fit in fits])
    a_error = np.abs(a - true_a) / true_a
    p_error = np.abs(p - true_p)
    summary = {"a_rel_error_mean": _finite_stat(np.mean, a_error),
               "a_rel_error_median": _finite_stat(np.median, a_error),
               "p_abs_error_mean": _finite_stat(np.mean, p_error),
               "p_abs_error_median": _finite_stat(np.median, p_error),
               "n_fitted": int(np.isfinite(a).sum())}
    if profiles is not true_profiles:
        squares = (profiles - true_profiles) ** 2
        summary["profile_rmse"] = np.sqrt(_finite_stat(np.mean, squares))
    return {"a": a, "p": p, "log10_peak": [fit.log10_peak for fit in fits], "summary": summary}


def profile_scores(pred, true, params, baseline=None, n_bins=16, r_max=1.0,
                   use_centroid=False, **fit_kwargs):
    """Radial profiles and Plummer fits of true, predicted (and baseline) log density cubes,
    against the generating radius and slope.

    Every source is profiled about the same centre per core: the core's own centre from
    ``params`` (or, with ``use_centroid`` or without centres in ``params``, the density
    centroid of the true cube).

    Args:
      pred, true: log10 density cubes ``(B, Nx, Ny, Nz)`` (or one ``(Nx, Ny, Nz)``).
      params: the generating parameters of the B cores, grid units: a sequence of B records
        (objects or dicts, e.g. :class:`tfastro.prestellar.synthetic.CoreParams`) or a dict of
        (B,) columns, holding the Plummer radius (``radius`` or ``a``), slope (``slope`` or
        ``p``) and optionally the ``centre`` (x, y, z).
      baseline: one log10 density cube ``(Nx, Ny, Nz)`` predicted for every core (e.g. the
        log density channel of :func:`mean_baseline`), or None.
      n_bins, r_max: shells of :func:`radial_profile`; fits weight shells by their voxels.
      **fit_kwargs: passed to :func:`fit_plummer` (bounds, starts).
    Returns:
      dict: ``true_a``, ``true_p``, ``centres``, ``r`` (B, n_bins) shell radii; per source
      (``truth``, ``prediction``, ``baseline``): fitted ``a``, ``p``, ``log10_peak`` (B,),
      ``profile`` (B, n_bins), and ``summary`` with the mean / median of |a - a_true| / a_true
      and |p - p_true|, ``n_fitted`` and (not for the truth) ``profile_rmse``, the RMS
      difference of the profile from the true cube's.
    """
    true = np.asarray(true, np.float64)
    pred = np.asarray(pred, np.float64)
    if true.ndim == 3:
        true, pred = true[None], pred[None]
    if true.ndim != 4 or pred.shape != true.shape:
        raise ValueError(f"pred, true: expected log density cubes (B, Nx, Ny, Nz) of one shape, "
                         f"got {pred.shape}, {true.shape}")
    sources = {"truth": true, "prediction": pred}
    if baseline is not None:
        baseline = _cube(baseline, "baseline")
        if baseline.shape != true.shape[1:]:
            raise ValueError(f"baseline: shape {baseline.shape} differs from the cubes' "
                             f"{true.shape[1:]}")
        sources["baseline"] = np.broadcast_to(baseline, true.shape)
    true_a, true_p, centres = _core_table(params, len(true))
    if centres is None or use_centroid:
        centres = np.array([density_centroid(cube) for cube in true])
    r, counts = np.empty((len(true), n_bins)), np.empty((len(true), n_bins))
    profiles = {name: np.empty_like(r) for name in sources}
    for b, centre in enumerate(centres):
        for name, cubes in sources.items():
            r[b], profiles[name][b], counts[b] = radial_profile(cubes[b], centre, n_bins, r_max,
                                                                return_counts=True)
    result = {"true_a": true_a, "true_p": true_p, "centres": centres, "r": r,
              "n_bins": n_bins, "r_max": r_max}
    for name, profile in profiles.items():
        fits = [fit_plummer(r[b], profile[b], counts[b], **fit_kwargs)
                for b in range(len(true))]
        result[name] = {**_source_summary(fits, true_a, true_p, profile, profiles["truth"]),
                        "profile": profile}
    return jsonable(result)


def uncertainty_maps(std, error=None):
    """Sky maps of MC-dropout uncertainty (and of the error, given it).

    Args:
      std: ``(..., Nx, Ny, Nz, 2)`` standard deviation of the MC-dropout passes per voxel.
      error: ``(..., Nx, Ny, Nz, 2)`` error of the prediction (mean - truth), or None.
    Returns:
      dict of ``(..., Nx, Ny, 2)`` float arrays (not JSON): ``std`` the std averaged along
      the line of sight, and with ``error`` also ``rmse`` the RMS error along it.
    """
    std = _targets(std, "std")
    maps = {"std": std.mean(axis=-2)}
    if error is not None:
        error = _targets(error, "error")
        if error.shape != std.shape:
            raise ValueError(f"error: shape {error.shape} differs from std's {std.shape}")
        maps["rmse"] = np.sqrt(np.mean(error**2, axis=-2))
    return maps


def calibration(mean, std, true):
    """How well MC-dropout std predicts the error of the mean prediction.

    Args:
      mean, std, true: targets ``(..., Nx, Ny, Nz, 2)``: the MC-dropout mean and std per
        voxel, and the truth.
    Returns:
      dict per target name: ``within_1std``, ``within_2std`` (fractions of voxels with
      |mean - true| < 1 and < 2 std; 0.683 and 0.954 for Gaussian errors of that std),
      ``mean_std``, ``rmse`` and ``rmse_over_rms_std`` (1 when the spread matches the error on
      average; above 1: over-confident).
    """
    true = _targets(true, "true")
    mean, std = _targets(mean, "mean"), _targets(std, "std")
    if mean.shape != true.shape or std.shape != true.shape:
        raise ValueError(f"mean, std, true: expected one shape, got {mean.shape}, {std.shape}, "
                         f"{true.shape}")
    error = np.abs(mean - true)
    scores = {}
    for c, name in enumerate(TARGET_NAMES):
        e, s = error[..., c], std[..., c]
        rmse = np.sqrt(np.mean(e**2))
        scores[name] = {"within_1std": np.mean(e < s), "within_2std": np.mean(e < 2 * s),
                        "mean_std": np.mean(s), "rmse": rmse,
                        "rmse_over_rms_std": rmse / np.sqrt(np.mean(s**2))}
    return jsonable(scores)
