"""SSIM, PSNR and MAE against tf.image, a brute-force SSIM from its definition and hand values."""
import warnings

import numpy as np
import pytest
import tensorflow as tf

from tfastro.core.errors import UserInputError
from tfastro.fields.image_metrics import mae, psnr, ssim2d, ssim2d_tensor, ssim3d


def noisy(rng, x, level, data_range=1.0):
    return np.clip(x + level * data_range * rng.standard_normal(x.shape), 0, data_range)


def structured_maps(n=48):
    """(4, n, n, 1) float32 maps in [0, 1]: gradient, stripes, a textured disc, a wave step.

    Flat areas are exactly 0, where float32 SSIM (tf.image.ssim's) has no round-off; smooth
    offsets (e.g. a ramp from 0.2 to 1) would cost tf.image.ssim ~1e-5 (see the float32 test).
    """
    i, j = np.indices((n, n)) / (n - 1)
    gradient = i * j
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * i) * np.cos(2 * np.pi * 2 * j)
    disc = ((i - 0.5) ** 2 + (j - 0.4) ** 2 < 0.08) * (0.6 + 0.4 * np.cos(40 * i * j))
    step = np.where(j > 0.4, 0.5 + 0.5 * np.sin(2 * np.pi * 8 * i), 0.0)
    return np.stack([gradient, stripes, disc, step])[..., None].astype(np.float32)


def gaussian_taps(length, sigma):
    x = np.linspace(-(length - 1) / 2, (length - 1) / 2, length)
    g = np.exp(-x**2 / (2 * sigma**2))
    return g / g.sum()


def brute_force_ssim(x, y, data_range, window_size=11, sigma=1.5):
    """SSIM from its definition: two-pass weighted moments in every window that fits (numpy).

    x, y: (B, X, Y, Z, C) or (B, X, Y, C) (scored as cubes with Z = 1 and a 1-voxel z window).
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim == 4:
        x, y = x[:, :, :, None], y[:, :, :, None]
    lengths = [min(window_size, n - 1 + n % 2) for n in x.shape[1:4]]
    gx, gy, gz = (gaussian_taps(n, sigma) for n in lengths)
    w = gx[:, None, None] * gy[None, :, None] * gz[None, None, :]
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    axes = (-3, -2, -1)
    out = np.zeros(x.shape[0])
    for b in range(x.shape[0]):
        per_channel = []
        for c in range(x.shape[-1]):
            wx = np.lib.stride_tricks.sliding_window_view(x[b, ..., c], lengths)
            wy = np.lib.stride_tricks.sliding_window_view(y[b, ..., c], lengths)
            mx = (w * wx).sum(axis=axes, keepdims=True)
            my = (w * wy).sum(axis=axes, keepdims=True)
            vx = (w * (wx - mx) ** 2).sum(axis=axes)
            vy = (w * (wy - my) ** 2).sum(axis=axes)
            cxy = (w * (wx - mx) * (wy - my)).sum(axis=axes)
            mx, my = mx[..., 0, 0, 0], my[..., 0, 0, 0]
            ssim_map = ((2 * mx * my + c1) * (2 * cxy + c2)
                        / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
            per_channel.append(ssim_map.mean())
        out[b] = np.mean(per_channel)
    return out


# ---------------------------------------------------------------- 2D: equal to tf.image.ssim

@pytest.mark.parametrize("data_range", [1.0, 2.0, 255.0])
def test_ssim2d_equals_tf_image_ssim_on_random_maps(rng, data_range):
    true = (rng.random((3, 24, 30, 2)) * data_range).astype(np.float32)
    pred = noisy(rng, true, 0.2, data_range).astype(np.float32)
    pred[2] = rng.random(pred.shape[1:]) * data_range  # unrelated
    got = ssim2d(pred, true, data_range=data_range)
    want = tf.image.ssim(pred, true, max_val=data_range).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert got[2] < 0.1 < got[0]


@pytest.mark.parametrize("data_range", [1.0, 4.0])
def test_ssim2d_equals_tf_image_ssim_on_structured_maps(data_range):
    true = structured_maps() * data_range
    # distortions: a shift, a blur-like average of neighbours, a contrast change, the wave negated
    pred = np.stack([np.roll(true[0], 2, axis=0),
                     (true[1] + np.roll(true[1], 1, axis=1) + np.roll(true[1], 1, axis=0)) / 3,
                     0.5 * true[2],
                     np.where(true[3] > 0, 1.2 * data_range - true[3], 0.0)])
    got = ssim2d(pred, true, data_range=data_range)
    want = tf.image.ssim(pred, true, max_val=data_range).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert got[3] < 0 < got[2] < got[1] < 1
    np.testing.assert_allclose(got, brute_force_ssim(pred, true, data_range), rtol=1e-10)


def test_ssim2d_window_arguments_as_tf_image_ssim(rng):
    true = rng.random((2, 20, 20, 1)).astype(np.float32)
    pred = noisy(rng, true, 0.1).astype(np.float32)
    got = ssim2d(pred, true, window_size=7, sigma=1.0, k1=0.02, k2=0.05)
    want = tf.image.ssim(pred, true, 1.0, filter_size=7, filter_sigma=1.0, k1=0.02, k2=0.05)
    np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=1e-6)


def test_ssim2d_small_maps_use_the_largest_odd_window(rng):
    # 8x8 maps: the 11-px window shrinks to 7 px, sigma unchanged.
    true = rng.random((2, 8, 8, 1)).astype(np.float32)
    pred = noisy(rng, true, 0.1).astype(np.float32)
    want = tf.image.ssim(pred, true, 1.0, filter_size=7).numpy()
    np.testing.assert_allclose(ssim2d(pred, true), want, rtol=0, atol=1e-6)


def test_ssim2d_of_float32_flat_maps_has_no_float32_round_off():
    # Piecewise-constant maps: local variances E[x^2] - mu^2 cancel to ~1e-7 in float32,
    # ~1e-4 of SSIM once divided by C2 (tf.image.ssim is off by that much here).
    i, j = np.indices((40, 40))
    true = np.where((i > 12) & (j < 25), 0.9, 0.1)[None, :, :, None].astype(np.float32)
    pred = (0.5 * true + 0.25).astype(np.float32)
    np.testing.assert_allclose(ssim2d(pred, true), brute_force_ssim(pred, true, 1.0), rtol=1e-10)


def test_ssim2d_accepts_tensors_and_float64(rng):
    true = rng.random((2, 16, 16, 3))
    pred = noisy(rng, true, 0.1)
    want = tf.image.ssim(pred.astype(np.float32), true.astype(np.float32), 1.0).numpy()
    got = ssim2d(tf.constant(pred), tf.constant(true))
    assert isinstance(got, np.ndarray) and got.dtype == np.float64 and got.shape == (2,)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


# ---------------------------------------------------------------- 3D

@pytest.mark.parametrize("shape,data_range", [
    ((2, 13, 12, 14, 2), 1.0),   # full 11^3 window
    ((2, 13, 12, 14, 2), 2.0),
    ((2, 8, 8, 8, 1), 1.0),      # 7^3 window on 2^3 positions
    ((1, 16, 9, 6, 1), 1.0),     # per-axis windows 11, 9, 5
])
def test_ssim3d_matches_brute_force(rng, shape, data_range):
    true = rng.random(shape) * data_range
    pred = noisy(rng, true, 0.2, data_range)
    pred[-1] = rng.random(shape[1:]) * data_range
    got = ssim3d(pred, true, data_range=data_range)
    np.testing.assert_allclose(got, brute_force_ssim(pred, true, data_range), rtol=1e-10)


def test_ssim3d_of_volume_constant_along_z_is_ssim2d_of_the_map(rng):
    # The z window sums to 1, so every z position sees the 2-D moments of the map.
    true = rng.random((2, 20, 18, 1)).astype(np.float32)
    pred = noisy(rng, true, 0.15).astype(np.float32)
    want = tf.image.ssim(pred, true, 1.0).numpy()
    got = ssim3d(np.repeat(pred[:, :, :, None], 13, axis=3),
                 np.repeat(true[:, :, :, None], 13, axis=3))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_ssim3d_of_identical_cubes_is_one(rng):
    x = rng.random((3, 12, 12, 12, 2))
    np.testing.assert_allclose(ssim3d(x, x), 1.0, rtol=0, atol=1e-12)


def test_ssim3d_falls_monotonically_with_noise(rng):
    x = rng.random((1, 16, 16, 16, 1))
    noise = rng.standard_normal(x.shape)
    scores = [ssim3d(np.clip(x + s * noise, 0, 1), x)[0] for s in (0.01, 0.05, 0.1, 0.2, 0.5)]
    assert all(a > b for a, b in zip(scores, scores[1:]))
    assert scores[0] < 1.0


@pytest.mark.parametrize("data_range", [1.0, 2.0])
def test_ssim3d_of_constant_cubes_is_the_luminance_term(data_range):
    # No local variance: the structure term is C2/C2 = 1, only luminance remains.
    a, b = 0.5, 0.25
    c1 = (0.01 * data_range) ** 2
    want = (2 * a * b + c1) / (a**2 + b**2 + c1)
    got = ssim3d(np.full((2, 9, 12, 5, 1), a), np.full((2, 9, 12, 5, 1), b), data_range)
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("call,match", [
    (lambda x: ssim3d(x, x[..., :1]), "shape"),
    (lambda x: ssim2d(x, x), r"\(B, X, Y, C\)"),
    (lambda x: ssim3d(x[..., 0], x[..., 0]), r"\(B, X, Y, Z, C\)"),
    (lambda x: ssim3d(x, x, data_range=0), "data_range"),
    (lambda x: ssim3d(x, x, window_size=10), "window_size"),
    (lambda x: ssim3d(x, x, sigma=-1), "sigma"),
    (lambda x: psnr(x, x, data_range=-1), "data_range"),
    (lambda x: mae(x[0, 0, 0, 0], x[0, 0, 0, 0]), "batches"),
])
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call(np.zeros((1, 6, 6, 6, 2)))


# ---------------------------------------------------------------- PSNR and MAE

@pytest.mark.parametrize("data_range", [1.0, 255.0])
def test_psnr_equals_tf_image_psnr(rng, data_range):
    true = (rng.random((3, 16, 20, 3)) * data_range).astype(np.float32)
    pred = noisy(rng, true, 0.1, data_range).astype(np.float32)
    want = tf.image.psnr(pred, true, max_val=data_range).numpy()
    np.testing.assert_allclose(psnr(pred, true, data_range), want, rtol=1e-6)


def test_psnr_of_a_constant_offset_and_of_identical_cubes():
    true = np.full((2, 4, 5, 6, 1), 0.5)
    pred = true.copy()
    pred[0] += 0.1  # MSE 0.01 with data_range 2: 10 log10(4 / 0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = psnr(pred, true, data_range=2.0)
    np.testing.assert_allclose(got[0], 10 * np.log10(400.0), rtol=1e-12)
    assert got[1] == np.inf


def test_mae_is_the_per_sample_mean_absolute_error():
    true = np.zeros((2, 4, 4, 2))
    pred = np.zeros_like(true)
    pred[0, :2] = -0.5  # half the pixels off by 0.5
    pred[1, 0, 0, 0] = 3.2  # one pixel of 32 off by 3.2
    np.testing.assert_allclose(mae(pred, true), [0.25, 0.1], rtol=1e-12)


def test_nonfinite_and_complex_samples(rng):
    x = rng.random((2, 12, 12, 1))
    y = x + 0.1 * rng.random(x.shape)
    bad = y.copy()
    bad[1, 3, 4, 0] = np.nan
    for metric in (ssim2d, psnr, mae):
        with pytest.raises(UserInputError, match="pred: expected finite"):
            metric(bad, x)
        with pytest.raises(UserInputError, match="true: expected real"):
            metric(y, x.astype(complex))
        scores = metric(bad, x, allow_nonfinite=True)  # the sample touched is NaN
        assert np.isnan(scores[1])
        np.testing.assert_allclose(scores[0], metric(y[:1], x[:1])[0], rtol=1e-12)
    with pytest.raises(UserInputError, match="pred: expected finite"):
        ssim3d(bad[..., None], x[..., None])
    with pytest.raises(UserInputError, match="pred: expected real"):
        ssim2d_tensor(x.astype(complex), x)
