"""Figures and tables of the study, logged as MLflow artifacts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE
from mlflow.utils.validation import MAX_TAG_VAL_LENGTH
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from glasses.augment import augment
from glasses.config import GlassesConfig
from glasses.crossval import TABLE_COLUMNS, TABLE_LEGEND, fold_table
from glasses.data.reference import DataRef, image_set
from glasses.data.splits import Split
from glasses.families import Family
from glasses.outer import outer_baseline
from glasses.plots import fold_accuracy_curves, mean_curves, sample_grid
from glasses.statistics import OuterDesign, SweepInference
from glasses.tables import markdown_table
from glasses.training import pixels_to_input
from tasks.log import log_figure, log_metrics, log_table
from tasks.promotion import HeldOutResult
from tasks.tracking import client
from tasks.training import FoldResult


@task(name="augmented-samples", cache_policy=NO_CACHE)
def log_augmented_samples(data: DataRef, split: Split, config: GlassesConfig, run_id: str) -> None:
    """A grid of training images as the CNN sees them after augmentation (seed Fig. 1)."""
    images = image_set(data)
    rng = np.random.default_rng(config.seed)
    rows = rng.choice(
        np.where(~split.test)[0], size=min(16, int((~split.test).sum())), replace=False
    )
    pixels = pixels_to_input(torch.from_numpy(images.pixels[rows]))
    augmented = augment(pixels, config.augment, torch.Generator().manual_seed(config.seed))
    figure = sample_grid(augmented.numpy(), images.labels[rows], "augmented training samples")
    log_figure(client(), run_id, figure, "figures/augmented_samples.png")


@task(name="summarise-family", cache_policy=NO_CACHE)
def summarise_family(family: Family, results: list[FoldResult], run_id: str) -> pd.DataFrame:
    """Fold table (seed Tables 1 / 2), fold curves (Figs. 2 / 4) and mean curves (Figs. 3 / 5)."""
    tracking = client()
    outcomes = [result.outcome for result in results]
    table = fold_table(outcomes)
    log_table(tracking, run_id, table, f"{family}_folds.csv")
    tracking.log_text(run_id, f"{markdown_table(table)}\n\n{TABLE_LEGEND}\n", f"{family}_folds.md")
    histories = [outcome.history for outcome in outcomes]
    log_figure(
        tracking,
        run_id,
        fold_accuracy_curves(histories, f"{family}: accuracy per fold"),
        f"figures/{family}_fold_accuracy.png",
    )
    log_figure(
        tracking,
        run_id,
        mean_curves(histories, f"{family}: mean over folds"),
        f"figures/{family}_mean_curves.png",
    )
    mean, std = table.loc["mean"], table.loc["std"]
    log_metrics(
        tracking,
        run_id,
        {
            **{f"cv_{key}_mean": mean[name] for key, name in TABLE_COLUMNS.items()},
            **{f"cv_{key}_std": std[name] for key, name in TABLE_COLUMNS.items()},
        },
    )
    return table


def _as_tag(text: str, rest: str) -> str:
    """`text` cut to what an MLflow tag holds, saying where the rest is when it is cut."""
    if len(text) <= MAX_TAG_VAL_LENGTH:
        return text
    return f"{text[: MAX_TAG_VAL_LENGTH - len(rest) - 8]}\n\n… ({rest})"


@task(name="publish-summary", cache_policy=NO_CACHE)
def publish_summary(
    tables: dict[str, pd.DataFrame],
    tests: dict[str, HeldOutResult],
    comparison: SweepInference,
    sweep_verdict: str | None,
    design: OuterDesign,
    url: str,
    run_id: str,
    pending: str | None = None,
) -> str:
    """The run's headline table as a Prefect markdown artifact and an MLflow text artifact; the
    study's test scores (outer splits, with intervals) also as metrics of the parent run; the
    majority baseline of the outer splits of `design` beside them. The verdict is the parent
    run's `verdict` tag and, with the table, its description (`mlflow.note.content`): what the
    run's page shows first.

    Published as soon as the test scores exist, with `pending` naming the stages still to run,
    and again at the end, in the same places."""
    baseline = outer_baseline(design)

    def spread(table: pd.DataFrame, column: str) -> str:
        return f"{table.loc['mean', column]:.4f} ± {table.loc['std', column]:.4f}"

    outer = comparison.table.set_index("model")

    def interval(family: str, metric: str) -> str:
        row = outer.loc[family]
        return (
            f"{row[f'{metric}_mean']:.4f} [{row[f'{metric}_low']:.4f}, {row[f'{metric}_high']:.4f}]"
        )

    splits = int(comparison.tests["outer"].iloc[0])
    headline = pd.DataFrame(
        {
            family: {
                "CV accuracy": spread(table, TABLE_COLUMNS["accuracy"]),
                "CV balanced accuracy": spread(table, TABLE_COLUMNS["balanced_accuracy"]),
                "CV macro-F1": spread(table, TABLE_COLUMNS["macro_f1"]),
                "test accuracy": interval(family, "accuracy"),
                "test balanced accuracy": interval(family, "balanced_accuracy"),
                "test macro-F1": interval(family, "macro_f1"),
                "test majority baseline (accuracy)": f"{baseline['accuracy']:.4f}",
                "registered version": tests[family].version,
                "its held-out balanced accuracy": (
                    f"{tests[family].scores['balanced_accuracy']:.4f}"
                ),
                "champion": f"v{tests[family].champion_version}",
            }
            for family, table in tables.items()
        }
    )
    headline.index.name = "metric"
    difference = comparison.tests.iloc[0]
    verdict = (
        "ScatNet − CNN test balanced accuracy "
        f"{difference['difference']:+.4f} [{difference['low']:+.4f}, {difference['high']:+.4f}] "
        f"(p = {difference['p_value']:.2g})"
    )
    if sweep_verdict is not None:
        verdict += f"; sweep: {sweep_verdict}"
    markdown = "# glasses: results\n\n"
    if pending is not None:
        markdown += f"**Partial: {pending} still running.**\n\n"
    decisions = "".join(f"- {family}: {test.decision}\n" for family, test in tests.items())
    markdown += (
        f"**{verdict}**\n\n{markdown_table(headline)}\n\n"
        f"Test scores: mean over the {splits} outer splits, 95 % interval from a bootstrap over "
        "outer splits and test people. The registered model is one refit on the training split, "
        f"checked on its held-out split. Champion decisions:\n\n{decisions}\nMLflow run: {url}\n"
    )
    for family, table in tables.items():
        markdown += f"\n## {family} folds\n\n{markdown_table(table)}\n"
    markdown += f"\n{TABLE_LEGEND}\n"
    tracking = client()
    log_metrics(
        tracking,
        run_id,
        {
            f"{family}_test_{metric}{suffix}": float(outer.loc[family, f"{metric}_{part}"])
            for family in tables
            for metric in ("balanced_accuracy", "macro_f1")
            for suffix, part in (("", "mean"), ("_low", "low"), ("_high", "high"))
        },
    )
    tracking.log_text(run_id, markdown, "summary.md")
    tracking.set_tag(run_id, "verdict", _as_tag(verdict, "see summary.md"))
    tracking.set_tag(run_id, MLFLOW_RUN_NOTE, _as_tag(markdown, "the whole summary: summary.md"))
    create_markdown_artifact(
        key="glasses-results",
        markdown=markdown,
        description="CV and test results"
        + (f" (partial: {pending} still running)" if pending else ""),
    )
    return markdown
