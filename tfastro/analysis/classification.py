"""Scores of a multi-class classifier from true and predicted class indices.

Classes are the integers 0 .. n_classes - 1 (for the turbulence classes, the order of
``tfastro.data.turbulence.TURBULENCE_CLASSES``). For class c, with TP, FP, FN, TN its one-vs-rest
counts over N samples:

- precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2 P R / (P + R);
- one-vs-rest accuracy = (TP + TN) / N, the accuracy of the binary question "class c or not";
- support = TP + FN, the number of samples whose true class is c.

A ratio whose denominator is 0 (a class never predicted: precision; a class absent from the
labels: recall; P = R = 0: F1) is defined as 0 and the report says so in ``notes``, rather
than producing NaN. Macro averages are plain means over all ``n_classes`` classes (absent
classes included, with their zeros). The confusion matrix has true classes on rows and
predicted classes on columns.
"""
import numpy as np

__all__ = ["confusion_matrix", "classification_report"]

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
