"""One fold of one model family, logged as a nested MLflow run under the family's run."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from prefect import task
from prefect.cache_policies import NO_CACHE
from torch import nn

from glasses.config import GlassesConfig
from glasses.crossval import Family, optimiser_config, run_fold
from glasses.data.splits import Split
from glasses.progress import EpochClock
from glasses.training import EpochRecord, FoldOutcome, threads_per_worker
from tasks.progress import run_logger
from tasks.tracking import client, log_metrics, log_table, start_run


@dataclass
class FoldResult:
    family: Family
    fold: int
    run_id: str
    model: nn.Module
    outcome: FoldOutcome


@task(name="train-fold", cache_policy=NO_CACHE)
def train_fold(
    family: Family,
    fold: int,
    config: GlassesConfig,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    split: Split,
    experiment_id: str,
    family_run_id: str,
) -> FoldResult:
    """Runs in a worker thread: every MLflow call names its run explicitly."""
    torch.set_num_threads(threads_per_worker(config.runtime.workers))
    tracking = client()
    run_id = start_run(
        tracking,
        experiment_id,
        f"{family}-fold-{fold + 1}",
        family_run_id,
        {"family": family, "fold": str(fold + 1)},
    )

    clock = EpochClock(optimiser_config(family, config).epochs)

    def on_epoch(record: EpochRecord) -> None:
        values = {k: v for k, v in vars(record).items() if k != "epoch"}
        log_metrics(tracking, run_id, values, step=record.epoch)
        run_logger().info(clock.line(family, fold + 1, record))

    train_index, val_index = split.fold_indices(fold)
    try:
        model, outcome = run_fold(
            family,
            config,
            inputs,
            labels,
            train_index,
            val_index,
            seed=config.seed + 1000 * fold,
            on_epoch=on_epoch,
        )
    except BaseException:
        tracking.set_terminated(run_id, "FAILED")
        raise
    log_table(tracking, run_id, outcome.history.set_index("epoch"), "history.csv")
    log_metrics(tracking, run_id, {f"best_{k}": v for k, v in vars(outcome.best).items()})
    tracking.set_terminated(run_id, "FINISHED")
    return FoldResult(family=family, fold=fold, run_id=run_id, model=model, outcome=outcome)
