"""Synthetic CMD maps: the real file layout, and their measured statistics against the truth of
the generator (P(k) of the normalised log maps, cross-correlations, sigma_8 and Omega_m)."""
import os

import numpy as np
import pytest

from tfastro.core.errors import UserInputError
from tfastro.fields.fourier import mode_bins, wavenumbers
from tfastro.fields.spectra import cross_spectra, power_spectrum
from tfastro.multifield.io import (BOX_SIZE, CMD_FIELDS, PARAM_NAMES, maps_path, normalise_maps,
                                   normalise_params, open_cmd, params_path)
from tfastro.multifield.synthetic import (LOG10_MEAN, TRUE_CROSS_CORRELATION, main, spectral_index,
                                          synthetic_cmd_maps, synthetic_maps_at, true_log_spectrum,
                                          write_synthetic_cmd)

R = 32


def _truth_per_bin(omega_m, sigma_8, field, size):
    """Mean of the true P over each Pylians bin's modes and the relative variance of a bin's
    measured mean for one map, sum P^2 / (sum P)^2 (1 / Nmodes for a flat spectrum)."""
    bins = mode_bins((size, size), BOX_SIZE)
    power = true_log_spectrum(wavenumbers((size, size), BOX_SIZE), omega_m, sigma_8, field, size)
    index = bins.index.ravel()
    total = np.bincount(index, power.ravel(), bins.nbins + 1)[:-1]
    squares = np.bincount(index, power.ravel() ** 2, bins.nbins + 1)[:-1]
    return total / bins.counts, squares / total**2


@pytest.fixture(scope="module")
def fiducial_maps():
    return normalise_maps(synthetic_maps_at(0.3, 0.8, 48, R, seed=2), CMD_FIELDS)


def test_files_in_the_real_layout_are_read_back(tmp_path):
    paths = write_synthetic_cmd(tmp_path, resolution=16, num_simulations=3, seed=1)
    assert paths == tuple(maps_path(tmp_path, f) for f in CMD_FIELDS) + (params_path(tmp_path),)
    for path in paths[:3]:
        maps = np.load(path)
        assert maps.dtype == np.float32 and maps.shape == (45, 16, 16)
    assert "SYNTHETIC" in open(paths[3]).readline()
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in paths)
    cmd = open_cmd(tmp_path)
    assert (cmd.num_maps, cmd.resolution, cmd.num_simulations) == (45, 16, 3)
    np.testing.assert_array_equal(cmd.read(np.arange(45)), synthetic_cmd_maps(cmd.params, 16, 1))
    # Latin hypercube: every column has one value in each third of its (log-)range.
    unit = (normalise_params(cmd.params, PARAM_NAMES) + 1) / 2
    np.testing.assert_array_equal(np.sort(np.floor(unit * 3), axis=0), np.tile([[0], [1], [2]], 6))
    # Each map's log10 mean is the field's (the zero mode is removed from g).
    log_means = np.log10(cmd.read(np.arange(45))).mean(axis=(1, 2))
    np.testing.assert_allclose(log_means, np.tile([LOG10_MEAN[f] for f in CMD_FIELDS], (45, 1)),
                               atol=1e-5)
    # The 15 maps of a simulation are different realisations.
    assert not np.allclose(cmd.read([0]), cmd.read([1]))


def test_refuses_to_overwrite_and_b_only_for_illustris(tmp_path):
    write_synthetic_cmd(tmp_path, resolution=8, num_simulations=1, seed=1)
    before = np.load(maps_path(tmp_path, "Mgas"))
    with pytest.raises(UserInputError, match=r"Maps_Mgas_IllustrisTNG_LH_z=0.00.npy: file exists"):
        write_synthetic_cmd(tmp_path, resolution=8, num_simulations=1, seed=2)
    np.testing.assert_array_equal(np.load(maps_path(tmp_path, "Mgas")), before)
    write_synthetic_cmd(tmp_path, resolution=8, num_simulations=1, seed=2, overwrite=True)
    assert not np.allclose(np.load(maps_path(tmp_path, "Mgas")), before)
    with pytest.raises(UserInputError, match="B field exists only for suite IllustrisTNG"):
        write_synthetic_cmd(tmp_path, resolution=8, num_simulations=1, suite="SIMBA")


def test_command_line_writes_the_files(tmp_path, capsys):
    out = str(tmp_path / "cmd")
    assert main(["--out", out, "--resolution", "8", "--simulations", "2",
                 "--set", "CV", "--seed", "4"]) == 0
    printed = capsys.readouterr().out
    assert "SYNTHETIC" in printed and maps_path(out, "B", set_name="CV") in printed
    cmd = open_cmd(out, set_name="CV")
    assert (cmd.num_maps, cmd.resolution) == (30, 8)
    np.testing.assert_array_equal(cmd.read(np.arange(30)), synthetic_cmd_maps(cmd.params, 8, 4))
    assert main(["--out", out, "--resolution", "8", "--simulations", "2",
                 "--set", "CV"]) == 2
    assert "file exists" in capsys.readouterr().err
    assert main(["--out", out, "--resolution", "8", "--simulations", "1",
                 "--suite", "SIMBA"]) == 0
    assert os.path.exists(maps_path(out, "HI", "SIMBA"))
    assert not os.path.exists(maps_path(out, "B", "SIMBA"))


@pytest.mark.parametrize("omega_m,sigma_8,seed", [(0.3, 0.8, 6), (0.12, 0.95, 7),
                                                  (0.47, 0.63, 8)])
def test_power_spectrum_of_normalised_log_maps_matches_truth(omega_m, sigma_8, seed):
    n_maps = 48
    x = normalise_maps(synthetic_maps_at(omega_m, sigma_8, n_maps, R, seed=seed), CMD_FIELDS)
    for c, field in enumerate(CMD_FIELDS):
        k, pk, _ = power_spectrum(x[..., c], BOX_SIZE, ndim=2)
        truth, rel_var = _truth_per_bin(omega_m, sigma_8, field, R)
        ratio = pk.mean(axis=0) / truth
        pull = (ratio - 1) / np.sqrt(rel_var / n_maps)
        chi2, nbins = np.sum(pull**2), len(k)
        assert abs(chi2 - nbins) < 5 * np.sqrt(2 * nbins), (field, chi2, nbins)
        assert np.max(np.abs(pull)) < 5, (field, pull)
        print(f"P(k) {field} at ({omega_m}, {sigma_8}): chi2 {chi2:.1f} for {nbins} bins, "
              f"max |pull| {np.max(np.abs(pull)):.2f}")


def test_cross_correlations_match_truth(fiducial_maps):
    k, spectra, counts = cross_spectra(fiducial_maps, BOX_SIZE, channel_axis=-1, ndim=2)
    mean = spectra.mean(axis=0)  # (C, C, nbins)
    _, rel_var = _truth_per_bin(0.3, 0.8, "Mgas", R)
    effective_modes = len(fiducial_maps) / rel_var
    for (a, b), r_true in TRUE_CROSS_CORRELATION.items():
        i, j = CMD_FIELDS.index(a), CMD_FIELDS.index(b)
        r = mean[i, j] / np.sqrt(mean[i, i] * mean[j, j])
        sigma = (1 - r_true**2) / np.sqrt(effective_modes)
        assert np.max(np.abs(r - r_true) / sigma) < 5, (a, b, r)
        weighted = np.sum(effective_modes * r) / np.sum(effective_modes)
        assert abs(weighted - r_true) < 5 * (1 - r_true**2) / np.sqrt(effective_modes.sum())
        print(f"r({a}, {b}) = {weighted:.4f} (truth {r_true})")


def test_spectrum_amplitude_follows_sigma_8_and_tilt_follows_omega_m():
    maps = {theta: normalise_maps(synthetic_maps_at(*theta, 8, R, seed=3), CMD_FIELDS)
            for theta in [(0.3, 0.6), (0.3, 1.0), (0.1, 0.8), (0.5, 0.8)]}
    power = {theta: power_spectrum(np.moveaxis(x, -1, 1), BOX_SIZE, ndim=2)[1].mean(axis=0)
             for theta, x in maps.items()}  # (C, nbins)
    # Same seeds: the Gaussian fields scale exactly with sigma_8, P with sigma_8^2.
    np.testing.assert_allclose(power[(0.3, 1.0)] / power[(0.3, 0.6)], (1.0 / 0.6) ** 2, rtol=1e-3)
    # Omega_m tilts the spectrum: log P(0.1) / P(0.5) grows as (n(0.1) - n(0.5)) log k.
    k = mode_bins((R, R), BOX_SIZE).k
    slope = np.polyfit(np.log(k[2:]), np.log(power[(0.1, 0.8)] / power[(0.5, 0.8)])[:, 2:].T,
                       1)[0]
    np.testing.assert_allclose(slope, spectral_index(0.1) - spectral_index(0.5), atol=0.05)


def test_values_stay_inside_the_normalisation_ranges():
    fiducial = normalise_maps(synthetic_maps_at(0.3, 0.8, 8, 64, seed=5), CMD_FIELDS)
    assert np.abs(fiducial).max() < 1
    corner = normalise_maps(synthetic_maps_at(0.1, 1.0, 4, 128, seed=5), CMD_FIELDS)
    assert np.mean(np.abs(corner) > 1) < 0.01
