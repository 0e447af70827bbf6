"""The shared training loop: it learns, records every epoch and keeps the best checkpoint."""

from __future__ import annotations

import copy
import dataclasses
import os

import pytest
import torch
from torch import nn

from glasses import training
from glasses.config import OptimiserConfig, resolve_config
from glasses.crossval import pixels_to_input
from glasses.models.cnn import CNN
from glasses.training import EpochRecord, predict, threads_per_worker, train_fold

COLUMNS = [field.name for field in dataclasses.fields(EpochRecord)]
CPU = torch.device("cpu")


def no_augmentation(batch: torch.Tensor, training: bool) -> torch.Tensor:
    return pixels_to_input(batch)


@pytest.fixture
def separable(image_arrays) -> tuple[torch.Tensor, torch.Tensor]:
    """32 uint8 images, classes interleaved; label 1 has a bright bar."""
    pixels, labels = image_arrays(per_class=16)
    return torch.from_numpy(pixels), torch.from_numpy(labels)


def test_cnn_learns_the_separable_set(separable) -> None:
    pixels, labels = separable
    config = resolve_config("tiny").cnn
    optimiser = config.optimiser.model_copy(update={"epochs": 4})
    torch.manual_seed(2)
    model = CNN(config, 32)
    seen: list[EpochRecord] = []
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def on_epoch(record: EpochRecord) -> None:
        seen.append(record)
        snapshots[record.epoch] = copy.deepcopy(model.state_dict())

    outcome = train_fold(
        model, model, (pixels[:24], labels[:24]), (pixels[24:], labels[24:]),
        no_augmentation, optimiser, seed=2, on_epoch=on_epoch, device=CPU,
    )  # fmt: skip
    history = outcome.history
    assert history.columns.tolist() == COLUMNS
    assert history["epoch"].tolist() == [1, 2, 3, 4]
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert history["val_loss"].iloc[-1] < history["val_loss"].iloc[0]
    assert history["val_accuracy"].iloc[-1] > 0.5
    assert (
        history[["train_accuracy", "val_accuracy", "train_f1", "val_f1"]]
        .stack()
        .between(0, 1)
        .all()
    )

    # One callback per epoch, with exactly the rows of the history.
    assert [dataclasses.asdict(r) for r in seen] == history.to_dict("records")

    # The kept checkpoint is the best epoch by (val accuracy, then lower val loss).
    ranked = history.assign(neg_loss=-history["val_loss"])
    best_epoch = int(ranked.sort_values(["val_accuracy", "neg_loss"]).iloc[-1]["epoch"])
    assert outcome.best.epoch == best_epoch
    assert outcome.best == seen[best_epoch - 1]
    assert outcome.best_state.keys() == snapshots[best_epoch].keys()
    for name, tensor in outcome.best_state.items():
        torch.testing.assert_close(tensor, snapshots[best_epoch][name], rtol=0, atol=0)


class Scripted(nn.Module):
    """Validation logits follow a script per epoch; training nudges a bias, so every epoch's
    state differs. Inputs are the labels themselves (N x 1)."""

    def __init__(self, wrong_per_epoch: list[int], scale_per_epoch: list[float]):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(2))
        self.wrong = wrong_per_epoch
        self.scale = scale_per_epoch
        self.epoch = 1

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return self.bias.expand(len(inputs), 2) + 0 * inputs
        labels = inputs[:, 0].long()
        wrong = self.wrong[self.epoch - 1]
        predicted = labels.clone()
        predicted[:wrong] = 1 - predicted[:wrong]
        logits = nn.functional.one_hot(predicted, 2).float() * 2 - 1
        return logits * self.scale[self.epoch - 1]


def run_scripted(wrong: list[int], scale: list[float]):
    model = Scripted(wrong, scale)
    labels = torch.tensor([0, 1] * 4)
    inputs = labels.float().unsqueeze(1)
    states, calls = {}, []

    def on_epoch(record: EpochRecord) -> None:
        calls.append(record.epoch)
        states[record.epoch] = {k: v.clone() for k, v in model.state_dict().items()}
        model.epoch += 1

    optimiser = OptimiserConfig(lr=0.1, momentum=0.0, batch_size=3, epochs=len(wrong))
    outcome = train_fold(
        model,
        model,
        (inputs, labels),
        (inputs, labels),
        lambda b, t: b,
        optimiser,
        0,
        on_epoch,
        CPU,
    )
    return outcome, states, calls


def test_best_state_is_a_copy_of_the_best_epoch_not_the_last() -> None:
    outcome, states, calls = run_scripted(wrong=[4, 0, 2, 3], scale=[1, 1, 1, 1])
    assert calls == [1, 2, 3, 4]
    assert outcome.history["val_accuracy"].tolist() == [0.5, 1.0, 0.75, 0.625]
    assert outcome.best.epoch == 2
    torch.testing.assert_close(outcome.best_state["bias"], states[2]["bias"], rtol=0, atol=0)
    # Training went on after the best epoch, and the kept state did not follow it.
    assert not torch.equal(states[2]["bias"], states[4]["bias"])
    assert not torch.equal(outcome.best_state["bias"], states[4]["bias"])


def test_ties_in_accuracy_go_to_the_lower_validation_loss() -> None:
    outcome, states, _ = run_scripted(wrong=[0, 0, 0], scale=[1.0, 3.0, 2.0])
    assert outcome.history["val_accuracy"].tolist() == [1.0, 1.0, 1.0]
    assert outcome.history["val_loss"].idxmin() == 1  # epoch 2 has the most confident logits
    assert outcome.best.epoch == 2
    torch.testing.assert_close(outcome.best_state["bias"], states[2]["bias"], rtol=0, atol=0)


def test_train_loss_is_the_sample_mean_over_the_epoch() -> None:
    """With lr = 0 nothing changes, so the epoch loss is the loss of the whole set."""
    model = nn.Linear(2, 2)
    inputs = torch.randn(10, 2, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1] * 5)
    with torch.no_grad():
        expected = float(nn.functional.cross_entropy(model(inputs), labels))
    optimiser = OptimiserConfig(lr=1e-12, momentum=0.0, batch_size=3, epochs=1)
    outcome = train_fold(
        model, model, (inputs, labels), (inputs, labels), lambda b, t: b, optimiser, 0
    )
    assert outcome.history["train_loss"].iloc[0] == pytest.approx(expected, rel=1e-5)
    assert outcome.history["val_loss"].iloc[0] == pytest.approx(expected, rel=1e-5)


def test_predict_keeps_order_and_runs_without_gradients() -> None:
    modes = []

    def classify(batch: torch.Tensor) -> torch.Tensor:
        modes.append(torch.is_grad_enabled())
        return torch.stack([batch[:, 0], -batch[:, 0]], 1)

    inputs = torch.arange(10, dtype=torch.float32).unsqueeze(1)
    logits = predict(classify, inputs, lambda b, t: b * 2, batch_size=4, device=CPU)
    torch.testing.assert_close(logits[:, 0], torch.arange(10, dtype=torch.float32) * 2)
    assert modes == [False, False, False]


def test_threads_per_worker_matches_the_cores() -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    for workers in (1, 2, 3, 64):
        threads = threads_per_worker(workers)
        assert threads >= 1
        assert threads == max(1, cores // workers)


def test_threads_per_worker_divides_the_allowed_cores(monkeypatch) -> None:
    monkeypatch.setattr(training.os, "sched_getaffinity", lambda _: set(range(8)), raising=False)
    assert [threads_per_worker(w) for w in (1, 2, 3, 4, 8, 16)] == [8, 4, 2, 2, 1, 1]
