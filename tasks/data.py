"""Data tasks: read the images once, split them, and validate them before anything trains."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from glasses.config import GlassesConfig
from glasses.data.images import in_content_order, scan_images, subsample
from glasses.data.reference import DataRef, image_set, store_image_set
from glasses.data.sources import load_source
from glasses.data.splits import Split, make_split
from glasses.validation import raise_for_failures, validate_manifest
from tasks.log import log_dataset, log_file, log_table
from tasks.tracking import client


@task(name="load-images", cache_policy=NO_CACHE)
def load_images(data: str, config: GlassesConfig, cache_dir: Path) -> DataRef:
    """Decode every image once into the cache folder; later tasks open them by reference."""
    table = source_table(data, config, cache_dir)
    return store_image_set(in_content_order(scan_images(table, config.data.image_size)), cache_dir)


def source_table(data: str, config: GlassesConfig, cache_dir: Path) -> pd.DataFrame:
    """The labelled image table a run uses: the source, subsampled as the profile says."""
    table = load_source(data, config.data, cache_dir, config.seed)
    return subsample(table, config.data.max_images, config.seed)


@task(name="record-fingerprint", cache_policy=NO_CACHE)
def record_fingerprint(data: DataRef, run_id: str) -> str:
    """Tags the run with its images' content fingerprint (`data_fingerprint`) and returns it."""
    fingerprint = image_set(data).fingerprint
    client().set_tag(run_id, "data_fingerprint", fingerprint)
    return fingerprint


@task(name="split-images", cache_policy=NO_CACHE)
def split_images(data: DataRef, config: GlassesConfig, run_id: str) -> Split:
    images = image_set(data)
    split = make_split(images.manifest, config.split.test_size, config.split.folds, config.seed)
    log_table(client(), run_id, split.table(images.manifest), "data/folds.csv")
    return split


@task(name="validate-images", cache_policy=NO_CACHE)
def validate_images(data: DataRef, split: Split, config: GlassesConfig, source: str, run_id: str):
    """Great Expectations suite on the manifest; the report is logged whether it passes or not."""
    images = image_set(data)
    manifest = images.manifest.assign(split=["test" if t else "train" for t in split.test])
    report = validate_manifest(manifest, config.validation)
    tracking = client()
    log_file(
        tracking, run_id, json.dumps(report.result, indent=1, default=str), "validation/result.json"
    )
    log_file(tracking, run_id, report.html, "validation/data_docs.html")
    tracking.set_tag(run_id, "validation", "passed" if report.success else "failed")
    raise_for_failures(report)
    log_dataset(tracking, run_id, manifest, source=source, name=f"glasses-{images.fingerprint}")
    return report.success
