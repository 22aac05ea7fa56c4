"""Saliency, occlusion and blur sweep: analytic linear models, a planted cue that a tiny
classifier must find, and the Gaussian transfer function of the blur."""
import keras
import numpy as np
import pytest

from tfastro.fields.fourier import mode_bins
from tfastro.fields.random_fields import gaussian_random_field
from tfastro.turbulence.evaluation import (blur_images, blur_summary, blur_sweep, blurred_spectra,
                                           class_logits, gaussian_transfer, occlusion_maps,
                                           raw_saliency, saliency_maps, saliency_region)

N = 32  # image side (px)


def linear_model(weights, bias=None):
    """Keras model with logits_c = sum_p weights[p, c] x_p (+ bias_c); weights (H, W, C, K)."""
    height, width, channels, n_classes = weights.shape
    dense = keras.layers.Dense(n_classes)
    model = keras.Sequential([keras.Input((height, width, channels)), keras.layers.Flatten(),
                              dense])
    dense.set_weights([weights.reshape(-1, n_classes),
                       np.zeros(n_classes) if bias is None else bias])
    return model


def test_linear_model_saliency_is_normalised_weight_magnitude(rng):
    weights = rng.standard_normal((N, N, 2, 3)).astype(np.float32)
    images = rng.random((5, N, N, 2)).astype(np.float32)
    model = linear_model(weights)
    classes = np.array([0, 1, 2, 2, 1])
    raw = raw_saliency(model, images, classes, batch_size=2)
    for n, c in enumerate(classes):
        magnitude = np.abs(weights[..., c]).max(axis=-1)
        expected = (magnitude - magnitude.min()) / (magnitude.max() - magnitude.min())
        np.testing.assert_allclose(raw[n], expected, atol=1e-6)
    # sigma = 0: no smoothing, and the maximum is already 1
    np.testing.assert_allclose(saliency_maps(model, images, classes, sigma=0.0), raw, atol=1e-12)
    # classes=None explains the predicted class
    predicted = (images.reshape(5, -1) @ weights.reshape(-1, 3)).argmax(axis=-1)
    np.testing.assert_allclose(raw_saliency(model, images),
                               raw_saliency(model, images, predicted))


def test_smoothing_of_a_single_salient_pixel_is_a_unit_gaussian():
    side, sigma, centre = 64, 4.0, (30, 33)
    weights = np.zeros((side, side, 1, 2), np.float32)
    weights[centre + (0, 1)] = 3.0  # logit 1 depends on one pixel only
    images = np.random.default_rng(0).random((2, side, side, 1))
    saliency = saliency_maps(linear_model(weights), images, 1, sigma=sigma)
    rows, cols = np.indices((side, side))
    r2 = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2
    # scipy truncates the separable kernel at 4 sigma along each axis: a square support
    inside = np.maximum(abs(rows - centre[0]), abs(cols - centre[1])) <= 4 * sigma
    np.testing.assert_allclose(saliency[0][inside], np.exp(-r2[inside] / (2 * sigma**2)),
                               rtol=1e-10)
    assert np.all(saliency[0][~inside] == 0)
    # the 0.6 contour encloses the disc r^2 <= 2 sigma^2 ln(1 / 0.6)
    region = saliency_region(saliency)
    np.testing.assert_array_equal(region[1], r2 <= 2 * sigma**2 * np.log(1 / 0.6))
    assert region.sum(axis=(1, 2)).tolist() == [49, 49]  # pixels with r <= 4.04


@pytest.mark.parametrize("patch, stride", [(8, None), (8, 4), (12, 8)])
def test_linear_model_occlusion_is_the_weighted_patch_contrast(rng, patch, stride):
    weights = rng.standard_normal((N, N, 2, 3)).astype(np.float32)
    images = rng.random((3, N, N, 2)).astype(np.float32)
    classes = np.array([2, 0, 1])
    drops = occlusion_maps(linear_model(weights), images, classes, patch=patch, stride=stride,
                           score="logit", batch_size=2)
    # occluding a patch with the image's channel means m changes the logit by
    # sum_{p in patch} w_p (x_p - m): the expected drop of that patch
    step = patch if stride is None else stride
    starts = sorted(set(list(range(0, N - patch + 1, step)) + [N - patch]))
    for n, c in enumerate(classes):
        contrast = weights[..., c] * (images[n] - images[n].mean(axis=(0, 1)))
        total, cover = np.zeros((N, N)), np.zeros((N, N))
        for top in starts:
            for left in starts:
                total[top:top + patch, left:left + patch] += \
                    contrast[top:top + patch, left:left + patch].sum()
                cover[top:top + patch, left:left + patch] += 1
        np.testing.assert_allclose(drops[n], total / cover, rtol=1e-4, atol=1e-4)


def test_occlusion_with_a_constant_fill_and_probability_score():
    # two classes, logit_1 - logit_0 = sum of the image: filling a patch of a zero image
    # with 1 raises P(1) from 1/2 to sigmoid(patch area) (drop negative)
    weights = np.zeros((N, N, 1, 2), np.float32)
    weights[..., 1] = 1.0
    drops = occlusion_maps(linear_model(weights), np.zeros((1, N, N, 1)), 1, patch=4, fill=1.0)
    np.testing.assert_allclose(drops, 0.5 - 1 / (1 + np.exp(-16.0)), rtol=1e-6)


def planted_blob_images(n, seed):
    """Noise images (N x N, values in [0, 0.6]); odd images (class 1) get a bright Gaussian blob
    of 2 px centred at random inside the top-left quadrant."""
    rng = np.random.default_rng(seed)
    images = 0.6 * rng.random((n, N, N, 1)).astype(np.float32)
    labels = np.arange(n) % 2
    rows, cols = np.indices((N, N))
    for i in np.flatnonzero(labels == 1):
        y, x = rng.uniform(4, 12, 2)
        images[i, ..., 0] += 0.8 * np.exp(-((rows - y) ** 2 + (cols - x) ** 2) / 8.0)
    return images, labels


def trained(model, images, labels, epochs, learning_rate):
    model.compile(keras.optimizers.Adam(learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(images, labels, batch_size=32, epochs=epochs, verbose=0)
    return model


@pytest.fixture(scope="module")
def blob_classifier():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((N, N, 1)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu"),
        keras.layers.Flatten(), keras.layers.Dense(2)])
    return trained(model, *planted_blob_images(512, seed=0), epochs=4, learning_rate=3e-3)


def test_saliency_and_occlusion_find_the_planted_blob(blob_classifier):
    images, labels = planted_blob_images(64, seed=1)
    assert (class_logits(blob_classifier, images).argmax(axis=-1) == labels).mean() > 0.9
    blobs = images[labels == 1]
    quadrant = np.zeros((N, N), bool)
    quadrant[:N // 2, :N // 2] = True
    saliency = saliency_maps(blob_classifier, blobs, 1)
    np.testing.assert_allclose(saliency.max(axis=(1, 2)), 1.0)
    mass_fraction = saliency[:, quadrant].sum() / saliency.sum()
    region = saliency_region(saliency)
    region_fraction = region[:, quadrant].sum() / region.sum()
    # chance: 1/4 of the mass and of the region (measured: 0.42 and 1.00)
    assert mass_fraction > 0.35, mass_fraction
    assert region_fraction > 0.9, region_fraction
    drops = np.clip(occlusion_maps(blob_classifier, blobs, 1, patch=8), 0, None)
    assert drops[:, quadrant].sum() / drops.sum() > 0.8  # measured 0.97


def test_blur_multiplies_power_by_the_gaussian_transfer():
    # a sum of single Fourier modes, one per k bin: the ratio of the blurred to the unblurred
    # power in that bin is |exp(-k^2 sigma^2 / 2)|^2 at the mode's |k|
    modes = [(1, 0), (2, 1), (0, 3), (3, 3), (5, 2), (2, 7)]
    rows, cols = np.indices((N, N))
    image = 0.5 + sum(0.1 * np.cos(2 * np.pi * (a * cols + b * rows) / N + 0.3 * i)
                      for i, (a, b) in enumerate(modes))
    images = np.stack([image, np.roll(image, 5, axis=0)])[..., None]
    sigmas = (0.0, 2.0, 4.0, 6.0, 8.0)
    k, spectra, _ = blurred_spectra(images, sigmas)
    bins = mode_bins((N, N), N)
    np.testing.assert_allclose(k, bins.k)
    assert 2 * np.pi / N <= k[0] < 4 * np.pi / N and k[-1] <= np.sqrt(2) * np.pi  # rad/px
    checked = 0
    for a, b in modes:
        k_mode = 2 * np.pi * np.hypot(a, b) / N
        index = int(np.hypot(a, b)) - 1
        for s, sigma in enumerate(sigmas):
            expected = gaussian_transfer(k_mode, sigma) ** 2
            if expected > 1e-3:  # below, float32 FFT round-off and the 4-sigma truncation
                np.testing.assert_allclose(spectra[s, index] / spectra[0, index], expected,
                                           rtol=3e-3)
                checked += 1
    assert checked >= 12
    np.testing.assert_array_equal(blur_images(images, 0.0), images.astype(np.float32))
    # periodic: blurring commutes with a periodic shift
    np.testing.assert_allclose(blur_images(np.roll(images, 7, axis=2), 3.0),
                               np.roll(blur_images(images, 3.0), 7, axis=2), atol=1e-6)


def smooth_and_rough_fields(n, seed):
    """Standardised Gaussian random fields: even images smooth (P ~ exp(-(k / 0.5)^2), class
    0), odd images rough (P ~ exp(-(k / 3)^2), class 1), k in rad/px."""
    labels = np.arange(n) % 2
    fields = []
    for i, label in enumerate(labels):
        cut = 0.5 if label == 0 else 3.0
        field = gaussian_random_field((N, N), N, lambda k, c=cut: np.exp(-(k / c) ** 2),
                                      seed=(seed, i))
        fields.append((field - field.mean()) / field.std())
    return np.asarray(fields, np.float32)[..., None], labels


def test_blur_sweep_on_a_smooth_versus_rough_classifier():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((N, N, 1)),
        keras.layers.LayerNormalization(axis=(1, 2, 3), center=False, scale=False),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    trained(model, *smooth_and_rough_fields(256, seed=0), epochs=10, learning_rate=1e-2)
    images, labels = smooth_and_rough_fields(64, seed=1)
    sigmas = (0.0, 2.0, 4.0, 6.0, 8.0)
    probabilities = blur_sweep(model, images, sigmas, batch_size=20)
    assert probabilities.shape == (5, 64, 2)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-12)
    summary = blur_summary(probabilities, labels, sigmas)
    assert summary["support"] == [32, 32] and summary["sigmas"] == list(sigmas)
    p_smooth = np.array(summary["mean_probability"])[:, :, 0]  # (sigma, true class)
    np.testing.assert_allclose(p_smooth[:, 1], probabilities[:, 1::2, 0].mean(axis=1))
    # smooth images stay smooth (non-decreasing up to round-off); blurred rough images are read
    # as smooth, as the paper's classifier reads blur as diffusion (measured 0.00 -> 0.99+)
    assert np.all(np.diff(p_smooth[:, 0]) > -1e-4), p_smooth[:, 0]
    assert p_smooth[0, 1] < 0.1 and np.all(p_smooth[1:, 1] > 0.9), p_smooth[:, 1]


def test_blur_summary_marks_classes_without_images():
    probabilities = np.array([[[0.2, 0.8, 0.0], [0.6, 0.4, 0.0], [0.1, 0.1, 0.8]]])
    summary = blur_summary(probabilities, [1, 1, 0], sigmas=(2.0,))
    assert summary["support"] == [1, 2, 0]
    assert summary["mean_probability"][0][2] is None
    np.testing.assert_allclose(summary["mean_probability"][0][1], [0.4, 0.6, 0.0])


def test_bad_arguments(rng):
    model = linear_model(rng.standard_normal((N, N, 1, 2)).astype(np.float32))
    images = rng.random((2, N, N, 1))
    with pytest.raises(ValueError, match=r"classes: expected indices in \[0, 2\)"):
        raw_saliency(model, images, 2)
    with pytest.raises(ValueError, match="images: expected a non-empty"):
        saliency_maps(model, images[0], 0)
    with pytest.raises(ValueError, match="patch must be"):
        occlusion_maps(model, images, 0, patch=N + 1)
    with pytest.raises(ValueError, match="score="):
        occlusion_maps(model, images, 0, score="loss")
    with pytest.raises(ValueError, match="level"):
        saliency_region(np.ones((1, 4, 4)), level=0.0)
    with pytest.raises(ValueError, match="labels: expected 2 labels"):
        blur_summary(np.ones((1, 2, 2)) / 2, [0, 1, 1], sigmas=(0.0,))
