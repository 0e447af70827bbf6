"""Cross-validation of a family: each fold trained (`glasses.fitting`) on its training rows and
scored on its validation rows, which chose nothing; the folds' table and the step count of the
refit on all training images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from glasses.config import GlassesConfig
from glasses.families import SPECS, Family
from glasses.fitting import Fitted, Job, probe_jobs, train_many
from glasses.inference import logits
from glasses.metrics import scores
from glasses.result_format import stored
from glasses.training import Check


@stored
@dataclass
class FoldOutcome:
    history: pd.DataFrame  # one row per check, `Check`'s fields as columns
    steps: int
    early_stopped: bool
    final: dict[str, float]  # final_train_* scores
    validation: dict[str, float]  # the fold's validation scores, incl. `loss`


def run_fold(
    family: Family,
    config: GlassesConfig,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    manifest: pd.DataFrame,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    seed: int,
    on_check: Callable[[Check], None] | None = None,
) -> FoldOutcome:
    """Train on the fold's training rows — stopping early on an inner split of them when the
    family has patience — and score on its validation rows, which chose nothing."""
    fold = Fold(train_rows, val_rows, seed, on_check)
    return run_folds(family, config, inputs, labels, manifest, [fold])[0]


@dataclass(frozen=True)
class Fold:
    """A fold as `run_fold` takes it."""

    train_rows: np.ndarray
    val_rows: np.ndarray
    seed: int
    on_check: Callable[[Check], None] | None = None


def run_folds(
    family: Family,
    config: GlassesConfig,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    manifest: pd.DataFrame,
    folds: list[Fold],
) -> list[FoldOutcome]:
    """`run_fold` for every fold, trained together where the family stacks
    (`glasses.fitting.train_many`). With `split.fold_curves` each fold's validation rows are
    also scored at every check, for its history's held-out curve: watched, never used to choose
    or stop."""
    watched = config.split.fold_curves
    jobs = [
        Job(
            fold.train_rows,
            fold.seed,
            on_check=fold.on_check,
            held_out_rows=fold.val_rows if watched else None,
        )
        for fold in folds
    ]
    if SPECS[family].optimiser(config).patience:
        jobs = probe_jobs(jobs, manifest, config.split.inner_share)
    fitted = train_many(family, config, inputs, labels, jobs)
    return [
        _scored(one, inputs, labels, fold.val_rows) for one, fold in zip(fitted, folds, strict=True)
    ]


def _scored(
    fitted: Fitted, inputs: torch.Tensor, labels: torch.Tensor, val_rows: np.ndarray
) -> FoldOutcome:
    predicted = logits_for(fitted.model, inputs, val_rows)
    truth = labels[torch.from_numpy(val_rows)]
    validation = scores(truth.numpy(), predicted.argmax(1).numpy())
    validation["loss"] = float(nn.functional.cross_entropy(predicted, truth))
    return FoldOutcome(
        fitted.trained.history,
        fitted.trained.steps,
        fitted.trained.early_stopped,
        fitted.final,
        validation,
    )


def refit_steps(outcomes: list[FoldOutcome]) -> int:
    """Steps of the model trained on the whole training split: the folds' median choice."""
    return int(np.median([outcome.steps for outcome in outcomes]))


# Short headers, so that the table fits the UIs' panes (MLflow gives a CSV column 200 px,
# Prefect's markdown cells do not wrap); `TABLE_LEGEND` spells them out.
TABLE_COLUMNS = {
    "accuracy": "acc",
    "balanced_accuracy": "bal acc",
    "macro_f1": "macro-F1",
    "f1": "F1",
    "loss": "loss",
}
TRAIN_ACCURACY, STEPS, STOPPED_EARLY = "train acc", "steps", "early stop"
TABLE_LEGEND = (
    "acc, bal acc, macro-F1, F1, loss: scores on the fold's validation rows, which chose "
    "nothing: accuracy, balanced accuracy (mean recall of the two classes), mean F1 of the two "
    "classes, F1 of the glasses class, cross-entropy. train acc: accuracy on the fold's "
    "training rows, un-augmented, after training. steps: optimiser steps of the model scored; "
    "early stop: whether early stopping ended its training before the budget."
)


def fold_table(outcomes: list[FoldOutcome]) -> pd.DataFrame:
    """The seed's Table 1 / 2, with each fold scored at its pre-fixed rule (the step chosen on an
    inner split, or the last), then mean and standard deviation; headers as `TABLE_LEGEND`
    explains them."""
    rows = pd.DataFrame(
        [
            {
                **{name: o.validation[key] for key, name in TABLE_COLUMNS.items()},
                TRAIN_ACCURACY: o.final["final_train_accuracy"],
            }
            for o in outcomes
        ],
        index=[f"fold {i + 1}" for i in range(len(outcomes))],
    )
    summary = pd.DataFrame({"mean": rows.mean(), "std": rows.std(ddof=1)}).T
    table = pd.concat([rows, summary])
    table.index.name = "fold"  # after concat, which drops a name the summary rows lack
    table[STEPS] = pd.array([o.steps for o in outcomes] + [None, None], dtype="Int64")
    table[STOPPED_EARLY] = [str(o.early_stopped).lower() for o in outcomes] + ["", ""]
    return table


def logits_for(model: nn.Module, inputs: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
    """Logits for the given rows of a family's stored inputs: pixels (CNN) or cached coefficients
    (ScatNet), which give the logits of its images without recomputing the transform."""
    return logits(model, inputs, rows, stored=True, batch_size=128)
