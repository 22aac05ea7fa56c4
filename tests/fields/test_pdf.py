"""Pixel PDFs against np.histogram, a lognormal field's analytic PDF and scipy's KS statistic."""
import numpy as np
import pytest
import tensorflow as tf
from scipy import special, stats

from tfastro.core.errors import UserInputError
from tfastro.fields.pdf import ks_distance, pdf_bin_edges, pdf_mean_std, pixel_pdf, pixel_pdfs


def lognormal_maps(rng, shape, mu=0.0, sigma=1.0):
    """exp(mu + sigma g), g unit Gaussian: log10 of it is Gaussian, mean mu/ln10, std sigma/ln10."""
    return np.exp(mu + sigma * rng.standard_normal(shape))


def test_pixel_pdfs_equal_np_histogram_of_log10(rng):
    maps = lognormal_maps(rng, (4, 32, 32), sigma=1.5)
    edges = np.linspace(-1.5, 1.0, 21)  # some pixels fall outside, both sides
    want = np.array([np.histogram(np.log10(m), edges, density=True)[0] for m in maps])
    np.testing.assert_allclose(pixel_pdfs(maps, edges), want, rtol=1e-12)
    pooled = np.histogram(np.log10(maps), edges, density=True)[0]
    np.testing.assert_allclose(pixel_pdf(tf.constant(maps, tf.float32), edges), pooled, rtol=1e-6)


def test_pixel_pdfs_on_uneven_edges_without_log(rng):
    maps = rng.standard_normal((3, 20, 20))  # e.g. maps already in normalised log space
    edges = np.array([-2.0, -0.7, -0.1, 0.0, 0.4, 1.5, 2.2])
    maps[0, 0, :3] = [edges[0], edges[3], edges[-1]]  # values on edges; the last edge included
    want = np.array([np.histogram(m, edges, density=True)[0] for m in maps])
    np.testing.assert_allclose(pixel_pdfs(maps, edges, log10=False), want, rtol=1e-12)


def test_shared_edges_span_both_sets_and_keep_every_value():
    a = np.array([[1e-2, 10**0.5]])
    b = np.array([[3.0, 1e3]])
    edges = pdf_bin_edges(a, b, bins=5)
    np.testing.assert_allclose(edges, [-2, -1, 0, 1, 2, 3], atol=1e-12)
    # one value in each of bins 0, 2 and 4: the extreme values are not dropped
    field = np.array([1e-2, 10**0.5, 1e3])
    np.testing.assert_allclose(pixel_pdf(field, edges), [1 / 3, 0, 1 / 3, 0, 1 / 3], rtol=1e-12)


def test_lognormal_field_has_a_gaussian_log_pdf(rng):
    mu, sigma = 1.2, 0.8
    maps = lognormal_maps(rng, (16, 64, 64), mu, sigma)  # 65536 pixels
    mean10, std10 = mu / np.log(10), sigma / np.log(10)
    edges = np.linspace(mean10 - 3 * std10, mean10 + 3 * std10, 25)
    pdf = pixel_pdf(maps, edges)
    # Expected bin averages of the Gaussian density; Poisson errors of the counts.
    cdf = 0.5 * (1 + special.erf((edges - mean10) / (np.sqrt(2) * std10)))
    inside = cdf[-1] - cdf[0]
    widths = np.diff(edges)
    want = np.diff(cdf) / inside / widths
    error = np.sqrt(want * widths * maps.size * inside) / (maps.size * inside * widths)
    assert np.max(np.abs(pdf - want) / np.maximum(error, 1e-12)) < 5
    # Mean and width of log10: those of the Gaussian within the edges, binned the same way.
    centres = 0.5 * (edges[1:] + edges[:-1])

    def moments(density):
        mean = np.sum(density * widths * centres)
        return mean, np.sqrt(np.sum(density * widths * (centres - mean) ** 2))

    (got_mean, got_std), (want_mean, want_std) = moments(pdf), moments(want)
    assert want_std == pytest.approx(std10, rel=0.02)  # truncation at 3 sigma, binning
    assert got_mean == pytest.approx(want_mean, abs=0.005)  # statistical error 0.0014
    assert got_std == pytest.approx(want_std, rel=0.01)  # statistical error 0.3 per cent


def test_pdf_mean_and_spread_over_maps(rng):
    # Maps of different mean log: the spread over maps is the scatter of their PDFs.
    maps = np.stack([lognormal_maps(rng, (24, 24), mu, 1.0) for mu in (-0.5, 0.0, 0.3, 1.0)])
    edges = np.linspace(-2.5, 2.5, 13)
    each = np.array([np.histogram(np.log10(m), edges, density=True)[0] for m in maps])
    mean, std = pdf_mean_std(maps, edges)
    np.testing.assert_allclose(mean, each.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(std, each.std(axis=0), rtol=1e-10, atol=1e-12)
    # Two maps, all pixels in bin 0 for one and in bin 1 for the other, bins 0.5 wide in log10.
    two = np.stack([np.full((4, 4), 10**0.25), np.full((4, 4), 10**0.75)])
    mean, std = pdf_mean_std(two, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(mean, [1.0, 1.0], rtol=1e-12)
    np.testing.assert_allclose(std, [1.0, 1.0], rtol=1e-12)


@pytest.mark.parametrize("kind", ["continuous", "ties", "lognormal"])
def test_ks_distance_equals_scipy_ks_2samp(rng, kind):
    if kind == "continuous":
        a, b = rng.standard_normal((10, 37)), rng.standard_normal(501) * 1.1
    elif kind == "ties":
        a, b = rng.integers(0, 6, 300), rng.integers(1, 7, 211)
    else:
        a, b = lognormal_maps(rng, (8, 16, 16)), lognormal_maps(rng, (5, 16, 16), mu=0.3)
    want = stats.ks_2samp(a.ravel(), b.ravel()).statistic
    assert ks_distance(a, b) == pytest.approx(want, abs=1e-12)


def test_ks_distance_is_unchanged_by_log10(rng):
    a, b = lognormal_maps(rng, (3, 16, 16)), lognormal_maps(rng, (2, 16, 16), mu=0.2)
    assert ks_distance(np.log10(a), np.log10(b)) == ks_distance(a, b) > 0.05


def test_ks_distance_limits(rng):
    a = rng.random(100)
    assert ks_distance(a, a[::-1]) == 0.0
    assert ks_distance(a, a + 2.0) == 1.0


@pytest.mark.parametrize("call,match", [
    (lambda: pixel_pdf(np.array([1.0, 0.0, 2.0]), [0, 1]), "field|maps.*positive"),
    (lambda: pdf_mean_std(-np.ones((2, 3)), [0, 1]), "maps.*positive"),
    (lambda: pdf_bin_edges(np.ones(3), np.array([2.0, -1.0])), r"fields\[1\].*positive"),
    (lambda: pixel_pdfs(np.ones((2, 3)), [0, 1, 1]), "edges"),
    (lambda: pdf_bin_edges(np.ones(3), bins=0), "bins"),
    (lambda: pdf_bin_edges(np.ones(3)), "fields"),
    (lambda: ks_distance([], [1.0]), "a is empty"),
    (lambda: ks_distance([1.0], [np.nan]), "b: expected finite"),
])
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_nonfinite_values_are_refused_or_left_out(rng):
    maps = rng.lognormal(size=(2, 50))
    edges = pdf_bin_edges(maps)
    bad = maps.copy()
    bad[0, :3] = [np.nan, np.inf, -np.inf]
    for call in (lambda: pixel_pdfs(bad, edges), lambda: pixel_pdf(bad, edges),
                 lambda: pdf_mean_std(bad, edges), lambda: pdf_bin_edges(bad)):
        with pytest.raises(UserInputError, match="finite.*allow_nonfinite"):
            call()
    # allowed: left out like values outside the edges, the PDF of the finite values
    allowed = pixel_pdfs(bad, edges, allow_nonfinite=True)
    np.testing.assert_allclose(allowed[0], pixel_pdfs(maps[:1, 3:], edges)[0], rtol=1e-12)
    np.testing.assert_allclose(pixel_pdf(bad, edges, allow_nonfinite=True),
                               pixel_pdf(np.concatenate([maps[0, 3:], maps[1]]), edges),
                               rtol=1e-12)
    with pytest.raises(UserInputError, match="maps: expected real"):
        pixel_pdfs(maps.astype(complex), edges)
    with pytest.raises(UserInputError, match="a: expected real"):
        ks_distance(maps.astype(complex), maps)
