"""What `make stack-test` asserts once `glasses/full` ran on the container stack, over HTTP only:
both registered models have a `champion` alias from this run, the run's artifacts come back
through the MLflow server (proxied `mlflow-artifacts:`), both Dask workers joined, and the
cross-validation folds ran on them (`tasks.runs.DASK_WORKER`, a tag of each fold run).

Usage: stack_check.py MLFLOW_URI DASK_HTTP_URI (the host's view of the services).
For the worker-kill run: `--wait-for-fold MLFLOW_URI SINCE_MS` returns once a CNN fold run of a flow
started after SINCE_MS is RUNNING, printing the address of the Dask worker that runs it; `--folds
MLFLOW_URI` lists the newest run's folds, where they ran and how they ended; `--reused
MLFLOW_URI` checks that the newest run reused finished folds.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import httpx
from mlflow.entities import Run

from glasses.families import SPECS
from mlflow import MlflowClient
from tasks.resume import REUSED
from tasks.runs import DASK_WORKER

REGISTERED = {family: spec.registered_name for family, spec in SPECS.items()}


def check(mlflow_uri: str, dask_uri: str, first: bool) -> None:
    """`first`: the stack's first run, so its models are the champions; a later one's models
    are registered and compete (equal ones leave the champion where it is)."""
    client = MlflowClient(mlflow_uri, registry_uri=mlflow_uri)
    parent, runs = newest_parent(client)
    assert parent.info.status == "FINISHED", parent.info.status
    assert parent.info.artifact_uri.startswith("mlflow-artifacts:"), parent.info.artifact_uri

    children = {
        r.data.tags.get("mlflow.runName"): r
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    }
    for family, name in REGISTERED.items():
        run_id = children[family].info.run_id
        (version,) = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
        champion = client.get_model_version_by_alias(name, "champion")
        assert champion.run_id == run_id or not first, f"{name}: champion from another run"
        print(f"{name}: v{version.version} registered, champion = v{champion.version}")

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
    ran_on = {r.data.tags.get(DASK_WORKER) for r in folds}
    assert None not in ran_on, "a fold ran outside the Dask workers"
    print(f"dask: {workers} workers; {len(folds)} folds ran on {sorted(ran_on)}")


def newest_parent(client: MlflowClient) -> tuple[Run, list[Run]]:
    """The newest flow run's parent MLflow run, and every run of the experiment."""
    experiment = client.get_experiment_by_name("glasses")
    assert experiment is not None, f"no experiment 'glasses' on {client.tracking_uri}"
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    return next(r for r in runs if "profile" in r.data.tags), runs


def wait_for_fold(mlflow_uri: str, since: float, timeout: float = 900) -> None:
    """`since` (ms since the epoch) is when the shell started the flow: this process's own start
    can come after the first fold's under load (importing MLflow took a minute at load 10)."""
    client = MlflowClient(mlflow_uri)
    deadline = time.monotonic() + timeout
    experiment = client.get_experiment_by_name("glasses").experiment_id
    while time.monotonic() < deadline:
        running = client.search_runs(
            [experiment],
            f"attributes.status = 'RUNNING' and attributes.start_time > {since:.0f} "
            "and attributes.run_name LIKE 'cnn-fold-%'",  # the long ones in the kill run
        )
        if running:  # the worker's address, for the stack test to kill the one running it
            print(running[0].data.tags.get(DASK_WORKER, ""))
            print(f"fold running: {running[0].info.run_name}", file=sys.stderr)
            return
        time.sleep(0.5)
    raise SystemExit(f"no fold started within {timeout:.0f} s")


def newest_folds(client: MlflowClient) -> list[Run]:
    """The fold runs of the newest flow run, which must have finished, oldest first."""
    parent, runs = newest_parent(client)
    assert parent.info.status == "FINISHED", f"the newest run ended {parent.info.status}"
    families = {
        r.info.run_id for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    }
    folds = [r for r in runs if r.data.tags.get("mlflow.parentRunId") in families]
    return sorted(folds, key=lambda r: r.info.start_time)


def show_folds(mlflow_uri: str) -> None:
    """A killed worker's fold run stays RUNNING until the next start ends it
    (`glasses.liveness`)."""
    for fold in newest_folds(MlflowClient(mlflow_uri)):
        worker = fold.data.tags.get(DASK_WORKER)
        print(f"{fold.info.run_name}: {fold.info.status} on {worker}")


def check_reused(mlflow_uri: str) -> None:
    folds = newest_folds(MlflowClient(mlflow_uri))
    reused = [r.info.run_name for r in folds if REUSED in r.data.tags]
    assert reused, "the re-run reused no fold of the killed run"
    print(f"re-run reused {len(reused)} of {len(folds)} folds: {sorted(reused)}")


if __name__ == "__main__":
    if sys.argv[1] == "--wait-for-fold":
        wait_for_fold(sys.argv[2], float(sys.argv[3]))
    elif sys.argv[1] == "--folds":
        show_folds(sys.argv[2])
    elif sys.argv[1] == "--reused":
        check_reused(sys.argv[2])
    else:
        check(*sys.argv[1:3], first="--later" not in sys.argv)
