"""Prestellar-core scores against analytic cubes: radial profiles, Plummer fits, voxel errors,
MC-dropout calibration. The cubes are built here (not by tfastro.prestellar.synthetic)."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import special

from tfastro.prestellar.evaluation import (calibration, density_centroid, fit_plummer,
                                           mean_baseline, plummer_log_profile, profile_scores,
                                           radial_profile, uncertainty_maps, voxel_errors)
from tfastro.prestellar.synthetic import cell_centres

N = 32


def radii(n, centre):
    """Distances of the cell centres of an n^3 grid over [-1, 1] from ``centre``."""
    x = -1.0 + (np.arange(n) + 0.5) * 2.0 / n
    dx, dy, dz = np.meshgrid(x - centre[0], x - centre[1], x - centre[2], indexing="ij")
    return np.sqrt(dx**2 + dy**2 + dz**2)


def plummer_cube(a, p, centre=(0.0, 0.0, 0.0), log10_peak=0.0, noise=0.0, seed=0, n=N):
    """log10 of rho0 (1 + r^2/a^2)^(-p/2), times (1 + noise * N(0, 1)) if noise."""
    rho = 10.0**log10_peak * (1.0 + radii(n, centre) ** 2 / a**2) ** (-p / 2)
    if noise:
        rho = rho * (1.0 + noise * np.random.default_rng(seed).standard_normal(rho.shape))
    return np.log10(rho)


def test_cell_centres():
    np.testing.assert_allclose(cell_centres(4), [-0.75, -0.25, 0.25, 0.75])


def test_radial_profile_of_a_linear_function_is_exact():
    centre = (0.1, -0.2, 0.05)
    cube = 3.0 - 2.0 * radii(N, centre)
    r, profile, counts = radial_profile(cube, centre, n_bins=12, r_max=0.9, return_counts=True)
    np.testing.assert_allclose(profile, 3.0 - 2.0 * r, atol=1e-12)
    edges = np.linspace(0.0, 0.9, 13)
    assert np.all((r >= edges[:-1]) & (r < edges[1:]))
    assert counts.sum() == np.sum(radii(N, centre) <= 0.9)


def test_radial_profile_of_a_quadratic_matches_shell_means():
    # f = r^2: the shell mean is the mean r^2 of its voxels = <r>^2 + var(r) >= <r>^2
    centre = (0.0, 0.0, 0.0)
    distance = radii(16, centre)
    r, profile = radial_profile(distance**2, centre, n_bins=5, r_max=1.0)
    shell = np.minimum((distance / 0.2).astype(int), 4)
    for k in range(5):
        inside = (shell == k) & (distance <= 1.0)
        assert profile[k] == pytest.approx(np.mean(distance[inside] ** 2), rel=1e-12)
        assert profile[k] >= r[k] ** 2


def test_radial_profile_empty_shells_are_nan():
    # an 8^3 grid centred on 0: the nearest cells lie at sqrt(3) * 0.125 = 0.217
    r, profile, counts = radial_profile(np.zeros((8, 8, 8)), (0, 0, 0), n_bins=10,
                                        return_counts=True)
    # next, 24 cells at sqrt(2 * 0.125^2 + 0.375^2) = 0.415: the shell [0.3, 0.4) is empty
    assert list(counts[:5]) == [0, 0, 8, 0, 24]
    np.testing.assert_array_equal(np.isnan(r), counts == 0)
    np.testing.assert_array_equal(np.isnan(profile), counts == 0)


def test_density_centroid_of_a_gaussian_core():
    centre = np.array([0.2, -0.1, 0.3])
    log_density = -radii(N, centre) ** 2 / (2 * 0.1**2) / np.log(10.0)
    np.testing.assert_allclose(density_centroid(log_density, fraction=0.0), centre, atol=1e-8)
    # a Plummer core's wings, cut by the box faces, pull the all-voxel centroid inwards;
    # the voxels above half the peak keep the centre
    plummer = plummer_cube(0.2, 2.0, centre)
    np.testing.assert_allclose(density_centroid(plummer), centre, atol=0.01)
    assert np.all(np.abs(density_centroid(plummer, 0.0)) < 0.8 * np.abs(centre))
    # the default centre of radial_profile is the centroid
    np.testing.assert_allclose(radial_profile(plummer)[1],
                               radial_profile(plummer, density_centroid(plummer))[1])
    np.testing.assert_allclose(radial_profile(plummer)[1], radial_profile(plummer, centre)[1],
                               atol=0.01)


def test_fit_plummer_on_the_analytic_profile():
    r = np.linspace(0.02, 1.0, 20)
    fit = fit_plummer(r, plummer_log_profile(r, 0.3, 1.7, 0.4))
    np.testing.assert_allclose(fit, (0.3, 1.7, 0.4), rtol=1e-6)


@pytest.mark.parametrize("a, p, centre", [(0.15, 2.0, (0.0, 0.0, 0.0)),
                                          (0.3, 1.5, (0.1, -0.2, 0.05)),
                                          (0.5, 2.5, (0.0, 0.0, 0.0)),
                                          (0.9, 2.0, (0.0, 0.0, 0.0))])
def test_fit_plummer_recovers_a_noise_free_cube(a, p, centre):
    r, profile, counts = radial_profile(plummer_cube(a, p, centre, log10_peak=0.7), centre,
                                        n_bins=16, return_counts=True)
    for weights in (None, counts):
        fit = fit_plummer(r, profile, weights)
        assert fit.a == pytest.approx(a, rel=0.02)
        assert fit.p == pytest.approx(p, rel=0.02)
        assert fit.log10_peak == pytest.approx(0.7, abs=0.02)


@pytest.mark.parametrize("a, p, centre", [(0.15, 2.0, (0.0, 0.0, 0.0)),
                                          (0.3, 1.5, (0.1, -0.2, 0.05)),
                                          (0.5, 2.5, (-0.1, 0.1, 0.2))])
def test_fit_plummer_with_ten_percent_noise(a, p, centre):
    cube = plummer_cube(a, p, centre, noise=0.1, seed=7)
    r, profile, counts = radial_profile(cube, centre, n_bins=16, return_counts=True)
    fit = fit_plummer(r, profile, counts)
    assert fit.a == pytest.approx(a, rel=0.1)
    assert fit.p == pytest.approx(p, rel=0.05)


def test_fit_plummer_skips_empty_shells():
    r = np.linspace(0.05, 1.0, 12)
    profile = plummer_log_profile(r, 0.4, 2.2)
    holes = np.array([1, 5, 6])
    r_holed, profile_holed = r.copy(), profile.copy()
    r_holed[holes], profile_holed[holes] = np.nan, np.nan
    np.testing.assert_allclose(fit_plummer(r_holed, profile_holed), (0.4, 2.2, 0.0),
                               rtol=1e-6, atol=1e-9)
    assert np.all(np.isnan(fit_plummer(r[:2], profile[:2])))
    with pytest.raises(ValueError, match="r, profile"):
        fit_plummer(r, profile[:-1])


def test_voxel_errors_on_planted_errors():
    rng = np.random.default_rng(0)
    shape = (2, 4, 4, 6)
    # log density varying across the sky, constant along each line of sight
    true = np.stack([np.broadcast_to(rng.normal(size=shape[:3] + (1,)), shape), np.ones(shape)],
                    axis=-1)
    signs = np.where(np.arange(16).reshape(4, 4) % 2 == 0, 1.0, -1.0)  # column signs
    true[..., 1] *= signs[None, :, :, None]
    true[0, 0, 0, :, 1] = 0.05  # one column (6 voxels) of insignificant speed
    pred = true.copy()
    pred[..., 0] += np.where(np.arange(6) < 3, 0.2, -0.1)  # half +0.2, half -0.1
    pred[1, 1, :, :, 1] *= -1.0  # 4 whole columns flipped
    # 4 columns with 2 of 6 voxels flipped: the weighted mean keeps its sign (weights
    # 10^0.2 at z < 3, 10^-0.1 beyond: 2 x 1.58 flipped against 1.58 + 3 x 0.79 kept)
    pred[1, 2, :, :2, 1] *= -1.0
    pred[0, 0, 0, :, 1] *= -1.0  # wrong but insignificant
    scores = voxel_errors(pred, true, v_threshold=0.1)
    json.dumps(scores)
    assert scores["log_density"]["bias"] == pytest.approx(0.05)
    assert scores["log_density"]["mae"] == pytest.approx(0.15)
    assert scores["log_density"]["rmse"] == pytest.approx(np.sqrt(0.025))
    assert scores["v_z"]["bias"] == pytest.approx(np.mean(pred[..., 1] - true[..., 1]))
    sign = scores["v_sign"]
    assert sign["voxel_count"] == 2 * 16 * 6 - 6 and sign["column_count"] == 31
    assert sign["voxel_accuracy"] == pytest.approx(1 - (4 * 6 + 4 * 2) / 186)
    assert sign["column_accuracy"] == pytest.approx(1 - 4 / 31)
    # a baseline cube broadcast against many cores scores like its copies
    copies = voxel_errors(np.broadcast_to(pred[0], true.shape), true, 0.1)
    assert voxel_errors(pred[0], true, 0.1) == copies


def test_column_sign_is_density_weighted():
    # receding gas (+1) in 4 cells of density 1, approaching (-1) in 2 cells of density 10:
    # the line centroid approaches, though most cells recede
    true = np.zeros((1, 1, 6, 2))
    true[..., 1] = [1, 1, 1, 1, -1, -1]
    true[0, 0, 4:, 0] = 1.0
    pred = true.copy()
    pred[..., 0] = 0.0  # right velocities, uniform density: the predicted centroid recedes
    scores = voxel_errors(pred, true, v_threshold=0.1)["v_sign"]
    assert scores["voxel_accuracy"] == 1.0
    assert scores["column_accuracy"] == 0.0
    assert voxel_errors(true, true, 0.1)["v_sign"]["column_accuracy"] == 1.0
    # default threshold: 0.1 x RMS true speed (= 1)
    assert voxel_errors(pred, true)["v_sign"]["threshold"] == pytest.approx(0.1)
    no_signal = voxel_errors(pred, true, v_threshold=2.0)["v_sign"]
    assert no_signal["voxel_accuracy"] is None and no_signal["voxel_count"] == 0
    with pytest.raises(ValueError, match="true"):
        voxel_errors(pred, true[..., :1])


def test_calibration_of_gaussian_errors():
    rng = np.random.default_rng(1)
    shape = (24, 24, 24, 2)
    std = rng.uniform(0.1, 2.0, shape)
    true = rng.normal(size=shape)
    mean = true + std * rng.standard_normal(shape)
    scores = calibration(mean, std, true)
    json.dumps(scores)
    for c, name in enumerate(("log_density", "v_z")):
        assert scores[name]["within_1std"] == pytest.approx(special.erf(1 / np.sqrt(2)),
                                                            abs=0.01)
        assert scores[name]["within_2std"] == pytest.approx(special.erf(2 / np.sqrt(2)),
                                                            abs=0.005)
        assert scores[name]["rmse_over_rms_std"] == pytest.approx(1.0, abs=0.02)
        assert scores[name]["mean_std"] == pytest.approx(std[..., c].mean())
    # a network claiming half its real spread is over-confident
    halved = calibration(mean, std / 2, true)["v_z"]
    assert halved["within_1std"] == pytest.approx(special.erf(0.5 / np.sqrt(2)), abs=0.01)
    assert halved["rmse_over_rms_std"] == pytest.approx(2.0, abs=0.04)


def test_uncertainty_maps():
    std = np.broadcast_to(np.arange(6.0)[None, None, :, None], (3, 4, 6, 2))
    error = np.where(np.arange(6) % 2 == 0, 0.3, -0.3)[None, None, :, None] * np.ones((3, 4, 6, 2))
    maps = uncertainty_maps(std, error)
    np.testing.assert_allclose(maps["std"], np.full((3, 4, 2), 2.5))
    np.testing.assert_allclose(maps["rmse"], np.full((3, 4, 2), 0.3))
    assert set(uncertainty_maps(std)) == {"std"}


def test_mean_baseline():
    cubes = np.arange(2 * 3 * 3 * 3 * 2, dtype=np.float32).reshape(2, 3, 3, 3, 2)
    np.testing.assert_array_equal(mean_baseline(cubes), (cubes[0] + cubes[1]) / 2)
    with pytest.raises(ValueError, match="train_targets"):
        mean_baseline(cubes[0, 0])


CORES = [dict(a=0.2, p=2.0, centre=(0.0, 0.1, -0.1)), dict(a=0.35, p=1.6, centre=(0.1, 0.0, 0.0)),
         dict(a=0.5, p=2.4, centre=(-0.1, -0.1, 0.1))]


def test_profile_scores_against_the_generating_parameters():
    n = 24
    true = np.stack([plummer_cube(c["a"], c["p"], c["centre"], n=n) for c in CORES])
    pred = np.stack([plummer_cube(1.25 * c["a"], c["p"], c["centre"], n=n) for c in CORES])
    baseline = np.mean(true, axis=0)
    scores = profile_scores(pred, true, CORES, baseline=baseline, n_bins=12)
    json.dumps(scores)
    assert scores["truth"]["summary"]["a_rel_error_mean"] < 0.02
    assert scores["truth"]["summary"]["p_abs_error_mean"] < 0.04
    assert "profile_rmse" not in scores["truth"]["summary"]
    np.testing.assert_allclose(scores["prediction"]["a"], [1.25 * c["a"] for c in CORES],
                               rtol=0.02)
    assert scores["prediction"]["summary"]["a_rel_error_median"] == pytest.approx(0.25,
                                                                                  abs=0.03)
    # the profile RMSE is that of the separately computed shell profiles
    difference = [radial_profile(pred[b], c["centre"], 12)[1]
                  - radial_profile(true[b], c["centre"], 12)[1] for b, c in enumerate(CORES)]
    assert scores["prediction"]["summary"]["profile_rmse"] == pytest.approx(
        np.sqrt(np.nanmean(np.square(difference))))
    assert scores["baseline"]["summary"]["n_fitted"] == 3
    assert scores["baseline"]["summary"]["profile_rmse"] > 0.0
    # the same parameters as a table of arrays or as records with attributes
    table = {key: [c[key] for c in CORES] for key in ("a", "p", "centre")}
    assert profile_scores(pred, true, table, n_bins=12)["prediction"] == scores["prediction"]
    # records named as tfastro.prestellar.synthetic.CoreParams names them
    records = [SimpleNamespace(radius=c["a"], slope=c["p"], centre=c["centre"], noise=0.1)
               for c in CORES]
    assert profile_scores(pred, true, records, n_bins=12)["truth"] == scores["truth"]
    # without centres: the density centroid of each true cube
    centroid = profile_scores(pred, true, {"a": table["a"], "p": table["p"]}, n_bins=12)
    np.testing.assert_allclose(centroid["centres"], table["centre"], atol=0.02)
    # two shells cannot fix three parameters: no fit, reported as None
    unfitted = profile_scores(pred, true, CORES, n_bins=2)
    json.dumps(unfitted)
    assert unfitted["prediction"]["summary"]["n_fitted"] == 0
    assert unfitted["prediction"]["a"] == [None] * 3
    assert unfitted["prediction"]["summary"]["a_rel_error_mean"] is None
    with pytest.raises(ValueError, match="params"):
        profile_scores(pred, true, CORES[:2])
    with pytest.raises(ValueError, match="params.*slope"):
        profile_scores(pred, true, {"a": table["a"]})
    with pytest.raises(ValueError, match="baseline"):
        profile_scores(pred, true, CORES, baseline=baseline[:-1])
