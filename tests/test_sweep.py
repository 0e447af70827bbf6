"""The sweep's subsets: exact size and class ratio, whole units, reproducible, never test rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from glasses.config import resolve_config
from glasses.data.splits import inner_validation_mask, make_split, split_units
from glasses.sweep import (
    budget_caveats,
    budget_check,
    confounds,
    convergence,
    default_sizes,
    subsample_training,
    sweep_config,
    sweep_sizes,
)


def manifest(labels: np.ndarray, group_size: int = 1) -> pd.DataFrame:
    """One row per image; `group_size` consecutive images share a person (one unit)."""
    count = len(labels)
    return pd.DataFrame(
        {
            "path": [f"img_{i:04d}.png" for i in range(count)],
            "label": labels,
            "group": [f"p{i // group_size:03d}" if group_size > 1 else "" for i in range(count)],
            "sha256": [f"hash{i}" for i in range(count)],
        }
    )


@pytest.fixture(scope="module")
def split_manifest() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """300 ungrouped images, 60 % glasses, with the study's test split held out."""
    labels = (np.random.default_rng(0).random(300) < 0.6).astype(np.int64)
    table = manifest(labels)
    split = make_split(table, test_size=0.2, folds=3, seed=0)
    return table, np.flatnonzero(~split.test), np.flatnonzero(split.test)


def partially_used(table: pd.DataFrame, subset: np.ndarray) -> int:
    """How many units the subset touches without taking all their rows."""
    units = split_units(table)
    touched = np.unique(units[subset])
    return int(sum(np.sum(units[subset] == u) < np.sum(units == u) for u in touched))


@pytest.mark.parametrize("size", [4, 5, 17, 78, 240])
def test_subset_has_the_exact_size_and_training_class_ratio(split_manifest, size):
    table, train, _ = split_manifest
    subset = subsample_training(table, train, size, seed=1)
    assert len(subset) == size == len(np.unique(subset))
    expected = np.bincount(table["label"].to_numpy()[train]) * size / len(train)
    assert np.all(np.abs(np.bincount(table["label"].to_numpy()[subset]) - expected) <= 1)


def test_subset_never_leaves_the_training_split(split_manifest):
    table, train, test = split_manifest
    mask = np.zeros(len(table), dtype=bool)
    mask[train] = True
    for seed in range(5):
        for size in (4, 30, 200):
            subset = subsample_training(table, train, size, seed)
            assert set(subset) <= set(train)
            assert not set(subset) & set(test)
            np.testing.assert_array_equal(subset, subsample_training(table, mask, size, seed))


def test_subset_is_reproducible_by_seed(split_manifest):
    table, train, _ = split_manifest
    first = subsample_training(table, train, 50, seed=7)
    np.testing.assert_array_equal(first, subsample_training(table, train, 50, seed=7))
    assert not np.array_equal(first, subsample_training(table, train, 50, seed=8))


def test_every_class_keeps_two_images_when_rare():
    labels = np.array([1, 1, 1] + [0] * 97)
    subset = subsample_training(manifest(labels), np.arange(100), 4, seed=0)
    assert np.bincount(labels[subset]).tolist() == [2, 2]


@pytest.mark.parametrize("seed", range(4))
def test_single_class_groups_of_five_leave_one_partial_group_per_class(seed):
    labels = np.repeat(np.tile([0, 1, 1], 20), 5)  # 60 persons of 5 images, one class each
    table = manifest(labels, group_size=5)
    subset = subsample_training(table, np.arange(len(table)), 48, seed)
    assert len(subset) == 48
    units = split_units(table)
    for label in (0, 1):
        rows = subset[labels[subset] == label]
        partial = [u for u in np.unique(units[rows]) if np.sum(units[rows] == u) < 5]
        assert len(partial) <= 1


@pytest.mark.parametrize("seed", range(4))
def test_mixed_groups_of_five_leave_at_most_one_partial_group(seed):
    labels = np.tile([1, 1, 1, 0, 0], 40)  # 40 persons, each 3 with and 2 without glasses
    table = manifest(labels, group_size=5)
    for size in (37, 64, 123):
        subset = subsample_training(table, np.arange(len(table)), size, seed)
        assert len(subset) == size
        assert partially_used(table, subset) <= 1


def test_small_subset_spans_two_units_per_class_so_it_can_be_split_for_early_stopping():
    labels = np.tile([1, 1, 1, 0, 0], 40)
    table = manifest(labels, group_size=5)
    for seed in range(5):
        subset = subsample_training(table, np.arange(len(table)), 4, seed)
        inner = inner_validation_mask(table.iloc[subset].reset_index(drop=True), 0.2, seed)
        assert set(labels[subset][inner]) == {0, 1} and set(labels[subset][~inner]) == {0, 1}


@pytest.mark.parametrize("size", [3, 241])
def test_impossible_sizes_are_refused_by_name(split_manifest, size):
    table, train, _ = split_manifest
    with pytest.raises(ValueError, match="size"):
        subsample_training(table, train, size, seed=0)


def test_default_sizes_descend_geometrically_between_the_endpoints():
    sizes = default_sizes(3936)
    assert sizes[0] == 3936 and sizes[-1] == 78 and len(sizes) == 5
    assert sizes == sorted(set(sizes), reverse=True)
    ratios = np.array(sizes[:-1]) / np.array(sizes[1:])
    assert np.allclose(ratios, ratios.mean(), rtol=0.02)
    assert default_sizes(100, steps=30) == sorted(set(default_sizes(100, steps=30)), reverse=True)
    assert default_sizes(100, steps=30)[0] == 100 and default_sizes(100, steps=30)[-1] == 78
    assert default_sizes(60) == [60]
    with pytest.raises(ValueError, match="steps"):
        default_sizes(1000, steps=1)


def test_confounds_name_what_still_differs_between_the_families():
    config = resolve_config("quick")
    items = confounds(config)
    assert items[0].startswith("image augmentation for the CNN only")
    assert any("head widths (128, 32) (CNN) vs (128, 64) (ScatNet)" in item for item in items)
    assert any(item.startswith("optimiser CNN (lr 0.01") for item in items)


def test_matched_sweep_leaves_only_augmentation():
    config = resolve_config("quick", {"sweep": {"matched": True}})
    assert confounds(config) == confounds(config)[:1]


def test_with_augmented_copies_the_confound_is_fixed_versus_fresh_augmentation():
    copies = resolve_config(
        "quick", {"sweep": {"matched": True}, "scatnet": {"augmented_copies": 4}}
    )
    (item,) = confounds(copies)
    assert "for the CNN only" not in item
    assert item.startswith("augmentation drawn afresh every step for the CNN")
    assert "fixed for the ScatNet (4 augmented copies per image" in item


def test_sweep_sizes_keep_the_configured_ones_that_fit_else_the_default_ladder():
    configured = resolve_config("tiny", {"sweep": {"sizes": (36, 20)}})
    assert sweep_sizes(configured, 48) == [36, 20]
    assert sweep_sizes(configured, 30) == [20]
    ladder = resolve_config("tiny", {"sweep": {"sizes": None, "smallest": 10, "steps": 3}})
    assert sweep_sizes(ladder, 40) == default_sizes(40, 10, 3) == [40, 20, 10]


def test_sweep_config_matches_the_scatnet_to_the_cnn_only_when_asked():
    config = resolve_config("quick", {})
    assert sweep_config(config) == config
    matched = sweep_config(
        config.model_copy(update={"sweep": config.sweep.model_copy(update={"matched": True})})
    )
    assert matched.scatnet.optimiser == config.cnn.optimiser
    assert matched.scatnet.head == config.cnn.head


def records(differences: dict[float, float], size: int = 20, draws: int = 3) -> pd.DataFrame:
    """Sweep points at one size: per budget, the CNN at 0.7 and the ScatNet at 0.7 + difference
    on every draw; the 1x budget has two more draws than the others."""
    rows = []
    for budget, difference in differences.items():
        for repeat in range(draws + (2 if budget == 1.0 else 0)):
            for model, score in (("cnn", 0.7), ("scatnet", 0.7 + difference)):
                extra = 0.5 if repeat >= draws else 0.0  # draws only 1x has: must not count
                rows.append({"size": size, "outer": 0, "repeat": repeat, "budget": budget,
                             "model": model,
                             "balanced_accuracy": score + extra, "converged": budget >= 1.0,
                             "steps": 10, "final_train_accuracy": 1.0,
                             "early_stopped": False})  # fmt: skip
    return pd.DataFrame(rows)


def test_budget_check_compares_the_same_draws_at_every_budget():
    table = budget_check(records({0.5: 0.02, 1.0: -0.01, 2.0: -0.03})).set_index("budget")
    assert table["difference"].to_dict() == pytest.approx({0.5: 0.02, 1.0: -0.01, 2.0: -0.03})
    assert table.loc[1.0, "cnn"] == pytest.approx(0.7)  # the 1x-only draws left out
    assert table["converged_share"].to_dict() == {0.5: 0.0, 1.0: 1.0, 2.0: 1.0}
    assert (table["draws"] == 3).all()


def test_a_sign_that_changes_with_the_budget_gives_a_caveat():
    changing = budget_check(records({0.5: 0.02, 1.0: -0.01, 2.0: -0.03}))
    (caveat,) = budget_caveats(changing)
    assert caveat.startswith("caveat: at 20 images the sign of ScatNet − CNN changes with the step")
    assert "(0.5x +0.020, 1x -0.010, 2x -0.030; means of 3 draws each, not tested)" in caveat
    assert budget_caveats(budget_check(records({0.5: -0.02, 1.0: -0.01, 2.0: -0.03}))) == []
    no_check = records({1.0: 0.01})
    assert budget_check(no_check).empty and budget_caveats(budget_check(no_check)) == []


def test_convergence_counts_plateaus_per_size_and_model():
    table = convergence(records({0.5: 0.0})).set_index("model")
    assert table["converged_share"].to_dict() == {"cnn": 0.0, "scatnet": 0.0}
    assert table["steps_mean"].to_dict() == {"cnn": 10, "scatnet": 10}
