"""Tasks of the scheduled re-run: the versioned dataset, batch validation, quarantine, drift."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from glasses.config import GlassesConfig
from glasses.crossval import FAMILIES, pixels_to_input
from glasses.data.images import ImageSet
from glasses.data.splits import Split, SplitError, fold_of, held_out_mask
from glasses.dataset import Batch, DatasetStore, split_batch
from glasses.drift import (
    DriftResult,
    detect_drift,
    fit_embedding,
    image_descriptors,
    prediction_columns,
)
from glasses.scattering import cached_coefficients
from glasses.tables import markdown_table
from glasses.training import default_device, predict
from glasses.validation import ValidationReport, ValidationRules, validate_manifest
from tasks.data import source_table
from tasks.registry import CHAMPION, REGISTERED_NAMES, ModelUnavailable, load_registered_model
from tasks.tracking import client, log_file, log_table

DECISIONS = ("no data", "rejected", "no drift", "promoted", "kept", "skipped")


@task(name="reference-version", cache_policy=NO_CACHE)
def reference_version(
    store: DatasetStore, data: str, config: GlassesConfig, cache_dir: Path
) -> str:
    """The version the champion was trained on (tag `dataset_version` on the champion), else
    HEAD; the first run creates version one from the main data set."""
    if store.head() is None:
        return store.init_from(source_table(data, config, cache_dir))
    tracking = client()
    try:
        champion = tracking.get_model_version_by_alias(REGISTERED_NAMES["cnn"], CHAMPION)
        tagged = champion.tags.get("dataset_version")
    except MlflowException:
        tagged = None
    if tagged:
        try:
            store.manifest(tagged)
            return tagged
        except Exception:  # noqa: BLE001 - a champion from another store: fall back to HEAD
            pass
    return store.head()


@task(name="discover-batch", cache_policy=NO_CACHE)
def discover_batch(store: DatasetStore, incoming: Path) -> Batch | None:
    return store.discover(incoming)


def fixed_split(
    manifest: pd.DataFrame, in_reference: np.ndarray, config: GlassesConfig
) -> np.ndarray:
    """Test flags: the reference version's own held-out split (drawn as the main flow draws it,
    so the champion never trained on it), plus a stratified test share of the images new since
    the reference, with people already on one side kept there."""
    test = np.zeros(len(manifest), dtype=bool)
    reference = manifest[in_reference].reset_index(drop=True)
    reference_test = held_out_mask(reference, config.split.test_size, config.seed)
    test[in_reference] = reference_test
    groups = reference["group"].astype(str)
    # Too few people or distinct images to hold any out: a small batch only trains.
    with contextlib.suppress(SplitError):
        test[~in_reference] = split_batch(
            manifest[~in_reference].reset_index(drop=True),
            config.retrain.batch_test_share,
            config.seed,
            test_groups=set(groups[reference_test]),
            train_groups=set(groups[~reference_test]),
        )
    return test


@task(name="validate-batch", cache_policy=NO_CACHE)
def validate_batch(
    batch: ImageSet, batch_test: np.ndarray, config: GlassesConfig, run_id: str
) -> ValidationReport:
    """The main flow's Great Expectations suite, on the new batch alone."""
    manifest = batch.manifest.assign(split=np.where(batch_test, "test", "train"))
    report = validate_manifest(manifest, ValidationRules(**config.validation.model_dump()))
    tracking = client()
    log_file(
        tracking, run_id, json.dumps(report.result, indent=1, default=str), "validation/result.json"
    )
    log_file(tracking, run_id, report.html, "validation/data_docs.html")
    return report


@task(name="quarantine-batch", cache_policy=NO_CACHE)
def quarantine_batch(
    store: DatasetStore, batch: Batch, report: ValidationReport | None, reason: str
) -> Path:
    result = json.dumps(report.result, indent=1, default=str) if report else "{}"
    return store.quarantine(batch, result, report.html if report else "", reason)


def _champion_probabilities(pixels: np.ndarray) -> dict[str, np.ndarray]:
    """P(glasses) from each family's champion, where one exists."""
    device = default_device()
    probabilities = {}
    for family in FAMILIES:
        try:
            model = load_registered_model(f"{REGISTERED_NAMES[family]}@{CHAMPION}")
        except ModelUnavailable:
            continue
        model = model.to(device).eval()
        logits = predict(
            model, torch.from_numpy(pixels), lambda b, _: pixels_to_input(b), 64, device
        )
        probabilities[family] = torch.softmax(logits, 1)[:, 1].numpy()
    return probabilities


@task(name="check-drift", cache_policy=NO_CACHE)
def check_drift(
    reference: ImageSet, batch: ImageSet, config: GlassesConfig, cache_dir: Path, run_id: str
) -> DriftResult:
    """Evidently on per-image descriptors, the champions' predicted probabilities and pooled
    scattering coefficients embedded in the reference's principal components."""
    J, L = config.scatnet.J, config.scatnet.L
    frames = []
    for images in (reference, batch):
        columns = [
            image_descriptors(
                images.pixels,
                images.manifest["width"].to_numpy(),
                images.manifest["height"].to_numpy(),
            ),
            prediction_columns(_champion_probabilities(images.pixels)),
        ]
        frames.append(columns)
    reference_coefficients = cached_coefficients(reference.pixels, J, L, cache_dir).coefficients
    batch_coefficients = cached_coefficients(batch.pixels, J, L, cache_dir).coefficients
    embedding = fit_embedding(reference_coefficients, components=8)
    frames[0].append(embedding.transform(reference_coefficients))
    frames[1].append(embedding.transform(batch_coefficients))
    result = detect_drift(
        pd.concat(frames[0], axis=1),
        pd.concat(frames[1], axis=1),
        drift_share_threshold=config.retrain.drift_share,
    )
    tracking = client()
    log_file(tracking, run_id, result.html, "drift/evidently_report.html")
    tracking.log_dict(run_id, result.summary, "drift/summary.json")
    log_table(tracking, run_id, result.column_scores, "drift/columns.csv")
    tracking.set_tag(run_id, "drift", "drifted" if result.drifted else "none")
    tracking.log_metric(run_id, "drift_share", result.drift_share)
    markdown = (
        f"# Drift of the new batch: {'DRIFTED' if result.drifted else 'no drift'}\n\n"
        f"Drift share {result.drift_share:.2f} (threshold {config.retrain.drift_share}); "
        f"drifted columns: {', '.join(result.drifted_columns) or 'none'}\n\n"
        f"{markdown_table(result.column_scores.set_index(result.column_scores.columns[0]), 4)}\n"
    )
    create_markdown_artifact(key="glasses-drift", markdown=markdown, description="Drift verdict")
    return result


def training_split(manifest: pd.DataFrame, test: np.ndarray, config: GlassesConfig) -> Split:
    """The fixed test flags, and the main protocol's folds on the remaining rows."""
    fold = np.full(len(manifest), -1, dtype=np.int64)
    fold[~test] = fold_of(manifest[~test].reset_index(drop=True), config.split.folds, config.seed)
    return Split(test=test, fold=fold)


@task(name="record-decision", cache_policy=NO_CACHE)
def record_decision(run_id: str, decision: str, detail: str, lines: list[str]) -> str:
    """Every run ends in one decision, as tags and as the run summary."""
    tracking = client()
    tracking.set_tag(run_id, "decision", decision)
    tracking.set_tag(run_id, "decision_detail", detail[:5000])
    markdown = f"# Scheduled re-run: {decision}\n\n{detail}\n\n" + "\n".join(
        f"- {line}" for line in lines
    )
    tracking.log_text(run_id, markdown, "summary.md")
    create_markdown_artifact(key="glasses-retrain", markdown=markdown, description=decision)
    return markdown
