"""Turbulence data: Athena++ assembly and FITS conversion against planted cubes, resampling
against analytic modes, each image-pipeline step against its defining property, the buffered
split against a brute-force distance check, and the tf.data flips."""
import warnings

import numpy as np
import pytest
from astropy.io import fits

from tfastro.core.athena import write_athdf as write_athdf_layout
from tfastro.core.errors import UserInputError
from tfastro.turbulence.io import (FIELDS, TURBULENCE_CLASSES, athena_to_fits, class_files,
                                   fits_units, read_athdf, read_fits_cube, resample_cube,
                                   write_fits_cubes)
from tfastro.turbulence.pipeline import (assert_buffered, buffered_split, classification_images,
                                         equalise_histogram, flatten_power, mapping_images,
                                         periodic_shift, project_slices, slice_separation,
                                         tile_image, to_byte_scale, turbulence_dataset)

N_ATH = 8  # Athena test mesh: 8^3 cells in 2 x 4 x 1 blocks of (x 4, y 2, z 8) cells


def _position_cube(n):
    z, y, x = np.meshgrid(np.arange(n), np.arange(n), np.arange(n), indexing="ij")
    return z, y, x


def write_athdf(path, levels=None, with_ec=True, duplicate=False, **variant):
    """A tiny uniform-mesh athdf (blocks of (x 4, y 2, z 8) cells stored shuffled):
    rho = 1 + x + 10 y + 100 z, Ec = 2 rho, Bcc = (1, x, z); ``variant``: the layout writer's
    options (dtype, mesh_data, ...)."""
    z, y, x = _position_cube(N_ATH)
    rho = 1.0 + x + 10.0 * y + 100.0 * z
    prim = {"rho": rho, "press": np.ones_like(rho), "vel1": x, "vel2": y, "vel3": z}
    if with_ec:
        prim["Ec"] = 2.0 * rho
    locations = None
    if duplicate:
        locations = [(i, j, 0) for j in range(4) for i in range(2)]
        locations[1] = locations[0]
    write_athdf_layout(path, {"prim": prim, "B": {"Bcc1": np.ones_like(rho), "Bcc2": x,
                                                  "Bcc3": z}},
                       block=(8, 2, 4), time=2.5, levels=levels, locations=locations, **variant)
    return rho


# --------------------------------------------------------------------------- Athena++ -> FITS

def test_read_athdf_places_blocks_by_logical_location(tmp_path):
    rho = write_athdf(tmp_path / "a.athdf")
    cubes, info = read_athdf(tmp_path / "a.athdf", ["rho", "Bcc2"])
    np.testing.assert_array_equal(cubes["rho"], rho)
    np.testing.assert_array_equal(cubes["Bcc2"], _position_cube(N_ATH)[2])
    assert info["time"] == 2.5 and info["box"] == (1.0, 1.0, 1.0)


def test_athena_to_fits_derives_fields_resamples_and_writes_units(tmp_path):
    rho = write_athdf(tmp_path / "a.athdf")
    out = tmp_path / "a.fits"
    with pytest.warns(UserWarning, match=r"a.athdf: resampling .* from 8\^3 to 4\^3 cells"):
        athena_to_fits(tmp_path / "a.athdf", out, grid=4, header={"SIMCLASS": "cr_diffusion"})
    z, y, x = _position_cube(N_ATH)
    magnetic = 0.5 * (1.0 + x**2 + z**2)

    def block_mean(cube):  # independent: explicit loops over 2^3 blocks
        result = np.empty((4, 4, 4))
        for k, j, i in np.ndindex(4, 4, 4):
            result[k, j, i] = cube[2 * k:2 * k + 2, 2 * j:2 * j + 2, 2 * i:2 * i + 2].mean()
        return result

    np.testing.assert_allclose(read_fits_cube(out, "density"), block_mean(rho), rtol=1e-6)
    np.testing.assert_allclose(read_fits_cube(out, "cr_energy_density"), block_mean(2 * rho),
                               rtol=1e-6)
    np.testing.assert_allclose(read_fits_cube(out, "magnetic_energy_density"),
                               block_mean(magnetic), rtol=1e-6)
    assert fits_units(out, "density") == "code_density"
    assert fits_units(out, "magnetic_energy_density") == "code_energy_density"
    with fits.open(out) as hdus:
        assert [h.header["EXTNAME"] for h in hdus[1:]] == list(FIELDS)
        assert hdus[0].header["SIMCLASS"] == "cr_diffusion" and hdus[0].header["TIME"] == 2.5
        assert hdus[1].header["NATIVE"] == N_ATH and hdus[1].header["RESAMPLE"] == "block"
        assert hdus[1].data.dtype == np.dtype(">f4") and hdus[0].data is None
    with pytest.raises(UserInputError, match="a.fits.*exists"):
        athena_to_fits(tmp_path / "a.athdf", out, grid=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the native grid (the default) is not resampled
        athena_to_fits(tmp_path / "a.athdf", out, fields=["density"], overwrite=True,
                       units={"density": "g cm-3"})
    np.testing.assert_array_equal(read_fits_cube(out, "density"), rho)
    assert fits_units(out, "density") == "g cm-3"


def test_conserved_and_crdiffusion_outputs_give_the_same_fields(tmp_path):
    """A cons file (density "dens") of a crdiffusion run (cosmic-ray energy "ecr"), float64."""
    z, y, x = _position_cube(N_ATH)
    rho = 1.0 + x + 10.0 * y + 100.0 * z
    write_athdf_layout(tmp_path / "c.athdf", {"cons": {"dens": rho, "Etot": rho, "ecr": 3 * rho,
                                                       "zeta": x},
                                              "B": {"Bcc1": x, "Bcc2": y, "Bcc3": z}},
                       block=(4, 4, 4), dtype=np.float64)
    athena_to_fits(tmp_path / "c.athdf", tmp_path / "c.fits")
    np.testing.assert_array_equal(read_fits_cube(tmp_path / "c.fits", "density"), rho)
    np.testing.assert_array_equal(read_fits_cube(tmp_path / "c.fits", "cr_energy_density"),
                                  3 * rho)
    np.testing.assert_allclose(read_fits_cube(tmp_path / "c.fits", "magnetic_energy_density"),
                               0.5 * (x**2 + y**2 + z**2), rtol=1e-6)


def test_a_mesh_that_is_no_cube_is_refused_in_x_y_z_order(tmp_path):
    z, y, x = np.meshgrid(np.arange(2), np.arange(4), np.arange(8), indexing="ij")
    write_athdf_layout(tmp_path / "n.athdf", {"prim": {"rho": 1.0 + x + y + z}}, block=(2, 2, 4))
    with pytest.raises(UserInputError, match=r"n.athdf: mesh of 8 x 4 x 2 cells \(x, y, z\) "
                       "is not a cube"):
        athena_to_fits(tmp_path / "n.athdf", tmp_path / "n.fits", fields=["density"])


@pytest.mark.parametrize("kwargs, match", [
    ({"levels": np.array([0, 0, 0, 1, 1, 0, 0, 0])}, "b.athdf: refined mesh"),
    ({"with_ec": False}, "b.athdf: no variable Ec"),
    ({"duplicate": True}, "b.athdf: .*do not tile"),
])
def test_bad_athdf_files_are_refused_naming_the_file(tmp_path, kwargs, match):
    write_athdf(tmp_path / "b.athdf", **kwargs)
    with pytest.raises(UserInputError, match=match):
        athena_to_fits(tmp_path / "b.athdf", tmp_path / "b.fits", grid=4)
    with pytest.raises(UserInputError, match="fields=pressure"):
        athena_to_fits(tmp_path / "b.athdf", tmp_path / "b.fits", fields=["pressure"])
    assert not (tmp_path / "b.fits").exists()


# --------------------------------------------------------------------------- resampling

def _planted(n, m, amplitude=0.3, phase=0.7):
    """1 + A cos(2 pi m . u / n + phase) at integer cell coordinates u = (z, y, x)."""
    z, y, x = _position_cube(n)
    return 1.0 + amplitude * np.cos(2 * np.pi * (m[0] * z + m[1] * y + m[2] * x) / n + phase)


def test_block_resampling_averages_a_planted_mode_analytically():
    n, grid, m = 48, 16, (1, 2, 3)
    out, method = resample_cube(_planted(n, m), grid)
    f = n // grid
    # the mean of cos over f consecutive cells: the Dirichlet kernel, centred on the block
    dirichlet = np.prod([np.sin(np.pi * mi * f / n) / (f * np.sin(np.pi * mi / n)) for mi in m])
    centres = np.arange(grid) * f + (f - 1) / 2
    z, y, x = np.meshgrid(centres, centres, centres, indexing="ij")
    expected = 1 + 0.3 * dirichlet * np.cos(2 * np.pi * (m[0] * z + m[1] * y + m[2] * x) / n
                                             + 0.7)
    assert method == "block"
    np.testing.assert_allclose(out, expected, atol=1e-6)


@pytest.mark.parametrize("n, grid", [(48, 32), (20, 28)])
def test_fourier_resampling_keeps_mean_and_low_modes_at_the_new_cell_centres(n, grid, rng):
    m = (2, -3, 1)
    noise = rng.normal(size=(n,) * 3)
    out, method = resample_cube(_planted(n, m), grid)
    centres = np.arange(grid) * n / grid + (n / grid - 1) / 2  # in input-cell coordinates
    z, y, x = np.meshgrid(centres, centres, centres, indexing="ij")
    expected = 1 + 0.3 * np.cos(2 * np.pi * (m[0] * z + m[1] * y + m[2] * x) / n + 0.7)
    assert method == "fourier"
    np.testing.assert_allclose(out, expected, atol=1e-5)
    np.testing.assert_allclose(resample_cube(noise, grid)[0].mean(), noise.mean(), atol=1e-6)


# --------------------------------------------------------------------------- FITS cubes

def test_fits_round_trip_with_units(tmp_path, rng):
    cubes = {"density": rng.random((8, 8, 8)), "magnetic_energy_density": rng.random((8,) * 3)}
    path = tmp_path / "s.fits"
    write_fits_cubes(path, cubes, {"density": "g cm-3", "magnetic_energy_density": "erg cm-3"},
                     {"ORIGIN": "test"})
    for field, cube in cubes.items():
        np.testing.assert_array_equal(read_fits_cube(path, field), cube.astype(np.float32))
    assert fits_units(path, "magnetic_energy_density") == "erg cm-3"
    with pytest.raises(UserInputError, match="s.fits: no FITS extension 'cr_energy_density'"):
        read_fits_cube(path, "cr_energy_density")
    with pytest.raises(UserInputError, match="s.fits: file exists"):
        write_fits_cubes(path, cubes, {"density": "", "magnetic_energy_density": ""})
    write_fits_cubes(tmp_path / "flat.fits", {"density": np.ones((4, 8, 8))}, {"density": ""})
    with pytest.raises(UserInputError, match="flat.fits: .*expected \\(N, N, N\\)"):
        read_fits_cube(tmp_path / "flat.fits", "density")
    with pytest.raises(UserInputError, match="missing.fits: no such FITS file"):
        read_fits_cube(tmp_path / "missing.fits", "density")


# --------------------------------------------------------------------------- image pipeline

def test_byte_scale_is_log_min_max_with_non_finite_to_zero():
    cube = np.array([1e-3, 1e-1, 1.0, 10.0, 0.0, -5.0, np.nan, np.inf]).reshape(2, 2, 2)
    out = to_byte_scale(cube).ravel()
    np.testing.assert_allclose(out[:4], 255 * (np.array([-3, -1, 0, 1]) + 3) / 4, rtol=1e-6)
    np.testing.assert_array_equal(out[4:], 0)
    np.testing.assert_array_equal(to_byte_scale(np.full((2, 2, 2), 3.0)), 0)


def test_flattened_power_keeps_phases_with_unit_amplitude(rng):
    img = rng.random((2, 16, 16)) * 255
    out = flatten_power(img)
    spectrum, original = np.fft.fft2(out), np.fft.fft2(img)
    np.testing.assert_allclose(np.abs(spectrum), 1.0, atol=1e-4)
    np.testing.assert_allclose(np.angle(spectrum * np.conj(original)), 0.0, atol=1e-4)
    # modes with |F| = 0 stay 0 (no NaN): a single planted mode
    y, x = np.mgrid[:16, :16]
    wave = flatten_power(5 + np.cos(2 * np.pi * (2 * x + y) / 16))
    amplitude = np.abs(np.fft.fft2(wave))
    assert np.isfinite(wave).all() and np.isclose(amplitude.sum(), 3.0, atol=1e-4)
    np.testing.assert_allclose(amplitude[[0, 1, 15], [0, 2, 14]], 1.0, atol=1e-5)


def test_periodic_shift_and_tiles_cover_the_slice_exactly_once():
    img = np.arange(12 * 8).reshape(12, 8)
    shifted = periodic_shift(img, 5, -3)
    i, j = np.mgrid[:12, :8]
    np.testing.assert_array_equal(shifted, img[(i - 5) % 12, (j + 3) % 8])
    tiles = tile_image(img, 4)
    assert tiles.shape == (6, 4, 4)
    np.testing.assert_array_equal(np.sort(tiles.ravel()), img.ravel())
    for t, (r, c) in enumerate(np.ndindex(3, 2)):
        np.testing.assert_array_equal(tiles[t], img[4 * r:4 * r + 4, 4 * c:4 * c + 4])
    np.testing.assert_array_equal(tile_image(np.stack([img, img + 1]), 4)[1], tiles + 1)
    with pytest.raises(ValueError, match="tile=5"):
        tile_image(img, 5)


def test_equalised_tiles_have_flat_histograms(rng):
    tiles = rng.gamma(1.5, size=(3, 64, 64))  # skewed input
    out = equalise_histogram(tiles)
    assert out.min() > 0 and out.max() == pytest.approx(1.0)
    for tile in out:
        counts, _ = np.histogram(tile, bins=16, range=(0, 1))
        np.testing.assert_allclose(counts / tile.size, 1 / 16, atol=0.01)
    # second implementation: cumulative histogram interpolated at bin centres (per tile)
    for tile, result in zip(tiles, out):
        counts, edges = np.histogram(tile, bins=256)
        centres = (edges[:-1] + edges[1:]) / 2
        np.testing.assert_allclose(result, np.interp(tile, centres, np.cumsum(counts) / tile.size),
                                   atol=1e-6)
    order = np.argsort(tiles[0], axis=None)
    assert (np.diff(out[0].ravel()[order]) >= 0).all()  # monotone: ranks are kept
    np.testing.assert_array_equal(equalise_histogram(np.full((4, 4), 7.0)), 1.0)


def test_projection_averages_adjacent_slices_periodically(rng):
    cube = rng.random((6, 3, 3))
    out = project_slices(cube, 3, starts=[0, 4, 5])
    for image, start in zip(out, [0, 4, 5]):
        expected = sum(cube[(start + j) % 6] for j in range(3)) / 3
        np.testing.assert_allclose(image, expected, rtol=1e-6)
    np.testing.assert_allclose(project_slices(cube, 1), cube, rtol=1e-7)


# --------------------------------------------------------------------------- buffered split

def _periodic_gap(a, b, n):
    """Brute force: fewest slices strictly between slice sets a and b on a ring of n."""
    return min(min(abs(i - j), n - abs(i - j)) for i in a for j in b) - 1


@pytest.mark.parametrize("n_slices", [36, 64, 100, 128, 512])
@pytest.mark.parametrize("projection", [1, 2, 5])
def test_buffered_split_leaves_a_full_part_between_sets(n_slices, projection):
    split = buffered_split(n_slices, projection=projection)
    assert_buffered(split, n_slices, projection=projection)
    part = [(p * n_slices) // 6 for p in range(7)]
    used = {name: {(s + j) % n_slices for s in starts for j in range(projection)}
            for name, starts in split.items()}
    for name, index in (("train", 1), ("validation", 3), ("test", 5)):
        assert used[name] == set(range(part[index], part[index + 1]))  # whole part, no more
        assert len(split[name]) == part[index + 1] - part[index] - projection + 1
    for a, b in (("train", "validation"), ("validation", "test"), ("test", "train")):
        gap = _periodic_gap(used[a], used[b], n_slices)
        assert gap >= n_slices // 6  # a whole part between, also across the wrap
        assert slice_separation(split[a], split[b], n_slices, projection) == gap


def test_buffer_checker_catches_leaks():
    n = 60  # parts of 10 slices
    with pytest.raises(ValueError, match="train and validation are 9 slices apart"):
        assert_buffered({"train": np.arange(10, 20), "validation": np.arange(29, 40)}, n)
    with pytest.raises(ValueError, match="train and test are 0 slices apart"):
        assert_buffered({"train": [0], "test": [59]}, n)  # across the periodic wrap
    # unshrunk parts with an 8-slice projection: windows reach into the buffers
    naive = {"train": np.arange(10, 20), "validation": np.arange(30, 40),
             "test": np.arange(50, 60)}
    assert_buffered(naive, n, projection=1)
    with pytest.raises(ValueError, match="3 slices apart"):
        assert_buffered(naive, n, projection=8)
    assert_buffered(buffered_split(n, projection=8), n, projection=8)
    with pytest.raises(UserInputError, match="projection=11"):
        buffered_split(n, projection=11)


# --------------------------------------------------------------------------- class folders

def test_class_files_labels_and_errors(tmp_path):
    for name in TURBULENCE_CLASSES:
        (tmp_path / name).mkdir()
        for j in (1, 0):
            (tmp_path / name / f"snapshot_{j}.fits").write_bytes(b"")
    (tmp_path / "mhd" / "snapshot_2.partial.fits").write_bytes(b"")  # a write cut by a kill
    files = class_files(tmp_path)
    assert [label for _, label in files] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert files[1][0].endswith("mhd/snapshot_1.fits")
    with pytest.raises(UserInputError, match="missing_class: missing class folder"):
        class_files(tmp_path, classes=("mhd", "missing_class"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="empty: no \\*.fits"):
        class_files(tmp_path, classes=("empty",))


@pytest.fixture(scope="module")
def slice_cubes(tmp_path_factory):
    """Two 24^3 snapshots: density of random positive values, and slice-constant cubes."""
    out = tmp_path_factory.mktemp("cubes")
    rng = np.random.default_rng(5)
    density = np.exp(rng.normal(size=(24, 24, 24)))
    write_fits_cubes(out / "a.fits", {"density": density, "magnetic_energy_density":
                                      density**2}, {"density": "", "magnetic_energy_density": ""})
    layered = np.broadcast_to(np.arange(1.0, 25.0)[:, None, None], (24, 24, 24))
    write_fits_cubes(out / "b.fits", {"density": layered, "magnetic_energy_density": layered},
                     {"density": "", "magnetic_energy_density": ""})
    return out


def test_classification_images_count_labels_and_equalise(slice_cubes):
    files = [(slice_cubes / "a.fits", 3)]
    train, labels = classification_images(files, "train", tile=8, seed=1)
    # part 1 of 24 slices holds slices 4..7: 4 slices x 9 tiles x (1 + one extra shift)
    assert train.shape == (72, 8, 8, 1) and train.dtype == np.float32
    assert (labels == 3).all()
    test, _ = classification_images(files, "test", tile=8, shifts=((2, 0), (0, 2)), seed=1)
    assert len(test) == 36  # extra shifts only for training slices
    assert len(classification_images(files, "train", tile=8, shifts=(), seed=1)[0]) == 36
    for tile in train[:, :, :, 0]:  # each tile equalised: 64 distinct values, flat ranks
        np.testing.assert_allclose(np.sort(tile.ravel())[[15, 31, 47]], [0.25, 0.5, 0.75],
                                   atol=0.05)
    phase, _ = classification_images(files, "train", tile=8, phase_only=True, seed=1)
    assert phase.shape == train.shape and not np.allclose(phase, train)
    again, _ = classification_images(files, "train", tile=8, seed=1)
    np.testing.assert_array_equal(again, train)


def test_mapping_images_share_rolls_and_projections_stay_in_their_part(slice_cubes):
    files = [slice_cubes / "a.fits"]
    inputs, targets = mapping_images(files, "train", 8, seed=4)
    # log10 rho^2 = 2 log10 rho: after the min-max both maps are the same image
    np.testing.assert_allclose(targets, inputs, atol=1e-5)
    assert inputs.shape == (72, 8, 8, 1) and 0 <= inputs.min() and inputs.max() <= 1
    # slice z holds z + 1: a projection of 3 slices starting at s holds s + 2 (no wrap here)
    projected, _ = mapping_images([slice_cubes / "b.fits"], "validation", 8, projection=3,
                                  shifts=())
    windows = np.arange(24)[:, None] + np.arange(3)
    means = np.log10((windows % 24 + 1).mean(axis=1))  # all 24 windows set the min-max
    expected = (means - means.min()) / (means.max() - means.min())
    starts = np.arange(12, 16 - 2)  # windows wholly inside part 3 = slices 12..15
    values = np.unique(np.round(projected, 5))
    np.testing.assert_allclose(values, np.round(expected[starts], 5), atol=1e-5)


# --------------------------------------------------------------------------- tf.data

def _flip_of(x, reference):
    """Which of the four flips of ``reference`` (h, w, c) equals x: (flip_y, flip_x) or None."""
    for fy in (False, True):
        for fx in (False, True):
            candidate = reference[::-1] if fy else reference
            candidate = candidate[:, ::-1] if fx else candidate
            if np.array_equal(candidate, x):
                return fy, fx
    return None


def test_dataset_flips_images_and_keeps_labels(rng):
    images = rng.random((200, 6, 6, 1)).astype(np.float32)
    labels = np.arange(200) % 5
    data = turbulence_dataset(images, labels, batch_size=32, shuffle=True, seed=3)
    seen, flips = [], []
    for x, y in data:
        for xi, yi in zip(x.numpy(), y.numpy()):
            matches = [(i, _flip_of(xi, images[i])) for i in range(200)]
            index, flip = next((i, f) for i, f in matches if f is not None)
            assert labels[index] == yi
            seen.append(index)
            flips.append(flip)
    assert sorted(seen) == list(range(200))
    fraction = np.mean(flips, axis=0)
    assert ((0.38 < fraction) & (fraction < 0.62)).all()
    first = [x.numpy() for x, _ in turbulence_dataset(images, labels, 32, seed=3)]
    np.testing.assert_array_equal(np.concatenate(first),
                                  np.concatenate([x.numpy() for x, _ in
                                                  turbulence_dataset(images, labels, 32,
                                                                     seed=3)]))
    second_epoch = np.concatenate([x.numpy() for x, _ in data])
    assert not np.array_equal(second_epoch, np.concatenate(first))


def test_dataset_flips_targets_with_their_inputs(rng):
    inputs = rng.random((64, 8, 8, 1)).astype(np.float32)
    targets = inputs**2 + 1
    data = turbulence_dataset(inputs, targets, batch_size=16, shuffle=False, seed=0)
    flipped = 0
    for (x, y), start in zip(data, range(0, 64, 16)):
        np.testing.assert_allclose(y.numpy(), x.numpy() ** 2 + 1, rtol=1e-6)
        flipped += sum(not np.array_equal(xi, inputs[start + i]) for i, xi in enumerate(x))
    assert 30 < flipped < 64  # 3/4 of the examples change on average
