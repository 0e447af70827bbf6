"""The whole flow in-process on real faces (Olivetti), with the tiny profile."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)

from flows.full import glasses
from mlflow import MlflowClient

OLIVETTI = Path(__file__).resolve().parents[2].parent / "shared/data/olivetti_glasses/labels.csv"


@pytest.fixture
def local_tracking(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("GLASSES_CACHE_DIR", str(tmp_path / "cache"))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.mark.skipif(not OLIVETTI.exists(), reason="../shared/data is not beside the project")
def test_olivetti_runs_and_keeps_people_on_one_side(local_tracking, tmp_path):
    before = sorted((p.name, p.stat().st_mtime_ns) for p in OLIVETTI.parent.rglob("*"))
    result = glasses(data=str(OLIVETTI), profile="tiny", overrides={"data": {"max_images": 200}})

    run = local_tracking.get_run(result["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["data_fingerprint"]
    folds = pd.read_csv(
        local_tracking.download_artifacts(run.info.run_id, "data/folds.csv", str(tmp_path))
    )
    sides = folds.groupby("group")["split"].nunique()
    assert (sides == 1).all(), f"people on both sides: {list(sides[sides > 1].index)}"
    train = folds[folds["split"] == "train"]
    assert (train.groupby("group")["fold"].nunique() == 1).all()
    assert 0.5 <= result["cnn_test_accuracy"] <= 1.0

    outer = local_tracking.search_runs(
        [run.info.experiment_id], filter_string="tags.stage = 'outer'"
    )[0]
    splits = pd.read_csv(
        local_tracking.download_artifacts(outer.info.run_id, "outer/splits.csv", str(tmp_path))
    )
    assert sorted(splits["outer"].unique()) == [0, 1]  # tiny: the 2 folds as outer splits
    assert len(splits) == 2 * 2
    family = local_tracking.search_runs(
        [run.info.experiment_id], filter_string="attributes.run_name = 'cnn'"
    )
    metrics = family[0].data.metrics
    mean = splits[splits["model"] == "cnn"]["balanced_accuracy"].mean()
    assert metrics["test_balanced_accuracy"] == pytest.approx(mean)
    assert metrics["test_balanced_accuracy_low"] <= mean <= metrics["test_balanced_accuracy_high"]
    assert "holdout_balanced_accuracy" in metrics

    sweep = local_tracking.search_runs(
        [run.info.experiment_id], filter_string="tags.stage = 'sweep'"
    )[0]
    assert sweep.data.tags["mlflow.parentRunId"] == run.info.run_id
    assert sweep.data.tags["sweep_verdict"]
    points = pd.read_csv(
        local_tracking.download_artifacts(sweep.info.run_id, "sweep/points.csv", str(tmp_path))
    )
    assert sorted(points["size"].unique()) == [20, 36]
    assert len(points) == 2 * 2 * 2  # sizes x repeats x families
    pairs = points.groupby(["size", "outer", "repeat"])["model"].apply(sorted)
    assert all(models == ["cnn", "scatnet"] for models in pairs)
    figures = {a.path for a in local_tracking.list_artifacts(sweep.info.run_id, "figures")}
    assert {
        "figures/learning_curves.png",
        "figures/cnn_kernels.png",
        "figures/cnn_feature_maps.png",
        "figures/wavelet_filters.png",
        "figures/scattering_coefficients.png",
        "figures/cnn_confusion_smallest.png",
        "figures/scatnet_confusion_smallest.png",
    } <= figures

    explained = local_tracking.search_runs(
        [run.info.experiment_id], filter_string="tags.stage = 'xai'"
    )[0]
    believe = pd.read_csv(
        local_tracking.download_artifacts(explained.info.run_id, "tables/checks.csv", str(tmp_path))
    )
    assert len(believe) == 2 * 6 * 5  # both models, every method of the tiny profile, each check

    with get_client(sync_client=True) as prefect:
        progress = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["train-fold-progress"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[run.data.tags["prefect_flow_run_id"]]),
            )
        )
    assert [(a.type, float(a.data)) for a in progress] == [("progress", 100.0)]
    assert progress[0].description.startswith("train-fold: 4/4 done")
    assert sorted((p.name, p.stat().st_mtime_ns) for p in OLIVETTI.parent.rglob("*")) == before
