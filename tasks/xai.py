"""Explanation tasks: attributions, their agreement, and whether they are right (`xai` run)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from torch import nn

from glasses.config import GlassesConfig, XAIMethod
from glasses.data.reference import DataRef, image_set
from glasses.data.splits import Split
from glasses.families import Family
from glasses.inference import weights_digest
from glasses.result_format import stored
from glasses.results import explanation_key, model_runtime
from glasses.training import pixels_to_input
from glasses.xai.agreement import agreement_values, model_agreement_tests, summarise_agreement
from glasses.xai.correctness import (
    Evidence,
    cascading_randomisation,
    deletion_evidence,
    deletion_fill,
    localisation_evidence,
)
from glasses.xai.explain import Explanation
from glasses.xai.methods import SCATTER_PAIRS, explain
from glasses.xai.overlays import (
    attribution_histograms_figure,
    method_overlays_figure,
    pairwise_scatter_figure,
    shap_vs_ig_figure,
)
from glasses.xai.report import xai_report
from glasses.xai.selection import NAMED, ImageSelection, select_images
from tasks.log import log_figure, log_metrics, log_table
from tasks.model_loading import version_model
from tasks.progress import run_logger
from tasks.resume import reuse_when_resuming
from tasks.tracking import client


@stored
@dataclass
class Explained:
    family: Family
    rows: np.ndarray
    explanation: Explanation


def _inputs(data: DataRef, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    images = image_set(data)
    pixels = pixels_to_input(torch.from_numpy(images.pixels[rows]))
    return pixels, torch.from_numpy(images.labels[rows])


@task(name="select-images", cache_policy=NO_CACHE)
def select_xai_images(data: DataRef, split: Split, config: GlassesConfig) -> ImageSelection:
    """Which test images each method explains and checks (`glasses.xai.selection`); says how
    many of each class (the report repeats it)."""
    selection = select_images(image_set(data), split, config)
    counts = ", ".join(f"{count} {name}" for name, count in selection.counts.items())
    run_logger().info("explaining %s test images", counts)
    return selection


@task(name="explain", cache_policy=NO_CACHE)
def explain_rows(
    family: Family,
    version: str,
    method: XAIMethod,
    data: DataRef,
    rows: np.ndarray,
    config: GlassesConfig,
) -> Explained:
    """Maps of the registered `version` (as users get it from the registry; the run's own
    version, not the `champion` alias, which may come from another run, of another image size
    or trained on this run's test images) for `rows`; reused when an earlier run made them."""
    model = version_model(family, version)

    def compute() -> Explained:
        images, targets = _inputs(data, rows)
        explanation = explain(model, images, targets, method, config.xai, config.seed)
        return Explained(family, rows, explanation)

    key = explanation_key(
        "explain", config, weights_digest(model), method, data.images, rows, *model_runtime(model)
    )
    return reuse_when_resuming(data, config, key, compute)[0]


@task(name="check-randomisation", cache_policy=NO_CACHE)
def check_randomisation(
    family: Family,
    version: str,
    method: XAIMethod,
    data: DataRef,
    rows: np.ndarray,
    original: np.ndarray,
    config: GlassesConfig,
) -> pd.DataFrame:
    """Adebayo et al.'s cascading randomisation for one model and method, per image with its
    manifest row; `original`: the intact model's maps of `rows`, from `explain_rows`."""
    model = version_model(family, version)

    def maps(candidate: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
        return explain(candidate, images, labels, method, config.xai, config.seed).maps

    def compute() -> pd.DataFrame:
        images, targets = _inputs(data, rows)
        table = cascading_randomisation(
            model,
            maps,
            images,
            targets,
            seed=config.seed,
            original=original,
            reuse_mb=config.xai.scattering_memory_mb,
        )
        return table.assign(row=rows[table["image"].to_numpy()])

    key = explanation_key(
        "randomisation",
        config,
        weights_digest(model),
        method,
        data.images,
        rows,
        *model_runtime(model),
    )
    return reuse_when_resuming(data, config, key, compute)[0]


@task(name="score-explanations", cache_policy=NO_CACHE)
def score_explanations(
    explained: Explained,
    version: str,
    data: DataRef,
    selection: ImageSelection,
    randomisation: pd.DataFrame,
    config: GlassesConfig,
) -> Evidence:
    """Localisation on images with a ground-truth mask, deletion against a random order on
    every image, and the randomisation check's rows, each with the image's person and class."""
    model = version_model(explained.family, version)
    rows = explained.rows
    images, targets = _inputs(data, rows)
    mean = selection.training_mean
    training_mean = None if mean is None else torch.from_numpy(mean)
    fills = torch.stack(
        [deletion_fill(image, config.xai.deletion_baseline, training_mean) for image in images]
    )
    people, labels = selection.people, selection.labels
    maps = explained.explanation.maps
    randomised_rows = randomisation["row"].astype(int)
    return Evidence(
        model=explained.family,
        method=explained.explanation.method,
        localisation=localisation_evidence(
            rows, maps, selection.masks, people, labels, seed=config.seed
        ),
        deletion=deletion_evidence(
            model,
            images,
            targets,
            maps,
            fills,
            rows,
            people,
            labels,
            steps=config.xai.deletion_steps,
            seed=config.seed,
            batch_size=config.xai.batch_size,
        ),  # fmt: skip
        randomisation=randomisation.assign(
            person=randomised_rows.map(people), label=randomised_rows.map(labels)
        ),
    )


def _by_row(explained: Explained) -> dict[int, np.ndarray]:
    return dict(zip(explained.rows.tolist(), explained.explanation.maps, strict=True))


@task(name="explanation-figures", cache_policy=NO_CACHE)
def log_explanation_figures(
    explained: list[Explained], data: DataRef, named: list[int], run_id: str
) -> None:
    """Overlays of every method on the three named images (seed Figs. 13-18), SHAP vs IG."""
    tracking = client()
    pixels = image_set(data).pixels
    for family in sorted({e.family for e in explained}):
        own = [e for e in explained if e.family == family]
        for kind, row in zip(NAMED, named, strict=False):
            image = pixels[row].transpose(1, 2, 0) / 255
            maps = {e.explanation.method: _by_row(e)[row] for e in own if row in _by_row(e)}
            slug = kind.replace(" ", "_")
            title = f"{family}: {kind}"
            log_figure(
                tracking,
                run_id,
                method_overlays_figure(image, maps, title),
                f"figures/{family}_{slug}_overlays.png",
            )
            if "shap" in maps and "ig" in maps:
                log_figure(
                    tracking,
                    run_id,
                    shap_vs_ig_figure(image, maps["shap"], maps["ig"], title),
                    f"figures/{family}_{slug}_shap_vs_ig.png",
                )


@task(name="explanation-statistics", cache_policy=NO_CACHE)
def log_explanation_statistics(
    explained: list[Explained], sample: np.ndarray, run_id: str
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Agreement between methods over the sample, with bootstrap intervals; histograms and
    scatter plots (seed Figs. 19-27); whether the methods agree more on one model (paired
    tests, Holm-corrected across the table). Returns the agreement summary and those tests
    (None with one family)."""
    tracking = client()
    maps: dict[str, dict[str, list[np.ndarray]]] = {}
    for e in explained:
        by_row = _by_row(e)
        if all(row in by_row for row in sample):
            maps.setdefault(e.family, {})[e.explanation.method] = [by_row[r] for r in sample]
    values = agreement_values(maps)
    summary = summarise_agreement(values)
    log_table(
        tracking,
        run_id,
        summary.set_index(["model", "method_a", "method_b", "metric"]),
        "tables/agreement.csv",
    )
    tests = None
    if len(maps) == 2:
        tests = model_agreement_tests(values, "cnn", "scatnet")
        log_table(tracking, run_id, tests, "tables/agreement_cnn_vs_scatnet.csv")
    for family, methods in maps.items():
        pooled = {method: np.stack(images) for method, images in methods.items()}
        log_figure(
            tracking,
            run_id,
            attribution_histograms_figure(pooled, 0.2, family),
            f"figures/{family}_attribution_histograms.png",
        )
        pairs = [pair for pair in SCATTER_PAIRS if set(pair) <= set(pooled)]
        log_figure(
            tracking,
            run_id,
            pairwise_scatter_figure(pooled, pairs, family),
            f"figures/{family}_pairwise_scatter.png",
        )
    return summary, tests


@task(name="publish-xai-summary", cache_policy=NO_CACHE)
def publish_xai_summary(
    explained: list[Explained],
    evidence: list[Evidence],
    agreement: tuple[pd.DataFrame, pd.DataFrame | None],
    counts: dict[str, int],
    config: GlassesConfig,
    run_id: str,
) -> str:
    """Logs `glasses.xai.report.xai_report`: the "which explanation should I believe" section
    first, then agreement and timings; `agreement`: `log_explanation_statistics`' summary and
    tests; `counts`: explained images per class."""
    tracking = client()
    summary, tests = agreement
    report = xai_report(explained, evidence, summary, tests, counts, config.seed)
    for path, table in report.tables.items():
        log_table(tracking, run_id, table, path)
    for path, figure in report.figures.items():
        log_figure(tracking, run_id, figure, path)
    log_metrics(tracking, run_id, report.metrics)
    tracking.log_text(run_id, report.markdown, "xai_summary.md")
    create_markdown_artifact(key="glasses-xai", markdown=report.markdown, description="XAI results")
    return report.markdown
