"""A model of one family trained on given rows: the protocol every training follows, whether a
cross-validation fold (`glasses.crossval`), the refit on all training images or a point of the
sweep.

A family is the CNN (learns from pixels) or the ScatNet (learns from cached scattering
coefficients); how its network reads its inputs is its `FamilySpec`'s business, everything else
about training — data, budget, early stopping, scores — is the same for both. A model is always
trained for a step count chosen without the rows it is scored on: on an inner validation split
(early stopping, `patience` > 0) or fixed in advance (the budget), so fold scores are honest and
a sweep point labelled N was trained on N images.
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
from glasses.training import (
    Check,
    Classify,
    Prepare,
    Rows,
    Trained,
    final_scores,
    train_steps,
)

# torch's global generator seeds weight initialisation; concurrent trainings take turns with it.
_init_lock = threading.Lock()


def build_model(family: Family, config: GlassesConfig, seed: int) -> nn.Module:
    with _init_lock:
        torch.manual_seed(seed)
        spec = SPECS[family]
        return spec.build(spec.settings(config), config.data.image_size)


def _adapters(
    family: Family, model: nn.Module, config: GlassesConfig | None, seed: int
) -> tuple[Classify, Prepare]:
    """(classify, prepare) of a family's stored inputs (see `FamilySpec`): augmented while
    training where the family augments batches (never without a config), else as they are read."""
    spec = SPECS[family]
    classify = spec.classifier(model)
    if config is None or not spec.augments_batches:
        return classify, lambda batch, _: spec.to_input(batch)
    generator = torch.Generator().manual_seed(seed)

    def prepare(batch: torch.Tensor, training: bool) -> torch.Tensor:
        images = spec.to_input(batch)
        return augment(images, config.augment, generator) if training else images

    return classify, prepare


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
    SPECS[family].fit_standardisation(model, inputs, train.index)
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
    probed = probe(family, config, inputs, labels, manifest, rows, seed, on_check)
    refit = train_on(family, config, inputs, labels, rows, seed, probed.trained.steps)
    return Fitted(refit.model, probed.trained, refit.final, len(rows))


def probe(
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
