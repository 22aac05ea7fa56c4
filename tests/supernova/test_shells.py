"""Shell geometry: Sedov-Taylor law, masks, radii and IoU against analytic values."""
import numpy as np
import pytest

from tfastro.supernova.evaluation import mask_iou, shell_mask, shell_radius
from tfastro.supernova.synthetic import sedov_taylor_radius

M_H = 1.6735575e-24  # g, hydrogen atom
YEAR = 3.15576e7  # s, Julian year
PARSEC = 3.0856776e18  # cm


def spherical_shell(n, radius, center=None):
    c = np.full(3, (n - 1) / 2) if center is None else np.asarray(center, dtype=float)
    i, j, k = np.indices((n, n, n))
    r = np.sqrt((i - c[0]) ** 2 + (j - c[1]) ** 2 + (k - c[2]) ** 2)
    return np.abs(r - radius) < 0.5


@pytest.mark.parametrize("radius", [3.0, 6.5, 10.0, 14.0])
def test_shell_radius_of_a_spherical_shell(radius):
    assert abs(shell_radius(spherical_shell(32, radius)) - radius) < 0.5


def test_shell_radius_off_centre_and_voxel_size():
    mask = spherical_shell(32, 6.0, center=(10, 12, 20))
    assert abs(shell_radius(mask, center=(10, 12, 20)) - 6.0) < 0.5
    # measured from the grid centre instead, the same voxels sit much further out on average
    assert shell_radius(mask) > 8.0
    assert shell_radius(mask, center=(10, 12, 20), voxel_size=2.5) == pytest.approx(
        2.5 * shell_radius(mask, center=(10, 12, 20)))


def test_shell_radius_edge_cases():
    assert np.isnan(shell_radius(np.zeros((4, 4, 4), bool)))
    with pytest.raises(ValueError):
        shell_radius(np.zeros((4, 4), bool))


def test_sedov_taylor_scaling():
    t = np.array([1.0, 32.0])
    r = sedov_taylor_radius(t, energy=3.0, density=5.0)
    assert r[1] / r[0] == pytest.approx(4.0)  # 32^(2/5) = 4
    assert (sedov_taylor_radius(1.0, 32.0 * 3.0, 5.0) / r[0]) == pytest.approx(2.0)  # E^(1/5)
    assert (sedov_taylor_radius(1.0, 3.0, 32.0 * 5.0) / r[0]) == pytest.approx(0.5)  # rho^(-1/5)


def test_sedov_taylor_textbook_value():
    # E = 1e51 erg into n_H = 1 cm^-3 gas of mean mass 1.4 m_H per H atom: the standard
    # estimate R = 1.54e19 cm (E51 / n_H)^(1/5) t_kyr^(2/5) (e.g. Draine 2011, ch. 39),
    # i.e. about 12.5 pc after 10 kyr.
    rho = 1.4 * M_H
    r_1kyr = sedov_taylor_radius(1e3 * YEAR, 1e51, rho)
    assert r_1kyr == pytest.approx(1.54e19, rel=0.01)
    assert sedov_taylor_radius(1e4 * YEAR, 1e51, rho) / PARSEC == pytest.approx(12.5, rel=0.01)


def test_shell_mask_threshold_is_strict():
    initial = np.full(4, 2.0)
    frame = np.array([2.0, 2.2, 2.2001, 3.0])  # 2.2 = exactly 10 per cent up: not shell
    np.testing.assert_array_equal(shell_mask(frame, initial), [False, False, True, True])
    np.testing.assert_array_equal(shell_mask(frame, initial, threshold=0.4), [False] * 3 + [True])


def test_mask_iou():
    a = np.array([1, 1, 0, 0], bool)
    b = np.array([0, 1, 1, 0], bool)
    assert mask_iou(a, a) == 1.0
    assert mask_iou(a, ~a) == 0.0
    assert mask_iou(a, b) == pytest.approx(1 / 3)
    assert mask_iou(np.zeros(4, bool), np.zeros(4, bool)) == 1.0
