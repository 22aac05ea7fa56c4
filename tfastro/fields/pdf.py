"""One-point (pixel / voxel) PDFs of fields, as used to compare emulated and true maps.

The PDF of a field is the histogram of its values, by default of log10 of a positive field
(e.g. gas or HI column density, magnetic field amplitude), normalised as a density in the
binned variable: on bin edges e_0 < ... < e_n it is count_i / (n_inside (e_{i+1} - e_i)), so it
integrates to 1 over the edges, as ``np.histogram(..., density=True)``. A value equal to the
last edge falls in the last bin; values outside the edges are left out. Compare two sets of maps
on the same, shared edges (``pdf_bin_edges`` of both sets), with ``log10=False`` for maps that
are already in (normalised) log space.

Inputs are numpy arrays or tensors of real, finite values; with ``allow_nonfinite=True`` the
PDFs take NaN and inf too and leave them out like values outside the edges (the bin edges and
the KS distance always need finite values). The histograms run in TensorFlow (on a GPU when
there is one), in float64 for float64 input and float32 otherwise. Results are numpy.
"""
import numpy as np

from tfastro.core.errors import UserInputError
from tfastro.fields.checks import check_real_values

__all__ = ["pdf_bin_edges", "pixel_pdf", "pixel_pdfs", "pdf_mean_std", "ks_distance"]


def _finite_values(values, name, log10, allow_nonfinite=False):
    """``values`` as a float tensor, log10 taken when asked; UserInputError naming ``name``."""
    import tensorflow as tf
    values = tf.convert_to_tensor(check_real_values(values, name, allow_nonfinite))
    values = tf.cast(values, tf.float64 if values.dtype == tf.float64 else tf.float32)
    if tf.size(values) == 0:
        raise UserInputError(f"{name} is empty")
    if log10:
        smallest = float(tf.reduce_min(tf.where(tf.math.is_finite(values), values, np.inf)))
        if smallest <= 0:
            raise UserInputError(f"{name} must be strictly positive to take log10 (minimum "
                                 f"{smallest!r}); pass log10=False for values already in log space")
        values = tf.math.log(values) / tf.constant(np.log(10.0), values.dtype)
    return values


def _checked_edges(edges):
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges)) \
            or np.any(np.diff(edges) <= 0):
        raise UserInputError("edges must be a 1-D array of at least 2 finite, strictly increasing "
                             f"bin edges, got {edges!r}")
    return edges


def pdf_bin_edges(*fields, bins=50, log10=True):
    """Shared, evenly spaced bin edges spanning the values of every given field.

    Args:
      *fields: arrays of any shapes (e.g. a set of true and a set of emulated maps).
      bins: number of bins.
      log10: span log10 of the values (the fields must then be positive).
    Returns:
      numpy float64 (bins + 1,): from the smallest to the largest (log10) value of all fields.
    """
    import tensorflow as tf
    if int(bins) != bins or bins < 1:
        raise UserInputError(f"bins must be a positive integer, got {bins!r}")
    if not fields:
        raise UserInputError("fields: give at least one field")
    values = [_finite_values(f, f"fields[{i}]", log10) for i, f in enumerate(fields)]
    low = min(float(tf.reduce_min(v)) for v in values)
    high = max(float(tf.reduce_max(v)) for v in values)
    if not high > low:
        raise UserInputError(f"fields: all (log10) values equal {low!r}; give the edges explicitly")
    return np.linspace(low, high, int(bins) + 1)


def pixel_pdfs(maps, edges, log10=True, allow_nonfinite=False):
    """PDF of each map's values, one histogram per map.

    Args:
      maps: (N, ...) array: N maps (or cubes, or channels of one field) of any shape.
      edges: (n_bins + 1,) increasing bin edges in the binned variable (log10 of the values
        when ``log10``), e.g. from ``pdf_bin_edges``.
      log10: bin log10 of the values (``maps`` must be positive).
      allow_nonfinite: leave NaN and inf values out instead of refusing them.
    Returns:
      numpy (N, n_bins) densities, each integrating to 1 over the edges (NaN for a map with no
      value inside the edges).
    """
    import tensorflow as tf
    edges = _checked_edges(edges)
    values = _finite_values(maps, "maps", log10, allow_nonfinite)
    if values.shape.rank < 1:
        raise UserInputError("maps must have shape (N, ...), got a scalar")
    n_maps, n_bins = values.shape[0], edges.size - 1
    values = tf.reshape(values, [n_maps, -1])
    bin_edges = tf.constant(edges, values.dtype)
    tiled_edges = tf.tile(bin_edges[None], [n_maps, 1])
    index = tf.searchsorted(tiled_edges, values, side="right", out_type=tf.int64) - 1
    index = tf.where(values == bin_edges[-1], tf.constant(n_bins - 1, tf.int64), index)
    # Out-of-range values go to an extra bin per map, dropped below.
    index = tf.where((index >= 0) & (index < n_bins), index, n_bins)
    segment = index + tf.range(n_maps, dtype=tf.int64)[:, None] * (n_bins + 1)
    counts = tf.math.unsorted_segment_sum(tf.ones_like(values, tf.float64), segment,
                                          n_maps * (n_bins + 1))
    counts = tf.reshape(counts, [n_maps, n_bins + 1])[:, :n_bins].numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return counts / counts.sum(axis=1, keepdims=True) / np.diff(edges)


def pixel_pdf(field, edges, log10=True, allow_nonfinite=False):
    """PDF of all values of ``field`` (any shape, e.g. a whole set of maps) pooled together.

    Args and normalisation as ``pixel_pdfs``; returns numpy (n_bins,).
    """
    import tensorflow as tf
    field = check_real_values(field, "field", allow_nonfinite)
    return pixel_pdfs(tf.reshape(field, [1, -1]), edges, log10, allow_nonfinite)[0]


def pdf_mean_std(maps, edges, log10=True, allow_nonfinite=False):
    """Mean and spread of the PDF over a set of maps (the PDF of each map as ``pixel_pdfs``).

    Args:
      maps: (N, ...) array of N maps; edges, log10, allow_nonfinite: as ``pixel_pdfs``.
    Returns:
      (mean, std), numpy (n_bins,) each: the mean over maps of each bin's density and its
      population standard deviation over maps (ddof = 0).
    """
    pdfs = pixel_pdfs(maps, edges, log10, allow_nonfinite)
    return pdfs.mean(axis=0), pdfs.std(axis=0)


def ks_distance(a, b):
    """Two-sample Kolmogorov-Smirnov distance sup_x |F_a(x) - F_b(x)| of two sets of values.

    Args:
      a, b: arrays of any shapes (all their values are the two samples), e.g. the pixels of a
        set of true and of emulated maps. The distance does not change under a monotone map of
        the values, so log10 or not makes no difference.
    Returns:
      float in [0, 1] (the statistic of ``scipy.stats.ks_2samp``).
    """
    import tensorflow as tf
    a = tf.sort(tf.reshape(_finite_values(a, "a", log10=False), [-1]))
    b = tf.sort(tf.reshape(_finite_values(b, "b", log10=False), [-1]))
    dtype = tf.float64 if tf.float64 in (a.dtype, b.dtype) else tf.float32
    a, b = tf.cast(a, dtype), tf.cast(b, dtype)
    points = tf.concat([a, b], 0)

    def cdf(sample):
        below = tf.searchsorted(sample, points, side="right", out_type=tf.int64)
        return tf.cast(below, tf.float64) / float(sample.shape[0])

    return float(tf.reduce_max(tf.abs(cdf(a) - cdf(b))))
