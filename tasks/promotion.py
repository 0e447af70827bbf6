"""Test a registered version from the registry on the held-out split, and move the `champion`
alias only when the new version can be compared with the current one and wins on the same test
images (`glasses.promotion` decides)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from mlflow.exceptions import MlflowException
from prefect import task
from prefect.cache_policies import NO_CACHE

from glasses.data.reference import DataRef, image_set
from glasses.families import SPECS, Family
from glasses.plots import confusion_figure
from glasses.promotion import (
    Lineage,
    accuracy_interval,
    decide_champion,
    held_out_scores,
    version_description,
)
from tasks.log import log_figure, log_metrics
from tasks.model_loading import ModelUnavailable, load_registered_model, logged_model_id
from tasks.registry import CHALLENGER, CHAMPION, read_lineage, record_lineage
from tasks.tracking import client, ui_url


@dataclass(frozen=True)
class HeldOutResult:
    run_id: str  # the family run it was logged into
    version: str
    scores: dict[str, float]
    champion_version: str
    decision: str

    @property
    def accuracy(self) -> float:
        return self.scores["accuracy"]


@task(name="evaluate-on-test", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def evaluate_on_test(
    family: Family,
    version: str,
    data: DataRef,
    test_rows: np.ndarray,
    run_id: str,
    lineage: Lineage,
    margin: float = 0.0,
) -> HeldOutResult:
    """Score the registered version, loaded from the registry (not memory), on the test split.

    The new version records its `lineage` and a description (scores, interval, data, run link)
    and takes one alias: `champion` when it is the first, or when the current champion can be
    compared on this test split (same input size, none of these test images in its training
    data) and the new version beats it, re-scored on the same test data, by `margin`
    (`glasses.promotion`); else `challenger`.
    """
    tracking = client()
    images = image_set(data)
    pixels = torch.from_numpy(images.pixels[test_rows])
    labels = images.labels[test_rows]
    test_sha256 = images.manifest["sha256"].astype(str).to_numpy()[test_rows].tolist()
    name = SPECS[family].registered_name
    record_lineage(tracking, name, version, lineage)
    model = load_registered_model(f"{name}/{version}")
    result, matrix = held_out_scores(model, pixels, labels)
    model_id = logged_model_id(tracking.get_model_version(name, version))
    log_metrics(tracking, run_id, {f"holdout_{k}": v for k, v in result.items()}, model_id=model_id)
    title = f"{name} v{version}: held-out accuracy {result['accuracy']:.3f}"
    log_figure(
        tracking, run_id, confusion_figure(matrix, title), f"figures/{family}_confusion_test.png"
    )
    champion, decision = _decide_champion(
        tracking, name, version, result, pixels, labels, test_sha256, margin
    )
    # One alias a version: `champion` when it won (a first version too), else `challenger`.
    tracking.set_registered_model_alias(
        name, CHAMPION if champion == version else CHALLENGER, version
    )
    run = tracking.get_run(run_id)
    tracking.update_model_version(
        name,
        version,
        version_description(
            result,
            accuracy_interval(matrix),
            images.fingerprint,
            ui_url(tracking, run.info.experiment_id, run.info.run_id),
            decision,
        ),
    )
    tracking.set_model_version_tag(name, version, "champion_decision", decision)
    tracking.set_tag(run_id, "champion_decision", decision)
    return HeldOutResult(run_id, version, result, champion, decision)


def _decide_champion(
    tracking,
    name: str,
    version: str,
    result: dict[str, float],
    pixels: torch.Tensor,
    labels: np.ndarray,
    test_sha256: list[str],
    margin: float,
) -> tuple[str, str]:
    """`glasses.promotion.decide_champion` with what it asks for read from the registry: the
    current champion, its lineage, and its scores on this very test split."""
    try:
        current = str(tracking.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        current = None

    def champion_scores() -> dict[str, float] | str:
        try:
            return held_out_scores(load_registered_model(f"{name}/{current}"), pixels, labels)[0]
        except ModelUnavailable as error:
            return str(error)

    return decide_champion(
        version,
        result,
        current,
        lambda: read_lineage(tracking, name, current),
        champion_scores,
        pixels.shape[-1],
        test_sha256,
        margin,
    )
