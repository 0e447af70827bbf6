"""SHAP values with a black background, from shap's Partition explainer.

Explained score: the LOGIT of the target class, as for IG, so that SHAP's additivity
sum(phi) = f(x) - f(black) and IG's completeness are statements about the same number.

Why the Partition explainer with a black `Image` masker, and not the alternatives:

* `DeepExplainer` (DeepLIFT rescale rule) is exact on the CNN, but it only knows torch modules
  such as ReLU and max-pooling: the scattering transform's complex modulus is a functional op
  inside kymatio's module, which it passes through as if it were linear. Measured on the quick
  ScatNet: sum(phi) was 1.3 and 2.4 where f(x) - f(black) was 15.0 and 15.7. One explainer must
  serve both models, or the comparison between them would compare explainers.
* `GradientExplainer` (expected gradients) works through any differentiable model, but with a
  single all-black background it is IG with randomly drawn alphas: a noisier copy of the black
  IG map, not an independent method, with additivity only up to Monte Carlo error (1-20 % of
  f(x) - f(black) at 50 samples on the quick ScatNet, more where that difference is small) and
  a forward AND a backward pass per sample and output.
* `PartitionExplainer` is model-agnostic (forward passes only, so the scattering transform is
  just part of the model), and computes Owen values over shap's hierarchy of image blocks, hiding
  a block by setting it to black. Its values add up exactly by construction: every split hands
  its parent's f(with) - f(without) on to its two children, so sum(phi) = f(x) - f(black) holds
  to float rounding whatever the evaluation budget. `max_evals` only sets how finely the
  hierarchy is resolved, best-first where the output changes most: a 64 px map has about 15
  distinct block values at 100 evaluations and 35-45 at 500, finer around what matters.

Additivity is checked on every explanation anyway, with the model's own forward passes: the gap
comes from float32 rounding in batches of different composition and is expected below
`ADDITIVITY_TOLERANCE` (measured up to 1e-6 on the quick models, whose logits are below 20).

shap breaks exact ties in its best-first queue with `np.random.randn()`, numpy's global generator
(its only random draw here: the `Image` masker and the partition tree are deterministic). Each
explainer gets its own seeded generator for those draws instead (`_seeded_owen`), so maps are
bit-reproducible in any thread and numpy's global state is never read or changed.
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
