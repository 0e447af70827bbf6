"""Every stage logs its wall time and its peak resident memory."""

from __future__ import annotations

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
