"""HOD baseline: the drawn stellar masses follow the hydro distribution of their host-mass bin
and type (two-sample KS tests), a shifted distribution is told apart, empty bins fall back to
the nearest filled bin."""
import numpy as np
import pytest
from scipy import stats

from tfastro.dm2gal.hod import hod_stellar_masses, host_mass_edges

LEVELS = 10


def catalogue(rng, n, satellite_offset=-0.5):
    """Subhalos in hosts at 10 well-separated mass levels, log10 M = 10.25 + 0.5 i +- 0.1, so
    that level i is host-mass bin i of the shared 10 log bins; log10 M* = 0.8 log10 M + 1
    (+ ``satellite_offset`` for satellites) + 0.3 dex scatter."""
    level = rng.integers(0, LEVELS, n)
    log_host = 10.25 + 0.5 * level + rng.uniform(-0.1, 0.1, n)
    central = rng.random(n) < 0.4
    log_stellar = 0.8 * log_host + 1.0 + np.where(central, 0.0, satellite_offset) \
        + 0.3 * rng.standard_normal(n)
    return level, 10**log_host, central, 10**log_stellar


@pytest.fixture(scope="module")
def drawn():
    rng = np.random.default_rng(5)
    hydro = catalogue(rng, 8000)
    dark = catalogue(rng, 8000)
    masses = hod_stellar_masses(dark[1], dark[2], hydro[1], hydro[2], hydro[3], bins=LEVELS,
                                seed=0)
    return dark, hydro, masses


def test_levels_are_the_host_mass_bins(drawn):
    dark, hydro, _ = drawn
    edges = host_mass_edges(dark[1], hydro[1], LEVELS)
    for level, host in (dark[:2], hydro[:2]):
        np.testing.assert_array_equal(
            np.clip(np.digitize(np.log10(host), edges) - 1, 0, LEVELS - 1), level)


def test_draws_reproduce_each_bin_and_type_distribution(drawn):
    dark, hydro, masses = drawn
    shifted_p = []
    for level in range(LEVELS):
        for central in (True, False):
            mine = (dark[0] == level) & (dark[2] == central)
            pool = hydro[3][(hydro[0] == level) & (hydro[2] == central)]
            assert mine.sum() > 100 and pool.size > 100
            assert set(masses[mine]) <= set(pool)  # drawn from the right pool
            assert stats.ks_2samp(masses[mine], pool).pvalue > 0.01
            shifted_p.append(stats.ks_2samp(masses[mine], pool * 10**0.2).pvalue)
    # control: the same test rejects the distribution shifted by 0.2 dex in every bin
    assert max(shifted_p) < 0.01


def test_types_differ_within_a_bin(drawn):
    dark, _, masses = drawn
    in_bin = dark[0] == 4
    centrals, satellites = masses[in_bin & dark[2]], masses[in_bin & ~dark[2]]
    np.testing.assert_allclose(np.median(np.log10(centrals)) - np.median(np.log10(satellites)),
                               0.5, atol=0.1)


def test_empty_bin_falls_back_to_the_nearest_lower_on_a_tie():
    rng = np.random.default_rng(6)
    level, host, central, stellar = catalogue(rng, 4000)
    keep = ~((level == 3) & ~central)  # no hydro satellites in bin 3
    d_level, d_host, d_central, _ = catalogue(rng, 2000)
    masses = hod_stellar_masses(d_host, d_central, host[keep], central[keep], stellar[keep],
                                bins=LEVELS, seed=1)
    orphans = (d_level == 3) & ~d_central
    assert orphans.sum() > 20
    pool_2 = set(stellar[(level == 2) & ~central])
    assert set(masses[orphans]) <= pool_2  # bins 2 and 4 are equally near: the lower one


def test_same_seed_same_draws_and_bad_input():
    rng = np.random.default_rng(7)
    _, host, central, stellar = catalogue(rng, 500)
    a = hod_stellar_masses(host, central, host, central, stellar, seed=3)
    np.testing.assert_array_equal(a, hod_stellar_masses(host, central, host, central, stellar,
                                                        seed=3))
    with pytest.raises(ValueError, match="host_mass_dark"):
        hod_stellar_masses(-host, central, host, central, stellar)
    with pytest.raises(ValueError, match="stellar_mass_hydro"):
        hod_stellar_masses(host, central, host, central, stellar[:-1])
    with pytest.raises(ValueError, match="satellite"):
        hod_stellar_masses(host, central, host[central], central[central], stellar[central])
