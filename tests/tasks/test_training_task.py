"""The training tasks: a nested MLflow run per fold with per-check metrics and honest fold scores,
and the refit on the whole training split."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

import tasks.training as training_task
from glasses.data.splits import make_split
from glasses.scattering import compute_coefficients
from mlflow import MlflowClient
from tasks.tracking import client, experiment_id, start_run
from tasks.training import FoldResult, train_final, train_fold


@pytest.fixture
def fold_inputs(image_arrays, tiny_config):
    pixels, labels = image_arrays(per_class=12)
    rows = [
        {"label": int(label), "group": f"p{i // 2}", "sha256": f"h{i}"}
        for i, label in enumerate(labels)
    ]
    manifest = pd.DataFrame(rows)
    split = make_split(manifest, tiny_config.split.test_size, tiny_config.split.folds, 0)
    return pixels, torch.from_numpy(labels), manifest, split


def family_run(family: str) -> tuple[str, str]:
    tracking = client()
    experiment = experiment_id(tracking)
    parent = start_run(tracking, experiment, "glasses-test", None, {"profile": "tiny"})
    return experiment, start_run(tracking, experiment, family, parent, {"family": family})


@pytest.mark.parametrize("family", ["cnn", "scatnet"])
def test_fold_task_logs_a_nested_run_with_check_metrics(
    mlflow_local, fold_inputs, tiny_config, family
) -> None:
    pixels, labels, manifest, split = fold_inputs
    if family == "cnn":
        inputs = torch.from_numpy(pixels)
    else:
        inputs = compute_coefficients(pixels, tiny_config.scatnet.J, tiny_config.scatnet.L)
    experiment, family_run_id = family_run(family)

    result = train_fold.fn(
        family, 1, tiny_config, inputs, labels, manifest, split, experiment, family_run_id
    )

    assert isinstance(result, FoldResult)
    assert result.fold == 1
    tracking = MlflowClient()
    run = tracking.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == experiment
    assert run.data.tags[MLFLOW_PARENT_RUN_ID] == family_run_id
    assert run.data.tags["mlflow.runName"] == f"{family}-fold-2"
    assert (run.data.tags["family"], run.data.tags["fold"]) == (family, "2")

    checks = result.outcome.history["step"].tolist()
    history = tracking.get_metric_history(result.run_id, "val_loss")  # the inner split's
    assert sorted(m.step for m in history) == checks
    expected = result.outcome.history.set_index("step")["val_loss"]
    assert {m.step: m.value for m in history} == pytest.approx(expected.to_dict())
    for name in ("train_loss", "train_accuracy", "val_accuracy", "val_balanced_accuracy"):
        assert len(tracking.get_metric_history(result.run_id, name)) == len(checks)

    # The fold's own validation rows are scored once, after training, at the kept state.
    metrics = run.data.metrics
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "f1", "loss"):
        assert metrics[f"fold_val_{key}"] == pytest.approx(result.outcome.validation[key])
    assert metrics["steps"] == result.outcome.steps
    assert metrics["early_stopped"] == float(result.outcome.early_stopped)
    assert metrics["final_train_accuracy"] == pytest.approx(
        result.outcome.final["final_train_accuracy"]
    )
    assert "history.csv" in {a.path for a in tracking.list_artifacts(result.run_id)}


def test_final_model_is_trained_on_every_training_image(
    mlflow_local, fold_inputs, tiny_config
) -> None:
    pixels, labels, manifest, split = fold_inputs
    _, family_run_id = family_run("cnn")
    rows = np.flatnonzero(~split.test)
    fitted = train_final.fn(
        "cnn", tiny_config, torch.from_numpy(pixels), labels, manifest, rows, 5, family_run_id
    )
    assert fitted.images == len(rows) and fitted.trained.steps == 5
    assert not fitted.model.training
    metrics = MlflowClient().get_run(family_run_id).data.metrics
    assert (metrics["steps"], metrics["train_images"]) == (5, len(rows))
    assert metrics["final_train_accuracy"] == pytest.approx(fitted.final["final_train_accuracy"])


def test_fold_task_marks_its_run_failed(
    mlflow_local, fold_inputs, tiny_config, monkeypatch
) -> None:
    pixels, labels, manifest, split = fold_inputs
    experiment, family_run_id = family_run("cnn")

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(training_task, "run_fold", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        train_fold.fn(
            "cnn",
            0,
            tiny_config,
            torch.from_numpy(pixels),
            labels,
            manifest,
            split,
            experiment,
            family_run_id,
        )
    tracking = MlflowClient()
    (child,) = tracking.search_runs(
        [experiment], filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{family_run_id}'"
    )
    assert child.info.status == "FAILED"
    assert child.info.run_name == "cnn-fold-1"


def test_local_store_is_under_the_working_directory(mlflow_local) -> None:
    """With a SQLite URI the experiment keeps its artifacts in ./.glasses, not in the repo."""
    tracking = client()
    experiment = tracking.get_experiment(experiment_id(tracking))
    assert experiment.name == "glasses"
    assert experiment.artifact_location == (Path.cwd() / ".glasses" / "artifacts").as_uri()
    assert tracking.tracking_uri == mlflow_local


def test_fold_task_logs_one_progress_line_per_check(
    mlflow_local, fold_inputs, tiny_config, caplog
) -> None:
    pixels, labels, manifest, split = fold_inputs
    experiment, family_run_id = family_run("cnn")
    with caplog.at_level(logging.INFO, logger="glasses"):
        result = train_fold.fn(
            "cnn", 0, tiny_config, torch.from_numpy(pixels), labels, manifest, split, experiment,
            family_run_id,
        )  # fmt: skip
    budget = tiny_config.cnn.optimiser.steps
    lines = [r.getMessage() for r in caplog.records if " step " in r.getMessage()]
    steps = result.outcome.history["step"].tolist()
    assert len(lines) == len(steps)
    for step, line in zip(steps, lines, strict=True):
        assert line.startswith(f"cnn fold 1 step {step}/{budget}: loss ")
        assert "inner val accuracy" in line and "elapsed" in line and "ETA" in line
