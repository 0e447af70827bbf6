"""Runs of different profiles share one MLflow store: the same run twice gives the same numbers,
and a run of another image size neither crashes nor compares itself with the other champion."""

from __future__ import annotations

import pytest

from flows.full import glasses
from glasses.families import FAMILIES
from mlflow import MlflowClient
from tasks.runs import DASK_WORKER

# Resume off: the second run trains again, so equal metrics show that training is reproducible.
FAST = {"sweep": {"enabled": False}, "xai": {"enabled": False}, "runtime": {"resume": False}}
# Every method and check, on the fewest samples: what matters is which models they explain.
LEAST_XAI = {"lime_samples": 10, "shap_max_evals": 10, "ig_steps": 2, "randomisation_images": 1}


@pytest.fixture
def store(mlflow_local) -> MlflowClient:
    return MlflowClient(tracking_uri=mlflow_local, registry_uri=mlflow_local)


def metrics(store: MlflowClient, run_id: str, family: str) -> dict[str, float]:
    (family_run,) = store.search_runs(
        [store.get_run(run_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run_id}' and tags.family = '{family}'",
    )
    return {k: v for k, v in family_run.data.metrics.items() if k.startswith(("test_", "cv_"))}


def workers(store: MlflowClient, run_id: str, family: str) -> set[str]:
    """The Dask workers that ran the family's folds ('' for a fold that ran in this process)."""
    experiment = store.get_run(run_id).info.experiment_id
    (family_run,) = store.search_runs(
        [experiment], f"tags.mlflow.parentRunId = '{run_id}' and tags.family = '{family}'"
    )
    folds = store.search_runs([experiment], f"tags.mlflow.parentRunId = '{family_run.info.run_id}'")
    assert folds
    return {fold.data.tags.get(DASK_WORKER, "") for fold in folds} - {""}


def test_same_run_twice_then_another_image_size_in_one_store(store) -> None:
    """Twice, on threads and then on a local Dask cluster of two worker processes: the tasks
    take references, so the runner changes where they run, not what they compute."""
    first = glasses(data="synthetic", profile="tiny", overrides=FAST)
    on_dask = {**FAST, "runtime": {**FAST["runtime"], "task_runner": "dask", "workers": 2}}
    second = glasses(data="synthetic", profile="tiny", overrides=on_dask)
    for family in ("cnn", "scatnet"):
        expected = metrics(store, first["mlflow_run_id"], family)
        assert {"test_balanced_accuracy", "cv_balanced_accuracy_mean"} <= set(expected)
        assert metrics(store, second["mlflow_run_id"], family) == expected  # to the last digit
    assert not set().union(*(workers(store, first["mlflow_run_id"], f) for f in FAMILIES))
    on_workers = set().union(*(workers(store, second["mlflow_run_id"], f) for f in FAMILIES))
    assert on_workers and all(w.startswith("tcp://127.0.0.1:") for w in on_workers)

    # Another input size after them (as `tiny` after `quick`): registered, not compared, and
    # the explanations are of this run's own models.
    other = glasses(
        data="synthetic",
        profile="tiny",
        overrides={"sweep": {"enabled": False}, "data": {"image_size": 48}, "xai": LEAST_XAI},
    )
    run = store.get_run(other["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    for family in ("cnn", "scatnet"):
        version = store.get_model_version(f"glasses-{family}", "3")
        decision = version.tags["champion_decision"]
        assert decision.startswith("not compared: champion v1 takes 32 px images, this run 48")
        champion = store.get_model_version_by_alias(f"glasses-{family}", "champion")
        assert str(champion.version) == "1"
        assert version.tags["image_size"] == "48"
    (xai,) = store.search_runs(
        [run.info.experiment_id],
        filter_string=f"tags.stage = 'xai' and tags.mlflow.parentRunId = '{run.info.run_id}'",
    )
    assert xai.info.status == "FINISHED"
