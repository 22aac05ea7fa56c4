"""CAMELS multifield (CMD) reader on small files in the real layout, scaling, split, augmentation
and the streamed tf.data pipeline."""
import numpy as np
import pytest

from tfastro.core.errors import UserInputError
from tfastro.multifield.io import (CMD_FIELDS, LOG10_RANGES, PARAM_NAMES, PARAM_RANGES,
                                   denormalise_maps, denormalise_params, map_indices, maps_path,
                                   normalise_maps, normalise_params, open_cmd, params_path,
                                   split_simulations)
from tfastro.multifield.pipeline import augment_maps, cmd_dataset

N_SIMS, R = 3, 16
N_MAPS = 15 * N_SIMS


def _planted_log10(n_maps=N_MAPS, size=R):
    """log10 maps ``(n, R, R, 3)``: channel c of map i is lo_c + 0.01 (i + 1) + an asymmetric
    ramp below 1e-4, so the map index can be read back from any permutation of its pixels."""
    lo = np.array([LOG10_RANGES[f][0] for f in CMD_FIELDS])
    ramp = np.arange(size * size).reshape(size, size) / (size * size) * 1e-4
    index = 0.01 * (np.arange(n_maps) + 1.0)
    return lo + (index[:, None, None] + ramp)[..., None] + np.zeros(3)


def _params(n_sims=N_SIMS):
    """Row s: Omega_m = 0.1 + 0.1 s, sigma_8 = 0.6 + 0.05 s, the A's fiducial."""
    s = np.arange(n_sims, dtype=np.float64)
    return np.stack([0.1 + 0.1 * s, 0.6 + 0.05 * s] + [np.ones(n_sims)] * 4, axis=1)


def _write(root, maps=None, params=None, suite="IllustrisTNG", set_name="LH", fields=CMD_FIELDS):
    """Write maps ``(N, R, R, C)`` and params in the CMD layout."""
    maps = (10.0 ** _planted_log10()).astype(np.float32) if maps is None else maps
    for c, field in enumerate(fields):
        np.save(maps_path(root, field, suite, set_name), maps[..., c])
    np.savetxt(params_path(root, suite, set_name), _params() if params is None else params)
    return maps


@pytest.fixture
def cmd_dir(tmp_path):
    maps = _write(tmp_path)
    return tmp_path, maps


def test_paths_follow_the_real_names():
    assert maps_path("d", "HI") == "d/Maps_HI_IllustrisTNG_LH_z=0.00.npy"
    assert maps_path("d", "Mgas", "SIMBA", "CV") == "d/Maps_Mgas_SIMBA_CV_z=0.00.npy"
    assert params_path("d", "IllustrisTNG", "1P") == "d/params_1P_IllustrisTNG.txt"


def test_reads_back_exact_maps_and_parameters(cmd_dir):
    root, maps = cmd_dir
    cmd = open_cmd(root)
    assert (cmd.num_maps, cmd.resolution, cmd.num_simulations) == (N_MAPS, R, N_SIMS)
    assert isinstance(cmd.maps["HI"], np.memmap)
    indices = [44, 3, 17, 3]  # unsorted, repeated
    got = cmd.read(indices)
    assert got.dtype == np.float32 and got.shape == (4, R, R, 3)
    np.testing.assert_array_equal(got, maps[indices])
    np.testing.assert_array_equal(cmd.simulation_of(indices), [2, 0, 1, 0])
    theta = cmd.parameters(indices)
    np.testing.assert_allclose(theta, [[0.3, 0.7], [0.1, 0.6], [0.2, 0.65], [0.1, 0.6]])
    np.testing.assert_allclose(cmd.parameters([16], ("A_SN1", "sigma_8")), [[1.0, 0.65]])
    # A subset of fields, in the order asked for.
    two = open_cmd(root, fields=("B", "Mgas"))
    np.testing.assert_array_equal(two.read([5]), maps[[5]][..., [2, 0]])
    with pytest.raises(ValueError, match="map indices in"):
        cmd.read([N_MAPS])
    with pytest.raises(UserInputError, match="Omega_b"):
        cmd.parameters([0], ("Omega_b",))


def test_bad_map_files_name_the_file(tmp_path):
    _write(tmp_path)
    hi = maps_path(tmp_path, "HI")
    np.save(hi, np.ones((N_MAPS, R), np.float32))
    with pytest.raises(UserInputError, match=r"Maps_HI.*\(N, R, R\)"):
        open_cmd(tmp_path)
    np.save(hi, np.ones((N_MAPS, R, R), np.int32))
    with pytest.raises(UserInputError, match=r"Maps_HI.*float"):
        open_cmd(tmp_path)
    np.save(hi, np.ones((N_MAPS, 8, 8), np.float32))
    with pytest.raises(UserInputError, match=r"Maps_HI.*differs.*Maps_Mgas"):
        open_cmd(tmp_path)
    np.save(hi, np.ones((N_MAPS - 15, R, R), np.float32))
    with pytest.raises(UserInputError, match=r"Maps_HI.*differs"):
        open_cmd(tmp_path)
    with open(hi, "w") as f:
        f.write("not numpy")
    with pytest.raises(UserInputError, match=r"Maps_HI.*\.npy"):
        open_cmd(tmp_path)


def test_missing_field_file(tmp_path):
    _write(tmp_path, suite="SIMBA", fields=("Mgas", "HI"))
    assert open_cmd(tmp_path, suite="SIMBA", fields=("Mgas", "HI")).num_maps == N_MAPS
    with pytest.raises(UserInputError, match=r"Maps_B_SIMBA.*not found.*only for suite "
                                             "IllustrisTNG"):
        open_cmd(tmp_path, suite="SIMBA")
    with pytest.raises(UserInputError, match=r"Maps_Mgas_IllustrisTNG_LH.*not found"):
        open_cmd(tmp_path)
    with pytest.raises(UserInputError, match="fields=Mtot"):
        open_cmd(tmp_path, suite="SIMBA", fields=("Mtot",))


@pytest.mark.parametrize("params,message", [
    (_params(N_SIMS - 1), r"2 rows.*at least 3"),
    (_params()[:, :5], r"expected 6 columns.*got 5"),
    (np.where(np.arange(6) == 1, np.nan, _params()), r"row 0 .*NaN"),
])
def test_bad_parameter_files_name_the_file(tmp_path, params, message):
    _write(tmp_path, params=params)
    with pytest.raises(UserInputError, match="params_LH_IllustrisTNG.txt: " + message):
        open_cmd(tmp_path)


def test_missing_parameter_file(tmp_path):
    _write(tmp_path)
    (tmp_path / "params_LH_IllustrisTNG.txt").unlink()
    with pytest.raises(UserInputError, match="params_LH_IllustrisTNG.txt: parameter file not"):
        open_cmd(tmp_path)


def test_non_finite_map_found_when_read_or_scanned(tmp_path):
    maps = (10.0 ** _planted_log10()).astype(np.float32)
    maps[20, 3, 4, 2] = np.inf
    maps[31, 0, 0, 2] = np.nan
    _write(tmp_path, maps=maps)
    cmd = open_cmd(tmp_path)  # the maps' values are not scanned on opening
    np.testing.assert_array_equal(cmd.read([0, 19, 21]), maps[[0, 19, 21]])
    with pytest.raises(UserInputError, match=r"Maps_B_IllustrisTNG_LH_z=0.00.npy: map 31 "):
        cmd.read([1, 31])
    with pytest.raises(UserInputError, match=r"Maps_B_IllustrisTNG_LH_z=0.00.npy: map 20 "):
        cmd.check_finite(chunk=7)


def test_map_scaling_is_exactly_invertible_and_maps_the_ranges_to_unit():
    rng = np.random.default_rng(0)
    lo, hi = np.array([LOG10_RANGES[f] for f in CMD_FIELDS]).T
    log_maps = rng.uniform(lo - 1, hi + 1, size=(5, 8, 8, 3))  # also outside: no clipping
    maps = 10.0 ** log_maps
    x = normalise_maps(maps, CMD_FIELDS)
    np.testing.assert_allclose(x, 2 * (log_maps - lo) / (hi - lo) - 1, atol=1e-12)
    np.testing.assert_allclose(denormalise_maps(x, CMD_FIELDS), maps, rtol=1e-12)
    x32 = normalise_maps(maps.astype(np.float32), CMD_FIELDS)
    assert x32.dtype == np.float32
    np.testing.assert_allclose(denormalise_maps(x32, CMD_FIELDS), maps, rtol=1e-5)
    edges = 10.0 ** np.stack([lo, hi, (lo + hi) / 2])
    np.testing.assert_allclose(normalise_maps(edges, CMD_FIELDS), [[-1] * 3, [1] * 3, [0] * 3],
                               atol=1e-12)
    # Non-positive values are floored to 10^lo; a channel subset uses its own ranges.
    np.testing.assert_allclose(normalise_maps([[0.0, -1.0]], ("HI", "B")), [[-1.0, -1.0]])
    np.testing.assert_allclose(normalise_maps([[1e-3]], ("B",)), [[1.0]])
    with pytest.raises(ValueError, match="3 channels"):
        normalise_maps(maps, ("Mgas", "HI"))


def test_parameter_scaling():
    low = [PARAM_RANGES[n].low for n in PARAM_NAMES]
    high = [PARAM_RANGES[n].high for n in PARAM_NAMES]
    fiducial = [0.3, 0.8, 1.0, 1.0, 1.0, 1.0]  # the middle of every range, in log for the A's
    np.testing.assert_allclose(normalise_params([low, high, fiducial], PARAM_NAMES),
                               [[-1] * 6, [1] * 6, [0] * 6], atol=1e-12)
    theta = np.array([[0.15, 0.95], [0.42, 0.61]])
    np.testing.assert_allclose(normalise_params(theta), [[-0.75, 0.75], [0.6, -0.95]])
    np.testing.assert_allclose(denormalise_params(normalise_params(theta)), theta, rtol=1e-14)
    a = np.array([[0.5, 2.0], [3.0, 0.6]])
    np.testing.assert_allclose(normalise_params(a, ("A_SN1", "A_AGN2")),
                               [[-0.5, 1.0],
                                [np.log10(3) / np.log10(4), np.log10(0.6) / np.log10(2)]])


def test_split_is_by_simulation_disjoint_complete_and_seeded():
    split = split_simulations(1000, seed=3)
    assert [len(split[k]) for k in ("train", "validation", "test")] == [800, 100, 100]
    together = np.concatenate(list(split.values()))
    np.testing.assert_array_equal(np.sort(together), np.arange(1000))
    again = split_simulations(1000, seed=3)
    assert all(np.array_equal(split[k], again[k]) for k in split)
    assert not np.array_equal(split["test"], split_simulations(1000, seed=4)["test"])
    # Maps follow their simulation: no simulation has maps in two sets.
    maps = {k: map_indices(v) for k, v in split.items()}
    assert sum(len(m) for m in maps.values()) == 15000
    for k, m in maps.items():
        assert set(np.unique(m // 15)) == set(split[k])
    np.testing.assert_array_equal(map_indices([2, 0]), list(range(30, 45)) + list(range(15)))
    np.testing.assert_array_equal(map_indices([1, 2], num_maps=40), np.arange(15, 40))
    # Small sets: every non-empty fraction still gets a simulation.
    small = split_simulations(3)
    assert sorted(len(v) for v in small.values()) == [1, 1, 1]
    assert len(split_simulations(10, (1.0, 0.0, 0.0))["train"]) == 10
    with pytest.raises(UserInputError, match="fractions"):
        split_simulations(10, (0.8, 0.3, 0.1))
    with pytest.raises(UserInputError, match="num_simulations=2"):
        split_simulations(2)


def _dihedral(a):
    """The 8 symmetries of a square array (numpy reference): rotations of a and of a^T."""
    return [np.rot90(b, k) for b in (a, a.T) for k in range(4)]


def test_augmentation_reaches_every_symmetry_and_transforms_channels_alike():
    size = 8
    base = np.arange(size * size, dtype=np.float32).reshape(size, size)
    x = np.stack([base, base + 1000, base + 2000], axis=-1)  # asymmetric, distinct values
    candidates = [np.roll(d, (i, j), axis=(0, 1)) for d in _dihedral(base)
                  for i in range(size) for j in range(size)]
    assert len({c.tobytes() for c in candidates}) == 8 * size * size  # all distinct
    out = augment_maps(np.repeat(x[None], 128, axis=0), [7, 1]).numpy()
    found = []
    for m in out:
        np.testing.assert_array_equal(m[..., 1], m[..., 0] + 1000)
        np.testing.assert_array_equal(m[..., 2], m[..., 0] + 2000)
        np.testing.assert_array_equal(np.sort(m[..., 0], axis=None), base.ravel())
        matches = [n for n, c in enumerate(candidates) if np.array_equal(m[..., 0], c)]
        assert len(matches) == 1
        found.append(divmod(matches[0], size * size))
    dihedral, shift = zip(*found)
    assert set(dihedral) == set(range(8))
    assert len(set(shift)) > 32  # periodic shifts spread over the 64 offsets
    np.testing.assert_array_equal(augment_maps(x, [7, 1]).numpy(),
                                  augment_maps(x, [7, 1]).numpy())
    singles = {augment_maps(x, [s, 0]).numpy().tobytes() for s in range(10)}
    assert len(singles) > 5


def test_dataset_streams_only_the_given_maps_with_their_parameters(cmd_dir):
    root, maps = cmd_dir
    cmd = open_cmd(root)
    indices = map_indices([0, 2])
    planted = normalise_maps(maps, CMD_FIELDS)
    ds = cmd_dataset(cmd, indices, batch_size=4, seed=5)
    seen, first = [], []
    for x, theta in ds.take(12):  # 48 maps: past one epoch of 30
        first.append(x.numpy())
        assert x.shape == (4, R, R, 3) and x.dtype.name == "float32"
        assert theta.shape == (4, 2) and theta.dtype.name == "float32"
        for m, t in zip(x.numpy(), theta.numpy()):
            # The map index is planted in the pixel values (channel 0: lo + 0.01 (i + 1) + ramp).
            i = int(np.rint(((m[..., 0].min() + 1) / 2 * 8.0) / 0.01)) - 1
            seen.append(i)
            np.testing.assert_array_equal(np.sort(m, axis=None),
                                          np.sort(planted[i], axis=None))
            np.testing.assert_allclose(t, normalise_params(_params()[i // 15, :2]), atol=1e-6)
    assert set(seen) <= set(indices) and set(seen[:30]) == set(indices)
    # Reproducible from the seed, and resumable after a given number of batches.
    again = [x.numpy() for x, _ in cmd_dataset(cmd, indices, batch_size=4, seed=5).take(3)]
    np.testing.assert_array_equal(again, first[:3])
    resumed = cmd_dataset(cmd, indices, batch_size=4, seed=5, start_batch=2)
    np.testing.assert_array_equal(next(iter(resumed))[0].numpy(), first[2])


def test_dataset_one_ordered_epoch_without_augmentation(cmd_dir):
    root, maps = cmd_dir
    cmd = open_cmd(root, fields=("HI", "B"))
    indices = map_indices([1])
    ds = cmd_dataset(cmd, indices, 4, param_names=("sigma_8", "A_AGN1"), augment=False,
                     shuffle=False, repeat=False, drop_remainder=False)
    x = np.concatenate([b[0].numpy() for b in ds])
    theta = np.concatenate([b[1].numpy() for b in ds])
    np.testing.assert_allclose(x, normalise_maps(maps[indices][..., 1:], ("HI", "B")),
                               atol=1e-6)
    np.testing.assert_allclose(theta, np.tile([[-0.75, 0.0]], (15, 1)), atol=1e-6)
    with pytest.raises(UserInputError, match="batch_size=16"):
        cmd_dataset(cmd, indices, 16, repeat=False)
