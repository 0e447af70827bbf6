"""The study's figures: right panels, one curve per fold plus the black mean, right data."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from glasses.learning_curve import PowerLaw, fit_curves
from glasses.plots import (
    CURVE_METRICS,
    confusion_figure,
    fold_accuracy_curves,
    learning_curve_figure,
    mean_curves,
    sample_grid,
)
from glasses.statistics import OuterDesign, sweep_inference


def history(checks: int, offset: float) -> pd.DataFrame:
    epoch = np.arange(1, checks + 1)
    return pd.DataFrame(
        {
            "step": 10 * epoch,
            "train_loss": 1.0 / epoch + offset,
            "train_accuracy": 0.5 + 0.04 * epoch + offset,
            "val_loss": 1.2 / epoch + offset,
            "val_accuracy": 0.5 + 0.03 * epoch + offset,
        }
    )


HISTORIES = [history(5, 0.0), history(5, 0.02), history(5, 0.04)]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_fold_curves_one_line_per_fold_and_a_black_mean() -> None:
    figure = fold_accuracy_curves(HISTORIES, "cnn")
    assert isinstance(figure, Figure)
    assert len(figure.axes) == 2
    for axis, column in zip(figure.axes, ("train_accuracy", "val_accuracy"), strict=True):
        lines = axis.get_lines()
        assert len(lines) == len(HISTORIES) + 1
        for line, fold in zip(lines[:-1], HISTORIES, strict=True):
            np.testing.assert_allclose(line.get_ydata(), fold[column])
        mean = lines[-1]
        assert to_rgba(mean.get_color()) == to_rgba("black")
        assert mean.get_label() == "mean"
        expected = np.mean([fold[column] for fold in HISTORIES], axis=0)
        np.testing.assert_allclose(mean.get_ydata(), expected)
    assert figure.get_suptitle() == "cnn"


def test_fold_curves_mean_over_folds_of_different_lengths() -> None:
    figure = fold_accuracy_curves([history(3, 0.0), history(5, 0.1)], "early stop")
    mean = figure.axes[1].get_lines()[-1]
    np.testing.assert_allclose(mean.get_xdata(), [10, 20, 30, 40, 50])
    # Checks 4 and 5 only exist in the second fold (the first stopped early).
    assert mean.get_ydata()[-1] == pytest.approx(history(5, 0.1)["val_accuracy"].iloc[-1])


def test_mean_curves_show_training_and_validation() -> None:
    figure = mean_curves(HISTORIES, "scatnet")
    assert len(figure.axes) == 2
    for axis, metric in zip(figure.axes, ("accuracy", "loss"), strict=True):
        lines = axis.get_lines()
        assert [line.get_label() for line in lines] == ["training", "inner validation"]
        expected = np.mean([fold[f"val_{metric}"] for fold in HISTORIES], axis=0)
        np.testing.assert_allclose(lines[1].get_ydata(), expected)


def test_curves_without_early_stopping_show_training_only() -> None:
    """With no inner validation (patience 0) and no held-out scores there is no validation
    curve to draw; NaN columns count as absent."""
    histories = [h.assign(val_loss=np.nan, val_accuracy=np.nan) for h in HISTORIES]
    assert len(fold_accuracy_curves(histories, "cnn").axes) == 1
    for axis in mean_curves(histories, "cnn").axes:
        assert [line.get_label() for line in axis.get_lines()] == ["training"]


def watched(history: pd.DataFrame) -> pd.DataFrame:
    """A history of a fold trained without early stopping, its held-out rows watched."""
    return history.assign(
        held_out_loss=history["val_loss"] + 0.1,
        held_out_accuracy=history["val_accuracy"] - 0.1,
        val_loss=np.nan,
        val_accuracy=np.nan,
    )


def test_held_out_fold_curves_stand_beside_training_without_early_stopping() -> None:
    histories = [watched(h) for h in HISTORIES]
    figure = fold_accuracy_curves(histories, "cnn")
    assert [axis.get_title() for axis in figure.axes] == [
        "training accuracy",
        "held-out fold accuracy",
    ]
    for line, fold in zip(figure.axes[1].get_lines()[:-1], histories, strict=True):
        np.testing.assert_allclose(line.get_ydata(), fold["held_out_accuracy"])
    for axis, metric in zip(mean_curves(histories, "cnn").axes, ("accuracy", "loss"), strict=True):
        lines = axis.get_lines()
        assert [line.get_label() for line in lines] == ["training", "held-out fold"]
        expected = np.mean([fold[f"held_out_{metric}"] for fold in histories], axis=0)
        np.testing.assert_allclose(lines[1].get_ydata(), expected)


def test_curves_with_early_stopping_show_both_validation_curves() -> None:
    histories = [watched(h).assign(val_accuracy=h["val_accuracy"]) for h in HISTORIES]
    titles = [axis.get_title() for axis in fold_accuracy_curves(histories, "cnn").axes]
    assert titles == ["training accuracy", "inner validation accuracy", "held-out fold accuracy"]


def test_curve_figures_say_which_trainings_have_no_validation_curve() -> None:
    for make in (fold_accuracy_curves, mean_curves):
        notes = [text.get_text() for text in make(HISTORIES, "cnn").texts]
        assert any("refit" in note and "no validation curve" in note for note in notes)


def test_sample_grid_one_image_per_axis_and_labels_as_titles() -> None:
    images = np.random.default_rng(0).random((10, 3, 8, 8))
    labels = np.array([0, 1] * 5)
    figure = sample_grid(images, labels, "samples", columns=4)
    assert len(figure.axes) == 12  # 3 rows x 4 columns
    with_images = [axis for axis in figure.axes if axis.get_images()]
    assert len(with_images) == 10
    assert [axis.get_title() for axis in with_images[:2]] == ["no glasses", "glasses"]
    np.testing.assert_allclose(
        with_images[0].get_images()[0].get_array(), images[0].transpose(1, 2, 0)
    )


def test_confusion_figure_counts_and_shares() -> None:
    matrix = np.array([[8, 2], [1, 9]])
    figure = confusion_figure(matrix, "test")
    assert len(figure.axes) == 1
    texts = sorted(text.get_text() for text in figure.axes[0].texts)
    assert texts == sorted(["8\n80%", "2\n20%", "1\n10%", "9\n90%"])
    np.testing.assert_allclose(figure.axes[0].get_images()[0].get_array(), [[0.8, 0.2], [0.1, 0.9]])


def test_confusion_figure_with_an_empty_class() -> None:
    figure = confusion_figure(np.array([[0, 0], [3, 1]]), "no negatives")
    assert "0\n0%" in [text.get_text() for text in figure.axes[0].texts]


def test_learning_curve_has_both_models_and_the_baseline_on_log_axes():
    rng = np.random.default_rng(0)
    labels = (rng.random(60) < 0.6).astype(int)
    rows = [
        {"size": size, "outer": 0, "repeat": r, "model": m,
         "predictions": np.where(rng.random(60) < 0.8, labels, 1 - labels)}
        for size in (400, 100, 25)
        for r in range(3)
        for m in ("cnn", "scatnet")
    ]  # fmt: skip
    design = OuterDesign((np.arange(60),), labels, np.arange(60))
    table = sweep_inference(pd.DataFrame(rows), design, resamples=100).table
    baseline = {"accuracy": 0.6, "balanced_accuracy": 0.5, "macro_f1": 0.375}
    figure = learning_curve_figure(table, baseline, crossover=60.0)
    axes = figure.get_axes()
    assert [axis.get_title() for axis in axes] == [
        "test accuracy",
        "test balanced accuracy",
        "test macro-F1",
    ]
    for axis, floor in zip(axes, baseline.values(), strict=True):
        assert axis.get_xscale() == "log"
        labels_ = [line.get_label() for line in axis.get_lines()]
        assert labels_[:3] == ["CNN", "ScatNet", "majority class"]
        assert axis.get_lines()[2].get_ydata()[0] == floor
        assert len(axis.collections) == 2  # one interval band per model
    assert "crossover ≈ 60" in [line.get_label() for line in axes[1].get_lines()]


def test_learning_curve_draws_the_fits_dotted_beyond_the_tried_sizes():
    sizes = np.array([400.0, 100.0, 25.0])
    table = pd.DataFrame(
        [
            {"size": size, "model": model, **{f"{m}_{p}": 0.7 for m in CURVE_METRICS for p in
                                               ("mean", "low", "high")}}
            for size in sizes
            for model in ("cnn", "scatnet")
        ]
    )  # fmt: skip
    curves = {"cnn": PowerLaw(0.9, 1.0, 0.5), "scatnet": PowerLaw(0.85, 0.5, 0.5)}
    fits = fit_curves(
        sizes,
        {f: c(sizes) for f, c in curves.items()},
        {f: np.tile(c(sizes), (20, 1)) for f, c in curves.items()},
    )
    baseline = {"accuracy": 0.6, "balanced_accuracy": 0.5, "macro_f1": 0.375}
    panel = learning_curve_figure(table, baseline, fits=fits).get_axes()[1]
    dotted = [line for line in panel.get_lines() if line.get_linestyle() == ":"]
    assert len(dotted) == 3  # each family's extrapolation, and the baseline
    solid_x = [line.get_xdata() for line in panel.get_lines() if line.get_linewidth() == 1]
    assert all(x.min() >= 25 and x.max() <= 400 for x in solid_x if len(x))
    assert "power-law fit (dotted: extrapolated)" in [
        line.get_label() for line in panel.get_lines()
    ]
    assert len(panel.collections) == 4  # two interval bands, two fit bands
