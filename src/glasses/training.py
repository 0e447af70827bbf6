"""One training loop for both model families, under a budget of optimiser steps.

The CNN learns from pixels (augmented per batch), the ScatNet's head from cached coefficients;
the loop only sees a `classify` callable and a `prepare` step that turns a stored batch into
model input, so both families share the protocol exactly. Steps, not epochs, are the budget: a
smaller training set gets as many updates as a larger one, so a learning curve compares data,
not optimisation effort (docs/decisions/0004-training-budget.md).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, replace

import pandas as pd
import torch
from torch import nn

from glasses.config import OptimiserConfig
from glasses.entrypoint import deterministic_gpu
from glasses.metrics import scores
from glasses.models.head import SeededDropout

Classify = Callable[[torch.Tensor], torch.Tensor]  # model input -> logits
Prepare = Callable[[torch.Tensor, bool], torch.Tensor]  # (stored batch, training) -> model input
NAN = float("nan")


def pixels_to_input(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels as the [0, 1] floats every model takes."""
    return pixels.float() / 255


def resolve_device(name: str = "auto") -> torch.device:
    """`runtime.device` as a torch device: `auto` takes CUDA when torch sees a GPU, so the same
    code trains on a GPU machine unchanged."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "runtime.device is 'cuda' but torch sees no CUDA device: set runtime.device to "
            "'auto' or 'cpu'"
        )
    if name == "cuda":
        deterministic_gpu()
    return torch.device(name)


def autocast(device: torch.device, precision: str) -> AbstractContextManager[object]:
    """bf16 autocast of matrix products and convolutions when `runtime.precision` asks for it;
    weights, gradients and updates stay float32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16")


@dataclass(frozen=True)
class Rows:
    """Some rows of a shared input tensor, read batch by batch: a training never copies its share
    of the inputs (the coefficient cache may be a memory-mapped file of several GB)."""

    inputs: torch.Tensor
    labels: torch.Tensor | None  # None where only predictions are wanted
    index: torch.Tensor  # int64 row numbers into inputs and labels

    @classmethod
    def of(cls, inputs: torch.Tensor, labels: torch.Tensor | None, rows=None) -> Rows:
        index = torch.arange(len(inputs)) if rows is None else torch.as_tensor(rows)
        return cls(inputs, labels, index.long())

    def __len__(self) -> int:
        return len(self.index)

    def with_copies(self) -> Rows:
        """These rows and their augmented copies, when `inputs` holds them: (K+1)·N input rows
        for N labels are K+1 copies of every image, copy c of row r at c·N + r (copy 0 the
        original; see `glasses.scattering`). Uniform batches then draw a row and a copy
        uniformly. Without copies, these rows as they are."""
        if self.labels is None:
            raise ValueError("copies are told apart by the labels: these rows have none")
        n = len(self.labels)
        copies, extra = divmod(len(self.inputs), n)
        if extra:
            raise ValueError(f"{len(self.inputs)} input rows are no whole number of {n} images")
        if copies == 1:
            return self
        index = (self.index + n * torch.arange(copies).unsqueeze(1)).flatten()
        return Rows(self.inputs, self.labels.repeat(copies), index)

    def targets(self) -> torch.Tensor:
        if self.labels is None:
            raise ValueError("these rows were given without labels")
        return self.labels[self.index]


@dataclass(frozen=True)
class Check:
    """Scores every `check_every` steps. Training scores are the running ones since the previous
    check (augmented batches for the CNN); validation scores (the inner split early stopping
    watches) are NaN without one; held-out scores (a cross-validation fold's own validation
    rows, watched only to draw its curve) are NaN without them."""

    step: int
    train_loss: float
    train_accuracy: float
    val_loss: float = NAN
    val_accuracy: float = NAN
    val_balanced_accuracy: float = NAN
    held_out_loss: float = NAN
    held_out_accuracy: float = NAN
    held_out_balanced_accuracy: float = NAN


@dataclass
class Trained:
    history: pd.DataFrame  # one row per check, Check's fields as columns
    steps: int  # optimiser steps of the state the model now holds
    early_stopped: bool


def plateaued(history: pd.DataFrame, share: float = 0.2, tolerance: float = 0.05) -> bool:
    """Whether a training ended on a plateau, i.e. converged for its budget: its loss over the
    last `share` of checks — the inner validation loss when it had one, else the running
    training loss — moved (fell, or rose) by less than `tolerance` of the loss over the `share`
    before (or by less than 0.01, for losses already near zero). Too few checks to tell: False."""
    column = "val_loss" if history["val_loss"].notna().any() else "train_loss"
    values = history[column].dropna().to_numpy()
    window = max(1, round(len(values) * share))
    if len(values) < 2 * window:
        return False
    before, last = values[-2 * window : -window].mean(), values[-window:].mean()
    return bool(abs(before - last) < max(tolerance * abs(before), 0.01))


def predict(
    classify: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor | Rows,
    prepare: Prepare,
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    """Logits for every input (or every row of `Rows`), without gradients, batch by batch."""
    rows = inputs if isinstance(inputs, Rows) else None
    outputs = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            if rows is None:
                chunk = inputs[start : start + batch_size]
            else:
                chunk = rows.inputs[rows.index[start : start + batch_size]]
            batch = prepare(chunk, False).to(device)
            outputs.append(classify(batch).cpu())
    return torch.cat(outputs) if outputs else torch.empty(0, 2)


def batch_order(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Row indices of successive batches, a fresh permutation each pass over the rows."""
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size]


def train_steps(
    model: nn.Module,
    classify: Callable[[torch.Tensor], torch.Tensor],
    train: Rows,
    prepare: Prepare,
    optimiser_config: OptimiserConfig,
    seed: int,
    steps: int | None = None,
    validation: Rows | None = None,
    on_check: Callable[[Check], None] | None = None,
    device: torch.device | None = None,
    precision: str = "float32",
    held_out: Rows | None = None,
) -> Trained:
    """SGD with cross-entropy on logits for `steps` (default: the budget) optimiser steps.

    With `validation`, the model is restored to the state of its check with the lowest
    validation loss, and training stops once `patience` (> 0) checks in a row bring none lower.
    `held_out` rows are scored at every check for the history only: in evaluation mode, without
    gradients or random draws, so they change nothing the training does or returns besides.
    Every random draw (batch order, dropout) comes from generators seeded by `seed`, never from
    torch's global one, so concurrent trainings are reproducible.
    """
    device = device or resolve_device()
    budget = optimiser_config.steps if steps is None else steps
    model.to(device)
    generator = torch.Generator().manual_seed(seed)
    dropout = torch.Generator(device=device).manual_seed(seed + 1)
    optimiser = torch.optim.SGD(
        model.parameters(), lr=optimiser_config.lr, momentum=optimiser_config.momentum
    )
    loss_fn = nn.CrossEntropyLoss()
    checks: list[Check] = []
    best_loss, best_step, best_state, since_best = float("inf"), budget, None, 0
    early_stopped = False
    window_loss, window_correct, window_seen = 0.0, 0, 0
    batches = batch_order(len(train), optimiser_config.batch_size, generator)
    scored_batch = optimiser_config.batch_size * 4  # rows per batch when scoring, no gradients
    with _seeded_dropout(model, dropout):
        for step in range(1, budget + 1):
            model.train()
            index = train.index[next(batches)]
            batch = prepare(train.inputs[index], True).to(device)
            target = train.labels[index].to(device)
            optimiser.zero_grad()
            with autocast(device, precision):
                logits = classify(batch).float()
            loss = loss_fn(logits, target)
            loss.backward()
            optimiser.step()
            window_loss += loss.item() * len(index)
            window_correct += int((logits.argmax(1) == target).sum())
            window_seen += len(index)
            if step % optimiser_config.check_every and step != budget:
                continue
            model.eval()
            check = Check(step, window_loss / window_seen, window_correct / window_seen)
            window_loss, window_correct, window_seen = 0.0, 0, 0
            if validation is not None:
                logits = predict(classify, validation, prepare, scored_batch, device)
                check = validated(check, logits, validation)
                since_best += 1
                if check.val_loss < best_loss:
                    best_loss, best_step, since_best = check.val_loss, step, 0
                    best_state = copy.deepcopy({k: v.cpu() for k, v in model.state_dict().items()})
            if held_out is not None:
                logits = predict(classify, held_out, prepare, scored_batch, device)
                check = validated(check, logits, held_out, "held_out")
            checks.append(check)
            if on_check is not None:
                on_check(check)
            if validation is not None and 0 < optimiser_config.patience <= since_best:
                early_stopped = step < budget
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    history = pd.DataFrame([asdict(check) for check in checks])
    return Trained(history, best_step if validation is not None else budget, early_stopped)


def validated(check: Check, logits: torch.Tensor, rows: Rows, part: str = "val") -> Check:
    """`check` with the scores of `logits` (CPU, one row per row of `rows`) as its `part`'s:
    `val` (the inner validation split) or `held_out` (the fold's own validation rows)."""
    truth = rows.targets()
    result = scores(truth.numpy(), logits.argmax(1).numpy())
    return replace(
        check,
        **{
            f"{part}_loss": float(nn.functional.cross_entropy(logits, truth)),
            f"{part}_accuracy": result["accuracy"],
            f"{part}_balanced_accuracy": result["balanced_accuracy"],
        },
    )


@contextmanager
def _seeded_dropout(model: nn.Module, generator: torch.Generator) -> Iterator[None]:
    """Points every `SeededDropout` of the model at one generator while it trains."""
    layers = [m for m in model.modules() if isinstance(m, SeededDropout)]
    for layer in layers:
        layer.generator = generator
    try:
        yield
    finally:
        for layer in layers:  # generators do not pickle: registered models drop them
            layer.generator = None


def final_scores(
    classify: Callable[[torch.Tensor], torch.Tensor],
    train: Rows,
    prepare: Prepare,
    device: torch.device | None = None,
) -> dict[str, float]:
    """Loss and accuracy on the training rows as they are (no augmentation), in evaluation mode:
    the convergence evidence a learning curve needs."""
    device = device or resolve_device()
    logits = predict(classify, train, prepare, 256, device)
    truth = train.targets()
    result = scores(truth.numpy(), logits.argmax(1).numpy())
    return {
        "final_train_loss": float(nn.functional.cross_entropy(logits, truth)),
        "final_train_accuracy": result["accuracy"],
        "final_train_balanced_accuracy": result["balanced_accuracy"],
    }
