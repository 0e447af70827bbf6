"""Servers that are down are reported in seconds, with their address; MLflow conventions."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.exceptions import MlflowException

import mlflow
from glasses.entrypoint import PROCESS_DEFAULTS, prepare_process
from mlflow import MlflowClient
from tasks.runs import run_outcome, start_run
from tasks.tracking import (
    RUNS_VIEW_TAG,
    ServerUnavailable,
    artifact_folder,
    client,
    connect,
    experiment_id,
    open_store,
    tracking_uri,
    ui_url,
)


def test_mlflow_server_down_is_named_before_any_work(monkeypatch, closed_port):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{closed_port}")
    with pytest.raises(ServerUnavailable, match=f"127.0.0.1:{closed_port}.*make up"):
        connect(health_timeout=5)


def test_client_changes_no_global_state(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    before_env, before_uri = dict(os.environ), mlflow.get_tracking_uri()
    tracking = client()
    assert tracking.tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"
    assert dict(os.environ) == before_env
    assert mlflow.get_tracking_uri() == before_uri
    assert not (tmp_path / ".glasses").exists()


def test_mlflow_calls_fail_within_bounded_time(monkeypatch, closed_port):
    """A tracking server that died: after the process set-up, the call fails in seconds, not
    after MLflow's ~4 min."""
    for name in PROCESS_DEFAULTS:
        if name.startswith("MLFLOW_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{closed_port}")
    prepare_process()
    open_store()
    started = time.monotonic()
    with pytest.raises(MlflowException, match="Connection refused|Max retries"):
        client().get_experiment_by_name("glasses")
    assert time.monotonic() - started < 30


def test_a_server_that_died_during_the_run_is_named(closed_port):
    port = closed_port
    tracking = MlflowClient(f"http://127.0.0.1:{port}")
    started = time.monotonic()
    with (
        pytest.raises(ServerUnavailable, match=f"during the run: .*127.0.0.1:{port}.*make up"),
        run_outcome(tracking, "any-run"),
    ):
        raise MlflowException(f"API request to http://127.0.0.1:{port} failed with exception")
    assert time.monotonic() - started < 10  # no attempt to mark the run on a dead server


def test_experiment_and_runs_follow_mlflow_conventions(mlflow_local, monkeypatch):
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "faces")
    tracking = client()
    experiment = experiment_id(tracking)
    created = tracking.get_experiment(experiment)
    assert created.name == "faces"
    assert created.tags["mlflow.experimentKind"] == "custom_model_development"
    # the flow's call names the headline columns: the experiment's stored view follows
    assert experiment_id(tracking, columns=["cnn_test_balanced_accuracy"]) == experiment
    view = json.loads(tracking.get_experiment(experiment).tags[RUNS_VIEW_TAG])
    assert view["selectedColumns"][-1] == "metrics.`cnn_test_balanced_accuracy`"
    assert view["columnOrder"][-1] == "metrics.`cnn_test_balanced_accuracy`"
    experiment_id(tracking)  # `glasses summary`, the re-run, a benchmark: the view stays
    assert json.loads(tracking.get_experiment(experiment).tags[RUNS_VIEW_TAG]) == view
    run_id = start_run(tracking, experiment, "x", None, {})
    tags = tracking.get_run(run_id).data.tags
    assert tags["mlflow.user"] and tags["mlflow.source.name"] != "engine.py"
    assert tags["mlflow.source.name"].startswith(Path(sys.argv[0]).name)  # the command line
    assert tags["mlflow.source.type"] == "JOB"
    assert tags["glasses.owner.pid"] == str(os.getpid())
    assert not {"glasses.pid", "glasses.host", "glasses.process_started"} & tags.keys()
    child = start_run(tracking, experiment, "y", run_id, {})
    assert tracking.get_run(child).data.tags["mlflow.source.name"] == tags["mlflow.source.name"]


def test_ui_links_open_mlflows_model_training_view() -> None:
    """MLflow 3.17's UI opens GenAI pages unless the address names the view: every link does;
    the runs table's also names the columns `experiment_id` stored."""
    served = MlflowClient("http://127.0.0.1:5000")
    assert ui_url(served, "7") == (
        "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning"
        "&viewStateShareKey=glasses-headline"
    )
    assert ui_url(served, "7", "abc") == (
        "http://127.0.0.1:5000/#/experiments/7/runs/abc?workflowType=machine_learning"
    )
    local = SimpleNamespace(tracking_uri="sqlite:///x.db")  # a client would create the file
    assert ui_url(local, "7", "abc") == "sqlite:///x.db (experiment 7, run abc)"
    assert ui_url(local, "7") == "sqlite:///x.db (experiment 7)"


def test_each_sqlite_store_keeps_its_artifacts_beside_its_database(
    tmp_path, monkeypatch, _empty_mlflow_db
):
    """Two stores in two folders, used from a third: each experiment's artifacts go beside its
    own database, and nothing lands in the working folder."""
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    for name in ("a", "b"):
        database = tmp_path / name / "ref.db"
        database.parent.mkdir()
        shutil.copyfile(_empty_mlflow_db, database)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{database}")
        open_store()
        tracking = client()
        experiment = tracking.get_experiment(experiment_id(tracking))
        artifacts = database.resolve().parent / "ref-artifacts"
        assert experiment.artifact_location == artifacts.as_uri()
        run_id = start_run(tracking, experiment.experiment_id, "x", None, {})
        tracking.log_text(run_id, name, "note.txt")
        (note,) = artifacts.rglob("note.txt")
        assert note.read_text() == name
    assert list(here.iterdir()) == []


def test_artifact_folder_is_named_after_the_database(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    here = tmp_path.resolve()
    assert artifact_folder(tracking_uri()) == here / ".glasses" / "mlflow-artifacts"
    assert artifact_folder("sqlite:///stores/ref.db") == here / "stores" / "ref-artifacts"
    assert artifact_folder(f"sqlite:///{here}/x/ref.db?timeout=5") == here / "x" / "ref-artifacts"
    assert artifact_folder("sqlite://") is None
    assert artifact_folder("http://127.0.0.1:5000") is None


def test_open_store_makes_the_database_in_its_own_folder_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///stores/ref.db")
    open_store()
    assert [path.name for path in tmp_path.iterdir()] == ["stores"]
    assert sorted(path.name for path in (tmp_path / "stores").iterdir()) == [
        "ref.db",  # created, tables and all, under the lock beside it
        "ref.db.lock",
    ]
