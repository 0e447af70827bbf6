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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import compress
from typing import TypeVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from glasses.augment import augment
from glasses.config import GlassesConfig
from glasses.data.splits import inner_validation_mask
from glasses.families import SPECS, Family
from glasses.heads import HeadTraining, heads_per_stack, train_heads
from glasses.training import (
    Check,
    Classify,
    Prepare,
    Rows,
    Trained,
    final_scores,
    resolve_device,
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


@dataclass(frozen=True)
class Job:
    """One training of `train_many`: as `train_on` takes it."""

    rows: np.ndarray
    seed: int
    steps: int | None = None
    validation_rows: np.ndarray | None = None
    on_check: Callable[[Check], None] | None = None
    held_out_rows: np.ndarray | None = None  # scored at every check, for the history only


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
    job = Job(rows, seed, steps, validation_rows, on_check)
    return train_many(family, config, inputs, labels, [job])[0]


def stack_size(family: Family, config: GlassesConfig) -> int:
    """Trainings of `family` that `train_many` trains together (`glasses.heads.heads_per_stack`
    where the family stacks, else one): also how many a task is given."""
    return heads_per_stack(config) if SPECS[family].stacked else 1


T = TypeVar("T")


def in_stacks(family: Family, config: GlassesConfig, items: Sequence[T]) -> list[list[T]]:
    """`items` (folds, outer plans) in the groups that one task trains together: `stack_size`
    at a time, in their order."""
    size = stack_size(family, config)
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


def train_many(
    family: Family,
    config: GlassesConfig,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    jobs: list[Job],
) -> list[Fitted]:
    """`train_on` for every job, on the same inputs: a family whose trainings stack
    (`FamilySpec.stacked`) trains them together, `stack_size` at a time, each to the result of
    its own training (`glasses.heads`); the others one after another."""
    spec = SPECS[family]
    device = resolve_device(config.runtime.device)
    precision = config.runtime.precision
    optimiser = spec.optimiser(config)
    fitted: list[Fitted] = []
    for chunk in in_stacks(family, config, jobs):
        models = [build_model(family, config, job.seed) for job in chunk]
        originals = [Rows.of(inputs, labels, job.rows) for job in chunk]
        trains = [rows.with_copies() for rows in originals]
        validations = [_rows(inputs, labels, job.validation_rows) for job in chunk]
        held_out = [_rows(inputs, labels, job.held_out_rows) for job in chunk]
        for model, train in zip(models, trains, strict=True):
            spec.fit_standardisation(model, inputs, train.index)
        if spec.stacked:
            heads = [
                HeadTraining(model, train, job.seed, job.steps, validation, job.on_check, watched)
                for model, train, job, validation, watched in zip(
                    models, trains, chunk, validations, held_out, strict=True
                )
            ]
            trained = train_heads(heads, optimiser, device, precision)
        else:
            trained = []
            for model, train, job, validation, watched in zip(
                models, trains, chunk, validations, held_out, strict=True
            ):
                classify, prepare = _adapters(family, model, config, job.seed + 1)
                trained.append(
                    train_steps(
                        model,
                        classify,
                        train,
                        prepare,
                        optimiser,
                        job.seed,
                        steps=job.steps,
                        validation=validation,
                        on_check=job.on_check,
                        device=device,
                        precision=precision,
                        held_out=watched,
                    )  # fmt: skip
                )
        for model, rows, result in zip(models, originals, trained, strict=True):
            classify, prepare = _adapters(family, model, None, 0)
            final = final_scores(classify, rows, prepare, device)
            fitted.append(Fitted(model.cpu().eval(), result, final, len(rows)))
    return fitted


def _rows(inputs: torch.Tensor, labels: torch.Tensor, rows: np.ndarray | None) -> Rows | None:
    return None if rows is None else Rows.of(inputs, labels, rows)


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
    return fit_many(
        family, config, inputs, labels, manifest, [Job(rows, seed, steps, None, on_check)]
    )[0]


def fit_many(
    family: Family,
    config: GlassesConfig,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    manifest: pd.DataFrame,
    jobs: list[Job],
) -> list[Fitted]:
    """`fit` for every job (its rows, seed, steps and checks; no validation rows), trained
    together where the family stacks (`train_many`): the probes of those that stop early, then
    every refit."""
    patience = SPECS[family].optimiser(config).patience
    searched = [job.steps is None and patience > 0 for job in jobs]
    searching = probe_jobs(list(compress(jobs, searched)), manifest, config.split.inner_share)
    probes = iter(train_many(family, config, inputs, labels, searching))
    probed = [next(probes) if search else None for search in searched]
    refits = train_many(
        family,
        config,
        inputs,
        labels,
        [
            job if chosen is None else Job(job.rows, job.seed, chosen.trained.steps)
            for job, chosen in zip(jobs, probed, strict=True)
        ],
    )
    return [
        refit if chosen is None else Fitted(refit.model, chosen.trained, refit.final, refit.images)
        for refit, chosen in zip(refits, probed, strict=True)
    ]


def probe_jobs(jobs: list[Job], manifest: pd.DataFrame, inner_share: float) -> list[Job]:
    """Every job (its rows, seed, checks and held-out rows) on its rows less an inner split,
    which early stopping watches: what `train_many` trains to choose a step count."""
    probes = []
    for job in jobs:
        inner = inner_validation_mask(manifest.iloc[job.rows], inner_share, job.seed)
        probes.append(replace(job, rows=job.rows[~inner], validation_rows=job.rows[inner]))
    return probes
