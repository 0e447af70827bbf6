"""The training tasks: a nested MLflow run per fold with per-check metrics and honest fold scores,
and the refit on the whole training split."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

import tasks.training as training_task
from glasses.cache_files import CacheWarning
from glasses.config import resolve_config
from glasses.data.reference import DataRef, image_set
from glasses.data.splits import Split, make_split
from glasses.inference import weights_digest
from glasses.models.cnn import CNN
from glasses.scattering import cached_coefficients
from mlflow import MlflowClient
from tasks.resume import REUSED
from tasks.runs import start_run
from tasks.tracking import client, experiment_id
from tasks.training import FoldResult, ModelRef, log_family_params, train_final, train_folds


@pytest.fixture
def fold_inputs(image_arrays, tiny_config, references) -> tuple[DataRef, Split]:
    """24 images of 12 people as a task gets them: a reference, with coefficients, and a split."""
    pixels, labels = image_arrays(per_class=12)
    data = references.data(pixels, labels)
    J, L = tiny_config.scatnet.J, tiny_config.scatnet.L
    data = data.with_coefficients(cached_coefficients(pixels, J, L, Path(data.cache_dir)))
    manifest = image_set(data).manifest
    split = make_split(manifest, tiny_config.split.test_size, tiny_config.split.folds, 0)
    return data, split


def family_run(family: str) -> tuple[str, str]:
    tracking = client()
    experiment = experiment_id(tracking)
    parent = start_run(tracking, experiment, "glasses-test", None, {"profile": "tiny"})
    return experiment, start_run(tracking, experiment, family, parent, {"family": family})


@pytest.mark.parametrize("family", ["cnn", "scatnet"])
def test_fold_task_logs_a_nested_run_with_check_metrics(
    mlflow_local, fold_inputs, tiny_config, family
) -> None:
    data, split = fold_inputs
    experiment, family_run_id = family_run(family)

    (result,) = train_folds.fn(family, [1], tiny_config, data, split, experiment, family_run_id)

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
    assert REUSED not in run.data.tags


def test_a_finished_fold_is_reused_not_retrained(
    mlflow_local, fold_inputs, tiny_config, monkeypatch
) -> None:
    """A re-run after a crash: the same fold (settings, data, rows, code) is logged from the
    result store into a new run, with the same curves and scores, and nothing is trained."""
    data, split = fold_inputs
    experiment, family_run_id = family_run("cnn")
    (first,) = train_folds.fn("cnn", [0], tiny_config, data, split, experiment, family_run_id)

    def untrainable(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(training_task, "run_folds", untrainable)
    (again,) = train_folds.fn("cnn", [0], tiny_config, data, split, experiment, family_run_id)
    assert again.run_id != first.run_id
    pd.testing.assert_frame_equal(again.outcome.history, first.outcome.history)
    assert again.outcome.validation == first.outcome.validation
    tracking = MlflowClient()
    run = tracking.get_run(again.run_id)
    assert run.info.status == "FINISHED" and run.data.tags[REUSED].startswith("fold-")
    assert run.data.metrics == tracking.get_run(first.run_id).data.metrics
    steps = [m.step for m in tracking.get_metric_history(again.run_id, "train_loss")]
    assert steps == first.outcome.history["step"].tolist()

    # Another fold, other settings or resume switched off: trained, not reused.
    for fold, config in (
        (1, tiny_config),
        (0, tiny_config.model_copy(update={"seed": 7})),
        (0, resolve_config("tiny", {"runtime": {"resume": False}})),
    ):
        with pytest.raises(AssertionError, match="trained again"):
            train_folds.fn("cnn", [fold], config, data, split, experiment, family_run_id)


def test_a_damaged_result_is_recomputed_with_a_warning(
    mlflow_local, fold_inputs, tiny_config
) -> None:
    data, split = fold_inputs
    experiment, family_run_id = family_run("cnn")
    (first,) = train_folds.fn("cnn", [0], tiny_config, data, split, experiment, family_run_id)
    (entry,) = (Path(data.cache_dir) / "results").glob("fold-*.npz")
    entry.write_bytes(entry.read_bytes()[:100])  # truncated by a full disk, say
    with pytest.warns(CacheWarning, match=rf"{entry}.*checksum mismatch.*recomputing"):
        (again,) = train_folds.fn("cnn", [0], tiny_config, data, split, experiment, family_run_id)
    assert REUSED not in MlflowClient().get_run(again.run_id).data.tags
    assert again.outcome.validation == first.outcome.validation  # same seed, same result


def test_final_model_is_trained_on_every_training_image(
    mlflow_local, fold_inputs, tiny_config
) -> None:
    data, split = fold_inputs
    _, family_run_id = family_run("cnn")
    rows = np.flatnonzero(~split.test)
    trained = train_final.fn("cnn", tiny_config, data, rows, 5, family_run_id)
    assert isinstance(trained, ModelRef) and trained.steps == 5
    model = trained.load()
    assert isinstance(model, CNN) and not model.training
    metrics = MlflowClient().get_run(family_run_id).data.metrics
    assert (metrics["steps"], metrics["train_images"]) == (5, len(rows))
    assert metrics["final_train_accuracy"] == pytest.approx(trained.final["final_train_accuracy"])
    # The refit on the same rows and steps comes back from the store with the same weights.
    again = train_final.fn("cnn", tiny_config, data, rows, 5, family_run_id)
    assert again.key == trained.key
    assert weights_digest(again.load()) == weights_digest(model)
    assert MlflowClient().get_run(family_run_id).data.tags[REUSED] == trained.key


def test_fold_task_marks_its_run_failed(
    mlflow_local, fold_inputs, tiny_config, monkeypatch
) -> None:
    data, split = fold_inputs
    experiment, family_run_id = family_run("cnn")

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(training_task, "run_folds", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        train_folds.fn("cnn", [0], tiny_config, data, split, experiment, family_run_id)
    tracking = MlflowClient()
    (child,) = tracking.search_runs(
        [experiment], filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{family_run_id}'"
    )
    assert child.info.status == "FAILED"
    assert child.info.run_name == "cnn-fold-1"


def test_fold_task_logs_one_progress_line_per_check(
    mlflow_local, fold_inputs, tiny_config, caplog
) -> None:
    data, split = fold_inputs
    experiment, family_run_id = family_run("cnn")
    with caplog.at_level(logging.INFO, logger="glasses"):
        (result,) = train_folds.fn("cnn", [0], tiny_config, data, split, experiment, family_run_id)
    budget = tiny_config.cnn.optimiser.steps
    lines = [r.getMessage() for r in caplog.records if " step " in r.getMessage()]
    steps = result.outcome.history["step"].tolist()
    assert len(lines) == len(steps)
    for step, line in zip(steps, lines, strict=True):
        assert line.startswith(f"cnn-fold-1 step {step}/{budget}: loss ")
        assert "inner val accuracy" in line and "elapsed" in line and "ETA" in line


def test_stacked_folds_each_log_their_own_run_and_equal_their_separate_training(
    mlflow_local, fold_inputs, tiny_config
) -> None:
    data, split = fold_inputs
    experiment, family_run_id = family_run("scatnet")
    fresh = resolve_config("tiny", {"runtime": {"resume": False}})
    alone = [
        train_folds.fn("scatnet", [fold], fresh, data, split, experiment, family_run_id)[0]
        for fold in (0, 1)
    ]
    together = train_folds.fn("scatnet", [0, 1], fresh, data, split, experiment, family_run_id)
    tracking = MlflowClient()
    assert [r.fold for r in together] == [0, 1] and len({r.run_id for r in together}) == 2
    for one, other in zip(alone, together, strict=True):
        assert tracking.get_run(other.run_id).data.tags["mlflow.runName"] == (
            f"scatnet-fold-{one.fold + 1}"
        )
        assert other.outcome.steps == one.outcome.steps
        assert other.outcome.validation == pytest.approx(one.outcome.validation, rel=1e-4)
        logged = tracking.get_metric_history(other.run_id, "train_loss")
        assert [m.step for m in logged] == one.outcome.history["step"].tolist()


def test_family_run_logs_what_compare_runs_sets_side_by_side(
    mlflow_local, fold_inputs, tiny_config
) -> None:
    data, _ = fold_inputs
    _, run_id = family_run("scatnet")
    log_family_params.fn("scatnet", tiny_config, data, run_id)
    run = MlflowClient().get_run(run_id)
    params = run.data.params
    assert params["optimiser.steps"] == str(tiny_config.scatnet.optimiser.steps)
    assert params["head.hidden"] == str(list(tiny_config.scatnet.head.hidden))
    assert params["J"] == str(tiny_config.scatnet.J)
    assert params["image_size"] == str(tiny_config.data.image_size)
    assert params["data_fingerprint"] == image_set(data).fingerprint
    assert run.data.tags["data_fingerprint"] == image_set(data).fingerprint
    assert not [key for key in params if key.startswith(("cnn.", "scatnet."))]
