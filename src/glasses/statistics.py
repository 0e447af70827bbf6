"""Uncertainty of repeated measurements: confidence intervals, paired tests, the sweep summary.

The generic helpers take plain sequences of numbers so that other studies (e.g. attribution
scores) can reuse them. The study's inference resamples every source of chance that changes
with the seed at once: the outer splits, the drawn training subsets (repeats) within them and
the test people, keeping the two models paired on every draw, then corrects across sizes with
Holm (docs/decisions/0005-sweep-statistics.md, docs/decisions/0009-outer-splits.md).
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

from glasses.families import CONTRAST, FAMILIES, Family

METRICS = ("accuracy", "balanced_accuracy", "macro_f1")
VERDICT_METRIC = "balanced_accuracy"
NAN = float("nan")


def headline_metrics() -> tuple[str, ...]:
    """The study's headline, each family's mean test `VERDICT_METRIC` as the parent run logs it
    (`tasks.reporting`): the columns MLflow's runs table opens with."""
    return tuple(f"{family}_test_{VERDICT_METRIC}" for family in FAMILIES)


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


def sign_changes(sizes: Sequence[float], differences: Sequence[float]) -> list[tuple[float, int]]:
    """Where the ScatNet − CNN difference changes sign as the size grows: (size, direction), with
    direction +1 for ScatNet ahead → CNN ahead (the crossover the study asks about) and -1 for the
    reverse. Linear interpolation on log(size), since sizes are spaced geometrically; a run of
    exact zeros between two signs is the change itself (its geometric centre)."""
    order = np.argsort(np.asarray(sizes, dtype=float))
    logs = np.log(np.asarray(sizes, dtype=float)[order])
    values = np.asarray(differences, dtype=float)[order]
    nonzero = np.flatnonzero(np.sign(values))
    changes = []
    for before, after in zip(nonzero[:-1], nonzero[1:], strict=True):
        if np.sign(values[before]) == np.sign(values[after]):
            continue
        if after - before > 1:
            at = logs[before + 1 : after].mean()
        else:
            share = values[before] / (values[before] - values[after])
            at = logs[before] + share * (logs[after] - logs[before])
        changes.append((float(np.exp(at)), 1 if values[before] > 0 else -1))
    return changes


def crossover_size(sizes: Sequence[float], differences: Sequence[float]) -> float | None:
    """The size where the ScatNet stops being ahead and the CNN takes over, as the size grows:
    the first ScatNet → CNN sign change from the small end, or None. A change the other way is
    not a crossover in the study's sense (`sign_changes` names it)."""
    forward = [size for size, direction in sign_changes(sizes, differences) if direction > 0]
    return forward[0] if forward else None


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


@dataclass(frozen=True)
class OuterDesign:
    """How the study's test scores were drawn: the row indices of each outer split's test part,
    and the label and person of every manifest row (`people`: the units of
    `glasses.data.splits.split_units`, one per image where the data names nobody)."""

    tests: tuple[np.ndarray, ...]
    labels: np.ndarray
    people: np.ndarray

    def training(self, outer: int) -> np.ndarray:
        """Row indices of outer split `outer`'s training part: every row not in its test part."""
        return np.flatnonzero(~self.test_mask(outer))

    def test_mask(self, outer: int) -> np.ndarray:
        """Test flags of outer split `outer` over all manifest rows."""
        mask = np.zeros(len(self.labels), dtype=bool)
        mask[self.tests[outer]] = True
        return mask


def sign_flip_floor(units: int) -> float:
    """The smallest two-sided p that `units` independent paired trainings can support: an exact
    sign-flip test's, when all differences share one sign (2 / 2**units; 0.0625 for 5)."""
    return min(1.0, 2.0 ** (1 - units))


def _people_weights(
    people: np.ndarray, labels: np.ndarray, resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """resamples x N counts: how often each image counts when the *people* are drawn with
    replacement, within strata of people of one class (glasses, none, both), so a resample keeps
    about the class sizes. Photos of one person move together: they are correlated, and
    resampling them one by one understates the spread. One draw serves every outer split, so a
    person tested in several (repeated k-fold) carries one weight in all of them."""
    _, person = np.unique(people, return_inverse=True)
    share = np.bincount(person, weights=labels) / np.bincount(person)
    stratum = np.where(share == 1, 1, np.where(share == 0, 0, 2))
    drawn = np.zeros((resamples, len(share)))
    for level in np.unique(stratum):
        members = np.flatnonzero(stratum == level)
        drawn[:, members] = rng.multinomial(
            len(members), np.full(len(members), 1 / len(members)), size=resamples
        )
    return drawn[:, person]


def people_interval(
    values: Sequence[float],
    people: Sequence[int],
    labels: Sequence[int],
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of per-image `values`, the interval a percentile bootstrap that
    draws the *people* with replacement, as the sweep does (`_people_weights`: within strata of
    one class, an image's siblings moving with it). It covers which people were measured, for
    fixed models and maps. NaN values (undefined) are left out with their images; n counts the
    rest. Fewer than two people, or values without spread, give NaN bounds."""
    x = np.asarray(values, dtype=float)
    keep = np.isfinite(x)
    x, who, classes = x[keep], np.asarray(people)[keep], np.asarray(labels, dtype=float)[keep]
    if x.size == 0:
        return NAN, NAN, NAN, 0
    mean = float(x.mean())
    if np.unique(who).size < 2 or np.ptp(x) == 0:
        return mean, NAN, NAN, int(x.size)
    weights = _people_weights(who, classes, resamples, np.random.default_rng(seed))
    means = (weights @ x) / weights.sum(axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return mean, float(low), float(high), int(x.size)


def _unit_weights(
    outer: np.ndarray, split_counts: np.ndarray | None, rng: np.random.Generator
) -> np.ndarray:
    """B x U weights of the trained units (rows of `outer`: each unit's outer split) that make a
    weighted sum the mean over outer splits of the mean over the split's units. `split_counts`
    (B x all splits: how often each split was drawn, one draw shared by every size, since a
    split's training pool and test people are the same at every size) weighs the splits these
    units use; units within each split are drawn with replacement per size. None: the plain
    weights (1 x U). A resample that drew none of these units' splits has zero weights."""
    splits = np.unique(outer)
    if split_counts is None:
        share = np.full((1, len(splits)), 1 / len(splits))
    else:
        counts = split_counts[:, splits].astype(float)
        total = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    rows = len(share)
    weights = np.zeros((rows, len(outer)))
    for index, split in enumerate(splits):
        members = np.flatnonzero(outer == split)
        if split_counts is None:
            within = np.full((1, len(members)), 1 / len(members))
        else:
            uniform = np.full(len(members), 1 / len(members))
            within = rng.multinomial(len(members), uniform, size=rows) / len(members)
        weights[:, members] = share[:, [index]] * within
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


def _unit_metric(
    metric: str,
    predictions: list[np.ndarray],
    outer: np.ndarray,
    design: OuterDesign,
    people: list[np.ndarray] | None,
) -> np.ndarray:
    """B x U: each unit's `metric` on its outer split's test part, under that split's people
    weights (`people[split]`, B x T), or unweighted (1 x U) when `people` is None."""
    rows = 1 if people is None else len(people[0])
    values = np.zeros((rows, len(outer)))
    for split in np.unique(outer):
        members = np.flatnonzero(outer == split)
        tests = design.tests[split]
        weights = np.ones((1, len(tests))) if people is None else people[split]
        stacked = np.stack([predictions[m] for m in members])
        values[:, members] = _weighted_metric(metric, stacked, design.labels[tests], weights)
    return values


def _combine(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Weighted sums per resample; a NaN counts only where its unit was drawn, and a resample
    that drew no unit at all is NaN."""
    combined = np.where(weights > 0, weights * values, 0.0).sum(axis=1)
    return np.where(weights.sum(axis=1) > 0, combined, NAN)


@dataclass(frozen=True)
class SweepInference:
    """Paired inference of the two families over outer splits: `table` per (size, model),
    `tests` per size (ScatNet − CNN on `VERDICT_METRIC`), and the crossover with its bootstrap
    interval."""

    table: pd.DataFrame
    tests: pd.DataFrame
    crossover: float | None
    crossover_low: float
    crossover_high: float
    crossover_share: float  # share of resamples in which the curves cross at all
    # per model, resamples x sizes (in `tests` order) of the mean `VERDICT_METRIC`: what the
    # learning-curve fits are bootstrapped from
    resampled: dict[str, np.ndarray]


def sweep_inference(
    points: pd.DataFrame,
    design: OuterDesign,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> SweepInference:
    """Paired hierarchical bootstrap of test predictions made on outer splits.

    `points` has one row per trained model: size, outer (index into `design.tests`), repeat,
    model ("cnn" | "scatnet") and `predictions` (an array over that outer split's test rows).
    An estimate is the mean over outer splits of the mean over the split's repeats. Each
    resample draws outer splits with replacement (one draw for all sizes: a split's pool is the
    same at every size), then repeats within each drawn split (the same draw for both models,
    which trained on the same subsets), then the test *people* (one draw for all splits and
    sizes: a person weighs the same wherever they are tested). So an
    interval covers what changes with the seed: the partition, the training subsets and who is
    in the test set.
    Intervals are percentiles, inside [0, 1] by construction. p-values are two-sided, from the
    share of resampled differences on either side of zero, never below the sign-flip floor of
    the outer splits the size's trainings used (`sign_flip_floor`: draws on one split share its
    pool and test people, so they are not independent units), then Holm-adjusted across sizes.
    """
    rng = np.random.default_rng(seed)
    everyone = _people_weights(design.people, design.labels, resamples, rng)
    people = [everyone[:, tests] for tests in design.tests]
    splits = len(design.tests)
    split_counts = rng.multinomial(splits, np.full(splits, 1 / splits), size=resamples)
    sizes = sorted(points["size"].unique(), reverse=True)
    tail = 100 * (1 - confidence) / 2
    table_rows, test_rows, differences = [], [], []
    curves: dict[str, list[np.ndarray]] = {model: [] for model in FAMILIES}
    first, second = CONTRAST
    for size in sizes:
        wide = points[points["size"] == size].pivot(
            index=["outer", "repeat"], columns="model", values="predictions"
        )
        wide = wide.dropna(subset=list(FAMILIES))
        outer = wide.index.get_level_values("outer").to_numpy()
        draws = _unit_weights(outer, split_counts, rng)
        plain = _unit_weights(outer, None, rng)
        resampled: dict[str, dict[str, np.ndarray]] = {}
        estimates: dict[str, dict[str, float]] = {}
        for model in FAMILIES:
            predictions = wide[model].to_list()
            row: dict[str, object] = {"size": int(size), "model": model, "n": len(wide)}
            resampled[model], estimates[model] = {}, {}
            for metric in METRICS:
                values = _unit_metric(metric, predictions, outer, design, people)
                resampled[model][metric] = _combine(draws, values)
                estimate = float(
                    _combine(plain, _unit_metric(metric, predictions, outer, design, None))[0]
                )
                low, high = np.nanpercentile(resampled[model][metric], [tail, 100 - tail])
                estimates[model][metric] = estimate
                row |= {
                    f"{metric}_mean": estimate,
                    f"{metric}_low": float(np.clip(low, 0, 1)),
                    f"{metric}_high": float(np.clip(high, 0, 1)),
                }
            table_rows.append(row)
        for model in FAMILIES:
            curves[model].append(resampled[model][VERDICT_METRIC])
        difference = resampled[first][VERDICT_METRIC] - resampled[second][VERDICT_METRIC]
        finite = difference[np.isfinite(difference)]
        low, high = np.percentile(finite, [tail, 100 - tail])
        below = (np.count_nonzero(finite <= 0) + 1) / (finite.size + 1)
        above = (np.count_nonzero(finite >= 0) + 1) / (finite.size + 1)
        floor = sign_flip_floor(len(np.unique(outer)))
        test_rows.append(
            {
                "size": int(size),
                "n": len(wide),
                "outer": len(np.unique(outer)),
                "difference": estimates[first][VERDICT_METRIC] - estimates[second][VERDICT_METRIC],
                "low": float(low),
                "high": float(high),
                "p_floor": floor,
                "p_value": float(max(floor, min(1.0, 2 * min(below, above)))),
            }
        )
        differences.append(difference)
    tests = pd.DataFrame(test_rows)
    tests["p_holm"] = holm(tests["p_value"])
    table = pd.DataFrame(table_rows).sort_values(
        ["size", "model"], ascending=[False, True], ignore_index=True
    )
    changes = sign_changes(tests["size"], tests["difference"])
    # A crossover only where the mean curves change order once, the study's way round.
    crossover = changes[0][0] if len(changes) == 1 and changes[0][1] > 0 else None
    replicated = np.stack(differences, axis=1)  # B x sizes
    replicated = replicated[np.isfinite(replicated).all(axis=1)]
    crossings = [crossover_size(tests["size"], row) for row in replicated]
    found = np.array([c for c in crossings if c is not None])
    low, high = np.percentile(found, [tail, 100 - tail]) if found.size else (NAN, NAN)
    share = found.size / max(1, len(replicated))
    stacked = {model: np.stack(values, axis=1) for model, values in curves.items()}
    return SweepInference(table, tests, crossover, float(low), float(high), share, stacked)


def ahead(difference: float) -> Family:
    """The family a difference (`CONTRAST`) puts ahead: the first when it is positive."""
    first, second = CONTRAST
    return first if difference > 0 else second


def verdict_class(tests: pd.DataFrame, alpha: float = 0.05) -> str:
    """Who wins anywhere in a sweep, as `verdict` decides it: "scatnet", "cnn", "both" (each at
    some size) or "none" (no size with Holm p < alpha). What two seeds must agree on."""
    significant = tests[tests["p_holm"] < alpha]
    winners = {ahead(difference) for difference in significant["difference"]}
    return "both" if len(winners) == 2 else winners.pop() if winners else "none"


def verdict(inference: SweepInference, alpha: float = 0.05) -> str:
    """One line on who wins where, from `sweep_inference`.

    Rule: a size is significant when its Holm-adjusted p < alpha. Going up from the smallest
    size, the longest run of significant sizes whose differences share one sign gives "… beats
    … at every size tried from S to N", S the smallest size and N the run's largest; going down
    from the largest size, likewise (when that run does not overlap the first). A claim never
    reaches past a tried size. Significant sizes outside both runs make "no consistent trend";
    none at all makes "no size shows a significant difference". Where the curves change order
    follows (`_crossover_clause`), then what the verdict rests on."""
    ordered = inference.tests.sort_values("size", ignore_index=True)
    significant = (ordered["p_holm"] < alpha).to_numpy()
    signs = np.where(significant, np.sign(ordered["difference"]), 0)
    small = _run_length(signs)
    large = _run_length(signs[::-1]) if small < len(signs) else 0
    clauses = []
    if small:
        clauses.append(_clause(ordered.iloc[:small], alpha))
    if large:
        clauses.append(_clause(ordered.iloc[len(ordered) - large :], alpha))
    between = significant.copy()
    between[:small] = False
    between[len(between) - large :] = False
    isolated = ", ".join(
        f"{row.size} images ({row.difference:+.3f}, Holm p = {row.p_holm:.2g})"
        for row in ordered[between].itertuples()
    )
    if clauses:
        line = "; ".join(clauses)
        if isolated:
            line += f"; elsewhere ScatNet − CNN differs significantly at {isolated}"
    elif significant.any():
        line = (
            "no consistent trend: ScatNet − CNN balanced accuracy differs significantly only at "
            + isolated
        )
    else:
        line = (
            "no size shows a significant difference in balanced accuracy between ScatNet and CNN "
            f"(smallest Holm p = {ordered['p_holm'].min():.2g})"
        )
    return f"{line}; {_crossover_clause(inference)}; {_design_clause(inference.tests, alpha)}"


def _design_clause(tests: pd.DataFrame, alpha: float) -> str:
    """What the verdict rests on, and whether Holm could have rejected at all: with too few
    paired trainings per size even a unanimous sign cannot reach alpha / sizes."""
    floor = float(tests["p_floor"].max())
    trainings = "-".join(str(n) for n in sorted(tests["n"].unique()))
    line = (
        f"from {int(tests['outer'].max())} outer splits, {trainings} paired trainings per size, "
        f"test people resampled (smallest reachable p = {floor:.2g})"
    )
    if floor * len(tests) >= alpha:
        line += (
            f"; Holm at {alpha:g} over {len(tests)} sizes is out of reach with so few trainings "
            "per size: spread more draws over more outer splits (sweep.repeats, split.outer)"
        )
    return line


def _crossover_clause(inference: SweepInference) -> str:
    """Where the mean curves change order, censored at the tried range: a change is only claimed
    between two tried sizes, and its absence says on which side of the range one could lie."""
    tests = inference.tests.sort_values("size")
    sizes, differences = tests["size"].to_numpy(), tests["difference"].to_numpy()
    changes = sign_changes(sizes, differences)
    tried = f"{sizes.min():.0f}–{sizes.max():.0f}"
    if len(changes) > 1:
        near = ", ".join(f"≈ {size:.0f}" for size, _ in changes)
        return (
            f"non-monotone: ScatNet − CNN changes sign {len(changes)} times ({near} images), so "
            "there is no single crossover"
        )
    if not changes:
        if (differences > 0).any():
            return (
                f"the ScatNet is ahead at every size tried ({tried}): a crossover to the CNN, if "
                f"any, lies above {sizes.max():.0f} images"
            )
        if (differences < 0).any():
            return (
                f"the CNN is ahead at every size tried ({tried}): a crossover, if any, lies "
                f"below {sizes.min():.0f} images"
            )
        return f"the mean curves coincide at every size tried ({tried})"
    size, direction = changes[0]
    if direction < 0:
        return (
            f"reverse crossing ≈ {size:.0f} images: the CNN ahead below it, the ScatNet above "
            "(not the small-data advantage the seed study claimed)"
        )
    return (
        f"crossover ≈ {size:.0f} images (ScatNet ahead below, CNN above), 95 % bootstrap "
        f"interval [{inference.crossover_low:.0f}, {inference.crossover_high:.0f}] "
        f"(curves cross this way in {inference.crossover_share:.0%} of resamples)"
    )


def _run_length(signs: np.ndarray) -> int:
    """How many leading entries share the first entry's non-zero sign."""
    if len(signs) == 0 or signs[0] == 0:
        return 0
    different = np.flatnonzero(signs != signs[0])
    return int(different[0]) if different.size else len(signs)


_WINS = {"scatnet": "ScatNet beats the CNN", "cnn": "the CNN beats the ScatNet"}


def _clause(run: pd.DataFrame, alpha: float) -> str:
    """Who wins over a run of tried sizes, never extended past them."""
    winner = _WINS[ahead(run["difference"].iloc[0])]
    low, high = run["size"].min(), run["size"].max()
    largest_p = run["p_holm"].max()
    if len(run) == 1:
        where = f"at {low} training images"
        evidence = f"Holm p = {largest_p:.2g} < {alpha:g}"
    else:
        where = f"at every size tried from {low} to {high} training images"
        evidence = f"Holm p < {alpha:g} at each of the {len(run)} sizes, largest {largest_p:.2g}"
    return f"{winner} in balanced accuracy {where} ({evidence})"
