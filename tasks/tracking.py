"""The MLflow connection: which store and experiment, its creation, and whether a server
answers. Runs are `tasks.runs`'s; what a task logs, `tasks.log`'s."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from glasses.entrypoint import use_tracking_uri
from glasses.locking import file_lock
from mlflow import MlflowClient

DEFAULT_EXPERIMENT = "glasses"
LOCAL_STORE = Path(".glasses")
# Marks the experiment as model training, for the MLflow UIs that choose an experiment's view
# from this tag. MLflow 3.17's does not: it follows the browser's GenAI / Model training switch
# (stored per browser, GenAI by default) unless the address names the view, as `ui_url` does.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
MODEL_TRAINING_VIEW = "workflowType=machine_learning"
# MLflow 3.17's runs table keeps its columns per browser (Source, Models, Dataset at first); an
# address naming a "shared view" (what its Share button makes) loads them from the experiment
# tag `mlflow.sharedViewState.<key>` instead, so `experiment_id` writes one and `ui_url` names it.
RUNS_VIEW = "glasses-headline"
RUNS_VIEW_TAG = f"mlflow.sharedViewState.{RUNS_VIEW}"
# The UI's own column ids; the metric columns go after these, before the rest.
FIRST_COLUMNS = ("attributes.`Run Name`", "runDateAndNestInfo")
DEFAULT_COLUMNS = ("attributes.`Source`", "attributes.`Models`", "attributes.`Dataset`")
METRIC_COLUMN_PX = 230  # wide enough for `scatnet_test_balanced_accuracy`
# Creating a new store takes seconds; the limit only guards against a holder that hangs.
STORE_CREATION_SECONDS = 600


def experiment_name() -> str:
    """`MLFLOW_EXPERIMENT_NAME`, as every MLflow client honours it; else `glasses`."""
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` when set, as every MLflow client does; else a local SQLite store."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{(LOCAL_STORE / 'mlflow.db').resolve()}"


def _create_store(uri: str, database: Path) -> None:
    """Create or upgrade a SQLite store's tables, one process at a time.

    MLflow creates them on a store's first use; several first runs at once would run its
    migrations together and leave a database that no later command opens. Under the lock this
    process makes both stores (tracking, registry), which MLflow then keeps for the process.
    """
    with file_lock(database.with_name(f"{database.name}.lock"), STORE_CREATION_SECONDS):
        tracking = MlflowClient(tracking_uri=uri, registry_uri=uri)
        tracking.search_experiments(max_results=1)
        tracking.search_registered_models(max_results=1)


def sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:` tracking URI, as SQLAlchemy (MLflow's store) parses it:
    `sqlite:///runs.db` is relative to the working folder, `sqlite:////srv/runs.db` absolute.
    None for any other store, and for an in-memory one."""
    if not uri.startswith("sqlite:"):
        return None
    database = make_url(uri).database
    return Path(database) if database and database != ":memory:" else None


def artifact_folder(uri: str) -> Path | None:
    """Where a SQLite store's new experiments keep their artifacts: beside the database, named
    after it (`.glasses/mlflow.db` -> `.glasses/mlflow-artifacts`), so that two stores, in one
    folder or not, never share one; an experiment keeps the location it was made with. None
    where MLflow decides (a server, no file)."""
    database = sqlite_file(uri)
    if database is None:
        return None
    return database.resolve().with_name(f"{database.stem}-artifacts")


def client() -> MlflowClient:
    """A client for the current tracking URI (no side effects: see `open_store`)."""
    uri = tracking_uri()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


class ServerUnavailable(RuntimeError):
    """A configured server does not answer; raised before any work starts."""


def require_server(name: str, health_url: str, hint: str, timeout: float) -> None:
    """Fail in seconds with the address, instead of after MLflow's or Prefect's long retries: a
    stopped server refuses at once; `timeout` bounds one that is slow or hangs."""
    try:
        httpx.get(health_url, timeout=timeout).raise_for_status()
    except httpx.HTTPError as error:
        raise ServerUnavailable(
            f"{name} at {health_url} is not reachable ({error}); {hint}"
        ) from None


def require_tracking_server(uri: str, hint: str, timeout: float) -> None:
    if uri.startswith("http"):
        require_server("MLflow tracking server", f"{uri.rstrip('/')}/health", hint, timeout)


def open_store() -> str:
    """The store of `tracking_uri`, created or upgraded if it is a SQLite file, and named as the
    process's store (`glasses.entrypoint.use_tracking_uri`). Returns its URI."""
    uri = tracking_uri()
    database = sqlite_file(uri)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
        _create_store(uri, database)
    use_tracking_uri(uri)
    return uri


def connect(health_timeout: float) -> MlflowClient:
    """Open the store and check that a tracking server, if one is set, is up."""
    uri = open_store()
    require_tracking_server(
        uri,
        "start the stack with `make up`, or unset MLFLOW_TRACKING_URI for a local store",
        health_timeout,
    )
    return client()


def runs_view(metrics: Sequence[str]) -> str:
    """The runs table's view state that `ui_url` opens: MLflow's default columns plus `metrics`,
    placed right after the run's name and creation time and wide enough to read."""
    columns = [f"metrics.`{metric}`" for metric in metrics]
    return json.dumps(
        {
            "selectedColumns": [*DEFAULT_COLUMNS, *columns],
            "columnOrder": [*FIRST_COLUMNS, *columns],
            "columnWidths": dict.fromkeys(columns, METRIC_COLUMN_PX),
        }
    )


def experiment_id(
    tracking: MlflowClient, name: str | None = None, columns: Sequence[str] = ()
) -> str:
    """The experiment `name` (else `experiment_name()`), made if missing; a SQLite store keeps
    its artifacts beside its database (`artifact_folder`). Marked as model training, so MLflow's
    UI opens it on the runs table, whose link (`ui_url`) shows the metrics `columns` (the flows
    give the headline; a caller without `columns` leaves the stored view alone)."""
    name = name or experiment_name()
    view = {RUNS_VIEW_TAG: runs_view(columns)} if columns else {}  # none: left as it is
    tags = {**EXPERIMENT_KIND, **view}
    experiment = tracking.get_experiment_by_name(name)
    if experiment is not None:
        for key, value in tags.items():
            if experiment.tags.get(key) != value:
                tracking.set_experiment_tag(experiment.experiment_id, key, value)
        return experiment.experiment_id
    folder = artifact_folder(tracking.tracking_uri)
    location = folder.as_uri() if folder is not None else None
    return tracking.create_experiment(name, artifact_location=location, tags=tags)


def ui_url(tracking: MlflowClient, experiment: str, run_id: str | None = None) -> str:
    """Link to the run (else the experiment's runs table, in the view `experiment_id` stored) in
    the MLflow UI's model-training view, or its store when there is no server."""
    uri = tracking.tracking_uri
    if uri.startswith("http"):
        if run_id:
            page, query = f"runs/{run_id}", MODEL_TRAINING_VIEW
        else:
            page, query = "runs", f"{MODEL_TRAINING_VIEW}&viewStateShareKey={RUNS_VIEW}"
        return f"{uri.rstrip('/')}/#/experiments/{experiment}/{page}?{query}"
    if run_id is None:
        return f"{uri} (experiment {experiment})"
    return f"{uri} (experiment {experiment}, run {run_id})"
