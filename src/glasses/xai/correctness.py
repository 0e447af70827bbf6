"""Are the explanations right, not only alike? Localisation, faithfulness and a sanity check.

Agreement between methods (`glasses.xai.agreement`) cannot tell two equally wrong maps from two
right ones. These three tests can, each against a different reference:

- *localisation* against ground truth: the glasses masks of the synthetic data;
- *faithfulness* against the model itself: deleting what a map calls important should hurt;
- *sanity* against a randomised model (Adebayo et al. 2018): a map that survives the destruction
  of the weights explains the input, not the model. Its control, the image's own edges
  (`edge_map`), is scored the same way at every step, so a failed check can be read: maps that
  stay as close to the edges as to the trained model's maps follow the input.

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
    glasses, and a uniform map scores only the mask's area share (`mask_area_share`, chance).
    """
    map_, mask = _check_mask(map_, mask)
    positive = np.clip(map_, 0, None)
    total = positive.sum()
    return float(positive[mask].sum() / total) if total > 0 else float("nan")


def mask_area_share(mask: np.ndarray) -> float:
    """The mask's share of the image: what a uniform map scores in relevance mass (chance)."""
    return float(np.mean(mask))


def pointing_game(
    map_: np.ndarray, mask: np.ndarray, tolerance: float = 0, tie_tolerance: float = 1e-6
) -> bool:
    """Is any maximum of the map within `tolerance` pixels (Euclidean) of the mask (Zhang et al.)?

    Every pixel within `tie_tolerance` x |max| of the maximum is a maximum: LIME and SHAP maps
    are piecewise constant, and taking the first plateau pixel in row-major order would score
    where the plateau starts, not where it lies. A flat map is all maximum, so it hits.
    """
    map_, mask = _check_mask(map_, mask)
    peak = map_.max()
    peaks = map_ >= peak - tie_tolerance * abs(peak)
    distance_to_mask = ndimage.distance_transform_edt(~mask)
    return bool((distance_to_mask[peaks] <= tolerance).any())


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


def edge_map(images: torch.Tensor) -> np.ndarray:
    """N x H x W Sobel gradient magnitude of the grey images: a map that never sees the model.

    Per image: `ndimage.sobel` on the stacked batch would also smooth across images.
    """
    grey = images.detach().double().mean(dim=1).cpu().numpy()
    return np.stack([np.hypot(ndimage.sobel(g, axis=0), ndimage.sobel(g, axis=1)) for g in grey])


def _rank_correlations(original: np.ndarray, randomised: np.ndarray) -> np.ndarray:
    """Spearman of |maps| per image, as Adebayo et al.: a sign flip of the whole map is not a
    change of what it highlights. nan where a map is constant."""
    values = []
    for before, after in zip(np.abs(original), np.abs(randomised), strict=True):
        flat = np.ptp(before) == 0 or np.ptp(after) == 0
        values.append(np.nan if flat else stats.spearmanr(before.ravel(), after.ravel())[0])
    return np.asarray(values, dtype=np.float64)


RANDOMISATION_COLUMNS = [
    "step", "layer", "mean", "ci_low", "ci_high", "n", "edge_mean", "edge_ci_low", "edge_ci_high"
]  # fmt: skip


def cascading_randomisation(
    model: nn.Module,
    explain: Explain,
    images: torch.Tensor,
    targets: torch.Tensor,
    seed: int = 0,
    original: np.ndarray | None = None,
) -> pd.DataFrame:
    """Cascading model randomisation (Adebayo et al. 2018), from the output layer backwards.

    `explain(model, images, targets)` returns N x H x W maps. The model is deep-copied (the
    caller's stays intact) and put in eval mode; after each further layer is randomised, the
    maps are recomputed and rank-correlated with the originals per image. Rows: step (0 = the
    intact model, correlation 1 by definition), layer (the one randomised last), mean, ci_low,
    ci_high (95 % bootstrap over images), n; then edge_mean, edge_ci_low, edge_ci_high: the
    same measure between this step's maps and the image's edges (`edge_map`), the control.
    `original`: the intact model's maps if the caller has them already (the explainers are
    deterministic), which saves one step of explanations.
    """
    randomised = copy.deepcopy(model).eval()
    if original is None:
        original = explain(randomised, images, targets)
    original = np.asarray(original)
    edges = edge_map(images)
    generator = torch.Generator().manual_seed(seed)

    def row(step: int, layer: str, similarity: np.ndarray, maps: np.ndarray) -> tuple:
        to_edges = finite_interval(_rank_correlations(edges, maps), seed=seed)[:3]
        return (step, layer, *finite_interval(similarity, seed=seed), *to_edges)

    rows = [row(0, "none", np.ones(len(original)), original)]
    for step, (name, layer) in enumerate(randomisation_layers(randomised), start=1):
        _randomise(layer, generator)
        maps = np.asarray(explain(randomised, images, targets))
        rows.append(row(step, name, _rank_correlations(original, maps), maps))
    return pd.DataFrame(rows, columns=RANDOMISATION_COLUMNS)


def randomisation_verdict(table: pd.DataFrame, threshold: float = 0.5) -> bool:
    """Passes when the mean rank correlation with all layers randomised is below `threshold`.

    Adebayo et al. give no cut-off; 0.5 means the randomised model's maps share at most a weak
    ordering with the trained model's. An undefined final correlation fails: nothing was shown.
    """
    final = _final_correlation(table)
    return bool(np.isfinite(final) and final < threshold)


def _final_correlation(table: pd.DataFrame) -> float:
    return float(_final_step(table)["mean"])


def _final_step(table: pd.DataFrame) -> pd.Series:
    return table.loc[table["step"].idxmax()]


@dataclass(frozen=True)
class Evidence:
    """One (model, method)'s per-image results, as plain lists, and its randomisation table.

    `rows`, `relevance_mass`, `mask_share` and `pointing` cover the images with a mask, in one
    order; `deletion_areas` covers every explained image.
    """

    model: str
    method: str
    rows: Sequence[int]
    relevance_mass: Sequence[float]
    mask_share: Sequence[float]
    pointing: Sequence[bool]
    deletion_areas: Sequence[float]
    randomisation: pd.DataFrame


def localisation_table(evidence: Sequence[Evidence]) -> pd.DataFrame:
    """Per image: relevance mass, the mask's area share (its chance level), their ratio, and
    whether the pointing game hit."""
    return pd.DataFrame(
        [
            {
                "model": item.model,
                "method": item.method,
                "row": int(row),
                "relevance_mass_accuracy": mass,
                "mask_area_share": share,
                "relevance_mass_to_chance": mass / share,
                "pointing_game": bool(hit),
            }
            for item in evidence
            for row, mass, share, hit in zip(
                item.rows, item.relevance_mass, item.mask_share, item.pointing, strict=True
            )
        ]
    )


def correctness_table(
    evidence: Sequence[Evidence], threshold: float = 0.5, seed: int = 0
) -> pd.DataFrame:
    """The "which explanation should I believe" table: one row per (model, method).

    Means with 95 % bootstrap CIs over images for relevance mass accuracy (higher is better)
    beside the mean mask area share (its chance level) and the per-image ratio of the two
    (above 1 beats chance), the pointing-game hit rate (higher) and the deletion area (lower);
    then the randomisation check: passed, the final rank correlation (lower is better) with
    its CI, and the control: the rank correlation with the image's edges of the trained
    model's maps (`edge_correlation`) and of the fully randomised model's.
    """
    rows = []
    for item in evidence:
        mass = np.asarray(item.relevance_mass, dtype=np.float64)
        share = np.asarray(item.mask_share, dtype=np.float64)
        mass_ci = finite_interval(mass, seed=seed)
        ratio = finite_interval(mass / share, seed=seed)
        hits = finite_interval(np.asarray(item.pointing, dtype=np.float64), seed=seed)
        deletion = finite_interval(np.asarray(item.deletion_areas, dtype=np.float64), seed=seed)
        intact = item.randomisation.loc[item.randomisation["step"].idxmin()]
        final = _final_step(item.randomisation)
        rows.append(
            {
                "model": item.model,
                "method": item.method,
                "relevance_mass_accuracy": mass_ci[0],
                "relevance_mass_ci_low": mass_ci[1],
                "relevance_mass_ci_high": mass_ci[2],
                "mask_area_share": float(share.mean()) if share.size else float("nan"),
                "relevance_mass_to_chance": ratio[0],
                "relevance_mass_to_chance_ci_low": ratio[1],
                "relevance_mass_to_chance_ci_high": ratio[2],
                "pointing_game": hits[0],
                "pointing_game_ci_low": hits[1],
                "pointing_game_ci_high": hits[2],
                "deletion_area": deletion[0],
                "deletion_area_ci_low": deletion[1],
                "deletion_area_ci_high": deletion[2],
                "randomisation_passed": randomisation_verdict(item.randomisation, threshold),
                "final_rank_correlation": float(final["mean"]),
                "final_rank_ci_low": float(final["ci_low"]),
                "final_rank_ci_high": float(final["ci_high"]),
                "edge_correlation": float(intact["edge_mean"]),
                "randomised_edge_correlation": float(final["edge_mean"]),
                "n_localisation": mass_ci[3],
                "n_deletion": deletion[3],
                "n_randomisation": int(final["n"]),
            }
        )
    return pd.DataFrame(rows)
