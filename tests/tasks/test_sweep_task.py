"""The sweep's summary when no size could be swept: a line that says why, not a crash."""

from __future__ import annotations

import numpy as np

from glasses.config import resolve_config
from glasses.statistics import OuterDesign
from mlflow import MlflowClient
from tasks.sweep import summarise_sweep


def test_a_sweep_without_sizes_says_why(mlflow_local) -> None:
    tracking = MlflowClient()
    run_id = tracking.create_run(tracking.create_experiment("sweep")).info.run_id
    design = OuterDesign((np.arange(4),), np.array([0, 1, 0, 1]), np.arange(4))
    dropped = ["size 36 dropped: larger than the smallest outer training part (16 images)"]
    line = summarise_sweep.fn([], design, dropped, resolve_config("tiny"), run_id)
    assert line == f"no sweep: {dropped[0]}"
    tags = tracking.get_run(run_id).data.tags
    assert tags["sweep_verdict"] == line and tags["sweep_verdict_class"] == "none"
