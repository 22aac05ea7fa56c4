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
- Bin tables depend on the grid only (a mode's bin is a function of the integer |k|^2 / k_F^2):
  they are built plane by plane and cached, a few per process, at O(N^2) memory; the bin of
  every mode of a range of planes is looked up when needed (:func:`slab_bins`).
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


def _integer_grid(shape, rows=slice(None)):
    """Broadcastable integer wavenumbers of each axis on the rfft layout of ``shape``, the
    first axis restricted to ``rows`` (a slice)."""
    d = len(shape)
    axes = [integer_wavenumbers(n) for n in shape[:-1]] + [np.arange(shape[-1] // 2 + 1)]
    axes[0] = axes[0][rows]
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
def axis_windows(shape, mas):
    """Per-axis mass-assignment windows (sin x / x)^p, x = pi k_i / N, of the rfft layout:
    broadcastable float64 arrays whose product is the window W(k) (``mas`` in MAS_ORDER)."""
    p = MAS_ORDER[mas]
    windows = [np.sinc(k / n) ** p for k, n in zip(_integer_grid(shape), shape)]
    for w in windows:
        w.flags.writeable = False
    return windows


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
        for window in axis_windows(shape, mas):
            modes = modes / tf.constant(window.astype(np.complex64))
    return modes


@dataclasses.dataclass(frozen=True, eq=False)
class ModeBins:
    """Pylians binning of the rfft modes of one periodic grid.

    Attributes:
      shape: the grid, ``(N, N)`` or ``(N, N, N)``.
      k: float64 ``(nbins,)`` mean |k| (h/Mpc) of the counted modes of each bin.
      counts: float64 ``(nbins,)`` number of independent modes per bin (Pylians' Nmodes).
    """

    shape: tuple
    k: np.ndarray
    counts: np.ndarray

    @property
    def nbins(self):
        return len(self.k)

    @property
    def index(self):
        """int32 array of the rfft shape: the bin of each mode, or ``nbins`` for the modes not
        counted (the zero mode and the Hermitian duplicates); built on each access (4 bytes a
        mode: 270 MB at 512^3), for binning whole small fields at once."""
        return slab_bins(self.shape, 0, self.shape[0])


def _independent(shape, rows=slice(None)):
    """Boolean rfft-layout mask of the modes Pylians counts (zero mode included), first axis
    restricted to ``rows``."""
    n = shape[0]
    grid = _integer_grid(shape, rows)
    zero_like = [(k == 0) | ((n % 2 == 0) & (k == n // 2)) for k in grid]
    # On the planes k_last in {0, N/2}: drop a mode whose first component outside {0, N/2}
    # is negative (its complex conjugate is the counted twin).
    negative = np.zeros((), dtype=bool)
    decided = np.zeros((), dtype=bool)
    for k, z in zip(grid[:-1], zero_like[:-1]):
        negative = negative | (~decided & (k < 0))
        decided = decided | ~z
    return np.broadcast_to(~(zero_like[-1] & negative),
                           np.broadcast_shapes(*(k.shape for k in grid)))


@functools.lru_cache(maxsize=8)
def _bin_table(shape):
    """Grid-only bin tables: ``(bin_of_squared, counts, mean_k)``.

    ``bin_of_squared``: int32 bin of each integer |k|^2 / k_F^2 (``nbins`` for 0 and beyond
    the last bin); ``counts``: float64 (nbins,) independent modes per bin; ``mean_k``: float64
    (nbins,) their mean |k| / k_F. Counted plane by plane: O(N^2) memory.
    """
    d = len(shape)
    nbins = math.isqrt(d * (shape[0] // 2) ** 2)
    max_squared = d * (shape[0] // 2) ** 2
    roots = np.sqrt(np.arange(max_squared + 1, dtype=np.float64))
    bin_of_squared = np.floor(roots).astype(np.int32) - 1
    bin_of_squared[(bin_of_squared < 0) | (bin_of_squared >= nbins)] = nbins
    per_squared = np.zeros(max_squared + 1)
    for rows in row_slabs(shape, 2**20):
        squared = sum(k**2 for k in _integer_grid(shape, rows))
        per_squared += np.bincount(squared[_independent(shape, rows)],
                                   minlength=max_squared + 1)
    counted = bin_of_squared < nbins
    counts = np.bincount(bin_of_squared[counted], per_squared[counted], nbins)
    mean_k = np.bincount(bin_of_squared[counted], per_squared[counted] * roots[counted],
                         nbins) / counts
    for a in (bin_of_squared, counts, mean_k):
        a.flags.writeable = False
    return bin_of_squared, counts, mean_k


def row_slabs(shape, modes_per_slab):
    """Slices of first-axis rows of the rfft layout of ``shape``, each of about
    ``modes_per_slab`` modes (at least one row), covering the grid in order."""
    per_row = int(np.prod(shape[1:-1], dtype=np.int64)) * (shape[-1] // 2 + 1)
    step = max(1, modes_per_slab // per_row)
    return [slice(start, min(start + step, shape[0])) for start in range(0, shape[0], step)]


def slab_bins(shape, start, stop):
    """Bin of each rfft mode of the first-axis rows ``start:stop`` of a periodic grid.

    Returns int32 ``(stop - start, ..., N//2+1)``: the Pylians bin, or ``nbins`` for the modes
    not counted (the zero mode and the Hermitian duplicates).
    """
    shape, _ = check_grid(shape, 1.0)
    bin_of_squared, counts, _ = _bin_table(shape)
    rows = slice(start, stop)
    index = bin_of_squared[sum(k**2 for k in _integer_grid(shape, rows))]
    return np.where(_independent(shape, rows), index, np.int32(len(counts)))


def mode_bins(shape, box_size):
    """Pylians |k| bins of width k_F for the rfft layout of a periodic grid.

    Args:
      shape: ``(N, N)`` or ``(N, N, N)``.
      box_size: box side L in h^-1 Mpc.
    Returns:
      :class:`ModeBins` with ``floor(sqrt(d) N/2)`` bins (e.g. 55 for 64^3, 90 for 128^2);
      built from the grid's cached tables (:func:`slab_bins`), the box only scaling k.
    """
    shape, box_size = check_grid(shape, box_size)
    _, counts, mean_k = _bin_table(shape)
    return ModeBins(shape=shape, k=(2.0 * np.pi / box_size) * mean_k, counts=counts)
