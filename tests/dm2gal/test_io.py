"""TNG readers, CIC mass grids (whole box, blocks, streamed), transforms and field files, on
small files in the IllustrisTNG HDF5 layout written here."""
import os

import h5py
import numpy as np
import pytest

from tfastro.core.errors import UserInputError
from tfastro.dm2gal.io import (STANDARDISATION, cic_mass_grid, dark_matter_grid, destandardise,
                               field_statistics, inverse_log_mass, iter_particle_positions,
                               load_field, log_mass, read_groups, read_header, read_subhalos,
                               save_field, snapshot_files, standardise, stellar_mass_grid,
                               subhalo_mass_grid)
from tfastro.fields.assignment import mass_assignment

BOX = 1600.0  # ckpc/h
N = 16  # voxels of 100 ckpc/h
PARTICLE_MASS = 0.25  # 10^10 Msun/h


def write_snapshot_chunk(path, positions, box=BOX, total=None, mass=PARTICLE_MASS):
    with h5py.File(path, "w") as handle:
        header = handle.create_group("Header")
        header.attrs["BoxSize"] = box
        header.attrs["MassTable"] = np.array([0, mass, 0, 0, 0, 0], np.float64)
        header.attrs["NumPart_ThisFile"] = np.array([0, len(positions), 0, 0, 0, 0], np.int32)
        header.attrs["NumPart_Total"] = np.array([0, total or len(positions), 0, 0, 0, 0],
                                                 np.uint32)
        if len(positions):
            handle.create_dataset("PartType1/Coordinates", data=positions)


def write_catalogue_chunk(path, groups=None, subhalos=None, box=BOX):
    """groups: (mass, nsubs, firstsub); subhalos: (pos, mass, masstype, grnr); None: empty."""
    with h5py.File(path, "w") as handle:
        header = handle.create_group("Header")
        header.attrs["BoxSize"] = box
        header.attrs["Ngroups_ThisFile"] = np.int32(0 if groups is None else len(groups[0]))
        header.attrs["Nsubgroups_ThisFile"] = np.int32(0 if subhalos is None
                                                       else len(subhalos[0]))
        if groups is not None:
            for name, data in zip(("GroupMass", "GroupNsubs", "GroupFirstSub"), groups):
                handle.create_dataset(f"Group/{name}", data=data)
        if subhalos is not None:
            for name, data in zip(("SubhaloPos", "SubhaloMass", "SubhaloMassType",
                                   "SubhaloGrNr"), subhalos):
                handle.create_dataset(f"Subhalo/{name}", data=data)


@pytest.fixture
def particles():
    return np.random.default_rng(0).uniform(0, BOX, (500, 3))


@pytest.fixture
def snapdir(tmp_path, particles):
    """Chunks 0, 1 (empty, no PartType1) and 2 (numbered 10 to check the sort)."""
    folder = tmp_path / "snapdir_099"
    folder.mkdir()
    for i, part in zip((0, 1, 10), (particles[:200], particles[:0], particles[200:])):
        write_snapshot_chunk(folder / f"snap_099.{i}.hdf5", part, total=len(particles))
    return folder


@pytest.fixture
def catalogue(tmp_path):
    """3 groups (sizes 2, 0, 3) over two chunks plus an empty third chunk."""
    folder = tmp_path / "groups_099"
    folder.mkdir()
    rng = np.random.default_rng(1)
    pos = rng.uniform(0, BOX, (5, 3)).astype(np.float32)
    mass = np.array([5.0, 1.0, 8.0, 2.0, 0.5], np.float32)
    mass_type = np.zeros((5, 6), np.float32)
    mass_type[:, 1], mass_type[:, 4] = mass, mass / 100
    grnr = np.array([0, 0, 2, 2, 2], np.int32)
    groups = (np.array([7.0, 0.1, 12.0], np.float32), np.array([2, 0, 3], np.int32),
              np.array([0, -1, 2], np.int32))
    write_catalogue_chunk(folder / "fof_subhalo_tab_099.0.hdf5",
                          [g[:2] for g in groups], (pos[:1], mass[:1], mass_type[:1], grnr[:1]))
    write_catalogue_chunk(folder / "fof_subhalo_tab_099.1.hdf5",
                          [g[2:] for g in groups], (pos[1:], mass[1:], mass_type[1:], grnr[1:]))
    write_catalogue_chunk(folder / "fof_subhalo_tab_099.2.hdf5")
    return folder, pos, mass, mass_type


def test_snapshot_files_sorted_by_chunk_number(snapdir, tmp_path):
    names = [os.path.basename(f) for f in snapshot_files(snapdir)]
    assert names == ["snap_099.0.hdf5", "snap_099.1.hdf5", "snap_099.10.hdf5"]
    assert snapshot_files(snapdir / "snap_099.1.hdf5") == [str(snapdir / "snap_099.1.hdf5")]
    with pytest.raises(UserInputError, match="found none"):
        snapshot_files(snapdir.parent)
    for name in ("snap_099.0.hdf5", "snap_099.1.partial.hdf5"):  # the second cut by a kill
        (tmp_path / name).write_bytes(b"")
    assert snapshot_files(tmp_path) == [str(tmp_path / "snap_099.0.hdf5")]


def test_header_and_positions_streamed_over_chunks_and_slices(snapdir, particles):
    header = read_header(snapdir)
    assert header["BoxSize"] == BOX and header["NumPart_Total"][1] == 500
    pieces = list(iter_particle_positions(snapdir, chunk_size=64))
    assert max(len(p) for p in pieces) == 64 and len(pieces) == 4 + 5  # 200 + 300 rows
    np.testing.assert_array_equal(np.concatenate(pieces), particles)


def test_catalogue_readers_units_and_centrals(catalogue):
    folder, pos, mass, mass_type = catalogue
    groups = read_groups(folder)
    np.testing.assert_allclose(groups.mass, np.array([7.0, 0.1, 12.0]) * 1e10, rtol=1e-6)
    np.testing.assert_array_equal(groups.first_subhalo, [0, -1, 2])
    subhalos = read_subhalos(folder)
    np.testing.assert_array_equal(subhalos.positions, pos.astype(np.float64))
    np.testing.assert_allclose(subhalos.mass, mass * 1e10, rtol=1e-6)
    np.testing.assert_allclose(subhalos.stellar_mass, mass * 1e8, rtol=1e-6)
    np.testing.assert_array_equal(subhalos.is_central, [True, False, True, False, False])
    np.testing.assert_allclose(subhalos.host_mass, np.array([7, 7, 12, 12, 12]) * 1e10,
                               rtol=1e-6)
    assert subhalos.box_size == BOX


def test_every_grid_conserves_the_total_mass(snapdir, catalogue):
    grid = dark_matter_grid(snapdir, N)
    assert grid.shape == (N,) * 3 and grid.dtype == np.float32
    np.testing.assert_allclose(grid.sum(dtype=np.float64), 500 * PARTICLE_MASS * 1e10, rtol=1e-5)
    subhalos = read_subhalos(catalogue[0])
    np.testing.assert_allclose(subhalo_mass_grid(subhalos, N).sum(dtype=np.float64),
                               catalogue[2].sum() * 1e10, rtol=1e-5)
    np.testing.assert_allclose(stellar_mass_grid(subhalos, 8).sum(dtype=np.float64),
                               catalogue[2].sum() * 1e8, rtol=1e-5)


def test_whole_grid_is_the_periodic_cic_of_the_particles(particles):
    expected = mass_assignment(particles / 1000, N, BOX / 1000, "CIC")  # Mpc/h, Pylians CIC
    got = cic_mass_grid([(particles, 1.0)], BOX, N)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_particle_on_a_voxel_corner_lands_in_one_voxel():
    corner = np.array([[3, 5, 15]]) * BOX / N
    grid = cic_mass_grid([(corner, 2.0)], BOX, N)
    assert np.count_nonzero(grid) == 1 and grid[3, 5, 15] == 2.0
    block = cic_mass_grid([(corner, 2.0)], BOX, N, region=((3, 4), (0, N), (14, 16)))
    assert np.count_nonzero(block) == 1 and block[0, 5, 1] == 2.0


@pytest.mark.parametrize("region", [((2, 9), (0, N), (5, 15)),   # one axis whole (periodic)
                                    ((0, 5), (11, 16), (3, 4)),  # blocks at both faces
                                    ((4, 12), (4, 12), (4, 12))])  # interior cube
def test_region_equals_the_block_of_the_whole_grid(particles, region):
    masses = np.random.default_rng(2).uniform(0.5, 2.0, len(particles))
    whole = cic_mass_grid([(particles, masses)], BOX, N)
    block = cic_mass_grid([(particles, masses)], BOX, N, region=region)
    (x0, x1), (y0, y1), (z0, z1) = region
    assert block.shape == (x1 - x0, y1 - y0, z1 - z0)
    np.testing.assert_allclose(block, whole[x0:x1, y0:y1, z0:z1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(block.sum(dtype=np.float64),
                               whole[x0:x1, y0:y1, z0:z1].sum(dtype=np.float64), rtol=1e-6)


def test_streamed_in_chunks_equals_single_shot(snapdir, particles):
    single = cic_mass_grid([(particles, PARTICLE_MASS * 1e10)], BOX, N)
    streamed = dark_matter_grid(snapdir, N, chunk_size=37)
    np.testing.assert_allclose(streamed, single, rtol=1e-5)
    batched = cic_mass_grid(((p, 1.0) for p in np.array_split(particles, 9)), BOX, N,
                            region=((1, 7), (2, 15), (0, 16)), batch_size=60)
    np.testing.assert_allclose(batched * PARTICLE_MASS * 1e10, single[1:7, 2:15], rtol=1e-5)


def test_bad_region_is_refused(particles):
    with pytest.raises(ValueError, match="region"):
        cic_mass_grid([(particles, 1.0)], BOX, N, region=((0, 17), (0, 4), (0, 4)))


def test_missing_dataset_names_file_and_dataset(tmp_path):
    path = tmp_path / "snap_099.0.hdf5"
    write_snapshot_chunk(path, np.zeros((0, 3)))
    with h5py.File(path, "a") as handle:
        handle["Header"].attrs["NumPart_ThisFile"] = np.array([0, 4, 0, 0, 0, 0], np.int32)
    with pytest.raises(UserInputError, match="snap_099.0.hdf5.*PartType1/Coordinates"):
        list(iter_particle_positions(path))
    with h5py.File(path, "a") as handle:
        del handle["Header"].attrs["MassTable"]
    with pytest.raises(UserInputError, match="MassTable"):
        dark_matter_grid(path, 4)


def test_box_size_in_mpc_is_refused(tmp_path, particles):
    path = tmp_path / "snap_099.0.hdf5"
    write_snapshot_chunk(path, particles, box=BOX / 1000)
    with pytest.raises(UserInputError, match=r"snap_099.0.hdf5.*Mpc/h.*ckpc/h"):
        dark_matter_grid(path, 4)
    catalogue = tmp_path / "fof_subhalo_tab_099.0.hdf5"
    write_catalogue_chunk(catalogue, ([1.0], [1], [0]),
                          ([[1, 2, 2000.0]], [1.0], [[0, 1.0, 0, 0, 0, 0]], [0]))
    with pytest.raises(UserInputError, match="SubhaloPos.*ckpc/h"):
        read_subhalos(catalogue)


def test_empty_catalogue_gives_empty_grids(tmp_path):
    path = tmp_path / "fof_subhalo_tab_099.0.hdf5"
    write_catalogue_chunk(path)
    subhalos = read_subhalos(path)
    assert subhalos.positions.shape == (0, 3) and subhalos.mass_type.shape == (0, 6)
    grid = stellar_mass_grid(subhalos, 4)
    assert grid.shape == (4, 4, 4) and not grid.any()


def test_log_mass_and_standardisation_round_trip():
    mass = np.array([0.0, 9.0, 99.0, 1e12])
    np.testing.assert_allclose(log_mass(mass), [0.0, 1.0, 2.0, 12.0], atol=1e-12)
    np.testing.assert_allclose(inverse_log_mass(log_mass(mass)), mass, rtol=1e-12)
    mean, std = STANDARDISATION["stellar"]
    np.testing.assert_allclose(standardise([mean, mean + 2 * std], "stellar"), [0.0, 2.0])
    x = np.random.default_rng(3).normal(5.0, 3.0, 1000)
    for kwargs in ({"field": "dark_matter"}, {"stats": field_statistics(x)}):
        np.testing.assert_allclose(destandardise(standardise(x, **kwargs), **kwargs), x)
    np.testing.assert_allclose(field_statistics(x), (x.mean(), x.std()))
    z = standardise(x, stats=field_statistics(x))
    np.testing.assert_allclose((z.mean(), z.std()), (0.0, 1.0), atol=1e-12)
    with pytest.raises(ValueError, match="field"):
        standardise(x, "gas")


@pytest.mark.parametrize("name", ["field.npy", "field.h5"])
def test_field_files_round_trip_and_refuse_to_overwrite(tmp_path, name):
    path = tmp_path / name
    field = np.random.default_rng(4).random((5, 6, 7)).astype(np.float32)
    save_field(path, field)
    lazy = load_field(path)
    np.testing.assert_array_equal(lazy[1:3, :, 2], field[1:3, :, 2])
    del lazy  # closes an HDF5 file
    np.testing.assert_array_equal(load_field(path, mmap=False), field)
    with pytest.raises(UserInputError, match="refusing to overwrite"):
        save_field(path, field)
    save_field(path, 2 * field, overwrite=True)
    np.testing.assert_array_equal(load_field(path, mmap=False), 2 * field)


def test_unknown_field_extension_is_refused(tmp_path):
    with pytest.raises(UserInputError, match=".npy"):
        save_field(tmp_path / "field.txt", np.zeros(3))
