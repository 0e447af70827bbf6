"""The shrinking-dataset sweep's data side: which training images each (size, repeat) uses.

Subsets are drawn from the training split only, so every size is scored on the same fixed test
split and the points of a learning curve are comparable. They keep the training split's class
ratio and, where the data names people or holds duplicates, take whole units (see
`glasses.data.splits`), so a small subset looks like a smaller data set collected the same way
(fewer people, each with all their images) rather than a thin slice of every person.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from glasses.config import GlassesConfig, OptimiserConfig
from glasses.data.splits import split_units
from glasses.families import CONTRAST, FAMILIES, SPECS
from glasses.learning_curve import CurveFits, fit_curves
from glasses.statistics import VERDICT_METRIC, SweepInference, verdict

SMALLEST_SIZE = 4  # two images per class: the least an inner validation split can stratify


def subsample_training(
    manifest: pd.DataFrame, train_rows: np.ndarray, size: int, seed: int
) -> np.ndarray:
    """Sorted row indices (into `manifest`) of `size` training rows, reproducible by `seed`.

    `train_rows` are row indices or a boolean mask over the manifest. Each class gets its
    training share of `size` (see `_class_targets`) and spans at least two units where the
    training split has them, so the subset can itself be split for early stopping. Units
    are visited in a seeded random order and taken whole while they fit; the shortfall left
    after that comes from partially used units: a single one when some unit holds all of it and
    no class still lacks a second unit. With single-class units that is at most one partial unit
    per class; units mixing classes in another ratio than the target, or tiny sizes, may need
    more. Partial units are harmless: the subset's inner split groups by units again.
    """
    rows = np.flatnonzero(train_rows) if train_rows.dtype == bool else np.asarray(train_rows)
    if not SMALLEST_SIZE <= size <= len(rows):
        raise ValueError(
            f"sweep size {size} must be between {SMALLEST_SIZE} and the {len(rows)} training images"
        )
    rng = np.random.default_rng(seed)
    _, label_index = np.unique(manifest["label"].to_numpy()[rows], return_inverse=True)
    _, unit_index = np.unique(split_units(manifest)[rows], return_inverse=True)
    counts = np.zeros((unit_index.max() + 1, label_index.max() + 1), dtype=np.int64)
    np.add.at(counts, (unit_index, label_index), 1)
    targets = _class_targets(counts.sum(axis=0), size)
    spread = np.minimum.reduce([np.full_like(targets, 2), targets, (counts > 0).sum(axis=0)])

    whole, skipped = _whole_units(counts, targets, spread, rng.permutation(len(counts)))
    members = np.split(np.argsort(unit_index, kind="stable"), np.cumsum(counts.sum(axis=1))[:-1])
    chosen = [members[unit] for unit in whole]
    shortfall = targets - counts[whole].sum(axis=0)
    missing = np.maximum(spread - (counts[whole] > 0).sum(axis=0), 0)
    for unit, take in _partial_units(counts, skipped, shortfall, missing):
        positions = rng.permutation(members[unit])
        for label, count in enumerate(take):
            chosen.append(positions[label_index[positions] == label][:count])
    return np.sort(rows[np.concatenate(chosen)])


def _class_targets(available: np.ndarray, size: int) -> np.ndarray:
    """Rows per class: the training ratio by largest remainder, then at least two per class.

    Two (one when there are too few rows for that) so that a stratified 2-fold split of the
    subset can put every class in both folds; the extra rows come from the largest class.
    """
    quotas = size * available / available.sum()
    targets = np.floor(quotas).astype(np.int64)
    targets[np.argsort(targets - quotas, kind="stable")[: size - targets.sum()]] += 1
    floors = np.minimum(available, 2 if size >= 2 * len(available) else 1)
    while np.any(targets < floors):
        targets[np.argmin(targets - floors)] += 1
        targets[np.argmax(targets - floors)] -= 1
    return targets


def _whole_units(
    counts: np.ndarray, targets: np.ndarray, spread: np.ndarray, order: np.ndarray
) -> tuple[list[int], list[int]]:
    """Units taken whole in `order` while they fit, and the skipped ones, still in order.

    A unit fits when, after it, every class still has room for one row from each further unit
    it needs to reach `spread` distinct units.
    """
    taken = np.zeros_like(targets)
    units_with = np.zeros_like(targets)
    whole: list[int] = []
    skipped: list[int] = []
    for unit in order:
        present = counts[unit] > 0
        reserve = np.maximum(spread - units_with - present, 0)
        if np.all(taken + counts[unit] + reserve <= targets):
            whole.append(int(unit))
            taken += counts[unit]
            units_with += present
        else:
            skipped.append(int(unit))
    return whole, skipped


def _partial_units(
    counts: np.ndarray, skipped: list[int], shortfall: np.ndarray, missing: np.ndarray
) -> list[tuple[int, np.ndarray]]:
    """(unit, rows to take per class) covering the shortfall, and `missing` more units per class.

    One unit when a single one can do it; otherwise units in order, each leaving a row per class
    for every further unit that class still needs.
    """
    if not shortfall.any():
        return []
    if np.all(missing <= 1):
        for unit in skipped:
            if np.all(counts[unit] >= shortfall):
                return [(unit, shortfall)]
    parts = []
    for unit in skipped:
        take = np.minimum(counts[unit], shortfall - np.maximum(missing - 1, 0))
        if take.any():
            parts.append((unit, take))
            shortfall = shortfall - take
            missing = missing - (take > 0)
        if not shortfall.any():
            break
    return parts


def default_sizes(n_train: int, smallest: int = 78, steps: int = 5) -> list[int]:
    """`steps` sizes, evenly spaced on a log axis from all training images down to `smallest`.

    Log spacing because the interesting changes of a learning curve happen per factor of data,
    not per image; 78 is the seed study's 46 + 32 images, so its single point is on the curve.
    Fewer sizes come back when rounding merges neighbours, just [n_train] when it is ≤ smallest.
    """
    if steps < 2:
        raise ValueError(f"steps {steps} must be at least 2: the full size and the smallest")
    if n_train <= smallest:
        return [n_train]
    sizes = np.rint(np.geomspace(n_train, smallest, steps)).astype(int)
    return sorted({int(size) for size in sizes}, reverse=True)


def sweep_sizes(config: GlassesConfig, n_train: int) -> list[int]:
    """The sweep's training-set sizes for a split of `n_train` training images: the configured
    ones that fit, else `default_sizes`."""
    if config.sweep.sizes is not None:
        return [size for size in config.sweep.sizes if size <= n_train]
    return default_sizes(n_train, config.sweep.smallest, config.sweep.steps)


def sweep_config(config: GlassesConfig) -> GlassesConfig:
    """The settings the sweep trains with: with `sweep.matched`, the ScatNet takes the CNN's
    head and optimiser."""
    return config.matched() if config.sweep.matched else config


def confounds(config: GlassesConfig) -> list[str]:
    """What, besides where their features come from, still differs between the two families in
    the sweep: the verdict is only as clean as this list is short."""
    trained = sweep_config(config)
    settings = {SPECS[family].title: SPECS[family].settings(trained) for family in FAMILIES}
    items = [_augmentation(trained.scatnet.augmented_copies)]
    heads = {title: section.head for title, section in settings.items()}
    if _differ(heads.values()):
        items.append(
            "head widths " + " vs ".join(f"{h.hidden} ({title})" for title, h in heads.items())
        )
    optimisers = {title: section.optimiser for title, section in settings.items()}
    if _differ(optimisers.values()):
        items.append(
            "optimiser " + " vs ".join(f"{title} {_describe(o)}" for title, o in optimisers.items())
        )
    return items


def _differ(values: Iterable[object]) -> bool:
    first, *rest = values
    return any(value != first for value in rest)


def _augmentation(copies: int) -> str:
    if not copies:
        return (
            "image augmentation for the CNN only (the ScatNet's coefficients are cached from "
            "un-augmented images)"
        )
    return (
        f"augmentation drawn afresh every step for the CNN, but fixed for the ScatNet ({copies} "
        "augmented copies per image, cached once, sampled with the original)"
    )


def _describe(optimiser: OptimiserConfig) -> str:
    return (
        f"(lr {optimiser.lr:g}, momentum {optimiser.momentum:g}, batch {optimiser.batch_size}, "
        f"{optimiser.steps} steps, patience {optimiser.patience})"
    )


def sweep_fits(inference: SweepInference) -> CurveFits | None:
    """Each family's inverse power law through its mean `VERDICT_METRIC` per size, with bands
    and the fitted crossing bootstrapped from the sweep's own resamples."""
    sizes = inference.tests["size"].to_numpy()
    table = inference.table.set_index(["model", "size"])[f"{VERDICT_METRIC}_mean"]
    scores = {model: table.loc[model].loc[sizes].to_numpy() for model in inference.resampled}
    return fit_curves(sizes, scores, inference.resampled)


def sweep_verdict(
    inference: SweepInference, fits: CurveFits | None, config: GlassesConfig, dropped: list[str]
) -> str:
    """The sweep's one line: who wins at which tried sizes, where the mean curves change order
    (censored at the tried range), what that rests on, then the fitted curves (extrapolation
    labelled as such), dropped sizes and the confounds that remain."""
    parts = [verdict(inference, config.sweep.alpha)]
    if fits is not None:
        parts.append(fits.describe({name: spec.title for name, spec in SPECS.items()}))
    parts += dropped
    parts.append(f"remaining confounds: {'; '.join(confounds(config))}")
    return "; ".join(parts)


def convergence(records: pd.DataFrame) -> pd.DataFrame:
    """Per (size, model): mean steps, the lowest final training accuracy, the share of points
    that stopped early and the share that ended on a loss plateau — the evidence that every
    point was trained to convergence."""
    grouped = records.groupby(["size", "model"])
    return pd.DataFrame(
        {
            "steps_mean": grouped["steps"].mean(),
            "final_train_accuracy_min": grouped["final_train_accuracy"].min(),
            "early_stopped_share": grouped["early_stopped"].mean(),
            "converged_share": grouped["converged"].mean(),
        }
    ).reset_index()


def budget_check(records: pd.DataFrame) -> pd.DataFrame:
    """Per checked size and step budget (`budget`, a multiplier): each family's mean
    `VERDICT_METRIC` over the draws run at every budget (the 1x ones restricted to them, so all
    budgets average the same rows), ScatNet − CNN and the share of converged trainings. Empty
    without a budget check."""
    draw = ["size", "outer", "repeat"]
    checked = records.loc[records["budget"] != 1.0, draw].drop_duplicates()
    if checked.empty:
        return pd.DataFrame()
    same = records.merge(checked, on=draw)
    table = same.pivot_table(
        index=["size", "budget"], columns="model", values=VERDICT_METRIC, aggfunc="mean"
    )
    first, second = CONTRAST
    table["difference"] = table[first] - table[second]
    table["converged_share"] = same.groupby(["size", "budget"])["converged"].mean()
    table["draws"] = same.groupby(["size", "budget"]).size() // len(FAMILIES)
    table.columns.name = None
    return table.reset_index()


def budget_caveats(table: pd.DataFrame) -> list[str]:
    """A caveat for every checked size at which the sign of ScatNet − CNN changes with the step
    budget: there the comparison measures training length as much as the families."""
    caveats = []
    for size, rows in table.groupby("size") if not table.empty else ():
        signs = set(np.sign(rows["difference"]))
        if len(signs - {0.0}) > 1:
            values = ", ".join(
                f"{row.budget:g}x {row.difference:+.3f}" for row in rows.itertuples()
            )
            caveats.append(
                f"caveat: at {size} images the sign of ScatNet − CNN changes with the step budget "
                f"({values}; means of {int(rows['draws'].min())} draws each, not tested), so "
                "there the comparison may depend on how long they train"
            )
    return caveats
