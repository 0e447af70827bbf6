"""`glasses/full`: data → validation → CNN / ScatNet folds → registry → test → sweep → XAI.

Wiring only: it calls tasks from `tasks/`, the sub-flows `flows/sweep.py` and `flows/xai.py`,
and the stages it shares with the re-run (`flows/stages.py`).
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.stages import cache_dir, open_run, train_and_register
from flows.sweep import sweep
from flows.xai import xai
from glasses.config import Overrides, ProfileName, resolve_config
from glasses.crossval import FAMILIES
from glasses.metrics import majority_baseline
from tasks.data import load_images, split_images, validate_images
from tasks.features import scattering_coefficients
from tasks.progress import failures_reported
from tasks.reporting import log_augmented_samples, publish_summary
from tasks.tracking import child_run, run_outcome


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
        tracking, experiment, run_id, url, stage = open_run(
            config, f"glasses-{profile}", {"data": data}
        )
        with run_outcome(tracking, run_id):
            with stage("load"):
                images = load_images(data, config, cache_dir())
                tracking.set_tag(run_id, "data_fingerprint", images.fingerprint)
            with stage("validate"):
                split = split_images(images, config, run_id)
                validate_images(images, split, config, data, run_id)
                log_augmented_samples(images, split, config, run_id)
            with stage("scattering"):
                coefficients = scattering_coefficients(images, config, cache_dir(), run_id)
            models, tables, tests = train_and_register(
                config, images, split, coefficients, tracking, experiment, run_id, 0.0, stage
            )
            verdict = None
            if config.sweep.enabled:
                with stage("sweep"), child_run(tracking, experiment, "sweep", run_id) as sweep_run:
                    cnn = models["cnn"].model
                    verdict = sweep(config, images, split, coefficients, cnn, sweep_run)
            if config.xai.enabled:
                with stage("xai"), child_run(tracking, experiment, "xai", run_id) as xai_run:
                    versions = {f: tests[f].version for f in FAMILIES}
                    xai(config, images, split, versions, xai_run)
            test_labels = images.labels[split.test]
            baseline = majority_baseline(images.labels[~split.test], test_labels)
            summary = publish_summary(tables, tests, verdict, baseline, url, run_id)
    print(summary)
    return {
        "mlflow_run_id": run_id,
        "mlflow_run_url": url,
        **{f"{f}_test_accuracy": tests[f].accuracy for f in FAMILIES},
        **{f"{f}_cv_accuracy": float(tables[f].loc["mean", "accuracy val"]) for f in FAMILIES},
    }
