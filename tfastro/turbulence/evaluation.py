"""Scores of the turbulence classifier and what it looks at.

Scores of a multi-class classifier from true and predicted class indices.

Classes are the integers 0 .. n_classes - 1 (for the turbulence classes, the order of
``tfastro.turbulence.io.TURBULENCE_CLASSES``). For class c, with TP, FP, FN, TN its one-vs-rest
counts over N samples:

- precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2 P R / (P + R);
- one-vs-rest accuracy = (TP + TN) / N, the accuracy of the binary question "class c or not";
- support = TP + FN, the number of samples whose true class is c.

A ratio whose denominator is 0 (a class never predicted: precision; a class absent from the
labels: recall; P = R = 0: F1) is defined as 0 and the report says so in ``notes``, rather
than producing NaN. Macro averages are plain means over all ``n_classes`` classes (absent
classes included, with their zeros). The confusion matrix has true classes on rows and
predicted classes on columns.

What an image classifier looks at: saliency maps, occlusion maps and a blur sweep.

The model is a Keras model (TensorFlow backend) mapping ``(B, H, W, C)`` float images to
``(B, n_classes)`` logits, called with ``training=False`` in batches of ``batch_size``.
Images are ``(N, H, W, C)`` arrays (the turbulence tiles: C = 1, values in [0, 1]); maps come
back as float64 numpy arrays ``(N, H, W)``, pixel [i, j] of map n belonging to pixel
``images[n, i, j]``. ``classes`` picks the class explained for each image: an int (every
image), an ``(N,)`` array, or None for the class the model predicts.

Saliency (:func:`saliency_maps`), in this order:
  1. g = d logit_c / d x by ``tf.GradientTape`` (the raw logit, not the probability);
  2. |g|, maximum over channels;
  3. min-max normalised per image to [0, 1] (:func:`raw_saliency`; a map with no gradient
     variation is all 0);
  4. Gaussian-smoothed with sigma = 4 px (``scipy.ndimage.gaussian_filter``, 'reflect'
     boundary since tiles are not periodic, kernel truncated at 4 sigma);
  5. divided by its maximum, so the maximum is 1 and the salient region
     (:func:`saliency_region`) is where the map is >= 0.6, the contour level of the figures.

Occlusion (:func:`occlusion_maps`): the drop in the class score (softmax probability or
logit) when a ``patch`` x ``patch`` square is replaced by a fill value (each image's mean per
channel by default); each pixel gets the mean drop over the patches that cover it.

Blur sweep (:func:`blur_sweep`, :func:`blurred_spectra`): each image is blurred with a periodic
Gaussian filter of sigma px (``scipy.ndimage.gaussian_filter``, 'wrap' boundary, kernel
truncated at 4 sigma; sigma = 0 leaves the image unchanged), over the spatial axes only. The
filter multiplies each Fourier mode by about exp(-k^2 sigma^2 / 2) (:func:`gaussian_transfer`),
k in radians per pixel; the power spectra of :func:`blurred_spectra` are
:func:`tfastro.fields.spectra.power_spectrum` with ``box_size`` = H pixels, so k runs in steps
of k_F = 2 pi / H rad/px up to sqrt(2) pi (k / 2 pi in cycles per pixel) and P(k) is in px^2.
"""
import numpy as np
from scipy import ndimage, special

from tfastro.fields.spectra import power_spectrum

__all__ = ["confusion_matrix", "classification_report", "SALIENCY_SIGMA", "SALIENCY_LEVEL",
           "OCCLUSION_PATCH", "BLUR_SIGMAS", "class_logits", "raw_saliency", "saliency_maps",
           "saliency_region", "occlusion_maps", "blur_images", "blur_sweep", "blur_summary",
           "gaussian_transfer", "blurred_spectra"]


_NORMALISATIONS = (None, "row")


def _class_indices(values, name, n_classes):
    """``values`` as a 1-D int64 array of class indices in [0, n_classes)."""
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D array of class indices, got shape "
                         f"{array.shape}")
    if not (np.issubdtype(array.dtype, np.integer)
            or (np.issubdtype(array.dtype, np.floating) and np.all(array == np.round(array)))):
        raise ValueError(f"{name}: expected integer class indices, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if array.min() < 0 or array.max() >= n_classes:
        raise ValueError(f"{name}: class indices must lie in [0, {n_classes}), got values in "
                         f"[{array.min()}, {array.max()}]")
    return array


def _checked_pair(labels, predicted, n_classes):
    if int(n_classes) != n_classes or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
    labels = _class_indices(labels, "labels", n_classes)
    predicted = _class_indices(predicted, "predicted", n_classes)
    if labels.shape != predicted.shape:
        raise ValueError(f"predicted: {predicted.size} predictions for {labels.size} labels")
    return labels, predicted, int(n_classes)


def confusion_matrix(labels, predicted, n_classes, normalise="row"):
    """Confusion matrix C[true, predicted].

    Args:
      labels: ``(N,)`` true class indices in [0, n_classes).
      predicted: ``(N,)`` predicted class indices.
      n_classes: number of classes (the matrix is n_classes x n_classes).
      normalise: None for counts (int64), or "row" for the fraction of each true class
        predicted as each class (float64; each row with samples sums to 1, the row of a class
        absent from ``labels`` stays 0).
    Returns:
      ``(n_classes, n_classes)`` array.
    """
    if normalise not in _NORMALISATIONS:
        raise ValueError(f"normalise={normalise!r}: expected None or 'row'")
    labels, predicted, n_classes = _checked_pair(labels, predicted, n_classes)
    counts = np.bincount(labels * n_classes + predicted, minlength=n_classes**2)
    counts = counts.reshape(n_classes, n_classes).astype(np.int64)
    if normalise is None:
        return counts
    rows = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)


def _ratio(numerator, denominator):
    """numerator / denominator elementwise, 0 where the denominator is 0."""
    numerator = np.asarray(numerator, np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator),
                     where=np.asarray(denominator) > 0)


def _notes(predicted_counts, support, precision, recall):
    notes = []
    for c in np.flatnonzero(predicted_counts == 0):
        notes.append(f"class {c} is never predicted: its precision is set to 0")
    for c in np.flatnonzero(support == 0):
        notes.append(f"class {c} has no samples: its recall is set to 0")
    for c in np.flatnonzero((precision + recall == 0) & (support > 0)):
        notes.append(f"class {c} has precision = recall = 0: its F1 is set to 0")
    return notes


def classification_report(labels, predicted, n_classes, class_names=None):
    """Accuracy, per-class precision / recall / F1 / one-vs-rest accuracy / support, and their
    macro averages (conventions in the module docstring).

    Args:
      labels: ``(N,)`` true class indices in [0, n_classes).
      predicted: ``(N,)`` predicted class indices, e.g. ``argmax`` of the logits.
      n_classes: number of classes.
      class_names: optional n_classes names (default "0", "1", ...).
    Returns:
      JSON-serialisable dict: ``n_samples``, ``accuracy``, ``class_names``, ``per_class``
      (dict of lists over classes: precision, recall, f1, one_vs_rest_accuracy, support,
      predicted (how often each class was predicted)), ``macro`` (mean of precision, recall,
      f1 and one_vs_rest_accuracy over classes), ``confusion_matrix`` (counts, nested lists)
      and ``notes`` (the ratios set to 0).
    """
    labels, predicted, n_classes = _checked_pair(labels, predicted, n_classes)
    if class_names is None:
        class_names = [str(c) for c in range(n_classes)]
    if len(class_names) != n_classes:
        raise ValueError(f"class_names: expected {n_classes} names, got {len(class_names)}")
    counts = confusion_matrix(labels, predicted, n_classes, normalise=None)
    n_samples = labels.size
    true_positive = np.diag(counts)
    support = counts.sum(axis=1)
    predicted_counts = counts.sum(axis=0)
    precision = _ratio(true_positive, predicted_counts)
    recall = _ratio(true_positive, support)
    f1 = _ratio(2.0 * precision * recall, precision + recall)
    true_negative = n_samples - support - predicted_counts + true_positive
    one_vs_rest = (true_positive + true_negative) / n_samples
    per_class = {"precision": precision, "recall": recall, "f1": f1,
                 "one_vs_rest_accuracy": one_vs_rest}
    return {
        "n_samples": int(n_samples),
        "accuracy": float(true_positive.sum() / n_samples),
        "class_names": [str(name) for name in class_names],
        "per_class": {**{key: [float(v) for v in values] for key, values in per_class.items()},
                      "support": [int(v) for v in support],
                      "predicted": [int(v) for v in predicted_counts]},
        "macro": {key: float(values.mean()) for key, values in per_class.items()},
        "confusion_matrix": counts.tolist(),
        "notes": _notes(predicted_counts, support, precision, recall),
    }




#: Gaussian smoothing (px) of the saliency maps.
SALIENCY_SIGMA = 4.0


#: Contour level of the salient region, as a fraction of the maximum of a smoothed map.
SALIENCY_LEVEL = 0.6


#: Side (px) of the occluding patches.
OCCLUSION_PATCH = 32


#: Gaussian blur widths (px) of the blur sweep.
BLUR_SIGMAS = (0.0, 2.0, 4.0, 6.0, 8.0)


_SCORES = ("probability", "logit")


def _checked_images(images):
    """``images`` as a float32 ``(N, H, W, C)`` array."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"images: expected a non-empty (N, H, W, C) batch, got shape "
                         f"{images.shape}")
    return images


def _checked_batch_size(batch_size):
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def _checked_classes(classes, n_images, n_classes):
    """``classes`` (an int or ``(N,)`` indices) as an int64 ``(N,)`` array in [0, n_classes)."""
    values = np.broadcast_to(np.asarray(classes), (n_images,)) if np.ndim(classes) == 0 \
        else np.asarray(classes)
    if values.shape != (n_images,) or not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"classes: expected an int or {n_images} integer class indices, got "
                         f"{classes!r:.80}")
    if values.min() < 0 or values.max() >= n_classes:
        raise ValueError(f"classes: expected indices in [0, {n_classes}), got values in "
                         f"[{values.min()}, {values.max()}]")
    return values.astype(np.int64)


def class_logits(model, images, batch_size=64):
    """Logits ``(N, n_classes)`` (float64) of the model on ``(N, H, W, C)`` images."""
    images = _checked_images(images)
    batch_size = _checked_batch_size(batch_size)
    logits = [np.asarray(model(images[start:start + batch_size], training=False))
              for start in range(0, len(images), batch_size)]
    return np.concatenate(logits).astype(np.float64)


def _class_scores(model, images, classes, score, batch_size):
    """Softmax probability or logit of ``classes`` (N,) for each image (N,)."""
    logits = class_logits(model, images, batch_size)
    values = special.softmax(logits, axis=-1) if score == "probability" else logits
    return values[np.arange(len(values)), classes]


def _explained_classes(model, images, classes, batch_size):
    """The ``(N,)`` classes to explain: ``classes`` checked, or the predicted ones if None."""
    if classes is None:
        return class_logits(model, images, batch_size).argmax(axis=-1)
    n_classes = class_logits(model, images[:1], batch_size).shape[-1]
    return _checked_classes(classes, len(images), n_classes)


def _logit_gradients(model, images, classes):
    """d logit_{classes[n]} / d images[n] of one batch, ``(B, H, W, C)``."""
    import tensorflow as tf
    x = tf.convert_to_tensor(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = model(x, training=False)
        chosen = tf.gather(logits, classes, axis=1, batch_dims=1)
    return tape.gradient(chosen, x).numpy()


def _min_max(maps):
    """Each ``(H, W)`` map of ``(N, H, W)`` rescaled to [0, 1]; a constant map becomes 0."""
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    return np.divide(maps - low, span, out=np.zeros_like(maps), where=span > 0)


def raw_saliency(model, images, classes=None, batch_size=64):
    """Unsmoothed saliency: max over channels of |d logit_c / d x|, min-max normalised per image.

    Args:
      model: Keras classifier returning logits.
      images: ``(N, H, W, C)`` images.
      classes: the class explained per image (int, ``(N,)`` array, or None: the predicted one).
      batch_size: images per gradient evaluation.
    Returns:
      float64 ``(N, H, W)`` maps in [0, 1].
    """
    images = _checked_images(images)
    batch_size = _checked_batch_size(batch_size)
    classes = _explained_classes(model, images, classes, batch_size)
    gradients = [_logit_gradients(model, images[s:s + batch_size], classes[s:s + batch_size])
                 for s in range(0, len(images), batch_size)]
    magnitude = np.abs(np.concatenate(gradients)).max(axis=-1).astype(np.float64)
    return _min_max(magnitude)


def saliency_maps(model, images, classes=None, sigma=SALIENCY_SIGMA, batch_size=64):
    """Smoothed saliency maps with maximum 1 (steps 1-5 of the module docstring).

    Args:
      model, images, classes, batch_size: as in :func:`raw_saliency`.
      sigma: Gaussian smoothing in px (0: none).
    Returns:
      float64 ``(N, H, W)`` maps in [0, 1], each with maximum 1 (all 0 if the model's logit
      does not vary with the image).
    """
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0 px, got {sigma!r}")
    smooth = ndimage.gaussian_filter(raw_saliency(model, images, classes, batch_size),
                                     sigma=(0.0, sigma, sigma), mode="reflect")
    peak = smooth.max(axis=(1, 2), keepdims=True)
    return np.divide(smooth, peak, out=np.zeros_like(smooth), where=peak > 0)


def saliency_region(saliency, level=SALIENCY_LEVEL):
    """Boolean ``(N, H, W)`` mask of the pixels where a map is >= ``level`` times its maximum
    (inside the figures' contour); empty for an all-zero map."""
    saliency = np.asarray(saliency, dtype=np.float64)
    if saliency.ndim != 3:
        raise ValueError(f"saliency: expected (N, H, W) maps, got shape {saliency.shape}")
    if not 0 < level <= 1:
        raise ValueError(f"level must lie in (0, 1], got {level!r}")
    peak = saliency.max(axis=(1, 2), keepdims=True)
    return (saliency >= level * peak) & (peak > 0)


def _patch_starts(side, patch, stride):
    """First pixels of the patches along an axis of ``side`` px: every ``stride`` px, plus one
    flush with the far edge if the stride leaves it uncovered."""
    starts = list(range(0, side - patch + 1, stride))
    if starts[-1] + patch < side:
        starts.append(side - patch)
    return starts


def occlusion_maps(model, images, classes=None, patch=OCCLUSION_PATCH, stride=None, fill=None,
                   score="probability", batch_size=64):
    """Drop of the class score when a square patch of the image is occluded.

    For each patch position (top-left corners every ``stride`` px along both axes, plus the
    positions flush with the far edges, so every pixel is covered) the patch is set to
    ``fill`` and the drop ``score(image) - score(occluded image)`` is recorded; each pixel gets
    the mean drop over the patches that cover it (with ``stride == patch``, simply the drop of
    its patch). A positive value marks a region that supports the class.

    Args:
      model, images, classes, batch_size: as in :func:`raw_saliency`.
      patch: patch side in px (at most H and W).
      stride: step between patches in px (default ``patch``: no overlap).
      fill: value written into the patch, or None for the image's mean (per channel).
      score: "probability" (softmax) or "logit" of the class.
    Returns:
      float64 ``(N, H, W)`` maps of score drops.
    """
    images = _checked_images(images)
    _, height, width, _ = images.shape
    stride = patch if stride is None else stride
    if int(patch) != patch or not 1 <= patch <= min(height, width):
        raise ValueError(f"patch must be an integer in [1, {min(height, width)}] px, got "
                         f"{patch!r}")
    if int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be a positive integer (px), got {stride!r}")
    if score not in _SCORES:
        raise ValueError(f"score={score!r}: expected one of {', '.join(_SCORES)}")
    batch_size = _checked_batch_size(batch_size)
    classes = _explained_classes(model, images, classes, batch_size)
    fill = images.mean(axis=(1, 2), keepdims=True) if fill is None else np.float32(fill)
    base = _class_scores(model, images, classes, score, batch_size)
    drops = np.zeros(images.shape[:3])
    cover = np.zeros((height, width))
    for top in _patch_starts(height, int(patch), int(stride)):
        for left in _patch_starts(width, int(patch), int(stride)):
            window = (slice(top, top + patch), slice(left, left + patch))
            occluded = images.copy()
            occluded[:, window[0], window[1], :] = fill
            drop = base - _class_scores(model, occluded, classes, score, batch_size)
            drops[:, window[0], window[1]] += drop[:, None, None]
            cover[window] += 1
    return drops / cover


def blur_images(images, sigma):
    """``(N, H, W, C)`` images blurred over H and W by a periodic Gaussian of ``sigma`` px
    (float32; sigma = 0 returns a copy)."""
    images = _checked_images(images)
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0 px, got {sigma!r}")
    return ndimage.gaussian_filter(images, sigma=(0.0, sigma, sigma, 0.0), mode="wrap")


def blur_sweep(model, images, sigmas=BLUR_SIGMAS, batch_size=64):
    """Class probabilities of blurred images.

    Args:
      model: Keras classifier returning logits.
      images: ``(N, H, W, C)`` test images.
      sigmas: Gaussian blur widths in px.
      batch_size: images per model call.
    Returns:
      float64 ``(len(sigmas), N, n_classes)`` softmax probabilities (rows sum to 1).
    """
    images = _checked_images(images)
    return np.stack([special.softmax(class_logits(model, blur_images(images, s), batch_size),
                                     axis=-1) for s in sigmas])


def blur_summary(probabilities, labels, sigmas=BLUR_SIGMAS):
    """Mean P(class | sigma) over the images of each true class.

    Args:
      probabilities: ``(n_sigma, N, n_classes)`` from :func:`blur_sweep`.
      labels: ``(N,)`` true classes of the images.
      sigmas: the n_sigma blur widths (px).
    Returns:
      JSON-serialisable dict: ``sigmas``; ``support`` (images per true class);
      ``mean_probability[s][t][c]``, the mean over images of true class t of P(c) at
      ``sigmas[s]`` (None for a class without images).
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels)
    if probabilities.ndim != 3 or probabilities.shape[0] != len(sigmas):
        raise ValueError(f"probabilities: expected shape ({len(sigmas)}, N, n_classes), got "
                         f"{probabilities.shape}")
    n_classes = probabilities.shape[-1]
    if labels.shape != probabilities.shape[1:2]:
        raise ValueError(f"labels: expected {probabilities.shape[1]} labels, got shape "
                         f"{labels.shape}")
    labels = _checked_classes(labels, len(labels), n_classes)
    support = np.bincount(labels, minlength=n_classes)
    means = [[probabilities[s, labels == t].mean(axis=0).tolist() if support[t] else None
              for t in range(n_classes)] for s in range(len(sigmas))]
    return {"sigmas": [float(s) for s in sigmas], "support": support.tolist(),
            "mean_probability": means}


def gaussian_transfer(k, sigma):
    """Amplitude transfer exp(-k^2 sigma^2 / 2) of a Gaussian blur of ``sigma`` px at
    wavenumbers ``k`` in rad/px (the power is multiplied by its square)."""
    return np.exp(-0.5 * (np.asarray(k, dtype=np.float64) * sigma) ** 2)


def blurred_spectra(images, sigmas=BLUR_SIGMAS, channel=0):
    """Mean 2D power spectrum of the blurred images at each blur width.

    Args:
      images: ``(N, H, H, C)`` square images.
      sigmas: Gaussian blur widths in px.
      channel: the image channel analysed.
    Returns:
      ``(k, P, Nmodes)``: k ``(nbins,)`` in rad/px (box_size = H px), P ``(len(sigmas),
      nbins)`` in px^2, the mean over images, Nmodes ``(nbins,)``.
    """
    images = _checked_images(images)
    if not 0 <= channel < images.shape[-1]:
        raise ValueError(f"channel={channel}: images have {images.shape[-1]} channels")
    spectra = []
    for sigma in sigmas:
        blurred = blur_images(images, sigma)[..., channel]
        k, power, counts = power_spectrum(blurred, box_size=images.shape[1], ndim=2)
        spectra.append(power.mean(axis=0))
    return k, np.stack(spectra), counts
