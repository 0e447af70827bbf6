"""MLflow plumbing shared by the tasks: where to log, the run tree, and artifact helpers."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from mlflow.entities import DatasetInput, InputTag, Metric, Param
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

import mlflow
from glasses.memory import peak_rss_mb, reset_peak
from mlflow import MlflowClient

EXPERIMENT = "glasses"
LOCAL_STORE = Path(".glasses")


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` when set, as every MLflow client does; else a local SQLite store."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    LOCAL_STORE.mkdir(exist_ok=True)
    return f"sqlite:///{(LOCAL_STORE / 'mlflow.db').resolve()}"


def client() -> MlflowClient:
    """Client for the current tracking URI, allowed to load the project's own pickled models.

    MLflow 3 refuses pickled models unless told otherwise; these are the ones this pipeline
    registered (see `tasks.registry.register_model`).
    """
    os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


class ServerUnavailable(RuntimeError):
    """A configured server does not answer; raised before any work starts."""


def require_server(name: str, health_url: str, hint: str) -> None:
    """Fail in seconds with the address, instead of after MLflow's or Prefect's long retries."""
    try:
        httpx.get(health_url, timeout=5).raise_for_status()
    except httpx.HTTPError as error:
        raise ServerUnavailable(
            f"{name} at {health_url} is not reachable ({error}); {hint}"
        ) from None


def connect() -> MlflowClient:
    """The client for a flow run, after checking that a tracking server, if one is set, is up."""
    tracking = client()
    if tracking.tracking_uri.startswith("http"):
        require_server(
            "MLflow tracking server",
            f"{tracking.tracking_uri.rstrip('/')}/health",
            "start the stack with `make up`, or unset MLFLOW_TRACKING_URI for a local store",
        )
    return tracking


def experiment_id(tracking: MlflowClient) -> str:
    """The `glasses` experiment; a local store keeps its artifacts beside its database."""
    experiment = tracking.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if tracking.tracking_uri.startswith("sqlite:"):
        location = (LOCAL_STORE / "artifacts").resolve().as_uri()
    return tracking.create_experiment(EXPERIMENT, artifact_location=location)


def start_run(
    tracking: MlflowClient, experiment: str, name: str, parent: str | None, tags: dict[str, str]
) -> str:
    run_tags = {MLFLOW_RUN_NAME: name, **tags}
    if parent is not None:
        run_tags[MLFLOW_PARENT_RUN_ID] = parent
    return tracking.create_run(experiment, run_name=name, tags=run_tags).info.run_id


@contextmanager
def child_run(tracking: MlflowClient, experiment: str, name: str, parent: str) -> Iterator[str]:
    """A nested run for one stage, FINISHED when the stage ends and FAILED when it raises."""
    run_id = start_run(tracking, experiment, name, parent, {"stage": name})
    try:
        yield run_id
    except BaseException:
        tracking.set_terminated(run_id, "FAILED")
        raise
    tracking.set_terminated(run_id, "FINISHED")


def log_metrics(
    tracking: MlflowClient, run_id: str, values: dict[str, float], step: int = 0
) -> None:
    timestamp = int(pd.Timestamp.now().timestamp() * 1000)
    metrics = [Metric(key, float(value), timestamp, step) for key, value in values.items()]
    tracking.log_batch(run_id, metrics=metrics)


def log_params(tracking: MlflowClient, run_id: str, params: dict[str, str]) -> None:
    """Batches of 100, MLflow's limit per call."""
    items = [Param(key, value) for key, value in params.items()]
    for start in range(0, len(items), 100):
        tracking.log_batch(run_id, params=items[start : start + 100])


def log_figure(tracking: MlflowClient, run_id: str, figure: Figure, path: str) -> None:
    tracking.log_figure(run_id, figure, path, save_kwargs={"dpi": 110})
    plt.close(figure)


def log_table(tracking: MlflowClient, run_id: str, table: pd.DataFrame, path: str) -> None:
    tracking.log_text(run_id, table.to_csv(float_format="%.4f"), path)


def log_file(tracking: MlflowClient, run_id: str, content: bytes | str, path: str) -> None:
    """Artifacts that exist only in memory, written to a temporary file first."""
    folder, name = os.path.split(path)
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / name
        target.write_bytes(content.encode() if isinstance(content, str) else content)
        tracking.log_artifact(run_id, str(target), folder or None)


def log_dataset(
    tracking: MlflowClient, run_id: str, manifest: pd.DataFrame, source: str, name: str
) -> None:
    dataset = mlflow.data.from_pandas(manifest, source=source, name=name, targets="label")
    entity = dataset._to_mlflow_entity()
    tracking.log_inputs(
        run_id, [DatasetInput(entity, tags=[InputTag("mlflow.data.context", "training")])]
    )


def git_commit() -> str:
    """The commit of the code that runs, so a run can be traced to its source."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def run_url(tracking: MlflowClient, experiment: str, run_id: str) -> str:
    """Link to the run in the MLflow UI, or its store when there is no server."""
    uri = tracking.tracking_uri
    if uri.startswith("http"):
        return f"{uri.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}"
    return f"{uri} (experiment {experiment}, run {run_id})"


@contextmanager
def stage_timer(tracking: MlflowClient, run_id: str, name: str) -> Iterator[None]:
    """Log a stage's wall time as `stage_<name>_seconds`, the baseline later work is measured by,
    and the process's peak resident memory during it as `stage_<name>_peak_rss_mb`."""
    reset_peak()
    started = time.perf_counter()
    yield
    log_metrics(
        tracking,
        run_id,
        {
            f"stage_{name}_seconds": time.perf_counter() - started,
            f"stage_{name}_peak_rss_mb": peak_rss_mb(),
        },
    )
