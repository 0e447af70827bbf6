"""Leak-free, stratified, seeded splits: the test split and the folds on the rest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from glasses.data.splits import SplitError, fold_of, held_out_mask, make_split, split_units


def manifest(n_groups: int = 60, per_group: int = 4, seed: int = 0) -> pd.DataFrame:
    """Persons with 1..per_group images each; roughly 40 % label 1; unique content hashes."""
    rng = np.random.default_rng(seed)
    rows = []
    for group in range(n_groups):
        for image in range(int(rng.integers(1, per_group + 1))):
            rows.append(
                {
                    "path": f"/d/p{group:03d}_{image}.png",
                    "label": int(rng.random() < 0.4),
                    "group": f"p{group:03d}",
                    "sha256": f"{group:030d}{image:034d}",
                }
            )
    return pd.DataFrame(rows)


def sides_of(table: pd.DataFrame, column: str, mask: np.ndarray) -> set:
    return set(table.loc[mask, column]) & set(table.loc[~mask, column])


def test_split_units_joins_groups_and_identical_content() -> None:
    table = pd.DataFrame(
        {
            "group": ["a", "a", "b", "c", "", ""],
            "sha256": ["h1", "h2", "h3", "h2", "h4", "h4"],
        }
    )
    units = split_units(table)
    # a, and c through the shared hash h2, are one unit; the two ungrouped copies of h4 another.
    assert units[0] == units[1] == units[3]
    assert units[4] == units[5]
    assert len({units[0], units[2], units[4]}) == 3


def test_empty_group_does_not_join_rows() -> None:
    table = pd.DataFrame({"group": ["", "", ""], "sha256": ["h1", "h2", "h3"]})
    assert len(set(split_units(table))) == 3


def test_held_out_is_about_a_fifth_of_each_class() -> None:
    table = manifest(n_groups=150)
    mask = held_out_mask(table, 0.2, seed=1)
    for label in (0, 1):
        of_class = table["label"] == label
        share = mask[of_class].mean()
        assert 0.14 <= share <= 0.26, (label, share)
    assert sides_of(table, "group", mask) == set()


def test_held_out_never_splits_identical_content_across_groups() -> None:
    table = manifest(n_groups=80)
    # Copy the content of 20 images into other persons' rows.
    rng = np.random.default_rng(5)
    for source, target in rng.choice(len(table), size=(20, 2), replace=False):
        table.loc[target, "sha256"] = table.loc[source, "sha256"]
    for seed in range(4):
        mask = held_out_mask(table, 0.2, seed)
        assert sides_of(table, "sha256", mask) == set()
        assert sides_of(table, "group", mask) == set()


def test_fold_of_assigns_every_row_one_fold_and_keeps_groups_together() -> None:
    table = manifest(n_groups=60)
    folds = fold_of(table, 4, seed=2)
    assert folds.shape == (len(table),)
    assert set(folds) == {0, 1, 2, 3}
    assert table.assign(fold=folds).groupby("group")["fold"].nunique().max() == 1
    # Stratified: every fold holds both classes.
    for fold in range(4):
        assert set(table.loc[folds == fold, "label"]) == {0, 1}


def test_make_split_is_consistent_with_fold_indices() -> None:
    table = manifest(n_groups=70)
    split = make_split(table, 0.2, 3, seed=9)
    assert split.test.dtype == bool
    assert (split.fold[split.test] == -1).all()
    assert set(split.fold[~split.test]) == {0, 1, 2}
    train_rows = set(np.where(~split.test)[0])
    validation_parts = []
    for fold in range(3):
        train, validation = split.fold_indices(fold)
        assert set(train).isdisjoint(validation)
        assert set(train) | set(validation) == train_rows
        assert not set(validation) & set(np.where(split.test)[0])
        groups = table["group"]
        assert set(groups.iloc[train]).isdisjoint(groups.iloc[validation])
        validation_parts.extend(validation)
    # Each training row validates exactly once.
    assert sorted(validation_parts) == sorted(train_rows)


def test_split_table_lists_membership() -> None:
    table = manifest(n_groups=30)
    split = make_split(table, 0.2, 2, seed=0)
    membership = split.table(table)
    assert membership.columns.tolist() == ["path", "label", "group", "sha256", "split", "fold"]
    assert (membership["split"] == "test").sum() == split.test.sum()
    assert membership["fold"].tolist() == split.fold.tolist()


def test_splits_are_deterministic_by_seed() -> None:
    table = manifest(n_groups=60)
    first = make_split(table, 0.2, 3, seed=4)
    again = make_split(table, 0.2, 3, seed=4)
    np.testing.assert_array_equal(first.test, again.test)
    np.testing.assert_array_equal(first.fold, again.fold)
    other = make_split(table, 0.2, 3, seed=5)
    assert not (np.array_equal(first.test, other.test) and np.array_equal(first.fold, other.fold))


def test_fewer_units_than_folds_is_a_split_error() -> None:
    table = pd.DataFrame(
        {
            "path": [f"/d/{i}.png" for i in range(12)],
            "label": [0, 1] * 6,
            "group": ["a", "b", "c"] * 4,
            "sha256": [f"h{i}" for i in range(12)],
        }
    )
    with pytest.raises(SplitError, match="only 3 independent unit"):
        fold_of(table, 4, seed=0)
    with pytest.raises(SplitError, match="test split"):
        held_out_mask(table, 0.2, seed=0)  # 5 folds for a 20 % test split


def test_duplicated_content_counts_as_one_unit() -> None:
    table = pd.DataFrame(
        {
            "path": [f"/d/{i}.png" for i in range(6)],
            "label": [0, 1, 0, 1, 0, 1],
            "group": [""] * 6,
            "sha256": ["same"] * 4 + ["x", "y"],
        }
    )
    with pytest.raises(SplitError, match="only 3 independent unit"):
        fold_of(table, 4, seed=0)
