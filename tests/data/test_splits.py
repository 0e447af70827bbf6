"""Leak-free, stratified, seeded splits: the test split and the folds on the rest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from glasses.data.splits import (
    SplitError,
    fold_of,
    held_out_mask,
    make_split,
    outer_test_masks,
    retrain_test_mask,
    split_around,
    split_batch,
    split_units,
    without_trained,
)


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


# ---- the scheduled re-run ----------------------------------------------------------------------


def test_split_batch_is_stratified_grouped_seeded_and_pins_known_people() -> None:
    table = pd.DataFrame(
        {
            "label": [0, 1] * 20,
            "group": [f"p{i // 2}" for i in range(40)],
            "sha256": [f"{i:064x}" for i in range(40)],
        }
    )
    test = split_batch(table, 0.25, seed=3)
    assert np.array_equal(test, split_batch(table, 0.25, seed=3))
    assert 0.15 <= test.mean() <= 0.35
    assert table.loc[test, "label"].mean() == pytest.approx(0.5)
    assert all(len(set(test[table["group"] == g])) == 1 for g in table["group"].unique())
    pinned = split_batch(table, 0.25, seed=3, test_groups={"p0"}, train_groups={"p1", ""})
    assert pinned[table["group"] == "p0"].all() and not pinned[table["group"] == "p1"].any()


def grown(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A reference data set and a batch of new rows after it: some new people, some known."""
    reference = manifest(n_groups=40, seed=seed)
    batch = manifest(n_groups=30, seed=seed + 1)
    batch["sha256"] = "b" + batch["sha256"].str[1:]
    batch["group"] = ["p000", "p001", "p002"] + [f"n{g}" for g in batch["group"][3:]]
    table = pd.concat([reference, batch], ignore_index=True)
    return table, np.arange(len(table)) < len(reference)


def test_retrain_test_mask_keeps_the_champions_test_split_and_its_people() -> None:
    table, in_reference = grown()
    test = retrain_test_mask(table, in_reference, 0.2, 0.25, seed=3)
    reference = table[in_reference].reset_index(drop=True)
    # The reference rows are split exactly as the main flow split them: the champion's test set.
    np.testing.assert_array_equal(test[in_reference], held_out_mask(reference, 0.2, seed=3))
    # Known people stay on their side; no person is on both sides.
    assert not sides_of(table, "group", test)
    new = table[~in_reference]
    assert 0.1 <= test[~in_reference][new["group"].str.startswith("n").to_numpy()].mean() <= 0.4
    np.testing.assert_array_equal(test, retrain_test_mask(table, in_reference, 0.2, 0.25, seed=3))


def test_a_batch_too_small_to_hold_out_only_trains() -> None:
    table, in_reference = grown()
    small = pd.concat([table[in_reference], table[~in_reference].head(1)], ignore_index=True)
    small.loc[len(small) - 1, "group"] = "newcomer"
    test = retrain_test_mask(small, np.arange(len(small)) < in_reference.sum(), 0.2, 0.25, 3)
    assert not test[-1]


def test_split_around_keeps_the_given_test_rows_and_folds_the_rest() -> None:
    table = manifest()
    test = held_out_mask(table, 0.2, seed=1)
    split = split_around(table, test, folds=3, seed=1)
    np.testing.assert_array_equal(split.test, test)
    assert (split.fold[test] == -1).all()
    assert set(split.fold[~test]) == {0, 1, 2}
    np.testing.assert_array_equal(split.fold, make_split(table, 0.2, 3, seed=1).fold)


def test_without_trained_drops_seen_images_and_their_people_from_the_test_side() -> None:
    manifest = pd.DataFrame(
        {
            "label": [0, 1, 0, 1, 0, 1],
            "group": ["a", "a", "b", "b", "c", "c"],
            "sha256": ["h0", "h1", "h2", "h3", "h4", "h5"],
        }
    )
    test = np.array([True, True, True, True, False, False])
    kept = without_trained(manifest, test, {"h1", "h4"})
    # h1 was trained on: its person "a" leaves the test side entirely; "c" was not on it.
    assert kept.tolist() == [False, False, True, True, False, False]
    assert without_trained(manifest, test, set()).tolist() == test.tolist()


def test_outer_splits_test_every_image_once_per_repetition_and_keep_people_whole() -> None:
    table = manifest()
    masks = outer_test_masks(table, folds=3, repeats=2, seed=5)
    assert len(masks) == 6
    for repetition in (masks[:3], masks[3:]):
        np.testing.assert_array_equal(np.sum(repetition, axis=0), np.ones(len(table)))
    for mask in masks:
        assert not sides_of(table, "group", mask)
        share = table.loc[mask, "label"].mean()
        assert abs(share - table["label"].mean()) < 0.15  # stratified
    assert not np.array_equal(masks[0], masks[3])  # the repetitions differ
    again = outer_test_masks(table, folds=3, repeats=2, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(masks, again, strict=True))
