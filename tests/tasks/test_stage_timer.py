"""Every stage logs its wall time, its peak resident memory and the cores it kept busy."""

from __future__ import annotations

import time

import numpy as np

from mlflow import MlflowClient
from tasks.runs import stage_timer, start_run
from tasks.tracking import client, experiment_id


def test_stage_logs_seconds_and_peak_memory(mlflow_local) -> None:
    tracking = client()
    run_id = start_run(tracking, experiment_id(tracking), "glasses-test", None, {})
    with stage_timer(tracking, run_id, "load", 50):
        block = np.ones(200 * 2**20 // 8)  # 200 MiB, touched inside the stage
    del block
    metrics = MlflowClient().get_run(run_id).data.metrics
    assert metrics["stage_load_seconds"] >= 0
    assert metrics["stage_load_peak_rss_mb"] >= 200


def test_cores_busy_tells_a_computing_stage_from_a_waiting_one(mlflow_local) -> None:
    """One thread spinning keeps about one core busy; a stage that sleeps keeps almost none."""
    tracking = client()
    run_id = start_run(tracking, experiment_id(tracking), "glasses-test", None, {})
    with stage_timer(tracking, run_id, "spin", 50):
        end = time.perf_counter() + 0.5
        while time.perf_counter() < end:
            pass
    with stage_timer(tracking, run_id, "wait", 50):
        time.sleep(0.5)
    metrics = MlflowClient().get_run(run_id).data.metrics
    assert 0.7 <= metrics["stage_spin_cores_busy"] <= 1.2
    assert metrics["stage_wait_cores_busy"] < 0.2
