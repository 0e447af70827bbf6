"""The whole flow in-process on real faces (Olivetti), with the tiny profile."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from flows.full import glasses

OLIVETTI = Path(__file__).resolve().parents[2].parent / "shared/data/olivetti_glasses/labels.csv"


@pytest.fixture
def local_tracking(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("GLASSES_CACHE_DIR", str(tmp_path / "cache"))
    return MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")


@pytest.mark.skipif(not OLIVETTI.exists(), reason="../shared/data is not beside the project")
def test_olivetti_runs_and_keeps_people_on_one_side(local_tracking, tmp_path):
    before = sorted((p.name, p.stat().st_mtime_ns) for p in OLIVETTI.parent.rglob("*"))
    result = glasses(data=str(OLIVETTI), profile="tiny", overrides={"data": {"max_images": 200}})

    run = local_tracking.get_run(result["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["data_fingerprint"]
    folds = pd.read_csv(local_tracking.download_artifacts(run.info.run_id, "data/folds.csv", str(tmp_path)))
    sides = folds.groupby("group")["split"].nunique()
    assert (sides == 1).all(), f"people on both sides: {list(sides[sides > 1].index)}"
    train = folds[folds["split"] == "train"]
    assert (train.groupby("group")["fold"].nunique() == 1).all()
    assert 0.5 <= result["cnn_test_accuracy"] <= 1.0
    assert sorted((p.name, p.stat().st_mtime_ns) for p in OLIVETTI.parent.rglob("*")) == before
