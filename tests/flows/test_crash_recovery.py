"""A `glasses run` killed with SIGKILL leaves no server behind, and its RUNNING runs are ended
by the next start; a run whose owner is alive is left alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from glasses.config import resolve_config
from glasses.liveness import Owner, abandoned_because, this_process
from mlflow import MlflowClient
from tasks.resume import REUSED
from tasks.runs import ENDED_BY, FORMER_OWNER_TAGS, OWNER_TAGS, end_abandoned_runs
from tasks.tracking import client, experiment_id

BIN = Path(sys.executable).parent


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_liveness_decisions() -> None:
    me = this_process()
    assert abandoned_because(me, 100.0, 24) is None  # alive, however old
    gone = Owner(me.host, dead_pid(), "")
    assert "is gone" in abandoned_because(gone, 0.0, 24)
    recycled = Owner(me.host, me.pid, "1")  # this pid, another process's start time
    assert "is gone" in abandoned_because(recycled, 0.0, 24)
    elsewhere = Owner("another-host", 1, "")
    assert abandoned_because(elsewhere, 1.0, 24) is None
    assert "another-host" in abandoned_because(elsewhere, 25.0, 24)
    assert "unknown process" in abandoned_because(None, 25.0, 24)


@pytest.mark.parametrize("names", [OWNER_TAGS, FORMER_OWNER_TAGS], ids=["tags", "former tags"])
def test_end_abandoned_runs_ends_only_orphans(mlflow_local, names) -> None:
    """Runs tagged by this version, and by one before the tags moved under `glasses.owner.`."""
    tracking = client()
    experiment = experiment_id(tracking)
    me = this_process()
    orphan = tracking.create_run(
        experiment, tags={names[0]: me.host, names[1]: str(dead_pid())}
    ).info.run_id
    alive = tracking.create_run(
        experiment, tags={names[0]: me.host, names[1]: str(me.pid)}
    ).info.run_id
    assert end_abandoned_runs(tracking, experiment, 24) == [orphan]
    ended = tracking.get_run(orphan)
    assert ended.info.status == "KILLED"
    assert "is gone" in ended.data.tags[ENDED_BY]
    assert tracking.get_run(alive).info.status == "RUNNING"


def test_a_run_under_an_ended_parent_is_ended_whatever_its_host(mlflow_local) -> None:
    """A fold run of a Dask worker that died: another host, young, but its flow is over."""
    tracking = client()
    experiment = experiment_id(tracking)
    elsewhere = {OWNER_TAGS[0]: "dask-worker-1", OWNER_TAGS[1]: "7"}
    parent = tracking.create_run(experiment).info.run_id
    lost = tracking.create_run(experiment, tags={**elsewhere, MLFLOW_PARENT_RUN_ID: parent})
    waiting_parent = tracking.create_run(experiment, tags=elsewhere).info.run_id
    waiting = tracking.create_run(
        experiment, tags={**elsewhere, MLFLOW_PARENT_RUN_ID: waiting_parent}
    )
    tracking.set_terminated(parent, "FINISHED")
    assert end_abandoned_runs(tracking, experiment, 24) == [lost.info.run_id]
    ended = tracking.get_run(lost.info.run_id).data.tags[ENDED_BY]
    assert "parent run ended (FINISHED)" in ended and "dask-worker-1" in ended
    assert tracking.get_run(waiting.info.run_id).info.status == "RUNNING"


def children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def gone(pid: int) -> bool:
    """Exited: no process, or a zombie that nobody reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def running_folds(tracking: MlflowClient) -> list:
    experiment = tracking.get_experiment_by_name("glasses")
    if experiment is None:
        return []
    runs = tracking.search_runs(
        [experiment.experiment_id], filter_string="attributes.status = 'RUNNING'"
    )
    return [r for r in runs if "-fold-" in r.data.tags.get("mlflow.runName", "")]


@pytest.mark.timeout(300)
def test_kill_9_during_cross_validation(csv_data, mlflow_local, prefect_home, tmp_path) -> None:
    env = {**os.environ, "PREFECT_HOME": str(prefect_home)}
    env.pop("PREFECT_API_URL", None)
    command = [
        BIN / "glasses", "run", "--profile", "tiny", "--data", str(csv_data.csv),
        "--set", "cnn.optimiser.steps=100000", "--set", "scatnet.optimiser.steps=100000",
        "--set", "cnn.optimiser.patience=0", "--set", "scatnet.optimiser.patience=0",
    ]  # fmt: skip
    glasses = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL)
    tracking = client()  # of the store `mlflow_local` created before `glasses run` started
    try:
        deadline = time.monotonic() + 240
        while not running_folds(tracking):
            assert glasses.poll() is None, "glasses run ended before cross-validation"
            assert time.monotonic() < deadline, "no fold started in 240 s"
            time.sleep(1)
        servers = children(glasses.pid)
        assert servers, "no temporary Prefect server under glasses run"
        os.kill(glasses.pid, signal.SIGKILL)
        glasses.wait()
        killed = time.monotonic()
        while not all(gone(pid) for pid in servers):
            assert time.monotonic() - killed < 15, "the temporary Prefect server outlived glasses"
            time.sleep(0.2)
    finally:
        if glasses.poll() is None:
            glasses.kill()
    left = {r.info.run_id for r in tracking.search_runs(
        [tracking.get_experiment_by_name("glasses").experiment_id],
        filter_string="attributes.status = 'RUNNING'",
    )}  # fmt: skip
    assert len(left) >= 2  # the parent run, the family runs and the folds in flight
    experiment = tracking.get_experiment_by_name("glasses").experiment_id
    assert set(end_abandoned_runs(client(), experiment, 24)) == left
    for run_id in left:
        run = tracking.get_run(run_id)
        assert run.info.status == "KILLED"
        assert f"process {glasses.pid}" in run.data.tags[ENDED_BY]


@pytest.mark.timeout(420)
def test_kill_9_during_the_sweep_then_the_same_command_resumes(
    csv_data, mlflow_local, prefect_home, tmp_path
) -> None:
    """The re-run reuses the folds and refits the killed run finished (from the result store
    in the cache folder) instead of training them again, and leaves no run RUNNING."""
    env = {**os.environ, "PREFECT_HOME": str(prefect_home)}
    env.pop("PREFECT_API_URL", None)
    results = tmp_path / "cache" / "results"
    command = [
        BIN / "glasses", "run", "--profile", "tiny", "--data", str(csv_data.csv),
        "--set", "xai.enabled=false", "--set", "sweep.repeats=4", "--set", "sweep.sizes=[12, 10]",
    ]  # fmt: skip
    comparison = 2 * resolve_config("tiny").split.folds  # the outer splits' points come first
    killed = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while len(list(results.glob("outer-point-*.npz"))) <= comparison:
            assert killed.poll() is None, "glasses run ended before the sweep"
            assert time.monotonic() < deadline, "no sweep point finished in 300 s"
            time.sleep(0.5)
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
    finally:
        if killed.poll() is None:
            killed.kill()
    trained = {p.name: p.stat().st_mtime_ns for p in results.glob("[fr]*-*.npz")}
    folds = 2 * resolve_config("tiny").split.folds
    assert sum(name.startswith("fold-") for name in trained) == folds
    assert sum(name.startswith("refit-") for name in trained) == 2

    again = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert {p.name: p.stat().st_mtime_ns for p in results.glob("[fr]*-*.npz")} == trained
    tracking = MlflowClient(mlflow_local)
    experiment = tracking.get_experiment_by_name("glasses").experiment_id
    runs = tracking.search_runs([experiment])
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    (finished,) = [
        r for r in runs if r.info.status == "FINISHED" and "mlflow.parentRunId" not in r.data.tags
    ]
    mine = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == finished.info.run_id]
    families = [r for r in mine if r.info.run_name in ("cnn", "scatnet")]
    assert len(families) == 2 and all(REUSED in r.data.tags for r in families)  # the refits
    family_ids = {r.info.run_id for r in families}
    reused = [r for r in runs if r.data.tags.get("mlflow.parentRunId") in family_ids]
    assert len(reused) == folds and all(REUSED in r.data.tags for r in reused)
