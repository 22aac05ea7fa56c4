"""compare_cubes against known answers: identical cubes, a rescaled cube (clustering of delta is
scale-free, the total mass is not), a smoothed cube (less small-scale power), planted masses in
the histogram."""
import json

import numpy as np
import pytest
from scipy import ndimage

from tfastro.dm2gal.evaluation import compare_cubes

BOX, N = 50.0, 32
K1, K2 = 0.5, 0.6  # h/Mpc; k_F = 0.126, k_Nyquist = 2.01


@pytest.fixture(scope="module")
def target():
    """A sparse lognormal 'stellar mass' cube: clustered, with empty voxels, Msun/h."""
    rng = np.random.default_rng(8)
    g = ndimage.gaussian_filter(rng.standard_normal((N, N, N)), 1.5, mode="wrap")
    mass = 1e9 * np.exp(3.0 * g / g.std())
    mass[rng.random((N, N, N)) < 0.3] = 0.0
    return mass.astype(np.float32)


def compare(target, prediction, hod=None, **kwargs):
    return compare_cubes(target, prediction, hod, box_size=BOX, k1=K1, k2=K2, **kwargs)


def test_identical_cubes_have_unit_ratios_and_json(target):
    result = compare(target, target.copy(), target.copy())
    json.dumps(result, allow_nan=False)
    for name in ("prediction", "hod"):
        np.testing.assert_allclose(result["power_ratio"][name], 1.0, rtol=1e-6)
        np.testing.assert_allclose(result["bispectrum"]["Q_ratio"][name], 1.0, rtol=1e-6)
        np.testing.assert_allclose(result["bispectrum"]["B_ratio"][name], 1.0, rtol=1e-6)
        assert result["total_mass_ratio"][name] == pytest.approx(1.0)
    assert len(result["bispectrum"]["thetas"]) == 25
    assert result["bispectrum"]["thetas"][-1] == pytest.approx(np.pi)
    assert result["total_mass"]["target"] == pytest.approx(float(target.sum(dtype=np.float64)))
    assert len(result["k"]) == len(result["power"]["target"]) == len(result["nmodes"])


def test_doubled_mass_keeps_the_overdensity_spectra(target):
    # P and B of delta = M / mean(M) - 1 do not change when M is scaled; the total mass does
    result = compare(target, 2.0 * target)
    assert "hod" not in result["power"]
    np.testing.assert_allclose(result["power_ratio"]["prediction"], 1.0, rtol=1e-5)
    np.testing.assert_allclose(result["bispectrum"]["Q_ratio"]["prediction"], 1.0, rtol=1e-5)
    assert result["total_mass_ratio"]["prediction"] == pytest.approx(2.0, rel=1e-6)
    # the histogram of log10 M shifts by log10 2 while the counts per cube stay
    assert result["histogram"]["non_empty"]["prediction"] == np.count_nonzero(target)


def test_smoothed_cube_has_less_small_scale_power(target):
    smooth = ndimage.gaussian_filter(target.astype(np.float64), 1.0, mode="wrap")
    result = compare(target, smooth, mas=None)
    k, ratio = np.array(result["k"]), np.array(result["power_ratio"]["prediction"])
    # a Gaussian filter of sigma = 1 voxel multiplies P by exp(-(k sigma L/N)^2) exactly
    expected = np.exp(-(k * BOX / N) ** 2)
    low = k < 0.5
    np.testing.assert_allclose(ratio[low], expected[low], rtol=0.05)
    assert np.all(ratio[k > 1.5] < 0.2)
    assert result["total_mass_ratio"]["prediction"] == pytest.approx(1.0, rel=1e-5)


def test_histogram_counts_planted_masses():
    cube = np.zeros((N, N, N), np.float32)
    flat = cube.reshape(-1)
    flat[:30] = 1e8
    flat[100:120] = 1e10
    flat[500] = 1e9  # the middle edge: falls into the upper of two bins
    result = compare(cube, cube, bins=2)
    hist = result["histogram"]
    np.testing.assert_allclose(hist["log10_edges"], [8.0, 9.0, 10.0])
    assert hist["counts"]["target"] == [30, 21]
    assert sum(hist["counts"]["target"]) == hist["non_empty"]["target"] == 51
    assert result["total_mass"]["target"] == pytest.approx(30e8 + 20e10 + 1e9, rel=1e-6)


def test_bad_cubes_raise(target):
    with pytest.raises(ValueError, match="prediction"):
        compare(target, target[:-1, :-1, :-1])
    nan = target.copy()
    nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="prediction"):
        compare(target, nan)
    with pytest.raises(ValueError, match="hod"):
        compare(target, target, np.zeros_like(target))
