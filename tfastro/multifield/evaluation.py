"""Generated versus real multifield maps: the statistics of the emulator paper's figures.

Maps are arrays ``(N, R, R, C)``: N maps of R^2 pixels covering a periodic square of side
``box_size`` h^-1 Mpc (25 for CAMELS: k_F = 2 pi / 25 h/Mpc), channels in the order of
``fields`` (e.g. ``("Mgas", "HI", "B")``). Values are used as given: pass log10 maps or the
normalised log10 maps in [-1, 1]. Real and generated sets may hold different numbers of maps.

Statistics (spread = population standard deviation over maps, ddof 0):
- auto power spectrum of each channel (:func:`tfastro.fields.spectra.cross_spectra`, bins of
  width k_F): means and spreads, ratio = mean_gen / mean_real with its standard error, and
    R^2_log = 1 - sum_k (ln P_gen - ln P_real)^2 / sum_k (ln P_real - <ln P_real>)^2
  of the mean spectra over the bins with k <= k_Nyquist = pi R / L (complete shells), plus the
  same with P in place of ln P (``r2_linear``, dominated by the largest scales), and the maximum
  relative error |ratio - 1| over the bins with k <= min(k_max, k_Nyquist);
- pixel PDF of each channel (:mod:`tfastro.fields.pdf`) on edges shared by both sets:
  means and spreads over maps, and the KS distance of the pooled pixel values;
- correlation coefficient r_ij(k) = P_ij / sqrt(P_ii P_jj) of each channel pair: means and
  spreads, and max |mean r_gen - mean r_real| over the bins with k <= min(k_max, k_Nyquist);
- conditioning: RMSE and R^2 of regressed parameters, and the large-scale power amplitude of
  maps generated at increasing sigma_8 with its Spearman rank correlation.

Every public function returns a JSON-serialisable dict (lists and floats; a non-finite number,
e.g. a ratio to a zero spectrum, becomes None).
"""
import numpy as np
from scipy import stats

from tfastro.core.json_values import jsonable
from tfastro.fields.pdf import ks_distance, pdf_bin_edges, pdf_mean_std
from tfastro.fields.spectra import correlation_from_spectra, cross_spectra
from tfastro.multifield.io import CMD_FIELDS

__all__ = ["checked_maps", "spectra_comparison", "pdf_comparison", "cross_correlation_comparison",
           "emulator_report", "regression_scores", "amplitude_ordering"]


def checked_maps(maps, name, fields):
    """``maps`` as a float array (N, R, R, C) with C = len(fields); ValueError naming ``name``."""
    maps = np.asarray(maps)
    if maps.ndim != 4 or maps.shape[1] != maps.shape[2] or maps.shape[0] < 1:
        raise ValueError(f"{name}: expected maps of shape (N, R, R, C), got {maps.shape}")
    if maps.shape[-1] != len(fields):
        raise ValueError(f"{name}: {maps.shape[-1]} channels but fields={tuple(fields)} names "
                         f"{len(fields)}")
    if not np.issubdtype(maps.dtype, np.floating):
        maps = maps.astype(np.float32)
    return maps


def _checked_pair(real, generated, fields):
    real = checked_maps(real, "real", fields)
    generated = checked_maps(generated, "generated", fields)
    if real.shape[1:] != generated.shape[1:]:
        raise ValueError(f"generated: maps of shape {generated.shape[1:]} differ from the real "
                         f"maps' {real.shape[1:]}")
    return real, generated


def _k_nyquist(resolution, box_size):
    return np.pi * resolution / float(box_size)


def _r_squared(truth, estimate):
    """1 - sum (estimate - truth)^2 / sum (truth - mean truth)^2 over the last axis."""
    residual = np.sum((estimate - truth) ** 2, axis=-1)
    total = np.sum((truth - truth.mean(axis=-1, keepdims=True)) ** 2, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 - residual / total


def _mean_std(values):
    return values.mean(axis=0), values.std(axis=0)


def _auto_summary(k, counts, real_spectra, generated_spectra, fields, resolution, box_size,
                  k_max):
    """Per-channel auto-spectrum comparison from spectra ``(N, C, C, nbins)`` of both sets."""
    k_nyquist = _k_nyquist(resolution, box_size)
    complete = k <= k_nyquist
    scored = k <= min(k_max, k_nyquist)
    channels = {}
    for c, field in enumerate(fields):
        real, generated = real_spectra[:, c, c], generated_spectra[:, c, c]
        real_mean, real_std = _mean_std(real)
        gen_mean, gen_std = _mean_std(generated)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = gen_mean / real_mean
            ratio_error = np.abs(ratio) * np.hypot(gen_std / gen_mean / np.sqrt(len(generated)),
                                                   real_std / real_mean / np.sqrt(len(real)))
            r2_log = _r_squared(np.log(real_mean[complete]), np.log(gen_mean[complete]))
        channels[field] = {
            "real_mean": real_mean, "real_std": real_std,
            "generated_mean": gen_mean, "generated_std": gen_std,
            "ratio": ratio, "ratio_error": ratio_error,
            "r2_log": r2_log, "r2_linear": _r_squared(real_mean[complete], gen_mean[complete]),
            "max_rel_error": np.max(np.abs(ratio[scored] - 1.0)),
        }
    return {"k": k, "n_modes": counts, "k_nyquist": k_nyquist, "k_max": k_max,
            "channels": channels}


def _correlation_summary(k, real_spectra, generated_spectra, fields, resolution, box_size,
                         k_max):
    """Per-pair r_ij(k) comparison from spectra ``(N, C, C, nbins)`` of both sets."""
    k_nyquist = _k_nyquist(resolution, box_size)
    scored = k <= min(k_max, k_nyquist)
    with np.errstate(divide="ignore", invalid="ignore"):
        real_r, generated_r = correlation_from_spectra(real_spectra), correlation_from_spectra(generated_spectra)
    pairs = {}
    for i, j in zip(*np.triu_indices(len(fields), k=1)):
        real_mean, real_std = _mean_std(real_r[:, i, j])
        gen_mean, gen_std = _mean_std(generated_r[:, i, j])
        pairs[f"{fields[i]}-{fields[j]}"] = {
            "real_mean": real_mean, "real_std": real_std,
            "generated_mean": gen_mean, "generated_std": gen_std,
            "max_abs_diff": np.max(np.abs(gen_mean[scored] - real_mean[scored])),
        }
    return {"k": k, "k_nyquist": k_nyquist, "k_max": k_max, "pairs": pairs}


def _both_spectra(real, generated, box_size):
    """k, Nmodes and the auto/cross spectra ``(N, C, C, nbins)`` of both sets."""
    k, real_spectra, counts = cross_spectra(real, box_size)
    _, generated_spectra, _ = cross_spectra(generated, box_size)
    return k, counts, real_spectra, generated_spectra


def spectra_comparison(real, generated, box_size=25.0, fields=CMD_FIELDS, k_max=10.0):
    """Auto power spectra of each channel, generated against real.

    Args:
      real, generated: maps ``(N, R, R, C)`` and ``(M, R, R, C)`` (see the module docstring).
      box_size: box side L in h^-1 Mpc.
      fields: the C channel names.
      k_max: h/Mpc; ``max_rel_error`` is taken over the bins with k <= min(k_max, k_Nyquist).
    Returns:
      dict: ``k`` (nbins,) h/Mpc, ``n_modes``, ``k_nyquist``, ``k_max`` and ``channels``
      {field: ``real_mean``, ``real_std``, ``generated_mean``, ``generated_std`` (nbins,)
      in (h^-1 Mpc)^2; ``ratio`` mean_gen / mean_real and ``ratio_error`` its standard error
      (nbins,); ``r2_log``, ``r2_linear``, ``max_rel_error``}.
    """
    real, generated = _checked_pair(real, generated, fields)
    k, counts, real_spectra, generated_spectra = _both_spectra(real, generated, box_size)
    return jsonable(_auto_summary(k, counts, real_spectra, generated_spectra, fields,
                                   real.shape[1], box_size, k_max))


def cross_correlation_comparison(real, generated, box_size=25.0, fields=CMD_FIELDS,
                                 k_max=10.0):
    """Correlation coefficients r_ij(k) of the channel pairs, generated against real.

    Args as :func:`spectra_comparison`; ``max_abs_diff`` is taken over k <= min(k_max,
    k_Nyquist).
    Returns:
      dict: ``k``, ``k_nyquist``, ``k_max`` and ``pairs`` {"Mgas-HI" (fields i-j, i < j):
      ``real_mean``, ``real_std``, ``generated_mean``, ``generated_std`` (nbins,),
      ``max_abs_diff``}.
    """
    real, generated = _checked_pair(real, generated, fields)
    k, _, real_spectra, generated_spectra = _both_spectra(real, generated, box_size)
    return jsonable(_correlation_summary(k, real_spectra, generated_spectra, fields,
                                          real.shape[1], box_size, k_max))


def pdf_comparison(real, generated, fields=CMD_FIELDS, bins=50, log10=False):
    """Pixel PDFs of each channel, generated against real, on edges shared by both sets.

    Args:
      real, generated: maps ``(N, R, R, C)`` and ``(M, R, R, C)``.
      fields: the C channel names.
      bins: number of evenly spaced bins spanning the values of both sets.
      log10: bin log10 of the values (for positive, linear maps); False for log maps.
    Returns:
      dict ``channels`` {field: ``edges`` (bins + 1,), ``real_mean``, ``real_std``,
      ``generated_mean``, ``generated_std`` (bins,) densities per unit of the binned variable,
      ``ks_distance`` of the pooled pixel values}.
    """
    real, generated = _checked_pair(real, generated, fields)
    channels = {}
    for c, field in enumerate(fields):
        real_c, generated_c = real[..., c], generated[..., c]
        edges = pdf_bin_edges(real_c, generated_c, bins=bins, log10=log10)
        real_mean, real_std = pdf_mean_std(real_c, edges, log10)
        gen_mean, gen_std = pdf_mean_std(generated_c, edges, log10)
        channels[field] = {"edges": edges, "real_mean": real_mean, "real_std": real_std,
                           "generated_mean": gen_mean, "generated_std": gen_std,
                           "ks_distance": ks_distance(real_c, generated_c)}
    return jsonable({"channels": channels})


def emulator_report(real, generated, fields=CMD_FIELDS, box_size=25.0, k_max=10.0, bins=50,
                    log10=False):
    """The three comparisons of generated against real maps in one JSON-serialisable dict.

    Args as :func:`spectra_comparison` and :func:`pdf_comparison`; the spectra of each set are
    computed once for the auto spectra and the correlation coefficients.
    Returns:
      dict: ``fields``, ``n_real``, ``n_generated``, ``resolution``, ``box_size``, ``spectra``
      (:func:`spectra_comparison`), ``pdfs`` (:func:`pdf_comparison`) and
      ``cross_correlations`` (:func:`cross_correlation_comparison`).
    """
    real, generated = _checked_pair(real, generated, fields)
    resolution = real.shape[1]
    k, counts, real_spectra, generated_spectra = _both_spectra(real, generated, box_size)
    return jsonable({
        "fields": list(fields), "n_real": len(real), "n_generated": len(generated),
        "resolution": resolution, "box_size": box_size,
        "spectra": _auto_summary(k, counts, real_spectra, generated_spectra, fields,
                                 resolution, box_size, k_max),
        "pdfs": pdf_comparison(real, generated, fields, bins, log10),
        "cross_correlations": _correlation_summary(k, real_spectra, generated_spectra, fields,
                                                   resolution, box_size, k_max),
    })


def regression_scores(theta_true, theta_pred, names=("Omega_m", "sigma_8")):
    """RMSE and R^2 of regressed parameters, per parameter.

    Args:
      theta_true, theta_pred: ``(N, P)`` true and predicted parameters (same units, e.g. the
        normalised ones).
      names: the P parameter names.
    Returns:
      dict {name: {``rmse``: sqrt(mean (pred - true)^2), ``r2``: 1 - sum (pred - true)^2 /
      sum (true - mean true)^2}}: R^2 is 1 for a perfect prediction, 0 for predicting the mean.
      Where every true value of a parameter is the same, its ``r2`` is None (not defined) and
      ``r2_undefined`` says why.
    """
    theta_true = np.asarray(theta_true, dtype=np.float64)
    theta_pred = np.asarray(theta_pred, dtype=np.float64)
    if theta_true.ndim != 2 or theta_true.shape != theta_pred.shape:
        raise ValueError(f"theta_true {theta_true.shape} and theta_pred {theta_pred.shape}: "
                         "expected equal shapes (N, P)")
    if len(names) != theta_true.shape[1]:
        raise ValueError(f"names={tuple(names)}: expected {theta_true.shape[1]} names")
    rmse = np.sqrt(np.mean((theta_pred - theta_true) ** 2, axis=0))
    r2 = _r_squared(theta_true.T, theta_pred.T)
    scores = {}
    for p, name in enumerate(names):
        scores[name] = {"rmse": rmse[p], "r2": r2[p]}
        if np.unique(theta_true[:, p]).size <= 1:
            scores[name].update(r2=None, r2_undefined=(
                f"the {len(theta_true)} true {name} values are all equal (the maps share one "
                "parameter vector): R^2 would divide by their zero variance"))
    return jsonable(scores)


def amplitude_ordering(maps_by_sigma8, box_size=25.0, fields=CMD_FIELDS, n_bins=5):
    """Large-scale power amplitude of maps generated at several sigma_8: does it grow with it?

    The amplitude of a map's channel is the mean of its P(k) over the first ``n_bins`` k bins
    (k < (n_bins + 1) k_F); it is averaged over the maps of each sigma_8.

    Args:
      maps_by_sigma8: {sigma_8: maps ``(N, R, R, C)``}, at least two values, all maps of the
        same R and C (N may differ).
      box_size, fields: as in :func:`spectra_comparison`.
      n_bins: number of lowest k bins averaged.
    Returns:
      dict: ``sigma8`` (sorted), ``n_bins`` and ``channels`` {field: ``amplitude`` and
      ``amplitude_error`` (standard error over maps) per sigma_8 in (h^-1 Mpc)^2, ``spearman``
      rank correlation of amplitude with sigma_8, ``increasing`` (strictly, from each sigma_8
      to the next)}.
    """
    if len(maps_by_sigma8) < 2:
        raise ValueError(f"maps_by_sigma8: expected maps at two or more sigma_8 values, got "
                         f"{len(maps_by_sigma8)}")
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    sigma8 = sorted(maps_by_sigma8)
    amplitudes, errors = [], []
    for value in sigma8:
        maps = checked_maps(maps_by_sigma8[value], f"maps_by_sigma8[{value}]", fields)
        _, spectra, _ = cross_spectra(maps, box_size)
        auto = np.diagonal(spectra, axis1=1, axis2=2)[:, :n_bins].mean(axis=1)  # (N, C)
        amplitudes.append(auto.mean(axis=0))
        errors.append(auto.std(axis=0) / np.sqrt(len(auto)))
    amplitudes, errors = np.array(amplitudes), np.array(errors)  # (S, C)
    channels = {}
    for c, field in enumerate(fields):
        channels[field] = {"amplitude": amplitudes[:, c], "amplitude_error": errors[:, c],
                           "spearman": stats.spearmanr(sigma8, amplitudes[:, c]).statistic,
                           "increasing": bool(np.all(np.diff(amplitudes[:, c]) > 0))}
    return jsonable({"sigma8": sigma8, "n_bins": n_bins, "channels": channels})
