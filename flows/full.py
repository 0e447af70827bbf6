"""`glasses/full`: data → validation → folds → CNN / ScatNet folds → registry → test.

Wiring only: every step is a task in `tasks/`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.concurrency import run_concurrently
from flows.sweep import sweep
from flows.xai import xai
from glasses.config import ProfileName, resolve_config
from glasses.crossval import FAMILIES, best_fold
from tasks.data import load_images, split_images, validate_images
from tasks.features import scattering_coefficients
from tasks.registry import evaluate_on_test, register_model
from tasks.reporting import log_augmented_samples, publish_summary, summarise_family
from tasks.tracking import (
    child_run,
    connect,
    experiment_id,
    git_commit,
    log_params,
    run_url,
    stage_timer,
    start_run,
)
from tasks.training import train_fold


def cache_dir() -> Path:
    """Synthetic images and scattering coefficients; `GLASSES_CACHE_DIR` moves it."""
    return Path(os.environ.get("GLASSES_CACHE_DIR", ".cache/glasses")).resolve()


@flow(name="glasses", log_prints=True)
def glasses(
    data: str = "synthetic",
    profile: ProfileName = "quick",
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Cross-validate the CNN and the ScatNet on `data`, register and test the best of each.

    `data`: "synthetic" (generated), an ImageFolder folder, a labels.csv (path,label[,group]) or a
    Kaggle train.csv. `overrides`: nested config values on top of the profile, e.g.
    {"cnn": {"optimiser": {"epochs": 3}}}.
    """
    config = resolve_config(profile, overrides)
    logger = get_run_logger()
    tracking = connect()
    experiment = experiment_id(tracking)
    run_id = start_run(
        tracking,
        experiment,
        f"glasses-{profile}",
        None,
        {
            "prefect_flow_run_id": str(flow_run.get_id()),
            "git_commit": git_commit(),
            "profile": profile,
            "data": data,
        },
    )
    log_params(tracking, run_id, {"data": data, **config.flat()})
    url = run_url(tracking, experiment, run_id)
    logger.info("MLflow run: %s", url)

    def stage(name: str):
        return stage_timer(tracking, run_id, name)

    try:
        with stage("load"):
            images = load_images(data, config, cache_dir())
            tracking.set_tag(run_id, "data_fingerprint", images.fingerprint)
        with stage("validate"):
            split = split_images(images, config, run_id)
            validate_images(images, split, config, data, run_id)
            log_augmented_samples(images, split, config, run_id)
        with stage("scattering"):
            coefficients = scattering_coefficients(images, config, cache_dir(), run_id)
        labels = torch.from_numpy(images.labels)
        inputs = {"cnn": torch.from_numpy(images.pixels), "scatnet": coefficients}
        family_runs = {
            family: start_run(tracking, experiment, family, run_id, {"family": family})
            for family in FAMILIES
        }
        with stage("cross_validation"):
            calls = [
                {
                    "family": family,
                    "fold": fold,
                    "config": config,
                    "inputs": inputs[family],
                    "labels": labels,
                    "split": split,
                    "experiment_id": experiment,
                    "family_run_id": family_runs[family],
                }
                for family in FAMILIES
                for fold in range(config.split.folds)
            ]
            finished = run_concurrently(train_fold, calls, config)
            results = {f: [r for r in finished if r.family == f] for f in FAMILIES}
        tables, tests = {}, {}
        test_pixels = inputs["cnn"][torch.from_numpy(split.test)]
        test_labels = images.labels[split.test]
        with stage("registry_and_test"):
            for family in FAMILIES:
                tables[family] = summarise_family(family, results[family], family_runs[family])
                best = results[family][best_fold([r.outcome for r in results[family]])]
                version = register_model(family, best.model, test_pixels, family_runs[family])
                tests[family] = evaluate_on_test(
                    family, version, test_pixels, test_labels, family_runs[family]
                )
                tracking.set_terminated(family_runs[family], "FINISHED")
        verdict = None
        if config.sweep.enabled:
            with stage("sweep"), child_run(tracking, experiment, "sweep", run_id) as sweep_run:
                cnn = results["cnn"][best_fold([r.outcome for r in results["cnn"]])].model
                verdict = sweep(config, images, split, coefficients, cnn, sweep_run)
        if config.xai.enabled:
            with stage("xai"), child_run(tracking, experiment, "xai", run_id) as xai_run:
                xai(config, images, split, xai_run)
        summary = publish_summary(tables, tests, verdict, url, run_id)
    except BaseException:
        tracking.set_terminated(run_id, "FAILED")
        raise
    tracking.set_terminated(run_id, "FINISHED")
    print(summary)
    return {
        "mlflow_run_id": run_id,
        "mlflow_run_url": url,
        **{f"{f}_test_accuracy": tests[f].accuracy for f in FAMILIES},
        **{f"{f}_cv_accuracy": float(tables[f].loc["mean", "accuracy val"]) for f in FAMILIES},
    }
