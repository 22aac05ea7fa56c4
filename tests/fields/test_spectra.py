"""P(k), cross power and r(k) against Pylians3 outputs, powerbox, and analytic fields."""
import numpy as np
import pytest
import tensorflow as tf

from tests.reference import load_reference
from tfastro.core.errors import UserInputError
from tfastro.fields import fourier, spectra
from tfastro.fields.fourier import MAS_ORDER, field_modes, mode_bins, wavenumbers
from tfastro.fields.spectra import (correlation_coefficient, cross_correlations,
                                    cross_power_spectrum, cross_spectra, power_spectrum)

REFERENCE = "pylians_statistics.npz"
RTOL = 1e-4  # float32 FFTs against Pylians' float32 FFTW


def _max_rel(a, b):
    return float(np.max(np.abs(np.asarray(a) / np.asarray(b) - 1.0)))


@pytest.fixture(scope="module")
def reference():
    return load_reference(REFERENCE)


@pytest.fixture(scope="module")
def smooth_field():
    """A positive lognormal 32^3 field, P ∝ k^-2 before the exponential (built with numpy).

    Its spectrum spans ~3 decades: float32 FFT round-off stays below 1e-6 in every bin.
    """
    rng = np.random.default_rng(7)
    noise = rng.standard_normal((32, 32, 32))
    k = np.sqrt(sum(f**2 for f in np.meshgrid(*[np.fft.fftfreq(32)] * 3, indexing="ij")))
    g = np.fft.ifftn(np.fft.fftn(noise) / (k + 1 / 32)).real
    return np.exp(0.7 * g / g.std()).astype(np.float32)


# ---------------------------------------------------------------- Pylians3 reference outputs
@pytest.mark.parametrize("mas", [None, "CIC"])
def test_pk3d_matches_pylians(reference, mas):
    k, pk, nmodes = power_spectrum(reference["pk3d/field"], 100.0, mas=mas)
    key = f"pk3d/{mas}"
    np.testing.assert_array_equal(nmodes, reference[f"{key}/Nmodes"])
    np.testing.assert_allclose(k, reference[f"{key}/k"], rtol=1e-12)
    np.testing.assert_allclose(pk, reference[f"{key}/Pk"], rtol=RTOL)
    print(f"pk3d {mas}: max |rel| Pk {_max_rel(pk, reference[f'{key}/Pk']):.2e}")


def test_pk2d_matches_pylians_pk_plane(reference):
    k, pk, nmodes = power_spectrum(reference["pk2d/field"], 25.0)
    np.testing.assert_array_equal(nmodes, reference["pk2d/Nmodes"])
    np.testing.assert_allclose(k, reference["pk2d/k"], rtol=1e-12)
    np.testing.assert_allclose(pk, reference["pk2d/Pk"], rtol=RTOL)
    print(f"pk2d: max |rel| Pk {_max_rel(pk, reference['pk2d/Pk']):.2e}")


def test_xpk3d_matches_pylians(reference):
    a, b = reference["xpk3d/field_a"], reference["xpk3d/field_b"]
    k, xpk, nmodes = cross_power_spectrum(a, b, 100.0)
    np.testing.assert_array_equal(nmodes, reference["xpk3d/Nmodes"])
    np.testing.assert_allclose(k, reference["xpk3d/k"], rtol=1e-12)
    np.testing.assert_allclose(xpk, reference["xpk3d/XPk"], rtol=RTOL)
    # All pairs at once, channels last.
    _, spectra, _ = cross_spectra(np.stack([a, b], axis=-1), 100.0, channel_axis=-1, ndim=3)
    np.testing.assert_allclose(spectra[0, 0], reference["xpk3d/Pk_a"], rtol=RTOL)
    np.testing.assert_allclose(spectra[1, 1], reference["xpk3d/Pk_b"], rtol=RTOL)
    np.testing.assert_allclose(spectra[0, 1], reference["xpk3d/XPk"], rtol=RTOL)
    np.testing.assert_array_equal(spectra[0, 1], spectra[1, 0])
    r_ref = reference["xpk3d/XPk"] / np.sqrt(reference["xpk3d/Pk_a"] * reference["xpk3d/Pk_b"])
    _, r, _ = correlation_coefficient(a, b, 100.0)
    np.testing.assert_allclose(r, r_ref, rtol=RTOL)
    print(f"xpk3d: max |rel| XPk {_max_rel(xpk, reference['xpk3d/XPk']):.2e}, "
          f"r {_max_rel(r, r_ref):.2e}")


# ---------------------------------------------------------------------- analytic fields
@pytest.mark.parametrize("shape,box", [((32, 32, 32), 50.0), ((128, 128), 25.0)])
def test_white_noise_is_flat(shape, box):
    sigma = 2.5
    field = np.random.default_rng(3).normal(0.0, sigma, shape)
    _, pk, nmodes = power_spectrum(field, box)
    expected = sigma**2 * (box / shape[0]) ** len(shape)
    # |delta_k|^2 of white noise is exponential with mean P: the mode-weighted mean has a
    # relative spread 1/sqrt(sum Nmodes), each bin 1/sqrt(Nmodes).
    pooled = np.sum(nmodes * pk) / np.sum(nmodes)
    assert abs(pooled / expected - 1) < 4.0 / np.sqrt(nmodes.sum()), pooled / expected
    pulls = (pk / expected - 1) * np.sqrt(nmodes)
    assert np.max(np.abs(pulls)[nmodes >= 30]) < 5.0
    print(f"white noise {shape}: pooled P / sigma^2 (L/N)^d = {pooled / expected:.4f}")


def _plane_wave(shape, n, amplitude, phase=0.3):
    x = np.indices(shape)
    return amplitude * np.cos(2 * np.pi * np.tensordot(n, x, axes=1) / shape[0] + phase)


@pytest.mark.parametrize("shape,n", [((32, 32, 32), (3, 4, 0)), ((32, 32, 32), (-3, 4, 0)),
                                     ((32, 32, 32), (2, -5, 7)), ((64, 64), (-6, 8))])
def test_plane_wave_lands_in_its_bin(shape, n):
    box, amplitude = 40.0, 1.7
    d = len(shape)
    bins = mode_bins(shape, box)
    k, pk, nmodes = power_spectrum(_plane_wave(shape, n, amplitude), box)
    b = int(np.floor(np.linalg.norm(n))) - 1
    # delta_k = A N^d / 2 at +n and -n; one of the pair is an independent mode.
    expected = amplitude**2 * box**d / 4.0 / nmodes[b]
    np.testing.assert_allclose(pk[b], expected, rtol=1e-5)
    assert np.max(np.abs(np.delete(pk, b))) < 1e-6 * expected
    assert bins.k[b] == k[b]
    # CIC correction divides delta_k by prod_i sinc(n_i / N)^2.
    _, pk_cic, _ = power_spectrum(_plane_wave(shape, n, amplitude), box, mas="CIC")
    window = np.prod(np.sinc(np.asarray(n) / shape[0]) ** MAS_ORDER["CIC"])
    np.testing.assert_allclose(pk_cic[b], expected / window**2, rtol=1e-5)


@pytest.mark.parametrize("shape", [(16, 16, 16), (32, 32)])
def test_nyquist_mode_counted_once(shape):
    # (-1)^x along the first axis: a single self-conjugate mode delta_k = A N^d at k = N/2.
    box, amplitude = 10.0, 0.8
    field = amplitude * (-1.0) ** np.indices(shape)[0]
    _, pk, nmodes = power_spectrum(field, box)
    b = shape[0] // 2 - 1
    np.testing.assert_allclose(pk[b], amplitude**2 * box ** len(shape) / nmodes[b], rtol=1e-5)


def test_mode_counts_and_wavenumbers():
    bins = mode_bins((64, 64, 64), 100.0)
    assert bins.nbins == 55 and bins.counts[0] == 13
    assert bins.index.shape == (64, 64, 33)
    # Independent modes: every mode of the full grid but the zero mode, counted once per
    # conjugate pair (the 7 other self-conjugate modes once each).
    assert bins.counts.sum() == (64**3 - 8) / 2 + 7
    kmag = wavenumbers((64, 64, 64), 100.0)
    assert kmag[0, 0, 32] == pytest.approx(np.pi * 64 / 100.0)  # Nyquist taken as +N/2
    assert kmag[32, 0, 0] == pytest.approx(np.pi * 64 / 100.0)


# -------------------------------------------------------------------------- powerbox
def _powerbox_spectrum(field, box, field2=None):
    """powerbox.get_power on Pylians' bins, weighting each independent mode once.

    Like-for-like settings: dimensionless=False (the field as given), a = b = 1 (k in
    rad / length, FT = (L/N)^d x the sum over cells) and vol_normalised_power=True give
    P = |sum|^2 L^d / N^(2d). Edges at (n - 1e-3) k_F, n = 1 .. nbins + 1, reproduce
    floor(|k| / k_F) - 1 without float round-off at the edges: |k|^2 / k_F^2 is an integer, so
    no |k| lies within 1 / (2n) k_F below n k_F. powerbox averages over the full grid, where
    a conjugate pair appears twice and a self-conjugate mode once: the
    latter gets weight 2, the zero mode 0, so its averages equal Pylians' over independent
    modes and nsamples = 2 Nmodes.
    """
    powerbox = pytest.importorskip("powerbox")
    n = field.shape[0]
    k_f = 2 * np.pi / box
    edges = k_f * (np.arange(1, mode_bins(field.shape, box).nbins + 2) - 1e-3)

    def weights(freq, kmag):
        ints = np.meshgrid(*[np.rint(f / k_f).astype(int) for f in freq], indexing="ij")
        self_conjugate = np.all([(m == 0) | (np.abs(m) == n // 2) for m in ints], axis=0)
        return np.where(kmag == 0, 0.0, np.where(self_conjugate, 2.0, 1.0))

    result = powerbox.get_power(np.asarray(field, np.float64), box,
                                deltax2=None if field2 is None else np.asarray(field2, np.float64),
                                a=1.0, b=1.0, vol_normalised_power=True, bins=edges,
                                dimensionless=False, k_weights=weights, nthreads=1)
    return result.bin_avg, result.power, result.nsamples / 2


@pytest.mark.parametrize("ndim", [2, 3])
def test_agrees_with_powerbox(smooth_field, ndim):
    field = smooth_field if ndim == 3 else smooth_field[:, :, 5]
    other = np.roll(field, 3, axis=0) + 0.5 * field**2
    box = 75.0
    k, pk, nmodes = power_spectrum(field, box)
    k_pb, pk_pb, n_pb = _powerbox_spectrum(field, box)
    np.testing.assert_allclose(n_pb, nmodes, rtol=1e-12)
    np.testing.assert_allclose(k, k_pb, rtol=1e-12)
    np.testing.assert_allclose(pk, pk_pb, rtol=1e-5)
    _, xpk, _ = cross_power_spectrum(field, other, box)
    _, xpk_pb, _ = _powerbox_spectrum(field, box, field2=other)
    np.testing.assert_allclose(xpk, xpk_pb, rtol=1e-5)
    # overdensity=True is rho / mean - 1 (powerbox's `dimensionless` acts on particle
    # samples only, so it gets the contrast computed in float64 numpy).
    _, pk_delta, _ = power_spectrum(field, box, overdensity=True)
    _, pk_delta_pb, _ = _powerbox_spectrum(field / field.mean(dtype=np.float64) - 1.0, box)
    np.testing.assert_allclose(pk_delta, pk_delta_pb, rtol=1e-5)
    print(f"powerbox {ndim}D: max |rel| P {_max_rel(pk, pk_pb):.2e}, "
          f"XP {_max_rel(xpk, xpk_pb):.2e}, P(delta) {_max_rel(pk_delta, pk_delta_pb):.2e}")


def test_overdensity_is_rho_over_mean_minus_one(smooth_field):
    _, pk, _ = power_spectrum(3.0 * smooth_field, 60.0, overdensity=True)
    _, pk_manual, _ = power_spectrum(smooth_field / smooth_field.mean() - 1.0, 60.0)
    np.testing.assert_allclose(pk, pk_manual, rtol=1e-5)


# ------------------------------------------------------------------------------ batches
def test_batched_cross_spectra_equal_single_calls():
    rng = np.random.default_rng(11)
    base = rng.standard_normal((4, 32, 32))
    maps = np.stack([base, 0.5 * base + rng.standard_normal((4, 32, 32)),
                     np.roll(base, 2, axis=1)], axis=-1).astype(np.float32)  # (B, N, N, C)
    box = 25.0
    k, spectra, nmodes = cross_spectra(maps, box, channel_axis=-1)
    _, r, _ = cross_correlations(maps, box)
    assert spectra.shape == (4, 3, 3, len(k)) and r.shape == spectra.shape
    for b in range(4):
        for i in range(3):
            for j in range(3):
                _, single, _ = cross_power_spectrum(maps[b, ..., i], maps[b, ..., j], box)
                np.testing.assert_allclose(spectra[b, i, j], single, rtol=1e-6)
                _, r_single, _ = correlation_coefficient(maps[b, ..., i], maps[b, ..., j], box)
                np.testing.assert_allclose(r[b, i, j], r_single, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(np.diagonal(r, axis1=1, axis2=2), 1.0, rtol=1e-12)
    # Channels first, as a TF tensor, and the batched auto spectrum.
    _, spectra_first, _ = cross_spectra(tf.constant(np.moveaxis(maps, -1, 1)), box,
                                        channel_axis=1)
    np.testing.assert_allclose(spectra_first, spectra, rtol=1e-6)
    _, auto, _ = power_spectrum(np.moveaxis(maps, -1, 1), box, ndim=2)  # (B, C, nbins)
    np.testing.assert_allclose(auto, np.diagonal(spectra, axis1=1, axis2=2).swapaxes(1, 2),
                               rtol=1e-6)


def test_chunked_cross_spectra_equal_one_chunk():
    """Chunks of 3 fields (the last one short) give the spectra of a single chunk, for
    channels last, and for the channel axis between two batch axes (A, C, B, N, N)."""
    rng = np.random.default_rng(12)
    maps = rng.standard_normal((7, 16, 16, 2)).astype(np.float32)
    maps[..., 1] += 0.5 * maps[..., 0]
    box = 25.0
    k, whole, nmodes = cross_spectra(maps, box, maps_per_chunk=7)
    k_c, chunked, nmodes_c = cross_spectra(tf.constant(maps), box, maps_per_chunk=3)
    np.testing.assert_array_equal(k_c, k)
    np.testing.assert_array_equal(nmodes_c, nmodes)
    np.testing.assert_allclose(chunked, whole, rtol=1e-6)
    _, r, _ = cross_correlations(maps, box, maps_per_chunk=2)
    np.testing.assert_allclose(r[..., 0, 1, :], whole[:, 0, 1] / np.sqrt(
        whole[:, 0, 0] * whole[:, 1, 1]), rtol=1e-6)
    # (A=2, C=3, B=4, N, N) cubes of 8^3: the spectra of each (a, b) field
    cubes = rng.standard_normal((2, 3, 4, 8, 8, 8)).astype(np.float32)
    _, spectra, _ = cross_spectra(cubes, 10.0, channel_axis=1, ndim=3, maps_per_chunk=3)
    assert spectra.shape == (2, 4, 3, 3, len(mode_bins((8, 8, 8), 10.0).k))
    for a, b in [(0, 0), (0, 3), (1, 2)]:
        _, one, _ = cross_spectra(cubes[a, :, b], 10.0, channel_axis=0, ndim=3)
        np.testing.assert_allclose(spectra[a, b], one, rtol=1e-6)
        _, x12, _ = cross_power_spectrum(cubes[a, 1, b], cubes[a, 2, b], 10.0)
        np.testing.assert_allclose(spectra[a, b, 2, 1], x12, rtol=1e-6)


def test_field_modes_batch_and_window():
    rng = np.random.default_rng(5)
    cubes = rng.standard_normal((2, 16, 16, 16)).astype(np.float32)
    modes = field_modes(cubes, 10.0, ndim=3, mas="TSC").numpy()
    assert modes.shape == (2, 16, 16, 9) and modes.dtype == np.complex64
    kx = np.fft.fftfreq(16, 1 / 16)[:, None, None]
    ky = kx.reshape(1, 16, 1)
    kz = np.arange(9).reshape(1, 1, 9)
    window = (np.sinc(kx / 16) * np.sinc(ky / 16) * np.sinc(kz / 16)) ** 3
    np.testing.assert_allclose(modes * window, np.fft.rfftn(cubes, axes=(1, 2, 3)),
                               rtol=1e-4, atol=1e-4)


def test_bad_input():
    with pytest.raises(ValueError, match="mas"):
        power_spectrum(np.zeros((8, 8)), 1.0, mas="XYZ")
    with pytest.raises(ValueError, match="shape"):
        power_spectrum(np.zeros((8, 6)), 1.0)
    with pytest.raises(ValueError, match="box_size"):
        power_spectrum(np.zeros((8, 8)), -1.0)
    with pytest.raises(ValueError, match="ndim"):
        power_spectrum(np.zeros((2, 8, 8, 8)), 1.0)
    with pytest.raises(ValueError, match="field_b"):
        cross_power_spectrum(np.zeros((8, 8)), np.zeros((16, 16)), 1.0)
    with pytest.raises(ValueError, match="channel_axis"):
        cross_spectra(np.zeros((2, 8, 8, 3)), 1.0, channel_axis=2)
    with pytest.raises(ValueError, match="maps_per_chunk"):
        cross_spectra(np.zeros((2, 8, 8, 3)), 1.0, maps_per_chunk=0)


def test_tensor_output_equals_numpy_and_has_exact_gradients(rng):
    fields = rng.normal(size=(2, 16, 16, 16)).astype("float32")
    k, pk, counts = power_spectrum(fields, 50.0, mas="CIC", ndim=3)
    kt, pkt, countst = power_spectrum(fields, 50.0, mas="CIC", ndim=3, as_tensor=True)
    np.testing.assert_allclose(kt.numpy(), k, rtol=1e-6)
    np.testing.assert_allclose(pkt.numpy(), pk, rtol=1e-5)
    np.testing.assert_array_equal(countst.numpy(), counts)
    _, xpk, _ = cross_power_spectrum(fields[0], fields[1], 50.0)
    _, xpkt, _ = cross_power_spectrum(fields[0], fields[1], 50.0, as_tensor=True)
    np.testing.assert_allclose(xpkt.numpy(), xpk, rtol=1e-4, atol=1e-6 * np.abs(xpk).max())
    # P is quadratic in the field: a central difference along any direction is exact.
    # (2D maps: TensorFlow registers gradients for the 1D and 2D real FFTs only.)
    field = tf.constant(fields[0, 0].astype("float64"))
    direction = tf.constant(rng.normal(size=field.shape))
    weights = tf.constant(rng.uniform(size=power_spectrum(field, 50.0)[1].shape), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(field)
        loss = tf.reduce_sum(weights * power_spectrum(field, 50.0, as_tensor=True)[1])
    slope = tf.reduce_sum(tape.gradient(loss, field) * direction).numpy()
    eps = 0.1
    ends = [tf.reduce_sum(weights * power_spectrum(field + s * eps * direction, 50.0,
                                                    as_tensor=True)[1]).numpy()
            for s in (1, -1)]
    np.testing.assert_allclose((ends[0] - ends[1]) / (2 * eps), slope, rtol=1e-3)


# ------------------------------------------------------- precision, memory bounds, input rule
def _float64_spectrum(field, box, mas=None):
    """P(k) of one field in float64 numpy: rfftn, window, np.bincount over the bin index."""
    shape = field.shape
    modes = np.fft.rfftn(np.asarray(field, np.float64))
    if mas is not None:
        window = np.ones(())
        for k in [np.fft.fftfreq(n, 1 / n) for n in shape[:-1]] + [np.arange(modes.shape[-1])]:
            window = np.multiply.outer(window, np.sinc(k / shape[0]) ** MAS_ORDER[mas])
        modes = modes / window
    bins = mode_bins(shape, box)
    sums = np.bincount(bins.index.ravel(), np.abs(modes.ravel()) ** 2, bins.nbins + 1)
    return sums[:-1] / bins.counts * box ** len(shape) / float(shape[0]) ** (2 * len(shape))


@pytest.mark.parametrize("shape,mas", [((48, 48, 48), None), ((48, 48, 48), "PCS"),
                                       ((96, 96), "CIC")])
def test_agrees_with_float64_within_1e6(shape, mas, monkeypatch):
    """float32 FFTs, float64 bin sums: every bin within 1e-6 of a float64 computation, also
    when the bins are summed in many slabs of a few rows (white noise: the FFT round-off of a
    mode scales with the rms of the field, its mean included)."""
    field = np.random.default_rng(8).normal(0.0, 1.0, shape).astype(np.float32)
    reference = _float64_spectrum(field, 50.0, mas)
    _, pk, _ = power_spectrum(field, 50.0, mas=mas)
    assert _max_rel(pk, reference) < 1e-6
    monkeypatch.setattr(spectra, "_SLAB_MODES", 1000)  # a few rows per slab
    _, pk_slabs, _ = power_spectrum(field, 50.0, mas=mas)
    np.testing.assert_allclose(pk_slabs, pk, rtol=1e-12)
    print(f"{shape} {mas}: max |rel| against float64 {_max_rel(pk, reference):.1e}")


def test_bin_tables_depend_on_the_grid_only():
    """A new box size on the same grid reuses the grid's tables (k scales as 1 / L), and the
    cache holds a few small tables: O(N^2) numbers, not one per mode."""
    fourier._bin_table.cache_clear()
    a, b = mode_bins((32, 32, 32), 100.0), mode_bins((32, 32, 32), 25.0)
    assert fourier._bin_table.cache_info().misses == 1
    np.testing.assert_allclose(b.k, 4.0 * a.k, rtol=1e-15)
    assert b.counts is a.counts
    assert sum(t.size for t in fourier._bin_table((32, 32, 32))) < 3 * 32**2 + 100
    assert fourier._bin_table.cache_info().maxsize <= 8


def test_complex_and_nonfinite_fields_are_refused():
    field = np.random.default_rng(2).standard_normal((2, 16, 16))
    calls = {"field": lambda f, **kw: power_spectrum(f, 10.0, ndim=2, **kw),
             "field_b": lambda f, **kw: cross_power_spectrum(field, f, 10.0, ndim=2, **kw),
             "fields": lambda f, **kw: cross_spectra(np.stack([f, field], -1), 10.0, **kw)}
    for name, call in calls.items():
        with pytest.raises(UserInputError, match=f"{name}: expected real"):
            call(field + 1j * field)
        with pytest.raises(UserInputError, match=f"{name}: expected real"):
            call(tf.constant(field + 1j * field))
        bad = field.copy()
        bad[1, 2, 3] = np.nan
        with pytest.raises(UserInputError, match=f"{name}: expected finite"):
            call(bad)
        with pytest.raises(UserInputError, match=f"{name}: expected finite"):
            call(tf.constant(bad))
        spectrum = np.asarray(call(bad, allow_nonfinite=True)[1])
        touched = spectrum[1, 0] if name == "fields" else spectrum[1]  # pairs with the NaN
        assert np.all(np.isnan(touched)) and np.all(np.isfinite(spectrum[0]))
    with pytest.raises(UserInputError, match="field: expected finite"):
        power_spectrum(np.full((8, 8), np.inf), 1.0, as_tensor=True)
    with pytest.raises(UserInputError, match="field_a: expected real"):
        correlation_coefficient(field + 1j, field, 10.0, ndim=2)
