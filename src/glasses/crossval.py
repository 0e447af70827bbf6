"""The training protocol of both model families: cross-validation folds, the refit on all
training images, and a fit on any subset of rows (the sweep's points).

A family is the CNN (learns from pixels) or the ScatNet (learns from cached scattering
coefficients); everything else about training — data, budget, early stopping, scores — is the
same for both. A model is always trained for a step count chosen without the rows it is scored
on: on an inner validation split (early stopping, `patience` > 0) or fixed in advance (the
budget), so fold scores are honest and a sweep point labelled N was trained on N images.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from glasses.augment import augment
from glasses.config import GlassesConfig
from glasses.data.splits import inner_validation_mask
from glasses.families import SPECS, Family
from glasses.metrics import scores
from glasses.models.scatnet import ScatNet
from glasses.result_format import stored
from glasses.training import (
    Check,
    Prepare,
    Rows,
    Trained,
    default_device,
    final_scores,
    predict,
    train_steps,
)

# torch's global generator seeds weight initialisation; concurrent trainings take turns with it.
_init_lock = threading.Lock()


def build_model(family: Family, config: GlassesConfig, seed: int) -> nn.Module:
    with _init_lock:
        torch.manual_seed(seed)
        spec = SPECS[family]
        return spec.build(spec.settings(config), config.data.image_size)


def pixels_to_input(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels as the [0, 1] floats every model takes."""
    return pixels.float() / 255


def _identity(batch: torch.Tensor, training: bool) -> torch.Tensor:
    return batch


def _adapters(
    family: Family, model: nn.Module, config: GlassesConfig | None, seed: int
) -> tuple[Callable[[torch.Tensor], torch.Tensor], Prepare]:
    """(classify, prepare) of a family: pixels, augmented while training, for the CNN (no
    augmentation without a config); cached coefficients as they are for the ScatNet."""
    if SPECS[family].inputs == "coefficients":
        assert isinstance(model, ScatNet)
        return model.classify, _identity
    if config is None:
        return model, lambda batch, _: pixels_to_input(batch)
    generator = torch.Generator().manual_seed(seed)

    def prepare(batch: torch.Tensor, training: bool) -> torch.Tensor:
        images = pixels_to_input(batch)
        return augment(images, config.augment, generator) if training else images

    return model, prepare


@dataclass
class Fitted:
    model: nn.Module  # eval mode, on the CPU
    trained: Trained  # the training that chose the step count (the only one without patience)
    final: dict[str, float]  # final_train_* scores on the rows the model was trained on
    images: int  # rows the model was trained on


def train_on(
    family: Family,
    config: GlassesConfig,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    rows: np.ndarray,
    seed: int,
    steps: int | None = None,
    validation_rows: np.ndarray | None = None,
    on_check: Callable[[Check], None] | None = None,
) -> Fitted:
    """One training on `rows`; `inputs` are uint8 pixels (CNN) or coefficients (ScatNet).

    With `validation_rows` it stops early and keeps its best check (see `train_steps`). The
    ScatNet's coefficients are computed once, from the un-augmented images or, where `inputs`
    holds augmented copies after them, from those too: training then samples among each
    training row's copies, while validation and the final scores read the originals only.
    Its standardisation is fitted on the training rows (and their copies) only.
    """
    model = build_model(family, config, seed)
    originals = Rows.of(inputs, labels, rows)
    train = originals.with_copies()
    if isinstance(model, ScatNet):
        model.fit_standardisation(inputs, train.index)
    classify, prepare = _adapters(family, model, config, seed + 1)
    validation = None if validation_rows is None else Rows.of(inputs, labels, validation_rows)
    trained = train_steps(
        model,
        classify,
        train,
        prepare,
        SPECS[family].optimiser(config),
        seed,
        steps=steps,
        validation=validation,
        on_check=on_check,
    )
    final = final_scores(classify, originals, _adapters(family, model, None, seed)[1])
    return Fitted(model.cpu().eval(), trained, final, len(rows))


def fit(
    family: Family,
    config: GlassesConfig,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    manifest: pd.DataFrame,
    rows: np.ndarray,
    seed: int,
    steps: int | None = None,
    on_check: Callable[[Check], None] | None = None,
) -> Fitted:
    """A model trained on exactly `rows`: for `steps` when given; else, with patience, for the
    step count early stopping chose on an inner split of `rows` (then refit on all of them);
    else for the whole budget."""
    patience = SPECS[family].optimiser(config).patience
    if steps is not None or not patience:
        return train_on(family, config, inputs, labels, rows, seed, steps, on_check=on_check)
    probe = _probe(family, config, inputs, labels, manifest, rows, seed, on_check)
    refit = train_on(family, config, inputs, labels, rows, seed, probe.trained.steps)
    return Fitted(refit.model, probe.trained, refit.final, len(rows))


def _probe(
    family: Family,
    config: GlassesConfig,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    manifest: pd.DataFrame,
    rows: np.ndarray,
    seed: int,
    on_check: Callable[[Check], None] | None,
) -> Fitted:
    """Trained on `rows` less an inner split, which early stopping watches."""
    inner = inner_validation_mask(manifest.iloc[rows], config.split.inner_share, seed)
    return train_on(family, config, inputs, labels, rows[~inner], seed, None, rows[inner], on_check)


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
    if SPECS[family].optimiser(config).patience:
        fitted = _probe(family, config, inputs, labels, manifest, train_rows, seed, on_check)
    else:
        fitted = train_on(family, config, inputs, labels, train_rows, seed, on_check=on_check)
    logits = logits_for(family, fitted.model, inputs, val_rows)
    truth = labels[torch.from_numpy(val_rows)]
    validation = scores(truth.numpy(), logits.argmax(1).numpy())
    validation["loss"] = float(nn.functional.cross_entropy(logits, truth))
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


TABLE_COLUMNS = {
    "accuracy": "accuracy val",
    "balanced_accuracy": "balanced accuracy val",
    "macro_f1": "macro-F1 val",
    "f1": "F1 val",
    "loss": "loss val",
}


def fold_table(outcomes: list[FoldOutcome]) -> pd.DataFrame:
    """The seed's Table 1 / 2, with each fold scored at its pre-fixed rule (the step chosen on an
    inner split, or the last), then mean and standard deviation."""
    rows = pd.DataFrame(
        [
            {
                **{name: o.validation[key] for key, name in TABLE_COLUMNS.items()},
                "accuracy train": o.final["final_train_accuracy"],
            }
            for o in outcomes
        ],
        index=[f"fold {i + 1}" for i in range(len(outcomes))],
    )
    summary = pd.DataFrame({"mean": rows.mean(), "std": rows.std(ddof=1)}).T
    table = pd.concat([rows, summary])
    table["steps"] = pd.array([o.steps for o in outcomes] + [None, None], dtype="Int64")
    table["stopped early"] = [str(o.early_stopped).lower() for o in outcomes] + ["", ""]
    return table


def logits_for(
    family: Family, model: nn.Module, inputs: torch.Tensor, rows: np.ndarray
) -> torch.Tensor:
    """Logits for the given rows, from pixels (CNN) or cached coefficients (ScatNet).

    For the ScatNet, classifying cached coefficients equals running the full model on the
    images, without recomputing the transform.
    """
    device = default_device()
    model = model.to(device).eval()
    classify, prepare = _adapters(family, model, None, 0)
    logits = predict(classify, Rows.of(inputs, None, rows), prepare, 128, device)
    model.cpu()
    return logits
