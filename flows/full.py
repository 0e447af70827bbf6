"""`glasses/full`: data → validation → CNN / ScatNet folds → registry → held-out check → outer
splits (the study's test scores) → sweep → XAI.

Wiring only: it calls tasks from `tasks/`, the stages in `flows/sweep.py` and `flows/xai.py`,
and the stages it shares with the re-run (`flows/stages.py`). The study runs as a sub-flow on
the task runner its configuration names (`runtime.task_runner`), which is known only once the
profile and overrides are resolved.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.concurrency import cores_divided, on_task_runner
from flows.stages import cache_dir, open_run, train_and_register
from flows.sweep import compare, sweep
from flows.xai import xai
from glasses.config import GlassesConfig, Overrides, ProfileName, resolve_config
from glasses.crossval import TABLE_COLUMNS
from glasses.families import FAMILIES
from glasses.outer import study_trainings
from tasks.data import load_images, record_fingerprint, split_images, validate_images
from tasks.features import scattering_coefficients
from tasks.outer import outer_splits
from tasks.progress import failures_reported
from tasks.reporting import log_augmented_samples, publish_summary
from tasks.runs import child_run, run_outcome
from tasks.tracking import ui_url


@flow(name="glasses", log_prints=True)
def glasses(
    data: str = "synthetic",
    profile: ProfileName = "quick",
    overrides: Overrides | None = None,
) -> dict[str, Any]:
    """Cross-validate the CNN and the ScatNet on `data`, register and test the best of each,
    then the shrinking-dataset sweep and the explanations.

    `data`: "synthetic" (generated), an ImageFolder folder, a labels.csv (path,label[,group]) or a
    Kaggle train.csv. `overrides`: nested config values on top of the profile, e.g.
    {"cnn": {"optimiser": {"steps": 300}}}.
    """
    with failures_reported():
        config = resolve_config(profile, overrides)
        with cores_divided(config.runtime):
            return on_task_runner(study, config)(data, config)


@flow(name="glasses-study", log_prints=True)
def study(data: str, config: GlassesConfig) -> dict[str, Any]:
    """The whole study under one MLflow run, its tasks on this flow's task runner."""
    tracking, experiment, run_id, url, stage = open_run(
        config, f"glasses-{config.profile}", {"data": data}
    )
    with run_outcome(tracking, run_id):
        with stage("load"):
            images = load_images(data, config, cache_dir())
            record_fingerprint(images, run_id)
        with stage("validate"):
            split = split_images(images, config, run_id)
            validate_images(images, split, config, data, run_id)
            log_augmented_samples(images, split, config, run_id)
        with stage("scattering"):
            images = scattering_coefficients(images, config, run_id)
        design = outer_splits(images, config)
        tables, tests = train_and_register(
            config,
            images,
            split,
            tracking,
            experiment,
            run_id,
            config.promotion.margin,
            stage,
            study_trainings(config, design),
        )
        versions = {f: tests[f].version for f in FAMILIES}
        with stage("outer"), child_run(tracking, experiment, "outer", run_id) as outer_run:
            family_runs = {f: tests[f].run_id for f in FAMILIES}
            comparison = compare(config, images, design, family_runs, outer_run)
        later = [name for name in ("sweep", "xai") if getattr(config, name).enabled]
        if later:  # the test scores, on the run's page and in Prefect, while the rest runs
            publish_summary(
                tables, tests, comparison, None, design, url, run_id, " and ".join(later)
            )
        verdict = None
        if config.sweep.enabled:
            with stage("sweep"), child_run(tracking, experiment, "sweep", run_id) as sweep_run:
                verdict = sweep(config, images, design, split, versions, sweep_run)
        if config.xai.enabled:
            with stage("xai"), child_run(tracking, experiment, "xai", run_id) as xai_run:
                xai(config, images, split, versions, xai_run)
        summary = publish_summary(tables, tests, comparison, verdict, design, url, run_id)
    print(summary)
    scores = comparison.table.set_index("model")
    return {
        "mlflow_run_id": run_id,
        "mlflow_run_url": url,
        "mlflow_runs_url": ui_url(tracking, experiment),
        **{
            f"{f}_test_{metric}": float(scores.loc[f, f"{metric}_mean"])
            for f in FAMILIES
            for metric in ("accuracy", "balanced_accuracy")
        },
        **{f"{f}_holdout_accuracy": tests[f].accuracy for f in FAMILIES},
        **{
            f"{f}_cv_accuracy": float(tables[f].loc["mean", TABLE_COLUMNS["accuracy"]])
            for f in FAMILIES
        },
    }
