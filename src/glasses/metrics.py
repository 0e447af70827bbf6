"""Classification scores. `f1` takes glasses (label 1) as the positive class; balanced accuracy
and macro-F1 stand beside accuracy because a model that always answers the majority class
scores well on accuracy and glasses-F1 alone."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
)

METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "f1")


def scores(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """The `METRICS`, each in [0, 1]; with one class present balanced accuracy is its recall."""
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "balanced_accuracy": _balanced_accuracy(labels, predictions),
        "macro_f1": float(
            f1_score(labels, predictions, labels=[0, 1], average="macro", zero_division=0)
        ),
        "f1": float(f1_score(labels, predictions, pos_label=1, zero_division=0)),
    }


def _balanced_accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    if len(labels) == 0:
        return float("nan")
    with warnings.catch_warnings():  # one class only: sklearn warns and returns its recall
        warnings.simplefilter("ignore", UserWarning)
        return float(balanced_accuracy_score(labels, predictions))


def majority_baseline(train_labels: np.ndarray, test_labels: np.ndarray) -> dict[str, float]:
    """Scores of always answering the training set's majority class: the floor every learning
    curve is drawn against."""
    majority = int(np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=2).argmax())
    return scores(test_labels, np.full(len(test_labels), majority))


def confusion(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Rows are true classes, columns predictions, in label order (0 = no glasses, 1 = glasses)."""
    return confusion_matrix(labels, predictions, labels=[0, 1])
