"""Synthetic turbulence classes: files in the FITS layout, measured spectra against the planted
ones, class 4 = class 2's amplitudes with other phases, the documented local energy-density
maps, class separability of equalised tiles, and the command line."""
import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage, stats

from tfastro.core.errors import UserInputError
from tfastro.fields.spectra import power_spectrum
from tfastro.turbulence.io import FIELDS, TURBULENCE_CLASSES, class_files, read_fits_cube
from tfastro.turbulence.pipeline import (classification_images, flatten_power, mapping_images,
                                         to_byte_scale)
from tfastro.turbulence.synthetic import (E_B0, E_C0, NOISE, RHO0, SIGMA_LN_RHO, SYNTHETIC_CLASSES,
                                          SYNTHETIC_UNITS, class_gaussian_field, main,
                                          planted_spectrum, write_synthetic_turbulence)

SIZE, SNAPSHOTS, SEED = 48, 2, 3
BOX = 2 * np.pi  # k in units of the fundamental mode


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp("turbulence")
    paths = write_synthetic_turbulence(out, size=SIZE, snapshots=SNAPSHOTS, seed=SEED)
    return out, paths


def _standardised_log(path, field="density"):
    log = np.log(read_fits_cube(path, field).astype(np.float64))
    return (log - log.mean()) / log.std()


def test_files_headers_and_units(synthetic):
    out, paths = synthetic
    assert sorted(p.name for p in out.iterdir()) == sorted(TURBULENCE_CLASSES)
    files = class_files(out)
    assert [str(p) for p, _ in files] == [str(p) for p in paths]
    assert [label for _, label in files] == [c for c in range(5) for _ in range(SNAPSHOTS)]
    with fits.open(paths[-1]) as hdus:
        assert hdus[0].header["SIMCLASS"] == "cr_streaming" and hdus[0].header["SYNTH"]
        assert (hdus[0].header["CLASSIDX"], hdus[0].header["SNAPSHOT"]) == (4, SNAPSHOTS - 1)
        assert [h.header["EXTNAME"] for h in hdus[1:]] == list(FIELDS)
        assert {h.header["EXTNAME"]: h.header["BUNIT"] for h in hdus[1:]} == SYNTHETIC_UNITS
        assert all(h.data.shape == (SIZE,) * 3 for h in hdus[1:])
    density = read_fits_cube(paths[0], "density")
    assert density.mean(dtype=np.float64) == pytest.approx(RHO0, rel=1e-5)
    assert np.log(density).std() == pytest.approx(SIGMA_LN_RHO, rel=1e-4)
    with pytest.raises(UserInputError, match="snapshot_000.fits: file exists"):
        write_synthetic_turbulence(out, size=SIZE, snapshots=1, seed=SEED)


def test_density_is_the_lognormal_of_the_planted_field(synthetic):
    _, paths = synthetic
    for c, name in enumerate(TURBULENCE_CLASSES):
        g = class_gaussian_field(name, SIZE, (SEED, c, 1))
        np.testing.assert_allclose(_standardised_log(paths[c * SNAPSHOTS + 1]), g, atol=2e-4)


def _own_range(k, name):
    """k >= 1.5 where the planted P(k) is above 1e-5 of P(1) (above float32 round-off)."""
    return (k >= 1.5) & (planted_spectrum(k, name, SIZE) > 1e-5 * planted_spectrum(1, name, SIZE))


def test_gaussian_class_spectra_match_the_planted_ones(synthetic):
    _, paths = synthetic
    gaussian = TURBULENCE_CLASSES[:4]
    high_k_fraction = []
    for c, name in enumerate(gaussian):
        k, pk, modes = power_spectrum(_standardised_log(paths[c * SNAPSHOTS]), BOX)
        use = _own_range(k, name)
        chi2 = {}
        for other in gaussian:  # log(measured / planted) is flat only for the class's own P(k)
            ratio = np.log(pk[use] / planted_spectrum(k[use], other, SIZE))
            mean = np.average(ratio, weights=modes[use])
            # reduced chi^2 with the cosmic variance of a bin mean, var(log P) ~ 1 / Nmodes
            chi2[other] = np.mean((ratio - mean) ** 2 * modes[use])
        assert chi2[name] < 3 and all(v > 20 for o, v in chi2.items() if o != name), (name,
                                                                                       chi2)
        high_k_fraction.append(np.sum(pk * modes * (k > 6)) / np.sum(pk * modes))
    # cr_advection (shallower) > mhd > cr_diffusion > cr_diffusion_100kappa (smoothest)
    assert np.argsort(high_k_fraction)[::-1].tolist() == [1, 0, 2, 3]
    assert high_k_fraction[3] < 0.1 * high_k_fraction[2] < 0.1 * high_k_fraction[0]


def test_streaming_has_the_amplitudes_of_cr_diffusion_but_other_phases(synthetic):
    _, paths = synthetic
    g4 = _standardised_log(paths[4 * SNAPSHOTS])
    g2 = class_gaussian_field("cr_diffusion", SIZE, (SEED, 4, 0))  # the same random stream
    modes4, modes2 = np.fft.rfftn(g4), np.fft.rfftn(g2)
    np.testing.assert_allclose(np.abs(modes4), np.abs(modes2), atol=2e-4 * np.abs(modes2).max())
    strong = np.abs(modes2) > 0.1 * np.abs(modes2).max()
    phase_change = np.angle(modes4[strong] * np.conj(modes2[strong]))
    assert np.median(np.abs(phase_change)) > 0.05  # sharpening moved the phases
    # coupled phases: the phase-only slices of class 4 are heavy-tailed, of classes 0-3 Gaussian
    kurtosis = [stats.kurtosis(flatten_power(to_byte_scale(read_fits_cube(
        paths[c * SNAPSHOTS], "density"))).ravel()) for c in range(5)]
    assert max(abs(k) for k in kurtosis[:4]) < 0.15 and kurtosis[4] > 0.8, kurtosis


def _extremes_correlation(images):
    """Neighbour correlation of |x - 1/2| per equalised tile: how extremes cluster in lines."""
    a = np.abs(images[..., 0] - 0.5)
    a = a - a.mean(axis=(1, 2), keepdims=True)
    pair = (a * np.roll(a, 1, axis=1) + a * np.roll(a, 1, axis=2)).mean(axis=(1, 2)) / 2
    return pair / (a * a).mean(axis=(1, 2))


def test_only_the_streaming_class_leaves_a_cue_in_phase_only_tiles(synthetic):
    out, _ = synthetic
    images, labels = classification_images(class_files(out), "train", tile=16,
                                           phase_only=True, seed=0)
    statistic = _extremes_correlation(images)
    means = [statistic[labels == c].mean() for c in range(5)]
    spread = statistic[labels < 4].std() / np.sqrt(np.sum(labels < 4))
    assert max(abs(m) for m in means[:4]) < 0.03 and means[4] > 0.06, means
    assert means[4] - max(means[:4]) > 10 * spread


def test_equalised_tiles_separate_the_classes_by_their_spectra(synthetic):
    """Nearest class centroid of the tiles' log 2D power spectra (no training, no CNN)."""
    out, _ = synthetic
    files = class_files(out)
    train, train_labels = classification_images(files, "train", tile=16, seed=0)
    test, test_labels = classification_images(files, "test", tile=16, seed=1)
    features = [np.log(power_spectrum(x[..., 0], BOX, ndim=2)[1]) for x in (train, test)]
    mean, std = features[0].mean(axis=0), features[0].std(axis=0)
    train_f, test_f = [(f - mean) / std for f in features]
    centroids = np.stack([train_f[train_labels == c].mean(axis=0) for c in range(5)])
    predicted = np.argmin(((test_f[:, None] - centroids) ** 2).sum(axis=-1), axis=1)
    accuracy = np.mean(predicted == test_labels)
    assert accuracy > 0.45, accuracy  # chance: 0.2
    recall = [np.mean(predicted[test_labels == c] == c) for c in range(4)]
    assert min(recall) > 0.3, recall


def test_energy_densities_are_the_documented_local_maps(synthetic):
    _, paths = synthetic
    path = paths[2 * SNAPSHOTS]
    s = _standardised_log(path)
    smooth = ndimage.gaussian_filter(s, 1.0, mode="wrap")
    smooth = (smooth - smooth.mean()) / smooth.std()
    magnetic = read_fits_cube(path, "magnetic_energy_density").astype(np.float64)
    cosmic_rays = read_fits_cube(path, "cr_energy_density").astype(np.float64)
    for residual in (np.log(magnetic / E_B0) - 1.5 * np.tanh(s) ** 2,
                     np.log(cosmic_rays / E_C0) - np.cos(2 * smooth)):
        assert abs(residual.mean()) < 0.005 and residual.std() == pytest.approx(NOISE, rel=0.05)


@pytest.mark.parametrize("field, smoothing", [("magnetic_energy_density", 0),
                                               ("cr_energy_density", 1.0)])
def test_mapping_targets_are_local_non_linear_functions_of_the_input(synthetic, field,
                                                                     smoothing):
    """Per cube (all splits), a binned function of the input pixel (smoothed over 1 pixel for
    the cosmic rays, which the generator smooths in 3D) predicts the target; the identity, the
    best straight line and the mean do not."""
    out, _ = synthetic
    for path, _ in class_files(out):
        pairs = [mapping_images([path], split, 16, target_field=field, shifts=())
                 for split in ("train", "validation", "test")]
        inputs, targets = (np.concatenate(images) for images in zip(*pairs))
        x = ndimage.gaussian_filter(inputs[..., 0], (0, smoothing, smoothing), mode="wrap")
        x, y = x.ravel(), targets.ravel()
        bins = np.clip((x * 64).astype(int), 0, 63)
        conditional = np.bincount(bins, y, 64) / np.maximum(np.bincount(bins, minlength=64), 1)
        line = np.polyval(np.polyfit(x, y, 1), x)
        explained = {name: 1 - np.mean((y - p) ** 2) / y.var()
                     for name, p in (("identity", x), ("line", line),
                                     ("local", conditional[bins]))}
        assert explained["identity"] < 0 and explained["line"] < 0.1, explained
        assert explained["local"] > (0.95 if smoothing == 0 else 0.7), explained


def test_command_line_writes_the_classes_and_refuses_to_overwrite(tmp_path, capsys):
    args = ["--out", str(tmp_path), "--size", "16", "--snapshots", "1",
            "--seed", "5"]
    assert main(args) == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    assert len(class_files(tmp_path)) == 5
    before = read_fits_cube(tmp_path / "mhd" / "snapshot_000.fits", "density")
    assert main(args) == 2
    assert "mhd/snapshot_000.fits: file exists" in capsys.readouterr().err
    assert main(args[:-1] + ["6", "--overwrite"]) == 0
    assert not np.array_equal(read_fits_cube(tmp_path / "mhd" / "snapshot_000.fits",
                                             "density"), before)
    with pytest.raises(UserInputError, match="size=4"):
        write_synthetic_turbulence(tmp_path / "small", size=4)
    assert set(SYNTHETIC_CLASSES) == set(TURBULENCE_CLASSES)
