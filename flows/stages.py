"""Stages that more than one flow runs: opening the tracked run, and training + registering
both families. Plain functions called inside a flow, so their tasks belong to that flow run."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

import numpy as np
from prefect import get_run_logger
from prefect.runtime import flow_run

from flows.concurrency import run_concurrently
from glasses.cache_layout import CacheLayout
from glasses.config import GlassesConfig
from glasses.cores import local_workers
from glasses.crossval import refit_steps
from glasses.data.reference import DataRef
from glasses.data.splits import Split
from glasses.families import FAMILIES
from glasses.fitting import in_stacks
from glasses.statistics import headline_metrics
from mlflow import MlflowClient
from tasks.log import log_params
from tasks.progress import whole_run_estimate
from tasks.promotion import HeldOutResult, evaluate_on_test
from tasks.registry import refit_lineage, register_model
from tasks.reporting import summarise_family
from tasks.runs import end_abandoned_runs, git_commit, run_outcome, stage_timer, start_run
from tasks.tracking import connect, experiment_id, ui_url
from tasks.training import log_family_params, train_final, train_folds

Stage = Callable[[str], AbstractContextManager[None]]


def cache_dir() -> Path:
    """The cache folder (`glasses.cache_layout`); `GLASSES_CACHE_DIR` moves it."""
    return CacheLayout.from_environment().root


def open_run(
    config: GlassesConfig, name: str, tags: dict[str, str]
) -> tuple[MlflowClient, str, str, str, Stage]:
    """The flow run's parent MLflow run: resolved configuration, commit and flow-run id. The
    cache folder and the tracking server are checked first."""
    CacheLayout.from_environment().make()
    tracking = connect(config.runtime.health_timeout_seconds)
    experiment = experiment_id(tracking, columns=headline_metrics())
    end_abandoned_runs(tracking, experiment, config.runtime.abandoned_after_hours)
    run_id = start_run(
        tracking,
        experiment,
        name,
        None,
        {
            "prefect_flow_run_id": str(flow_run.get_id()),
            "git_commit": git_commit(),
            "profile": config.profile,
            **tags,
        },
    )
    log_params(tracking, run_id, {**tags, **config.flat()})
    url = ui_url(tracking, experiment, run_id)
    get_run_logger().info("MLflow run: %s (all runs: %s)", url, ui_url(tracking, experiment))

    def stage(name: str) -> AbstractContextManager[None]:
        return stage_timer(tracking, run_id, name, config.runtime.progress_seconds)

    return tracking, experiment, run_id, url, stage


def train_and_register(
    config: GlassesConfig,
    data: DataRef,
    split: Split,
    tracking: MlflowClient,
    experiment: str,
    run_id: str,
    margin: float,
    stage: Stage,
    trainings: int | None = None,
) -> tuple[dict[str, Any], dict[str, HeldOutResult]]:
    """Both families' folds concurrently, then per family: fold table and figures, the model
    refit on the whole training split registered, tested from the registry, and aliased
    `champion` when it is the first or is comparable and wins by `margin`, else `challenger`.
    With the run's count of `trainings`, the first fold timed gives a whole-run estimate."""
    family_runs = {
        family: start_run(tracking, experiment, family, run_id, {"family": family})
        for family in FAMILIES
    }
    for family in FAMILIES:
        log_family_params(family, config, data, family_runs[family])
    with ExitStack() as ends:  # both family runs end FINISHED, or FAILED with the error
        for family in FAMILIES:
            ends.enter_context(run_outcome(tracking, family_runs[family]))
        with stage("cross_validation"):
            calls = [
                {
                    "family": family,
                    "folds": folds,
                    "config": config,
                    "data": data,
                    "split": split,
                    "experiment_id": experiment,
                    "family_run_id": family_runs[family],
                }
                for family in FAMILIES
                for folds in in_stacks(family, config, range(config.split.folds))
            ]
            at_once = local_workers(config.runtime)
            estimate = None if trainings is None else whole_run_estimate(trainings, at_once)
            done = run_concurrently(
                train_folds, calls, config, estimate, cost=lambda call: len(call["folds"])
            )
            finished = [r for folds in done for r in folds]
            results = {
                f: sorted((r for r in finished if r.family == f), key=lambda r: r.fold)
                for f in FAMILIES
            }
        train_rows = np.flatnonzero(~split.test)
        test_rows = np.flatnonzero(split.test)
        with stage("refit"):
            refits = run_concurrently(
                train_final,
                [
                    {
                        "family": family,
                        "config": config,
                        "data": data,
                        "rows": train_rows,
                        "steps": refit_steps([r.outcome for r in results[family]]),
                        "family_run_id": family_runs[family],
                    }
                    for family in FAMILIES
                ],
                config,
            )
        tables, tests = {}, {}
        lineage = refit_lineage(data, train_rows, config)
        with stage("registry_and_test"):
            for family, trained in zip(FAMILIES, refits, strict=True):
                tables[family] = summarise_family(family, results[family], family_runs[family])
                version = register_model(trained, data, test_rows, family_runs[family])
                tests[family] = evaluate_on_test(
                    family, version, data, test_rows, family_runs[family], lineage, margin
                )
    return tables, tests
