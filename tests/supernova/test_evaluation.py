"""Shell metrics on real-shell geometry (off-centre, across the periodic boundary, anisotropic)
and affected particles, against analytic truth: the Sedov-Taylor law, planted spheres."""
import json

import numpy as np
import pytest

from tfastro.supernova.evaluation import (SECTORS, ForecastScores, affected_particles,
                                          explosion_centre, frame_mse, frame_mse_per_voxel,
                                          mean_shell_radius, periodic_offsets, shell_mask,
                                          shell_radii, swept_shell_mask)
from tfastro.supernova.particles import GasParticles
from tfastro.supernova.synthetic import SNParams, blast_density


def rim(n, radius, centre, value=0.8, ambient=0.2, semi_axes=(1.0, 1.0, 1.0)):
    """(n, n, n) cube: ``value`` where the periodic (scaled) distance from ``centre`` is within
    half a voxel of ``radius``, ``ambient`` elsewhere."""
    d = periodic_offsets((n,) * 3, centre) / np.reshape(semi_axes, (3, 1, 1, 1))
    return np.where(np.abs(np.sqrt((d**2).sum(axis=0)) - radius) < 0.5, value, ambient)


def test_periodic_offsets_take_the_nearest_image():
    d = periodic_offsets((8, 8, 8), (0.0, 0.0, 7.0))
    np.testing.assert_array_equal(d[:, 7, 0, 0], [-1.0, 0.0, 1.0])   # x=7 is next to x=0
    np.testing.assert_array_equal(d[:, 3, 4, 3], [3.0, -4.0, -4.0])  # at most half the box
    plain = periodic_offsets((8, 8, 8), (0, 0, 7), periodic=False)
    np.testing.assert_array_equal(plain[:, 7, 0, 0], [7.0, 0.0, -7.0])


def test_shell_mask_holds_the_rise_and_the_drop():
    initial = np.full(6, 2.0)
    frame = np.array([2.0, 1.8, 1.7999, 2.2001, 0.2, 5.0])  # 1.8 = exactly 10 % down: not
    np.testing.assert_array_equal(shell_mask(frame, initial),
                                  [False, False, True, True, True, True])
    np.testing.assert_array_equal(swept_shell_mask(frame, initial),
                                  [False, False, False, True, False, True])


@pytest.mark.parametrize("centre", [(0.0, 0.0, 0.0), (31.0, 0.5, 17.25), (3.0, 29.0, 15.5)])
def test_explosion_centre_of_a_shell_across_the_boundary(centre):
    n = 32
    frames = np.stack([np.full((n,) * 3, 0.2), rim(n, 3.0, centre), rim(n, 5.0, centre)])
    np.testing.assert_allclose(explosion_centre(frames), centre, atol=0.3)


def test_explosion_centre_without_a_change_is_nan():
    assert np.isnan(explosion_centre(np.ones((3, 4, 4, 4)))).all()


def test_sector_radii_of_an_ellipsoidal_shell():
    n, centre = 32, (30.0, 2.0, 16.0)  # across two faces of the box
    frame = rim(n, 1.0, centre, semi_axes=(5.0, 8.0, 11.0))
    radii = dict(zip(SECTORS, shell_radii(frame, np.full((n,) * 3, 0.2), centre)))
    assert 4.5 < radii["+x"] < radii["+y"] < radii["+z"] < 11.5
    for axis in "xyz":  # symmetric about the centre
        assert radii[f"+{axis}"] == pytest.approx(radii[f"-{axis}"], rel=0.02)


def test_sector_radii_of_a_sphere_and_empty_shells():
    n = 24
    initial = np.full((n,) * 3, 0.2)
    radii = shell_radii(rim(n, 7.0, (2.0, 20.0, 23.0)), initial, (2.0, 20.0, 23.0))
    np.testing.assert_allclose(radii, 7.0, atol=0.1)
    assert mean_shell_radius(radii) == pytest.approx(7.0, abs=0.1)
    assert np.isnan(shell_radii(initial, initial)).all()
    assert np.isnan(shell_radii(rim(n, 7.0, (2, 2, 2)), initial, (np.nan,) * 3)).all()


def test_off_centre_sedov_taylor_blast_follows_t_to_the_two_fifths():
    """A blast in a uniform medium, moved so that its shell crosses three faces of the periodic
    box: centre, sector radii and R(t) against the Sedov-Taylor law."""
    n, params = 32, SNParams()
    t_kyr = params.frame_times_kyr(20)
    shift = (13, -9, 5)
    frames = np.roll(blast_density(np.ones((n,) * 3), t_kyr, params), shift, axis=(1, 2, 3))
    centre = ((n - 1) / 2 + np.asarray(shift)) % n
    assert (np.minimum(centre, n - centre) < params.st_radius_voxels(t_kyr[1], n)).any()

    np.testing.assert_allclose(explosion_centre(frames), centre, atol=0.1)
    radii = np.array([shell_radii(f, frames[0], explosion_centre(frames)) for f in frames[1:]])
    sedov = params.st_radius_voxels(t_kyr[1:], n)
    np.testing.assert_allclose(radii, np.repeat(sedov[:, None], 6, axis=1), rtol=0.05)
    mean = radii.mean(axis=1)
    slope = np.polyfit(np.log(t_kyr[1:]), np.log(mean), 1)[0]
    assert slope == pytest.approx(0.4, rel=0.05)


# ---------------------------------------------------------------- metric names

def test_mse_per_voxel_is_the_sum_over_the_voxel_count():
    true = np.full((2, 4, 4, 4, 2), 0.25)
    pred = np.full((2, 4, 4, 4, 2), 0.5)
    pred[1] = 1.5  # clipped to 1: error 0.75
    np.testing.assert_allclose(frame_mse_per_voxel(pred, true), [0.0625, 0.5625])
    np.testing.assert_allclose(frame_mse(pred, true), [128 * 0.0625, 128 * 0.5625])


def test_scores_name_their_mse_and_keep_the_old_key():
    scores = ForecastScores(output_length=1)
    shape = (1, 1, 4, 4, 4, 1)
    scores.update(np.full(shape, 0.25), np.full(shape, 0.5), np.full((1, 4, 4, 4, 1), 0.25))
    res = json.loads(json.dumps(scores.result(), allow_nan=False))
    assert res["mean"]["mse_sum_per_frame"] == pytest.approx(64 * 0.0625)
    assert res["mean"]["mse_per_voxel"] == pytest.approx(0.0625)
    assert res["mean"]["mse"] == res["mean"]["mse_sum_per_frame"]
    assert res["per_frame"]["mse"] == res["per_frame"]["mse_sum_per_frame"]
    assert "mse_sum" in scores.format_table().splitlines()[1]


def test_scores_find_off_centre_shells_across_the_boundary():
    n, centre = 24, (1.0, 22.0, 12.0)
    initial = np.full((1, n, n, n, 1), 0.2)
    true = np.stack([rim(n, 4, centre), rim(n, 5, centre)])[None, ..., None]
    pred = np.stack([rim(n, 4, centre), rim(n, 7, centre)])[None, ..., None]
    found, given = ForecastScores(output_length=2), ForecastScores(output_length=2)
    found.update(true, pred, initial)
    given.update(true, pred, initial, centre=[centre])
    for res in (found.result(), given.result()):
        np.testing.assert_allclose(res["per_frame"]["shell_radius_true"], [4, 5], atol=0.1)
        np.testing.assert_allclose(res["per_frame"]["shell_radius_pred"], [4, 7], atol=0.1)
        np.testing.assert_allclose(res["per_frame"]["shell_radius_error"], [0, 2], atol=0.1)
        np.testing.assert_allclose(res["per_frame"]["sector_radius_error"], [0, 2], atol=0.1)


# ---------------------------------------------------------------- affected particles

def sphere_case(rng, n=16, amplitude=0.3, r0=6.0, sign=1.0, count=20000):
    """Particles in a ball of radius 5.5 around the centre of a periodic box of side n (one
    cell = one length unit), and a forecast density 1 + sign A (1 - r^2 / r0^2) over a uniform
    one: the 10 % contour is the sphere r10^2 = r0^2 (1 - 0.1 / A)."""
    direction = rng.standard_normal((count, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    r = 5.5 * rng.random(count) ** (1 / 3)
    positions = n / 2 + direction * r[:, None]
    particles = GasParticles(positions=positions, masses=np.ones(count),
                             support=np.ones(count), box_size=float(n), time=0.0, units="code",
                             densities=np.ones(count), ids=np.arange(count))
    d2 = (periodic_offsets((n,) * 3, (np.full(3, n / 2) - 0.5)) ** 2).sum(axis=0)
    forecast = 1.0 + sign * amplitude * (1.0 - d2 / r0**2)
    later = GasParticles(positions=positions, masses=np.ones(count), support=np.ones(count),
                         box_size=float(n), time=1.0, units="code",
                         densities=1.0 + sign * amplitude * (1.0 - r**2 / r0**2),
                         ids=np.arange(count))
    r10 = r0 * np.sqrt(1.0 - 0.1 / amplitude)
    return particles, later, forecast, r, r10


@pytest.mark.parametrize("sign", [1.0, -1.0])  # the shell (up) and the interior (down)
def test_particles_in_a_known_sphere_are_flagged(rng, sign):
    particles, later, forecast, r, r10 = sphere_case(rng, sign=sign)
    flags, scores = affected_particles(forecast, particles, before=np.ones_like(forecast),
                                       later=later)
    # Trilinear interpolation of r^2 (between cell centres) overestimates it by at most 3/4
    # cell^2: the flagged particles lie inside the contour, and all with r^2 + 3/4 < r10^2 are.
    inner = np.sqrt(r10**2 - 0.75)
    assert not flags[r >= r10].any()
    assert flags[r < inner].all()
    assert scores["precision"] == 1.0
    assert scores["affected"] == int((r < r10).sum())
    assert (r < inner).sum() / (r < r10).sum() <= scores["recall"] <= 1.0
    assert scores["flagged"] == flags.sum() and scores["particles"] == len(r)
    assert scores["flagged_fraction"] == pytest.approx(flags.mean())
    assert scores["unmatched"] == 0
    # truth: the gas inside that inner sphere changes, by 50 %: every such particle is flagged
    later.densities = 1.0 + sign * 0.5 * (r < inner)
    _, scores = affected_particles(forecast, particles, before=np.ones_like(forecast),
                                   later=later)
    assert scores["recall"] == 1.0 and scores["affected"] == (r < inner).sum()


def test_affected_particles_follow_particle_ids(rng):
    particles, later, forecast, r, r10 = sphere_case(rng, count=2000)
    flags, scores = affected_particles(forecast, particles, before=np.ones_like(forecast),
                                       later=later)
    order = rng.permutation(len(r))[:-100]  # shuffled, and 100 particles gone
    moved = GasParticles(positions=later.positions[order], masses=later.masses[order],
                         support=later.support[order], box_size=later.box_size, time=1.0,
                         units="code", densities=later.densities[order], ids=later.ids[order])
    flags2, scores2 = affected_particles(forecast, particles, before=np.ones_like(forecast),
                                         later=moved)
    np.testing.assert_array_equal(flags2, flags)
    kept = np.zeros(len(r), bool)
    kept[order] = True
    assert scores2["unmatched"] == 100
    assert scores2["affected"] == int((r[kept] < r10).sum())
    assert scores2["recall"] == pytest.approx(flags[kept & (r < r10)].mean())


def test_particles_outside_a_sub_cube_are_not_flagged(rng):
    particles, _, forecast, r, _ = sphere_case(rng, count=2000)
    change = np.full((8, 8, 8), 2.0)  # everything inside the cube doubles
    flags, scores = affected_particles(change, particles, before=np.ones_like(change),
                                       size=4.0, centre=(8.0, 8.0, 8.0))
    inside = (np.abs(particles.positions - 8.0) < 2.0).all(axis=1)
    np.testing.assert_array_equal(flags, inside)
    assert "recall" not in scores
