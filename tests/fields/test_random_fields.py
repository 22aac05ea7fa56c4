"""Seeded Gaussian, lognormal and correlated fields recover the spectra they were given."""
import numpy as np
import pytest

from tfastro.fields.fourier import mode_bins, wavenumbers
from tfastro.fields.random_fields import correlated_fields, gaussian_random_field, lognormal_field
from tfastro.fields.spectra import cross_correlations, power_spectrum


def _power_law(k):
    return 50.0 * (k / 0.2) ** -1.5


def _bin_average(function, shape, box):
    """Mean of function(|k|) over the independent modes of each Pylians bin."""
    bins = mode_bins(shape, box)
    kmag = wavenumbers(shape, box)
    values = np.where(kmag > 0, function(np.where(kmag > 0, kmag, 1.0)), 0.0)
    return np.bincount(bins.index.ravel(), weights=values.ravel(),
                       minlength=bins.nbins + 1)[:-1] / bins.counts


@pytest.mark.parametrize("shape,box", [((64, 64, 64), 100.0), ((128, 128), 25.0)])
def test_grf_recovers_power_within_cosmic_variance(shape, box):
    field = gaussian_random_field(shape, box, _power_law, seed=2)
    assert field.shape == shape and abs(field.mean()) < 1e-12
    _, pk, nmodes = power_spectrum(field, box)
    ratio = pk / _bin_average(_power_law, shape, box)
    # |delta_k|^2 / P is exponential (mean 1, variance 1) per independent mode, so the bin
    # ratio has variance 1/Nmodes: chi^2 = sum Nmodes (ratio - 1)^2 ~ nbins +- sqrt(2 nbins)
    # (the few Nyquist-corner modes, real, have variance 2 and barely move it).
    chi2 = np.sum(nmodes * (ratio - 1) ** 2)
    nbins = len(nmodes)
    assert abs(chi2 - nbins) < 5 * np.sqrt(2 * nbins), (chi2, nbins)
    assert np.max(np.abs(ratio - 1) * np.sqrt(nmodes / 2)) < 5
    print(f"GRF {shape}: chi2 {chi2:.1f} for {nbins} bins")


def test_grf_normalisation_is_exact_for_white_noise():
    # P = (L/N)^d is the spectrum of unit white noise: the field is the seeded noise minus
    # its mean (the zero mode is removed).
    shape, box = (16, 16, 16), 8.0
    field = gaussian_random_field(shape, box, (box / 16) ** 3, seed=9)
    noise = np.random.default_rng(9).standard_normal(shape)
    np.testing.assert_allclose(field, noise - noise.mean(), atol=1e-12)


def test_grf_seeding_and_dtype():
    a = gaussian_random_field((32, 32), 10.0, _power_law, seed=4)
    np.testing.assert_array_equal(a, gaussian_random_field((32, 32), 10.0, _power_law, seed=4))
    assert not np.allclose(a, gaussian_random_field((32, 32), 10.0, _power_law, seed=5))
    b = gaussian_random_field((32, 32), 10.0, _power_law, seed=4, dtype=np.float32)
    assert b.dtype == np.float32
    np.testing.assert_allclose(b, a, atol=1e-5 * np.abs(a).max())


def test_lognormal_field():
    shape, box = (32, 32, 32), 50.0
    rho = lognormal_field(shape, box, _power_law, seed=6, sigma=0.6)
    assert (rho > 0).all()
    np.testing.assert_allclose(rho.mean(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.log(rho).std(), 0.6, rtol=1e-10)
    # ln rho is the seeded Gaussian field, rescaled, up to a constant.
    g = gaussian_random_field(shape, box, _power_law, seed=6)
    np.testing.assert_allclose(np.log(rho) - np.log(rho).mean(), 0.6 * g / g.std(), atol=1e-10)


def _r_true(k):
    return 0.9 * np.exp(-k / 4.0)


def test_correlated_fields_recover_r_and_auto_spectra():
    shape, box = (128, 128), 25.0
    powers = [_power_law, lambda k: 0.3 * _power_law(k), lambda k: 2.0 * _power_law(k)]
    r_matrix = [[1, _r_true, 0.5], [None, 1, 0.4], [None, None, 1]]
    fields = correlated_fields(shape, box, powers, r_matrix, seed=8)
    assert fields.shape == (3,) + shape
    k, r, nmodes = cross_correlations(fields, box, channel_axis=0)
    # Estimated r has a spread of about (1 - r^2) / sqrt(2 Nmodes) per bin (each complex mode
    # gives two real Gaussian samples).
    for (i, j), r_ij in {(0, 1): _r_true, (0, 2): lambda k: 0.5 + 0 * k,
                         (1, 2): lambda k: 0.4 + 0 * k}.items():
        expected = _bin_average(r_ij, shape, box)
        pulls = (r[i, j] - expected) * np.sqrt(2 * nmodes) / (1 - expected**2)
        assert np.max(np.abs(pulls)[nmodes >= 20]) < 5, (i, j)
        assert np.sqrt(np.mean(pulls[nmodes >= 20] ** 2)) < 1.5, (i, j)
    for c, power in enumerate(powers):
        _, pk, _ = power_spectrum(fields[c], box)
        ratio = pk / _bin_average(power, shape, box)
        assert abs(np.sum(nmodes * (ratio - 1) ** 2) - len(k)) < 5 * np.sqrt(2 * len(k))


def test_fully_correlated_fields_are_proportional():
    a, b = correlated_fields((32, 32, 32), 40.0, [_power_law, lambda k: 4 * _power_law(k)],
                             1.0, seed=1)
    np.testing.assert_allclose(b, 2.0 * a, atol=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="r"):
        correlated_fields((16, 16), 1.0, [1.0, 1.0], 1.5, seed=0)
    with pytest.raises(ValueError, match="powers"):
        gaussian_random_field((16, 16), 1.0, lambda k: -k, seed=0)
    with pytest.raises(ValueError, match="shape"):
        gaussian_random_field((16, 8), 1.0, 1.0, seed=0)
    with pytest.raises(ValueError, match="r"):
        correlated_fields((16, 16), 1.0, [1.0, 1.0, 1.0], [[1, 0.5], [0.5, 1]], seed=0)


def test_first_channel_is_the_gaussian_field_of_the_seed():
    fields = correlated_fields((32, 32), 10.0, [_power_law, 1.0], _r_true, seed=12)
    np.testing.assert_allclose(fields[0], gaussian_random_field((32, 32), 10.0, _power_law, 12),
                               atol=1e-12)
