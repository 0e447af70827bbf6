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
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.logging.handlers import APILogWorker

from flows.full import glasses
from glasses.statistics import headline_metrics
from mlflow import MlflowClient

OLIVETTI = Path(__file__).resolve().parents[2].parent / "shared/data/olivetti_glasses/labels.csv"


@pytest.fixture
def local_tracking(mlflow_local):
    return MlflowClient(tracking_uri=mlflow_local, registry_uri=mlflow_local)


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
    # Each fold's held-out curve: its validation rows scored at every check (issue 22).
    fold = local_tracking.search_runs(
        [run.info.experiment_id], filter_string="attributes.run_name = 'cnn-fold-1'"
    )[0].info.run_id
    checks = local_tracking.get_metric_history(fold, "train_accuracy")
    assert len(local_tracking.get_metric_history(fold, "held_out_accuracy")) == len(checks) > 1

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
    # Tasks: the CNN's 2 folds one each, the ScatNet's 2 stacked in one (`glasses.heads`).
    assert progress[0].description.startswith("train-fold: 3/3 done")

    # What a newcomer sees first (issue 22): the parent run's verdict, description and headline
    # metrics; family parameters; named task runs; progress on the watched (root) flow run.
    tags = run.data.tags
    assert tags["verdict"].startswith("ScatNet − CNN test balanced accuracy")
    assert tags["mlflow.note.content"].startswith("# glasses: results")
    assert "Partial" not in tags["mlflow.note.content"]  # the final summary replaced the first
    assert {"cnn_test_balanced_accuracy_low", "scatnet_test_balanced_accuracy_high"} <= set(
        run.data.metrics
    )
    assert set(headline_metrics()) <= set(run.data.metrics)  # the runs table's link shows them
    assert "scattering_seconds" not in run.data.metrics
    assert family[0].data.params["optimiser.steps"] and family[0].data.params["data_fingerprint"]
    study_run = run.data.tags["prefect_flow_run_id"]  # the sub-flow's; the user watches its parent
    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as prefect:
        study = prefect.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[study_run]))
        )[0]
        parent_task = prefect.read_task_run(study.parent_task_run_id)
        names = {
            t.name
            for t in prefect.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[study_run]))
            )
        }
        watched = [
            log.message
            for log in prefect.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[parent_task.flow_run_id]))
            )
        ]
    assert {"cnn-fold-1", "scatnet-folds-1-2", "cnn-refit", "cnn-outer-1"} <= names
    assert any(name.startswith("scatnet-outer-1") for name in names)
    assert any(name.startswith("cnn-sweep-20-split-") for name in names)
    assert "stage cross_validation: started" in watched
    assert any(m.startswith("stage cross_validation: finished in ") for m in watched)
    assert any(m.startswith("train-fold: 3/3 done") for m in watched)
    assert any(m.startswith("whole run: about ") for m in watched)
    assert any(m.startswith("cnn-refit step ") for m in watched)
    assert any(m.startswith("scatnet-sweep-") and " step " in m for m in watched)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in OLIVETTI.parent.rglob("*")) == before
