"""What is trained where on the outer splits: plans, seeds and the baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from glasses.config import resolve_config
from glasses.outer import (
    PointPlan,
    comparison_plan,
    outer_baseline,
    outer_design,
    point_config,
    study_trainings,
    sweep_plan,
    sweep_sizes_kept,
)
from glasses.results import point_seed


def quick(overrides: dict | None = None):
    """`quick` with two repetitions of the outer 3-fold: six splits."""
    return resolve_config("quick", {"split": {"outer": 2}, **(overrides or {})})


def people(n: int = 90) -> pd.DataFrame:
    """n images of n / 3 people, 3 photos each; people alternate glasses / none (1 in 3 wear)."""
    person = np.repeat(np.arange(n // 3), 3)
    return pd.DataFrame(
        {
            "path": [f"{i}.png" for i in range(n)],
            "label": (person % 3 == 0).astype(int),
            "group": [f"p{p}" for p in person],
            "sha256": [f"{i:064d}" for i in range(n)],
        }
    )


def test_design_follows_the_split_settings_and_names_people() -> None:
    config = quick()  # 3 folds, 2 repetitions
    design = outer_design(people(), config)
    assert len(design.tests) == 6
    assert design.people.tolist() == np.repeat(np.arange(30), 3).tolist()
    assert design.test_mask(2).sum() == len(design.tests[2])


def test_sweep_spreads_repeats_over_splits_and_sizes_fit_the_smallest_part() -> None:
    config = quick({"sweep": {"sizes": (300, 50, 20), "repeats": 7, "budget_factors": ()}})
    design = outer_design(people(), config)
    plan = sweep_plan(config, design)
    assert [p.size for p in plan] == [50] * 7 + [20] * 7  # 300 > any training part of 60
    assert [p.outer for p in plan[:7]] == [0, 1, 2, 3, 4, 5, 0]
    assert [p.repeat for p in plan[:7]] == [0, 0, 0, 0, 0, 0, 1]  # the draw's count on its split
    assert comparison_plan(design) == [PointPlan(o, None, 0) for o in range(6)]


def test_the_largest_default_size_is_each_splits_whole_part_shared_with_the_comparison() -> None:
    config = quick({"sweep": {"sizes": None, "steps": 3, "smallest": 20, "budget_factors": ()}})
    design = outer_design(people(), config)
    plan = sweep_plan(config, design)
    whole = [p for p in plan if p.size is None]
    assert len(whole) == config.sweep.repeats
    assert set(comparison_plan(design)) <= set(whole)  # the same trainings: stored once
    assert {p.size for p in plan} == {None, 35, 20}  # geometric from 60 down to 20


def test_points_have_distinct_seeds_and_the_sweep_its_own_settings() -> None:
    config = quick({"sweep": {"matched": True}})
    plans = [PointPlan(o, s, r) for o in range(3) for s in (None, 20, 50) for r in range(3)]
    assert len({point_seed(42, p) for p in plans}) == len(plans)
    assert point_config(config, PointPlan(0, None, 0)) is config
    matched = point_config(config, PointPlan(0, None, 0, matched=True))
    assert matched.scatnet.head == config.cnn.head != config.scatnet.head
    assert all(p.matched for p in sweep_plan(config, outer_design(people(), config)))


def test_baseline_is_the_majority_answer_averaged_over_splits() -> None:
    design = outer_design(people(), quick())
    baseline = outer_baseline(design)
    assert baseline["balanced_accuracy"] == pytest.approx(0.5)
    shares = [1 - design.labels[t].mean() for t in design.tests]  # "no glasses" is the majority
    assert baseline["accuracy"] == pytest.approx(np.mean(shares))


def test_sizes_too_small_for_the_rarer_class_are_dropped_with_the_reason() -> None:
    config = quick({"sweep": {"sizes": (50, 20, 12), "min_per_class": 5}, "split": {"outer": 1}})
    design = outer_design(people(), config)  # one in three wears glasses; 30 % in one part
    kept, dropped = sweep_sizes_kept(config, design)
    assert kept == [50, 20]
    assert dropped == [
        "size 12 dropped: about 3.6 images of the rarer class, fewer than sweep.min_per_class = 5"
    ]


def test_budget_check_repeats_the_first_draws_of_the_end_sizes_at_each_factor() -> None:
    config = quick(
        {"sweep": {"sizes": (50, 30, 20), "repeats": 7, "budget_factors": (0.5, 2.0),
                   "budget_sizes": None, "budget_repeats": 2}},
    )  # fmt: skip
    plan = sweep_plan(config, outer_design(people(), config))
    checks = [p for p in plan if p.budget != 1.0]
    assert len(plan) == 3 * 7 + len(checks)
    assert [(p.budget, p.size, p.outer, p.repeat) for p in checks] == [
        (b, s, o, 0) for b in (0.5, 2.0) for s in (20, 50) for o in (0, 1)
    ]
    same = {(p.outer, p.size, p.repeat): p for p in plan if p.budget == 1.0}
    assert all(same[(p.outer, p.size, p.repeat)] for p in checks)  # pairs with a 1x draw
    base = next(p for p in checks if p.budget == 2.0)
    assert point_seed(42, base) == point_seed(42, same[(base.outer, base.size, base.repeat)])


def test_a_budget_factor_scales_both_families_steps() -> None:
    config = quick()
    doubled = point_config(config, PointPlan(0, 20, 0, 2.0))
    assert doubled.cnn.optimiser.steps == 2 * config.cnn.optimiser.steps
    assert doubled.scatnet.optimiser.steps == 2 * config.scatnet.optimiser.steps
    halved = point_config(config, PointPlan(0, None, 0, 0.5))
    assert halved.cnn.optimiser.steps == config.cnn.optimiser.steps // 2


def test_sizes_larger_than_the_smallest_training_part_are_named() -> None:
    config = quick({"sweep": {"sizes": (300, 50), "budget_factors": ()}})
    kept, dropped = sweep_sizes_kept(config, outer_design(people(), config))
    assert kept == [50]
    assert dropped == ["size 300 dropped: larger than the smallest outer training part (60 images)"]


def test_plan_names_say_family_split_size_and_draw_from_one() -> None:
    assert PointPlan(0, None, 0).name("cnn") == "cnn-outer-1"
    assert PointPlan(1, 150, 1).name("scatnet") == "scatnet-sweep-150-split-2-r2"
    assert PointPlan(2, 20, 0, budget=2.0, matched=True).name("scatnet") == (
        "scatnet-sweep-20-split-3-r1-x2-matched"
    )


def test_study_trainings_count_folds_refits_comparison_and_sweep() -> None:
    config = quick({"sweep": {"sizes": (50, 20), "repeats": 7, "budget_factors": ()}})
    design = outer_design(people(), config)
    points = len(comparison_plan(design)) + len(sweep_plan(config, design))
    assert study_trainings(config, design) == 2 * (3 + 1 + points)
    off = config.model_copy(update={"sweep": config.sweep.model_copy(update={"enabled": False})})
    assert study_trainings(off, design) == 2 * (3 + 1 + 6)
