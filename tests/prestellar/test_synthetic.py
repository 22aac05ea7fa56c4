"""Prestellar cores: the mock observation against analytic line profiles and planted voxels
(rest, Doppler shift, flux, displacements along each PPV axis), density and velocity against
the generating formulas, FITS (spectral WCS) and HDF5 round trips, seeding, the tf.data
pipelines against numpy slices and symmetries, errors naming the file, the command line."""
import dataclasses

import h5py
import numpy as np
import pytest
from astropy import units
from astropy.io import fits
from astropy.wcs import WCS
from scipy import stats

from tfastro.core.errors import UserInputError
from tfastro.prestellar.io import PARAM_FIELDS, read_prestellar, write_prestellar
from tfastro.prestellar.pipeline import core_dataset, ppv_window_dataset
from tfastro.prestellar.synthetic import (PROFILES, CoreParams, CoreRanges, channel_velocities,
                                          core_density, core_velocity, draw_core_params,
                                          grid_coordinates, line_profile, main, make_core,
                                          observe_ppv, structure_field, synthetic_cores,
                                          thermal_width)

SIGMA = 0.188            # km/s, the 10 K line
DV = 0.125               # km/s
BAND = (-15.5 * DV, 15.5 * DV)  # 31 channels, channel 15 centred on v = 0
N_CH = 31


def _params(**changes):
    """A quiet core: centred on cell (16, 16, 16) of a 32^3 grid, no noise, no motions."""
    base = CoreParams(centre=(1 / 32, 1 / 32, 1 / 32), radius=0.3, slope=2.0, radius_pc=0.1,
                      peak_density_cm3=1e4, noise=0.0, rotation=0.0,
                      rotation_axis=(0.0, 0.0, 1.0), infall=0.0, v_sys=0.0, seed=7)
    return dataclasses.replace(base, **changes)


def _single_voxel(v, n=8, where=(2, 5, 3)):
    density = np.zeros((n, n, n))
    density[where] = 1.0
    return density, np.full((n, n, n), v)


# --------------------------------------------------------------------------- mock observation

def test_thermal_width_is_the_10_k_sound_speed():
    assert thermal_width() == pytest.approx(0.188, abs=5e-4)
    assert thermal_width(40.0) == pytest.approx(2 * thermal_width(), rel=1e-12)


@pytest.mark.parametrize("shape", PROFILES)
def test_a_voxel_at_rest_emits_its_line_centred_on_the_rest_channel(shape):
    density, v = _single_voxel(0.0)
    ppv = observe_ppv(density, v, N_CH, BAND, SIGMA, shape)
    edges = BAND[0] + np.arange(N_CH + 1) * DV
    if shape == "gaussian":  # independent: scipy's CDF; the band holds the whole line
        expected = np.diff(stats.norm.cdf(edges, scale=SIGMA)) / DV * (2.0 / 8)
    else:
        cdf = stats.cauchy.cdf(edges, scale=SIGMA * np.sqrt(2 * np.log(2)))
        expected = np.diff(cdf) / (cdf[-1] - cdf[0]) / DV * (2.0 / 8)
    np.testing.assert_allclose(ppv[2, 5], expected, rtol=2e-6, atol=1e-9)
    assert np.argmax(ppv[2, 5]) == 15
    np.testing.assert_allclose(ppv[2, 5], ppv[2, 5, ::-1], rtol=1e-5, atol=1e-9)
    others = np.ones((8, 8), bool)
    others[2, 5] = False
    assert not ppv[others].any()


@pytest.mark.parametrize("shift", [3, -2])
def test_a_moving_voxel_is_shifted_by_v_over_dv_channels_redshift_upwards(shift):
    rest = observe_ppv(*_single_voxel(0.0), N_CH, BAND, SIGMA)[2, 5]
    moved = observe_ppv(*_single_voxel(shift * DV), N_CH, BAND, SIGMA)[2, 5]
    assert np.argmax(moved) == 15 + shift
    np.testing.assert_allclose(moved, np.roll(rest, shift), atol=1e-6 * rest.max())
    half = observe_ppv(*_single_voxel(0.5 * DV), N_CH, BAND, SIGMA)[2, 5]
    centroid = (half * np.arange(N_CH)).sum() / half.sum()
    assert centroid == pytest.approx(15.5, abs=1e-6)


@pytest.mark.parametrize("shape", PROFILES)
def test_flux_equals_the_density_weighted_emission_per_pixel_and_overall(shape, rng):
    density = rng.uniform(0.0, 1.0, (6, 5, 7))
    v = rng.uniform(-1.5, 1.5, (6, 5, 7))
    ppv = observe_ppv(density, v, 24, (-2.0, 2.0), 0.1, shape)
    flux = ppv.astype(np.float64).sum(axis=-1) * (4.0 / 24)
    column = density.sum(axis=-1) * (2.0 / 7)
    np.testing.assert_allclose(flux, column, rtol=2e-6)
    assert flux.sum() == pytest.approx(density.sum() * 2.0 / 7, rel=2e-6)


def test_lorentzian_and_gaussian_share_the_half_width_but_not_the_wings():
    x = np.linspace(-3.0, 3.0, 600001)
    hwhm = SIGMA * np.sqrt(2 * np.log(2))
    for shape, at_three_hwhm in (("gaussian", 2.0**-9), ("lorentzian", 0.1)):
        phi = line_profile(x, SIGMA, shape)
        above = x[phi >= phi.max() / 2]
        assert above.max() == pytest.approx(hwhm, abs=2e-5)
        assert above.min() == pytest.approx(-hwhm, abs=2e-5)
        assert line_profile(np.array([3 * hwhm]), SIGMA, shape)[0] / phi.max() == \
            pytest.approx(at_three_hwhm, rel=1e-9)
    lorentz = line_profile(x, SIGMA, "lorentzian")
    assert np.trapezoid(lorentz, x) == pytest.approx(2 / np.pi * np.arctan(3.0 / hwhm),
                                                     rel=1e-6)
    assert np.trapezoid(line_profile(x, SIGMA), x) == pytest.approx(1.0, rel=1e-9)
    channels = line_profile(channel_velocities(N_CH, BAND), SIGMA, "lorentzian", DV)
    assert channels.sum() * DV == pytest.approx(1.0, rel=1e-12)


def test_core_displacements_appear_along_the_matching_ppv_axes():
    # cell 20 of 32 has its centre at x = 0.3125; cell 16 at 0.03125
    quiet = make_core(_params(), 32, 32)
    moved_x = make_core(_params(centre=(0.3125, 1 / 32, 1 / 32)), 32, 32)
    moved_y = make_core(_params(centre=(1 / 32, 0.3125, 1 / 32)), 32, 32)
    moved_z = make_core(_params(centre=(1 / 32, 1 / 32, 0.3125)), 32, 32)
    fast = make_core(_params(v_sys=0.5), 32, 32)

    def peak(cube):
        return np.unravel_index(np.argmax(cube), cube.shape)

    assert peak(quiet["ppv"].sum(-1)) == (16, 16)
    assert peak(moved_x["ppv"].sum(-1)) == (20, 16)
    assert peak(moved_y["ppv"].sum(-1)) == (16, 20)
    assert peak(moved_z["log_density"]) == (16, 16, 20)
    assert peak(moved_x["log_density"]) == (20, 16, 16)
    spectrum = quiet["ppv"].sum(axis=(0, 1))
    assert np.argmax(fast["ppv"].sum(axis=(0, 1))) == np.argmax(spectrum) + 4  # 0.5 / dv
    np.testing.assert_allclose(fast["ppv"], np.roll(quiet["ppv"], 4, axis=2),
                               atol=1e-6 * quiet["ppv"].max())
    np.testing.assert_allclose(fast["v_los"], 0.5)


# --------------------------------------------------------------------------- cores

def test_density_is_the_plummer_profile_times_the_lognormal_structure():
    x, y, z = grid_coordinates(32)
    c = _params().centre
    plummer = (1 + ((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / 0.09) ** -1.0
    np.testing.assert_allclose(core_density(_params(), 32), plummer, rtol=1e-6)
    rho = core_density(_params(noise=0.25), 32).astype(np.float64)
    log_factor = np.log(rho / plummer)
    assert log_factor.std() == pytest.approx(0.25, rel=1e-4)
    g = structure_field(32, 7)
    np.testing.assert_allclose(log_factor - log_factor.mean(), 0.25 * g, atol=1e-5)
    assert rho.max() == 1.0
    assert abs(np.corrcoef(g.ravel(), g[::-1, ::-1, ::-1].ravel())[0, 1]) < 0.2
    assert np.corrcoef(g[:-2].ravel(), g[2:].ravel())[0, 1] > 0.8  # grains of ~5 cells
    assert np.corrcoef(g[:-10].ravel(), g[10:].ravel())[0, 1] < 0.2


def test_velocity_is_rotation_plus_inward_infall_plus_systemic():
    x, y, z = grid_coordinates(16)
    c = np.array(_params().centre)
    spin = core_velocity(_params(rotation=0.7), 16)
    np.testing.assert_allclose(spin[..., 0], -0.7 * (y - c[1]), atol=1e-6)
    np.testing.assert_allclose(spin[..., 1], 0.7 * (x - c[0]), atol=1e-6)
    assert not spin[..., 2].any()
    tilted = core_velocity(_params(rotation=-0.5, rotation_axis=(0.6, 0.0, 0.8)), 16)
    np.testing.assert_allclose(tilted[..., 2], -0.5 * 0.6 * (y - c[1]), atol=1e-6)
    infall = core_velocity(_params(infall=0.3, v_sys=0.1), 16)
    inward = infall - np.array([0, 0, 0.1], np.float32)
    radial = (inward * np.stack([x - c[0], y - c[1], z - c[2]], axis=-1)).sum(-1)
    assert radial.max() <= 1e-7
    assert np.sqrt((inward**2).sum(-1)).max() == pytest.approx(0.3, rel=1e-6)
    column = inward[8, 8, :, 2]  # near side (z < 0) moves away from the observer
    assert (column[:7] > 0).all() and (column[9:] < 0).all()


def test_parameters_are_drawn_within_the_ranges():
    ranges = CoreRanges()
    draws = [draw_core_params(seed) for seed in range(200)]
    for field in ("radius", "slope", "radius_pc", "peak_density_cm3", "noise", "infall"):
        lo, hi = getattr(ranges, field)
        values = np.array([getattr(p, field) for p in draws])
        assert values.min() >= lo and values.max() <= hi, field
    assert max(abs(np.array(p.centre)).max() for p in draws) <= ranges.centre
    assert max(abs(p.v_sys) for p in draws) <= ranges.v_sys
    rotation = np.array([p.rotation for p in draws])
    assert (np.abs(rotation) >= 0.3).all() and 60 < (rotation > 0).sum() < 140
    axes = np.array([p.rotation_axis for p in draws])
    np.testing.assert_allclose((axes**2).sum(-1), 1.0, rtol=1e-12)
    assert (axes[:, 2] >= 0).all()
    assert draws[3] == draw_core_params(np.random.default_rng(3))


def test_sets_are_seeded_and_keep_each_cores_parameters():
    a = synthetic_cores(3, 12, 12, seed=5)
    b = synthetic_cores(2, 12, 12, seed=5)
    c = synthetic_cores(2, 12, 12, seed=6)
    np.testing.assert_array_equal(a.ppv[:2], b.ppv)
    np.testing.assert_array_equal(a.targets[:2], b.targets)
    assert a.params[:2] == b.params and a.params[2] == draw_core_params([5, 2])
    assert not np.allclose(a.ppv[:2], c.ppv)
    again = make_core(a.params[1], 12, 12)
    np.testing.assert_array_equal(again["ppv"], a.ppv[1])
    assert a.targets.shape == (3, 12, 12, 12, 2) and a.targets.dtype == np.float32
    np.testing.assert_array_equal(a.targets[..., 1], a.v_los)


# --------------------------------------------------------------------------- files

@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("prestellar")
    cores = synthetic_cores(2, 12, 10, seed=1, shape="lorentzian")
    return out, cores, write_prestellar(out, cores)


def test_fits_round_trip_with_the_spectral_axis_in_km_s(written):
    out, cores, paths = written
    assert paths["fits"] == [str(out / "fits" / f"core_000{i}.fits") for i in range(2)]
    back = read_prestellar(paths["fits"][1])
    np.testing.assert_array_equal(back.ppv[0], cores.ppv[1])
    np.testing.assert_array_equal(back.targets[0], cores.targets[1])
    card_values, truth = (dataclasses.astuple(p) for p in (back.params[0], cores.params[1]))
    assert np.allclose(np.hstack(card_values), np.hstack(truth), rtol=1e-15, atol=0)
    assert back.profile == "lorentzian"
    np.testing.assert_allclose(back.v_range, cores.v_range, atol=1e-12)
    with fits.open(paths["fits"][1]) as hdus:
        header = hdus[0].header
        assert (header["CTYPE3"], header["CUNIT3"]) == ("VRAD", "km/s")
        assert hdus[0].data[7, 2, 5] == cores.ppv[1, 5, 2, 7]  # FITS (v, y, x) = [ix, iy, ic]
        assert hdus["LOG_DENSITY"].data[3, 2, 5] == cores.log_density[1, 5, 2, 3]
        wcs = WCS(header)
        velocity = wcs.spectral.pixel_to_world(np.arange(10)).to_value(units.km / units.s)
        np.testing.assert_allclose(velocity, channel_velocities(10, (-2.0, 2.0)), atol=1e-9)
        x_pc = wcs.sub([1])
        h = cores.params[1].half_width_pc
        expected = (-1 + (np.arange(12) + 0.5) * 2 / 12) * h
        np.testing.assert_allclose(x_pc.pixel_to_world_values(np.arange(12)), expected,
                                   rtol=1e-9)
        assert header["NHSCALE"] == pytest.approx(cores.params[1].peak_density_cm3 * h
                                                  * 3.0857e18)


def test_hdf5_round_trip_keeps_arrays_parameters_and_band(written):
    out, cores, paths = written
    back = read_prestellar(out)
    for name in ("ppv", "log_density", "v_los"):
        np.testing.assert_array_equal(getattr(back, name), getattr(cores, name))
    assert back.params == cores.params
    assert (back.v_range, back.line_width, back.profile) == \
        (cores.v_range, cores.line_width, "lorentzian")
    with h5py.File(paths["hdf5"]) as handle:
        assert handle["params"].dtype.names == PARAM_FIELDS
        np.testing.assert_allclose(handle["velocities"], back.velocities)


def test_bad_files_raise_user_input_errors_naming_them(written, tmp_path):
    out, cores, paths = written
    with pytest.raises(UserInputError, match="nothing.h5: no such prestellar file"):
        read_prestellar(tmp_path / "nothing.h5")
    with h5py.File(tmp_path / "bad.h5", "w") as handle:
        handle["ppv"] = np.zeros((1, 4, 4, 4))
    with pytest.raises(UserInputError, match="bad.h5: missing log_density, v_los, params"):
        read_prestellar(tmp_path / "bad.h5")
    fits.PrimaryHDU(np.zeros((4, 4, 4), np.float32)).writeto(tmp_path / "flat.fits")
    with pytest.raises(UserInputError, match="flat.fits: no spectral axis"):
        read_prestellar(tmp_path / "flat.fits")
    with pytest.raises(UserInputError, match="prestellar.h5: file exists"):
        write_prestellar(out, cores)


# --------------------------------------------------------------------------- tf.data

SYMMETRIES = [lambda a, k=k, f=f: np.rot90(np.flip(a, 0) if f else a, k, axes=(0, 1))
              for f in (False, True) for k in range(4)]


def _which_symmetry(original, transformed):
    matches = [i for i, s in enumerate(SYMMETRIES)
               if np.array_equal(s(original), transformed)]
    assert len(matches) == 1
    return matches[0]


def test_core_dataset_shapes_order_and_consistent_sky_symmetries():
    core = make_core(_params(centre=(0.3, -0.2, 0.1), radius=0.2, noise=0.2, rotation=0.6,
                             rotation_axis=(0.6, 0.0, 0.8), infall=0.3), 12, 16)
    ppv, targets = core["ppv"][None], np.stack([core["log_density"], core["v_los"]], -1)[None]
    plain = list(core_dataset(ppv, targets, 1, shuffle=False))
    assert plain[0][0].shape == (1, 12, 12, 16, 1) and plain[0][1].shape == (1, 12, 12, 12, 2)
    np.testing.assert_array_equal(plain[0][0][0, ..., 0], ppv[0])
    data = core_dataset(np.repeat(ppv, 4, 0), np.repeat(targets, 4, 0), 2, seed=3,
                        augment=True)
    seen = set()
    for _ in range(3):
        for x, y in data:
            for xi, yi in zip(x.numpy(), y.numpy()):
                index = _which_symmetry(targets[0], yi)
                assert _which_symmetry(ppv[0], xi[..., 0]) == index
                # the transformed pair is itself a valid observation of its target
                np.testing.assert_allclose(
                    observe_ppv(10.0 ** yi[..., 0], yi[..., 1], 16), xi[..., 0],
                    rtol=1e-4, atol=1e-6 * xi.max())
                seen.add(index)
    assert len(seen) >= 5


def test_ppv_window_dataset_windows_are_slices_of_the_arrays(rng):
    ppv = rng.normal(size=(2, 12, 12, 6)).astype(np.float32)
    targets = rng.normal(size=(2, 12, 12, 9, 2)).astype(np.float32)
    starts = [(k, i, j) for k in range(2) for i in range(0, 8, 2) for j in range(0, 8, 2)]
    columns = list(ppv_window_dataset(ppv, targets, 5, 7, stride=2, shuffle=False).unbatch())
    windows = list(ppv_window_dataset(ppv, targets, 5, 7, stride=2, target="window",
                                  shuffle=False).unbatch())
    assert len(columns) == len(windows) == len(starts) == 32
    for (k, i, j), (x, column), (x2, window) in zip(starts, columns, windows):
        np.testing.assert_array_equal(x.numpy()[..., 0], ppv[k, i:i + 5, j:j + 5])
        np.testing.assert_array_equal(x2, x)
        np.testing.assert_array_equal(column, targets[k, i + 2, j + 2])
        np.testing.assert_array_equal(window, targets[k, i:i + 5, j:j + 5])
    augmented = list(ppv_window_dataset(ppv, targets, 5, 7, stride=2, target="window",
                                    shuffle=False, augment=True, seed=1).unbatch())
    seen = set()
    for (k, i, j), (x, window) in zip(starts, augmented):
        index = _which_symmetry(ppv[k, i:i + 5, j:j + 5], x.numpy()[..., 0])
        assert _which_symmetry(targets[k, i:i + 5, j:j + 5], window.numpy()) == index
        seen.add(index)
    assert len(seen) >= 5
    shuffled = ppv_window_dataset(ppv, targets, 5, 4, stride=2, seed=0, augment=True)
    x, y = next(iter(shuffled))
    assert x.shape == (4, 5, 5, 6, 1) and y.shape == (4, 9, 2)
    with pytest.raises(UserInputError, match="window=4.*odd window"):
        ppv_window_dataset(ppv, targets, 4, 2)


# --------------------------------------------------------------------------- command line

def test_command_line_writes_the_set_and_refuses_to_overwrite(tmp_path, capsys):
    args = ["--out", str(tmp_path), "--cores", "2", "--grid", "8",
            "--channels", "8", "--seed", "3"]
    assert main(args) == 0
    assert "SYNTHETIC prestellar" in capsys.readouterr().out
    np.testing.assert_array_equal(read_prestellar(tmp_path).ppv,
                                  synthetic_cores(2, 8, 8, seed=3).ppv)
    assert (tmp_path / "fits" / "core_0001.fits").is_file()
    assert main(args) == 2
    assert "prestellar.h5: file exists" in capsys.readouterr().err
    assert main(args + ["--profile", "lorentzian", "--overwrite"]) == 0
    assert read_prestellar(tmp_path / "fits" / "core_0000.fits").profile == "lorentzian"
    assert main(["--out", str(tmp_path / "x"), "--grid", "2"]) == 2
    assert "n=2" in capsys.readouterr().err
