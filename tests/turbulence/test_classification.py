"""Classification scores against hand-computed examples and a brute-force loop implementation."""
import json
import warnings

import numpy as np
import pytest

from tfastro.turbulence.evaluation import classification_report, confusion_matrix

# 3 classes, 8 samples, worked by hand:
#   true 0: predicted 0, 0, 1      true 1: predicted 1, 1, 2      true 2: predicted 2, 0
LABELS = [0, 0, 0, 1, 1, 1, 2, 2]
PREDICTED = [0, 0, 1, 1, 1, 2, 2, 0]


def test_hand_computed_example():
    np.testing.assert_array_equal(confusion_matrix(LABELS, PREDICTED, 3, normalise=None),
                                  [[2, 1, 0], [0, 2, 1], [1, 0, 1]])
    np.testing.assert_allclose(confusion_matrix(LABELS, PREDICTED, 3),
                               [[2 / 3, 1 / 3, 0], [0, 2 / 3, 1 / 3], [1 / 2, 0, 1 / 2]])
    report = classification_report(LABELS, PREDICTED, 3, class_names=["a", "b", "c"])
    assert report["accuracy"] == pytest.approx(5 / 8)
    per_class = report["per_class"]
    # class 0: TP 2, FP 1, FN 1, TN 4; class 1: TP 2, FP 1, FN 1, TN 4; class 2: TP 1, FP 1,
    # FN 1, TN 5
    np.testing.assert_allclose(per_class["precision"], [2 / 3, 2 / 3, 1 / 2])
    np.testing.assert_allclose(per_class["recall"], [2 / 3, 2 / 3, 1 / 2])
    np.testing.assert_allclose(per_class["f1"], [2 / 3, 2 / 3, 1 / 2])
    np.testing.assert_allclose(per_class["one_vs_rest_accuracy"], [6 / 8, 6 / 8, 6 / 8])
    assert per_class["support"] == [3, 3, 2]
    assert per_class["predicted"] == [3, 3, 2]
    assert report["macro"]["f1"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 2) / 3)
    assert report["class_names"] == ["a", "b", "c"]
    assert report["notes"] == []


def test_unequal_precision_and_recall():
    # true 0 x4 predicted 0, 0, 0, 1; true 1 x1 predicted 0: class 0 P = 3/4, R = 3/4;
    # class 1 P = 0 (TP 0, FP 1), R = 0; F1_0 = 3/4
    report = classification_report([0, 0, 0, 0, 1], [0, 0, 0, 1, 0], 2)
    np.testing.assert_allclose(report["per_class"]["precision"], [3 / 4, 0])
    np.testing.assert_allclose(report["per_class"]["recall"], [3 / 4, 0])
    np.testing.assert_allclose(report["per_class"]["one_vs_rest_accuracy"], [3 / 5, 3 / 5])
    assert report["notes"] == ["class 1 has precision = recall = 0: its F1 is set to 0"]
    # precision 1/2, recall 1: F1 = 2 * 1/2 / (3/2) = 2/3
    report = classification_report([0, 1], [0, 0], 2)
    assert report["per_class"]["precision"][0] == pytest.approx(0.5)
    assert report["per_class"]["f1"][0] == pytest.approx(2 / 3)


def test_classes_never_predicted_or_absent_give_zero_with_notes():
    labels, predicted = [0, 0, 1, 1], [0, 0, 0, 0]  # class 1 never predicted, class 2 absent
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division warnings
        report = classification_report(labels, predicted, 3)
    per_class = report["per_class"]
    np.testing.assert_allclose(per_class["precision"], [0.5, 0.0, 0.0])
    np.testing.assert_allclose(per_class["recall"], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(per_class["f1"], [2 / 3, 0.0, 0.0])
    np.testing.assert_allclose(per_class["one_vs_rest_accuracy"], [0.5, 0.5, 1.0])
    assert report["macro"]["precision"] == pytest.approx(0.5 / 3)
    assert "class 1 is never predicted: its precision is set to 0" in report["notes"]
    assert "class 2 has no samples: its recall is set to 0" in report["notes"]
    assert not any(np.isnan(v) for values in per_class.values() for v in values)
    row = confusion_matrix(labels, predicted, 3)
    np.testing.assert_array_equal(row, [[1, 0, 0], [1, 0, 0], [0, 0, 0]])


def brute_force_report(labels, predicted, n_classes):
    """Scores by counting sample by sample (the definitions, one class at a time)."""
    n = len(labels)
    matrix = [[0] * n_classes for _ in range(n_classes)]
    for t, p in zip(labels, predicted):
        matrix[t][p] += 1
    scores = {"precision": [], "recall": [], "f1": [], "one_vs_rest_accuracy": []}
    for c in range(n_classes):
        tp = sum(1 for t, p in zip(labels, predicted) if t == c and p == c)
        fp = sum(1 for t, p in zip(labels, predicted) if t != c and p == c)
        fn = sum(1 for t, p in zip(labels, predicted) if t == c and p != c)
        tn = sum(1 for t, p in zip(labels, predicted) if t != c and p != c)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        scores["precision"].append(precision)
        scores["recall"].append(recall)
        scores["f1"].append(2 * precision * recall / (precision + recall)
                            if precision + recall else 0.0)
        scores["one_vs_rest_accuracy"].append((tp + tn) / n)
    accuracy = sum(1 for t, p in zip(labels, predicted) if t == p) / n
    return matrix, scores, accuracy


@pytest.mark.parametrize("seed", range(5))
def test_random_labels_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_classes = 5
    labels = rng.integers(0, n_classes, 60)
    # mostly right, some classes starved of predictions on some seeds
    predicted = np.where(rng.random(60) < 0.6, labels, rng.integers(0, 3, 60))
    matrix, scores, accuracy = brute_force_report(labels.tolist(), predicted.tolist(), n_classes)
    report = classification_report(labels, predicted, n_classes)
    assert report["confusion_matrix"] == matrix
    assert report["accuracy"] == pytest.approx(accuracy)
    for key, values in scores.items():
        np.testing.assert_allclose(report["per_class"][key], values, err_msg=key)
        assert report["macro"][key] == pytest.approx(np.mean(values))
    rows = confusion_matrix(labels, predicted, n_classes)
    for t in range(n_classes):
        total = sum(matrix[t])
        np.testing.assert_allclose(rows[t], [m / total if total else 0.0 for m in matrix[t]])
    json.dumps(report)  # JSON-serialisable


def test_bad_input():
    with pytest.raises(ValueError, match="predicted: 2 predictions for 3 labels"):
        classification_report([0, 1, 1], [0, 1], 2)
    with pytest.raises(ValueError, match=r"labels: class indices must lie in \[0, 2\)"):
        confusion_matrix([0, 2], [0, 1], 2)
    with pytest.raises(ValueError, match="normalise"):
        confusion_matrix([0, 1], [0, 1], 2, normalise="column")
    with pytest.raises(ValueError, match="integer class indices"):
        confusion_matrix([0.5, 1], [0, 1], 2)
    with pytest.raises(ValueError, match="class_names"):
        classification_report([0, 1], [0, 1], 2, class_names=["a"])
