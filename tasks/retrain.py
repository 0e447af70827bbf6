"""Tasks of the scheduled re-run: the versioned dataset, batch validation, quarantine, drift."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from glasses.config import GlassesConfig
from glasses.data.images import ImageSet, scan_images
from glasses.data.reference import DataRef, image_set, store_image_set
from glasses.data.splits import Split, retrain_test_mask, split_around, without_trained
from glasses.drift import (
    DriftResult,
    detect_drift,
    fit_embedding,
    image_descriptors,
    prediction_columns,
)
from glasses.families import FAMILIES, SPECS
from glasses.inference import probabilities
from glasses.retrain import REFERENCE_FAMILY, Decision
from glasses.scattering import cached_coefficients
from glasses.store import Batch, DatasetStore
from glasses.tables import markdown_table
from glasses.validation import ValidationReport, validate_manifest
from tasks.data import source_table
from tasks.log import log_file, log_table
from tasks.model_loading import ModelUnavailable, load_registered_model
from tasks.promotion import HeldOutResult
from tasks.registry import CHAMPION, read_lineage
from tasks.tracking import client


@task(name="reference-version", cache_policy=NO_CACHE)
def reference_version(
    store: DatasetStore, data: str, config: GlassesConfig, cache_dir: Path, run_id: str
) -> str:
    """The version the champion of `REFERENCE_FAMILY` was trained on (its tag `dataset_version`),
    else HEAD; the first run creates version one from the main data set."""
    if store.head() is None:
        reference = store.init_from(source_table(data, config, cache_dir))
    else:
        reference = _champion_version(store) or store.head()
    client().set_tag(run_id, "reference_version", reference)
    return reference


def _champion_version(store: DatasetStore) -> str | None:
    try:
        name = SPECS[REFERENCE_FAMILY].registered_name
        champion = client().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None
    tagged = champion.tags.get("dataset_version")
    if not tagged:
        return None
    try:
        store.manifest(tagged)
    except Exception:  # noqa: BLE001 - a champion from another store: fall back to HEAD
        return None
    return tagged


@dataclass(frozen=True)
class Incoming:
    """A batch found in the incoming folder, and the store version it would extend."""

    store: DatasetStore
    batch: Batch
    reference: str


@task(name="discover-batch", cache_policy=NO_CACHE)
def discover_batch(
    store: DatasetStore, folder: Path, reference: str, run_id: str
) -> Incoming | None:
    batch = store.discover(folder)
    if batch is None:
        return None
    client().set_tag(run_id, "batch", batch.id)
    return Incoming(store, batch, reference)


@task(name="validate-batch", cache_policy=NO_CACHE)
def validate_batch(
    incoming: Incoming, config: GlassesConfig, cache_dir: Path, run_id: str
) -> tuple[DataRef, ValidationReport]:
    """The main flow's Great Expectations suite on the new batch alone, with the batch's rows
    split as they will be if it is accepted (so leaks between its splits are caught)."""
    images = incoming.batch.scan(config.data.image_size)
    reference_rows = incoming.store.manifest(incoming.reference)[["label", "group"]]
    combined = pd.concat([reference_rows, images.manifest[["label", "group"]]], ignore_index=True)
    in_reference = np.arange(len(combined)) < len(reference_rows)
    batch_test = _test_mask(combined, in_reference, config)[~in_reference]
    manifest = images.manifest.assign(split=np.where(batch_test, "test", "train"))
    report = validate_manifest(manifest, config.validation)
    tracking = client()
    log_file(
        tracking, run_id, json.dumps(report.result, indent=1, default=str), "validation/result.json"
    )
    log_file(tracking, run_id, report.html, "validation/data_docs.html")
    return store_image_set(images, cache_dir), report


@task(name="quarantine-batch", cache_policy=NO_CACHE)
def quarantine_batch(
    incoming: Incoming, report: ValidationReport, reason: str, run_id: str
) -> Path:
    where = incoming.store.quarantine(
        incoming.batch, json.dumps(report.result, indent=1, default=str), report.html, reason
    )
    client().set_tag(run_id, "quarantine", str(where))
    return where


@dataclass(frozen=True)
class StagedVersion:
    """Reference + batch written to the store but not published: its id and its images."""

    id: str
    data: DataRef
    in_reference: np.ndarray  # bool, row-aligned with the images of `data`


@task(name="stage-version", cache_policy=NO_CACHE)
def stage_version(
    incoming: Incoming, config: GlassesConfig, cache_dir: Path, run_id: str
) -> StagedVersion:
    store = incoming.store
    version = store.stage(incoming.batch)
    client().set_tag(run_id, "dataset_version", version)
    images = scan_images(store.manifest(version), config.data.image_size)
    in_reference = images.manifest["path"].isin(set(store.manifest(incoming.reference)["path"]))
    return StagedVersion(version, store_image_set(images, cache_dir), in_reference.to_numpy())


@task(name="retrain-split", cache_policy=NO_CACHE)
def retrain_split(
    staged: StagedVersion, config: GlassesConfig, trained_sha256: frozenset[str]
) -> Split:
    """The fixed test split (`retrain_test_mask`) less every image the champions trained on
    (`trained_sha256`, see `without_trained`), and the main protocol's folds on the rest."""
    manifest = image_set(staged.data).manifest
    test = without_trained(
        manifest, _test_mask(manifest, staged.in_reference, config), trained_sha256
    )
    return split_around(manifest, test, config.split.folds, config.seed)


@task(name="champions-training-images", cache_policy=NO_CACHE)
def champions_training_images() -> frozenset[str]:
    """Content hashes of every image either family's champion trained on (its lineage)."""
    tracking = client()
    hashes: set[str] = set()
    for family in FAMILIES:
        name = SPECS[family].registered_name
        try:
            version = tracking.get_model_version_by_alias(name, CHAMPION).version
        except MlflowException:
            continue
        lineage = read_lineage(tracking, name, str(version))
        if lineage is not None:
            hashes |= lineage.training_sha256
    return frozenset(hashes)


def _test_mask(manifest: pd.DataFrame, in_reference: np.ndarray, config: GlassesConfig):
    return retrain_test_mask(
        manifest, in_reference, config.split.test_size, config.retrain.batch_test_share, config.seed
    )


@task(name="publish-version", cache_policy=NO_CACHE)
def publish_version(store: DatasetStore, version: str) -> None:
    """Make the staged version HEAD: last, so a killed run leaves the dataset as it was."""
    store.publish(version)


@task(name="tag-models", cache_policy=NO_CACHE)
def tag_models(tests: dict[str, HeldOutResult], version: str) -> None:
    """Each registered challenger names the dataset version it was trained on."""
    tracking = client()
    for family, test in tests.items():
        tracking.set_model_version_tag(
            SPECS[family].registered_name, test.version, "dataset_version", version
        )


def _champion_probabilities(pixels: np.ndarray) -> dict[str, np.ndarray]:
    """P(glasses) from each family's champion, where one exists."""
    answers = {}
    for family in FAMILIES:
        try:
            model = load_registered_model(f"{SPECS[family].registered_name}@{CHAMPION}")
        except ModelUnavailable:
            continue
        answers[family] = probabilities(model, torch.from_numpy(pixels))[:, 1].numpy()
    return answers


def held_out(images: ImageSet, trained_sha256: frozenset[str]) -> ImageSet:
    """The images no champion trained on, so that the reference's predicted probabilities are
    what the champions do on unseen faces; all of them when every one was trained on."""
    keep = ~images.manifest["sha256"].astype(str).isin(trained_sha256).to_numpy()
    if not keep.any():
        return images
    return ImageSet(images.manifest[keep].reset_index(drop=True), images.pixels[keep])


@task(name="check-drift", cache_policy=NO_CACHE)
def check_drift(
    staged: StagedVersion,
    batch_data: DataRef,
    trained_sha256: frozenset[str],
    config: GlassesConfig,
    cache_dir: Path,
    run_id: str,
) -> DriftResult:
    """Evidently on per-image descriptors, the champions' predicted probabilities and pooled
    scattering coefficients embedded in the reference's principal components; the reference is
    the part of the reference version the champions did not train on."""
    J, L = config.scatnet.J, config.scatnet.L
    version, batch = image_set(staged.data), image_set(batch_data)
    rows = staged.in_reference
    in_reference = ImageSet(version.manifest[rows].reset_index(drop=True), version.pixels[rows])
    reference = held_out(in_reference, trained_sha256)
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


@task(name="record-decision", cache_policy=NO_CACHE)
def record_decision(run_id: str, decision: Decision, lines: list[str]) -> str:
    """Every run ends in one decision, as tags and as the run summary."""
    tracking = client()
    tracking.set_tag(run_id, "decision", decision.outcome)
    tracking.set_tag(run_id, "decision_detail", decision.reason[:5000])
    markdown = f"# Scheduled re-run: {decision.outcome}\n\n{decision.reason}\n\n" + "\n".join(
        f"- {line}" for line in lines
    )
    tracking.log_text(run_id, markdown, "summary.md")
    create_markdown_artifact(
        key="glasses-retrain", markdown=markdown, description=str(decision.outcome)
    )
    return markdown
