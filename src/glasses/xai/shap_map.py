"""SHAP values with a black background, from shap's Partition explainer (why this one:
docs/decisions/0002).

Explained score: the LOGIT of the target class, as for IG, so that SHAP's additivity
sum(phi) = f(x) - f(black) and IG's completeness are statements about the same number; it holds
by construction and is checked on every explanation (`ADDITIVITY_TOLERANCE`). shap breaks exact
ties with numpy's global generator; each explainer gets its own seeded generator for those draws
instead (`_seeded_owen`), so maps are bit-reproducible in any thread and numpy's global state is
never read or changed.
"""

from __future__ import annotations

import types

import numpy as np
import shap
import torch
from torch import nn

from glasses.xai.integrated_gradients import Targets, as_targets, target_logits
from glasses.xai.lime_map import model_outputs

ADDITIVITY_TOLERANCE = 1e-4


class _NumpyWithOwnRandom:
    """numpy as shap's Partition code sees it, except that `np.random` is a seeded RandomState."""

    def __init__(self, seed: int) -> None:
        self.random = np.random.RandomState(seed)

    def __getattr__(self, name: str) -> object:
        return getattr(np, name)


def _seeded_owen(explainer: shap.PartitionExplainer, seed: int) -> types.MethodType:
    """shap's own `owen` recursion bound to `explainer`, its global `np` swapped for one whose
    tie-breaking draws come from RandomState(seed): the same draws `np.random.seed(seed)` gave,
    without touching the global generator. Only this explainer's attribute is set."""
    owen = shap.PartitionExplainer.owen
    namespace = {**owen.__globals__, "np": _NumpyWithOwnRandom(seed)}
    function = types.FunctionType(
        owen.__code__, namespace, owen.__name__, owen.__defaults__, owen.__closure__
    )
    return types.MethodType(function, explainer)


def shap_attributions(
    model: nn.Module,
    images: torch.Tensor,
    targets: Targets,
    *,
    max_evals: int,
    seed: int,
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """N x C x H x W SHAP values of each target logit, and each image's additivity gap.

    `max_evals` model evaluations per image, `batch_size` of them per forward pass. Not a
    speed setting: the Partition explainer expands its mask tree a batch at a time, so the
    batch size decides which masks the evaluations are spent on.
    """
    labels = as_targets(targets, len(images), images.device)
    pixels = images.detach().permute(0, 2, 3, 1).cpu().double().numpy()
    masker = shap.maskers.Image(0.0, pixels.shape[1:])
    explainer = shap.PartitionExplainer(lambda batch: model_outputs(model, batch).numpy(), masker)
    values = []
    for image, target in zip(pixels, labels.tolist(), strict=True):
        explainer.owen = _seeded_owen(explainer, seed)  # per image: independent of the batch
        explanation = explainer(
            image[None], max_evals=max_evals, batch_size=batch_size, outputs=[target], silent=True
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
