"""The shrinking-dataset sweep and the filter figures, logged under a `sweep` child run."""

from __future__ import annotations

import numpy as np
import torch
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from glasses.config import GlassesConfig
from glasses.data.reference import DataRef, family_inputs, image_set
from glasses.data.splits import Split
from glasses.filters import (
    cnn_feature_maps_figure,
    cnn_kernels_figure,
    scattering_coefficients_figure,
    wavelet_filters_figure,
)
from glasses.labels import CLASS_NAMES
from glasses.metrics import confusion
from glasses.outer import outer_baseline
from glasses.plots import confusion_figure, learning_curve_figure
from glasses.statistics import OuterDesign, sweep_inference, verdict_class
from glasses.sweep import budget_caveats, budget_check, convergence, sweep_fits, sweep_verdict
from glasses.tables import markdown_table
from glasses.training import pixels_to_input
from tasks.log import log_figure, log_metrics, log_table
from tasks.model_loading import version_model
from tasks.outer import OuterPoint, point_frame
from tasks.tracking import client


@task(name="summarise-sweep", cache_policy=NO_CACHE)
def summarise_sweep(
    points: list[OuterPoint],
    design: OuterDesign,
    dropped: list[str],
    config: GlassesConfig,
    run_id: str,
) -> str:
    """Table with bootstrap intervals, paired tests per size (Holm), crossover with interval,
    learning curves with fitted power laws against the majority baseline
    (`glasses.outer.outer_baseline`), convergence, dropped sizes, confounds and a verdict."""
    tracking = client()
    if not points:  # every size dropped: say why instead of a verdict
        line = f"no sweep: {'; '.join(dropped)}"
        tracking.set_tag(run_id, "sweep_verdict", line[:5000])
        tracking.set_tag(run_id, "sweep_verdict_class", "none")
        return line
    baseline = outer_baseline(design)
    frame = point_frame(points)
    records = frame.drop(columns="predictions")
    at_budget = frame["budget"] == 1.0
    inference = sweep_inference(frame[at_budget], design, config.sweep.resamples, seed=config.seed)
    table = inference.table.merge(convergence(records[at_budget]), on=["size", "model"])
    budgets = budget_check(records)
    fits = sweep_fits(inference)
    line = sweep_verdict(inference, fits, config, dropped + budget_caveats(budgets))
    points_index = ["size", "budget", "outer", "repeat", "model"]
    log_table(tracking, run_id, records.set_index(points_index), "sweep/points.csv")
    log_table(tracking, run_id, table.set_index(["size", "model"]), "sweep/table.csv")
    log_table(tracking, run_id, inference.tests.set_index("size"), "sweep/tests.csv")
    if not budgets.empty:
        log_table(tracking, run_id, budgets.set_index(["size", "budget"]), "sweep/budget.csv")
    figure = learning_curve_figure(inference.table, baseline, inference.crossover, fits)
    log_figure(tracking, run_id, figure, "figures/learning_curves.png")
    smallest = min(p.size for p in points)
    for point in points:
        if point.size == smallest and (point.outer, point.repeat, point.budget) == (0, 0, 1.0):
            title = (
                f"{point.model}, {smallest} training images: "
                f"balanced accuracy {point.balanced_accuracy:.3f}"
            )
            matrix = confusion(design.labels[design.tests[point.outer]], point.predictions)
            path = f"figures/{point.model}_confusion_smallest.png"
            log_figure(tracking, run_id, confusion_figure(matrix, title), path)
    tracking.set_tag(run_id, "sweep_verdict", line[:5000])
    tracking.set_tag(
        run_id, "sweep_verdict_class", verdict_class(inference.tests, config.sweep.alpha)
    )
    metrics = {f"baseline_{k}": v for k, v in baseline.items()}
    if inference.crossover is not None:
        metrics |= {
            "sweep_crossover_size": inference.crossover,
            "sweep_crossover_low": inference.crossover_low,
            "sweep_crossover_high": inference.crossover_high,
        }
    log_metrics(tracking, run_id, metrics)
    markdown = (
        f"# Shrinking-dataset sweep\n\n**{line}**\n\n"
        f"Majority-class baseline on the outer test parts: accuracy {baseline['accuracy']:.3f}, "
        f"balanced accuracy {baseline['balanced_accuracy']:.3f}, "
        f"macro-F1 {baseline['macro_f1']:.3f}\n\n"
        f"{markdown_table(table.set_index(['size', 'model']))}\n\n"
        "Paired hierarchical bootstrap (outer splits, repeats, test people) of ScatNet − CNN "
        "balanced accuracy, p never below the sign-flip floor, Holm-adjusted across sizes:\n\n"
        f"{markdown_table(inference.tests.set_index('size'))}\n"
    )
    tracking.log_text(run_id, markdown, "sweep/summary.md")
    create_markdown_artifact(key="glasses-sweep", markdown=markdown, description="Sweep results")
    return line


@task(name="filter-figures", cache_policy=NO_CACHE)
def filter_figures(
    versions: dict[str, str], data: DataRef, split: Split, config: GlassesConfig, run_id: str
) -> None:
    """What each model's filters look like (seed Figs. 8-11), on one glasses and one
    no-glasses test image: the registered CNN of `versions` (family → version), the ScatNet's
    fixed wavelets and its cached coefficients."""
    tracking = client()
    images, coefficients = image_set(data), family_inputs(data, "scatnet")
    cnn = version_model("cnn", versions["cnn"])
    test_rows = np.where(split.test)[0]
    labels = images.labels[test_rows]
    chosen = [test_rows[labels == label][0] for label in (1, 0) if (labels == label).any()]
    pictures = pixels_to_input(torch.from_numpy(images.pixels[chosen]))
    titles = [CLASS_NAMES[images.labels[row]] for row in chosen]
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
