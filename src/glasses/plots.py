"""The study's figures, as matplotlib figures the caller saves or logs.

The backend is the process's choice: entry points choose the non-interactive one
(`glasses.entrypoint`), as figures are made in worker threads and on machines with no screen.
"""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

from glasses.families import SPECS
from glasses.labels import CLASS_NAMES
from glasses.learning_curve import CurveFits

# The curves a training history may hold: its columns' prefix and the curve's name.
CURVES = {
    "train": "training",
    "val": "inner validation",
    "held_out": "held-out fold",
}
CURVES_NOTE = (
    "training: running scores since the previous check. inner validation: the split early "
    "stopping watched (patience > 0 only). held-out fold: the fold's own validation rows, "
    "scored at every check, never used to choose or stop. The refit on all training images and "
    "the outer trainings have no held-out rows, so no validation curve: see their runs' "
    "training metrics."
)


def history_curves(histories: list[pd.DataFrame]) -> dict[str, str]:
    """The curves of `CURVES` that some fold's history holds scores of (NaN where a training
    had no such rows)."""
    return {
        prefix: name
        for prefix, name in CURVES.items()
        if any(h.get(f"{prefix}_accuracy", pd.Series(dtype=float)).notna().any() for h in histories)
    }


def _with_note(figure: Figure, title: str) -> Figure:
    """The title above, `CURVES_NOTE` below the panels, wrapped to the figure's width."""
    note = textwrap.fill(CURVES_NOTE, width=int(figure.get_figwidth() * 19))
    lines = note.count("\n") + 1
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.035 * lines + 0.02, 1, 1))
    figure.text(0.01, 0.01, note, fontsize="x-small", va="bottom")
    return figure


def fold_accuracy_curves(histories: list[pd.DataFrame], title: str) -> Figure:
    """Every fold's accuracy per check step, one panel per curve of `CURVES` the histories hold
    (training; inner validation with early stopping; the held-out fold), their mean in black
    (Figs. 2, 4)."""
    panels = history_curves(histories)
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.6), squeeze=False)
    for axis, (prefix, name) in zip(axes[0], panels.items(), strict=True):
        column = f"{prefix}_accuracy"
        for fold, history in enumerate(histories, start=1):
            axis.plot(history["step"], history[column], alpha=0.6, label=f"fold {fold}")
        mean = pd.concat([h.set_index("step")[column] for h in histories], axis=1).mean(axis=1)
        axis.plot(mean.index, mean.to_numpy(), color="black", linewidth=2.5, label="mean")
        axis.set(title=f"{name} accuracy", xlabel="optimiser step", ylabel="accuracy")
        axis.grid(alpha=0.3)
    axes[0, -1].legend(loc="lower right", fontsize="small")
    return _with_note(figure, title)


def mean_curves(histories: list[pd.DataFrame], title: str) -> Figure:
    """Mean over folds of accuracy and loss, one line per curve of `CURVES` the histories hold
    (Figs. 3, 5)."""
    curves = history_curves(histories)
    stacked = pd.concat(histories).groupby("step").mean()
    figure, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    for axis, metric in zip(axes, ("accuracy", "loss"), strict=True):
        for prefix, name in curves.items():
            axis.plot(stacked.index, stacked[f"{prefix}_{metric}"], label=name)
        axis.set(title=f"mean {metric} over folds", xlabel="optimiser step", ylabel=metric)
        axis.grid(alpha=0.3)
        axis.legend()
    return _with_note(figure, title)


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


CURVE_METRICS = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "macro_f1": "macro-F1",
}


def learning_curve_figure(
    table: pd.DataFrame,
    baseline: dict[str, float],
    crossover: float | None = None,
    fits: CurveFits | None = None,
) -> Figure:
    """Test accuracy, balanced accuracy and macro-F1 against training-set size, both models
    with their 95 % bootstrap intervals, and the majority-class baseline as a dashed line: a
    curve near that line is a model that learned nothing.

    `table` as `glasses.statistics.sweep_inference` makes it. Log size axis: the sweep's sizes
    are spaced geometrically. `crossover` is marked on the balanced-accuracy panel when given;
    `fits` (`glasses.learning_curve.fit_curves`) draws each family's inverse power law there
    with its band, dotted where it extrapolates beyond the tried sizes.
    """
    sizes = sorted(table["size"].unique())
    figure, axes = plt.subplots(1, len(CURVE_METRICS), figsize=(15, 4.2))
    for axis, (metric, name) in zip(axes, CURVE_METRICS.items(), strict=True):
        for model, rows in table.groupby("model"):
            rows = rows.sort_values("size")
            label = SPECS[model].title if model in SPECS else model
            (line,) = axis.plot(rows["size"], rows[f"{metric}_mean"], marker="o", label=label)
            axis.fill_between(
                rows["size"],
                rows[f"{metric}_low"],
                rows[f"{metric}_high"],
                color=line.get_color(),
                alpha=0.2,
            )
        axis.axhline(baseline[metric], color="black", linestyle=":", label="majority class")
        axis.set_xscale("log")
        axis.set_xticks(sizes)
        axis.xaxis.set_major_formatter(ScalarFormatter())
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set(xlabel="training images", ylabel=f"test {name}", title=f"test {name}")
        axis.grid(alpha=0.3)
    if fits is not None:
        _draw_fits(axes[1], fits)
    if crossover is not None:
        axes[1].axvline(
            crossover, color="grey", linestyle="--", label=f"crossover ≈ {crossover:.0f}"
        )
    for axis in axes:
        axis.legend(fontsize="small")
    figure.suptitle("Learning curves: mean over outer splits and draws, 95 % bootstrap intervals")
    figure.tight_layout()
    return figure


def _draw_fits(axis: Axes, fits: CurveFits) -> None:
    inside = (fits.grid >= fits.tried[0]) & (fits.grid <= fits.tried[1])
    colours = {line.get_label(): line.get_color() for line in axis.get_lines()}
    for family, fit in fits.fits.items():
        colour = colours.get(SPECS[family].title, "grey")
        curve = fit(fits.grid)
        axis.plot(fits.grid[inside], curve[inside], color=colour, linewidth=1, label=None)
        axis.plot(fits.grid, np.where(inside, np.nan, curve), color=colour, linestyle=":")
        axis.fill_between(fits.grid, fits.low[family], fits.high[family], color=colour, alpha=0.08)
    axis.plot([], [], color="grey", linewidth=1, label="power-law fit (dotted: extrapolated)")
