"""Are the explanations right, not only alike? Localisation, faithfulness and a sanity check.

Agreement between methods (`glasses.xai.agreement`) cannot tell two equally wrong maps from two
right ones. These checks can, each against a reference that a map knowing nothing reaches:

- *localisation* against ground truth, the glasses masks of the synthetic data: relevance mass
  and the pointing game, each beside its chance level (the mask's share of the image);
- *faithfulness* against the model itself: deleting what a map calls important should hurt
  more than deleting in random order, to a baseline no method uses (blur or the training mean);
- *sanity* against a randomised model (Adebayo et al. 2018): a map that survives the destruction
  of the weights explains the input, not the model. The control is the image's own edges
  (`edge_map`): the randomised model's maps must resemble the trained ones less than the edges
  do, or the maps follow the input.

Every check is decided on the per-image difference from its reference, with a 95 % interval
over people (`glasses.statistics.people_interval`); `method_ranking` ranks on those alone.

Maps are H x W numpy floats, aggregated over colour channels like in `glasses.xai.agreement`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import torch
from scipy import ndimage, stats
from skimage.metrics import structural_similarity
from torch import nn

from glasses.models.scatnet import fixed_parts_reused
from glasses.statistics import people_interval

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
    map_: np.ndarray,
    mask: np.ndarray,
    seed: int | Sequence[int] = 0,
    tolerance: float = 0,
    tie_tolerance: float = 1e-6,
) -> bool:
    """Does the map's maximum lie within `tolerance` pixels (Euclidean) of the mask (Zhang et
    al.)?

    Every pixel within `tie_tolerance` x |max| of the maximum is a maximum (LIME and SHAP maps
    are piecewise constant), and one of them is drawn at random (`seed`): counting a tie as a
    hit whenever *any* tied pixel is inside would let a flat map hit every time, while a drawn
    one makes a flat map hit at `pointing_chance`.
    """
    map_, mask = _check_mask(map_, mask)
    peak = map_.max()
    peaks = np.flatnonzero(map_ >= peak - tie_tolerance * abs(peak))
    chosen = np.random.default_rng(seed).choice(peaks)
    return bool(_near_mask(mask, tolerance).ravel()[chosen])


def pointing_chance(mask: np.ndarray, tolerance: float = 0) -> float:
    """The hit rate of a map whose maximum falls anywhere: the share of pixels within
    `tolerance` of the mask (the mask's area share at tolerance 0)."""
    return float(np.mean(_near_mask(np.asarray(mask, dtype=bool), tolerance)))


def _near_mask(mask: np.ndarray, tolerance: float) -> np.ndarray:
    return ndimage.distance_transform_edt(~mask) <= tolerance


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
    fill: torch.Tensor,
    steps: int = 20,
    batch_size: int = 64,
    seed: int | Sequence[int] = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Probability of `target` as the most important pixels become `fill`, in `steps` steps.

    `fill` (3 x H x W, `deletion_fill`) should be a baseline no method uses: deleting to black
    favours the methods whose absence is black. Ties in the map are broken at random (`seed`),
    so a flat map deletes in random order; a map of seeded noise is the random-order reference
    (`random_map`). All steps + 1 perturbed images are built at once (`deleted_images`) and
    scored in batches; the model, `image` and `fill` must be on one device. Returns the
    deleted fractions (0 … 1) and the probabilities.
    """
    fractions, perturbed = deleted_images(image, map_, fill, steps, seed)
    targets = torch.full((len(perturbed),), target, device=image.device)
    return fractions, target_probabilities(model, perturbed, targets, batch_size)


def deleted_images(
    image: torch.Tensor,
    map_: np.ndarray,
    fill: torch.Tensor,
    steps: int,
    seed: int | Sequence[int],
) -> tuple[np.ndarray, torch.Tensor]:
    """The deleted fractions and the steps + 1 images of `deletion_curve`, the first intact."""
    channels, height, width = image.shape
    if np.shape(map_) != (height, width):
        raise ValueError(f"map {np.shape(map_)} does not match image {tuple(image.shape)}")
    pixels = height * width
    ties = np.random.default_rng(seed).random(pixels)
    order = np.lexsort((ties, -np.asarray(map_, dtype=np.float64).ravel()))
    rank = torch.empty(pixels, dtype=torch.long, device=image.device)
    rank[torch.as_tensor(order, device=image.device)] = torch.arange(pixels, device=image.device)
    counts = np.rint(np.linspace(0, pixels, steps + 1)).astype(np.int64)
    keep = rank[None, :] >= torch.as_tensor(counts, device=image.device)[:, None]
    keep = keep.view(-1, 1, height, width).to(image.dtype)
    return counts / pixels, image[None] * keep + fill.to(image.dtype)[None] * (1 - keep)


def target_probabilities(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, batch_size: int
) -> np.ndarray:
    """Each image's probability of its target, in eval mode, `batch_size` images per pass."""
    with torch.no_grad(), _evaluating(model):
        probabilities = torch.cat(
            [
                model(batch).softmax(dim=1).gather(1, labels.long()[:, None]).squeeze(1)
                for batch, labels in zip(
                    images.split(batch_size), targets.split(batch_size), strict=True
                )
            ]
        )
    return probabilities.double().cpu().numpy()


def deletion_area(fractions: np.ndarray, probabilities: np.ndarray) -> float:
    """Area under the deletion curve (trapezoid rule); lower means a more faithful map."""
    return float(np.trapezoid(probabilities, fractions))


DeletionBaseline = Literal["blur", "mean"]


def deletion_fill(
    image: torch.Tensor, baseline: DeletionBaseline, training_mean: torch.Tensor | None = None
) -> torch.Tensor:
    """What `image`'s deleted pixels become: the image under a Gaussian blur of sigma a
    sixteenth of its side (removes glasses frames and eyes, keeps the face's brightness), or the
    mean training image (`training_mean`, 3 x H x W)."""
    if baseline == "mean":
        if training_mean is None:
            raise ValueError("deletion baseline 'mean' needs the mean training image")
        return training_mean.to(device=image.device, dtype=image.dtype)
    sigma = (0, image.shape[-2] / 16, image.shape[-1] / 16)
    blurred = ndimage.gaussian_filter(image.detach().double().cpu().numpy(), sigma, mode="reflect")
    return torch.from_numpy(blurred).to(device=image.device, dtype=image.dtype)


def random_map(shape: tuple[int, int], seed: int | Sequence[int]) -> np.ndarray:
    """Seeded uniform noise: as a "map", a random deletion order, the deletion reference."""
    return np.random.default_rng(seed).random(shape)


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


def _similarities(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image, Spearman and SSIM of |maps|, as Adebayo et al.: a sign flip of the whole map
    is not a change of what it highlights. nan where a map is constant (undefined)."""
    spearman, ssim = [], []
    for before, after in zip(np.abs(first), np.abs(second), strict=True):
        if np.ptp(before) == 0 or np.ptp(after) == 0:
            spearman.append(np.nan)
            ssim.append(np.nan)
            continue
        spearman.append(stats.spearmanr(before.ravel(), after.ravel())[0])
        ssim.append(
            structural_similarity(
                before / before.max(),
                after / after.max(),
                data_range=1.0,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
            )
        )
    return np.asarray(spearman, dtype=np.float64), np.asarray(ssim, dtype=np.float64)


SIMILARITIES = ("spearman", "ssim")
RANDOMISATION_COLUMNS = ["step", "layer", "image", "spearman", "ssim", "edge_spearman", "edge_ssim"]


def cascading_randomisation(
    model: nn.Module,
    explain: Explain,
    images: torch.Tensor,
    targets: torch.Tensor,
    seed: int = 0,
    original: np.ndarray | None = None,
    reuse_mb: int = 0,
) -> pd.DataFrame:
    """Cascading model randomisation (Adebayo et al. 2018), from the output layer backwards.

    `explain(model, images, targets)` returns N x H x W maps. The model is deep-copied (the
    caller's stays intact) and put in eval mode; after each further layer is randomised, the
    maps are recomputed and compared with the originals. One row per step and image (its
    position in `images`): step (0 = the intact model), layer (the one randomised last),
    spearman and ssim of |maps| with the intact model's (1 at step 0), and edge_spearman and
    edge_ssim, the same between this step's maps and the image's edges (`edge_map`), the
    control. `original`: the intact model's maps if the caller has them already (the
    explainers are deterministic), which saves one step of explanations. `reuse_mb`: memory
    for the parts no step randomises, computed once per input batch (`fixed_parts_reused`);
    the maps are the same with any value.
    """
    randomised = copy.deepcopy(model).eval()
    with fixed_parts_reused(randomised, reuse_mb):
        return _cascade(randomised, explain, images, targets, seed, original)


def _cascade(
    randomised: nn.Module,
    explain: Explain,
    images: torch.Tensor,
    targets: torch.Tensor,
    seed: int,
    original: np.ndarray | None,
) -> pd.DataFrame:
    if original is None:
        original = explain(randomised, images, targets)
    original = np.asarray(original)
    edges = edge_map(images)
    generator = torch.Generator().manual_seed(seed)
    images_at = np.arange(len(original))

    def rows(step: int, layer: str, maps: np.ndarray) -> pd.DataFrame:
        spearman, ssim = _similarities(original, maps)
        edge_spearman, edge_ssim = _similarities(edges, maps)
        return pd.DataFrame(
            dict(zip(RANDOMISATION_COLUMNS, (step, layer, images_at, spearman, ssim,
                                             edge_spearman, edge_ssim), strict=True))
        )  # fmt: skip

    steps = [rows(0, "none", original)]
    for step, (name, layer) in enumerate(randomisation_layers(randomised), start=1):
        _randomise(layer, generator)
        steps.append(rows(step, name, np.asarray(explain(randomised, images, targets))))
    return pd.concat(steps, ignore_index=True)


LOCALISATION_COLUMNS = [
    "row", "person", "label", "relevance_mass", "mask_share", "pointing", "pointing_chance"
]  # fmt: skip


def localisation_evidence(
    rows: Sequence[int],
    maps: np.ndarray,
    masks: dict[int, np.ndarray],
    people: dict[int, int],
    labels: dict[int, int],
    seed: int = 0,
) -> pd.DataFrame:
    """Per explained image with a mask (`LOCALISATION_COLUMNS`): relevance mass and its chance,
    the pointing game (ties drawn with a seed per image) and its chance."""
    records = [
        (
            int(row), people[row], labels[row],
            relevance_mass_accuracy(map_, masks[row]), mask_area_share(masks[row]),
            float(pointing_game(map_, masks[row], seed=(seed, int(row)))),
            pointing_chance(masks[row]),
        )
        for row, map_ in zip(rows, maps, strict=True)
        if row in masks
    ]  # fmt: skip
    return pd.DataFrame(records, columns=LOCALISATION_COLUMNS)


def deletion_evidence(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    maps: np.ndarray,
    fills: torch.Tensor,
    rows: Sequence[int],
    people: dict[int, int],
    labels: dict[int, int],
    steps: int = 20,
    seed: int = 0,
    batch_size: int = 64,
) -> pd.DataFrame:
    """Per explained image: row, person, label, the deletion area of its map and that of a
    random order (`random_map`, seeded per image, so every method of a model meets the same
    reference), both deleting to the image's `fills` (N x 3 x H x W, `deletion_fill`). Every
    curve's images go through the model together, `batch_size` at a time: one image's curve
    alone is too short a batch to keep the model's kernels busy."""
    curves, fractions = [], None
    for image, target, map_, fill, row in zip(images, targets, maps, fills, rows, strict=True):
        row = int(row)
        for order in (map_, random_map(map_.shape, (seed, row, 1))):
            fractions, perturbed = deleted_images(image, order, fill, steps, (seed, row))
            curves.append((perturbed, target.expand(len(perturbed))))
    probabilities = target_probabilities(
        model,
        torch.cat([perturbed for perturbed, _ in curves]),
        torch.cat([target for _, target in curves]),
        batch_size,
    ).reshape(len(curves), -1)
    areas = [deletion_area(fractions, curve) for curve in probabilities]
    records = [
        (int(row), people[int(row)], labels[int(row)], areas[2 * i], areas[2 * i + 1])
        for i, row in enumerate(rows)
    ]
    return pd.DataFrame(records, columns=["row", "person", "label", "area", "random_area"])


def randomisation_summary(per_image: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Per (model, method, step): each similarity's mean and 95 % interval over people
    (`people_interval`), with and without the control. `per_image` is
    `cascading_randomisation`'s rows with model, method, person and label columns."""
    rows = []
    keys = ["model", "method", "step", "layer"]
    for key, group in per_image.groupby(keys, sort=False):
        row = dict(zip(keys, key, strict=True))
        for column in ("spearman", "ssim", "edge_spearman", "edge_ssim"):
            mean, low, high, n = people_interval(
                group[column], group["person"], group["label"], seed=seed
            )
            row |= {column: mean, f"{column}_low": low, f"{column}_high": high}
        rows.append(row | {"n": n})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Evidence:
    """One (model, method)'s per-image results, each table with the image's row, person and
    label: `localisation` (images with a mask: relevance_mass, mask_share, pointing,
    pointing_chance), `deletion` (every explained image: area, random_area) and
    `randomisation` (`cascading_randomisation`'s rows)."""

    model: str
    method: str
    localisation: pd.DataFrame
    deletion: pd.DataFrame
    randomisation: pd.DataFrame


@dataclass(frozen=True)
class Check:
    """One check: which per-image column is measured against which reference, and the sign
    that makes "better than the reference" positive."""

    name: str
    table: Literal["localisation", "deletion", "randomisation"]
    value: str
    reference: str
    higher_is_better: bool
    meaning: str


CHECKS = (
    Check("relevance mass", "localisation", "relevance_mass", "mask_share", True,
          "share of positive attribution on the glasses vs the mask's share of the image"),
    Check("pointing game", "localisation", "pointing", "pointing_chance", True,
          "maximum (ties drawn at random) on the glasses vs the mask's share of the image"),
    Check("deletion", "deletion", "area", "random_area", False,
          "area under the deletion curve vs deleting in random order (area between the two)"),
    Check("randomisation (Spearman)", "randomisation", "spearman", "edge_spearman", False,
          "trained vs fully randomised model's maps, against trained maps vs the image's edges"),
    Check("randomisation (SSIM)", "randomisation", "ssim", "edge_ssim", False,
          "as above, structural similarity instead of rank correlation"),
)  # fmt: skip


def check_values(evidence: Evidence, check: Check) -> pd.DataFrame:
    """Per image: person, label, value, reference and difference (positive: better than the
    reference). For randomisation, the value is the fully randomised model's similarity and
    the reference the trained maps' similarity to the edges."""
    table = getattr(evidence, check.table)
    if check.table == "randomisation":
        final = table[table["step"] == table["step"].max()].set_index("image")
        intact = table[table["step"] == 0].set_index("image")
        table = final.assign(**{check.reference: intact[check.reference]}).reset_index()
    value = table[check.value].astype(float)
    reference = table[check.reference].astype(float)
    difference = value - reference if check.higher_is_better else reference - value
    return pd.DataFrame(
        {
            "person": table["person"].to_numpy(),
            "label": table["label"].to_numpy(),
            "value": value.to_numpy(),
            "reference": reference.to_numpy(),
            "difference": difference.to_numpy(),
        }
    )


def verdict(low: float, high: float) -> str:
    """ "beats" when the interval of (method − reference, better positive) lies above 0,
    "worse" below, "undecided" when it spans 0 or is undefined."""
    if low > 0:
        return "beats"
    if high < 0:
        return "worse"
    return "undecided"


def checks_table(evidence: Sequence[Evidence], seed: int = 0) -> pd.DataFrame:
    """The "which explanation should I believe" table: one row per (model, method, check).

    value and reference are means over images; difference is their mean difference with a 95 %
    bootstrap interval over people (`people_interval`), signed so that positive is better than
    the reference; verdict says whether the interval excludes 0. n: images where both are
    defined.
    """
    rows = []
    for item in evidence:
        for check in CHECKS:
            values = check_values(item, check)
            defined = values[np.isfinite(values["difference"])]
            mean, low, high, n = people_interval(
                defined["difference"], defined["person"], defined["label"], seed=seed
            )
            rows.append(
                {
                    "model": item.model,
                    "method": item.method,
                    "check": check.name,
                    "value": float(defined["value"].mean()) if n else float("nan"),
                    "reference": float(defined["reference"].mean()) if n else float("nan"),
                    "difference": mean,
                    "low": low,
                    "high": high,
                    "n": n,
                    "verdict": verdict(low, high),
                }
            )
    return pd.DataFrame(rows)


def method_ranking(checks: pd.DataFrame) -> pd.DataFrame:
    """Methods per model, ranked on `checks_table`'s verdicts alone: most checks beaten, then
    fewest checks worse than the reference; ties share a rank (1 is best)."""
    counts = (
        checks.assign(
            beats=checks["verdict"] == "beats",
            worse=checks["verdict"] == "worse",
            undecided=checks["verdict"] == "undecided",
        )
        .groupby(["model", "method"], sort=False)[["beats", "worse", "undecided"]]
        .sum()
        .reset_index()
    )
    score = counts["beats"] * (len(CHECKS) + 1) - counts["worse"]
    counts["rank"] = score.groupby(counts["model"]).rank(method="min", ascending=False).astype(int)
    return counts.sort_values(["model", "rank", "method"], ignore_index=True)
