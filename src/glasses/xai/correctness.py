"""Are the explanations right, not only alike? Localisation, faithfulness and a sanity check.

Agreement between methods (`glasses.xai.agreement`) cannot tell two equally wrong maps from two
right ones. These three tests can, each against a different reference:

- *localisation* against ground truth: the glasses masks of the synthetic data;
- *faithfulness* against the model itself: deleting what a map calls important should hurt;
- *sanity* against a randomised model (Adebayo et al. 2018): a map that survives the destruction
  of the weights explains the input, not the model.

Maps are H x W numpy floats, aggregated over colour channels like in `glasses.xai.agreement`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import ndimage, stats
from torch import nn

from glasses.xai.agreement import finite_interval

Explain = Callable[[nn.Module, torch.Tensor, torch.Tensor], np.ndarray]


def _check_mask(map_: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Localisation is only defined where there is something to find: an empty mask is refused
    rather than scored 0, which would silently drag the means down."""
    map_, mask = np.asarray(map_, dtype=np.float64), np.asarray(mask, dtype=bool)
    if map_.shape != mask.shape or map_.ndim != 2:
        raise ValueError(f"map {map_.shape} and mask {mask.shape} must be one H x W shape")
    if not mask.any():
        raise ValueError("the mask is empty: score localisation on images with glasses only")
    return map_, mask


def relevance_mass_accuracy(map_: np.ndarray, mask: np.ndarray) -> float:
    """Share of the positive attribution mass inside the mask (Arras et al. 2022); nan if none.

    Mass rather than the top pixel: it rewards maps that put *all* their evidence on the
    glasses, and a uniform map scores only the mask's area share.
    """
    map_, mask = _check_mask(map_, mask)
    positive = np.clip(map_, 0, None)
    total = positive.sum()
    return float(positive[mask].sum() / total) if total > 0 else float("nan")


def pointing_game(map_: np.ndarray, mask: np.ndarray, tolerance: float = 0) -> bool:
    """Is the map's maximum within `tolerance` pixels (Euclidean) of the mask (Zhang et al.)?

    Ties go to the first maximum in row-major order, so a flat map gives a fixed answer.
    """
    map_, mask = _check_mask(map_, mask)
    peak = np.unravel_index(np.argmax(map_), map_.shape)
    distance_to_mask = ndimage.distance_transform_edt(~mask)
    return bool(distance_to_mask[peak] <= tolerance)


@contextmanager
def _evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """eval mode for deterministic probabilities (no dropout), restored afterwards."""
    training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(training)


def deletion_curve(
    model: nn.Module,
    image: torch.Tensor,
    target: int,
    map_: np.ndarray,
    steps: int = 20,
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Probability of `target` as the most important pixels turn black, in `steps` equal steps.

    Black (all channels 0) is the study's baseline, so "deleted" means the same thing as the
    IG and SHAP baselines. Ties in the map are broken by row-major position. All steps + 1
    perturbed images are built at once and scored in batches; the model and `image` must be on
    one device. Returns the deleted fractions (0 … 1) and the probabilities.
    """
    channels, height, width = image.shape
    if np.shape(map_) != (height, width):
        raise ValueError(f"map {np.shape(map_)} does not match image {tuple(image.shape)}")
    pixels = height * width
    order = np.argsort(-np.asarray(map_, dtype=np.float64).ravel(), kind="stable")
    rank = torch.empty(pixels, dtype=torch.long, device=image.device)
    rank[torch.as_tensor(order, device=image.device)] = torch.arange(pixels, device=image.device)
    counts = np.rint(np.linspace(0, pixels, steps + 1)).astype(np.int64)
    keep = rank[None, :] >= torch.as_tensor(counts, device=image.device)[:, None]
    perturbed = image[None] * keep.view(-1, 1, height, width).to(image.dtype)
    with torch.no_grad(), _evaluating(model):
        probabilities = torch.cat(
            [model(batch).softmax(dim=1)[:, target] for batch in perturbed.split(batch_size)]
        )
    return counts / pixels, probabilities.double().cpu().numpy()


def deletion_area(fractions: np.ndarray, probabilities: np.ndarray) -> float:
    """Area under the deletion curve (trapezoid rule); lower means a more faithful map."""
    return float(np.trapezoid(probabilities, fractions))


def randomisation_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Trainable Linear/Conv2d layers, output first: the order in which they are randomised.

    Relies on modules being registered in forward order, true of the project's models. The
    ScatNet yields only its head: its scattering filters are fixed wavelets, not learned, so
    there is nothing to randomise there, and that is by design.
    """
    layers = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear | nn.Conv2d) and module.weight.requires_grad
    ]
    return layers[::-1]


def _randomise(layer: nn.Module, generator: torch.Generator) -> None:
    """Xavier-normal weights and N(0, 0.01²) biases, drawn on the CPU so that a seed gives the
    same weights on every device."""
    weight = torch.empty(layer.weight.shape)
    nn.init.xavier_normal_(weight, generator=generator)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if layer.bias is not None:
            bias = torch.empty(layer.bias.shape).normal_(0.0, 0.01, generator=generator)
            layer.bias.copy_(bias)


def _rank_correlations(original: np.ndarray, randomised: np.ndarray) -> np.ndarray:
    """Spearman of |maps| per image, as Adebayo et al.: a sign flip of the whole map is not a
    change of what it highlights. nan where a map is constant."""
    values = []
    for before, after in zip(np.abs(original), np.abs(randomised), strict=True):
        flat = np.ptp(before) == 0 or np.ptp(after) == 0
        values.append(np.nan if flat else stats.spearmanr(before.ravel(), after.ravel())[0])
    return np.asarray(values, dtype=np.float64)


def cascading_randomisation(
    model: nn.Module,
    explain: Explain,
    images: torch.Tensor,
    targets: torch.Tensor,
    seed: int = 0,
) -> pd.DataFrame:
    """Cascading model randomisation (Adebayo et al. 2018), from the output layer backwards.

    `explain(model, images, targets)` returns N x H x W maps. The model is deep-copied (the
    caller's stays intact) and put in eval mode; after each further layer is randomised, the
    maps are recomputed and rank-correlated with the originals per image. Rows: step (0 = the
    intact model, correlation 1 by definition), layer (the one randomised last), mean, ci_low,
    ci_high (95 % bootstrap over images), n.
    """
    randomised = copy.deepcopy(model).eval()
    original = np.asarray(explain(randomised, images, targets))
    generator = torch.Generator().manual_seed(seed)
    rows = [(0, "none", *finite_interval(np.ones(len(original)), seed=seed))]
    for step, (name, layer) in enumerate(randomisation_layers(randomised), start=1):
        _randomise(layer, generator)
        maps = np.asarray(explain(randomised, images, targets))
        rows.append((step, name, *finite_interval(_rank_correlations(original, maps), seed=seed)))
    return pd.DataFrame(rows, columns=["step", "layer", "mean", "ci_low", "ci_high", "n"])


def randomisation_verdict(table: pd.DataFrame, threshold: float = 0.5) -> bool:
    """Passes when the mean rank correlation with all layers randomised is below `threshold`.

    Adebayo et al. give no cut-off; 0.5 means the randomised model's maps share at most a weak
    ordering with the trained model's. An undefined final correlation fails: nothing was shown.
    """
    final = _final_correlation(table)
    return bool(np.isfinite(final) and final < threshold)


def _final_correlation(table: pd.DataFrame) -> float:
    return float(table.loc[table["step"].idxmax(), "mean"])


@dataclass(frozen=True)
class Evidence:
    """One (model, method)'s per-image results, as plain lists, and its randomisation table."""

    model: str
    method: str
    relevance_mass: Sequence[float]
    pointing: Sequence[bool]
    deletion_areas: Sequence[float]
    randomisation: pd.DataFrame


def correctness_table(
    evidence: Sequence[Evidence], threshold: float = 0.5, seed: int = 0
) -> pd.DataFrame:
    """The "which explanation should I believe" table: one row per (model, method).

    Means with 95 % bootstrap CIs over images for relevance mass accuracy (higher is better),
    the pointing-game hit rate (higher) and the deletion area (lower), then whether the map
    passed the randomisation check and its final rank correlation (lower is better).
    """
    rows = []
    for item in evidence:
        mass = finite_interval(np.asarray(item.relevance_mass, dtype=np.float64), seed=seed)
        hits = finite_interval(np.asarray(item.pointing, dtype=np.float64), seed=seed)
        deletion = finite_interval(np.asarray(item.deletion_areas, dtype=np.float64), seed=seed)
        rows.append(
            {
                "model": item.model,
                "method": item.method,
                "relevance_mass_accuracy": mass[0],
                "relevance_mass_ci_low": mass[1],
                "relevance_mass_ci_high": mass[2],
                "pointing_game": hits[0],
                "pointing_game_ci_low": hits[1],
                "pointing_game_ci_high": hits[2],
                "deletion_area": deletion[0],
                "deletion_area_ci_low": deletion[1],
                "deletion_area_ci_high": deletion[2],
                "randomisation_passed": randomisation_verdict(item.randomisation, threshold),
                "final_rank_correlation": _final_correlation(item.randomisation),
                "n_localisation": mass[3],
                "n_deletion": deletion[3],
            }
        )
    return pd.DataFrame(rows)
