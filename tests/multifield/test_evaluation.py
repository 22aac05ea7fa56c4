"""Emulator statistics against truth: Gaussian fields of known P(k) and r(k), exact rescalings,
analytic KS distances, R^2 and Spearman values."""
import json

import numpy as np
import pytest
from scipy import stats

from tfastro.fields.random_fields import correlated_fields
from tfastro.multifield.evaluation import (amplitude_ordering, cross_correlation_comparison,
                                           emulator_report, pdf_comparison, regression_scores,
                                           spectra_comparison)

FIELDS = ("Mgas", "HI", "B")
BOX = 25.0
RES = 32
N_MAPS = 96
POWERS = (lambda k: 1.0 * k**-2.0, lambda k: 0.5 * k**-1.5, lambda k: 2.0 * k**-1.0)
R_PLANTED = {"Mgas-HI": 0.8, "Mgas-B": 0.3, "HI-B": 0.5}


def _r_matrix(r01, r02, r12):
    return [[1.0, r01, r02], [r01, 1.0, r12], [r02, r12, 1.0]]


def gaussian_maps(first_seed, r01=R_PLANTED["Mgas-HI"]):
    """(N_MAPS, RES, RES, 3) Gaussian maps with spectra POWERS and constant correlations."""
    r = _r_matrix(r01, R_PLANTED["Mgas-B"], R_PLANTED["HI-B"])
    maps = [correlated_fields((RES, RES), BOX, POWERS, r, seed=first_seed + i, dtype=np.float32)
            for i in range(N_MAPS)]
    return np.moveaxis(np.stack(maps), 1, -1)


@pytest.fixture(scope="module")
def real():
    return gaussian_maps(0)


@pytest.fixture(scope="module")
def generated():
    return gaussian_maps(10_000)  # same P(k) and r(k), independent draws


def _complete(comparison):
    return np.asarray(comparison["k"]) <= comparison["k_nyquist"]


def _z_scores(channel, complete, expected_ratio):
    ratio = np.asarray(channel["ratio"])[complete]
    return (ratio - expected_ratio) / np.asarray(channel["ratio_error"])[complete]


# ------------------------------------------------------------------------------ power spectra
def test_same_spectrum_gives_ratio_one_within_its_error(real, generated):
    comparison = spectra_comparison(real, generated, BOX, FIELDS)
    complete = _complete(comparison)
    assert comparison["k_nyquist"] == pytest.approx(np.pi * RES / BOX)
    z = np.concatenate([_z_scores(comparison["channels"][f], complete, 1.0) for f in FIELDS])
    print(f"same P: max |z| {np.abs(z).max():.2f}, mean z^2 {np.mean(z**2):.2f}")
    assert np.abs(z).max() < 4.5
    assert 0.3 < np.mean(z**2) < 2.0  # the standard error is the scatter of the ratio
    counts = np.asarray(comparison["n_modes"])[complete]
    for field in FIELDS:
        channel = comparison["channels"][field]
        # Gaussian field: a bin's P estimate averages Nmodes exponential |delta_k|^2, so its
        # spread over maps is P / sqrt(Nmodes).
        spread = (np.asarray(channel["real_std"])[complete] * np.sqrt(counts)
                  / np.asarray(channel["real_mean"])[complete])
        print(f"{field}: R2_log {channel['r2_log']:.4f}, R2_lin {channel['r2_linear']:.4f}, "
              f"max rel err {channel['max_rel_error']:.3f}, spread*sqrt(Nmodes)/P median "
              f"{np.median(spread):.3f}")
        assert np.median(spread) == pytest.approx(1.0, abs=0.15)
        assert channel["r2_log"] > 0.99
        assert channel["r2_linear"] > 0.95
        assert channel["max_rel_error"] < 0.35


def test_doubled_power_gives_ratio_two_and_the_analytic_r2(real, generated):
    # the real maps times sqrt(2): P doubles exactly, bin by bin
    exact = spectra_comparison(real, np.sqrt(2.0) * real, BOX, FIELDS)
    complete = _complete(exact)
    for field in FIELDS:
        channel = exact["channels"][field]
        p_real = np.asarray(channel["real_mean"])[complete]
        np.testing.assert_allclose(channel["ratio"], 2.0, rtol=1e-5)
        assert channel["max_rel_error"] == pytest.approx(1.0, rel=1e-5)
        log_p = np.log(p_real)
        want_log = 1.0 - complete.sum() * np.log(2.0) ** 2 / np.sum((log_p - log_p.mean()) ** 2)
        want_lin = 1.0 - np.sum(p_real**2) / np.sum((p_real - p_real.mean()) ** 2)
        assert channel["r2_log"] == pytest.approx(want_log, rel=1e-5)
        assert channel["r2_linear"] == pytest.approx(want_lin, rel=1e-4)
    # independent maps of twice the power
    doubled = spectra_comparison(real, np.sqrt(2.0) * generated, BOX, FIELDS)
    z = np.concatenate([_z_scores(doubled["channels"][f], complete, 2.0) for f in FIELDS])
    assert np.abs(z).max() < 4.5
    for field in FIELDS:
        r2_log = doubled["channels"][field]["r2_log"]
        print(f"{field}: doubled P, R2_log {r2_log:.3f}")
        assert r2_log < 0.95


# ------------------------------------------------------------------------------------- PDFs
def test_pdf_ks_distance_is_small_for_one_law_and_analytic_for_a_shift(real, generated):
    same = pdf_comparison(real, generated, FIELDS, bins=40)
    identical = pdf_comparison(real, real, FIELDS, bins=40)
    sigma = real.std(axis=(0, 1, 2))
    shifted = pdf_comparison(real, generated + 0.5 * sigma, FIELDS, bins=40)
    want = 2.0 * stats.norm.cdf(0.25) - 1.0  # sup |Phi(x) - Phi(x - 0.5)|
    for c, field in enumerate(FIELDS):
        one = same["channels"][field]
        assert len(one["edges"]) == 41 and len(one["real_mean"]) == 40
        assert one["edges"][0] == pytest.approx(min(real[..., c].min(), generated[..., c].min()))
        assert one["edges"][-1] == pytest.approx(max(real[..., c].max(), generated[..., c].max()))
        assert identical["channels"][field]["ks_distance"] == 0.0
        assert identical["channels"][field]["generated_mean"] == \
            identical["channels"][field]["real_mean"]
        ks_same, ks_shift = one["ks_distance"], shifted["channels"][field]["ks_distance"]
        print(f"{field}: KS same {ks_same:.4f}, shifted by sigma/2 {ks_shift:.4f} "
              f"(Gaussian {want:.4f})")
        assert ks_same < 0.02
        assert ks_shift == pytest.approx(want, abs=0.015)


# ------------------------------------------------------------------------ correlation r(k)
def test_cross_correlation_recovers_the_planted_r_in_both_sets(real, generated):
    comparison = cross_correlation_comparison(real, generated, BOX, FIELDS)
    assert list(comparison["pairs"]) == ["Mgas-HI", "Mgas-B", "HI-B"]
    assert comparison["k_nyquist"] == pytest.approx(np.pi * RES / BOX)
    complete = _complete(comparison)
    for pair, planted in R_PLANTED.items():
        result = comparison["pairs"][pair]
        for key in ("real_mean", "generated_mean"):
            mean_r = np.mean(np.asarray(result[key])[complete])
            assert mean_r == pytest.approx(planted, abs=0.03)
        print(f"{pair}: planted {planted}, max |dr| {result['max_abs_diff']:.3f}")
        assert result["max_abs_diff"] < 0.2


def test_cross_correlation_detects_a_wrong_r(real):
    comparison = cross_correlation_comparison(real, gaussian_maps(20_000, r01=0.2), BOX, FIELDS)
    complete = _complete(comparison)
    wrong = comparison["pairs"]["Mgas-HI"]
    assert np.mean(np.asarray(wrong["generated_mean"])[complete]) == pytest.approx(0.2, abs=0.03)
    print(f"Mgas-HI planted 0.8 vs 0.2: max |dr| {wrong['max_abs_diff']:.3f}")
    assert wrong["max_abs_diff"] > 0.5
    assert comparison["pairs"]["HI-B"]["max_abs_diff"] < 0.2


# ------------------------------------------------------------------------------ the report
def test_report_is_json_and_agrees_with_the_separate_comparisons(real, generated):
    report = emulator_report(real[:32], generated[:24], FIELDS, BOX, bins=20)
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text) == report
    assert (report["n_real"], report["n_generated"], report["resolution"]) == (32, 24, RES)
    assert report["spectra"] == spectra_comparison(real[:32], generated[:24], BOX, FIELDS)
    assert report["cross_correlations"] == cross_correlation_comparison(real[:32], generated[:24],
                                                                        BOX, FIELDS)
    assert report["pdfs"] == pdf_comparison(real[:32], generated[:24], FIELDS, bins=20)
    # a collapsed channel (P = 0, r = 0/0): its undefined scores become None, still strict JSON
    collapsed = generated[:24].copy()
    collapsed[..., 2] = 0.5
    report = emulator_report(real[:32], collapsed, FIELDS, BOX, bins=20)
    json.dumps(report, allow_nan=False)
    assert report["spectra"]["channels"]["B"]["r2_log"] is None
    assert report["cross_correlations"]["pairs"]["HI-B"]["max_abs_diff"] is None
    assert report["spectra"]["channels"]["Mgas"]["r2_log"] > 0.99


def test_bad_maps_are_rejected(real):
    with pytest.raises(ValueError, match="fields"):
        spectra_comparison(real, real, BOX, ("Mgas", "HI"))
    with pytest.raises(ValueError, match="generated"):
        pdf_comparison(real, real[:, :16, :16], FIELDS)
    with pytest.raises(ValueError, match="real"):
        emulator_report(real[0], real, FIELDS)


# --------------------------------------------------------------------------- conditioning
def test_regression_scores_are_analytic(rng):
    theta = rng.uniform(0.0, 1.0, (200, 2))
    perfect = regression_scores(theta, theta, ("Omega_m", "sigma_8"))
    assert perfect == {"Omega_m": {"rmse": 0.0, "r2": 1.0}, "sigma_8": {"rmse": 0.0, "r2": 1.0}}
    mean = regression_scores(theta, np.broadcast_to(theta.mean(axis=0), theta.shape))
    offset = regression_scores(theta, theta + [0.1, -0.2])
    for p, name in enumerate(("Omega_m", "sigma_8")):
        assert mean[name]["r2"] == pytest.approx(0.0, abs=1e-12)
        assert mean[name]["rmse"] == pytest.approx(theta[:, p].std())
        shift = (0.1, 0.2)[p]
        assert offset[name]["rmse"] == pytest.approx(shift)
        assert offset[name]["r2"] == pytest.approx(1.0 - shift**2 / theta[:, p].var())
    with pytest.raises(ValueError, match="names"):
        regression_scores(theta, theta, ("Omega_m",))


def test_amplitude_ordering_follows_sigma8_squared_and_detects_a_shuffle(real):
    base = real[:16]
    sigma8 = [0.6, 0.7, 0.8, 0.9, 1.0]
    ordered = amplitude_ordering({s: (s / 0.8) * base for s in sigma8}, BOX, FIELDS)
    assert ordered["sigma8"] == sigma8
    for field in FIELDS:
        channel = ordered["channels"][field]
        amplitude = np.asarray(channel["amplitude"])
        np.testing.assert_allclose(amplitude / amplitude[2], (np.array(sigma8) / 0.8) ** 2,
                                   rtol=1e-5)
        assert channel["spearman"] == pytest.approx(1.0) and channel["increasing"]
    shuffled_scale = [0.8, 0.6, 0.9, 1.0, 0.7]  # maps scaled as this sigma_8 filed under sigma8
    shuffled = amplitude_ordering({s: (t / 0.8) * base for s, t in zip(sigma8, shuffled_scale)},
                                  BOX, FIELDS)
    d = np.argsort(np.argsort(shuffled_scale)) - np.arange(5)  # rank differences
    want = 1.0 - 6.0 * np.sum(d**2) / (5 * (5**2 - 1))
    for field in FIELDS:
        channel = shuffled["channels"][field]
        assert channel["spearman"] == pytest.approx(want) and not channel["increasing"]
    with pytest.raises(ValueError, match="two or more"):
        amplitude_ordering({0.8: base}, BOX, FIELDS)
