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
    point_seed,
    sweep_plan,
)


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
    config = resolve_config("quick")  # 3 folds, 2 repetitions
    design = outer_design(people(), config)
    assert len(design.tests) == 6
    assert design.people.tolist() == np.repeat(np.arange(30), 3).tolist()
    assert design.test_mask(2).sum() == len(design.tests[2])


def test_sweep_spreads_repeats_over_splits_and_sizes_fit_the_smallest_part() -> None:
    config = resolve_config("quick", {"sweep": {"sizes": (300, 50, 20), "repeats": 7}})
    design = outer_design(people(), config)
    plan = sweep_plan(config, design)
    assert [p.size for p in plan] == [50] * 7 + [20] * 7  # 300 > any training part of 60
    assert [p.outer for p in plan[:7]] == [0, 1, 2, 3, 4, 5, 0]
    assert [p.repeat for p in plan[:7]] == list(range(7))
    assert comparison_plan(design) == [PointPlan(o, None, 0) for o in range(6)]


def test_points_have_distinct_seeds_and_the_sweep_its_own_settings() -> None:
    config = resolve_config("quick", {"sweep": {"matched": True}})
    plans = [PointPlan(o, s, r) for o in range(3) for s in (None, 20, 50) for r in range(3)]
    assert len({point_seed(42, p) for p in plans}) == len(plans)
    assert point_config(config, PointPlan(0, None, 0)) is config
    assert point_config(config, PointPlan(0, 20, 0)).scatnet.head == config.cnn.head


def test_baseline_is_the_majority_answer_averaged_over_splits() -> None:
    design = outer_design(people(), resolve_config("quick"))
    baseline = outer_baseline(design)
    assert baseline["balanced_accuracy"] == pytest.approx(0.5)
    shares = [1 - design.labels[t].mean() for t in design.tests]  # "no glasses" is the majority
    assert baseline["accuracy"] == pytest.approx(np.mean(shares))
