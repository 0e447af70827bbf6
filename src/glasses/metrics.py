"""Classification scores, with glasses (label 1) as the positive class throughout."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score


def scores(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "f1": float(f1_score(labels, predictions, pos_label=1, zero_division=0)),
    }


def confusion(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Rows are true classes, columns predictions, in label order (0 = no glasses, 1 = glasses)."""
    return confusion_matrix(labels, predictions, labels=[0, 1])
