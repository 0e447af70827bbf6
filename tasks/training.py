"""Training tasks: one cross-validation fold, and the refit on the whole training split, each
logged as a nested MLflow run under the family's run.

They take references (`DataRef`, row indices, run ids) and return small results, so any task
runner can send them to another process; finished work is reused from the result store.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run
from torch import nn

from glasses.config import GlassesConfig
from glasses.crossval import Fold, FoldOutcome, run_folds
from glasses.data.reference import DataRef, family_inputs, image_set
from glasses.data.splits import Split
from glasses.families import SPECS, Family
from glasses.fitting import fit
from glasses.inference import build_from_spec, model_spec
from glasses.results import ResultStore, fold_seed, training_key
from glasses.training import Check
from mlflow import MlflowClient
from tasks.log import log_metrics, log_params, log_table
from tasks.progress import report, training_lines
from tasks.resume import REUSED, result_store, reuse_all_when_resuming, reuse_when_resuming
from tasks.runs import run_outcome, start_run
from tasks.tracking import client


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


@task(name="family-params", cache_policy=NO_CACHE)
def log_family_params(family: Family, config: GlassesConfig, data: DataRef, run_id: str) -> None:
    """The family run's parameters (`FamilySpec.params`: optimiser, head, steps, image size)
    and the fingerprint of the images it learns from, as a parameter and a tag."""
    tracking = client()
    fingerprint = image_set(data).fingerprint
    log_params(tracking, run_id, {**SPECS[family].params(config), "data_fingerprint": fingerprint})
    tracking.set_tag(run_id, "data_fingerprint", fingerprint)


def _fold_name() -> str:
    """`cnn-fold-1` (`scatnet-folds-1-2-3` for folds stacked in one task): the task run's name,
    folds counted from 1 as the MLflow runs count them."""
    parameters = task_run.parameters
    folds = [fold + 1 for fold in parameters["folds"]]
    plural = "s" if len(folds) > 1 else ""
    return f"{parameters['family']}-fold{plural}-{'-'.join(map(str, folds))}"


def _refit_name() -> str:
    return f"{task_run.parameters['family']}-refit"


@task(name="train-fold", task_run_name=_fold_name, cache_policy=NO_CACHE)
def train_folds(
    family: Family,
    folds: list[int],
    config: GlassesConfig,
    data: DataRef,
    split: Split,
    experiment_id: str,
    family_run_id: str,
) -> list[FoldResult]:
    """Runs in a worker thread or process: every MLflow call names its run explicitly. The
    folds train together where the family stacks (`glasses.crossval.run_folds`), each logged
    into its own nested run; a fold finished by an earlier run (same settings, data, rows and
    code) is logged, not retrained."""
    tracking = client()
    run_ids = [
        start_run(
            tracking,
            experiment_id,
            f"{family}-fold-{fold + 1}",
            family_run_id,
            {"family": family, "fold": str(fold + 1)},
        )
        for fold in folds
    ]
    rows = [split.fold_indices(fold) for fold in folds]
    loggers = [_check_logger(tracking, run_id) for run_id in run_ids]

    def on_check(fold: int, log_check: Callable[[Check], None]) -> Callable[[Check], None]:
        log_line = training_lines(
            f"{family}-fold-{fold + 1}", SPECS[family].optimiser(config).steps
        )

        def logged(check: Check) -> None:
            log_check(check)
            log_line(check)

        return logged

    def train(positions: list[int]) -> list[FoldOutcome]:
        return run_folds(
            family,
            config,
            family_inputs(data, family),
            torch.from_numpy(image_set(data).labels),
            image_set(data).manifest,
            [
                Fold(*rows[p], fold_seed(config.seed, folds[p]), on_check(folds[p], loggers[p]))
                for p in positions
            ],
        )

    keys = [
        training_key("fold", config, data.images, tuple(rows[p]), family, fold=fold)
        for p, fold in enumerate(folds)
    ]
    results = []
    with ExitStack() as ends:  # every fold's run ends FINISHED, or FAILED with the error
        for run_id in run_ids:
            ends.enter_context(run_outcome(tracking, run_id))
        done = reuse_all_when_resuming(data, config, keys, train)
        for fold, run_id, key, log_check, (outcome, reused) in zip(
            folds, run_ids, keys, loggers, done, strict=True
        ):
            if reused:
                tracking.set_tag(run_id, REUSED, key)
                report(f"{family}-fold-{fold + 1}: reused from an earlier run ({key})")
                for check in outcome.history.to_dict("records"):
                    log_check(Check(**check))
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
            results.append(FoldResult(family=family, fold=fold, run_id=run_id, outcome=outcome))
    return results


@dataclass(frozen=True)
class ModelRef:
    """A trained model in the result store (spec and weights): what registration loads."""

    family: Family
    store: str
    key: str
    steps: int
    final: dict[str, float]  # final_train_* scores on the rows it was trained on

    def load(self) -> nn.Module:
        entry = ResultStore(Path(self.store)).get(self.key)
        if entry is None:
            raise FileNotFoundError(f"trained model {self.key} is not in {self.store}")
        return build_from_spec(entry["spec"], entry["state"])


@task(name="train-final", task_run_name=_refit_name, cache_policy=NO_CACHE)
def train_final(
    family: Family,
    config: GlassesConfig,
    data: DataRef,
    rows: np.ndarray,
    steps: int,
    family_run_id: str,
) -> ModelRef:
    """The model that is registered: trained on every training image for the step count the
    folds chose, so the registry holds the most data-rich model the protocol allows."""

    def train() -> dict:
        fitted = fit(
            family,
            config,
            family_inputs(data, family),
            torch.from_numpy(image_set(data).labels),
            image_set(data).manifest,
            rows,
            config.seed,
            steps=steps,
            on_check=training_lines(f"{family}-refit", steps),
        )
        state = fitted.model.state_dict()
        return {"spec": model_spec(fitted.model), "state": state, "final": fitted.final}

    key = training_key("refit", config, data.images, (rows,), family, steps=steps)
    entry, reused = reuse_when_resuming(data, config, key, train)
    if reused:
        client().set_tag(family_run_id, REUSED, key)
    log_metrics(
        client(), family_run_id, {**entry["final"], "steps": steps, "train_images": len(rows)}
    )
    return ModelRef(family, str(result_store(data).folder), key, steps, entry["final"])
