"""The run tree of a flow: runs with their source and owning process, their outcome, the ones
a crashed process left RUNNING, and stage timings."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlflow.entities import RunStatus
from mlflow.utils.mlflow_tags import (
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_RUN_NAME,
    MLFLOW_SOURCE_NAME,
    MLFLOW_SOURCE_TYPE,
    MLFLOW_USER,
)
from prefect import get_client
from prefect.runtime import deployment

from glasses.entrypoint import PROCESS_DEFAULTS
from glasses.liveness import Owner, abandoned_because, this_process
from glasses.memory import peak_rss_mb, reset_peak
from glasses.progress import duration
from mlflow import MlflowClient
from tasks.log import log_metrics
from tasks.progress import heartbeat, report
from tasks.tracking import ServerUnavailable, require_tracking_server

# The process that owns a run (for `end_abandoned_runs`), under one prefix the UI groups.
OWNER_TAGS = ("glasses.owner.host", "glasses.owner.pid", "glasses.owner.started")
# Their names before issue 22: still read, so a run left RUNNING by an older version ends too.
FORMER_OWNER_TAGS = ("glasses.host", "glasses.pid", "glasses.process_started")
ENDED_BY = "glasses.ended_by"
DASK_WORKER = "glasses.owner.dask_worker"


def source_name() -> str:
    """What started the run, as MLflow's Source column shows it: the Prefect deployment
    (`prefect deployment run glasses/full`), else the command line (`glasses run --profile
    tiny`), not the interpreter's entry file."""
    try:
        if deployment.id:  # named as `prefect deployment run` takes it: the deployment's flow
            with get_client(sync_client=True) as prefect:
                flow_id = prefect.read_deployment(deployment.id).flow_id
                return f"prefect deployment run {prefect.read_flow(flow_id).name}/{deployment.name}"
    except Exception:  # noqa: BLE001, S110 - no API to ask: the command line says enough
        pass
    command = " ".join([Path(sys.argv[0]).name or "python", *sys.argv[1:]])
    return command[:500]


def _source_tags() -> dict[str, str]:
    """Who ran what, as MLflow's UI shows it, and the process that owns the run (for
    `end_abandoned_runs`)."""
    owner = this_process()
    tags = {
        MLFLOW_SOURCE_NAME: source_name(),
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
    """A run named `name` under `parent`, whose source it shares (a task's process may have been
    started by a Dask worker, not by what started the study)."""
    run_tags = {MLFLOW_RUN_NAME: name, **_source_tags(), **tags}
    if parent is not None:
        run_tags[MLFLOW_PARENT_RUN_ID] = parent
        source = tracking.get_run(parent).data.tags.get(MLFLOW_SOURCE_NAME)
        run_tags[MLFLOW_SOURCE_NAME] = source or run_tags[MLFLOW_SOURCE_NAME]
    return tracking.create_run(experiment, run_name=name, tags=run_tags).info.run_id


def _owner(tags: dict[str, str]) -> Owner | None:
    names = OWNER_TAGS if OWNER_TAGS[1] in tags else FORMER_OWNER_TAGS
    host, pid, started = (tags.get(key) for key in names)
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
        try:  # as long as MLflow's own calls may wait
            limit = "MLFLOW_HTTP_REQUEST_TIMEOUT"
            timeout = float(os.environ.get(limit, PROCESS_DEFAULTS[limit]))
            require_tracking_server(tracking.tracking_uri, hint, timeout)
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


@contextmanager
def stage_timer(
    tracking: MlflowClient, run_id: str, name: str, heartbeat_seconds: float
) -> Iterator[None]:
    """Log a stage's wall time as `stage_<name>_seconds`, the baseline later work is measured by,
    the process's peak resident memory during it as `stage_<name>_peak_rss_mb`, and the cores
    it kept busy on average as `stage_<name>_cores_busy` (this process's CPU time over the wall
    time: below the cores a stage's tasks were given, cores waited; tasks in Dask workers are
    not counted); its start and end as progress lines, and a heartbeat while it runs
    (`tasks.progress`)."""
    reset_peak()
    started, cpu_started = time.perf_counter(), time.process_time()
    report(f"stage {name}: started")
    try:
        with heartbeat(f"stage {name}", heartbeat_seconds):
            yield
    except BaseException:
        report(f"stage {name}: failed after {duration(time.perf_counter() - started)}")
        raise
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    report(f"stage {name}: finished in {duration(seconds)}")
    log_metrics(
        tracking,
        run_id,
        {
            f"stage_{name}_seconds": seconds,
            f"stage_{name}_peak_rss_mb": peak_rss_mb(),
            f"stage_{name}_cores_busy": cpu_seconds / seconds,
        },
    )
