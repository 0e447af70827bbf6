"""The shrinking-dataset sweep and the filter figures, logged under a `sweep` child run."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from torch import nn

from glasses.config import GlassesConfig
from glasses.crossval import Family, cross_validate_rows, pixels_to_input, predict_rows
from glasses.data.images import ImageSet
from glasses.data.splits import Split, split_units
from glasses.filters import (
    cnn_feature_maps_figure,
    cnn_kernels_figure,
    learning_curve_figure,
    scattering_coefficients_figure,
    wavelet_filters_figure,
)
from glasses.metrics import confusion, scores
from glasses.plots import confusion_figure
from glasses.statistics import crossover_size, size_tests, sweep_table, verdict
from glasses.sweep import default_sizes, folds_for, subsample_training
from glasses.tables import markdown_table
from glasses.training import threads_per_worker
from tasks.tracking import client, log_figure, log_metrics, log_table


def sweep_sizes(config: GlassesConfig, split: Split) -> list[int]:
    n_train = int((~split.test).sum())
    if config.sweep.sizes is not None:
        return [size for size in config.sweep.sizes if size <= n_train]
    return default_sizes(n_train, config.sweep.smallest, config.sweep.steps)


@dataclass(frozen=True)
class SweepPoint:
    size: int
    repeat: int
    model: Family
    folds: int
    accuracy: float
    f1: float
    predictions: np.ndarray  # on the fixed test split, for the confusion matrices


@task(name="sweep-point", cache_policy=NO_CACHE)
def sweep_point(
    family: Family,
    size: int,
    repeat: int,
    config: GlassesConfig,
    images: ImageSet,
    inputs: torch.Tensor,
    split: Split,
) -> SweepPoint:
    """Both families draw the same subset at a (size, repeat), so their scores pair up."""
    torch.set_num_threads(threads_per_worker(config.runtime.workers))
    seed = config.seed + 7919 * repeat + size
    rows = subsample_training(images.manifest, np.where(~split.test)[0], size, seed)
    labels = torch.from_numpy(images.labels)
    units = split_units(images.manifest.iloc[rows].reset_index(drop=True))
    folds = folds_for(size, images.labels[rows], units, config.sweep.folds)
    model, _ = cross_validate_rows(
        family, config, images.manifest, inputs, labels, rows, folds, seed
    )
    test_rows = np.where(split.test)[0]
    predicted = predict_rows(family, model, inputs, test_rows)
    result = scores(images.labels[test_rows], predicted)
    return SweepPoint(size, repeat, family, folds, result["accuracy"], result["f1"], predicted)


@task(name="summarise-sweep", cache_policy=NO_CACHE)
def summarise_sweep(points: list[SweepPoint], test_labels: np.ndarray, run_id: str) -> str:
    """Table with intervals, paired tests per size, crossover, learning curves and a verdict."""
    tracking = client()
    records = pd.DataFrame(
        [{k: v for k, v in vars(p).items() if k != "predictions"} for p in points]
    )
    table, tests = sweep_table(records), size_tests(records)
    line = verdict(tests)
    crossover = crossover_size(tests["size"].to_numpy(), tests["mean_difference"].to_numpy())
    log_table(tracking, run_id, records.set_index(["size", "repeat", "model"]), "sweep/points.csv")
    log_table(tracking, run_id, table.set_index(["size", "model"]), "sweep/table.csv")
    log_table(tracking, run_id, tests.set_index("size"), "sweep/tests.csv")
    log_figure(
        tracking, run_id, learning_curve_figure(table, crossover), "figures/learning_curves.png"
    )
    smallest = min(p.size for p in points)
    for point in points:
        if point.size == smallest and point.repeat == 0:
            title = f"{point.model}, {smallest} training images: test accuracy {point.accuracy:.3f}"
            matrix = confusion(test_labels, point.predictions)
            path = f"figures/{point.model}_confusion_smallest.png"
            log_figure(tracking, run_id, confusion_figure(matrix, title), path)
    tracking.set_tag(run_id, "sweep_verdict", line)
    if crossover is not None:
        log_metrics(tracking, run_id, {"sweep_crossover_size": crossover})
    markdown = (
        f"# Shrinking-dataset sweep\n\n**{line}**\n\n"
        f"Estimated crossover size: {'none' if crossover is None else f'{crossover:.0f}'}\n\n"
        f"{markdown_table(table.set_index(['size', 'model']))}\n\n"
        f"Paired tests (ScatNet − CNN accuracy):\n\n{markdown_table(tests.set_index('size'))}\n"
    )
    tracking.log_text(run_id, markdown, "sweep/summary.md")
    create_markdown_artifact(key="glasses-sweep", markdown=markdown, description="Sweep results")
    return line


@task(name="filter-figures", cache_policy=NO_CACHE)
def filter_figures(
    cnn: nn.Module,
    images: ImageSet,
    split: Split,
    coefficients: torch.Tensor,
    config: GlassesConfig,
    run_id: str,
) -> None:
    """What each model's filters look like (seed Figs. 8-11), on one glasses and one
    no-glasses test image."""
    tracking = client()
    test_rows = np.where(split.test)[0]
    labels = images.labels[test_rows]
    chosen = [test_rows[labels == label][0] for label in (1, 0) if (labels == label).any()]
    pictures = pixels_to_input(torch.from_numpy(images.pixels[chosen]))
    titles = ["glasses" if images.labels[row] else "no glasses" for row in chosen]
    J, L = config.scatnet.J, config.scatnet.L
    log_figure(tracking, run_id, cnn_kernels_figure(cnn), "figures/cnn_kernels.png")
    log_figure(
        tracking,
        run_id,
        cnn_feature_maps_figure(cnn, pictures, titles),
        "figures/cnn_feature_maps.png",
    )
    log_figure(
        tracking,
        run_id,
        wavelet_filters_figure(J, L, config.data.image_size),
        "figures/wavelet_filters.png",
    )
    log_figure(
        tracking,
        run_id,
        scattering_coefficients_figure(coefficients[chosen[0]], J, L, titles[0]),
        "figures/scattering_coefficients.png",
    )
