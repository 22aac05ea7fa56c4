"""Synthetic TNG stand-in: the real file layout read back by the TNG readers, the particle mass
of the header against Omega_m rho_crit L^3 / N, the planted stellar-mass relation, the CLI."""
import json
import os

import h5py
import numpy as np
import pytest
from scipy import ndimage

from tfastro.core.errors import UserInputError
from tfastro.dm2gal.io import (dark_matter_grid, iter_particle_positions, log_mass, read_groups,
                               read_header, read_subhalos, snapshot_files, stellar_mass_grid,
                               subhalo_mass_grid)
from tfastro.dm2gal.synthetic import TNGSyntheticParams, main, write_synthetic_tng

PARAMS = TNGSyntheticParams(grid=32, particles_per_side=32, seed=1, chunks=3)
RHO_CRIT_MSUN_H_PER_MPC3 = 2.775e11  # h^2 Msun / Mpc^3, i.e. Msun/h per (Mpc/h)^3


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp("tng")
    paths, universe = write_synthetic_tng(out, PARAMS)
    return out, paths, universe


def test_files_in_the_tng_layout(synthetic):
    out, paths, universe = synthetic
    for folder, stem in (("Dark/snapdir_099", "snap_099"), ("Dark/groups_099",
                                                             "fof_subhalo_tab_099"),
                         ("Hydro/groups_099", "fof_subhalo_tab_099")):
        assert sorted(os.listdir(out / folder)) == [f"{stem}.{i}.hdf5" for i in range(3)]
    with open(paths["parameters"]) as handle:
        recorded = json.load(handle)
    assert recorded["synthetic"] and recorded["stellar_b"] == PARAMS.stellar_b
    last = snapshot_files(paths["hydro_groups"])[-1]
    with h5py.File(last, "r") as handle:  # the deliberately empty chunk
        assert handle["Header"].attrs["Nsubgroups_ThisFile"] == 0 and "Subhalo" not in handle


def test_particle_count_and_mass_consistent_with_header(synthetic):
    _, paths, universe = synthetic
    header = read_header(paths["snapshot"])
    n = PARAMS.particles_per_side**3
    assert header["NumPart_Total"][1] == n and header["BoxSize"] == PARAMS.box_size
    per_file = [read_header(f)["NumPart_ThisFile"][1] for f in snapshot_files(paths["snapshot"])]
    assert sum(per_file) == n
    expected = PARAMS.omega_m * RHO_CRIT_MSUN_H_PER_MPC3 * (PARAMS.box_size / 1000) ** 3 / n
    np.testing.assert_allclose(header["MassTable"][1] * 1e10, expected, rtol=1e-3)
    positions = np.concatenate(list(iter_particle_positions(paths["snapshot"])))
    np.testing.assert_array_equal(positions, universe.particles)
    grid = dark_matter_grid(paths["snapshot"], PARAMS.grid)
    np.testing.assert_allclose(grid.sum(dtype=np.float64), n * expected, rtol=1e-3)
    # particles are multinomial draws of the planted density: Poisson residuals per cell
    counts, _ = np.histogramdd(positions, bins=PARAMS.grid, range=[(0, PARAMS.box_size)] * 3)
    mean = n * universe.density / universe.density.sum()
    residuals = (counts - mean) / np.sqrt(mean)
    assert abs(residuals.mean()) < 0.02 and abs(residuals.std() - 1) < 0.03


def test_catalogues_share_subhalos_and_groups(synthetic):
    _, paths, universe = synthetic
    dark, hydro = read_subhalos(paths["dark_groups"]), read_subhalos(paths["hydro_groups"])
    np.testing.assert_array_equal(dark.positions, hydro.positions)
    np.testing.assert_allclose(dark.mass, universe.subhalo_mass, rtol=1e-6)
    np.testing.assert_allclose(hydro.stellar_mass, universe.stellar_mass, rtol=1e-6)
    assert not dark.stellar_mass.any()
    groups = read_groups(paths["dark_groups"])
    assert dark.is_central.sum() == len(groups.mass) == len(universe.group_mass)
    # the central is the most massive subhalo of its group
    heaviest = np.zeros(len(groups.mass))
    np.maximum.at(heaviest, dark.group, dark.mass)
    np.testing.assert_array_equal(dark.mass[dark.is_central], heaviest)


def test_stellar_mass_follows_the_planted_log_linear_relation(synthetic):
    _, paths, _ = synthetic
    x = np.log10(read_subhalos(paths["dark_groups"]).mass)
    y = np.log10(read_subhalos(paths["hydro_groups"]).stellar_mass)
    (b, a), cov = np.polyfit(x, y, 1, cov=True)
    assert len(x) > 1000
    assert abs(b - PARAMS.stellar_b) < 4 * np.sqrt(cov[0, 0])
    assert abs(a - PARAMS.stellar_a) < 4 * np.sqrt(cov[1, 1])
    np.testing.assert_allclose(np.std(y - (a + b * x)), PARAMS.stellar_scatter, rtol=0.1)


def test_stellar_grid_depends_on_the_dark_matter_neighbourhood(synthetic):
    _, paths, _ = synthetic
    target = log_mass(stellar_mass_grid(read_subhalos(paths["hydro_groups"]), PARAMS.grid))
    subhalo = log_mass(subhalo_mass_grid(read_subhalos(paths["dark_groups"]), PARAMS.grid))
    dark = ndimage.gaussian_filter(log_mass(dark_matter_grid(paths["snapshot"], PARAMS.grid)),
                                   1.5, mode="wrap")
    # 32^3 voxels: a correlation of independent fields would be ~0 +- 0.006
    assert np.corrcoef(dark.ravel(), target.ravel())[0, 1] > 0.1
    occupied = target > 8
    assert np.corrcoef(subhalo[occupied], target[occupied])[0, 1] > 0.8


def test_cli_writes_tiny_synthetic_tng(tmp_path, capsys):
    args = ["--out", str(tmp_path), "--grid", "8", "--particles-per-side", "8",
            "--chunks", "2", "--seed", "3"]
    assert main(args) == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    positions = np.concatenate(list(iter_particle_positions(tmp_path / "Dark/snapdir_099")))
    assert positions.shape == (512, 3)
    assert 0 <= positions.min() and positions.max() <= 25000.0
    assert len(read_subhalos(tmp_path / "Hydro/groups_099").mass) > 0
    assert main(args) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0
    with pytest.raises(UserInputError, match="grid"):
        write_synthetic_tng(tmp_path / "bad", TNGSyntheticParams(grid=2))
