"""Baselines: persistence repeats the last frame; the Sedov-Taylor rescaling reproduces the
analytic blast of a uniform medium (radii and densities) about any centre, also across the
periodic boundary."""
import numpy as np
import pytest

from tfastro.supernova.baselines import (Persistence, SedovTaylorRescaling, measured_radius,
                                         sedov_taylor_rescale)
from tfastro.supernova.synthetic import SNParams, blast_density

SIZE, LENGTH = 32, 12


@pytest.fixture(scope="module")
def uniform_clip():
    """(1, T, X, Y, Z, 1): the analytic blast in a uniform medium, from the grid centre."""
    times = SNParams().frame_times_kyr(LENGTH)
    density = blast_density(np.ones((SIZE,) * 3), times)
    return (density / density.max())[None, ..., None]


def test_persistence_repeats_the_last_context_frame(rng):
    context = rng.uniform(size=(2, 3, 4, 4, 4, 2)).astype("float32")
    out = Persistence().forecast(context, 5)
    assert out.shape == (2, 5, 4, 4, 4, 2) and out.dtype == np.float32
    for j in range(5):
        np.testing.assert_array_equal(out[:, j], context[:, -1])


def test_rescaling_reproduces_the_uniform_medium_blast(uniform_clip):
    """Frame 5 stretched by (t_k / t_5)^(2/5) is the analytic frame k: radii within 5 per
    cent, and under 40 per cent of the mean squared error of persistence (the rim is thin:
    a fraction of a voxel of offset costs much of it)."""
    initial = uniform_clip[0, 0, ..., 0]
    last = uniform_clip[0, 5]
    for k in (7, 9, 11):
        rescaled = sedov_taylor_rescale(last, uniform_clip[0, 0], (k / 5) ** 0.4)
        truth = uniform_clip[0, k]
        np.testing.assert_allclose(measured_radius(rescaled[..., 0], initial),
                                   measured_radius(truth[..., 0], initial), rtol=0.05)
        assert np.mean((rescaled - truth) ** 2) < 0.4 * np.mean((last - truth) ** 2)


def test_rescaling_commutes_with_moving_the_explosion(uniform_clip):
    shift = dict(shift=(16, -14, 7), axis=(0, 1, 2))  # the blast across two faces
    last, initial = uniform_clip[0, 6], uniform_clip[0, 0]
    moved = sedov_taylor_rescale(np.roll(last, **shift), np.roll(initial, **shift), 1.2)
    np.testing.assert_allclose(moved, np.roll(sedov_taylor_rescale(last, initial, 1.2), **shift),
                               atol=1e-5)


def test_forecast_follows_the_sedov_taylor_law(uniform_clip):
    n_in = 6
    forecast = SedovTaylorRescaling().forecast(uniform_clip[:, :n_in], LENGTH - n_in)
    assert forecast.shape == (1, LENGTH - n_in, SIZE, SIZE, SIZE, 1)
    initial = uniform_clip[0, 0, ..., 0]
    for j in range(LENGTH - n_in):
        expected = sedov_taylor_rescale(uniform_clip[0, n_in - 1], uniform_clip[0, 0],
                                        ((n_in + j) / (n_in - 1)) ** 0.4)
        np.testing.assert_array_equal(forecast[0, j], expected)
        np.testing.assert_allclose(measured_radius(forecast[0, j, ..., 0], initial),
                                   measured_radius(uniform_clip[0, n_in + j, ..., 0], initial),
                                   rtol=0.05)


def test_a_context_ending_at_the_explosion_is_repeated(uniform_clip):
    out = SedovTaylorRescaling().forecast(uniform_clip[:, :1], 3)
    np.testing.assert_array_equal(out, np.repeat(uniform_clip[:, :1], 3, axis=1))
