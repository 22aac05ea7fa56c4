"""Fourier conventions of Pylians3 shared by the field statistics (P(k), cross power, ...).

Periodic grids of N cells a side in d = 2 or 3 dimensions, box side L in h^-1 Mpc.
- Fourier modes use the real-FFT layout: the last axis keeps N//2 + 1 wavenumbers.
- Integer wavenumbers per axis run in FFT order 0, 1, ..., N/2, -(N/2 - 1), ..., -1: the Nyquist
  mode is taken as +N/2 (Pylians). Physical wavenumbers are k = k_F * integer, k_F = 2 pi / L.
- Mass-assignment windows: delta_k is divided, per axis, by (sin x / x)^p with x = pi k_i / N
  and p = MAS_ORDER[mas] (NGP 1, CIC 2, TSC 3, PCS 4).
- Bins of width k_F: a mode with |k| in [n k_F, (n+1) k_F) goes to bin n - 1 (n >= 1), so the zero
  mode is dropped and the bins run to sqrt(d) k_Nyq. Only independent modes are counted: on the
  planes k_last = 0 and k_last = N/2 of the rfft layout the Hermitian duplicates are skipped,
  keeping a mode when its first component outside {0, N/2} is positive (Pylians' rule).
"""
import dataclasses
import functools
import math

import numpy as np

MAS_ORDER = {"NGP": 1, "CIC": 2, "TSC": 3, "PCS": 4}


#: Forward and inverse real FFTs over the last d axes, by d (unnormalised forward transform).
def real_ffts(ndim):
    """(forward, inverse) real FFT of tf.signal for a 2D or 3D field."""
    import tensorflow as tf
    return {2: (tf.signal.rfft2d, tf.signal.irfft2d), 3: (tf.signal.rfft3d, tf.signal.irfft3d)}[ndim]


def check_grid(shape, box_size):
    """Validated ``(tuple shape, float box_size)`` of a periodic 2D/3D grid with equal sides."""
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3) or len(set(shape)) != 1 or shape[0] < 2:
        raise ValueError(f"shape={shape}: expected 2 or 3 equal sides N >= 2 (a periodic "
                         "square or cube)")
    box_size = float(box_size)
    if not box_size > 0 or not math.isfinite(box_size):
        raise ValueError(f"box_size={box_size}: expected a positive box side in h^-1 Mpc")
    return shape, box_size


def integer_wavenumbers(n):
    """Integer wavenumbers of an axis of ``n`` cells in FFT order, Nyquist as +n/2 (int64)."""
    k = np.arange(n)
    return np.where(k > n // 2, k - n, k)


def _integer_grid(shape):
    """Broadcastable integer wavenumbers of each axis on the rfft layout of ``shape``."""
    d = len(shape)
    axes = [integer_wavenumbers(n) for n in shape[:-1]] + [np.arange(shape[-1] // 2 + 1)]
    return [a.reshape([-1 if i == j else 1 for j in range(d)]) for i, a in enumerate(axes)]


def integer_k_squared(shape):
    """(|k| / k_F)^2, an integer, of every mode of the rfft layout of ``shape`` (int64)."""
    shape, _ = check_grid(shape, 1.0)
    return sum(k**2 for k in _integer_grid(shape))


def wavenumbers(shape, box_size):
    """|k| in h/Mpc of every mode of the rfft layout of a periodic grid.

    Args:
      shape: ``(N, N)`` or ``(N, N, N)``.
      box_size: box side L in h^-1 Mpc.
    Returns:
      float64 array of shape ``(N, N//2+1)`` or ``(N, N, N//2+1)``.
    """
    shape, box_size = check_grid(shape, box_size)
    return (2.0 * np.pi / box_size) * np.sqrt(integer_k_squared(shape).astype(np.float64))


@functools.lru_cache(maxsize=16)
def _inverse_window(shape, mas):
    """1 / prod_i (sin x_i / x_i)^p on the rfft layout (complex64), x_i = pi k_i / N."""
    p = MAS_ORDER[mas]
    window = np.ones((), dtype=np.float64)
    for k, n in zip(_integer_grid(shape), shape):
        window = window * np.sinc(k / n) ** p  # np.sinc(t) = sin(pi t) / (pi t)
    inverse = (1.0 / window).astype(np.complex64)
    inverse.flags.writeable = False
    return inverse


def field_modes(field, box_size, ndim, mas=None):
    """Real FFT of a periodic field over its last ``ndim`` axes, MAS-corrected (Pylians).

    Args:
      field: real array or tensor ``(..., N, N)`` (ndim 2) or ``(..., N, N, N)`` (ndim 3);
        leading axes are a batch.
      box_size: box side L in h^-1 Mpc (validated; the window depends on k_i / N only).
      ndim: 2 or 3, the number of trailing spatial axes.
      mas: None (no correction) or one of ``MAS_ORDER``: delta_k is divided per axis by
        (sin x / x)^p, x = pi k_i / N.
    Returns:
      tf.complex64 tensor ``(..., N, N//2+1)`` or ``(..., N, N, N//2+1)``, unnormalised (numpy
      convention: the sum over cells).
    """
    import tensorflow as tf
    if ndim not in (2, 3):
        raise ValueError(f"ndim={ndim}: expected 2 or 3 spatial dimensions")
    if mas is not None and mas not in MAS_ORDER:
        raise ValueError(f"mas={mas!r}: expected None or one of {', '.join(MAS_ORDER)}")
    field = tf.convert_to_tensor(field)
    if field.dtype.is_complex or not (field.dtype.is_floating or field.dtype.is_integer):
        raise ValueError(f"field: expected a real array, got dtype {field.dtype.name}")
    if field.shape.rank is None or field.shape.rank < ndim:
        raise ValueError(f"field: expected at least {ndim} axes, got shape {field.shape}")
    shape, _ = check_grid(field.shape[-ndim:], box_size)
    modes = real_ffts(ndim)[0](tf.cast(field, tf.float32))
    if mas is not None:
        modes = modes * _inverse_window(shape, mas)
    return modes


@dataclasses.dataclass(frozen=True, eq=False)
class ModeBins:
    """Pylians binning of the rfft modes of one periodic grid.

    Attributes:
      index: int32 array of the rfft shape: the bin of each mode, or ``nbins`` (out of range)
        for the modes not counted (the zero mode and the Hermitian duplicates), so that
        ``tf.math.bincount(index, weights, minlength=nbins, maxlength=nbins)`` bins a field.
      k: float64 ``(nbins,)`` mean |k| (h/Mpc) of the counted modes of each bin.
      counts: float64 ``(nbins,)`` number of independent modes per bin (Pylians' Nmodes).
    """

    index: np.ndarray
    k: np.ndarray
    counts: np.ndarray

    @property
    def nbins(self):
        return len(self.k)


def _independent(shape):
    """Boolean rfft-layout mask of the modes Pylians counts (zero mode included)."""
    n = shape[0]
    grid = _integer_grid(shape)
    zero_like = [(k == 0) | ((n % 2 == 0) & (k == n // 2)) for k in grid]
    # On the planes k_last in {0, N/2}: drop a mode whose first component outside {0, N/2}
    # is negative (its complex conjugate is the counted twin).
    negative = np.zeros((), dtype=bool)
    decided = np.zeros((), dtype=bool)
    for k, z in zip(grid[:-1], zero_like[:-1]):
        negative = negative | (~decided & (k < 0))
        decided = decided | ~z
    return np.broadcast_to(~(zero_like[-1] & negative),
                           tuple(n for n in shape[:-1]) + (n // 2 + 1,))


@functools.lru_cache(maxsize=8)
def _mode_bins(shape, box_size):
    k_int = np.sqrt(integer_k_squared(shape).astype(np.float64))
    nbins = math.isqrt(len(shape) * (shape[0] // 2) ** 2)
    n_int = np.floor(k_int).astype(np.int64)
    index = np.where(_independent(shape) & (n_int >= 1), n_int - 1, nbins).astype(np.int32)
    counted = index < nbins
    counts = np.bincount(index[counted], minlength=nbins).astype(np.float64)
    k = (2.0 * np.pi / box_size) * np.bincount(index[counted], weights=k_int[counted],
                                               minlength=nbins) / counts
    for a in (index, k, counts):
        a.flags.writeable = False
    return ModeBins(index=index, k=k, counts=counts)


def mode_bins(shape, box_size):
    """Pylians |k| bins of width k_F for the rfft layout of a periodic grid (cached).

    Args:
      shape: ``(N, N)`` or ``(N, N, N)``.
      box_size: box side L in h^-1 Mpc.
    Returns:
      :class:`ModeBins` with ``floor(sqrt(d) N/2)`` bins (e.g. 55 for 64^3, 90 for 128^2).
    """
    shape, box_size = check_grid(shape, box_size)
    return _mode_bins(shape, box_size)
