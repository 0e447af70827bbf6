"""The shared training loop: a budget of optimiser steps, checks, early stopping that restores
the best state, and random draws that never touch torch's global generator."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest
import torch
from torch import nn

from glasses import training
from glasses.config import OptimiserConfig, resolve_config
from glasses.models.cnn import CNN
from glasses.training import (
    Check,
    Rows,
    pixels_to_input,
    plateaued,
    predict,
    train_steps,
)

COLUMNS = [field.name for field in dataclasses.fields(Check)]
CPU = torch.device("cpu")


def no_augmentation(batch: torch.Tensor, training: bool) -> torch.Tensor:
    return pixels_to_input(batch)


@pytest.fixture
def separable(image_arrays) -> tuple[torch.Tensor, torch.Tensor]:
    """32 uint8 images, classes interleaved; label 1 has a bright bar."""
    pixels, labels = image_arrays(per_class=16)
    return torch.from_numpy(pixels), torch.from_numpy(labels)


def test_cnn_learns_the_separable_set_within_its_budget(separable) -> None:
    pixels, labels = separable
    config = resolve_config("tiny").cnn
    optimiser = config.optimiser.model_copy(update={"steps": 30, "check_every": 5, "patience": 0})
    torch.manual_seed(2)
    model = CNN(config, 32)
    seen: list[Check] = []
    trained = train_steps(
        model, model, Rows.of(pixels[:24], labels[:24]), no_augmentation, optimiser, seed=2,
        validation=Rows.of(pixels[24:], labels[24:]), on_check=seen.append, device=CPU,
        held_out=Rows.of(pixels[24:], labels[24:]),
    )  # fmt: skip
    history = trained.history
    assert history.columns.tolist() == COLUMNS
    assert history["step"].tolist()[:2] == [5, 10]
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert history["val_accuracy"].max() > 0.5
    for part in ("loss", "accuracy", "balanced_accuracy"):  # the same rows, scored alike
        assert history[f"held_out_{part}"].tolist() == history[f"val_{part}"].tolist()
    assert [dataclasses.asdict(check) for check in seen] == history.to_dict("records")
    assert not model.training


def test_the_budget_counts_steps_whatever_the_data_size() -> None:
    """A smaller training set gets as many optimiser steps as a larger one, not fewer."""
    counted = []
    for n in (6, 60):
        model = nn.Linear(2, 2)
        inputs = torch.randn(n, 2, generator=torch.Generator().manual_seed(n))
        labels = torch.arange(n) % 2
        optimiser = OptimiserConfig(lr=0.01, momentum=0.0, batch_size=4, steps=17, check_every=5)
        steps: list[bool] = []
        model.register_forward_hook(lambda *_, seen=steps: seen.append(torch.is_grad_enabled()))
        trained = train_steps(model, model, Rows.of(inputs, labels), lambda b, t: b, optimiser, 0)
        counted.append(sum(steps))
        assert trained.steps == 17 and not trained.early_stopped
        assert trained.history["step"].tolist() == [5, 10, 15, 17]  # the last step is checked
        assert trained.history["val_loss"].isna().all()  # no validation set, no val scores
    assert counted == [17, 17]


class Scripted(nn.Module):
    """Validation logits follow a script per check; training nudges a bias, so every check's
    state differs. Inputs are the labels themselves (N x 1)."""

    def __init__(self, scale_per_check: list[float]):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(2))
        self.scale = scale_per_check
        self.check = 0

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return self.bias.expand(len(inputs), 2) + 0 * inputs
        logits = nn.functional.one_hot(inputs[:, 0].long(), 2).float() * 2 - 1
        return logits * self.scale[self.check]


def run_scripted(scales: list[float], patience: int):
    """Validation loss falls as the scale grows: the script says which check is best."""
    model = Scripted(scales)
    labels = torch.tensor([0, 1] * 4)
    inputs = labels.float().unsqueeze(1)
    states: dict[int, dict[str, torch.Tensor]] = {}

    def on_check(check: Check) -> None:
        states[check.step] = {k: v.clone() for k, v in model.state_dict().items()}
        model.check += 1

    optimiser = OptimiserConfig(
        lr=0.1, momentum=0.0, batch_size=3, steps=2 * len(scales), check_every=2, patience=patience
    )
    trained = train_steps(
        model, model, Rows.of(inputs, labels), lambda b, t: b, optimiser, 0,
        validation=Rows.of(inputs, labels), on_check=on_check, device=CPU,
    )  # fmt: skip
    return model, trained, states


def test_early_stopping_restores_the_best_check_after_patience_runs_out() -> None:
    model, trained, states = run_scripted([1, 3, 2, 1.5, 1, 1, 1], patience=2)
    assert trained.history["step"].tolist() == [2, 4, 6, 8]  # 2 checks past the best, then stop
    assert trained.steps == 4 and trained.early_stopped
    torch.testing.assert_close(model.state_dict()["bias"], states[4]["bias"], rtol=0, atol=0)
    assert not torch.equal(states[4]["bias"], states[8]["bias"])  # training went on after it


def test_patience_that_never_runs_out_trains_the_whole_budget() -> None:
    model, trained, states = run_scripted([1, 2, 3], patience=5)
    assert trained.history["step"].tolist() == [2, 4, 6]
    assert trained.steps == 6 and not trained.early_stopped


def test_train_loss_is_the_sample_mean_since_the_last_check() -> None:
    """With lr ≈ 0 nothing changes, so a check's loss is the loss of the whole set."""
    model = nn.Linear(2, 2)
    inputs = torch.randn(12, 2, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1] * 6)
    with torch.no_grad():
        expected = float(nn.functional.cross_entropy(model(inputs), labels))
    optimiser = OptimiserConfig(lr=1e-12, momentum=0.0, batch_size=3, steps=4, check_every=4)
    trained = train_steps(
        model, model, Rows.of(inputs, labels), lambda b, t: b, optimiser, 0,
        validation=Rows.of(inputs, labels),
    )  # fmt: skip
    assert trained.history["train_loss"].iloc[0] == pytest.approx(expected, rel=1e-5)
    assert trained.history["val_loss"].iloc[0] == pytest.approx(expected, rel=1e-5)


def test_training_is_reproducible_and_leaves_the_global_generator_alone(separable) -> None:
    """Dropout and batch order come from the seed's own generators: two trainings with one seed
    end in the same weights even when torch's global generator moves in between."""
    pixels, labels = separable
    config = resolve_config("tiny").cnn
    config = config.model_copy(update={"head": config.head.model_copy(update={"dropout": 0.5})})
    optimiser = config.optimiser.model_copy(update={"steps": 6, "patience": 0})
    states = []
    for noise in (0, 1):
        torch.manual_seed(5)
        model = CNN(config, 32)
        torch.manual_seed(100 + noise)  # what other threads might do to the global generator
        before = torch.get_rng_state()
        train_steps(
            model, model, Rows.of(pixels, labels), no_augmentation, optimiser, seed=3, device=CPU
        )
        assert torch.equal(torch.get_rng_state(), before)
        states.append(model.state_dict())
    for name, tensor in states[0].items():
        torch.testing.assert_close(tensor, states[1][name], rtol=0, atol=0)
    assert all(
        layer.generator is None
        for layer in model.modules()
        if hasattr(layer, "generator")  # generators do not pickle: none is left behind
    )


def test_predict_keeps_order_and_runs_without_gradients() -> None:
    modes = []

    def classify(batch: torch.Tensor) -> torch.Tensor:
        modes.append(torch.is_grad_enabled())
        return torch.stack([batch[:, 0], -batch[:, 0]], 1)

    inputs = torch.arange(10, dtype=torch.float32).unsqueeze(1)
    logits = predict(classify, inputs, lambda b, t: b * 2, batch_size=4, device=CPU)
    torch.testing.assert_close(logits[:, 0], torch.arange(10, dtype=torch.float32) * 2)
    assert modes == [False, False, False]


def test_final_scores_are_on_unaugmented_training_rows() -> None:
    inputs = torch.tensor([[1.0], [-1.0], [2.0], [-2.0]])
    labels = torch.tensor([1, 0, 1, 1])

    def classify(batch: torch.Tensor) -> torch.Tensor:
        return torch.cat([-batch, batch], 1)

    final = training.final_scores(classify, Rows.of(inputs, labels), lambda b, t: b, CPU)
    assert final["final_train_accuracy"] == 0.75
    assert final["final_train_balanced_accuracy"] == pytest.approx((2 / 3 + 1) / 2)
    assert math.isfinite(final["final_train_loss"])


def test_rows_are_read_without_copying_the_inputs() -> None:
    inputs = torch.arange(20, dtype=torch.float32).reshape(10, 2)
    rows = Rows.of(inputs, torch.arange(10) % 2, [7, 2, 5])
    assert len(rows) == 3 and rows.inputs is inputs
    assert rows.targets().tolist() == [1, 0, 1]
    logits = predict(lambda b: b, rows, lambda b, t: b, batch_size=2, device=CPU)
    torch.testing.assert_close(logits, inputs[[7, 2, 5]])


def history(losses: list[float], validation: bool = False) -> pd.DataFrame:
    nan = float("nan")
    return pd.DataFrame(
        {
            "step": range(len(losses)),
            "train_loss": losses if not validation else [9.0] * len(losses),
            "val_loss": losses if validation else [nan] * len(losses),
        }
    )


def test_a_training_on_a_loss_plateau_has_converged() -> None:
    falling = [1.0, 0.8, 0.6, 0.45, 0.3, 0.2, 0.12, 0.08, 0.05, 0.03]
    assert not plateaued(history(falling[:8]))  # still falling fast
    flat = [1.0, 0.6, 0.4, 0.32, 0.3, 0.3, 0.29, 0.3, 0.29, 0.29]
    assert plateaued(history(flat))
    memorised = [1.0, 0.5, 0.2, 0.1, 0.05, 0.03, 0.02, 0.015, 0.012, 0.01]
    assert plateaued(history(memorised))  # near zero: less than 0.01 left to fall
    assert plateaued(history(flat, validation=True))  # the inner validation loss decides
    assert not plateaued(history([1.0]))  # too few checks to tell
    assert not plateaued(history(flat[:6] + [0.4, 0.5, 0.6, 0.7]))  # rising: diverging


def test_rows_with_copies_are_every_copy_of_each_row_under_its_label() -> None:
    labels = torch.tensor([0, 1, 1, 0])
    inputs = torch.arange(12, dtype=torch.float32)  # 3 copies of 4 images: copy c at 4c + r
    rows = Rows.of(inputs, labels, [2, 0]).with_copies()
    assert rows.index.tolist() == [2, 0, 6, 4, 10, 8] and rows.inputs is inputs
    assert rows.targets().tolist() == [1, 0, 1, 0, 1, 0]
    plain = Rows.of(inputs[:4], labels, [2, 0])
    assert plain.with_copies() is plain  # no copies: the rows as they are
    with pytest.raises(ValueError, match="10 input rows are no whole number of 4 images"):
        Rows.of(inputs[:10], labels, [2]).with_copies()


def test_bf16_autocast_trains_the_cnn_within_noise_of_float32(separable) -> None:
    """`runtime.precision: bfloat16` (CPU autocast here): convolutions and products in bf16,
    weights and updates float32; the same seed learns the separable set as well."""
    pixels, labels = separable
    config = resolve_config("tiny").cnn
    optimiser = config.optimiser.model_copy(update={"steps": 30, "check_every": 10, "patience": 0})
    results = {}
    for precision in ("float32", "bfloat16"):
        torch.manual_seed(2)
        model = CNN(config, 32)
        trained = train_steps(
            model, model, Rows.of(pixels, labels), no_augmentation, optimiser, seed=2,
            device=CPU, precision=precision,
        )  # fmt: skip
        results[precision] = (trained.history["train_loss"].iloc[-1], model.features[1].weight)
        assert model.features[1].weight.dtype == torch.float32
    (exact, weights), (rounded, bf16_weights) = results["float32"], results["bfloat16"]
    assert not torch.equal(weights, bf16_weights)  # bf16 did run
    assert rounded == pytest.approx(exact, abs=0.1)
