"""Cross-validation of one model family: build, train and summarise its folds.

A family is the CNN (learns from pixels) or the ScatNet (learns from cached scattering
coefficients); everything else about a fold — data, protocol, scores — is the same for both.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from glasses.augment import augment
from glasses.config import GlassesConfig, OptimiserConfig
from glasses.data.splits import fold_of
from glasses.models.cnn import CNN
from glasses.models.scatnet import ScatNet
from glasses.training import (
    EpochRecord,
    FoldOutcome,
    Prepare,
    default_device,
    predict,
    rank,
    train_fold,
)

Family = Literal["cnn", "scatnet"]
FAMILIES: tuple[Family, ...] = ("cnn", "scatnet")

# torch's global generator seeds weight initialisation; concurrent folds take turns with it.
_init_lock = threading.Lock()


def build_model(family: Family, config: GlassesConfig, seed: int) -> nn.Module:
    with _init_lock:
        torch.manual_seed(seed)
        if family == "cnn":
            return CNN(config.cnn, config.data.image_size)
        return ScatNet(config.scatnet, config.data.image_size)


def optimiser_config(family: Family, config: GlassesConfig) -> OptimiserConfig:
    return config.cnn.optimiser if family == "cnn" else config.scatnet.optimiser


def pixels_to_input(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels as the [0, 1] floats every model takes."""
    return pixels.float() / 255


def _pixel_preparation(config: GlassesConfig, seed: int) -> Prepare:
    generator = torch.Generator().manual_seed(seed)

    def prepare(batch: torch.Tensor, training: bool) -> torch.Tensor:
        images = pixels_to_input(batch)
        return augment(images, config.augment, generator) if training else images

    return prepare


def run_fold(
    family: Family,
    config: GlassesConfig,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    train_index: np.ndarray,
    val_index: np.ndarray,
    seed: int,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> tuple[nn.Module, FoldOutcome]:
    """Train one fold; `inputs` are uint8 pixels for the CNN, coefficients for the ScatNet.

    The returned model holds the fold's best checkpoint. The ScatNet gets no image augmentation:
    its coefficients are computed once from the un-augmented images (see README).
    """
    model = build_model(family, config, seed)
    train = (inputs[train_index], labels[train_index])
    validation = (inputs[val_index], labels[val_index])
    if family == "cnn":
        classify, prepare = model, _pixel_preparation(config, seed + 1)
    else:
        assert isinstance(model, ScatNet)
        model.fit_standardisation(train[0])
        classify, prepare = model.classify, _identity
    outcome = train_fold(
        model,
        classify,
        train,
        validation,
        prepare,
        optimiser_config(family, config),
        seed,
        on_epoch,
    )
    model.load_state_dict(outcome.best_state)
    return model.cpu().eval(), outcome


def _identity(batch: torch.Tensor, training: bool) -> torch.Tensor:
    return batch


TABLE_COLUMNS = {
    "val_f1": "F1 val",
    "train_f1": "F1 train",
    "val_accuracy": "accuracy val",
    "train_accuracy": "accuracy train",
    "val_loss": "loss val",
}


def fold_table(outcomes: list[FoldOutcome]) -> pd.DataFrame:
    """The seed's Table 1 / 2: each fold's kept epoch, then mean and standard deviation."""
    rows = pd.DataFrame(
        [{column: getattr(o.best, column) for column in TABLE_COLUMNS} for o in outcomes],
        index=[f"fold {i + 1}" for i in range(len(outcomes))],
    )
    summary = pd.DataFrame({"mean": rows.mean(), "std": rows.std(ddof=1)}).T
    table = pd.concat([rows, summary]).rename(columns=TABLE_COLUMNS)
    table["kept epoch"] = pd.array([o.best.epoch for o in outcomes] + [None, None], dtype="Int64")
    return table


def best_fold(outcomes: list[FoldOutcome]) -> int:
    """Index of the fold whose kept checkpoint ranks best."""
    return max(range(len(outcomes)), key=lambda i: rank(outcomes[i].best))


def cross_validate_rows(
    family: Family,
    config: GlassesConfig,
    manifest: pd.DataFrame,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    rows: np.ndarray,
    folds: int,
    seed: int,
) -> tuple[nn.Module, list[FoldOutcome]]:
    """The main protocol on a subset of rows: grouped stratified folds, best fold's model kept.

    Used by the shrinking-dataset sweep, so every point is trained exactly like the main run.
    """
    assignment = fold_of(manifest.iloc[rows].reset_index(drop=True), folds, seed)
    models, outcomes = [], []
    for fold in range(folds):
        model, outcome = run_fold(
            family,
            config,
            inputs,
            labels,
            rows[assignment != fold],
            rows[assignment == fold],
            seed + 1000 * fold,
        )
        models.append(model)
        outcomes.append(outcome)
    return models[best_fold(outcomes)], outcomes


def predict_rows(
    family: Family, model: nn.Module, inputs: torch.Tensor, rows: np.ndarray
) -> np.ndarray:
    """Predicted classes for the given rows, from pixels (CNN) or cached coefficients (ScatNet).

    For the ScatNet, classifying cached coefficients equals running the full model on the
    images, without recomputing the transform.
    """
    device = default_device()
    model = model.to(device).eval()
    if family == "cnn":
        classify, prepare = model, lambda batch, _: pixels_to_input(batch)
    else:
        assert isinstance(model, ScatNet)
        classify, prepare = model.classify, _identity
    logits = predict(classify, inputs[torch.from_numpy(rows)], prepare, 128, device)
    model.cpu()
    return logits.argmax(1).numpy()
