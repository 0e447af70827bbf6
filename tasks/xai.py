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
from glasses.results import explanation_key
from glasses.training import pixels_to_input
from glasses.xai.agreement import agreement_values, model_agreement_tests, summarise_agreement
from glasses.xai.correctness import (
    Evidence,
    cascading_randomisation,
    deletion_area,
    deletion_curve,
    mask_area_share,
    pointing_game,
    relevance_mass_accuracy,
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
    """Which test images each method explains and checks (`glasses.xai.selection`)."""
    return select_images(image_set(data), split, config)


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

    key = explanation_key("explain", config, weights_digest(model), method, data.images, rows)
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
    """Adebayo et al.'s cascading randomisation for one model and method; `original`: the
    intact model's maps of `rows`, from `explain_rows`."""
    model = version_model(family, version)

    def maps(candidate: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
        return explain(candidate, images, labels, method, config.xai, config.seed).maps

    def compute() -> pd.DataFrame:
        images, targets = _inputs(data, rows)
        table = cascading_randomisation(
            model, maps, images, targets, seed=config.seed, original=original
        )
        return table.assign(model=family, method=method)

    key = explanation_key("randomisation", config, weights_digest(model), method, data.images, rows)
    return reuse_when_resuming(data, config, key, compute)[0]


@task(name="score-explanations", cache_policy=NO_CACHE)
def score_explanations(
    explained: Explained,
    version: str,
    data: DataRef,
    masks: dict[int, np.ndarray],
    randomisation: pd.DataFrame,
    config: GlassesConfig,
) -> Evidence:
    """Localisation on images with a ground-truth mask, and a deletion curve for every image."""
    model = version_model(explained.family, version)
    images = image_set(data)
    pixels, targets = images.pixels, images.labels
    maps = explained.explanation.maps
    located = [
        (int(row), m, masks[row])
        for m, row in zip(maps, explained.rows, strict=True)
        if row in masks
    ]
    areas = []
    for map_, row in zip(maps, explained.rows, strict=True):
        image = pixels_to_input(torch.from_numpy(pixels[row]))
        fractions, probabilities = deletion_curve(
            model, image, int(targets[row]), map_, steps=config.xai.deletion_steps
        )
        areas.append(deletion_area(fractions, probabilities))
    return Evidence(
        model=explained.family,
        method=explained.explanation.method,
        rows=[row for row, _, _ in located],
        relevance_mass=[relevance_mass_accuracy(m, mask) for _, m, mask in located],
        mask_share=[mask_area_share(mask) for _, _, mask in located],
        pointing=[pointing_game(m, mask) for _, m, mask in located],
        deletion_areas=areas,
        randomisation=randomisation,
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
) -> pd.DataFrame:
    """Agreement between methods over the sample, with bootstrap intervals; histograms and
    scatter plots (seed Figs. 19-27); whether the methods agree more on one model."""
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
    return summary


@task(name="publish-xai-summary", cache_policy=NO_CACHE)
def publish_xai_summary(
    explained: list[Explained],
    evidence: list[Evidence],
    agreement: pd.DataFrame,
    config: GlassesConfig,
    run_id: str,
) -> str:
    """Logs `glasses.xai.report.xai_report`: the "which explanation should I believe" table
    first, then agreement and timings."""
    tracking = client()
    report = xai_report(
        explained, evidence, agreement, config.xai.randomisation_threshold, config.seed
    )
    for path, table in report.tables.items():
        log_table(tracking, run_id, table, path)
    for path, figure in report.figures.items():
        log_figure(tracking, run_id, figure, path)
    log_metrics(tracking, run_id, report.metrics)
    tracking.log_text(run_id, report.markdown, "xai_summary.md")
    create_markdown_artifact(key="glasses-xai", markdown=report.markdown, description="XAI results")
    return report.markdown
