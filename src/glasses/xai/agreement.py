"""How much two attribution maps agree: the seed study's numbers, and the ones it lacked.

Every function takes two H x W float maps that are already aggregated over colour channels (the
signed sum, as `glasses.xai.maps.to_map` does), so the CNN's and the ScatNet's maps, and every
method's, are compared on the same footing. The seed's statistics (distance between barycenters
and between spreads, Pearson) are kept for continuity with its tables; rank correlation, top-pixel
overlap and SSIM are added because Pearson alone is dominated by a few extreme pixels.
"""

from __future__ import annotations

from dataclasses import asdict
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import ndimage, stats

from glasses.statistics import bootstrap_ci, holm, paired_test
from glasses.xai.maps import normalise

METRICS = (
    "barycenter_distance",
    "spread_distance",
    "spatial_barycenter_distance",
    "pearson",
    "spearman",
    "top10_iou",
    "ssim",
)

# SSIM as Wang et al. (2004): 11-tap Gaussian window (sigma 1.5), population covariances.
_SSIM_SIGMA = 1.5
_SSIM_TRUNCATE = 3.5
_SSIM_RADIUS = int(_SSIM_TRUNCATE * _SSIM_SIGMA + 0.5)
_SSIM_K1, _SSIM_K2 = 0.01, 0.03


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"expected two H x W maps of one shape, got {a.shape} and {b.shape}")
    return a, b


def barycenter_distance(a: np.ndarray, b: np.ndarray) -> float:
    """|mean(norm a) − mean(norm b)|: the seed's "barycenter", the mean normalised attribution.

    Kept to reproduce the seed's tables; it says whether the maps lean equally positive overall,
    not where they point (see `spatial_barycenter_distance` for that).
    """
    a, b = _check_pair(a, b)
    return float(abs(normalise(a).mean() - normalise(b).mean()))


def spread_distance(a: np.ndarray, b: np.ndarray) -> float:
    """|std(norm a) − std(norm b)| (population std), the seed's "spread" distance."""
    a, b = _check_pair(a, b)
    return float(abs(normalise(a).std() - normalise(b).std()))


def _positive_centre(map_: np.ndarray) -> np.ndarray:
    weights = np.clip(map_, 0, None)
    total = weights.sum()
    if total <= 0:
        return np.full(2, np.nan)
    rows, cols = np.indices(map_.shape)
    return np.array([(rows * weights).sum(), (cols * weights).sum()]) / total


def spatial_barycenter_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Pixels between the centres of mass of the maps' positive parts; nan if one has none.

    This is what "barycenter" means geometrically: whether two methods point at the same place.
    Only positive attribution counts, since it is the evidence *for* the explained class.
    """
    a, b = _check_pair(a, b)
    return float(np.linalg.norm(_positive_centre(a) - _positive_centre(b)))


def _constant(map_: np.ndarray) -> bool:
    return bool(np.ptp(map_) == 0)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Linear correlation of the pixel values; nan when a map is constant (undefined)."""
    a, b = _check_pair(a, b)
    if _constant(a) or _constant(b):
        return float("nan")
    return float(stats.pearsonr(a.ravel(), b.ravel()).statistic)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation: agreement on the ordering of pixels, immune to a few extreme values."""
    a, b = _check_pair(a, b)
    if _constant(a) or _constant(b):
        return float("nan")
    return float(stats.spearmanr(a.ravel(), b.ravel()).statistic)


def _top_pixels(map_: np.ndarray, fraction: float) -> np.ndarray:
    """Indices of the ⌈fraction·n⌉ largest values (at least one).

    A stable sort on the negated values breaks ties by row-major position, so flat regions give
    the same set on every run and platform.
    """
    count = max(1, int(np.ceil(fraction * map_.size - 1e-9)))
    return np.argsort(-map_.ravel(), kind="stable")[:count]


def top_fraction_iou(a: np.ndarray, b: np.ndarray, fraction: float = 0.10) -> float:
    """IoU of the two maps' most positive pixels: do they agree on what matters most?

    Ranked by signed value, so strong negative evidence is not mistaken for importance.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    a, b = _check_pair(a, b)
    top_a, top_b = set(_top_pixels(a, fraction)), set(_top_pixels(b, fraction))
    return len(top_a & top_b) / len(top_a | top_b)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity of the normalised maps, data range 2 (values in [-1, 1]).

    SSIM compares local structure, which correlations over all pixels cannot see. Its luminance
    term assumes non-negative intensities: on signed maps a map and its negation make both the
    luminance and the structure terms negative, and their product scores about +0.7. The maps
    are therefore shifted by +1 into [0, 2] (same data range, zero attribution at mid-grey)
    before the standard formula. Implemented here (Wang et al. 2004: Gaussian window sigma 1.5,
    K1 0.01, K2 0.03, population covariances, border of one window radius excluded) so the
    library needs no scikit-image; it equals `skimage.metrics.structural_similarity(x + 1,
    y + 1, gaussian_weights=True, use_sample_covariance=False, data_range=2)`.
    """
    a, b = _check_pair(a, b)
    if min(a.shape) <= 2 * _SSIM_RADIUS:
        raise ValueError(f"SSIM needs maps larger than {2 * _SSIM_RADIUS + 1} px, got {a.shape}")
    x, y = normalise(a) + 1, normalise(b) + 1

    def blur(image: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(
            image, sigma=_SSIM_SIGMA, truncate=_SSIM_TRUNCATE, mode="reflect"
        )

    mean_x, mean_y = blur(x), blur(y)
    var_x = blur(x * x) - mean_x**2
    var_y = blur(y * y) - mean_y**2
    covariance = blur(x * y) - mean_x * mean_y
    c1, c2 = (_SSIM_K1 * 2) ** 2, (_SSIM_K2 * 2) ** 2
    index = ((2 * mean_x * mean_y + c1) * (2 * covariance + c2)) / (
        (mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2)
    )
    inner = (slice(_SSIM_RADIUS, -_SSIM_RADIUS),) * 2
    return float(index[inner].mean())


def compare_maps(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Every agreement statistic of one pair of maps, keyed as in `METRICS`."""
    return {
        "barycenter_distance": barycenter_distance(a, b),
        "spread_distance": spread_distance(a, b),
        "spatial_barycenter_distance": spatial_barycenter_distance(a, b),
        "pearson": pearson(a, b),
        "spearman": spearman(a, b),
        "top10_iou": top_fraction_iou(a, b, 0.10),
        "ssim": ssim(a, b),
    }


def agreement_values(maps: dict[str, dict[str, list[np.ndarray]]]) -> pd.DataFrame:
    """Per-image statistics for every model and unordered pair of methods, long format.

    `maps[model][method]` lists one map per image, in the same image order everywhere. Columns:
    model, method_a, method_b, image (position in the lists), metric, value. Kept per image so
    that both the summary and the paired test between models come from one computation.
    """
    rows = []
    for model, methods in maps.items():
        for method_a, method_b in combinations(methods, 2):
            maps_a, maps_b = methods[method_a], methods[method_b]
            if len(maps_a) != len(maps_b):
                raise ValueError(
                    f"{model}: {method_a} has {len(maps_a)} maps, {method_b} {len(maps_b)}"
                )
            for image, (a, b) in enumerate(zip(maps_a, maps_b, strict=True)):
                for metric, value in compare_maps(a, b).items():
                    rows.append((model, method_a, method_b, image, metric, value))
    columns = ["model", "method_a", "method_b", "image", "metric", "value"]
    return pd.DataFrame(rows, columns=columns)


def summarise_agreement(values: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Mean and 95 % bootstrap CI over images per (model, pair, metric) of `agreement_values`.

    Undefined values (nan: a constant map's correlation, a map without positive mass) are left
    out; `n` counts the images that remain.
    """
    keys = ["model", "method_a", "method_b", "metric"]
    rows = []
    for key, group in values.groupby(keys, sort=False):
        mean, low, high, n = finite_interval(group["value"].to_numpy(), seed=seed)
        rows.append((*key, mean, low, high, n))
    return pd.DataFrame(rows, columns=[*keys, "mean", "ci_low", "ci_high", "n"])


def agreement_table(maps: dict[str, dict[str, list[np.ndarray]]], seed: int = 0) -> pd.DataFrame:
    """model, method_a, method_b, metric, mean, ci_low, ci_high, n for every pair of methods."""
    return summarise_agreement(agreement_values(maps), seed=seed)


def finite_interval(values: np.ndarray, seed: int = 0) -> tuple[float, float, float, int]:
    """Mean, 95 % percentile bootstrap CI and count of the finite values.

    Bootstrap rather than a t interval: correlations and IoU are bounded and skewed near their
    limits. nan means undefined (a constant map's correlation), not zero, so it is left out.
    """
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    mean, low, high = bootstrap_ci(finite, seed=seed)
    return mean, low, high, int(finite.size)


def model_agreement_test(
    per_image_a: list[float], per_image_b: list[float]
) -> dict[str, float | int]:
    """Do two methods agree more on one model than on the other, on the same images?

    Paired, because the images are shared: image difficulty cancels out. Returns mean_a,
    mean_b, mean_difference (a − b), p_value (paired t-test), p_value_wilcoxon (needs no
    normality) and n. Images where either value is undefined (nan) are dropped from both sides.
    """
    a, b = np.asarray(per_image_a, dtype=np.float64), np.asarray(per_image_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values need one length, got {a.size} and {b.size}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    means = {"mean_a": float(a.mean()), "mean_b": float(b.mean())} if a.size else {}
    return {"mean_a": float("nan"), "mean_b": float("nan"), **means, **asdict(paired_test(a, b))}


CORRECTION = "Holm"  # the multiplicity correction across each table of tests, by name
ALPHA = 0.05


def model_agreement_tests(values: pd.DataFrame, model_a: str, model_b: str) -> pd.DataFrame:
    """`model_agreement_test` for every (pair, metric) of `agreement_values` shared by the two
    models; mean_difference is model_a minus model_b.

    The table's t-test p-values are one family: p_adjusted is Holm's (`CORRECTION`, the
    family-wise error at `ALPHA` across the whole table, tens of tests), and significant says
    whether it is below `ALPHA`; the uncorrected p_value stays beside it."""
    keys = ["method_a", "method_b", "metric"]
    rows = []
    by_model = values.set_index([*keys, "image"])
    side_a = by_model[values["model"].to_numpy() == model_a]["value"]
    side_b = by_model[values["model"].to_numpy() == model_b]["value"]
    for key, group in side_a.groupby(level=keys, sort=False):
        other = side_b.reindex(group.index)
        result = model_agreement_test(group.tolist(), other.tolist())
        rows.append({**dict(zip(keys, key, strict=True)), **result})
    table = pd.DataFrame(rows)
    table["p_adjusted"] = holm(table["p_value"]) if rows else []
    table["correction"] = CORRECTION
    table["significant"] = table["p_adjusted"] < ALPHA
    return table
