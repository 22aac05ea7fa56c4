"""Seeded Gaussian, lognormal and cross-correlated random fields on periodic 2D/3D grids.

Normalisation: that of :func:`tfastro.fields.spectra.power_spectrum` (Pylians), so that the
power spectrum measured on a generated field recovers the prescribed ``power`` within cosmic
variance: P(k) = <|delta_k|^2> L^d / N^(2d), box side L in h^-1 Mpc, k in h/Mpc.

Method: C unit white-noise fields are drawn in real space (``np.random.default_rng(seed)``, so
the Fourier modes are Hermitian), transformed with TensorFlow real FFTs, and channel c gets the
modes sum_{j <= c} A_cj(k) W_j(k) / sqrt(P_white), where A is the Cholesky factor of the
covariance C_ij(k) = r_ij(k) sqrt(P_i(k) P_j(k)) and P_white = (L/N)^d is the spectrum of unit
white noise. Channel 0 is therefore the Gaussian field of the same seed whatever the other
channels. The zero mode is set to 0, so every field has zero mean.
"""
import numpy as np

from tfastro.fields.fourier import check_grid, integer_k_squared, real_ffts

__all__ = ["gaussian_random_field", "lognormal_field", "correlated_fields"]


def _evaluate(function, k, name):
    """``function(k)`` broadcast to ``k``'s shape as float64; a number is a constant."""
    values = function(k) if callable(function) else function
    values = np.broadcast_to(np.asarray(values, dtype=np.float64), k.shape)
    if not np.isfinite(values).all():
        raise ValueError(f"{name}: expected finite values for k in [{k.min():.4g}, "
                         f"{k.max():.4g}] h/Mpc")
    return values


def _correlation_table(r, n_channels, k):
    """r_ij(k) as ``(len(k), C, C)`` from a callable/number (every pair) or a C x C nesting."""
    table = np.ones((len(k), n_channels, n_channels))
    shared = callable(r) or np.ndim(r) == 0
    if not shared and (len(r) != n_channels or any(len(row) != n_channels for row in r)):
        raise ValueError(f"r: expected a callable, a number or a {n_channels} x {n_channels} "
                         "nesting of them")
    for i in range(n_channels):
        for j in range(i + 1, n_channels):
            r_ij = r if shared else r[i][j]
            table[:, i, j] = table[:, j, i] = _evaluate(r_ij, k, f"r[{i}][{j}]")
    return table


def _cholesky(matrices):
    """Lower-triangular L with L L^T = M for positive semi-definite ``(..., C, C)`` matrices.

    Columns whose pivot vanishes (e.g. |r| = 1) are set to zero, where numpy's Cholesky fails.
    """
    n = matrices.shape[-1]
    lower = np.zeros_like(matrices)
    for j in range(n):
        pivot = matrices[..., j, j] - np.sum(lower[..., j, :j] ** 2, axis=-1)
        lower[..., j, j] = np.sqrt(np.clip(pivot, 0.0, None))
        safe = np.where(lower[..., j, j] > 1e-12, lower[..., j, j], np.inf)
        for i in range(j + 1, n):
            lower[..., i, j] = (matrices[..., i, j]
                                - np.sum(lower[..., i, :j] * lower[..., j, :j], axis=-1)) / safe
    return lower


def _mixing_table(powers, r, k, white):
    """A(k) with A A^T = C(k) / P_white on a table of |k|: ``(len(k), C, C)``, lower-triangular
    (channel c draws on the white noises 0 .. c only)."""
    power = np.stack([_evaluate(p, k, f"powers[{c}]") for c, p in enumerate(powers)], axis=-1)
    if (power < 0).any():
        raise ValueError("powers: expected P(k) >= 0")
    correlation = _correlation_table(r, len(powers), k)
    smallest = np.linalg.eigvalsh(correlation).min()
    if smallest < -1e-8:
        raise ValueError("r: the correlation matrix r_ij(k) is not positive semi-definite "
                         f"(eigenvalue {smallest:.3g}); expected |r| <= 1 and consistent pairs")
    return np.sqrt(power / white)[:, :, None] * _cholesky(correlation)


def correlated_fields(shape, box_size, powers, r, seed, dtype=np.float64):
    """C Gaussian fields with auto spectra P_i(k) and cross-correlation r_ij(k).

    Args:
      shape: ``(N, N)`` or ``(N, N, N)`` periodic grid.
      box_size: box side L in h^-1 Mpc.
      powers: sequence of C callables P_i(k) (k in h/Mpc, numpy arrays in and out) or numbers.
      r: the correlation coefficient r_ij(k) = P_ij / sqrt(P_ii P_jj): a callable or number
        used for every pair, or a C x C nesting whose entries above the diagonal are used.
        The matrix r_ij(k) must be positive semi-definite (|r| <= 1 for two fields).
      seed: anything ``np.random.default_rng`` accepts; the same seed gives the same fields.
      dtype: float32 or float64 output (and FFT precision).
    Returns:
      array ``(C, *shape)`` of zero-mean fields.
    """
    import tensorflow as tf
    shape, box_size = check_grid(shape, box_size)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype={dtype}: expected float32 or float64")
    powers = list(powers)
    if not powers:
        raise ValueError("powers: expected at least one power spectrum")
    d = len(shape)
    k2 = integer_k_squared(shape)
    k_table = (2.0 * np.pi / box_size) * np.sqrt(np.arange(1, k2.max() + 1, dtype=np.float64))
    mixing = np.concatenate([np.zeros((1, len(powers), len(powers))),
                             _mixing_table(powers, r, k_table, (box_size / shape[0]) ** d)])
    rfft, irfft = real_ffts(d)
    rng = np.random.default_rng(seed)
    noise = rfft(tf.constant(rng.standard_normal((len(powers),) + shape).astype(dtype)))
    k2 = tf.constant(k2)
    modes = [sum(tf.cast(tf.gather(mixing[:, c, j].astype(dtype), k2), noise.dtype) * noise[j]
                 for j in range(c + 1))
             for c in range(len(powers))]
    return irfft(tf.stack(modes), fft_length=shape).numpy()


def gaussian_random_field(shape, box_size, power, seed, dtype=np.float64):
    """Periodic Gaussian random field with power spectrum ``power`` (Pylians normalisation).

    Args:
      shape: ``(N, N)`` or ``(N, N, N)``.
      box_size: box side L in h^-1 Mpc.
      power: callable P(k), k in h/Mpc, in the normalisation of ``power_spectrum``; or a
        number (white noise of that spectrum).
      seed: anything ``np.random.default_rng`` accepts.
      dtype: float32 or float64.
    Returns:
      array ``shape`` with zero mean.
    """
    return correlated_fields(shape, box_size, [power], 1.0, seed, dtype)[0]


def lognormal_field(shape, box_size, power, seed, sigma=None, dtype=np.float64):
    """Lognormal density rho / mean(rho) = exp(g) / <exp(g)> of a Gaussian field g.

    Args:
      shape, box_size, seed, dtype: as in :func:`gaussian_random_field`.
      power: power spectrum P(k) of g = ln rho (up to a constant).
      sigma: if given, g is first rescaled to this standard deviation (``power`` then sets
        only the shape of the spectrum).
    Returns:
      positive array ``shape`` with mean exactly 1 (to round-off).
    """
    g = gaussian_random_field(shape, box_size, power, seed, dtype)
    if sigma is not None:
        if not sigma >= 0:
            raise ValueError(f"sigma={sigma}: expected a standard deviation >= 0")
        g *= sigma / g.std()
    rho = np.exp(g)
    return rho / rho.mean()
