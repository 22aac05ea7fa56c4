"""Bispectrum: Pylians3 reference outputs, the estimator written out in real space, and the
tree-level bispectrum of a quadratic (local f_NL-like) field."""
import json

import numpy as np
import pytest

from tests.reference import load_reference
from tfastro.core.errors import UserInputError
from tfastro.fields.bispectra import bispectrum, triangle_third_side

THETAS = np.linspace(0.0, np.pi, 25)


def direct_bispectrum(field, box_size, k1, k2, thetas, mas_order=0):
    """Pylians' Bk as written, in float64 numpy: each shell transformed back to the grid and the
    sums taken over cells. Returns (B, Q, P1, P2, P3, triangles)."""
    n = field.shape[0]
    k_f = 2.0 * np.pi / box_size
    axes = (0, 1, 2)
    kx = np.fft.fftfreq(n, 1.0 / n)[:, None, None]
    ky = np.fft.fftfreq(n, 1.0 / n)[None, :, None]
    kz = np.fft.rfftfreq(n, 1.0 / n)[None, None, :]
    kmod = np.sqrt(kx**2 + ky**2 + kz**2)  # in units of k_F
    delta_k = np.fft.rfftn(field.astype(np.float64))
    delta_k /= (np.sinc(kx / n) * np.sinc(ky / n) * np.sinc(kz / n)) ** mas_order

    def shell(k):
        inside = (kmod >= (k - k_f) / k_f) & (kmod < (k + k_f) / k_f)
        return (np.fft.irfftn(delta_k * inside, s=field.shape, axes=axes),
                np.fft.irfftn(inside.astype(np.complex128), s=field.shape, axes=axes))

    def power(d, i):
        return np.sum(d * d) / np.sum(i * i) * box_size**3 / n**6

    d1, i1 = shell(k1)
    d2, i2 = shell(k2)
    b, p3, triangles = [], [], []
    for k3 in triangle_third_side(k1, k2, thetas):
        d3, i3 = shell(k3)
        b.append(np.sum(d1 * d2 * d3) / np.sum(i1 * i2 * i3) * box_size**6 / n**9)
        p3.append(power(d3, i3))
        triangles.append(np.sum(i1 * i2 * i3) * n**6)  # unnormalised inverse FFTs, / N^3
    b, p3 = np.array(b), np.array(p3)
    p1, p2 = power(d1, i1), power(d2, i2)
    return b, b / (p1 * p2 + p1 * p3 + p2 * p3), p1, p2, p3, np.array(triangles)


def gaussian_field(rng, n, slope, sigma):
    """Gaussian random field on n^3 cells with P(k) proportional to k^slope, rms ``sigma``."""
    kmod = np.sqrt(np.fft.fftfreq(n)[:, None, None] ** 2 + np.fft.fftfreq(n)[None, :, None] ** 2
                   + np.fft.rfftfreq(n)[None, None, :] ** 2)
    amplitude = np.where(kmod > 0, kmod, 1.0) ** (slope / 2.0)
    amplitude[0, 0, 0] = 0.0
    white = np.fft.rfftn(rng.standard_normal((n, n, n)))
    g = np.fft.irfftn(white * amplitude, s=(n, n, n), axes=(0, 1, 2))
    return (g * sigma / g.std()).astype(np.float32)


def test_matches_pylians_reference():
    ref = load_reference("pylians_statistics.npz")
    box = json.loads(str(ref["about"]))["box3d"]
    result = bispectrum(ref["pk3d/field"], box, ref["bk/k1"], ref["bk/k2"], ref["bk/theta"])
    np.testing.assert_allclose(result.B, ref["bk/B"], rtol=1e-3)
    np.testing.assert_allclose(result.Q, ref["bk/Q"], rtol=1e-3)
    np.testing.assert_allclose(result.k3, triangle_third_side(
        ref["bk/k1"], ref["bk/k2"], ref["bk/theta"]), rtol=1e-12)


@pytest.mark.parametrize("n, mas, mas_order", [(24, None, 0), (25, "CIC", 2), (24, "TSC", 3)])
def test_matches_real_space_estimator(rng, n, mas, mas_order):
    # Odd and even grids, mass-assignment corrections, and sides reaching past k_Nyquist where
    # triangles close only modulo N (aliased), which Pylians' sums over cells count.
    box, k1, k2 = 50.0, 0.9, 1.1
    field = rng.lognormal(0.0, 0.5, size=(n, n, n)).astype(np.float32)
    b, q, p1, p2, p3, triangles = direct_bispectrum(field, box, k1, k2, THETAS, mas_order)
    result = bispectrum(field, box, k1, k2, THETAS, mas=mas)
    np.testing.assert_allclose(result.B, b, rtol=1e-4)
    np.testing.assert_allclose(result.Q, q, rtol=1e-4)
    np.testing.assert_allclose([result.P1, result.P2], [p1, p2], rtol=1e-5)
    np.testing.assert_allclose(result.P3, p3, rtol=1e-5)
    np.testing.assert_allclose(result.triangles, triangles, rtol=1e-9)
    assert np.all(result.triangles == np.round(triangles))


def test_third_side():
    np.testing.assert_allclose(triangle_third_side(0.3, 0.4, [0.0, np.pi / 2, np.pi]),
                               [0.7, 0.5, 0.1], rtol=1e-12)


def test_symmetric_under_exchange_of_k1_and_k2(rng):
    field = rng.lognormal(0.0, 0.5, size=(32, 32, 32))
    a = bispectrum(field, 100.0, 0.3, 0.5, THETAS)
    b = bispectrum(field, 100.0, 0.5, 0.3, THETAS)
    np.testing.assert_allclose(b.k3, a.k3, rtol=1e-12)
    np.testing.assert_allclose(b.B, a.B, rtol=1e-5)
    np.testing.assert_allclose(b.Q, a.Q, rtol=1e-5)
    np.testing.assert_allclose([b.P1, b.P2], [a.P2, a.P1], rtol=1e-6)
    np.testing.assert_array_equal(b.triangles, a.triangles)


def test_gaussian_and_quadratic_fields():
    # delta = g + f (g^2 - <g^2>) with g Gaussian: to first order in f (Wick's theorem)
    # <delta_k1 delta_k2 delta_k3> = 2 f (P1 P2 + P1 P3 + P2 P3) while P is P_g, so Q = 2 f at tree
    # level; a Gaussian field has Q = 0. Over 20 seeds (64^3, k^-2, rms 0.3, f = 0.5) the angle
    # means scattered by 0.06 (Q of g, and of delta around 2 f) and 0.03 (odd part below).
    n, box, f = 64, 100.0, 0.5
    k_f = 2.0 * np.pi / box
    k1, k2 = 12 * k_f, 15 * k_f
    g = gaussian_field(np.random.default_rng(7), n, slope=-2.0, sigma=0.3)
    quadratic = g**2 - np.mean(g**2)
    gaussian = bispectrum(g, box, k1, k2, THETAS)
    plus = bispectrum(g + f * quadratic, box, k1, k2, THETAS)
    minus = bispectrum(g - f * quadratic, box, k1, k2, THETAS)
    assert abs(np.mean(gaussian.Q)) < 0.25
    assert abs(np.mean(plus.Q) - 2 * f) < 0.25
    assert np.all(plus.B > 0) and np.all(minus.B < 0)
    # The part of B odd in f drops the Gaussian field's own (noise) bispectrum exactly.
    pp = gaussian.P1 * gaussian.P2 + gaussian.P1 * gaussian.P3 + gaussian.P2 * gaussian.P3
    odd = (plus.B - minus.B) / 2.0 / pp
    assert abs(np.mean(odd) / (2 * f) - 1.0) < 0.12


def test_scalar_angle():
    field = np.random.default_rng(3).standard_normal((16, 16, 16))
    result = bispectrum(field, 16.0, 2.0, 2.5, 1.0)
    assert result.B.shape == result.Q.shape == result.k3.shape == (1,)


@pytest.mark.parametrize("kwargs, name", [
    (dict(field=np.zeros((16, 16))), "field"),
    (dict(field=np.zeros((16, 16, 8))), "field"),
    (dict(k1=0.0), "k1"),
    (dict(k1=3.2), "k1"),  # k_Nyquist = pi for 16 cells in 16 h^-1 Mpc
    (dict(k2=-1.0), "k2"),
    (dict(k2=[1.0, 2.0]), "k2"),
    (dict(thetas=np.zeros((2, 2))), "thetas"),
    (dict(thetas=[np.nan]), "thetas"),
    (dict(k1=np.pi, k2=np.pi, thetas=[0.0]), "thetas"),  # k3 = 2 k_Nyquist: an empty shell
    (dict(mas="CIC4"), "mas"),
    (dict(box_size=-1.0), "box_size"),
])
def test_bad_input(kwargs, name):
    args = dict(field=np.ones((16, 16, 16)), box_size=16.0, k1=1.0, k2=1.5, thetas=THETAS)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        bispectrum(**args)


def test_complex_and_nonfinite_fields():
    field = np.random.default_rng(4).standard_normal((16, 16, 16))
    with pytest.raises(UserInputError, match="field: expected real"):
        bispectrum(field.astype(complex), 16.0, 1.0, 1.5, THETAS)
    field[3, 4, 5] = np.inf
    with pytest.raises(UserInputError, match="field: expected finite"):
        bispectrum(field, 16.0, 1.0, 1.5, THETAS)
    assert np.all(np.isnan(bispectrum(field, 16.0, 1.0, 1.5, THETAS, allow_nonfinite=True).B))
