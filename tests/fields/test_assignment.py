"""Mass assignment (NGP, CIC, TSC, PCS) against Pylians3 outputs, analytic weights, and its
two backends (numba, when installed, and TensorFlow) against each other."""
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.reference import load_reference
from tfastro.core.errors import UserInputError
from tfastro.fields.assignment import mass_assignment
from tfastro.fields.spectra import power_spectrum

MODULE = sys.modules[mass_assignment.__module__]
SCHEMES = ("NGP", "CIC", "TSC", "PCS")
WINDOW_ORDER = {"NGP": 1, "CIC": 2, "TSC": 3, "PCS": 4}  # W(k) = prod_i sinc(k_i / N)^p
BACKENDS = ["tensorflow", pytest.param("numba", marks=pytest.mark.skipif(
    MODULE.assignment_kernels is None, reason="numba is not installed"))]
# cells of 2 h^-1 Mpc: node positions are exact in float32
N, L = 16, 32.0
CELL = L / N


def one_particle(cells, scheme):
    """Grid of one unit-mass particle at ``cells`` (position in cell units)."""
    pos = np.asarray(cells, dtype=np.float64)[None, :] * CELL
    return mass_assignment(pos, N, L, scheme)


def expected_grid(ndim, axis_weights):
    """Outer product of per-axis weights {node: weight} on an (N,)*ndim grid."""
    grid = np.ones((), dtype=np.float64)
    for weights in axis_weights:
        axis = np.zeros(N)
        for node, w in weights.items():
            axis[node % N] += w
        grid = np.multiply.outer(grid, axis)
    assert grid.ndim == ndim
    return grid


@pytest.mark.parametrize("scheme", ["NGP", "CIC", "TSC"])
def test_reproduces_pylians_grids(scheme):
    ref = load_reference("pylians_statistics.npz")
    grid = mass_assignment(ref["mas/pos"], 32, float(ref["mas/box"]), scheme,
                           weights=ref["mas/weights"])
    assert grid.dtype == np.float32 and grid.shape == (32, 32, 32)
    # Pylians computes x = pos N / L in float32 (error ~4e-6 cells at x ~ 32), tfastro in
    # float64: cells differ by up to 6.4e-6 absolute (mean cell 0.6), hence the absolute floor.
    np.testing.assert_allclose(grid, ref[f"mas/{scheme}"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_total_mass_is_conserved(rng, scheme, ndim):
    pos = rng.uniform(0, L, (1000, ndim))
    masses = rng.uniform(0.5, 2.0, 1000)
    grid = mass_assignment(pos, N, L, scheme, weights=masses)
    assert grid.shape == (N,) * ndim
    assert grid.min() >= 0
    assert grid.sum() == pytest.approx(masses.sum(), rel=1e-5)
    assert mass_assignment(pos, N, L, scheme).sum() == pytest.approx(1000, rel=1e-5)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("scheme", ["NGP", "CIC"])
def test_particle_on_a_node_fills_one_cell(scheme, ndim):
    node = (3, 7, 12)[:ndim]
    grid = one_particle(node, scheme)
    assert grid[node] == pytest.approx(1.0, abs=1e-6)
    assert grid.sum() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("ndim", [2, 3])
def test_tsc_on_a_node_splits_three_quarters_and_eighths(ndim):
    node = (3, 7, 12)[:ndim]
    grid = one_particle(node, "TSC")
    axis_weights = [{n - 1: 1 / 8, n: 3 / 4, n + 1: 1 / 8} for n in node]
    np.testing.assert_allclose(grid, expected_grid(ndim, axis_weights), atol=1e-7)
    assert grid[node] == pytest.approx(0.75**ndim)


@pytest.mark.parametrize("ndim", [2, 3])
def test_pcs_on_a_node_splits_two_thirds_and_sixths(ndim):
    node = (3, 7, 12)[:ndim]
    grid = one_particle(node, "PCS")
    axis_weights = [{n - 1: 1 / 6, n: 2 / 3, n + 1: 1 / 6} for n in node]
    np.testing.assert_allclose(grid, expected_grid(ndim, axis_weights), atol=1e-7)


def test_pcs_cubic_spline_weights_off_node():
    # distances 1.3, 0.3, 0.7, 1.7 from x = 5.3: (2 - r)^3 / 6 and (4 - 6 r^2 + 3 r^3) / 6
    grid = one_particle([5.3, 9.0, 2.0], "PCS")
    axis_weights = [{4: 0.343 / 6, 5: 3.541 / 6, 6: 2.089 / 6, 7: 0.027 / 6},
                    {8: 1 / 6, 9: 2 / 3, 10: 1 / 6}, {1: 1 / 6, 2: 2 / 3, 3: 1 / 6}]
    np.testing.assert_allclose(grid, expected_grid(3, axis_weights), atol=1e-7)


def test_tsc_quadratic_spline_weights_off_node():
    # s = x - nearest node = 0.3: (1/2 - s)^2 / 2, 3/4 - s^2, (1/2 + s)^2 / 2
    grid = one_particle([5.3, 9.0, 2.0], "TSC")
    axis_weights = [{4: 0.02, 5: 0.66, 6: 0.32}, {8: 1 / 8, 9: 3 / 4, 10: 1 / 8},
                    {1: 1 / 8, 2: 3 / 4, 3: 1 / 8}]
    np.testing.assert_allclose(grid, expected_grid(3, axis_weights), atol=1e-7)


@pytest.mark.parametrize("ndim", [2, 3])
def test_cic_half_cell_splits_evenly_and_weights_are_linear(ndim):
    half = one_particle([4.5] * ndim, "CIC")
    np.testing.assert_allclose(half, expected_grid(ndim, [{4: 0.5, 5: 0.5}] * ndim), atol=1e-7)
    quarter = one_particle([4.25, 6.0, 9.75][:ndim], "CIC")
    axis_weights = [{4: 0.75, 5: 0.25}, {6: 1.0}, {9: 0.25, 10: 0.75}][:ndim]
    np.testing.assert_allclose(quarter, expected_grid(ndim, axis_weights), atol=1e-7)


def test_ngp_rounds_half_up():
    assert one_particle([4.5, 2.0, 2.0], "NGP")[5, 2, 2] == 1.0
    assert one_particle([4.49, 2.0, 2.0], "NGP")[4, 2, 2] == 1.0


def test_periodic_wrap():
    near_edge = one_particle([N - 0.25, 3.0, 3.0], "CIC")
    np.testing.assert_allclose(near_edge[[N - 1, 0], 3, 3], [0.25, 0.75], atol=1e-6)
    below_zero = one_particle([-0.25, 3.0, 3.0], "CIC")
    np.testing.assert_allclose(below_zero[[N - 1, 0], 3, 3], [0.25, 0.75], atol=1e-6)
    beyond = one_particle([N + 0.25, 3.0, 3.0], "CIC")
    np.testing.assert_allclose(beyond[[0, 1], 3, 3], [0.75, 0.25], atol=1e-6)
    for scheme in SCHEMES:  # exactly at box_size: the node 0
        at_box = one_particle([N, N, N], scheme)
        on_node = {"TSC": 0.75**3, "PCS": (2 / 3) ** 3}.get(scheme, 1.0)
        assert at_box[0, 0, 0] == pytest.approx(on_node)
    tsc = one_particle([0.0, 3.0, 3.0], "TSC")
    np.testing.assert_allclose(tsc[[N - 1, 0, 1], 3, 3], np.array([1, 6, 1]) * 9 / 128,
                               rtol=1e-6)  # (1/8, 3/4, 1/8) x 3/4 x 3/4
    # float32 round-off just below the box edge stays on the grid
    pos = np.full((1, 3), np.nextafter(np.float32(L), np.float32(0)))
    for scheme in SCHEMES:
        assert mass_assignment(pos, N, L, scheme).sum() == pytest.approx(1.0)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_chunked_accumulation_equals_one_call(rng, scheme):
    pos = rng.uniform(0, L, (1000, 3)).astype(np.float32)
    masses = rng.uniform(0.5, 2.0, 1000)
    whole = mass_assignment(pos, N, L, scheme, weights=masses)
    chunked = mass_assignment(pos, N, L, scheme, weights=masses, chunk_size=128)
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)
    first = mass_assignment(tf.constant(pos[:300]), N, L, scheme, weights=masses[:300])
    start = tf.constant(first)
    both = mass_assignment(pos[300:], N, L, scheme, weights=masses[300:], grid=start)
    np.testing.assert_allclose(both, whole, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(start.numpy(), first)  # ``grid`` was not updated in place
    assert np.abs(first).sum() < 0.5 * np.abs(whole).sum()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_concurrent_scatters_equal_one(rng, monkeypatch, scheme):
    """Chunks split among 3 scatters into separate grids (as on a 3-core CPU) sum to the
    grid of a single scatter, with a starting grid and a last chunk of another size."""
    pos = rng.uniform(0, L, (1500, 3))
    masses = rng.uniform(0.5, 2.0, 1500)
    start = rng.uniform(0, 1, (N,) * 3)
    monkeypatch.setattr(MODULE, "_scatter_parts", lambda cells: 1)
    one = mass_assignment(pos, N, L, scheme, weights=masses, grid=start, chunk_size=1024)
    monkeypatch.setattr(MODULE, "_scatter_parts", lambda cells: 3)
    three = mass_assignment(pos, N, L, scheme, weights=masses, grid=start, chunk_size=1024)
    np.testing.assert_allclose(three, one, rtol=1e-5, atol=1e-6)
    assert three.sum() == pytest.approx(start.sum() + masses.sum(), rel=1e-5)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_2d_is_the_3d_grid_projected_along_z(rng, scheme):
    pos = rng.uniform(0, L, (1000, 3))
    grid3d = mass_assignment(pos, N, L, scheme)
    grid2d = mass_assignment(pos[:, :2], N, L, scheme)
    np.testing.assert_allclose(grid2d, grid3d.sum(axis=2), rtol=1e-5, atol=1e-5)


def aliased_window_power(n, grid_size, scheme):
    """Sum over the aliases n + j N of W^2 along one axis, W = sinc(n / N)^p
    (Jing 2005, ApJ 620, 559)."""
    s = np.sin(np.pi * n / grid_size) ** 2
    return {"NGP": np.ones_like(s), "CIC": 1 - 2 / 3 * s, "TSC": 1 - s + 2 / 15 * s**2,
            "PCS": 1 - 4 / 3 * s + 2 / 5 * s**2 - 4 / 315 * s**3}[scheme]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_power_spectrum_of_random_particles_is_shot_noise(scheme):
    """P(k) of N_p uniform particles: L^3 / N_p times the aliased window power. Below k_Nyq / 2
    it is flat at L^3 / N_p for NGP as assigned and for CIC / TSC once MAS-corrected."""
    grid_size, box, n_particles = 128, 100.0, 200_000
    pos = np.random.default_rng(7).uniform(0, box, (n_particles, 3)).astype(np.float32)
    grid = mass_assignment(pos, grid_size, box, scheme)
    shot_noise = box**3 / n_particles
    n_bins = grid_size // 4 - 1  # the bins n k_F <= |k| < (n + 1) k_F below k_Nyq / 2
    # expected mean of the (uncorrected, corrected) P(k) / shot noise over these modes
    n = np.fft.fftfreq(grid_size, 1.0 / grid_size)
    n3 = np.stack(np.meshgrid(n, n, n, indexing="ij"))
    shell = np.floor(np.sqrt((n3**2).sum(0)))
    modes = (shell >= 1) & (shell <= n_bins)
    alias = np.prod(aliased_window_power(n3, grid_size, scheme), axis=0)[modes]
    window2 = np.prod(np.sinc(n3 / grid_size) ** (2 * WINDOW_ORDER[scheme]), axis=0)[modes]
    for mas, expected in ((None, alias.mean()), (scheme, (alias / window2).mean())):
        _, pk, n_modes = power_spectrum(grid, box, mas=mas, overdensity=True)
        assert n_modes[:n_bins].sum() == modes.sum() / 2  # independent modes: half of them
        mean = (pk[:n_bins] * n_modes[:n_bins]).sum() / n_modes[:n_bins].sum() / shot_noise
        # |delta_k|^2 of Poisson noise is exponential: relative error 1 / sqrt(modes)
        assert mean == pytest.approx(expected, abs=4 / np.sqrt(n_modes[:n_bins].sum()))
        if (mas is None) == (scheme == "NGP"):
            assert abs(expected - 1) < 0.02  # flat at the shot-noise level
        else:  # uncorrected CIC / TSC fall below it, corrected NGP rises above it
            assert abs(expected - 1) > 0.1


def test_bad_inputs_raise():
    pos = np.zeros((4, 3))
    with pytest.raises(ValueError, match="positions"):
        mass_assignment(np.array([[1.0, np.nan, 2.0]]), N, L)
    with pytest.raises(ValueError, match="positions"):
        mass_assignment(np.array([[1.0, np.inf]]), N, L)
    with pytest.raises(ValueError, match="positions"):
        mass_assignment(np.zeros((4, 4)), N, L)
    with pytest.raises(ValueError, match="positions"):
        mass_assignment(np.zeros(4), N, L)
    with pytest.raises(ValueError, match="scheme"):
        mass_assignment(pos, N, L, "SPH")
    with pytest.raises(ValueError, match="weights"):
        mass_assignment(pos, N, L, weights=np.ones(3))
    with pytest.raises(ValueError, match="weights"):
        mass_assignment(pos, N, L, weights=np.array([1.0, np.nan, 1.0, 1.0]))
    with pytest.raises(ValueError, match="grid"):
        mass_assignment(pos, N, L, grid=np.zeros((N, N)))
    with pytest.raises(ValueError, match="grid_size"):
        mass_assignment(pos, 0, L)
    with pytest.raises(ValueError, match="box_size"):
        mass_assignment(pos, N, -1.0)
    with pytest.raises(ValueError, match="chunk_size"):
        mass_assignment(pos, N, L, chunk_size=0)


@pytest.mark.parametrize("ndim", [2, 3])
def test_backends_agree(rng, ndim):
    """The numba kernel and the TensorFlow scatter give the same grids (float32 round-off), for
    every scheme, with weights, positions beyond the box edges and a starting grid."""
    pytest.importorskip("numba")
    pos = rng.uniform(-3.0, L + 3.0, (3000, ndim)).astype(np.float32)
    masses = rng.uniform(0.5, 2.0, 3000)
    start = rng.uniform(0, 1, (N,) * ndim)
    for scheme in SCHEMES:
        grids = [mass_assignment(pos, N, L, scheme, weights=masses, grid=start,
                                 chunk_size=1000, backend=backend)
                 for backend in ("numba", "tensorflow")]
        np.testing.assert_allclose(grids[0], grids[1], rtol=1e-5, atol=1e-5)
        assert grids[0].sum() == pytest.approx(start.sum() + masses.sum(), rel=1e-6)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_numba_slabs_of_any_thread_count_give_the_same_grid(rng, monkeypatch, scheme):
    """Threads own slabs of rows: 3 threads (rows 5, 5, 6 of 16) give the one-thread grid
    bit for bit (every cell sums its particles in the same order)."""
    pytest.importorskip("numba")
    pos = rng.uniform(-1.0, L + 1.0, (2000, 3))
    grids = []
    monkeypatch.setattr(MODULE, "_THREADED_UPDATES", 1)  # threads even for small chunks
    for cores in (1, 3):
        monkeypatch.setattr(MODULE, "_cores", lambda: cores)
        grids.append(mass_assignment(pos, N, L, scheme, backend="numba"))
    np.testing.assert_array_equal(grids[0], grids[1])
    assert grids[1].sum() == pytest.approx(2000, rel=1e-6)
    for axis in range(3):  # a NaN coordinate is found by the thread owning the particle's row
        bad = pos.copy()
        bad[1500, axis] = np.nan
        with pytest.raises(UserInputError, match="positions: expected finite"):
            mass_assignment(bad, N, L, scheme, backend="numba")


@pytest.mark.parametrize("backend", BACKENDS)
def test_nonfinite_and_complex_input(backend):
    pos = np.full((2, 3), 4.0)  # node (2, 2, 2)
    with pytest.raises(UserInputError, match="weights.*allow_nonfinite"):
        mass_assignment(pos, N, L, weights=np.array([1.0, np.nan]), backend=backend)
    with pytest.raises(UserInputError, match="grid.*finite"):
        mass_assignment(pos, N, L, grid=np.full((N,) * 3, np.inf), backend=backend)
    with pytest.raises(UserInputError, match="positions.*real"):
        mass_assignment(pos.astype(complex), N, L, backend=backend)
    with pytest.raises(UserInputError, match="weights.*real"):
        mass_assignment(pos, N, L, weights=np.ones(2, complex), backend=backend)
    with pytest.raises(UserInputError, match="positions.*finite"):  # whatever allow_nonfinite
        mass_assignment(np.full((2, 3), np.nan), N, L, allow_nonfinite=True, backend=backend)
    grid = mass_assignment(pos, N, L, "NGP", weights=np.array([1.0, np.nan]),
                           allow_nonfinite=True, backend=backend)
    assert np.isnan(grid[2, 2, 2]) and np.count_nonzero(grid) == 1


def test_backend_choice(monkeypatch):
    pos = np.full((2, 3), 4.0)  # node (2, 2, 2)
    with pytest.raises(UserInputError, match="backend"):
        mass_assignment(pos, N, L, backend="cython")
    monkeypatch.setattr(MODULE, "assignment_kernels", None)  # numba not installed
    with pytest.raises(UserInputError, match="numba is not installed"):
        mass_assignment(pos, N, L, backend="numba")
    assert mass_assignment(pos, N, L, "NGP")[2, 2, 2] == 2.0  # the TensorFlow fallback
