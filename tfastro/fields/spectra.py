"""Power spectra, cross spectra and correlation coefficients of periodic 2D/3D fields.

Pylians3 conventions (``Pk_library.Pk``, ``Pk_plane``, ``XPk``; see
:mod:`tfastro.fields.fourier`):
- delta is the field as given (``overdensity=True`` uses rho / mean(rho) - 1 of each field);
- P(k) = |delta_k|^2 L^d / N^(2d) with delta_k the unnormalised FFT (sum over cells), L the box
  side in h^-1 Mpc, N cells a side, d = 2 or 3; white noise of variance s^2 has P = s^2 (L/N)^d;
- cross power P_ab = Re(delta_a delta_b^*) with the same normalisation, r = P_ab / sqrt(P_aa P_bb);
- bins of width k_F = 2 pi / L, zero mode dropped, k the mean |k| of a bin's independent modes,
  Nmodes their number; optional mass-assignment correction ``mas`` in NGP, CIC, TSC, PCS.

Every function takes numpy arrays or TF tensors of real values, finite unless
``allow_nonfinite=True`` (then NaN or inf make the spectra they touch NaN); leading axes are a
batch (a spectrum per field), computed together (by :func:`cross_spectra` in chunks of fields
that bound the memory). Results are float64 numpy arrays: k (nbins,) in h/Mpc, spectra
(..., nbins) in (h^-1 Mpc)^d, Nmodes (nbins,). They come from float32 real FFTs
(``scipy.fft``, on every core, the only full-size intermediate: 4 (N + 2) N^(d-1) bytes a field)
and float64 bin sums taken slab by slab of the Fourier grid (O(N^2) memory): within 1e-6 of a
float64 computation in every bin. With ``as_tensor=True`` (power_spectrum, cross_power_spectrum)
they are float32 tensors from TensorFlow FFTs and segment sums, through which gradients flow
for 2D maps.
"""
import functools
import os

import numpy as np

from tfastro.core.errors import UserInputError
from tfastro.fields.checks import check_real_values
from tfastro.fields.fourier import (MAS_ORDER, axis_windows, check_grid, field_modes,
                                    mode_bins, row_slabs, slab_bins)

_CHUNK_BYTES = 256 * 2**20  # intermediates of one chunk of cross_spectra

_BYTES_PER_MODE = 16  # per rfft mode and channel: its complex64 mode and float32 input cells

_SLAB_MODES = 2**20  # mode products binned at a time (16 MiB of float64, as many of ids)


__all__ = ["power_spectrum", "cross_power_spectrum", "correlation_coefficient", "cross_spectra",
           "cross_correlations", "correlation_from_spectra"]


def _spatial_ndim(shape, ndim, name="field"):
    """The number of trailing spatial axes: ``ndim``, or the rank of an unbatched field."""
    rank = len(shape)
    if ndim is None:
        if rank not in (2, 3):
            raise UserInputError(f"{name}: shape {tuple(shape)} is not a single 2D map or 3D "
                                 "cube; pass ndim=2 or ndim=3 for batched fields")
        return rank
    if ndim not in (2, 3):
        raise UserInputError(f"ndim={ndim}: expected 2 or 3 spatial dimensions")
    if rank < ndim:
        raise UserInputError(f"{name}: expected at least {ndim} axes, got shape {tuple(shape)}")
    return ndim


def _checked_mas(mas):
    if mas is not None and mas not in MAS_ORDER:
        raise UserInputError(f"mas={mas!r}: expected None or one of {', '.join(MAS_ORDER)}")
    return mas


def _fft_workers():
    """Threads of the real FFTs: the cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _numpy_modes(field, box_size, ndim, overdensity):
    """Unnormalised float32 real FFT (complex64 numpy ``(..., *rfft)``) of a checked real
    numpy ``field`` over its last ``ndim`` axes, of rho / mean - 1 when ``overdensity``."""
    import scipy.fft
    check_grid(field.shape[-ndim:], box_size)
    axes = tuple(range(-ndim, 0))
    field = np.asarray(field, np.float32)
    if overdensity:
        mean = field.mean(axis=axes, dtype=np.float64, keepdims=True).astype(np.float32)
        field = field / mean - np.float32(1.0)
    return scipy.fft.rfftn(field, axes=axes, workers=_fft_workers())


def _binned_sums(channels, pairs, shape, mas):
    """float64 ``(B, P, nbins)`` sums over each Pylians bin of Re(a b^*) / W(k)^2.

    Args:
      channels: complex numpy arrays ``(B, *rfft)`` of one grid's Fourier modes.
      pairs: P pairs ``(i, j)`` of channel indices (i == j: the auto power |a|^2).
      shape: the grid; mas: None or the mass-assignment window W to divide out.
    Products are formed in float64, slab by slab of first-axis rows of about _SLAB_MODES.
    """
    n_batch, n_pairs = channels[0].shape[0], len(pairs)
    nbins = mode_bins(shape, 1.0).nbins  # the grid's, whatever the box
    sums = np.zeros(n_batch * n_pairs * (nbins + 1))
    offsets = np.arange(n_batch * n_pairs).reshape((n_batch, n_pairs) + (1,) * len(shape))
    offsets = offsets * (nbins + 1)
    windows = None if mas is None else axis_windows(shape, mas)
    for rows in row_slabs(shape, max(1, _SLAB_MODES // (n_batch * n_pairs))):
        ids = slab_bins(shape, rows.start, rows.stop)
        products = np.empty((n_batch, n_pairs) + ids.shape)
        for p, (i, j) in enumerate(pairs):
            a, b = channels[i][:, rows], channels[j][:, rows]
            np.multiply(a.real, b.real, out=products[:, p], dtype=np.float64)
            products[:, p] += np.multiply(a.imag, b.imag, dtype=np.float64)
        if windows is not None:
            products /= np.square(functools.reduce(np.multiply, [windows[0][rows]]
                                                   + windows[1:]))
        sums += np.bincount((offsets + ids).ravel(), products.ravel(), len(sums))
    return sums.reshape(n_batch, n_pairs, nbins + 1)[..., :nbins]


def _spectra(sums, batch, shape, box_size):
    """``(k, P, Nmodes)`` from bin sums ``(..., nbins)``, batch axes ``batch`` restored."""
    bins = mode_bins(shape, box_size)
    norm = box_size ** len(shape) / float(shape[0]) ** (2 * len(shape))
    pk = sums * (norm / bins.counts)
    return bins.k, pk.reshape(tuple(batch) + pk.shape[-1:]), bins.counts


# ------------------------------------------------------------ differentiable (TensorFlow) path
def _contrast(field, ndim, overdensity):
    """float32 delta: the field itself, or rho / mean(rho) - 1 over the last ``ndim`` axes."""
    import tensorflow as tf
    field = tf.cast(field, tf.float32)
    if overdensity:
        field = field / tf.reduce_mean(field, axis=list(range(-ndim, 0)), keepdims=True) - 1.0
    return field


@functools.lru_cache(maxsize=2)
def _bin_ids(shape):
    """Flat int32 tensor of the Pylians bin of each rfft mode (``nbins`` where not counted)."""
    import tensorflow as tf
    return tf.constant(slab_bins(shape, 0, shape[0]).ravel())


def _tensor_binned(power, shape, box_size):
    """float32 ``(k, P (..., nbins), Nmodes)`` tensors from mode powers ``(..., *rfft)`` by
    differentiable segment sums."""
    import tensorflow as tf
    ndim = len(shape)
    bins = mode_bins(shape, box_size)
    batch = tuple(power.shape[:-ndim])
    ids = _bin_ids(tuple(shape))
    flat = tf.reshape(power, (-1, ids.shape[0]))
    norm = box_size**ndim / float(shape[0]) ** (2 * ndim)
    sums = tf.math.unsorted_segment_sum(tf.transpose(flat), ids, bins.nbins + 1)[:-1]
    pk = tf.reshape(tf.transpose(sums) * tf.constant(norm / bins.counts, tf.float32),
                    batch + (bins.nbins,))
    return tf.constant(bins.k, tf.float32), pk, tf.constant(bins.counts, tf.float32)


def _tensor_modes(field, name, box_size, mas, overdensity, ndim, allow_nonfinite):
    import tensorflow as tf
    field = tf.convert_to_tensor(check_real_values(field, name, allow_nonfinite))
    ndim = _spatial_ndim(field.shape, ndim, name)
    modes = field_modes(_contrast(field, ndim, overdensity), box_size, ndim, mas)
    return modes, tuple(field.shape[-ndim:])


def _fields(field, name, ndim, allow_nonfinite):
    """Checked real numpy ``field`` and its number of spatial axes."""
    import tensorflow as tf
    field = check_real_values(field, name, allow_nonfinite)
    if tf.is_tensor(field):
        field = field.numpy()
    return field, _spatial_ndim(field.shape, ndim, name)


# ------------------------------------------------------------------------------ statistics
def power_spectrum(field, box_size, mas=None, overdensity=False, ndim=None, as_tensor=False,
                   allow_nonfinite=False):
    """Auto power spectrum P(k) of periodic fields (Pylians ``Pk`` / ``Pk_plane``).

    Args:
      field: real ``(..., N, N)`` maps or ``(..., N, N, N)`` cubes (leading axes: a batch).
      box_size: box side L in h^-1 Mpc.
      mas: None, or NGP / CIC / TSC / PCS to deconvolve the mass-assignment window.
      overdensity: use rho / mean(rho) - 1 of each field instead of the field itself.
      ndim: 2 or 3 spatial axes; needed for batched input (default: the field's rank).
      as_tensor: return float32 tensors instead of float64 numpy arrays; for 2D maps they
        are differentiable with respect to ``field`` (e.g. a power-spectrum loss; TensorFlow
        has no gradient of its 3D real FFT).
      allow_nonfinite: compute with NaN or inf values instead of refusing them.
    Returns:
      ``(k, Pk, Nmodes)``: k ``(nbins,)`` h/Mpc, Pk ``(..., nbins)`` (h^-1 Mpc)^d, Nmodes
      ``(nbins,)``.
    Raises:
      UserInputError: naming the argument, for complex or non-finite values, a grid that is not
        a square or cube, a bad box size, ``mas`` or ``ndim``.
    """
    mas = _checked_mas(mas)
    if as_tensor:
        import tensorflow as tf
        modes, shape = _tensor_modes(field, "field", box_size, mas, overdensity, ndim,
                                     allow_nonfinite)
        return _tensor_binned(tf.math.real(modes * tf.math.conj(modes)), shape, box_size)
    field, ndim = _fields(field, "field", ndim, allow_nonfinite)
    modes = _numpy_modes(field, box_size, ndim, overdensity)
    shape, batch = field.shape[-ndim:], field.shape[:-ndim]
    del field  # a copy made for the FFT or the contrast is freed before the binning
    sums = _binned_sums([modes.reshape((-1,) + modes.shape[-ndim:])], [(0, 0)], shape, mas)
    return _spectra(sums[:, 0], batch, shape, float(box_size))


def cross_power_spectrum(field_a, field_b, box_size, mas=None, overdensity=False, ndim=None,
                         as_tensor=False, allow_nonfinite=False):
    """Cross power P_ab(k) = <Re(delta_a delta_b^*)> of two periodic fields (Pylians ``XPk``).

    Arguments as :func:`power_spectrum`; ``field_a`` and ``field_b`` have the same shape and
    ``mas`` applies to both. Returns ``(k, XPk, Nmodes)`` with XPk ``(..., nbins)``.
    """
    mas = _checked_mas(mas)
    if tuple(np.shape(field_a)) != tuple(np.shape(field_b)):
        raise UserInputError(f"field_b: shape {tuple(np.shape(field_b))} differs from "
                             f"field_a's {tuple(np.shape(field_a))}")
    if as_tensor:
        import tensorflow as tf
        modes_a, shape = _tensor_modes(field_a, "field_a", box_size, mas, overdensity, ndim,
                                       allow_nonfinite)
        modes_b, _ = _tensor_modes(field_b, "field_b", box_size, mas, overdensity, ndim,
                                   allow_nonfinite)
        product = (tf.math.real(modes_a) * tf.math.real(modes_b)
                   + tf.math.imag(modes_a) * tf.math.imag(modes_b))
        return _tensor_binned(product, shape, box_size)
    field_a, ndim = _fields(field_a, "field_a", ndim, allow_nonfinite)
    field_b, _ = _fields(field_b, "field_b", ndim, allow_nonfinite)
    shape, batch = field_a.shape[-ndim:], field_a.shape[:-ndim]
    channels = [_numpy_modes(f, box_size, ndim, overdensity) for f in (field_a, field_b)]
    channels = [m.reshape((-1,) + m.shape[-ndim:]) for m in channels]
    sums = _binned_sums(channels, [(0, 1)], shape, mas)
    return _spectra(sums[:, 0], batch, shape, float(box_size))


def cross_spectra(fields, box_size, channel_axis=-1, mas=None, overdensity=False, ndim=2,
                  maps_per_chunk=None, allow_nonfinite=False):
    """Auto and cross power spectra of every channel pair of multi-channel fields.

    The FFT of each channel is taken once; the C (C + 1) / 2 pairs i <= j are binned together.
    Large batches go through in chunks of ``maps_per_chunk`` fields, which bounds the memory
    of the intermediates (their Fourier modes) whatever the batch size.

    Args:
      fields: real array ``(..., C, ...)`` whose axis ``channel_axis`` holds the C channels and
        whose other trailing ``ndim`` axes are the periodic grid, e.g. ``(B, N, N, C)`` maps
        with ``channel_axis=-1, ndim=2``; the remaining leading axes are a batch.
      box_size: box side L in h^-1 Mpc.
      channel_axis: the channel axis (before or after the spatial axes).
      mas, overdensity, allow_nonfinite: as in :func:`power_spectrum`, for every channel.
      ndim: 2 or 3 spatial axes.
      maps_per_chunk: fields (C-channel maps or cubes) transformed and binned at a time; by
        default as many as take about 256 MiB of intermediates, about 16 bytes per Fourier mode
        and channel: 169 three-channel 256^2 maps (1.6 MiB each), 7 two-channel 128^3 cubes.
        Results do not depend on it.
    Returns:
      ``(k, P, Nmodes)``: P ``(..., C, C, nbins)`` symmetric in (i, j), P[..., i, i, :] the auto
      spectra, batch axes as in ``fields`` without the channel axis.
    """
    import tensorflow as tf
    mas = _checked_mas(mas)
    if not tf.is_tensor(fields):
        fields = np.asarray(fields)  # converted chunk by chunk: no copy of the whole
    shape = tuple(fields.shape)
    rank = len(shape)
    if ndim not in (2, 3):
        raise UserInputError(f"ndim={ndim}: expected 2 or 3 spatial dimensions")
    if rank < ndim + 1 or not -rank <= channel_axis < rank:
        raise UserInputError(f"channel_axis={channel_axis}: not an axis of fields with shape "
                             f"{shape} outside its {ndim} spatial axes")
    axis = channel_axis % rank
    if rank - ndim <= axis < rank - 1:
        raise UserInputError(f"channel_axis={channel_axis}: the channel axis must come before "
                             f"or after the {ndim} spatial axes of shape {shape}")
    n_channels, channels_last = shape[axis], axis == rank - 1
    if channels_last:
        batch, grid = shape[:-ndim - 1], shape[-ndim - 1:-1]
    else:
        batch, grid = shape[:axis] + shape[axis + 1:-ndim], shape[-ndim:]
    grid, box_size = check_grid(grid, box_size)
    n_fields = int(np.prod(batch, dtype=np.int64))
    if maps_per_chunk is None:
        maps_per_chunk = _fields_per_chunk(grid, n_channels)
    elif int(maps_per_chunk) != maps_per_chunk or maps_per_chunk < 1:
        raise UserInputError(f"maps_per_chunk must be a positive integer, got "
                             f"{maps_per_chunk!r}")
    maps_per_chunk = int(maps_per_chunk)
    # (B, *grid, C) or (B, C, *grid): a view of numpy input unless the batch axes straddle C
    if tf.is_tensor(fields):
        moveaxis, reshape = tf.experimental.numpy.moveaxis, tf.reshape
    else:
        moveaxis, reshape = np.moveaxis, np.reshape
    if channels_last:
        fields = reshape(fields, (n_fields,) + grid + (n_channels,))
    else:
        fields = reshape(moveaxis(fields, axis, rank - ndim - 1), (n_fields, n_channels) + grid)
    first, second = np.triu_indices(n_channels)
    pairs = np.empty((n_fields, len(first), mode_bins(grid, box_size).nbins))
    for start in range(0, n_fields, maps_per_chunk):
        chunk, _ = _fields(fields[start:start + maps_per_chunk], "fields", ndim,
                           allow_nonfinite)
        if channels_last:
            chunk = np.moveaxis(chunk, -1, 1)
        modes = _numpy_modes(chunk, box_size, ndim, overdensity)  # (n, C, *rfft)
        pairs[start:start + maps_per_chunk] = _binned_sums(
            [modes[:, c] for c in range(n_channels)], list(zip(first, second)), grid, mas)
    k, pairs, counts = _spectra(pairs, pairs.shape[:-1], grid, box_size)
    spectra = np.empty((n_fields, n_channels, n_channels, len(k)))
    spectra[:, first, second] = pairs
    spectra[:, second, first] = pairs
    return k, spectra.reshape(batch + spectra.shape[1:]), counts


def _fields_per_chunk(grid, n_channels):
    """C-channel fields per chunk of :func:`cross_spectra`: about ``_CHUNK_BYTES`` of
    intermediates, ``_BYTES_PER_MODE`` per mode and channel."""
    modes = int(np.prod(grid[:-1])) * (grid[-1] // 2 + 1)
    per_field = modes * _BYTES_PER_MODE * n_channels
    return max(1, _CHUNK_BYTES // per_field)


def correlation_from_spectra(spectra):
    """r_ij = P_ij / sqrt(P_ii P_jj) from symmetric spectra ``(..., C, C, nbins)``."""
    auto = np.sqrt(np.diagonal(spectra, axis1=-3, axis2=-2))  # (..., nbins, C)
    auto = np.moveaxis(auto, -1, -2)  # (..., C, nbins)
    return spectra / (auto[..., :, None, :] * auto[..., None, :, :])


def cross_correlations(fields, box_size, channel_axis=-1, mas=None, overdensity=False, ndim=2,
                       maps_per_chunk=None, allow_nonfinite=False):
    """Correlation coefficients r_ij(k) of every channel pair; arguments as :func:`cross_spectra`.

    Returns ``(k, r, Nmodes)`` with r ``(..., C, C, nbins)`` (ones on the diagonal).
    """
    k, spectra, counts = cross_spectra(fields, box_size, channel_axis, mas, overdensity, ndim,
                                       maps_per_chunk, allow_nonfinite)
    return k, correlation_from_spectra(spectra), counts


def correlation_coefficient(field_a, field_b, box_size, mas=None, overdensity=False, ndim=None,
                            allow_nonfinite=False):
    """r(k) = P_ab / sqrt(P_aa P_bb) of two periodic fields; arguments as
    :func:`cross_power_spectrum`. Returns ``(k, r, Nmodes)`` with r ``(..., nbins)``."""
    field_a, ndim = _fields(field_a, "field_a", ndim, allow_nonfinite)
    field_b, _ = _fields(field_b, "field_b", ndim, allow_nonfinite)
    if field_a.shape != field_b.shape:
        raise UserInputError(f"field_b: shape {field_b.shape} differs from field_a's "
                             f"{field_a.shape}")
    pair = np.stack([field_a, field_b], axis=-ndim - 1)
    k, r, counts = cross_correlations(pair, box_size, -ndim - 1, mas, overdensity, ndim,
                                      allow_nonfinite=True)  # checked above
    return k, r[..., 0, 1, :], counts
