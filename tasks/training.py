"""Training tasks: one cross-validation fold, and the refit on the whole training split, each
logged as a nested MLflow run under the family's run."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from prefect import task
from prefect.cache_policies import NO_CACHE

from glasses.config import GlassesConfig
from glasses.crossval import Family, Fitted, FoldOutcome, fit, optimiser_config, run_fold
from glasses.data.splits import Split
from glasses.progress import TrainingClock
from glasses.training import Check
from mlflow import MlflowClient
from tasks.progress import run_logger
from tasks.tracking import client, log_metrics, log_table, run_outcome, start_run


@dataclass
class FoldResult:
    family: Family
    fold: int
    run_id: str
    outcome: FoldOutcome


def _check_logger(tracking: MlflowClient, run_id: str):
    def on_check(check: Check) -> None:
        values = {k: v for k, v in vars(check).items() if k != "step" and v == v}  # not NaN
        log_metrics(tracking, run_id, values, step=check.step)

    return on_check


@task(name="train-fold", cache_policy=NO_CACHE)
def train_fold(
    family: Family,
    fold: int,
    config: GlassesConfig,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    manifest: pd.DataFrame,
    split: Split,
    experiment_id: str,
    family_run_id: str,
) -> FoldResult:
    """Runs in a worker thread: every MLflow call names its run explicitly."""
    tracking = client()
    run_id = start_run(
        tracking,
        experiment_id,
        f"{family}-fold-{fold + 1}",
        family_run_id,
        {"family": family, "fold": str(fold + 1)},
    )
    train_rows, val_rows = split.fold_indices(fold)
    clock = TrainingClock(optimiser_config(family, config).steps)
    log_check = _check_logger(tracking, run_id)

    def on_check(check: Check) -> None:
        log_check(check)
        run_logger().info(clock.line(family, fold + 1, check))

    with run_outcome(tracking, run_id):
        outcome = run_fold(
            family,
            config,
            inputs,
            labels,
            manifest,
            train_rows,
            val_rows,
            seed=config.seed + 1000 * fold,
            on_check=on_check,
        )
        log_table(tracking, run_id, outcome.history.set_index("step"), "history.csv")
        log_metrics(
            tracking,
            run_id,
            {
                **{f"fold_val_{k}": v for k, v in outcome.validation.items()},
                **outcome.final,
                "steps": outcome.steps,
                "early_stopped": float(outcome.early_stopped),
            },
        )
    return FoldResult(family=family, fold=fold, run_id=run_id, outcome=outcome)


@task(name="train-final", cache_policy=NO_CACHE)
def train_final(
    family: Family,
    config: GlassesConfig,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    manifest: pd.DataFrame,
    rows: np.ndarray,
    steps: int,
    family_run_id: str,
) -> Fitted:
    """The model that is registered: trained on every training image for the step count the
    folds chose, so the registry holds the most data-rich model the protocol allows."""
    fitted = fit(family, config, inputs, labels, manifest, rows, config.seed, steps=steps)
    log_metrics(
        client(), family_run_id, {**fitted.final, "steps": steps, "train_images": len(rows)}
    )
    return fitted
