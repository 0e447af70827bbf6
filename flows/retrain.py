"""`glasses-retrain/scheduled`: new data → validation → drift → retrain → challenger vs champion.

Every run ends in one recorded decision: no data, rejected (quarantined), no drift (accepted,
not retrained), promoted, kept, or skipped (another import held the lock). The dataset's HEAD
moves last, after training and registration, so a run killed half-way leaves the dataset as it
was and the next run redoes the work (the staged version id is derived from content).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import flow

from flows.stages import Stage, cache_dir, open_run, train_and_register
from glasses.config import GlassesConfig, ProfileName, resolve_config
from glasses.crossval import FAMILIES
from glasses.data.images import ImageSet, scan_images
from glasses.dataset import DatasetLockedError, DatasetStore
from mlflow import MlflowClient
from tasks.features import scattering_coefficients
from tasks.registry import REGISTERED_NAMES
from tasks.retrain import (
    check_drift,
    discover_batch,
    fixed_split,
    quarantine_batch,
    record_decision,
    reference_version,
    training_split,
    validate_batch,
)


@flow(name="glasses-retrain", log_prints=True)
def retrain(
    incoming: str = "incoming",
    data: str = "synthetic",
    profile: ProfileName = "quick",
    overrides: dict[str, Any] | None = None,
    store: str = "datasets",
    quarantine: str = "quarantine",
) -> dict[str, Any]:
    """Import what is new in `incoming` into the versioned dataset `store` and retrain when it
    matters. `data` seeds the dataset on the very first run (the champion's training data)."""
    config = resolve_config(profile, overrides)
    tracking, experiment, run_id, url, stage = open_run(
        config, f"retrain-{profile}", {"flow": "retrain", "incoming": incoming, "data": data}
    )
    dataset = DatasetStore(Path(store).resolve(), Path(quarantine).resolve())
    lines: list[str] = [f"MLflow run: {url}"]
    try:
        with dataset.lock():
            decision, detail = _import_and_retrain(
                config, dataset, Path(incoming), data, tracking, experiment, run_id, stage, lines
            )
    except DatasetLockedError as error:
        decision, detail = "skipped", str(error)
    except BaseException:
        tracking.set_terminated(run_id, "FAILED")
        raise
    summary = record_decision(run_id, decision, detail, lines)
    tracking.set_terminated(run_id, "FINISHED")
    print(summary)
    return {"decision": decision, "detail": detail, "mlflow_run_id": run_id}


def _import_and_retrain(
    config: GlassesConfig,
    dataset: DatasetStore,
    incoming: Path,
    data: str,
    tracking: MlflowClient,
    experiment: str,
    run_id: str,
    stage: Stage,
    lines: list[str],
) -> tuple[str, str]:
    size = config.data.image_size
    with stage("discover"):
        reference = reference_version(dataset, data, config, cache_dir())
        tracking.set_tag(run_id, "reference_version", reference)
        batch = discover_batch(dataset, incoming)
    if batch is None:
        return "no data", f"nothing new in {incoming} since dataset version {reference}"
    lines.append(f"batch {batch.id}: {len(batch.table)} new image(s)")
    tracking.set_tag(run_id, "batch", batch.id)
    with stage("validate"):
        batch_images = batch.scan(size)
        reference_rows = dataset.manifest(reference)
        combined = pd.concat(
            [reference_rows[["label", "group"]], batch_images.manifest[["label", "group"]]],
            ignore_index=True,
        )
        in_reference = np.arange(len(combined)) < len(reference_rows)
        batch_test = fixed_split(combined, in_reference, config)[~in_reference]
        report = validate_batch(batch_images, batch_test, config, run_id)
    if not report.success or batch.conflicts:
        reasons = report.failures + [f"same image, two labels: {c}" for c in batch.conflicts]
        where = quarantine_batch(dataset, batch, report, "\n".join(reasons))
        return "rejected", f"batch {batch.id} moved to {where}: " + "; ".join(reasons)
    with stage("stage_version"):
        version = dataset.stage(batch)
        tracking.set_tag(run_id, "dataset_version", version)
        manifest = dataset.manifest(version)
        images = scan_images(manifest, size)
        in_reference = manifest["path"].isin(set(reference_rows["path"])).to_numpy()
    with stage("drift"):
        reference_images = ImageSet(
            images.manifest[in_reference].reset_index(drop=True), images.pixels[in_reference]
        )
        drift = check_drift(reference_images, batch_images, config, cache_dir(), run_id)
    new_share = float((~in_reference).sum() / max(in_reference.sum(), 1))
    lines.append(
        f"drift share {drift.drift_share:.2f} ({', '.join(drift.drifted_columns) or 'none'}); "
        f"new images {new_share:.0%} of version {reference}"
    )
    if not drift.drifted and new_share < config.retrain.min_new_share:
        dataset.publish(version)
        return "no drift", (
            f"accepted as dataset version {version}; no drift and new share {new_share:.0%} "
            f"< {config.retrain.min_new_share:.0%}: not retrained"
        )
    split = training_split(
        images.manifest, fixed_split(images.manifest, in_reference, config), config
    )
    with stage("scattering"):
        coefficients = scattering_coefficients(images, config, cache_dir(), run_id)
    _, _, tests = train_and_register(
        config,
        images,
        split,
        coefficients,
        tracking,
        experiment,
        run_id,
        config.retrain.margin,
        stage,
    )
    for family in FAMILIES:
        tracking.set_model_version_tag(
            REGISTERED_NAMES[family], tests[family].version, "dataset_version", version
        )
        lines.append(f"{family}: v{tests[family].version}: {tests[family].decision}")
    dataset.publish(version)
    promoted = any(tests[f].champion_version == tests[f].version for f in FAMILIES)
    why = "drift detected" if drift.drifted else f"new share {new_share:.0%}"
    return ("promoted" if promoted else "kept"), (
        f"retrained on dataset version {version} ({why}); "
        + "; ".join(f"{f}: {tests[f].decision}" for f in FAMILIES)
    )
