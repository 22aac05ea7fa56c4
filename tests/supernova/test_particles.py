"""SPH snapshots -> density cubes -> clips: kernels, mass conservation, a uniform lattice,
units of the file, and synthetic shells sampled as particles, end to end."""
import json
import os

import h5py
import numpy as np
import pytest
from scipy import integrate, ndimage

from tfastro.core.errors import UserInputError
from tfastro.supernova.io import load_sn_npz
from tfastro.supernova.particles import (KERNELS, MSUN_G, GasParticles, deposit_density,
                                         deposit_series, kernel, main, read_snapshot,
                                         write_snapshot)
from tfastro.supernova.synthetic import KYR_S, PC_CM, SNParams, blast_density, sample_particles


def gas(positions, support, box=8.0, masses=None):
    positions = np.atleast_2d(np.asarray(positions, dtype=np.float64))
    n = len(positions)
    return GasParticles(positions=positions % box,
                        masses=np.ones(n) if masses is None else np.asarray(masses, float),
                        support=np.broadcast_to(np.asarray(support, float), (n,)).copy(),
                        box_size=box, time=0.0, units="code")


@pytest.mark.parametrize("name", KERNELS)
def test_kernels_are_normalised_in_3d(name):
    total, _ = integrate.quad(lambda q: 4 * np.pi * q**2 * kernel(q, name), 0, 1)
    assert total == pytest.approx(1.0, rel=1e-10)
    assert kernel(1.0, name) == 0 and kernel(1.5, name) == 0
    assert kernel(0.0, name) > kernel(0.5, name) > kernel(0.9, name) > 0


def test_unknown_kernel_is_refused():
    with pytest.raises(UserInputError, match="kernel='gauss'"):
        deposit_density(gas([[1, 1, 1]], 1.0), 8, kernel_name="gauss")


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("support", [0.3, 1.3, 2.6])  # in cells: below one cell, and above
def test_uniform_lattice_deposits_a_uniform_cube(name, support):
    # Two particles per cell and axis, shifted off the cell centres; the box is the cube.
    n, box = 8, 8.0
    axis = (np.arange(2 * n) + 0.37) * box / (2 * n)
    lattice = np.stack(np.meshgrid(axis, axis + 0.11, axis + 0.23, indexing="ij"), -1)
    particles = gas(lattice.reshape(-1, 3), support, box, masses=np.full(8 * n**3, 0.5))
    cube = deposit_density(particles, n, kernel_name=name)
    np.testing.assert_allclose(cube, 0.5 * 8 * n**3 / box**3, rtol=1e-12)


@pytest.mark.parametrize("name", KERNELS)
def test_mass_is_conserved_for_any_smoothing_length(rng, name):
    box, n = 10.0, 16
    count = 3000
    positions = rng.random((count, 3)) * box
    particles = gas(positions, rng.uniform(0.05, 3.0, count) * box / n, box,
                    masses=rng.uniform(0.5, 2.0, count))
    whole = deposit_density(particles, n, kernel_name=name)
    assert whole.sum() * (box / n) ** 3 == pytest.approx(particles.masses.sum(), rel=1e-12)
    # A sub-cube keeps exactly the particles whose support lies inside it (away from its faces).
    centre = np.array([2.0, 9.0, 5.0])  # across the box faces x = 0 and y = 10
    size, cells = 6.0, 12
    sub = deposit_density(particles, cells, size=size, centre=centre, kernel_name=name)
    offset = (positions - centre + box / 2) % box - box / 2
    inner = (np.abs(offset) + particles.support[:, None] < size / 2 - size / cells).all(axis=1)
    outer = (np.abs(offset) - particles.support[:, None] > size / 2 + size / cells).any(axis=1)
    mass = sub.sum() * (size / cells) ** 3
    assert particles.masses[inner].sum() <= mass <= particles.masses[~outer].sum()


def test_deposit_is_periodic(rng):
    # Shifting every particle by whole cells across the box faces rolls the cube.
    box, n = 8.0, 8
    positions = rng.random((200, 3)) * box
    support = rng.uniform(0.2, 2.5, 200)
    cube = deposit_density(gas(positions, support, box), n)
    shifted = deposit_density(gas(positions + [3.0, -5.0, 7.0], support, box), n)
    np.testing.assert_allclose(shifted, np.roll(cube, (3, -5, 7), axis=(0, 1, 2)), rtol=1e-10,
                               atol=1e-12)


def test_a_sub_cube_is_the_same_cells_of_the_whole_box(rng):
    # cells aligned with the whole box's; the sub-cube crosses the faces x = 0 and y = 8
    box = 8.0
    particles = gas(rng.random((500, 3)) * box, rng.uniform(0.1, 1.6, 500), box)
    whole = deposit_density(particles, 16)
    sub = deposit_density(particles, 8, size=4.0, centre=(1.0, 7.0, 4.0))
    cells = np.ix_(np.arange(-2, 6) % 16, np.arange(10, 18) % 16, np.arange(4, 12))
    np.testing.assert_allclose(sub, whole[cells], rtol=1e-12, atol=1e-12)


def test_cube_around_a_particle_holds_its_kernel():
    # One particle with a support of 3 cells at a cell centre: the cube is W / sum W.
    particles = gas([[4.25, 4.25, 4.25]], 1.5, box=8.0)
    cube = deposit_density(particles, 16, kernel_name="wendland")
    d = (np.indices((16,) * 3) + 0.5) * 0.5 - 4.25
    w = kernel(np.sqrt((d**2).sum(axis=0)) / 1.5, "wendland")
    np.testing.assert_allclose(cube * 0.5**3, w / w.sum(), rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- reading snapshots

def write_h5(path, header, datasets):
    """An HDF5 snapshot: Header attributes and PartType0 datasets {name: (values, attrs)}."""
    with h5py.File(path, "w") as f:
        f.create_group("Header").attrs.update(header)
        group = f.create_group("PartType0")
        for name, (values, attrs) in datasets.items():
            group[name] = values
            group[name].attrs.update(attrs)
    return path


def test_snapshot_round_trip_in_pc_msun_kyr(tmp_path, rng):
    particles = gas(rng.random((50, 3)) * 30.0, rng.uniform(1, 2, 50), box=30.0,
                    masses=rng.uniform(1, 2, 50))
    particles.time, particles.ids, particles.densities = 12.5, np.arange(50), rng.random(50)
    back = read_snapshot(write_snapshot(tmp_path / "s.hdf5", particles))
    assert back.units == "pc, Msun, kyr" and back.time == pytest.approx(12.5)
    assert back.box_size == pytest.approx(30.0)
    for name in ("positions", "masses", "support", "densities", "ids"):
        np.testing.assert_allclose(getattr(back, name), getattr(particles, name), rtol=1e-12)
    with pytest.raises(UserInputError, match="exists"):
        write_snapshot(tmp_path / "s.hdf5", particles)


def test_units_from_dataset_attributes(tmp_path):
    # Illustris-style: comoving kpc/h and 1e10 Msun/h at redshift 1 (a = 1/2), h = 0.5.
    h, a = 0.5, 0.5
    length = {"to_cgs": 1e3 * PC_CM, "a_scaling": 1.0, "h_scaling": -1.0}
    mass = {"to_cgs": 1e10 * MSUN_G, "a_scaling": 0.0, "h_scaling": -1.0}
    path = write_h5(tmp_path / "tng.hdf5", {"BoxSize": 4.0, "Time": a, "Redshift": 1.0,
                                            "HubbleParam": h},
                    {"Coordinates": (np.array([[1.0, 2.0, 3.0]]), length),
                     "Masses": (np.array([2.0]), mass),
                     "SmoothingLength": (np.array([0.5]), length)})
    p = read_snapshot(path)
    kpc = 1e3 * a / h
    np.testing.assert_allclose(p.positions, [[1.0 * kpc, 2.0 * kpc, 3.0 * kpc]], rtol=1e-12)
    assert p.box_size == pytest.approx(4.0 * kpc)
    assert p.support[0] == pytest.approx(0.5 * kpc)
    assert p.masses[0] == pytest.approx(2.0e10 / h)


def test_units_from_the_header_and_support_from_density(tmp_path):
    # kpc, 1e10 Msun, km/s (time unit 977.8 Myr); no SmoothingLength: H from 32 neighbours.
    header = {"BoxSize": 2.0, "Time": 0.01, "UnitLength_in_cm": 1e3 * PC_CM,
              "UnitMass_in_g": 1e10 * MSUN_G, "UnitVelocity_in_cm_per_s": 1e5}
    path = write_h5(tmp_path / "gizmo.hdf5", header,
                    {"Coordinates": (np.array([[0.5, 0.5, 2.5]]), {}),
                     "Masses": (np.array([1e-9]), {}), "Density": (np.array([2e-6]), {})})
    p = read_snapshot(path, neighbours=32)
    np.testing.assert_allclose(p.positions, [[500.0, 500.0, 500.0]])  # wrapped into the box
    assert p.masses[0] == pytest.approx(10.0)
    assert p.densities[0] == pytest.approx(2e-6 * 1e10 / 1e9)  # Msun pc^-3
    assert p.support[0] == pytest.approx((3 * 32 * 10.0 / (4 * np.pi * 2e-5)) ** (1 / 3))
    assert p.time == pytest.approx(0.01 * 1e3 * PC_CM / 1e5 / KYR_S)
    assert read_snapshot(path, neighbours=64).support[0] == pytest.approx(
        p.support[0] * 2 ** (1 / 3))
    with pytest.raises(UserInputError, match="gizmo.hdf5: stores no SmoothingLength; "
                       "support_factor=2"):
        read_snapshot(path, support_factor=2)


def test_code_units_and_support_factor(tmp_path):
    path = write_h5(tmp_path / "code.hdf5", {"BoxSize": 1.0, "Time": 3.0},
                    {"Coordinates": (np.array([[0.1, 0.2, 0.3]]), {}),
                     "Masses": (np.array([1.0]), {}), "SmoothingLength": (np.array([0.1]), {})})
    p = read_snapshot(path, support_factor=1.8)
    assert "code units" in p.units and p.time == 3.0
    assert p.support[0] == pytest.approx(0.18)
    with pytest.raises(UserInputError, match="code.hdf5: stores SmoothingLength; neighbours=40"):
        read_snapshot(path, neighbours=40)


@pytest.mark.parametrize("header, datasets, message", [
    ({"Time": 0.0}, {"Masses": [1.0], "SmoothingLength": [1.0]}, "BoxSize.*Coordinates"),
    ({"BoxSize": 1.0, "Time": 0.0}, {"Coordinates": [[0.1, 0.1, 0.1]], "Masses": [1.0]},
     "SmoothingLength or PartType0/Density"),
    ({"BoxSize": 1.0, "Time": 0.0}, {"Coordinates": [0.1, 0.1, 0.1], "Masses": [1.0],
                                     "SmoothingLength": [1.0]}, r"Coordinates must have shape"),
    ({"BoxSize": 1.0, "Time": 0.0}, {"Coordinates": [[0.1, 0.1, 0.1]], "Masses": [1.0, 2.0],
                                     "SmoothingLength": [1.0]}, r"Masses must have shape \(1,\)"),
    ({"BoxSize": 1.0, "Time": 0.0}, {"Coordinates": [[0.1, 0.1, 0.1]], "Masses": [1.0],
                                     "Density": [0.0]}, "Density must be positive"),
])
def test_malformed_snapshots_are_named(tmp_path, header, datasets, message):
    path = write_h5(tmp_path / "bad.hdf5", header,
                    {k: (np.asarray(v), {}) for k, v in datasets.items()})
    with pytest.raises(UserInputError, match=f"bad.hdf5: .*{message}"):
        read_snapshot(path)


def test_missing_and_unreadable_files_are_named(tmp_path):
    with pytest.raises(UserInputError, match="nope.hdf5: no such file"):
        read_snapshot(tmp_path / "nope.hdf5")
    (tmp_path / "text.hdf5").write_text("not hdf5")
    with pytest.raises(UserInputError, match="text.hdf5: not a readable HDF5"):
        read_snapshot(tmp_path / "text.hdf5")


# ---------------------------------------------------------------- synthetic shells, end to end

N, BOX, PER_CELL = 16, 60.0, 8


@pytest.fixture(scope="module")
def shell_snapshots(tmp_path_factory):
    """A uniform-medium blast (Msun pc^-3) at 4 times, sampled as particles, written shuffled."""
    params = SNParams()
    t_kyr = params.frame_times_kyr(4)
    rho0 = params.density_gcm3 * PC_CM**3 / MSUN_G
    density = blast_density(np.ones((N,) * 3), t_kyr, params).astype(np.float64) * rho0
    folder = tmp_path_factory.mktemp("snapshots")
    paths = [write_snapshot(folder / f"snap_{k}.hdf5",
                            sample_particles(density[k], BOX, PER_CELL, seed=k, time=t_kyr[k]))
             for k in (2, 0, 3, 1)]
    return density, t_kyr, [str(p) for p in paths]


@pytest.fixture(scope="module")
def shell_cubes(shell_snapshots):
    """The snapshots deposited with the Wendland C2 kernel: (cubes, times, units)."""
    return deposit_series(shell_snapshots[2], N, kernel_name="wendland")


def test_sampled_shell_deposits_to_its_density_within_the_noise(shell_snapshots, shell_cubes):
    density, t_kyr, paths = shell_snapshots
    cubes, times, units = shell_cubes
    np.testing.assert_allclose(times, t_kyr)
    assert units == "pc, Msun, kyr"
    # The frames' masses are the generating ones to within one particle per cell (stratified).
    particle_mass = density[0].mean() * (BOX / N) ** 3 / PER_CELL
    masses = cubes.sum(axis=(1, 2, 3)) * (BOX / N) ** 3
    generating = density.sum(axis=(1, 2, 3)) * (BOX / N) ** 3
    assert (np.abs(masses - generating) < 4 * particle_mass * np.sqrt(N**3 / 12)).all()
    # Where the density is flat over the kernel, the deposit differs from it by the sampling
    # noise only: as much as two independent samples differ from each other (/ sqrt 2).
    other = deposit_density(sample_particles(density[3], BOX, PER_CELL, seed=99), N,
                            kernel_name="wendland")
    flat = ndimage.maximum_filter(density[3], 5, mode="wrap") <= 1.000001 * ndimage.minimum_filter(
        density[3], 5, mode="wrap")
    assert flat.sum() > 300
    error = (cubes[3] / density[3] - 1)[flat]
    noise = ((cubes[3] - other) / density[3])[flat] / np.sqrt(2)
    assert error.std() < 1.3 * noise.std()
    assert abs(error.mean()) < 4 * noise.std() / np.sqrt(flat.sum())


def test_command_writes_a_clip_in_time_order(shell_snapshots, shell_cubes, tmp_path, capsys):
    density, t_kyr, paths = shell_snapshots
    out = str(tmp_path / "clip.npz")
    assert main(paths + ["--out", out, "--cells", str(N), "--kernel", "wendland",
                         "--input_length", "2"]) == 0
    assert "4 frames" in capsys.readouterr().out
    data = load_sn_npz(out)
    assert data.frames.shape == (4, 1, N, N, N) and data.frames.max() == 1.0
    np.testing.assert_array_equal(data.clips[:, 0], [[0, 2], [2, 2]])
    cubes = shell_cubes[0]
    np.testing.assert_allclose(data.frames[:, 0], cubes / cubes.max(), rtol=1e-6, atol=1e-7)
    meta = data.metadata[0]  # stored beside the frames: times, units and the scale
    np.testing.assert_allclose(meta["times"], np.sort(t_kyr), rtol=1e-6)
    assert meta["units"]["time"] == "kyr" and meta["units"]["length"] == "pc"
    assert meta["normalisation"].kind == "max"
    np.testing.assert_allclose(meta["normalisation"].scale, cubes.max(), rtol=1e-6)
    # the shell grows: the voxel farthest from the centre that changed moves out
    changed = [np.abs(f - data.frames[0, 0]) > 0.1 * data.frames[0, 0] for f in data.frames[1:, 0]]
    assert changed[0].sum() < changed[1].sum() < changed[2].sum()
    # nothing is overwritten unasked; bad input is one line with status 2
    assert main(paths + ["--out", out, "--cells", str(N)]) == 2
    assert "file exists" in capsys.readouterr().err
    assert main(paths + ["--out", str(tmp_path / "b.npz"), "--cells", "8", "--size", "90"]) == 2
    assert "at most the box size 60" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "b.npz")


# ---------------------------------------------------------------- run.py --particle_files

class CopyingModel:
    """Stands in for a trained MIM3D: its forecast is the rest of a known clip."""

    def __init__(self, clip):
        self.clip = clip

    def forecast(self, context, steps):
        n_in = context.shape[1]
        return self.clip[None, n_in:n_in + steps]


def lattice_snapshots(tmp_path, n=8, radius=2.5):
    """Gas on a lattice (2 per cell and axis) of a box of side n, density 1; in the later
    snapshot density 2 within ``radius`` of the box centre (ParticleIDs reversed)."""
    axis = (np.arange(2 * n) + 0.25) / 2
    positions = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    count = len(positions)
    before = gas(positions, 1.0, float(n), masses=np.full(count, 0.125))
    before.ids, before.densities = np.arange(count), np.ones(count)
    inside = np.linalg.norm(positions - n / 2, axis=1) < radius
    later = gas(positions[::-1], 1.0, float(n), masses=np.full(count, 0.125))
    later.time, later.ids, later.densities = 1.0, np.arange(count)[::-1], (1.0 + inside)[::-1]
    return [str(write_snapshot(tmp_path / f"{k}.hdf5", p)) for k, p in
            (("before", before), ("later", later))], inside


def test_forecast_frame_flags_particles_and_writes_scores(tmp_path):
    from tests.supernova.conftest import small_config
    from tfastro.supernova.evaluation import affected_particles
    from tfastro.supernova.task import load_particles, score_particles
    paths, inside = lattice_snapshots(tmp_path)
    # clip of 6 frames, channels last: a ball of density 2 growing by one cell a frame
    d = np.sqrt(((np.indices((8, 8, 8)) + 0.5 - 4.0) ** 2).sum(axis=0))
    clip = np.stack([0.5 + 0.5 * (d < k) for k in range(6)])[..., None].astype(np.float32)
    cfg = small_config(tmp_path, "unused.npz", is_training=False, particle_files=",".join(paths),
                       particle_frame=3)
    snapshots = load_particles(cfg)
    scores = score_particles(CopyingModel(clip), clip, snapshots, cfg, str(tmp_path),
                             log=lambda *a: None)
    flags = np.load(tmp_path / "affected_particles.npy")
    want_flags, want = affected_particles(clip[3, ..., 0], snapshots[0], before=clip[0, ..., 0],
                                          later=snapshots[1])
    np.testing.assert_array_equal(flags, want_flags)
    with open(tmp_path / "particles.json") as f:
        written = json.load(f)
    assert written == scores and written["frame"] == 3 and written["snapshots"] == paths
    for key in ("recall", "precision", "flagged_fraction", "affected"):
        assert written[key] == want[key]
    assert written["affected"] == inside.sum()
    # frame 3's ball (radius 3) covers the changed sphere (2.5): every affected one is found
    assert written["recall"] == 1.0 and written["precision"] < 1.0


@pytest.mark.parametrize("overrides, named", [
    (dict(is_training=True, particle_files="a.hdf5,b.hdf5"), "--particle_files.*is_training"),
    (dict(particle_frame=3), "--particle_frame=3 is read only with --particle_files"),
    (dict(particle_centre="1,2,3"), "--particle_centre='1,2,3' is read only"),
    (dict(particle_files="a.hdf5"), "--particle_files='a.hdf5': expected two"),
    (dict(particle_files="a.hdf5,b.hdf5", particle_frame=1), "--particle_frame=1: must be a "
     "forecast frame, from --input_length=2"),
    (dict(particle_files="a.hdf5,b.hdf5", particle_frame=-7), "--particle_frame=-7"),
    (dict(particle_files="a.hdf5,b.hdf5", particle_centre="1,2"), "--particle_centre='1,2'"),
    (dict(particle_files="a.hdf5,b.hdf5", particle_cube_size=-1.0), "--particle_cube_size"),
])
def test_particle_flags_are_checked(tmp_path, overrides, named):
    from tests.supernova.conftest import small_config
    from tfastro.supernova.config import validate_config
    cfg = small_config(tmp_path, "unused.npz", **{"is_training": False, **overrides})
    with pytest.raises(UserInputError, match=named):
        validate_config(cfg)


@pytest.mark.slow  # trains a checkpoint first: ~30 s on a loaded 2-core machine
def test_evaluation_run_writes_particle_scores(tmp_path, sn_file):
    from tests.supernova.conftest import small_config
    from tfastro.supernova.task import run
    paths, _ = lattice_snapshots(tmp_path)
    cfg = small_config(tmp_path, sn_file, max_iterations=1)
    run(cfg, log=lambda *a: None)
    missing = small_config(tmp_path, sn_file, is_training=False,
                           particle_files=f"{tmp_path / 'none.hdf5'},{paths[1]}")
    with pytest.raises(UserInputError, match="--particle_files: .*none.hdf5: no such file"):
        run(missing, log=lambda *a: None)
    assert not os.path.exists(cfg.gen_frm_dir)
    result = run(small_config(tmp_path, sn_file, is_training=False,
                              particle_files=",".join(paths)), log=lambda *a: None)
    out = os.path.join(cfg.gen_frm_dir, "1")
    with open(os.path.join(out, "particles.json")) as f:
        assert json.load(f) == result["particles"]
    flags = np.load(os.path.join(out, "affected_particles.npy"))
    assert flags.shape == (8 * 8**3,) and flags.sum() == result["particles"]["flagged"]
