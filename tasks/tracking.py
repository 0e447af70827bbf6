"""MLflow plumbing shared by the tasks: where to log, the run tree, and artifact helpers."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunStatus
from mlflow.utils.mlflow_tags import (
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_RUN_NAME,
    MLFLOW_SOURCE_NAME,
    MLFLOW_SOURCE_TYPE,
    MLFLOW_USER,
)
from sqlalchemy.engine import make_url

import mlflow
from glasses.liveness import Owner, abandoned_because, this_process
from glasses.locking import file_lock
from glasses.memory import peak_rss_mb, reset_peak
from mlflow import MlflowClient

DEFAULT_EXPERIMENT = "glasses"
LOCAL_STORE = Path(".glasses")
# Opens the experiment on the runs table instead of MLflow 3's GenAI overview.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
# Bounded MLflow HTTP calls: a refused connection fails after ~10 s (3 retries, 1-2-4 s backoff),
# a server that hangs after ~2 min, instead of MLflow's default 7 retries of up to 120 s each.
MLFLOW_SETTINGS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
# Creating a new store takes seconds; the limit only guards against a holder that hangs.
STORE_CREATION_SECONDS = 600
OWNER_TAGS = ("glasses.host", "glasses.pid", "glasses.process_started")
ENDED_BY = "glasses.ended_by"
DASK_WORKER = "glasses.dask_worker"


def experiment_name() -> str:
    """`MLFLOW_EXPERIMENT_NAME`, as every MLflow client honours it; else `glasses`."""
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` when set, as every MLflow client does; else a local SQLite store."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{(LOCAL_STORE / 'mlflow.db').resolve()}"


def configure_tracking() -> str:
    """The one place that sets MLflow's process-wide state; flows and the CLI call it first.

    Bounded HTTP retries and timeouts, no progress bars (values already in the environment
    win); the global tracking URI that MLflow's fluent API (`log_model`) uses, which the
    registry URI follows; a SQLite store's folder. Returns the tracking URI.
    """
    for name, value in MLFLOW_SETTINGS.items():
        os.environ.setdefault(name, value)
    uri = tracking_uri()
    database = sqlite_file(uri)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
        _create_store(uri, database)
    mlflow.set_tracking_uri(uri)
    return uri


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
    """A client for the current tracking URI (no side effects: see `configure_tracking`)."""
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


def _require_tracking_server(uri: str, hint: str, timeout: float) -> None:
    if uri.startswith("http"):
        require_server("MLflow tracking server", f"{uri.rstrip('/')}/health", hint, timeout)


def connect(health_timeout: float) -> MlflowClient:
    """Configure tracking and check that a tracking server, if one is set, is up."""
    uri = configure_tracking()
    _require_tracking_server(
        uri,
        "start the stack with `make up`, or unset MLFLOW_TRACKING_URI for a local store",
        health_timeout,
    )
    return client()


def experiment_id(tracking: MlflowClient) -> str:
    """The experiment (`experiment_name()`); a SQLite store keeps its artifacts beside its
    database (`artifact_folder`). Marked as model training, so MLflow's UI opens it on the runs
    table."""
    name = experiment_name()
    experiment = tracking.get_experiment_by_name(name)
    if experiment is not None:
        if not EXPERIMENT_KIND.items() <= experiment.tags.items():
            for key, value in EXPERIMENT_KIND.items():
                tracking.set_experiment_tag(experiment.experiment_id, key, value)
        return experiment.experiment_id
    folder = artifact_folder(tracking.tracking_uri)
    location = folder.as_uri() if folder is not None else None
    return tracking.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)


def _source_tags() -> dict[str, str]:
    """Who ran what, as MLflow's UI shows it, and the process that owns the run (for
    `end_abandoned_runs`)."""
    owner = this_process()
    tags = {
        MLFLOW_SOURCE_NAME: Path(sys.argv[0]).name or "python",
        MLFLOW_SOURCE_TYPE: "JOB",
        MLFLOW_USER: getpass.getuser(),
        OWNER_TAGS[0]: owner.host,
        OWNER_TAGS[1]: str(owner.pid),
        OWNER_TAGS[2]: owner.started,
    }
    worker = _dask_worker()
    if worker:
        tags[DASK_WORKER] = worker
    return tags


def _dask_worker() -> str | None:
    """The Dask worker this task runs on, if any: which machine trained a fold, in the UI."""
    if "distributed" not in sys.modules:
        return None
    from distributed import get_worker

    try:
        return get_worker().address
    except ValueError:
        return None


def start_run(
    tracking: MlflowClient, experiment: str, name: str, parent: str | None, tags: dict[str, str]
) -> str:
    run_tags = {MLFLOW_RUN_NAME: name, **_source_tags(), **tags}
    if parent is not None:
        run_tags[MLFLOW_PARENT_RUN_ID] = parent
    return tracking.create_run(experiment, run_name=name, tags=run_tags).info.run_id


def _owner(tags: dict[str, str]) -> Owner | None:
    host, pid, started = (tags.get(key) for key in OWNER_TAGS)
    if not host or not pid or not pid.isdigit():
        return None
    return Owner(host, int(pid), started or "")


def end_abandoned_runs(tracking: MlflowClient, experiment: str, limit_hours: float) -> list[str]:
    """Mark KILLED, with a `glasses.ended_by` tag saying why, every RUNNING run whose process is
    gone (same host), that is older than `limit_hours` (another host) or whose parent run has
    ended (`glasses.liveness.abandoned_because`); returns their ids."""
    now = time.time() * 1000
    ended = []
    running = tracking.search_runs(
        [experiment], filter_string="attributes.status = 'RUNNING'", max_results=1000
    )
    still = {run.info.run_id for run in running}
    for run in running:
        age_hours = (now - run.info.start_time) / 3_600_000
        parent = run.data.tags.get(MLFLOW_PARENT_RUN_ID)
        parent_ended = None
        if parent and parent not in still:
            parent_ended = tracking.get_run(parent).info.status
        reason = abandoned_because(_owner(run.data.tags), age_hours, limit_hours, parent_ended)
        if reason is None:
            continue
        tracking.set_tag(run.info.run_id, ENDED_BY, f"marked KILLED on a later start: {reason}")
        tracking.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
        ended.append(run.info.run_id)
    return ended


@contextmanager
def run_outcome(tracking: MlflowClient, run_id: str) -> Iterator[None]:
    """FINISHED when the block ends, FAILED when it raises.

    When the tracking server stopped answering, the error names it instead of an MLflow
    traceback, and marking the run FAILED is left to `end_abandoned_runs` of the next start.
    """
    try:
        yield
    except BaseException as error:
        hint = "restart it (`make up`) and run again; this run is marked KILLED on the next start"
        try:  # as long as MLflow's own calls may wait (`MLFLOW_SETTINGS`)
            limit = "MLFLOW_HTTP_REQUEST_TIMEOUT"
            timeout = float(os.environ.get(limit, MLFLOW_SETTINGS[limit]))
            _require_tracking_server(tracking.tracking_uri, hint, timeout)
        except ServerUnavailable as down:
            raise ServerUnavailable(f"during the run: {down}") from error
        tracking.set_terminated(run_id, "FAILED")
        raise
    tracking.set_terminated(run_id, "FINISHED")


@contextmanager
def child_run(tracking: MlflowClient, experiment: str, name: str, parent: str) -> Iterator[str]:
    """A nested run for one stage, FINISHED when the stage ends and FAILED when it raises."""
    run_id = start_run(tracking, experiment, name, parent, {"stage": name})
    with run_outcome(tracking, run_id):
        yield run_id


def log_metrics(
    tracking: MlflowClient,
    run_id: str,
    values: dict[str, float],
    step: int = 0,
    model_id: str | None = None,
) -> None:
    """`model_id` links the metrics to a logged model (MLflow 3), shown on the model's page."""
    timestamp = int(pd.Timestamp.now().timestamp() * 1000)
    metrics = [
        Metric(key, float(value), timestamp, step, model_id=model_id)
        for key, value in values.items()
    ]
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
