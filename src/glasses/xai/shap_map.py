"""SHAP values with a black background, from shap's Partition explainer (why this one:
docs/decisions/0002).

Explained score: the LOGIT of the target class, as for IG, so that SHAP's additivity
sum(phi) = f(x) - f(black) and IG's completeness are statements about the same number; it holds
by construction and is checked on every explanation (`ADDITIVITY_TOLERANCE`). Each image is
explained under a seeded global numpy state (shap breaks ties with it), so maps are
bit-reproducible when one thread at a time runs SHAP.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import shap
import torch
from torch import nn

from glasses.xai.integrated_gradients import Targets, as_targets, target_logits
from glasses.xai.lime_map import model_outputs

ADDITIVITY_TOLERANCE = 1e-4


@contextmanager
def _numpy_seed(seed: int) -> Iterator[None]:
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def shap_attributions(
    model: nn.Module,
    images: torch.Tensor,
    targets: Targets,
    max_evals: int = 500,
    batch_size: int = 64,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """N x C x H x W SHAP values of each target logit, and each image's additivity gap.

    `max_evals` model evaluations per image, `batch_size` of them per forward pass.
    """
    labels = as_targets(targets, len(images), images.device)
    pixels = images.detach().permute(0, 2, 3, 1).cpu().double().numpy()
    masker = shap.maskers.Image(0.0, pixels.shape[1:])
    explainer = shap.PartitionExplainer(lambda batch: model_outputs(model, batch).numpy(), masker)
    values = []
    for image, target in zip(pixels, labels.tolist(), strict=True):
        with _numpy_seed(seed):
            explanation = explainer(
                image[None],
                max_evals=max_evals,
                batch_size=batch_size,
                outputs=[target],
                silent=True,
            )
        values.append(explanation.values[0, ..., 0].transpose(2, 0, 1))
    attributions = np.stack(values)
    return attributions, additivity_gap(model, images, labels, attributions)


def additivity_gap(
    model: nn.Module, images: torch.Tensor, targets: Targets, attributions: np.ndarray
) -> np.ndarray:
    """Per image |sum(phi) - (f(x) - f(black))|, f the target logit, from fresh forward passes."""
    labels = as_targets(targets, len(images), images.device)
    with torch.no_grad():
        difference = target_logits(model, images, labels) - target_logits(
            model, torch.zeros_like(images), labels
        )
    totals = attributions.reshape(len(attributions), -1).sum(axis=1)
    return np.abs(totals - difference.double().cpu().numpy())
