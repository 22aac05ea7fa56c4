"""Bispectrum and reduced bispectrum of a periodic 3D field: Pylians3's FFT shell estimator.

Conventions (Pylians3 ``bispectrum_library.Bk``; see :mod:`tfastro.fields.fourier`):
- delta is the field as given, Fourier-transformed over the whole N^3 grid (box side L in
  h^-1 Mpc), optionally divided by the mass-assignment window ``mas`` (Pylians' own default is
  CIC; the default here is no correction);
- a triangle is given by k1, k2 (h/Mpc) and the angle theta between them (radians): the third
  side is k3 = sqrt((k2 sin theta)^2 + (k2 cos theta + k1)^2);
- shell i keeps the modes with |k| in [k_i - k_F, k_i + k_F), k_F = 2 pi / L, tested as Pylians
  does, in units of k_F and double precision; delta_i(x) is delta_k restricted to shell i and
  transformed back, I_i(x) likewise the shell's indicator;
- B = sum_x delta_1 delta_2 delta_3 / sum_x I_1 I_2 I_3 * L^6 / N^9 in (h^-1 Mpc)^6, the shell
  powers P_i = sum_x delta_i^2 / sum_x I_i^2 * L^3 / N^6 in (h^-1 Mpc)^3, and the reduced
  bispectrum Q = B / (P1 P2 + P1 P3 + P2 P3). Sums over x run over the periodic grid, so
  triangles closing modulo N (aliased ones) count, as in Pylians.

Computation: the k1 and k2 shells are transformed back once; the sums over x that involve shell 3
are taken in Fourier space by Parseval's theorem, sum_x a(x) delta_3(x) = (1/N^3)
sum_{k in shell 3} Re[delta_k conj(a_k)] with a = delta_1 delta_2, as sums over the modes of each
integer |k|^2 / k_F^2. Every angle then costs the difference of two cumulative sums: one
bispectrum takes four float32 FFTs (``tf.signal``) however many angles are asked, with sums
accumulated in float64. The denominators sum_x I_1 I_2 I_3 depend on the grid and the shells
only; they are counted exactly (float64 FFTs rounded to integers) and cached.
"""
import functools
from typing import NamedTuple

import numpy as np

from tfastro.fields.checks import check_real_values
from tfastro.fields.fourier import field_modes, integer_k_squared

__all__ = ["Bispectrum", "bispectrum", "triangle_third_side"]


class Bispectrum(NamedTuple):
    """Result of :func:`bispectrum`; arrays run over the angles theta.

    Attributes:
      B: (n_theta,) bispectrum in (h^-1 Mpc)^6.
      Q: (n_theta,) reduced bispectrum B / (P1 P2 + P1 P3 + P2 P3), dimensionless.
      k3: (n_theta,) third side of each triangle in h/Mpc.
      P1, P2: power in the k1 and k2 shells, (h^-1 Mpc)^3.
      P3: (n_theta,) power in each k3 shell, (h^-1 Mpc)^3.
      triangles: (n_theta,) number of closed triangles q1 + q2 + q3 = 0 (modulo N) with each
        q_i in its shell, ordered and over the full grid of modes; it equals
        sum_x I_1 I_2 I_3 / N^3 with unnormalised inverse FFTs.
    """

    B: np.ndarray
    Q: np.ndarray
    k3: np.ndarray
    P1: float
    P2: float
    P3: np.ndarray
    triangles: np.ndarray


def triangle_third_side(k1, k2, thetas):
    """k3 = |k1 + k2| = sqrt((k2 sin theta)^2 + (k2 cos theta + k1)^2) for the angles ``thetas``
    (radians) between the sides k1 and k2 (any unit of k); float64 array shaped like ``thetas``."""
    thetas = np.asarray(thetas, dtype=np.float64)
    return np.sqrt((k2 * np.sin(thetas)) ** 2 + (k2 * np.cos(thetas) + k1) ** 2)


def _hermitian_weight(n, depth):
    """(depth,) weights of the first ``depth`` k_z planes of the rfft layout of N cells that turn
    a sum over the half into one over the full grid: 1 on the planes k_z = 0 and k_z = N/2, whose
    conjugate twins are in the half already, 2 elsewhere."""
    kz = np.arange(depth)
    return np.where((kz == 0) | (2 * kz == n), 1.0, 2.0)


def _sums_by_squared(values, squared, n_bins):
    """Full-grid sums of rfft-layout ``values`` (..., C) over the modes of each |k|^2 / k_F^2.

    ``values`` is real, shaped ``squared.shape + (C,)``, and covers the first ``depth`` k_z
    planes of an N^3 grid (``squared`` holds their integer |k|^2 / k_F^2); modes with
    |k|^2 / k_F^2 >= n_bins are dropped. Returns float64 numpy ``(n_bins, C)``.
    """
    import tensorflow as tf
    n, depth = squared.shape[0], squared.shape[-1]
    weight = _hermitian_weight(n, depth)[:, None]
    values = tf.cast(values, tf.float64) * weight
    ids = tf.constant(np.where(squared < n_bins, squared, -1))  # -1: dropped
    return tf.math.unsorted_segment_sum(values, ids, n_bins).numpy()


def _shell_mask(squared, shell):
    lo, hi = shell
    return (squared >= lo) & (squared < hi)


def _shell_limits(k, k_f, max_squared):
    """Ranges [lo, hi) of integer |q|^2 / k_F^2 with |q| / k_F in [(k - k_F)/k_F, (k + k_F)/k_F).

    The bounds are computed and compared with sqrt(integer) in double precision, as Pylians
    does.
    """
    roots = np.sqrt(np.arange(max_squared + 1, dtype=np.float64))
    k = np.asarray(k, dtype=np.float64)
    return (np.searchsorted(roots, (k - k_f) / k_f, side="left"),
            np.searchsorted(roots, (k + k_f) / k_f, side="left"))


def _low_block(tensors, squared, bound):
    """The block of rfft modes holding every mode with |k|^2 / k_F^2 < ``bound``.

    Args:
      tensors: ``(..., N, N, N//2+1)`` tensor on the rfft layout.
      squared: the layout's integer |k|^2 / k_F^2.
    Returns:
      ``(block of tensors, block of squared)``: corners of the first two axes and the leading
      k_z planes.
    """
    import tensorflow as tf
    rows = np.flatnonzero(squared[:, 0, 0] < bound)
    depth = int(np.count_nonzero(squared[0, 0, :] < bound))
    block = tf.gather(tf.gather(tensors[..., :depth], rows, axis=-3), rows, axis=-2)
    return block, squared[np.ix_(rows, rows, np.arange(depth))]


@functools.lru_cache(maxsize=32)
def _closed_triangles(n, shell1, shell2, bound):
    """(bound,) number of ordered mode pairs (q1, q2), q1 in ``shell1`` and q2 in ``shell2``,
    with q1 + q2 = -q3 (modulo N) for each q3 of the N^3 grid, summed over the q3 of each
    integer |q3|^2 / k_F^2 < ``bound``. Shells are [lo, hi) ranges of |q|^2 / k_F^2. Exact:
    float64 FFTs of the shell indicators, rounded per mode.
    """
    import tensorflow as tf
    squared = integer_k_squared((n, n, n))
    indicators = [tf.signal.irfft3d(tf.constant(_shell_mask(squared, s), tf.complex128),
                                    fft_length=[n, n, n]) for s in (shell1, shell2)]
    # I_i(x) = (1/N^3) sum_{q in shell i} e^{iqx}, so FFT[I_1 I_2](k) N^3 counts the pairs.
    pairs, block_squared = _low_block(tf.signal.rfft3d(indicators[0] * indicators[1]),
                                      squared, bound)
    pairs = tf.round(tf.math.real(pairs) * float(n) ** 3)
    return _sums_by_squared(pairs[..., None], block_squared, bound)[:, 0]


def _checked_side(value, name, k_nyquist):
    """A triangle side k1 or k2 in (0, k_Nyquist], as a float."""
    if np.ndim(value) != 0:
        raise ValueError(f"{name}: expected a scalar wavenumber in h/Mpc, got shape "
                         f"{np.shape(value)}")
    value = float(value)
    if not 0.0 < value <= k_nyquist:
        raise ValueError(f"{name}={value}: expected a wavenumber in (0, k_Nyquist = "
                         f"{k_nyquist:.6g}] h/Mpc for this grid and box")
    return value


def _checked_thetas(thetas):
    thetas = np.asarray(thetas, dtype=np.float64)
    if thetas.ndim > 1 or not np.all(np.isfinite(thetas)):
        raise ValueError(f"thetas: expected a finite angle or a 1D array of angles in radians, "
                         f"got shape {thetas.shape}")
    return np.atleast_1d(thetas)


def bispectrum(field, box_size, k1, k2, thetas, mas=None, allow_nonfinite=False):
    """Bispectrum B(k1, k2, theta) and reduced Q of a periodic 3D field (Pylians ``Bk``).

    Args:
      field: real array or tensor ``(N, N, N)``, the density contrast (used as given).
      box_size: box side L in h^-1 Mpc.
      k1, k2: the two triangle sides in h/Mpc, each in (0, k_Nyquist], k_Nyquist = k_F (N//2)
        (pi N / L for even N).
      thetas: angle(s) between k1 and k2 in radians, scalar or ``(n_theta,)``.
      mas: None, or NGP / CIC / TSC / PCS to deconvolve the mass-assignment window.
      allow_nonfinite: compute with NaN or inf values (then B, Q and the shell powers are NaN)
        instead of refusing them.
    Returns:
      :class:`Bispectrum` of float64 numpy arrays ``(n_theta,)``: B in (h^-1 Mpc)^6, Q, k3 in
      h/Mpc, P3 in (h^-1 Mpc)^3 and the triangle counts; P1, P2 floats in (h^-1 Mpc)^3.
    Raises:
      ValueError: naming the argument, for a field that is not a cube, sides outside
        (0, k_Nyquist], or an angle whose k3 shell closes no triangle with the k1 and k2 shells;
        UserInputError (a ValueError) for complex or non-finite field values.
    """
    import tensorflow as tf
    field = tf.convert_to_tensor(check_real_values(field, "field", allow_nonfinite))
    if field.shape.rank != 3 or len(set(field.shape)) != 1:
        raise ValueError(f"field: expected a 3D (N, N, N) cube, got shape {field.shape}")
    modes = field_modes(field, box_size, 3, mas)  # validates the cube, box_size and mas
    n, box_size = int(field.shape[0]), float(box_size)
    k_f = 2.0 * np.pi / box_size
    k1 = _checked_side(k1, "k1", k_f * (n // 2))
    k2 = _checked_side(k2, "k2", k_f * (n // 2))
    thetas = _checked_thetas(thetas)
    k3 = triangle_third_side(k1, k2, thetas)

    squared = integer_k_squared((n, n, n))
    lo, hi = _shell_limits(np.concatenate([[k1, k2], k3]), k_f, int(squared.max()))
    shell1, shell2 = (int(lo[0]), int(hi[0])), (int(lo[1]), int(hi[1]))

    # delta_1 and delta_2 in real space (one batched inverse FFT), then the Fourier modes of
    # their product, which Parseval pairs with delta_k on every k3 shell.
    zero = tf.zeros_like(modes)
    in_shells = tf.stack([tf.where(_shell_mask(squared, shell), modes, zero)
                          for shell in (shell1, shell2)])
    real = tf.signal.irfft3d(in_shells, fft_length=[n, n, n])
    pair = tf.signal.rfft3d(real[0] * real[1])

    # Per integer |k|^2 / k_F^2, over the low modes that hold every shell: sums of |delta_k|^2,
    # of Re[delta_k conj(pair_k)] and of modes; shell sums are differences of cumulative sums.
    bound = int(hi.max())
    block, block_squared = _low_block(tf.stack([modes, pair]), squared, bound)
    delta, product = tf.unstack(block)
    per_mode = tf.stack([tf.math.real(delta) ** 2 + tf.math.imag(delta) ** 2,
                         tf.math.real(delta * tf.math.conj(product)),
                         tf.ones_like(tf.math.real(delta))], axis=-1)
    sums = np.concatenate([_sums_by_squared(per_mode, block_squared, bound),
                           _closed_triangles(n, shell1, shell2, bound)[:, None]], axis=1)
    cumulative = np.concatenate([np.zeros((1, sums.shape[1])), np.cumsum(sums, axis=0)])
    power, cross, count, triangles = (cumulative[hi] - cumulative[lo]).T

    triangles = triangles[2:]
    if np.any(triangles == 0):
        empty = triangles == 0
        raise ValueError(f"thetas: the k3 shells of the angles {thetas[empty].tolist()} "
                         f"(k3 = {k3[empty].tolist()} h/Mpc) close no triangle with the k1 and "
                         "k2 shells on this grid")
    shell_power = power / count * box_size**3 / float(n) ** 6
    p1, p2, p3 = shell_power[0], shell_power[1], shell_power[2:]
    # sum_x delta_1 delta_2 delta_3 = cross / N^3 and sum_x I_1 I_2 I_3 = triangles / N^6 with
    # the normalised inverse FFTs: B = cross N^3 / triangles * L^6 / N^9.
    b = cross[2:] / triangles * box_size**6 / float(n) ** 6
    q = b / (p1 * p2 + p1 * p3 + p2 * p3)
    return Bispectrum(B=b, Q=q, k3=k3, P1=float(p1), P2=float(p2), P3=p3, triangles=triangles)
