"""Image-quality scores of 2-D maps and 3-D cubes: SSIM, PSNR and MAE, one number per sample.

Shapes and types
----------------
Inputs are channels-last batches, numpy arrays or tensors: ``(B, X, Y, C)`` maps or
``(B, X, Y, Z, C)`` cubes (PSNR and MAE take any ``(B, ...)``). Each function returns a numpy
array of shape ``(B,)``. The computation runs in TensorFlow (on a GPU when there is one), in
float64 whatever the input dtype: SSIM's one-pass local variances E[x^2] - mu^2 lose up to
~1e-4 of SSIM to float32 round-off where a field is locally flat (``tf.image.ssim``, float32,
shows errors of that size on piecewise-constant maps). Integer inputs (e.g. uint8) are cast
without rescaling, so ``data_range`` is in the units of the values (255 for uint8). Complex
inputs are refused, and so are NaN and inf unless ``allow_nonfinite=True``, which scores a
sample they touch NaN (``ssim2d_tensor``, a loss inside a traced model, checks dtypes only).

SSIM (Wang et al. 2004)
-----------------------
Local means, variances and the covariance are weighted by a Gaussian window (default 11 pixels,
sigma 1.5 pixels, normalised to unit sum) that is only placed where it fits entirely inside
the image ("valid" filtering, no padding); with C1 = (k1 data_range)^2, C2 = (k2 data_range)^2,
k1 = 0.01, k2 = 0.03,

    SSIM = (2 mu_x mu_y + C1) (2 cov_xy + C2) / ((mu_x^2 + mu_y^2 + C1) (var_x + var_y + C2)),

with population (weighted, no N/(N-1)) moments. The SSIM map is averaged over positions, then
over channels. In 2D this is ``tf.image.ssim`` (up to its float32 round-off); in 3D the window
is the product of the same 1-D Gaussian along the three axes. The window is applied as separable 1-D convolutions,
each channel on its own.

Small images: an axis shorter than ``window_size`` gets the largest odd window that fits in
it (n pixels for odd n, n - 1 for even n), with the same sigma, renormalised to unit sum; the
other axes keep ``window_size``. An 8^3 cube is thus scored with a 7^3 window on 2^3 positions,
and a 16^3 cube with the full 11^3 window on 6^3 positions. (``tf.image.ssim`` refuses images
smaller than its window.)

Differentiable SSIM
-------------------
:func:`ssim2d_tensor` is the same 2-D SSIM (same window, constants and averaging) written with
``keras.ops`` in the inputs' float precision (float32 below float64), returning a backend tensor
with gradients, for losses on any Keras backend. In float32 it carries the round-off described
above (~1e-6 on textured maps, up to ~1e-4 where a map is locally flat).
"""
import keras
import numpy as np
from keras import ops

from tfastro.core.errors import UserInputError
from tfastro.fields.checks import check_real_values

__all__ = ["ssim2d", "ssim2d_tensor", "ssim3d", "psnr", "mae"]


def _float64_pair(pred, true, allow_nonfinite=False):
    """Both inputs, checked real (and finite unless allowed), as float64 tensors of the same
    shape (B, ...)."""
    import tensorflow as tf  # the float64 metrics; training losses need keras.ops only
    pred = tf.cast(tf.convert_to_tensor(check_real_values(pred, "pred", allow_nonfinite)),
                   tf.float64)
    true = tf.cast(tf.convert_to_tensor(check_real_values(true, "true", allow_nonfinite)),
                   tf.float64)
    if pred.shape != true.shape:
        raise UserInputError(f"pred shape {tuple(pred.shape)} differs from true shape "
                             f"{tuple(true.shape)}")
    if pred.shape.rank < 2:
        raise UserInputError(f"pred and true must be batches (B, ...), got shape "
                             f"{tuple(pred.shape)}")
    return pred, true


def _check_data_range(data_range):
    if not (np.isfinite(data_range) and data_range > 0):
        raise UserInputError(f"data_range must be a positive number, got {data_range!r}")


def _window_length(side, window_size):
    """Window length along an axis of ``side`` pixels: window_size, or the largest odd fit."""
    return min(window_size, side if side % 2 else side - 1)


def _gaussian_window(length, sigma):
    """1-D Gaussian weights of ``length`` (odd) taps centred on the middle one, unit sum."""
    offsets = np.arange(length) - (length - 1) / 2
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    return weights / weights.sum()


def _check_ssim_arguments(name, shape, spatial_dims, data_range, window_size, sigma):
    """Raise ValueError unless ``shape`` is (B, *spatial, C) with non-empty spatial axes and
    the window arguments are valid."""
    if len(shape) != spatial_dims + 2:
        axes = "(B, X, Y, C)" if spatial_dims == 2 else "(B, X, Y, Z, C)"
        raise UserInputError(f"{name}: pred and true must have shape {axes}, got {tuple(shape)}")
    _check_data_range(data_range)
    if int(window_size) != window_size or window_size < 1 or window_size % 2 == 0:
        raise UserInputError(f"window_size must be a positive odd integer, got {window_size!r}")
    if not (np.isfinite(sigma) and sigma > 0):
        raise UserInputError(f"sigma must be a positive number (pixels), got {sigma!r}")
    if 0 in tuple(shape[1:-1]):
        raise UserInputError(f"{name}: empty spatial axis in shape {tuple(shape)}")


def _ssim_from_moments(mean_p, mean_t, mean_pt, mean_sq, data_range, k1, k2):
    """SSIM at each window position from the local moments E[p], E[t], E[pt], E[p^2 + t^2]."""
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    two_mu_mu = 2.0 * mean_p * mean_t
    mu_sq = mean_p * mean_p + mean_t * mean_t
    luminance = (two_mu_mu + c1) / (mu_sq + c1)
    contrast_structure = (2.0 * mean_pt - two_mu_mu + c2) / (mean_sq - mu_sq + c2)
    return luminance * contrast_structure


def _ssim(pred, true, spatial_dims, data_range, window_size, sigma, k1, k2,
          allow_nonfinite=False):
    """Per-sample SSIM of (B, *spatial, C) batches with ``spatial_dims`` spatial axes; (B,)."""
    import tensorflow as tf
    pred, true = _float64_pair(pred, true, allow_nonfinite)
    _check_ssim_arguments(f"ssim{spatial_dims}d", pred.shape, spatial_dims, data_range,
                          window_size, sigma)
    batch, *spatial, channels = pred.shape

    # Every channel of the four local moments, one per batch entry: (4 C B, *spatial, 1).
    moments = tf.stack([pred, true, pred * true, pred * pred + true * true])
    perm = [0, spatial_dims + 2] + list(range(1, spatial_dims + 2))
    moments = tf.transpose(moments, perm)[..., None]
    moments = tf.reshape(moments, [-1, *spatial, 1])
    for axis, side in enumerate(spatial):
        taps = _gaussian_window(_window_length(side, int(window_size)), sigma)
        kernel_shape = [1] * spatial_dims + [1, 1]
        kernel_shape[axis] = taps.size
        kernel = tf.constant(taps.reshape(kernel_shape), dtype=moments.dtype)
        moments = tf.nn.convolution(moments, kernel, padding="VALID")
    mean_p, mean_t, mean_pt, mean_sq = tf.unstack(tf.reshape(moments, [4, -1]))
    ssim_map = _ssim_from_moments(mean_p, mean_t, mean_pt, mean_sq, data_range, k1, k2)
    ssim_map = tf.reshape(ssim_map, [channels, batch, -1])
    return tf.reduce_mean(ssim_map, axis=[0, 2]).numpy()


def ssim2d(pred, true, data_range=1.0, window_size=11, sigma=1.5, k1=0.01, k2=0.03,
           allow_nonfinite=False):
    """Per-sample SSIM of 2-D maps (equal to ``tf.image.ssim``; see the module docstring).

    Args:
      pred, true: (B, X, Y, C) maps of the same shape, numpy arrays or tensors.
      data_range: dynamic range of the values (max minus min possible value, e.g. 1 or 255).
      window_size: side of the Gaussian window in pixels (odd); shrunk on shorter axes.
      sigma: standard deviation of the Gaussian window in pixels.
      k1, k2: the stabilising constants' factors.
      allow_nonfinite: score samples with NaN or inf (NaN) instead of refusing them.
    Returns:
      numpy (B,): SSIM averaged over window positions and channels; 1 for identical maps.
    """
    return _ssim(pred, true, 2, data_range, window_size, sigma, k1, k2, allow_nonfinite)


def ssim2d_tensor(pred, true, data_range=1.0, window_size=11, sigma=1.5, k1=0.01, k2=0.03):
    """Per-sample SSIM of 2-D maps as a differentiable tensor of the active Keras backend.

    The SSIM of :func:`ssim2d` (same window, constants and averaging) computed with
    ``keras.ops`` in float64 for float64 inputs and float32 otherwise, so it can sit in a loss
    on any backend. Arguments as :func:`ssim2d`; ``pred`` and ``true`` are (B, X, Y, C) with X,
    Y and C known (B may be unknown, as inside ``fit``).
    Returns:
      backend tensor (B,); 1 for identical maps.
    """
    pred, true = ops.convert_to_tensor(pred), ops.convert_to_tensor(true)
    for name, value in (("pred", pred), ("true", true)):
        if "complex" in keras.backend.standardize_dtype(value.dtype):
            raise UserInputError(f"{name}: expected real values, got dtype {value.dtype}")
    dtype = "float64" if keras.backend.standardize_dtype(pred.dtype) == "float64" else "float32"
    pred, true = ops.cast(pred, dtype), ops.cast(true, dtype)
    if tuple(pred.shape) != tuple(true.shape):
        raise UserInputError(f"pred shape {tuple(pred.shape)} differs from true shape "
                             f"{tuple(true.shape)}")
    _check_ssim_arguments("ssim2d_tensor", pred.shape, 2, data_range, window_size, sigma)
    _, *spatial, channels = pred.shape
    # Every channel of the four local moments, one per batch entry: (4 C B, X, Y, 1).
    moments = ops.stack([pred, true, pred * true, pred * pred + true * true])
    moments = ops.reshape(ops.transpose(moments, (0, 4, 1, 2, 3)), (-1, *spatial, 1))
    for axis, side in enumerate(spatial):
        taps = _gaussian_window(_window_length(side, int(window_size)), sigma)
        kernel_shape = [1, 1, 1, 1]
        kernel_shape[axis] = taps.size
        kernel = ops.convert_to_tensor(taps.reshape(kernel_shape), dtype=dtype)
        moments = ops.conv(moments, kernel, padding="valid")
    positions = int(np.prod(moments.shape[1:3]))
    mean_p, mean_t, mean_pt, mean_sq = ops.unstack(
        ops.reshape(moments, (4, channels, -1, positions)), axis=0)
    ssim_map = _ssim_from_moments(mean_p, mean_t, mean_pt, mean_sq, data_range, k1, k2)
    return ops.mean(ssim_map, axis=(0, 2))


def ssim3d(pred, true, data_range=1.0, window_size=11, sigma=1.5, k1=0.01, k2=0.03,
           allow_nonfinite=False):
    """Per-sample SSIM of (B, X, Y, Z, C) cubes with a separable 3-D Gaussian window.

    Arguments and result as :func:`ssim2d` (window sides in voxels); 1 for identical cubes.
    """
    return _ssim(pred, true, 3, data_range, window_size, sigma, k1, k2, allow_nonfinite)


def psnr(pred, true, data_range=1.0, allow_nonfinite=False):
    """Per-sample peak signal-to-noise ratio in dB, 10 log10(data_range^2 / MSE).

    Args:
      pred, true: (B, ...) arrays of the same shape; the MSE is the mean over all axes but B.
      data_range: peak-to-peak range of the values (1 for [0, 1] fields, 255 for uint8).
      allow_nonfinite: score samples with NaN or inf instead of refusing them.
    Returns:
      numpy (B,); ``+inf`` where the two samples are identical (no warning).
    """
    import tensorflow as tf
    pred, true = _float64_pair(pred, true, allow_nonfinite)
    _check_data_range(data_range)
    mse = tf.reduce_mean(tf.square(pred - true), axis=list(range(1, pred.shape.rank)))
    ten_over_ln10 = 10.0 / np.log(10.0)
    return (ten_over_ln10 * tf.math.log(data_range**2 / mse)).numpy()


def mae(pred, true, allow_nonfinite=False):
    """Per-sample mean absolute error over all axes but the batch axis; numpy (B,)
    (``allow_nonfinite`` as :func:`psnr`)."""
    import tensorflow as tf
    pred, true = _float64_pair(pred, true, allow_nonfinite)
    return tf.reduce_mean(tf.abs(pred - true), axis=list(range(1, pred.shape.rank))).numpy()
