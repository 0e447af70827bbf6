"""What `make stack-test` asserts once `glasses/full` ran on the container stack, over HTTP only:
both registered models have a `champion` alias from this run, the run's artifacts come back
through the MLflow server (proxied `mlflow-artifacts:`), both Dask workers joined, and the
cross-validation folds ran on them (tag `glasses.dask_worker` of each fold run).

Usage: stack_check.py MLFLOW_URI DASK_HTTP_URI (the host's view of the services).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import httpx

from glasses.families import SPECS
from mlflow import MlflowClient

REGISTERED = {family: spec.registered_name for family, spec in SPECS.items()}


def check(mlflow_uri: str, dask_uri: str) -> None:
    client = MlflowClient(mlflow_uri, registry_uri=mlflow_uri)
    experiment = client.get_experiment_by_name("glasses")
    assert experiment is not None, f"no experiment 'glasses' on {mlflow_uri}"
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    parent = next(r for r in runs if "profile" in r.data.tags)
    assert parent.info.status == "FINISHED", parent.info.status
    assert parent.info.artifact_uri.startswith("mlflow-artifacts:"), parent.info.artifact_uri

    children = {
        r.data.tags.get("mlflow.runName"): r
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    }
    for family, name in REGISTERED.items():
        champion = client.get_model_version_by_alias(name, "champion")
        assert champion.run_id == children[family].info.run_id, f"{name}: champion from another run"
        print(f"{name}: champion = v{champion.version} (run {champion.run_id})")

    with tempfile.TemporaryDirectory() as folder:
        summary = Path(client.download_artifacts(parent.info.run_id, "summary.md", folder))
        assert summary.stat().st_size > 0, "summary.md came back empty"
        folds = Path(
            client.download_artifacts(children["cnn"].info.run_id, "cnn_folds.csv", folder)
        )
        assert folds.read_text().count("\n") >= 3, "cnn_folds.csv: fewer than 2 folds"
        print(f"artifacts through {mlflow_uri}: summary.md {summary.stat().st_size} bytes")

    workers = httpx.get(f"{dask_uri}/json/counts.json", timeout=10).json()["workers"]
    assert workers == 2, f"{workers} Dask workers joined the scheduler, expected 2"
    family_runs = {children[f].info.run_id for f in REGISTERED}
    folds = [r for r in runs if r.data.tags.get("mlflow.parentRunId") in family_runs]
    assert folds, "no fold runs under the family runs"
    ran_on = {r.data.tags.get("glasses.dask_worker") for r in folds}
    assert None not in ran_on, "a fold ran outside the Dask workers"
    print(f"dask: {workers} workers; {len(folds)} folds ran on {sorted(ran_on)}")


if __name__ == "__main__":
    check(*sys.argv[1:3])
