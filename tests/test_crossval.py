"""Cross-validation helpers: the fold table, the best fold, and one fold of each family."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from glasses.config import resolve_config
from glasses.crossval import (
    TABLE_COLUMNS,
    best_fold,
    build_model,
    fold_table,
    optimiser_config,
    run_fold,
)
from glasses.models.cnn import CNN
from glasses.models.scatnet import ScatNet
from glasses.scattering import compute_coefficients
from glasses.tables import markdown_table
from glasses.training import EpochRecord, FoldOutcome

TINY = resolve_config("tiny")


def outcome(epoch: int, val_accuracy: float, val_loss: float, seed: int = 0) -> FoldOutcome:
    rng = np.random.default_rng(seed)
    best = EpochRecord(
        epoch=epoch,
        train_loss=float(rng.random()),
        train_accuracy=float(rng.random()),
        train_f1=float(rng.random()),
        val_loss=val_loss,
        val_accuracy=val_accuracy,
        val_f1=float(rng.random()),
    )
    return FoldOutcome(history=pd.DataFrame([vars(best)]), best=best, best_state={})


OUTCOMES = [outcome(3, 0.80, 0.5, 1), outcome(7, 0.90, 0.4, 2), outcome(2, 0.70, 0.6, 3)]


def test_fold_table_rows_and_columns() -> None:
    table = fold_table(OUTCOMES)
    assert table.index.tolist() == ["fold 1", "fold 2", "fold 3", "mean", "std"]
    *scores, epoch = table.columns.tolist()
    assert scores == list(TABLE_COLUMNS.values())
    assert "epoch" in epoch
    assert table.loc["fold 2", "accuracy val"] == 0.90
    assert table.loc["fold 1", "F1 train"] == OUTCOMES[0].best.train_f1
    assert table[epoch].iloc[:3].tolist() == [3, 7, 2]
    assert pd.isna(table.loc["mean", epoch]) and pd.isna(table.loc["std", epoch])


def test_fold_table_renders_kept_epochs_as_integers() -> None:
    lines = markdown_table(fold_table(OUTCOMES)).split("\n")
    assert lines[2].endswith("| 3 |")
    assert lines[5].startswith("| mean |") and lines[5].endswith("|  |")


def test_fold_table_mean_and_std_are_those_of_the_folds() -> None:
    table = fold_table(OUTCOMES)
    for source, column in TABLE_COLUMNS.items():
        values = np.array([getattr(o.best, source) for o in OUTCOMES])
        assert table.loc["mean", column] == pytest.approx(values.mean())
        assert table.loc["std", column] == pytest.approx(values.std(ddof=1))


def test_best_fold_picks_the_highest_validation_accuracy() -> None:
    assert best_fold(OUTCOMES) == 1
    tied = [outcome(1, 0.9, 0.5), outcome(1, 0.9, 0.3), outcome(1, 0.8, 0.1)]
    assert best_fold(tied) == 1  # equal accuracy: lower loss wins


def test_build_model_is_seeded_per_family() -> None:
    first, again, other = (build_model("cnn", TINY, s) for s in (1, 1, 2))
    assert isinstance(first, CNN)
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name])
    assert not torch.equal(first.head.layers[0].weight, other.head.layers[0].weight)
    assert isinstance(build_model("scatnet", TINY, 1), ScatNet)


def test_optimiser_config_per_family() -> None:
    config = resolve_config("tiny", {"scatnet": {"optimiser": {"lr": 0.123}}})
    assert optimiser_config("cnn", config) is config.cnn.optimiser
    assert optimiser_config("scatnet", config).lr == pytest.approx(0.123)


@pytest.fixture
def tiny_pixels(image_arrays) -> tuple[np.ndarray, torch.Tensor]:
    pixels, labels = image_arrays(per_class=10)
    return pixels, torch.from_numpy(labels)


def assert_holds_best_state(model: torch.nn.Module, result: FoldOutcome) -> None:
    assert not model.training
    assert all(not m.training for m in model.modules())
    state = model.state_dict()
    assert state.keys() == result.best_state.keys()
    for name, tensor in result.best_state.items():
        torch.testing.assert_close(state[name], tensor, rtol=0, atol=0)


def test_run_fold_scatnet_fits_standardisation_and_returns_eval_model(tiny_pixels) -> None:
    pixels, labels = tiny_pixels
    coefficients = compute_coefficients(pixels, TINY.scatnet.J, TINY.scatnet.L)
    train, val = np.arange(14), np.arange(14, 20)
    seen = []
    model, result = run_fold(
        "scatnet", TINY, coefficients, labels, train, val, seed=3, on_epoch=seen.append
    )
    assert isinstance(model, ScatNet)
    assert model.coefficient_mean.abs().sum() > 0
    torch.testing.assert_close(model.coefficient_mean, coefficients[train].mean(0))
    # Fitted on the training part only, not on validation coefficients.
    assert not torch.allclose(model.coefficient_mean, coefficients.mean(0))
    assert len(result.history) == TINY.scatnet.optimiser.epochs == len(seen)
    assert_holds_best_state(model, result)


def test_run_fold_cnn_returns_the_best_checkpoint_in_eval_mode(tiny_pixels) -> None:
    pixels, labels = tiny_pixels
    model, result = run_fold(
        "cnn", TINY, torch.from_numpy(pixels), labels, np.arange(12), np.arange(12, 20), seed=0
    )
    assert isinstance(model, CNN)
    assert result.history["epoch"].tolist() == list(range(1, TINY.cnn.optimiser.epochs + 1))
    assert_holds_best_state(model, result)
    assert next(model.parameters()).device.type == "cpu"
