"""The study's figures, as matplotlib figures the caller saves or logs.

The backend is the process's choice: entry points choose the non-interactive one
(`glasses.entrypoint`), as figures are made in worker threads and on machines with no screen.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from glasses.labels import CLASS_NAMES


def fold_accuracy_curves(histories: list[pd.DataFrame], title: str) -> Figure:
    """Every fold's training (and, with early stopping, inner-validation) accuracy per check
    step, their mean in black (Figs. 2, 4)."""
    panels = [
        (column, name)
        for column, name in (("train_accuracy", "training"), ("val_accuracy", "inner validation"))
        if column in histories[0]
    ]
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for axis, (column, name) in zip(axes[0], panels, strict=True):
        for fold, history in enumerate(histories, start=1):
            axis.plot(history["step"], history[column], alpha=0.6, label=f"fold {fold}")
        mean = pd.concat([h.set_index("step")[column] for h in histories], axis=1).mean(axis=1)
        axis.plot(mean.index, mean.to_numpy(), color="black", linewidth=2.5, label="mean")
        axis.set(title=f"{name} accuracy", xlabel="optimiser step", ylabel="accuracy")
        axis.grid(alpha=0.3)
    axes[0, -1].legend(loc="lower right", fontsize="small")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def mean_curves(histories: list[pd.DataFrame], title: str) -> Figure:
    """Mean over folds of training (and inner-validation) accuracy and loss (Figs. 3, 5)."""
    stacked = pd.concat(histories).groupby("step").mean()
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("accuracy", "loss"), strict=True):
        axis.plot(stacked.index, stacked[f"train_{metric}"], label="training")
        if f"val_{metric}" in stacked:
            axis.plot(stacked.index, stacked[f"val_{metric}"], label="inner validation")
        axis.set(title=f"mean {metric} over folds", xlabel="optimiser step", ylabel=metric)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def sample_grid(images: np.ndarray, labels: np.ndarray, title: str, columns: int = 8) -> Figure:
    """Images (N x 3 x H x W, floats in [0, 1]) with their labels (Fig. 1)."""
    rows = int(np.ceil(len(images) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.8 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, image, label in zip(axes.flat, images, labels, strict=False):
        axis.imshow(np.clip(image.transpose(1, 2, 0), 0, 1))
        axis.set_title(CLASS_NAMES[int(label)], fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def confusion_figure(matrix: np.ndarray, title: str) -> Figure:
    """Counts with row-normalised shading, true class on rows (Figs. 6, 7)."""
    figure, axis = plt.subplots(figsize=(4.2, 3.8))
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (row, column), count in np.ndenumerate(matrix):
        colour = "white" if shares[row, column] > 0.5 else "black"
        axis.text(
            column,
            row,
            f"{count}\n{shares[row, column]:.0%}",
            ha="center",
            va="center",
            color=colour,
        )
    axis.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=CLASS_NAMES,
        yticklabels=CLASS_NAMES,
        xlabel="predicted",
        ylabel="true",
        title=title,
    )
    figure.tight_layout()
    return figure
