"""Uncertainty of repeated measurements: confidence intervals, paired tests, the sweep summary.

The generic helpers take plain sequences of numbers so that other studies (e.g. attribution
scores) can reuse them; the `sweep_*` / `size_tests` / `verdict` functions apply them to the
shrinking-dataset sweep's records. Undefined statistics (too few values) come back as NaN rather
than raising, so one failed size does not sink a whole summary.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

MODELS = ("cnn", "scatnet")
METRICS = ("accuracy", "f1")
NAN = float("nan")


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student t interval, right for the handful of repeats a sweep affords.

    A normal interval would be too narrow at n = 5 (t = 2.78 vs z = 1.96). One value has no
    spread, so its interval is (NaN, NaN).
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return NAN, NAN, NAN
    mean = float(x.mean())
    if x.size == 1:
        return mean, NAN, NAN
    half = stats.t.ppf((1 + confidence) / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return mean, float(mean - half), float(mean + half)


def bootstrap_ci(
    values: Sequence[float],
    statistic: Callable[[np.ndarray], float] = np.mean,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(statistic, low, high): percentile bootstrap, for statistics without a t distribution.

    Seeded so a logged interval can be reproduced; fewer than two values give (NaN, NaN) bounds.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return NAN, NAN, NAN
    estimate = float(statistic(x))
    if x.size == 1:
        return estimate, NAN, NAN
    draws = np.random.default_rng(seed).integers(0, x.size, size=(resamples, x.size))
    replicates = np.array([statistic(x[draw]) for draw in draws])
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return estimate, float(low), float(high)


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


def sweep_table(records: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95 % t interval over repeats, per (size, model), largest size first.

    `records` has one row per trained model: size, repeat, model ("cnn" | "scatnet"),
    accuracy, f1 (test-split scores).
    """
    rows = []
    for (size, model), group in records.groupby(["size", "model"]):
        row: dict[str, object] = {"size": int(size), "model": model, "n": len(group)}
        for metric in METRICS:
            mean, low, high = mean_ci(group[metric])
            row |= {f"{metric}_mean": mean, f"{metric}_low": low, f"{metric}_high": high}
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values(["size", "model"], ascending=[False, True], ignore_index=True)


def size_tests(records: pd.DataFrame) -> pd.DataFrame:
    """Per size, ScatNet − CNN test accuracy paired by repeat (same subset for both models).

    Pairing by repeat removes the subset-to-subset variation both models share, which is most of
    the spread at small sizes. Repeats where one model is missing are left out.
    """
    wide = records.pivot(index=["size", "repeat"], columns="model", values="accuracy")
    rows = []
    for size, pairs in wide.groupby(level="size"):
        complete = pairs.dropna(subset=list(MODELS))
        test = paired_test(complete["scatnet"], complete["cnn"])
        rows.append({"size": int(size), **asdict(test)})
    return pd.DataFrame(rows).sort_values("size", ascending=False, ignore_index=True)


def verdict(tests: pd.DataFrame, alpha: float = 0.05) -> str:
    """One line on who wins where, from `size_tests`.

    Rule: a size is significant when its t-test p < alpha. Going up from the smallest size, the
    longest run of significant sizes whose mean differences share one sign gives "… beats … at N
    images and below", N its largest size; going down from the largest size, likewise "… at M
    images and above" (when that run does not overlap the first). Significant sizes outside both
    runs make "no consistent trend"; none at all makes "no size shows a significant difference".
    """
    ordered = tests.sort_values("size", ignore_index=True)
    significant = (ordered["p_value"] < alpha).to_numpy()
    signs = np.where(significant, np.sign(ordered["mean_difference"]), 0)
    small = _run_length(signs)
    large = _run_length(signs[::-1]) if small < len(signs) else 0
    clauses = []
    if small:
        clauses.append(_clause(ordered.iloc[:small], alpha, "and below"))
    if large:
        clauses.append(_clause(ordered.iloc[len(ordered) - large :], alpha, "and above"))
    if clauses:
        return "; ".join(clauses)
    if significant.any():
        isolated = ", ".join(
            f"{row.size} images ({row.mean_difference:+.3f}, p = {row.p_value:.2g})"
            for row in ordered[significant].itertuples()
        )
        return (
            "no consistent trend: ScatNet − CNN accuracy differs significantly only at " + isolated
        )
    smallest = ordered["p_value"].min()
    return (
        "no size shows a significant difference between ScatNet and CNN "
        f"(smallest p = {smallest:.2g})"
    )


def _run_length(signs: np.ndarray) -> int:
    """How many leading entries share the first entry's non-zero sign."""
    if len(signs) == 0 or signs[0] == 0:
        return 0
    different = np.flatnonzero(signs != signs[0])
    return int(different[0]) if different.size else len(signs)


def _clause(run: pd.DataFrame, alpha: float, direction: str) -> str:
    scatnet_wins = run["mean_difference"].iloc[0] > 0
    winner = "ScatNet beats the CNN" if scatnet_wins else "the CNN beats the ScatNet"
    edge = run["size"].max() if direction == "and below" else run["size"].min()
    largest_p = run["p_value"].max()
    if len(run) == 1:
        evidence = f"p = {largest_p:.2g} < {alpha:g}"
    else:
        bound = "≤" if direction == "and below" else "≥"
        evidence = (
            f"p < {alpha:g} at each of the {len(run)} sizes {bound} {edge}, "
            f"largest p = {largest_p:.2g}"
        )
    return f"{winner} at {edge} training images {direction} ({evidence})"
