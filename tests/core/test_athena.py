"""Athena++ outputs: every variant the writer offers (float32/64/16, prim/cons, meshblock
layouts, no mesh data) assembled against the planted cube; integer codes, ghost zones, refined
meshes and foreign files refused with the reason and the file's name."""
import numpy as np
import pytest

from tfastro.core.athena import (COSMIC_RAY_ENERGY_VARIABLES, DENSITY_VARIABLES, athdf_variables,
                                 first_variable, read_athdf, write_athdf)
from tfastro.core.errors import UserInputError

N = 8


def planted():
    """rho = 1 + x + 10 y + 100 z (distinct in every cell, exact in float16 too: <= 778)."""
    z, y, x = np.meshgrid(np.arange(N), np.arange(N), np.arange(N), indexing="ij")
    return (1.0 + x + 10.0 * y + 100.0 * z).astype(np.float64)


@pytest.mark.parametrize("block", [(8, 8, 8), (2, 2, 2), (8, 2, 4), (1, 4, 8), (4, 8, 1)])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_every_meshblock_layout_and_float_type_assembles_the_mesh(tmp_path, block, dtype):
    rho = planted()
    path = write_athdf(tmp_path / "a.athdf", {"prim": {"rho": rho, "press": 2 * rho}},
                       block=block, dtype=dtype, time=1.25, cycle=7,
                       box=((0.0, 2.0), (-1.0, 1.0), (-4.0, 4.0)), seed=3)
    cubes, info = read_athdf(path)
    assert cubes["rho"].dtype == np.float32
    np.testing.assert_array_equal(cubes["rho"], rho)
    np.testing.assert_array_equal(cubes["press"], 2 * rho)
    assert info == {"time": 1.25, "cycle": 7, "box": (8.0, 2.0, 2.0),
                    "origin": (-4.0, -1.0, 0.0)}


@pytest.mark.parametrize("dataset, density", [("prim", "rho"), ("cons", "dens")])
@pytest.mark.parametrize("cosmic_rays", COSMIC_RAY_ENERGY_VARIABLES)
def test_density_and_cosmic_ray_names_of_prim_and_cons_outputs(tmp_path, dataset, density,
                                                                cosmic_rays):
    rho = planted()
    path = write_athdf(tmp_path / "v.athdf", {dataset: {density: rho, cosmic_rays: rho / 4},
                                              "B": {"Bcc1": rho}}, block=(4, 4, 4))
    names = athdf_variables(path)
    assert names == [density, cosmic_rays, "Bcc1"]
    assert first_variable(path, DENSITY_VARIABLES, names, "density") == density
    assert first_variable(path, COSMIC_RAY_ENERGY_VARIABLES, names, "cr") == cosmic_rays
    cubes, _ = read_athdf(path, [density, cosmic_rays])
    np.testing.assert_array_equal(cubes[cosmic_rays], rho / 4)
    with pytest.raises(UserInputError, match=r"v.athdf: no variable Fc1 or Fc2 for flux; the "
                       f"file has {density}, {cosmic_rays}, Bcc1"):
        first_variable(path, ("Fc1", "Fc2"), names, "flux")


def test_mesh_data_false_is_assembled_from_logical_locations(tmp_path):
    rho = planted()
    path = write_athdf(tmp_path / "m.athdf", {"prim": {"rho": rho}}, block=(2, 4, 8),
                       mesh_data=False, time=3.0)
    cubes, info = read_athdf(path)
    np.testing.assert_array_equal(cubes["rho"], rho)
    assert info["time"] == 3.0 and info["box"] is None and info["origin"] is None


@pytest.mark.parametrize("code", ["u8", "u16", "u32", "u64"])
def test_integer_coded_outputs_are_refused(tmp_path, code):
    path = write_athdf(tmp_path / "i.athdf", {"prim": {"rho": planted()}}, block=(4, 4, 4),
                       data_format=code, vmin=0.0, vmax=1000.0)
    bits = code[1:]
    with pytest.raises(UserInputError, match=rf"^\S*i.athdf: integer-coded output \(dataset "
                       rf"'prim' holds uint{bits} codes, Athena\+\+ data_format=u{bits}\).*"
                       "write it with data_format float32 or float64$"):
        read_athdf(path)
    with pytest.raises(UserInputError, match="integer-coded"):
        athdf_variables(path)


@pytest.mark.parametrize("ghosts, block", [(1, (4, 4, 4)), (2, (8, 2, 4))])
def test_ghost_zones_are_refused_with_the_reason(tmp_path, ghosts, block):
    path = write_athdf(tmp_path / "g.athdf", {"prim": {"rho": planted()}}, block=block,
                       ghost_zones=ghosts)
    with pytest.raises(UserInputError, match=rf"g.athdf: written with ghost_zones=true .* carry "
                       rf"{ghosts} ghost cells on each side, the mesh is 8 x 8 x 8\); write the "
                       "output with ghost_zones=false"):
        read_athdf(path)


def test_ghost_zone_blocks_hold_the_periodic_neighbours(tmp_path):
    """The writer's ghost cells are the neighbouring blocks' cells, as Athena++ fills them."""
    import h5py
    rho = planted()
    path = write_athdf(tmp_path / "g.athdf", {"prim": {"rho": rho}}, block=(4, 4, 4),
                       ghost_zones=1, locations=[(1, 0, 1)] + [(0, 0, 0)] * 7)
    with h5py.File(path) as handle:
        first = handle["prim"][0, 0]
    np.testing.assert_array_equal(first[0, 0, :3], rho[3, 7, 3:6])
    np.testing.assert_array_equal(first[-1, -1, -1], rho[0, 4, 0])


@pytest.mark.parametrize("kwargs, match", [
    ({"levels": [0, 0, 1, 0, 0, 0, 0, 0]}, r"refined mesh \(levels \[0, 1\]\)"),
    ({"locations": [(0, 0, 0)] * 8}, r"8 mesh blocks of 4 x 4 x 4 cells \(x, y, z\) at "
     "LogicalLocations do not tile the 8 x 8 x 8 mesh exactly once"),
])
def test_meshes_that_cannot_be_assembled_are_refused(tmp_path, kwargs, match):
    path = write_athdf(tmp_path / "r.athdf", {"prim": {"rho": planted()}}, block=(4, 4, 4),
                       **kwargs)
    with pytest.raises(UserInputError, match="r.athdf: " + match):
        read_athdf(path)


def test_foreign_files_are_refused_naming_them(tmp_path):
    (tmp_path / "t.athdf").write_text("not hdf5")
    with pytest.raises(UserInputError, match="t.athdf: not an HDF5 file"):
        read_athdf(tmp_path / "t.athdf")
    with pytest.raises(UserInputError, match="u.athdf: no such Athena"):
        read_athdf(tmp_path / "u.athdf")
    import h5py
    with h5py.File(tmp_path / "h.h5", "w") as handle:
        handle["x"] = np.zeros(3)
    with pytest.raises(UserInputError, match="h.h5: missing root attribute 'DatasetNames'"):
        read_athdf(tmp_path / "h.h5")
    path = write_athdf(tmp_path / "a.athdf", {"prim": {"rho": planted()}}, block=(4, 4, 4))
    with pytest.raises(UserInputError, match="a.athdf: no variable Ec; the file has rho"):
        read_athdf(path, ["Ec"])
