"""The study's inference on a synthetic null: two equal families, people with several photos.

Each simulated study draws people (2-6 photos each, one class per person), outer splits by person
(3-fold, repeated twice, as `quick`), and two families whose chance of being right on a photo
depends on the person, on a person x family term (a family may happen to suit a person), on the
training pool of the split and on each training's luck, all with the same distribution for both
families. A test at nominal 5 % must reject at most about 5 % of such studies, also when the
splits' pools dominate. The same studies analysed as the old design did (one split; its draws
resampled as if independent, its test images one by one) reject far more often: the partition
and the people are sources of chance that one split cannot show.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from glasses.statistics import OuterDesign, sweep_inference

STUDIES = 200
MIXED = {"suits": 0.5, "pool": 0.2, "luck": 0.3}  # person x family, split pool, training luck
POOLS = {"suits": 0.0, "pool": 1.0, "luck": 0.05}  # the splits' pools dominate


def simulated_study(
    rng: np.random.Generator, spread: dict[str, float], old: bool, people: int = 60
) -> tuple[pd.DataFrame, OuterDesign]:
    photos = rng.integers(2, 7, size=people)
    person = np.repeat(np.arange(people), photos)
    labels = rng.integers(0, 2, size=people)[person]
    tests = []
    for _ in range(2):
        fold = rng.permutation(np.arange(people) % 3)[person]
        tests += [np.flatnonzero(fold == split) for split in range(3)]
    ability = rng.normal(0, 1.0, size=people)
    suits = rng.normal(0, spread["suits"], size=(2, people))
    pool = rng.normal(0, spread["pool"], size=(2, len(tests)))
    rows = []
    for repeat in range(7):
        outer = 0 if old else repeat % len(tests)
        rows_of = tests[outer]
        for family, model in enumerate(("cnn", "scatnet")):
            logit = 1.0 + ability[person[rows_of]] + suits[family, person[rows_of]]
            logit = logit + pool[family, outer] + rng.normal(0, spread["luck"])
            right = rng.random(len(rows_of)) < 1 / (1 + np.exp(-logit))
            predictions = np.where(right, labels[rows_of], 1 - labels[rows_of])
            # The old analysis: every draw its own unit, test images resampled one by one.
            unit = repeat if old else outer
            rows.append({"size": 100, "outer": unit, "repeat": repeat, "model": model,
                         "predictions": predictions})  # fmt: skip
    if old:
        return pd.DataFrame(rows), OuterDesign((tests[0],) * 7, labels, np.arange(len(labels)))
    return pd.DataFrame(rows), OuterDesign(tuple(tests), labels, person)


def rejection_rate(spread: dict[str, float], old: bool, alpha: float = 0.05) -> float:
    rng = np.random.default_rng(2026)
    rejected = 0
    for study in range(STUDIES):
        points, design = simulated_study(rng, spread, old)
        p = sweep_inference(points, design, resamples=400, seed=study).tests.loc[0, "p_value"]
        rejected += p < alpha
    return rejected / STUDIES


@pytest.mark.parametrize("spread", [MIXED, POOLS], ids=["mixed", "pools"])
def test_outer_splits_and_people_keep_false_positives_near_nominal(spread) -> None:
    assert rejection_rate(spread, old=False) <= 0.08


def test_one_split_finds_differences_that_are_not_there() -> None:
    assert rejection_rate(MIXED, old=True) > 0.1
