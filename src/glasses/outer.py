"""The study's outer splits: what is trained where, and what its test scores rest on.

The registered model is one refit on the run's training split, checked once on its held-out
split. The study's *numbers* do not come from that one split: a single partition, one training
and about a fifth of the images gave headlines that moved with the seed. They come from outer
splits, repeated grouped k-fold partitions of all images (`glasses.data.splits`), in which each
family is trained on the training part and scored on the test part, and the sweep's subsets are
drawn from each split's training part. `glasses.statistics.sweep_inference` then resamples the
splits, the training draws and the test people (docs/decisions/0009-outer-splits.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from glasses.config import GlassesConfig
from glasses.data.splits import outer_test_masks, split_units
from glasses.families import FAMILIES, SPECS
from glasses.metrics import majority_baseline
from glasses.statistics import OuterDesign
from glasses.sweep import subsample_training, sweep_sizes


def outer_design(manifest: pd.DataFrame, config: GlassesConfig) -> OuterDesign:
    """The outer splits of `config.split` (`folds` folds, `outer` repetitions) with every
    row's label and person."""
    masks = outer_test_masks(manifest, config.split.folds, config.split.outer, config.seed)
    return OuterDesign(
        tuple(np.flatnonzero(mask) for mask in masks),
        manifest["label"].to_numpy(),
        split_units(manifest),
    )


@dataclass(frozen=True)
class PointPlan:
    """One training of each family: on outer split `outer`, `size` images (None: the split's
    whole training part) of draw `repeat`."""

    outer: int
    size: int | None
    repeat: int
    budget: float = 1.0  # multiplier of both families' step budgets (the budget check)
    matched: bool = False  # the ScatNet with the CNN's head and optimiser (`sweep.matched`)

    def name(self, family: str) -> str:
        """`cnn-outer-1`, `scatnet-sweep-150-split-1-r2`, `cnn-sweep-20-split-3-r1-x2`: one
        family's training of this plan (split and draw counted from 1), as its task run and its
        progress lines name it."""
        where = (
            f"sweep-{self.size}-split-{self.outer + 1}" if self.size else f"outer-{self.outer + 1}"
        )
        repeat = f"-r{self.repeat + 1}" if self.size is not None or self.repeat else ""
        budget = f"-x{self.budget:g}" if self.budget != 1 else ""
        return f"{family}-{where}{repeat}{budget}{'-matched' if self.matched else ''}"


def comparison_plan(design: OuterDesign) -> list[PointPlan]:
    """The main comparison: each family trained once on each outer split's training part."""
    return [PointPlan(outer, None, 0) for outer in range(len(design.tests))]


def study_trainings(config: GlassesConfig, design: OuterDesign) -> int:
    """Trainings of one study run: both families' folds and refit, the main comparison and the
    sweep points; what a whole-run estimate counts (`glasses.progress.study_estimate`)."""
    plans = comparison_plan(design) + (sweep_plan(config, design) if config.sweep.enabled else [])
    return len(FAMILIES) * (config.split.folds + 1 + len(plans))


def sweep_sizes_kept(config: GlassesConfig, design: OuterDesign) -> tuple[list[int], list[str]]:
    """The sweep's sizes, and why any was dropped. Sizes come from the smallest split's training
    part, so every size fits every split; a size whose draw would give a class fewer than
    `sweep.min_per_class` images (at the training part's class ratio) is dropped: its scores
    would measure the draw more than the family."""
    parts = [design.training(outer) for outer in range(len(design.tests))]
    n_train = min(len(part) for part in parts)
    rarest = min(min(np.bincount(design.labels[part], minlength=2)) / len(part) for part in parts)
    kept, dropped = [], []
    for size in config.sweep.sizes or ():
        if size > n_train:
            dropped.append(
                f"size {size} dropped: larger than the smallest outer training part "
                f"({n_train} images)"
            )
    for size in sweep_sizes(config, n_train):
        if size * rarest < config.sweep.min_per_class:
            dropped.append(
                f"size {size} dropped: about {size * rarest:.1f} images of the rarer class, fewer "
                f"than sweep.min_per_class = {config.sweep.min_per_class}"
            )
        else:
            kept.append(size)
    for size in config.sweep.budget_sizes or ():
        if size not in kept and config.sweep.budget_factors:
            dropped.append(f"budget check at {size} images skipped: not a swept size")
    return kept, dropped


def sweep_plan(config: GlassesConfig, design: OuterDesign) -> list[PointPlan]:
    """The sweep: `sweep.repeats` draws per kept size (`sweep_sizes_kept`), draw r on outer
    split r mod the number of splits (its `repeat` the draw's count on that split), so the
    repeats are spread over the splits rather than multiplied by them. A size equal to the
    smallest training part means each split's whole part: unless the sweep is matched (other
    settings), those draws are the main comparison's trainings (`comparison_plan`), which the
    result store then lends the sweep.
    Then the budget check: the first `sweep.budget_repeats` draws of `sweep.budget_sizes`
    (default: the smallest and largest kept size) again at each of `sweep.budget_factors` times
    the step budget, on the same rows as their 1x draw."""
    splits = len(design.tests)
    sizes = sweep_sizes_kept(config, design)[0]
    whole = min(len(design.labels) - len(tests) for tests in design.tests)

    def draw(size: int, index: int, budget: float = 1.0) -> PointPlan:
        nominal = None if size == whole else size
        return PointPlan(index % splits, nominal, index // splits, budget, config.sweep.matched)

    plan = [draw(size, index) for size in sizes for index in range(config.sweep.repeats)]
    repeats = min(config.sweep.budget_repeats, config.sweep.repeats)
    return plan + [
        draw(size, index, factor)
        for factor in config.sweep.budget_factors
        for size in budget_sizes(config, sizes)
        for index in range(repeats)
    ]


def budget_sizes(config: GlassesConfig, sizes: list[int]) -> list[int]:
    """The swept `sizes` the budget check re-trains: `sweep.budget_sizes`, or the smallest and
    the largest."""
    checked = config.sweep.budget_sizes or sorted({min(sizes), max(sizes)} if sizes else ())
    return [size for size in checked if size in sizes]


def point_rows(manifest: pd.DataFrame, test: np.ndarray, plan: PointPlan, seed: int) -> np.ndarray:
    """Training rows of a point: the outer split's whole training part, or a seeded subset of
    `plan.size` of them (`glasses.sweep.subsample_training`: stratified, whole people)."""
    train = np.flatnonzero(~test)
    return train if plan.size is None else subsample_training(manifest, train, plan.size, seed)


def point_config(config: GlassesConfig, plan: PointPlan) -> GlassesConfig:
    """The settings a point trains with: the study's, with the ScatNet matched to the CNN for
    a matched sweep's point, both families' step budgets times `plan.budget`."""
    trained = config.matched() if plan.matched else config
    if plan.budget == 1.0:
        return trained
    update = {}
    for family in FAMILIES:
        section = SPECS[family].settings(trained)
        steps = max(1, round(section.optimiser.steps * plan.budget))
        optimiser = section.optimiser.model_copy(update={"steps": steps})
        update[family] = section.model_copy(update={"optimiser": optimiser})
    return trained.model_copy(update=update)


def outer_baseline(design: OuterDesign) -> dict[str, float]:
    """The majority-class baseline averaged over the outer splits: what always answering each
    split's training majority would score on its test part."""
    per_split = [
        majority_baseline(design.labels[design.training(outer)], design.labels[tests])
        for outer, tests in enumerate(design.tests)
    ]
    return {metric: float(np.mean([s[metric] for s in per_split])) for metric in per_split[0]}
