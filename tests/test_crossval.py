"""The training protocol: fold table, folds scored on rows that chose nothing, the refit's step
count, and `fit` (`glasses.fitting`) trained on exactly the rows it is given."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from glasses.config import resolve_config
from glasses.crossval import (
    STEPS,
    STOPPED_EARLY,
    TABLE_COLUMNS,
    TABLE_LEGEND,
    TRAIN_ACCURACY,
    FoldOutcome,
    fold_table,
    logits_for,
    refit_steps,
    run_fold,
)
from glasses.families import SPECS
from glasses.fitting import Job, build_model, fit, train_many
from glasses.models.cnn import CNN
from glasses.models.scatnet import ScatNet
from glasses.scattering import cached_augmented_coefficients, compute_coefficients
from glasses.tables import markdown_table

TINY = resolve_config("tiny")


def outcome(steps: int, accuracy: float, loss: float, seed: int = 0) -> FoldOutcome:
    rng = np.random.default_rng(seed)
    validation = {key: float(rng.random()) for key in TABLE_COLUMNS}
    validation |= {"accuracy": accuracy, "loss": loss}
    history = pd.DataFrame({"step": [steps], "train_loss": [0.5], "train_accuracy": [0.8]})
    final = {"final_train_accuracy": float(rng.random())}
    return FoldOutcome(history, steps, steps < 10, final, validation)


OUTCOMES = [outcome(3, 0.80, 0.5, 1), outcome(7, 0.90, 0.4, 2), outcome(12, 0.70, 0.6, 3)]


def test_fold_table_rows_and_columns() -> None:
    table = fold_table(OUTCOMES)
    assert table.index.tolist() == ["fold 1", "fold 2", "fold 3", "mean", "std"]
    assert table.columns.tolist() == [*TABLE_COLUMNS.values(), TRAIN_ACCURACY, STEPS, STOPPED_EARLY]
    assert table.loc["fold 2", TABLE_COLUMNS["accuracy"]] == 0.90
    assert table.loc["fold 1", TRAIN_ACCURACY] == OUTCOMES[0].final["final_train_accuracy"]
    assert table[STEPS].iloc[:3].tolist() == [3, 7, 12]
    assert table[STOPPED_EARLY].iloc[:3].tolist() == ["true", "true", "false"]
    assert pd.isna(table.loc["mean", STEPS]) and pd.isna(table.loc["std", STEPS])


def test_fold_table_headers_are_short_and_explained() -> None:
    """Short enough for MLflow's 200 px CSV columns and Prefect's unwrapped markdown cells; every
    abbreviation spelled out in the legend."""
    table = fold_table(OUTCOMES)
    assert max(len(str(column)) for column in table.columns) <= 12
    for column in table.columns:
        assert column in TABLE_LEGEND
    assert "balanced accuracy" in TABLE_LEGEND and "validation rows" in TABLE_LEGEND


def test_fold_table_renders_steps_as_integers() -> None:
    lines = markdown_table(fold_table(OUTCOMES)).split("\n")
    assert lines[0].startswith("| fold | acc | bal acc |")
    assert "| 3 | true |" in lines[2]
    assert lines[5].startswith("| mean |") and lines[5].endswith("|  |  |")


def test_fold_table_mean_and_std_are_those_of_the_folds() -> None:
    table = fold_table(OUTCOMES)
    for source, column in TABLE_COLUMNS.items():
        values = np.array([o.validation[source] for o in OUTCOMES])
        assert table.loc["mean", column] == pytest.approx(values.mean())
        assert table.loc["std", column] == pytest.approx(values.std(ddof=1))


def test_refit_takes_the_median_step_count_of_the_folds() -> None:
    assert refit_steps(OUTCOMES) == 7
    assert refit_steps(OUTCOMES[:2]) == 5


def test_build_model_is_seeded_per_family() -> None:
    first, again, other = (build_model("cnn", TINY, s) for s in (1, 1, 2))
    assert isinstance(first, CNN)
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name])
    assert not torch.equal(first.head.layers[0].weight, other.head.layers[0].weight)
    assert isinstance(build_model("scatnet", TINY, 1), ScatNet)


def test_optimiser_config_per_family() -> None:
    config = resolve_config("tiny", {"scatnet": {"optimiser": {"lr": 0.123}}})
    assert SPECS["cnn"].optimiser(config) is config.cnn.optimiser
    assert SPECS["scatnet"].optimiser(config).lr == pytest.approx(0.123)


@pytest.fixture
def tiny_set(image_arrays) -> tuple[np.ndarray, torch.Tensor, pd.DataFrame]:
    """20 images of 10 people, both classes each (a person is a unit of the splits)."""
    pixels, labels = image_arrays(per_class=10)
    manifest = pd.DataFrame(
        {"label": labels, "group": [f"p{i // 2}" for i in range(20)], "sha256": range(20)}
    )
    return pixels, torch.from_numpy(labels), manifest


def test_run_fold_scores_validation_rows_with_the_inner_split_choosing_the_steps(
    tiny_set,
) -> None:
    pixels, labels, manifest = tiny_set
    coefficients = compute_coefficients(pixels, TINY.scatnet.J, TINY.scatnet.L)
    train, val = np.arange(14), np.arange(14, 20)
    seen = []
    result = run_fold(
        "scatnet", TINY, coefficients, labels, manifest, train, val, seed=3, on_check=seen.append
    )
    assert len(result.history) == len(seen)
    assert result.history["val_loss"].notna().all()  # the inner split was watched
    assert result.steps in result.history["step"].tolist()
    assert set(result.validation) == {*TABLE_COLUMNS}
    assert 0 <= result.validation["balanced_accuracy"] <= 1


def test_without_patience_a_fold_trains_its_whole_budget(tiny_set) -> None:
    pixels, labels, manifest = tiny_set
    config = resolve_config("tiny", {"cnn": {"optimiser": {"patience": 0}}})
    result = run_fold(
        "cnn", config, torch.from_numpy(pixels), labels, manifest,
        np.arange(12), np.arange(12, 20), seed=0,
    )  # fmt: skip
    assert result.steps == config.cnn.optimiser.steps and not result.early_stopped
    assert result.history["val_loss"].isna().all()


HELD_OUT = ["held_out_loss", "held_out_accuracy", "held_out_balanced_accuracy"]


@pytest.mark.parametrize("family", ["cnn", "scatnet"])
@pytest.mark.parametrize("patience", [0, 2])
def test_held_out_rows_are_watched_without_changing_the_training(
    tiny_set, family: str, patience: int
) -> None:
    """A fold's own validation rows scored at every check change nothing else: weights, steps,
    history and final scores are bit-identical to a training without them (two stacked ScatNet
    trainings, as the folds are trained)."""
    pixels, labels, manifest = tiny_set
    overrides = {"optimiser": {"patience": patience, "steps": 16}}
    config = resolve_config("tiny", {"cnn": overrides, "scatnet": overrides})
    if family == "cnn":
        inputs = torch.from_numpy(pixels)
    else:
        inputs = compute_coefficients(pixels, config.scatnet.J, config.scatnet.L)
    train, val = np.arange(14), np.arange(14, 20)
    validation = np.arange(10, 14) if patience else None
    jobs = [Job(train[:10] if patience else train, s, None, validation) for s in (3, 4)]
    plain = train_many(family, config, inputs, labels, jobs)
    watched = train_many(
        family, config, inputs, labels, [replace(job, held_out_rows=val) for job in jobs]
    )
    for alone, monitored in zip(plain, watched, strict=True):
        for name, tensor in alone.model.state_dict().items():
            assert torch.equal(tensor, monitored.model.state_dict()[name]), name
        assert alone.trained.steps == monitored.trained.steps
        assert alone.final == monitored.final
        pd.testing.assert_frame_equal(
            alone.trained.history.drop(columns=HELD_OUT),
            monitored.trained.history.drop(columns=HELD_OUT),
        )
        assert alone.trained.history[HELD_OUT].isna().all().all()
        assert monitored.trained.history[HELD_OUT].notna().all().all()
    if not patience:  # the last check is the model scored on the fold's validation rows
        predicted = logits_for(watched[0].model, inputs, val)
        expected = torch.nn.functional.cross_entropy(predicted, labels[val])
        last = watched[0].trained.history.iloc[-1]
        assert last["held_out_loss"] == pytest.approx(float(expected), rel=1e-5)


def test_a_fold_watches_its_validation_rows_and_a_fit_has_none(tiny_set) -> None:
    pixels, labels, manifest = tiny_set
    config = resolve_config("tiny", {"cnn": {"optimiser": {"patience": 0}}})
    inputs = torch.from_numpy(pixels)
    fold = run_fold("cnn", config, inputs, labels, manifest, np.arange(12), np.arange(12, 20), 0)
    assert fold.history[HELD_OUT].notna().all().all()
    last = fold.history.iloc[-1]
    assert last["held_out_accuracy"] == pytest.approx(fold.validation["accuracy"])
    refit = fit("cnn", config, inputs, labels, manifest, np.arange(20), seed=0)
    assert refit.trained.history[HELD_OUT].isna().all().all()
    unwatched = resolve_config(
        "tiny", {"cnn": {"optimiser": {"patience": 0}}, "split": {"fold_curves": False}}
    )
    plain = run_fold(
        "cnn", unwatched, inputs, labels, manifest, np.arange(12), np.arange(12, 20), 0
    )
    assert plain.history[HELD_OUT].isna().all().all()
    assert plain.validation == fold.validation


def test_fit_trains_on_exactly_its_rows_and_refits_after_early_stopping(
    tiny_set, monkeypatch
) -> None:
    """With patience the step count comes from an inner split, then the model is trained again
    on all the rows; the ScatNet's standardisation is fitted on those rows only."""
    import glasses.fitting as fitting

    pixels, labels, manifest = tiny_set
    coefficients = compute_coefficients(pixels, TINY.scatnet.J, TINY.scatnet.L)
    rows = np.arange(16)
    trainings = []
    real = fitting.train_many

    def spy(family, config, inputs, labels_, jobs):
        trainings.extend((len(j.rows), j.steps, j.validation_rows is not None) for j in jobs)
        return real(family, config, inputs, labels_, jobs)

    monkeypatch.setattr(fitting, "train_many", spy)
    fitted = fit("scatnet", TINY, coefficients, labels, manifest, rows, seed=1)
    (probe_rows, _, watched), (refit_rows, refit_steps_, refit_watched) = trainings
    assert watched and not refit_watched
    assert probe_rows < len(rows) and refit_rows == len(rows) == fitted.images
    assert refit_steps_ == fitted.trained.steps
    assert isinstance(fitted.model, ScatNet) and not fitted.model.training
    torch.testing.assert_close(fitted.model.coefficient_mean, coefficients[rows].mean(0))
    assert 0 <= fitted.final["final_train_accuracy"] <= 1


def test_fit_with_given_steps_trains_once(tiny_set) -> None:
    pixels, labels, manifest = tiny_set
    fitted = fit(
        "cnn", TINY, torch.from_numpy(pixels), labels, manifest, np.arange(20), seed=0, steps=5
    )
    assert fitted.trained.steps == 5 and fitted.images == 20
    assert fitted.trained.history["step"].iloc[-1] == 5
    logits = logits_for(fitted.model, torch.from_numpy(pixels), np.arange(4))
    assert logits.shape == (4, 2)
    assert next(fitted.model.parameters()).device.type == "cpu"


def test_matched_config_gives_the_scatnet_the_cnns_head_and_optimiser() -> None:
    matched = TINY.matched()
    assert matched.scatnet.head == TINY.cnn.head
    assert matched.scatnet.optimiser == TINY.cnn.optimiser
    assert (matched.scatnet.J, matched.scatnet.L) == (TINY.scatnet.J, TINY.scatnet.L)
    assert matched.cnn == TINY.cnn


class ReadRows(torch.Tensor):
    """Coefficients that remember which rows were read (by integer index tensors)."""

    read: set[int]

    def __getitem__(self, index):
        if isinstance(index, torch.Tensor):
            ReadRows.read.update(index.flatten().tolist())
        return super().__getitem__(index).as_subclass(torch.Tensor)


@pytest.fixture
def copies_set(tiny_set, tmp_path):
    """The tiny set's coefficients with 2 augmented copies (40 x 3 rows), reads recorded."""
    pixels, labels, manifest = tiny_set
    config = resolve_config("tiny", {"scatnet": {"augmented_copies": 2}})
    plain = compute_coefficients(pixels, config.scatnet.J, config.scatnet.L)
    entry = cached_augmented_coefficients(pixels, plain, config, tmp_path).coefficients
    ReadRows.read = set()
    return config, entry.as_subclass(ReadRows), labels, manifest


def test_training_with_copies_samples_the_training_rows_copies_and_scores_originals(
    copies_set, monkeypatch
) -> None:
    import glasses.fitting as fitting

    config, inputs, labels, manifest = copies_set
    n, train, val = 20, np.arange(12), np.arange(14, 20)  # rows 12, 13: in neither
    seen = {}
    real_heads, real_final = fitting.train_heads, fitting.final_scores

    def heads_spy(trainings, *args):
        (training,) = trainings
        seen["train"], seen["validation"] = training.train, training.validation
        return real_heads(trainings, *args)

    def final_spy(classify, rows, *args):
        seen["final"] = rows
        return real_final(classify, rows, *args)

    monkeypatch.setattr(fitting, "train_heads", heads_spy)
    monkeypatch.setattr(fitting, "final_scores", final_spy)
    run_fold("scatnet", config, inputs, labels, manifest, train, val, seed=3)

    validation, final = seen["validation"].index, seen["final"].index
    inner_train = final.numpy()  # the probe's training rows: the fold's less its inner split
    assert set(validation.tolist()) | set(inner_train) == set(train) and validation.max() < n
    expanded = {c * n + r for c in range(3) for r in inner_train}
    assert set(seen["train"].index.tolist()) == expanded
    assert len(seen["train"]) == 3 * len(inner_train)
    torch.testing.assert_close(seen["train"].targets(), labels[seen["train"].index % n])
    # Every copy of a training row was read (standardisation, batches); no copy of any other.
    assert {r for r in ReadRows.read if r >= n} == expanded - set(range(n))
    assert {r for r in ReadRows.read if r < n} == set(train) | set(val)


def test_standardisation_sees_the_copies_and_test_scores_the_originals(copies_set) -> None:
    """The standardisation is fitted on every copy of the training rows; test logits from the
    (K+1)·N inputs are those of their first N rows, whatever the copies hold."""
    config, inputs, labels, manifest = copies_set
    fitted = fit("scatnet", config, inputs, labels, manifest, np.arange(16), seed=1, steps=4)
    plain = inputs[torch.arange(20)]
    test = np.arange(16, 20)
    torch.testing.assert_close(
        logits_for(fitted.model, inputs, test),
        logits_for(fitted.model, plain, test),
        rtol=0,
        atol=0,
    )
    copies = inputs[torch.arange(20, 60)]
    assert not torch.allclose(fitted.model.coefficient_mean, plain[:16].mean(0))
    expected_mean = torch.cat([plain[:16], copies[:16], copies[20:36]]).mean(0)
    torch.testing.assert_close(fitted.model.coefficient_mean, expected_mean)


def test_without_copies_training_reads_exactly_its_rows(tiny_set, monkeypatch) -> None:
    """K = 0: the rows a training is given go to the loop as they are, today's protocol."""
    import glasses.fitting as fitting

    pixels, labels, manifest = tiny_set
    coefficients = compute_coefficients(pixels, TINY.scatnet.J, TINY.scatnet.L)
    rows = np.array([5, 0, 9, 3, 12, 7, 1, 15])
    seen = []
    real_steps, real_heads = fitting.train_steps, fitting.train_heads

    def steps_spy(model, classify, train, *args, **kwargs):
        seen.append(train)
        return real_steps(model, classify, train, *args, **kwargs)

    def heads_spy(trainings, *args):
        seen.extend(training.train for training in trainings)
        return real_heads(trainings, *args)

    monkeypatch.setattr(fitting, "train_steps", steps_spy)
    monkeypatch.setattr(fitting, "train_heads", heads_spy)
    for family, inputs in (("scatnet", coefficients), ("cnn", torch.from_numpy(pixels))):
        fit(family, TINY, inputs, labels, manifest, rows, seed=1, steps=4)
        assert seen[-1].index.tolist() == rows.tolist() and seen[-1].labels is labels
