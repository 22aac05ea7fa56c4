"""Power spectra, cross spectra and correlation coefficients of periodic 2D/3D fields.

Pylians3 conventions (``Pk_library.Pk``, ``Pk_plane``, ``XPk``; see
:mod:`tfastro.fields.fourier`):
- delta is the field as given (``overdensity=True`` uses rho / mean(rho) - 1 of each field);
- P(k) = |delta_k|^2 L^d / N^(2d) with delta_k the unnormalised FFT (sum over cells), L the box
  side in h^-1 Mpc, N cells a side, d = 2 or 3; white noise of variance s^2 has P = s^2 (L/N)^d;
- cross power P_ab = Re(delta_a delta_b^*) with the same normalisation, r = P_ab / sqrt(P_aa P_bb);
- bins of width k_F = 2 pi / L, zero mode dropped, k the mean |k| of a bin's independent modes,
  Nmodes their number; optional mass-assignment correction ``mas`` in NGP, CIC, TSC, PCS.

Every function takes numpy arrays or TF tensors; leading axes are a batch (a spectrum per field),
computed together (by :func:`cross_spectra` in chunks of fields that bound the memory): float32
FFTs (``tf.signal``) and float32 bin sums (``tf.math.bincount``, about 1e-5 relative round-off
in the largest bins of a 256^3 grid). Results are float64 numpy
arrays: k (nbins,) in h/Mpc, spectra (..., nbins) in (h^-1 Mpc)^d, Nmodes (nbins,); with
``as_tensor=True`` (power_spectrum, cross_power_spectrum) float32 tensors, through which
gradients flow for 2D maps.
"""
import functools

import numpy as np

from tfastro.fields.fourier import field_modes, mode_bins

_CHUNK_BYTES = 256 * 2**20  # intermediates of one chunk of cross_spectra


_BYTES_PER_MODE = 24  # per rfft mode, channel and channel pair (measured peak, float32 CPU)


__all__ = ["power_spectrum", "cross_power_spectrum", "correlation_coefficient", "cross_spectra",
           "cross_correlations", "correlation_from_spectra"]


def _spatial_ndim(field, ndim):
    """The number of trailing spatial axes: ``ndim``, or the rank of an unbatched field."""
    rank = field.shape.rank
    if ndim is None:
        if rank not in (2, 3):
            raise ValueError(f"field: shape {field.shape} is not a single 2D map or 3D cube; "
                             "pass ndim=2 or ndim=3 for batched fields")
        return rank
    if ndim not in (2, 3):
        raise ValueError(f"ndim={ndim}: expected 2 or 3 spatial dimensions")
    if rank < ndim:
        raise ValueError(f"field: expected at least {ndim} axes, got shape {field.shape}")
    return ndim


def _contrast(field, ndim, overdensity):
    """float32 delta: the field itself, or rho / mean(rho) - 1 over the last ``ndim`` axes."""
    import tensorflow as tf
    field = tf.cast(field, tf.float32)
    if overdensity:
        field = field / tf.reduce_mean(field, axis=list(range(-ndim, 0)), keepdims=True) - 1.0
    return field


@functools.lru_cache(maxsize=8)
def _bin_ids(shape, box_size):
    """Flat int32 tensor of the Pylians bin of each rfft mode (``nbins`` where not counted)."""
    import tensorflow as tf
    return tf.constant(mode_bins(shape, box_size).index.ravel())


def _binned(power, shape, box_size, as_tensor=False):
    """Bin mode powers ``(..., *rfft_shape)`` into Pylians bins: (k, P (..., nbins), Nmodes).

    ``as_tensor``: float32 tensors from differentiable segment sums (for losses) instead of
    float64 numpy arrays.
    """
    import tensorflow as tf
    ndim = len(shape)
    bins = mode_bins(shape, box_size)
    batch = tuple(power.shape[:-ndim])
    ids = _bin_ids(tuple(shape), float(box_size))
    flat = tf.reshape(power, (-1, ids.shape[0]))
    norm = box_size**ndim / float(shape[0]) ** (2 * ndim)
    if as_tensor:
        sums = tf.math.unsorted_segment_sum(tf.transpose(flat), ids, bins.nbins + 1)[:-1]
        pk = tf.reshape(tf.transpose(sums) * tf.constant(norm / bins.counts, tf.float32),
                        batch + (bins.nbins,))
        return tf.constant(bins.k, tf.float32), pk, tf.constant(bins.counts, tf.float32)
    if flat.shape[0] == 1:
        flat = flat[0]  # one field: a 1-D bincount, no broadcast copy of the bin ids
    else:
        ids = tf.broadcast_to(ids, tf.shape(flat))
    sums = tf.math.bincount(ids, weights=flat, minlength=bins.nbins, maxlength=bins.nbins,
                            axis=-1)
    pk = sums.numpy().astype(np.float64).reshape(batch + (bins.nbins,)) * (norm / bins.counts)
    return bins.k, pk, bins.counts


def _modes(field, box_size, mas, overdensity, ndim):
    import tensorflow as tf
    field = tf.convert_to_tensor(field)
    ndim = _spatial_ndim(field, ndim)
    modes = field_modes(_contrast(field, ndim, overdensity), box_size, ndim, mas)
    return modes, tuple(field.shape[-ndim:])


def power_spectrum(field, box_size, mas=None, overdensity=False, ndim=None, as_tensor=False):
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
    Returns:
      ``(k, Pk, Nmodes)``: k ``(nbins,)`` h/Mpc, Pk ``(..., nbins)`` (h^-1 Mpc)^d, Nmodes
      ``(nbins,)``.
    """
    import tensorflow as tf
    modes, shape = _modes(field, box_size, mas, overdensity, ndim)
    return _binned(tf.math.real(modes * tf.math.conj(modes)), shape, box_size, as_tensor)


def cross_power_spectrum(field_a, field_b, box_size, mas=None, overdensity=False, ndim=None,
                         as_tensor=False):
    """Cross power P_ab(k) = <Re(delta_a delta_b^*)> of two periodic fields (Pylians ``XPk``).

    Arguments as :func:`power_spectrum`; ``field_a`` and ``field_b`` have the same shape and
    ``mas`` applies to both. Returns ``(k, XPk, Nmodes)`` with XPk ``(..., nbins)``.
    """
    import tensorflow as tf
    modes_a, shape = _modes(field_a, box_size, mas, overdensity, ndim)
    modes_b, shape_b = _modes(field_b, box_size, mas, overdensity, ndim)
    if modes_a.shape != modes_b.shape:
        raise ValueError(f"field_b: shape {tuple(field_b.shape)} differs from field_a's "
                         f"{tuple(field_a.shape)}")
    product = (tf.math.real(modes_a) * tf.math.real(modes_b)
               + tf.math.imag(modes_a) * tf.math.imag(modes_b))
    return _binned(product, shape, box_size, as_tensor)


def cross_spectra(fields, box_size, channel_axis=-1, mas=None, overdensity=False, ndim=2,
                  maps_per_chunk=None):
    """Auto and cross power spectra of every channel pair of multi-channel fields.

    The FFT of each channel is taken once; the C (C + 1) / 2 pairs i <= j are binned together.
    Large batches go through in chunks of ``maps_per_chunk`` fields, which bounds the memory
    of the intermediates (their Fourier modes and pair products) whatever the batch size.

    Args:
      fields: real array ``(..., C, ...)`` whose axis ``channel_axis`` holds the C channels and
        whose other trailing ``ndim`` axes are the periodic grid, e.g. ``(B, N, N, C)`` maps
        with ``channel_axis=-1, ndim=2``; the remaining leading axes are a batch.
      box_size: box side L in h^-1 Mpc.
      channel_axis: the channel axis (before or after the spatial axes).
      mas, overdensity: as in :func:`power_spectrum`, applied to every channel.
      ndim: 2 or 3 spatial axes.
      maps_per_chunk: fields (C-channel maps or cubes) transformed and binned at a time; by
        default as many as take about 256 MiB of intermediates, about 24 bytes per Fourier mode
        for each channel and channel pair: 37 three-channel 256^2 maps (6.8 MiB each), 2
        two-channel 128^3 cubes. Results do not depend on it.
    Returns:
      ``(k, P, Nmodes)``: P ``(..., C, C, nbins)`` symmetric in (i, j), P[..., i, i, :] the auto
      spectra, batch axes as in ``fields`` without the channel axis.
    """
    import tensorflow as tf
    if not tf.is_tensor(fields):
        fields = np.asarray(fields)  # converted chunk by chunk: no copy of the whole
    shape = tuple(fields.shape)
    rank = len(shape)
    if ndim not in (2, 3):
        raise ValueError(f"ndim={ndim}: expected 2 or 3 spatial dimensions")
    if rank < ndim + 1 or not -rank <= channel_axis < rank:
        raise ValueError(f"channel_axis={channel_axis}: not an axis of fields with shape "
                         f"{shape} outside its {ndim} spatial axes")
    axis = channel_axis % rank
    if rank - ndim <= axis < rank - 1:
        raise ValueError(f"channel_axis={channel_axis}: the channel axis must come before or "
                         f"after the {ndim} spatial axes of shape {shape}")
    n_channels, channels_last = shape[axis], axis == rank - 1
    if channels_last:
        batch, grid = shape[:-ndim - 1], shape[-ndim - 1:-1]
    else:
        batch, grid = shape[:axis] + shape[axis + 1:-ndim], shape[-ndim:]
    bins = mode_bins(grid, box_size)
    n_fields = int(np.prod(batch, dtype=np.int64))
    if maps_per_chunk is None:
        maps_per_chunk = _fields_per_chunk(grid, n_channels)
    elif int(maps_per_chunk) != maps_per_chunk or maps_per_chunk < 1:
        raise ValueError(f"maps_per_chunk must be a positive integer, got {maps_per_chunk!r}")
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
    pairs = np.empty((n_fields, len(first), bins.nbins))
    for start in range(0, n_fields, maps_per_chunk):
        chunk = tf.convert_to_tensor(fields[start:start + maps_per_chunk])
        if channels_last:
            chunk = tf.transpose(chunk, [0, ndim + 1] + list(range(1, ndim + 1)))
        modes, _ = _modes(chunk, box_size, mas, overdensity, ndim)  # (n, C, *rfft)
        re, im = tf.math.real(modes), tf.math.imag(modes)
        product = (tf.gather(re, first, axis=1) * tf.gather(re, second, axis=1)
                   + tf.gather(im, first, axis=1) * tf.gather(im, second, axis=1))
        pairs[start:start + maps_per_chunk] = _binned(product, grid, box_size)[1]
    spectra = np.empty((n_fields, n_channels, n_channels, bins.nbins))
    spectra[:, first, second] = pairs
    spectra[:, second, first] = pairs
    return bins.k, spectra.reshape(batch + spectra.shape[1:]), bins.counts


def _fields_per_chunk(grid, n_channels):
    """C-channel fields per chunk of :func:`cross_spectra`: about ``_CHUNK_BYTES`` of
    intermediates, ``_BYTES_PER_MODE`` per channel and per channel pair."""
    modes = int(np.prod(grid[:-1])) * (grid[-1] // 2 + 1)
    per_field = modes * _BYTES_PER_MODE * (n_channels + n_channels * (n_channels + 1) // 2)
    return max(1, _CHUNK_BYTES // per_field)


def correlation_from_spectra(spectra):
    """r_ij = P_ij / sqrt(P_ii P_jj) from symmetric spectra ``(..., C, C, nbins)``."""
    auto = np.sqrt(np.diagonal(spectra, axis1=-3, axis2=-2))  # (..., nbins, C)
    auto = np.moveaxis(auto, -1, -2)  # (..., C, nbins)
    return spectra / (auto[..., :, None, :] * auto[..., None, :, :])


def cross_correlations(fields, box_size, channel_axis=-1, mas=None, overdensity=False, ndim=2,
                       maps_per_chunk=None):
    """Correlation coefficients r_ij(k) of every channel pair; arguments as :func:`cross_spectra`.

    Returns ``(k, r, Nmodes)`` with r ``(..., C, C, nbins)`` (ones on the diagonal).
    """
    k, spectra, counts = cross_spectra(fields, box_size, channel_axis, mas, overdensity, ndim,
                                       maps_per_chunk)
    return k, correlation_from_spectra(spectra), counts


def correlation_coefficient(field_a, field_b, box_size, mas=None, overdensity=False, ndim=None):
    """r(k) = P_ab / sqrt(P_aa P_bb) of two periodic fields; arguments as
    :func:`cross_power_spectrum`. Returns ``(k, r, Nmodes)`` with r ``(..., nbins)``."""
    import tensorflow as tf
    field_a, field_b = tf.convert_to_tensor(field_a), tf.convert_to_tensor(field_b)
    if field_a.shape != field_b.shape:
        raise ValueError(f"field_b: shape {field_b.shape} differs from field_a's {field_a.shape}")
    ndim = _spatial_ndim(field_a, ndim)
    pair = tf.stack([field_a, field_b], axis=-ndim - 1)
    k, r, counts = cross_correlations(pair, box_size, -ndim - 1, mas, overdensity, ndim)
    return k, r[..., 0, 1, :], counts
