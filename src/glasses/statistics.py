"""Uncertainty of repeated measurements: confidence intervals, paired tests, the sweep summary.

The generic helpers take plain sequences of numbers so that other studies (e.g. attribution
scores) can reuse them. The sweep's inference resamples both of its sources of chance at once,
the drawn training subsets (repeats) and the test images, keeping the two models paired on
every draw, then corrects across sizes with Holm (docs/decisions/0005-sweep-statistics.md).
Undefined statistics (too few values) come back as NaN rather than raising, so one failed size
does not sink a whole summary.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from glasses.families import FAMILIES

METRICS = ("accuracy", "balanced_accuracy", "macro_f1")
VERDICT_METRIC = "balanced_accuracy"
NAN = float("nan")


def bootstrap_ci(
    values: Sequence[float],
    statistic: Callable[[np.ndarray], float] = np.mean,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(statistic, low, high): scipy's percentile bootstrap, for statistics without a t
    distribution. Seeded so a logged interval can be reproduced; fewer than two values, or
    values without spread, give (NaN, NaN) bounds."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return NAN, NAN, NAN
    estimate = float(statistic(x))
    if x.size == 1 or np.ptp(x) == 0:
        return estimate, NAN, NAN
    result = stats.bootstrap(
        (x,),
        lambda sample, axis: np.apply_along_axis(statistic, axis, sample),
        confidence_level=confidence,
        n_resamples=resamples,
        method="percentile",
        vectorized=True,
        random_state=np.random.default_rng(seed),
    )
    interval = result.confidence_interval
    return estimate, float(interval.low), float(interval.high)


@dataclass(frozen=True)
class PairedTest:
    """a − b paired by position. Verdicts use the t-test's `p_value`; the Wilcoxon signed-rank
    p-value is reported alongside as a check that needs no normality of the differences."""

    mean_difference: float
    p_value: float
    p_value_wilcoxon: float
    n: int


def paired_test(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Whether a − b differs from zero, pairing e.g. two models trained on the same subsets.

    All-zero differences give p = 1 (no evidence of any difference). Equal non-zero differences
    make the t statistic infinite; with a sweep's few repeats on a small test split that is a
    coincidence of discrete accuracies, not certainty, so its p-value is NaN. Fewer than two
    pairs give NaN p-values.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {x.shape} vs {y.shape}")
    differences = x - y
    n = len(differences)
    mean = float(differences.mean()) if n else NAN
    if n < 2:
        return PairedTest(mean, NAN, NAN, n)
    if not differences.any():
        return PairedTest(0.0, 1.0, 1.0, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p_t = NAN if np.ptp(differences) == 0 else float(stats.ttest_rel(x, y).pvalue)
        p_wilcoxon = float(stats.wilcoxon(differences).pvalue)
    return PairedTest(mean, p_t, p_wilcoxon, n)


def crossover_size(sizes: Sequence[float], differences: Sequence[float]) -> float | None:
    """The size where the mean difference first changes sign, going up from the smallest size.

    Starting from the small end because the question is how far the small-data regime reaches.
    Linear interpolation on log(size), since sizes are spaced geometrically; a run of exact
    zeros between the two signs is the crossing itself (its geometric centre). None when the
    sign never changes.
    """
    order = np.argsort(np.asarray(sizes, dtype=float))
    logs = np.log(np.asarray(sizes, dtype=float)[order])
    values = np.asarray(differences, dtype=float)[order]
    signs = np.sign(values)
    nonzero = np.flatnonzero(signs)
    if nonzero.size == 0:
        return None
    first = signs[nonzero[0]]
    changed = nonzero[signs[nonzero] != first]
    if changed.size == 0:
        return None
    after = changed[0]
    before = nonzero[nonzero < after][-1]
    if after - before > 1:
        return float(np.exp(logs[before + 1 : after].mean()))
    share = values[before] / (values[before] - values[after])
    return float(np.exp(logs[before] + share * (logs[after] - logs[before])))


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values: the family-wise error stays at alpha across all the
    sizes of a sweep, without Bonferroni's loss of power. NaN p-values stay NaN and do not
    count towards the family."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, NAN)
    finite = np.flatnonzero(np.isfinite(p))
    running = 0.0
    for rank, index in enumerate(finite[np.argsort(p[finite], kind="stable")]):
        running = max(running, (finite.size - rank) * p[index])
        adjusted[index] = min(1.0, running)
    return adjusted


def _stratified_weights(labels: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """resamples x T counts: how often each test image is drawn, class by class, so every
    resample keeps the test split's class sizes (balanced accuracy stays defined)."""
    weights = np.zeros((resamples, len(labels)))
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        weights[:, members] = rng.multinomial(
            len(members), np.full(len(members), 1 / len(members)), size=resamples
        )
    return weights


def _weighted_metric(
    metric: str, predictions: np.ndarray, labels: np.ndarray, weights
) -> np.ndarray:
    """`metric` of each repeat (rows of `predictions`, R x T) under each weighting of the test
    images (`weights`, B x T): B x R."""
    positive = (predictions == 1).astype(float)
    truth = (labels == 1).astype(float)
    tp = weights @ (positive * truth).T
    fp = weights @ (positive * (1 - truth)).T
    fn = weights @ ((1 - positive) * truth).T
    tn = weights @ ((1 - positive) * (1 - truth)).T
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "accuracy":
            return (tp + tn) / (tp + fp + fn + tn)
        if metric == "balanced_accuracy":
            return (tp / (tp + fn) + tn / (tn + fp)) / 2
        if metric == "macro_f1":
            f1_glasses = np.nan_to_num(2 * tp / (2 * tp + fp + fn))
            f1_none = np.nan_to_num(2 * tn / (2 * tn + fn + fp))
            return (f1_glasses + f1_none) / 2
    raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")


@dataclass(frozen=True)
class SweepInference:
    """The sweep's tables: `table` per (size, model), `tests` per size (ScatNet − CNN on
    `VERDICT_METRIC`), and the crossover with its bootstrap interval."""

    table: pd.DataFrame
    tests: pd.DataFrame
    crossover: float | None
    crossover_low: float
    crossover_high: float
    crossover_share: float  # share of resamples in which the curves cross at all


def sweep_inference(
    points: pd.DataFrame,
    test_labels: np.ndarray,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> SweepInference:
    """Paired hierarchical bootstrap of a sweep's test predictions.

    `points` has one row per trained model: size, repeat, model ("cnn" | "scatnet") and
    `predictions` (an array over the fixed test split). Each resample draws repeats with
    replacement (one draw per size, the same for both models, which trained on the same subsets)
    and test images with replacement within each class (one draw for all sizes: they share the
    test split). Intervals are percentiles of the resampled means, inside [0, 1] by
    construction; p-values are two-sided, from the share of resampled differences on either
    side of zero, then Holm-adjusted across sizes.
    """
    rng = np.random.default_rng(seed)
    weights = _stratified_weights(test_labels, resamples, rng)
    sizes = sorted(points["size"].unique(), reverse=True)
    tail = 100 * (1 - confidence) / 2
    table_rows, test_rows, differences = [], [], []
    for size in sizes:
        wide = points[points["size"] == size].pivot(
            index="repeat", columns="model", values="predictions"
        )
        wide = wide.dropna(subset=list(FAMILIES))
        n = len(wide)
        draws = rng.multinomial(n, np.full(n, 1 / n), size=resamples) / n  # B x R
        resampled: dict[str, dict[str, np.ndarray]] = {}
        for model in FAMILIES:
            predictions = np.stack(wide[model].to_list())
            row: dict[str, object] = {"size": int(size), "model": model, "n": n}
            resampled[model] = {}
            for metric in METRICS:
                per_repeat = _weighted_metric(metric, predictions, test_labels, weights)
                resampled[model][metric] = (draws * per_repeat).sum(axis=1)
                plain = _weighted_metric(
                    metric, predictions, test_labels, np.ones((1, len(test_labels)))
                )
                low, high = np.nanpercentile(resampled[model][metric], [tail, 100 - tail])
                row |= {
                    f"{metric}_mean": float(plain.mean()),
                    f"{metric}_low": float(np.clip(low, 0, 1)),
                    f"{metric}_high": float(np.clip(high, 0, 1)),
                }
            table_rows.append(row)
        difference = resampled["scatnet"][VERDICT_METRIC] - resampled["cnn"][VERDICT_METRIC]
        estimate = (
            table_rows[-1][f"{VERDICT_METRIC}_mean"] - table_rows[-2][f"{VERDICT_METRIC}_mean"]
        )
        low, high = np.percentile(difference, [tail, 100 - tail])
        below = (np.count_nonzero(difference <= 0) + 1) / (resamples + 1)
        above = (np.count_nonzero(difference >= 0) + 1) / (resamples + 1)
        test_rows.append(
            {
                "size": int(size),
                "n": n,
                "difference": float(estimate),
                "low": float(low),
                "high": float(high),
                "p_value": float(min(1.0, 2 * min(below, above))),
            }
        )
        differences.append(difference)
    tests = pd.DataFrame(test_rows)
    tests["p_holm"] = holm(tests["p_value"])
    table = pd.DataFrame(table_rows).sort_values(
        ["size", "model"], ascending=[False, True], ignore_index=True
    )
    crossover = crossover_size(tests["size"], tests["difference"])
    replicated = np.stack(differences, axis=1)  # B x sizes
    crossings = [crossover_size(tests["size"], row) for row in replicated]
    found = np.array([c for c in crossings if c is not None])
    low, high = np.percentile(found, [tail, 100 - tail]) if found.size else (NAN, NAN)
    return SweepInference(table, tests, crossover, float(low), float(high), found.size / resamples)


def verdict(inference: SweepInference, alpha: float = 0.05) -> str:
    """One line on who wins where, from `sweep_inference`.

    Rule: a size is significant when its Holm-adjusted p < alpha. Going up from the smallest
    size, the longest run of significant sizes whose differences share one sign gives "… beats
    … at N images and below", N its largest size; going down from the largest size, likewise
    "… at M images and above" (when that run does not overlap the first). Significant sizes
    outside both runs make "no consistent trend"; none at all makes "no size shows a
    significant difference". The crossover and its interval follow.
    """
    ordered = inference.tests.sort_values("size", ignore_index=True)
    significant = (ordered["p_holm"] < alpha).to_numpy()
    signs = np.where(significant, np.sign(ordered["difference"]), 0)
    small = _run_length(signs)
    large = _run_length(signs[::-1]) if small < len(signs) else 0
    clauses = []
    if small:
        clauses.append(_clause(ordered.iloc[:small], alpha, "and below"))
    if large:
        clauses.append(_clause(ordered.iloc[len(ordered) - large :], alpha, "and above"))
    if clauses:
        line = "; ".join(clauses)
    elif significant.any():
        isolated = ", ".join(
            f"{row.size} images ({row.difference:+.3f}, Holm p = {row.p_holm:.2g})"
            for row in ordered[significant].itertuples()
        )
        line = (
            "no consistent trend: ScatNet − CNN balanced accuracy differs significantly only at "
            + isolated
        )
    else:
        line = (
            "no size shows a significant difference in balanced accuracy between ScatNet and CNN "
            f"(smallest Holm p = {ordered['p_holm'].min():.2g})"
        )
    return f"{line}; {_crossover_clause(inference)}"


def _crossover_clause(inference: SweepInference) -> str:
    if inference.crossover is None:
        return (
            "the mean curves do not cross in the swept range "
            f"(they cross in {inference.crossover_share:.0%} of bootstrap resamples)"
        )
    return (
        f"crossover ≈ {inference.crossover:.0f} images, 95 % bootstrap interval "
        f"[{inference.crossover_low:.0f}, {inference.crossover_high:.0f}] "
        f"(curves cross in {inference.crossover_share:.0%} of resamples)"
    )


def _run_length(signs: np.ndarray) -> int:
    """How many leading entries share the first entry's non-zero sign."""
    if len(signs) == 0 or signs[0] == 0:
        return 0
    different = np.flatnonzero(signs != signs[0])
    return int(different[0]) if different.size else len(signs)


def _clause(run: pd.DataFrame, alpha: float, direction: str) -> str:
    scatnet_wins = run["difference"].iloc[0] > 0
    winner = "ScatNet beats the CNN" if scatnet_wins else "the CNN beats the ScatNet"
    edge = run["size"].max() if direction == "and below" else run["size"].min()
    largest_p = run["p_holm"].max()
    if len(run) == 1:
        evidence = f"Holm p = {largest_p:.2g} < {alpha:g}"
    else:
        bound = "≤" if direction == "and below" else "≥"
        evidence = (
            f"Holm p < {alpha:g} at each of the {len(run)} sizes {bound} {edge}, "
            f"largest {largest_p:.2g}"
        )
    return f"{winner} in balanced accuracy at {edge} training images {direction} ({evidence})"
