"""One training loop for both model families, one fold at a time.

The CNN learns from pixels (augmented per batch), the ScatNet's head from cached coefficients;
the loop only sees a `classify` callable and a `prepare` step that turns a stored batch into
model input, so both families share the protocol exactly.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass

import pandas as pd
import torch
from torch import nn

from glasses.config import OptimiserConfig
from glasses.metrics import scores

Prepare = Callable[[torch.Tensor, bool], torch.Tensor]


def default_device() -> torch.device:
    """CUDA when present, so the same code trains on a GPU machine unchanged."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    train_accuracy: float
    train_f1: float
    val_loss: float
    val_accuracy: float
    val_f1: float


def rank(record: EpochRecord) -> tuple[float, float]:
    """What "best" means, for epochs and folds alike: validation accuracy, then lower loss."""
    return record.val_accuracy, -record.val_loss


@dataclass
class FoldOutcome:
    history: pd.DataFrame  # one row per epoch, EpochRecord's fields as columns
    best: EpochRecord
    best_state: dict[str, torch.Tensor]


def predict(
    classify: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    prepare: Prepare,
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    """Logits for every input, in evaluation mode and without gradients."""
    outputs = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            batch = prepare(inputs[start : start + batch_size], False).to(device)
            outputs.append(classify(batch).cpu())
    return torch.cat(outputs)


def train_fold(
    model: nn.Module,
    classify: Callable[[torch.Tensor], torch.Tensor],
    train: tuple[torch.Tensor, torch.Tensor],
    validation: tuple[torch.Tensor, torch.Tensor],
    prepare: Prepare,
    optimiser_config: OptimiserConfig,
    seed: int,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    device: torch.device | None = None,
) -> FoldOutcome:
    """SGD with cross-entropy on logits; keeps the best epoch by `rank`.

    The reported training loss is the mean over all
    samples of the epoch (the seed study logged only its last batch).
    """
    device = device or default_device()
    model.to(device)
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.SGD(
        model.parameters(), lr=optimiser_config.lr, momentum=optimiser_config.momentum
    )
    loss_fn = nn.CrossEntropyLoss()
    inputs, labels = train
    records: list[EpochRecord] = []
    best: EpochRecord | None = None
    best_state: dict[str, torch.Tensor] = {}
    for epoch in range(1, optimiser_config.epochs + 1):
        model.train()
        order = torch.randperm(len(inputs), generator=generator)
        total_loss, predicted = 0.0, torch.empty(len(inputs), dtype=torch.long)
        for start in range(0, len(inputs), optimiser_config.batch_size):
            index = order[start : start + optimiser_config.batch_size]
            batch = prepare(inputs[index], True).to(device)
            target = labels[index].to(device)
            optimiser.zero_grad()
            logits = classify(batch)
            loss = loss_fn(logits, target)
            loss.backward()
            optimiser.step()
            total_loss += loss.item() * len(index)
            predicted[index] = logits.argmax(1).cpu()
        model.eval()
        record = _epoch_record(
            epoch,
            total_loss / len(inputs),
            scores(labels.numpy(), predicted.numpy()),
            predict(classify, validation[0], prepare, optimiser_config.batch_size * 4, device),
            validation[1],
            loss_fn,
        )
        records.append(record)
        if best is None or rank(record) > rank(best):
            best, best_state = (
                record,
                copy.deepcopy({k: v.cpu() for k, v in model.state_dict().items()}),
            )
        if on_epoch is not None:
            on_epoch(record)
    assert best is not None
    return FoldOutcome(pd.DataFrame([asdict(r) for r in records]), best, best_state)


def _epoch_record(epoch, train_loss, train_scores, val_logits, val_labels, loss_fn) -> EpochRecord:
    val_scores = scores(val_labels.numpy(), val_logits.argmax(1).numpy())
    return EpochRecord(
        epoch=epoch,
        train_loss=train_loss,
        train_accuracy=train_scores["accuracy"],
        train_f1=train_scores["f1"],
        val_loss=float(loss_fn(val_logits, val_labels)),
        val_accuracy=val_scores["accuracy"],
        val_f1=val_scores["f1"],
    )


def threads_per_worker(workers: int) -> int:
    """torch threads for each of `workers` concurrent folds, so together they fill, not
    oversubscribe, the cores this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // workers)
