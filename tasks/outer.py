"""Trainings on the study's outer splits (main comparison and sweep points) and the main
comparison's summary, logged into the family runs and the `outer` child run."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run

from glasses.config import GlassesConfig
from glasses.crossval import logits_for
from glasses.data.reference import DataRef, family_inputs, image_set
from glasses.families import FAMILIES, SPECS, Family
from glasses.fitting import Fitted, Job, fit_many
from glasses.metrics import scores
from glasses.outer import PointPlan, outer_design, point_config, point_rows
from glasses.result_format import stored
from glasses.results import point_seed, training_key
from glasses.statistics import METRICS, OuterDesign, SweepInference, sweep_inference
from glasses.tables import markdown_table
from glasses.training import plateaued
from tasks.log import log_metrics, log_table
from tasks.progress import training_lines
from tasks.resume import reuse_all_when_resuming
from tasks.tracking import client


@stored
@dataclass(frozen=True)
class OuterPoint:
    outer: int
    size: int  # training images
    whole: bool  # trained on the split's whole training part
    repeat: int
    budget: float  # multiplier of the step budget (1 but in the sweep's budget check)
    model: Family
    steps: int
    early_stopped: bool
    converged: bool  # ended on a loss plateau (`glasses.training.plateaued`)
    final_train_loss: float
    final_train_accuracy: float
    accuracy: float
    balanced_accuracy: float
    macro_f1: float
    f1: float
    predictions: np.ndarray  # on the outer split's test rows: the bootstrap's input


@task(name="outer-splits", cache_policy=NO_CACHE)
def outer_splits(data: DataRef, config: GlassesConfig) -> OuterDesign:
    """The study's outer splits of the images `data` names (`glasses.outer.outer_design`)."""
    return outer_design(image_set(data).manifest, config)


def _points_name() -> str:
    """`cnn-outer-1`, `scatnet-sweep-150-split-1-r2` (`PointPlan.name`); a task that trains
    several points together is named after its first, with the count of the others."""
    parameters = task_run.parameters
    plans, family = parameters["plans"], parameters["family"]
    more = f"-and-{len(plans) - 1}-more" if len(plans) > 1 else ""
    return f"{plans[0].name(family)}{more}"


@task(name="outer-point", task_run_name=_points_name, cache_policy=NO_CACHE)
def outer_points(
    family: Family,
    config: GlassesConfig,
    data: DataRef,
    plans: list[PointPlan],
    tests: list[np.ndarray],
) -> list[OuterPoint]:
    """One family trained on each plan's rows of its outer split (`tests`: each plan's test
    flags) and scored on the split's test rows. Both families of a plan draw the same rows, so
    their scores pair up. Plans trained with the same settings train together where the family
    stacks (`glasses.fitting.fit_many`); a point finished by an earlier run (same settings,
    data, rows, code) is reused."""
    images = image_set(data)
    seeds = [point_seed(config.seed, plan) for plan in plans]
    rows = [
        point_rows(images.manifest, test, plan, seed)
        for plan, test, seed in zip(plans, tests, seeds, strict=True)
    ]
    test_rows = [np.flatnonzero(test) for test in tests]
    settings = [point_config(config, plan) for plan in plans]
    keys = [
        training_key(
            "outer-point",
            trained,
            data.images,
            (chosen, tested),
            family,
            outer=plan.outer,
            repeat=plan.repeat,
        )
        for plan, trained, chosen, tested in zip(plans, settings, rows, test_rows, strict=True)
    ]

    def train(positions: list[int]) -> list[OuterPoint]:
        inputs = family_inputs(data, family)
        labels = torch.from_numpy(images.labels)
        groups: dict[int, list[int]] = {}  # positions by the first one of equal settings
        for position in positions:
            first = next(p for p in positions if settings[p] == settings[position])
            groups.setdefault(first, []).append(position)
        points: dict[int, OuterPoint] = {}
        for first, group in groups.items():
            steps = SPECS[family].optimiser(settings[first]).steps
            jobs = [
                Job(rows[p], seeds[p], on_check=training_lines(plans[p].name(family), steps))
                for p in group
            ]
            fitted = fit_many(family, settings[first], inputs, labels, images.manifest, jobs)
            for position, model in zip(group, fitted, strict=True):
                tested = test_rows[position]
                predicted = logits_for(model.model, inputs, tested).argmax(1).numpy()
                truth = images.labels[tested]
                points[position] = _point(family, plans[position], model, predicted, truth)
        return [points[p] for p in positions]

    return [point for point, _ in reuse_all_when_resuming(data, config, keys, train)]


def _point(
    family: Family, plan: PointPlan, fitted: Fitted, predicted: np.ndarray, truth: np.ndarray
) -> OuterPoint:
    return OuterPoint(
        outer=plan.outer,
        size=fitted.images,
        whole=plan.size is None,
        repeat=plan.repeat,
        budget=plan.budget,
        model=family,
        steps=fitted.trained.steps,
        early_stopped=fitted.trained.early_stopped,
        converged=plateaued(fitted.trained.history),
        final_train_loss=fitted.final["final_train_loss"],
        final_train_accuracy=fitted.final["final_train_accuracy"],
        predictions=predicted,
        **scores(truth, predicted),
    )


def point_frame(points: list[OuterPoint]) -> pd.DataFrame:
    """One row per point; points trained on their split's whole training part (whose sizes
    differ by a few images between splits) share one size, the mean of theirs."""
    frame = pd.DataFrame([vars(point) for point in points])
    whole = frame["whole"]
    if whole.any():
        frame.loc[whole, "size"] = int(round(frame.loc[whole, "size"].mean()))
    return frame


@task(name="summarise-outer", cache_policy=NO_CACHE)
def summarise_outer(
    points: list[OuterPoint],
    design: OuterDesign,
    config: GlassesConfig,
    family_runs: dict[str, str],
    run_id: str,
) -> SweepInference:
    """The study's test scores: per family the mean over outer splits with a 95 % interval
    (outer splits and test people resampled) as `test_*` on its family run, the per-split
    scores, and ScatNet − CNN with its interval in the `outer` run."""
    tracking = client()
    frame = point_frame(points)  # every split's whole training part: one size
    inference = sweep_inference(frame, design, config.sweep.resamples, seed=config.seed)
    table = inference.table.set_index("model")
    for family in FAMILIES:
        row = table.loc[family]
        log_metrics(
            tracking,
            family_runs[family],
            {
                f"test_{metric}{suffix}": float(row[f"{metric}_{part}"])
                for metric in METRICS
                for suffix, part in (("", "mean"), ("_low", "low"), ("_high", "high"))
            }
            | {"outer_splits": len(design.tests)},
        )
    per_split = frame.drop(columns="predictions").set_index(["outer", "model"]).sort_index()
    log_table(tracking, run_id, per_split, "outer/splits.csv")
    log_table(tracking, run_id, inference.table.set_index("model"), "outer/table.csv")
    log_table(tracking, run_id, inference.tests.set_index("size"), "outer/tests.csv")
    tracking.log_text(
        run_id,
        f"# Outer splits\n\n{markdown_table(inference.table.set_index('model'))}\n\n"
        f"ScatNet − CNN balanced accuracy:\n\n{markdown_table(inference.tests.set_index('size'))}\n"
        f"\nPer split:\n\n{markdown_table(per_split)}\n",
        "outer/summary.md",
    )
    return inference
