"""Seeded, stratified, leak-free splits: a fixed test split and k folds on the rest.

A "unit" is what must never be split: all images of one person (when the data names people) and
all copies of one image (same content hash). Both splits are grouped by unit, so neither identity
nor duplicated pixels can inflate validation or test scores.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold


class SplitError(ValueError):
    """The data cannot be split as configured; the message says why and what to change."""


def split_units(manifest: pd.DataFrame) -> np.ndarray:
    """Union of person groups and identical content into one integer unit per row."""
    parent = list(range(len(manifest)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for column in ("group", "sha256"):
        if column not in manifest:
            continue
        first: dict[str, int] = {}
        for row, key in enumerate(manifest[column].astype(str)):
            if not key:
                continue
            if key in first:
                parent[find(row)] = find(first[key])
            else:
                first[key] = row
    roots = [find(i) for i in range(len(manifest))]
    return pd.factorize(pd.Series(roots))[0]


def _grouped_folds(labels: np.ndarray, units: np.ndarray, folds: int, seed: int, what: str):
    n_units = len(np.unique(units))
    if n_units < folds:
        raise SplitError(
            f"{what}: only {n_units} independent unit(s) (people or distinct images) for "
            f"{folds} folds; add data or lower the fold count"
        )
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(labels)), labels, units))


def held_out_mask(manifest: pd.DataFrame, test_size: float, seed: int) -> np.ndarray:
    """True for rows of the held-out test split (about `test_size` of each class).

    One fold of a grouped, stratified k-fold with k = round(1 / test_size) is the test split:
    sklearn has no grouped stratified shuffle split, and this keeps both properties.
    """
    folds = max(2, round(1 / test_size))
    labels = manifest["label"].to_numpy()
    _, test = _grouped_folds(labels, split_units(manifest), folds, seed, "test split")[0]
    mask = np.zeros(len(manifest), dtype=bool)
    mask[test] = True
    return mask


def outer_test_masks(
    manifest: pd.DataFrame, folds: int, repeats: int, seed: int
) -> list[np.ndarray]:
    """Test flags of the study's outer splits: `repeats` grouped, stratified `folds`-fold
    partitions of all rows (repetition r seeded `seed + r`), so every row is a test row once per
    repetition and no person or duplicated image is on both sides of any split."""
    labels = manifest["label"].to_numpy()
    units = split_units(manifest)
    masks = []
    for repeat in range(repeats):
        for _, test in _grouped_folds(labels, units, folds, seed + repeat, "outer split"):
            mask = np.zeros(len(manifest), dtype=bool)
            mask[test] = True
            masks.append(mask)
    return masks


def fold_of(manifest: pd.DataFrame, folds: int, seed: int) -> np.ndarray:
    """The validation fold index (0..folds-1) of every row of a training manifest."""
    labels = manifest["label"].to_numpy()
    assignment = np.full(len(manifest), -1, dtype=np.int64)
    for index, (_, validation) in enumerate(
        _grouped_folds(labels, split_units(manifest), folds, seed, "cross-validation")
    ):
        assignment[validation] = index
    return assignment


def inner_validation_mask(manifest: pd.DataFrame, share: float, seed: int) -> np.ndarray:
    """True for the rows of a training set held out to choose its step count (early stopping).

    Grouped and stratified like every other split: one fold of k ≈ 1 / `share`, with k lowered
    to the fewest units a class has, so that small sweep subsets can still be split (k ≥ 2).
    """
    labels = manifest["label"].to_numpy()
    units = split_units(manifest)
    per_class = [len(np.unique(units[labels == label])) for label in np.unique(labels)]
    if len(per_class) < 2 or min(per_class) < 2:
        raise SplitError(
            f"early stopping: a training set of {len(manifest)} images has a class in fewer than "
            "two units (people or distinct images); set the optimiser's patience to 0 or add data"
        )
    folds = max(2, min(round(1 / share), min(per_class)))
    _, inner = _grouped_folds(labels, units, folds, seed, "inner validation")[0]
    mask = np.zeros(len(manifest), dtype=bool)
    mask[inner] = True
    return mask


@dataclass(frozen=True)
class Split:
    """Row-aligned with the manifest: the test flag, and the fold of every training row."""

    test: np.ndarray  # bool
    fold: np.ndarray  # int, -1 on test rows

    @property
    def train_count(self) -> int:
        return int((~self.test).sum())

    def fold_indices(self, fold: int) -> tuple[np.ndarray, np.ndarray]:
        """Row indices (into the manifest) of the fold's training and validation parts."""
        train_rows = ~self.test
        return np.where(train_rows & (self.fold != fold))[0], np.where(self.fold == fold)[0]

    def table(self, manifest: pd.DataFrame) -> pd.DataFrame:
        """Fold membership, logged so any run's partition can be inspected and reproduced."""
        membership = manifest[["path", "label", "group", "sha256"]].copy()
        membership["split"] = np.where(self.test, "test", "train")
        membership["fold"] = self.fold
        return membership


def make_split(manifest: pd.DataFrame, test_size: float, folds: int, seed: int) -> Split:
    """The main protocol: a held-out test split, and `folds` folds on the rest."""
    return split_around(manifest, held_out_mask(manifest, test_size, seed), folds, seed)


def split_around(manifest: pd.DataFrame, test: np.ndarray, folds: int, seed: int) -> Split:
    """Given test flags, and the main protocol's folds on the remaining rows."""
    fold = np.full(len(manifest), -1, dtype=np.int64)
    fold[~test] = fold_of(manifest[~test].reset_index(drop=True), folds, seed)
    return Split(test=test, fold=fold)


# ---- the scheduled re-run: a test split that the champion never trained on --------------------


def retrain_test_mask(
    manifest: pd.DataFrame,
    in_reference: np.ndarray,
    test_size: float,
    batch_test_share: float,
    seed: int,
) -> np.ndarray:
    """Test flags for a data set grown from a reference version (`in_reference` rows).

    The reference's own held-out split, drawn as the main flow draws it (so the champion never
    trained on it), plus `batch_test_share` of the new rows (`split_batch`), with people already
    on one side of the reference split kept there. A batch with too few people or distinct
    images to hold any out only trains.
    """
    test = np.zeros(len(manifest), dtype=bool)
    reference = manifest[in_reference].reset_index(drop=True)
    reference_test = held_out_mask(reference, test_size, seed)
    test[in_reference] = reference_test
    groups = reference["group"].astype(str)
    with contextlib.suppress(SplitError):
        test[~in_reference] = split_batch(
            manifest[~in_reference].reset_index(drop=True),
            batch_test_share,
            seed,
            test_groups=set(groups[reference_test]),
            train_groups=set(groups[~reference_test]),
        )
    return test


def without_trained(
    manifest: pd.DataFrame, test: np.ndarray, trained_sha256: Collection[str]
) -> np.ndarray:
    """Test flags less every image a model to be compared trained on, and less the rest of its
    unit (person, duplicates): such a model would be scored on what it memorised, or on a person
    it has seen. The removed rows may train the challenger."""
    if not len(trained_sha256):
        return test
    units = split_units(manifest)
    seen = manifest["sha256"].astype(str).isin(set(trained_sha256)).to_numpy()
    return test & ~np.isin(units, units[seen])


def split_batch(
    table: pd.DataFrame,
    test_share: float,
    seed: int,
    test_groups: Collection[str] = frozenset(),
    train_groups: Collection[str] = frozenset(),
) -> np.ndarray:
    """True for the rows of a new batch's own test share: stratified, grouped, seeded.

    People already on one side of the fixed split (`test_groups`, `train_groups`) stay on that
    side, so the challenger never trains on a person of the fixed test split and no test image
    shows a person both models trained on. The other rows are split like the main data
    (`held_out_mask`), which raises `SplitError` when they hold too few people or distinct images
    for the share. An empty group names nobody and is never pinned.
    """
    groups = (
        table["group"].fillna("").astype(str) if "group" in table else pd.Series([""] * len(table))
    )
    named = (groups != "").to_numpy()
    test = named & groups.isin(set(test_groups)).to_numpy()
    rest = ~test & ~(named & groups.isin(set(train_groups)).to_numpy())
    if rest.any():
        test[rest] = held_out_mask(table[rest].reset_index(drop=True), test_share, seed)
    return test
