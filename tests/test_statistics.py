"""Confidence intervals, paired tests, Holm, and the sweep's paired bootstrap on inputs with
known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import balanced_accuracy_score

from glasses.statistics import (
    OuterDesign,
    SweepInference,
    bootstrap_ci,
    crossover_size,
    holm,
    paired_test,
    people_interval,
    sign_changes,
    sweep_inference,
    verdict,
    verdict_class,
)


def test_bootstrap_ci_contains_the_mean_and_is_reproducible():
    values = np.random.default_rng(3).normal(10, 2, size=30)
    estimate, low, high = bootstrap_ci(values, seed=1)
    assert estimate == pytest.approx(values.mean())
    assert low < estimate < high
    assert bootstrap_ci(values, seed=1) == (estimate, low, high)
    assert bootstrap_ci(values, seed=2) != (estimate, low, high)
    _, median_low, median_high = bootstrap_ci(values, statistic=np.median, seed=1)
    assert median_low < np.median(values) < median_high


def test_paired_test_finds_a_known_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(0.7, 0.05, size=8)
    b = a + 1 + rng.normal(0, 0.1, size=8)
    result = paired_test(b, a)
    assert result.mean_difference == pytest.approx(1, abs=0.1)
    assert result.p_value < 0.01 and result.p_value_wilcoxon < 0.01
    assert result.n == 8
    assert paired_test(a, b).mean_difference == pytest.approx(-result.mean_difference)


def test_paired_test_on_degenerate_inputs_does_not_raise():
    same = paired_test([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert (same.mean_difference, same.p_value, same.p_value_wilcoxon) == (0.0, 1.0, 1.0)
    constant = paired_test([0.75, 0.75], [0.5, 0.5])
    assert constant.mean_difference == 0.25 and math.isnan(constant.p_value)
    single = paired_test([0.7], [0.6])
    assert single.n == 1 and math.isnan(single.p_value) and math.isnan(single.p_value_wilcoxon)
    with pytest.raises(ValueError, match="length"):
        paired_test([1, 2], [1])


def test_crossover_is_interpolated_on_log_size():
    # +0.1 at 100 and -0.1 at 1000: halfway on the log axis, 10 ** 2.5.
    assert crossover_size([10, 100, 1000], [0.2, 0.1, -0.1]) == pytest.approx(10**2.5)
    assert crossover_size([1000, 100, 10], [-0.1, 0.1, 0.2]) == pytest.approx(10**2.5)
    # 0.3 → -0.1 between 100 and 1000: three quarters of the way.
    assert crossover_size([100, 1000], [0.3, -0.1]) == pytest.approx(10**2.75)
    assert crossover_size([10, 100, 1000], [0.1, 0.0, -0.1]) == pytest.approx(100)


def test_crossover_is_none_without_a_sign_change():
    assert crossover_size([10, 100, 1000], [0.2, 0.1, 0.05]) is None
    assert crossover_size([10, 100], [0.0, 0.0]) is None
    assert crossover_size([10, 100], [0.1, 0.0]) is None


def test_bootstrap_ci_is_scipys_percentile_bootstrap():
    values = np.random.default_rng(4).normal(0, 1, size=25)
    estimate, low, high = bootstrap_ci(values, seed=7, resamples=999)
    reference = stats.bootstrap(
        (values,), np.mean, n_resamples=999, method="percentile",
        random_state=np.random.default_rng(7),
    ).confidence_interval  # fmt: skip
    assert (low, high) == pytest.approx((reference.low, reference.high))
    assert estimate == pytest.approx(values.mean())


def test_people_interval_with_one_image_per_person_is_a_plain_bootstrap():
    """One image per person and one class: drawing people is drawing images, so the interval
    is scipy's percentile bootstrap up to resampling noise."""
    values = np.random.default_rng(3).normal(0.4, 1.0, size=60)
    mean, low, high, n = people_interval(values, np.arange(60), np.ones(60), seed=1)
    reference = stats.bootstrap(
        (values,), np.mean, method="percentile", n_resamples=4000, random_state=2
    ).confidence_interval
    assert mean == pytest.approx(values.mean()) and n == 60
    assert low == pytest.approx(reference.low, abs=0.04)
    assert high == pytest.approx(reference.high, abs=0.04)


def test_people_interval_moves_a_persons_images_together():
    """Ten people with ten identical images each: the interval is that of ten values, wider
    than a bootstrap of the hundred images as if independent; undefined values are left out."""
    per_person = np.random.default_rng(4).normal(size=10)
    values = np.repeat(per_person, 10)
    people = np.repeat(np.arange(10), 10)
    _, low, high, _ = people_interval(values, people, np.zeros(100))
    _, naive_low, naive_high = bootstrap_ci(values)
    assert high - low > 2 * (naive_high - naive_low)
    with_nan = np.append(values, np.nan)
    assert people_interval(with_nan, np.append(people, 10), np.zeros(101))[3] == 100
    assert np.isnan(people_interval([1.0, 1.0], [0, 1], [0, 1])[1])  # no spread
    assert people_interval([], [], []) == (pytest.approx(np.nan, nan_ok=True),) * 3 + (0,)


def test_holm_matches_the_step_down_definition():
    # sorted 0.01, 0.03, 0.04 → 3·0.01, max(0.03, 2·0.03), max(0.06, 1·0.04)
    adjusted = holm([0.01, 0.04, 0.03, float("nan")])
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(adjusted[3])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]).size == 0


def test_holm_agrees_with_statsmodels_when_it_is_installed():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    p = np.random.default_rng(2).uniform(0, 0.2, size=7)
    expected = multitest.multipletests(p, method="holm")[1]
    assert holm(p) == pytest.approx(expected)


def sweep_points(
    accuracy: dict[int, tuple[float, float]], repeats: int = 9, people: int = 90, splits: int = 9
):
    """Predictions on outer splits of `people` people (4 photos each, 60 % wearing glasses), each
    split's test part a `splits`-th of them; each (size, model) is right on about the given share
    of the images, independently per repeat; repeat r on split r mod `splits`."""
    rng = np.random.default_rng(1)
    person = np.repeat(np.arange(people), 4)
    labels = (rng.random(people) < 0.6).astype(int)[person]
    split_of = rng.permutation(np.arange(people) % splits)[person]
    design = OuterDesign(
        tuple(np.flatnonzero(split_of == s) for s in range(splits)), labels, person
    )
    rows = []
    for size, shares in accuracy.items():
        for repeat in range(repeats):
            tests = design.tests[repeat % splits]
            for model, share in zip(("cnn", "scatnet"), shares, strict=True):
                right = rng.random(len(tests)) < share
                predictions = np.where(right, labels[tests], 1 - labels[tests])
                rows.append({"size": size, "outer": repeat % splits, "repeat": repeat,
                             "model": model, "predictions": predictions})  # fmt: skip
    return pd.DataFrame(rows), design


def test_sweep_inference_finds_a_known_crossing():
    points, design = sweep_points({1000: (0.92, 0.72), 300: (0.82, 0.82), 100: (0.62, 0.85)})
    result = sweep_inference(points, design, resamples=1000, seed=0)
    tests = result.tests.set_index("size")
    assert tests.loc[100, "difference"] > 0.1 and tests.loc[100, "p_holm"] < 0.05
    assert tests.loc[1000, "difference"] < -0.05 and tests.loc[1000, "p_holm"] < 0.05
    assert tests.loc[300, "p_holm"] > 0.05
    assert (tests["p_holm"] >= tests["p_value"]).all()
    assert (tests["p_value"] >= tests["p_floor"]).all() and (tests["p_floor"] == 2**-8).all()
    assert (tests["n"] == 9).all() and (tests["outer"] == 9).all()
    assert (tests["low"] <= tests["difference"]).all() and (
        tests["difference"] <= tests["high"]
    ).all()
    assert 100 < result.crossover < 1000
    assert result.crossover_low <= result.crossover <= result.crossover_high
    assert result.crossover_share > 0.9
    table = result.table
    assert table[["size", "model"]].values.tolist()[:2] == [[1000, "cnn"], [1000, "scatnet"]]
    for metric in ("accuracy", "balanced_accuracy", "macro_f1"):
        assert table[f"{metric}_low"].between(0, 1).all()
        assert table[f"{metric}_high"].between(0, 1).all()
        assert (table[f"{metric}_low"] <= table[f"{metric}_mean"]).all()
        assert (table[f"{metric}_mean"] <= table[f"{metric}_high"]).all()


def test_estimate_is_the_mean_over_splits_of_the_mean_over_their_repeats():
    points, design = sweep_points({100: (0.8, 0.7)}, repeats=4, splits=2)
    table = sweep_inference(points, design, resamples=100).table.set_index("model")
    per_point = points.assign(
        score=[
            balanced_accuracy_score(design.labels[design.tests[o]], p)
            for o, p in zip(points["outer"], points["predictions"], strict=True)
        ]
    )
    expected = per_point.groupby(["model", "outer"])["score"].mean().groupby("model").mean()
    assert table["balanced_accuracy_mean"].to_dict() == pytest.approx(expected.to_dict())


def test_too_few_trainings_cannot_reach_significance():
    """Five paired trainings on five outer splits that all agree: an exact sign-flip test gives
    2 / 2**5 = 0.0625, and the bootstrap's p is not allowed below it."""
    points, design = sweep_points({100: (0.95, 0.55)}, repeats=5)
    tests = sweep_inference(points, design, resamples=500).tests
    assert tests.loc[0, "difference"] < -0.3
    assert tests.loc[0, "p_value"] == tests.loc[0, "p_floor"] == 0.0625


def test_identical_models_differ_by_nothing():
    points, design = sweep_points({100: (0.7, 0.7)})
    points.loc[points["model"] == "scatnet", "predictions"] = points.loc[
        points["model"] == "cnn", "predictions"
    ].to_numpy()
    result = sweep_inference(points, design, resamples=300, seed=0)
    assert result.tests.loc[0, "difference"] == 0 and result.tests.loc[0, "p_value"] == 1.0
    assert result.crossover is None


def test_a_model_that_always_says_glasses_scores_chance_on_balanced_accuracy():
    points, design = sweep_points({50: (0.7, 0.7)}, repeats=3)
    cnn = points["model"] == "cnn"
    points.loc[cnn, "predictions"] = pd.Series(
        [np.ones(len(design.tests[o]), dtype=int) for o in points.loc[cnn, "outer"]],
        index=points.index[cnn],
    )
    row = sweep_inference(points, design, resamples=200).table.set_index("model").loc["cnn"]
    assert row["balanced_accuracy_mean"] == 0.5
    shares = [design.labels[t].mean() for t in design.tests[:3]]  # the splits the 3 repeats use
    assert row["accuracy_mean"] == pytest.approx(np.mean(shares))  # accuracy would flatter it
    assert row["balanced_accuracy_low"] == row["balanced_accuracy_high"] == 0.5


def inference(
    differences: list[float],
    p_holm: list[float],
    crossover=None,
    sizes=(1000, 300, 100),
    n: int = 9,
) -> SweepInference:
    tests = pd.DataFrame(
        {
            "size": list(sizes),
            "difference": differences,
            "p_holm": p_holm,
            "n": n,
            "outer": 3,
            "p_floor": 2.0 ** (1 - n),
        }
    )
    low, high = (crossover * 0.8, crossover * 1.2) if crossover else (float("nan"),) * 2
    share = 0.9 if crossover else 0.1
    return SweepInference(pd.DataFrame(), tests, crossover, low, high, share, {})


def test_verdict_names_scatnet_at_the_small_sizes_without_reaching_past_them():
    line = verdict(inference([0.01, 0.05, 0.08], [0.4, 0.01, 0.001]))
    assert line.startswith(
        "ScatNet beats the CNN in balanced accuracy at every size tried from 100 to 300 training "
        "images (Holm p < 0.05 at each of the 2 sizes, largest 0.01)"
    )
    assert "and below" not in line
    assert ("; the ScatNet is ahead at every size tried (100–1000): a crossover to the CNN, if "
            "any, lies above 1000 images; from 3 outer splits, 9 paired trainings per size, test "
            "people resampled (smallest reachable p = 0.0039)") in line  # fmt: skip
    assert "out of reach" not in line


def test_verdict_says_when_holm_cannot_reject_at_all():
    line = verdict(inference([0.01, 0.05, 0.08], [0.4, 0.2, 0.19], n=5))
    assert line.endswith(
        "smallest reachable p = 0.062); Holm at 0.05 over 3 sizes is out of reach with so few "
        "trainings per size: spread more draws over more outer splits (sweep.repeats, split.outer)"
    )


def test_verdict_names_the_cnn_when_it_wins_at_one_size():
    line = verdict(inference([0.0, -0.01, -0.08], [0.9, 0.6, 0.002]))
    assert line.startswith(
        "the CNN beats the ScatNet in balanced accuracy at 100 training images "
        "(Holm p = 0.002 < 0.05)"
    )


def test_verdict_reports_the_large_end_and_the_crossover_interval():
    line = verdict(inference([-0.05, 0.01, 0.06], [0.001, 0.5, 0.01], crossover=250.0))
    assert line.startswith("ScatNet beats the CNN in balanced accuracy at 100 training images")
    assert "; the CNN beats the ScatNet in balanced accuracy at 1000 training images (" in line
    assert (
        "crossover ≈ 367 images (ScatNet ahead below, CNN above), 95 % bootstrap interval "
        "[200, 300]"
    ) in line


def crossing(differences: list[float], sizes=(800, 300, 78, 40, 20)) -> str:
    """The verdict's clause on where the mean curves change order."""
    line = verdict(inference(differences, [0.5] * len(sizes), 100.0, sizes))
    return line.split("; ")[1]


def test_crossover_from_scatnet_ahead_to_cnn_ahead_as_size_grows():
    clause = crossing([-0.06, -0.03, 0.01, 0.03, 0.05])
    assert clause.startswith("crossover ≈ ") and "(ScatNet ahead below, CNN above)" in clause
    assert 78 < float(clause.split("≈ ")[1].split(" ")[0]) < 300


def test_a_change_the_other_way_is_named_a_reverse_crossing():
    clause = crossing([0.06, 0.03, -0.01, -0.03, -0.05])
    assert clause.startswith("reverse crossing ≈ ")
    assert "the CNN ahead below it, the ScatNet above" in clause


def test_no_change_is_censored_at_the_tried_range():
    assert crossing([-0.06, -0.03, -0.01, -0.02, -0.05]) == (
        "the CNN is ahead at every size tried (20–800): a crossover, if any, lies below 20 images"
    )
    assert crossing([0.06, 0.03, 0.01, 0.02, 0.05]).endswith("lies above 800 images")


def test_a_non_monotone_difference_is_reported_as_such():
    clause = crossing([-0.06, 0.03, -0.01, 0.02, 0.05])
    assert clause.startswith("non-monotone: ScatNet − CNN changes sign 3 times")
    assert "no single crossover" in clause


def test_sign_changes_interpolate_on_log_size_and_name_directions():
    changes = sign_changes([10, 100, 1000], [0.1, -0.1, 0.1])
    assert changes == [(pytest.approx(math.sqrt(10 * 100)), 1), (pytest.approx(math.sqrt(1e5)), -1)]
    assert crossover_size([10, 100, 1000], [0.1, -0.1, 0.1]) == pytest.approx(math.sqrt(1000))
    assert crossover_size([10, 100], [-0.1, 0.1]) is None  # only the reverse direction


def test_verdict_without_any_significant_size():
    line = verdict(inference([0.01, 0.02, 0.03], [0.4, 0.2, 0.09]))
    assert line.startswith(
        "no size shows a significant difference in balanced accuracy between ScatNet and CNN "
        "(smallest Holm p = 0.09)"
    )


def test_verdict_names_significant_sizes_between_its_two_runs():
    sizes = (1000, 300, 100, 40, 20)
    line = verdict(
        inference([0.05, 0.0, -0.06, 0.0, 0.07], [0.01, 0.9, 0.01, 0.9, 0.01], None, sizes)
    )
    assert "ScatNet beats the CNN in balanced accuracy at 20 training images" in line
    assert "ScatNet beats the CNN in balanced accuracy at 1000 training images" in line
    assert "; elsewhere ScatNet − CNN differs significantly at 100 images (-0.060" in line
    assert (
        verdict_class(inference([0.05, 0.0, -0.06, 0.0, 0.07], [0.01] * 5, None, sizes).tests)
        == "both"
    )


def test_verdict_on_an_isolated_difference():
    line = verdict(inference([0.0, 0.04, 0.01], [0.9, 0.01, 0.5]))
    assert line.startswith("no consistent trend") and "300 images" in line


def test_verdict_class_names_who_wins_anywhere():
    assert verdict_class(inference([0.01, 0.05, 0.08], [0.4, 0.01, 0.001]).tests) == "scatnet"
    assert verdict_class(inference([0.0, -0.01, -0.08], [0.9, 0.6, 0.002]).tests) == "cnn"
    assert verdict_class(inference([-0.05, 0.01, 0.06], [0.001, 0.5, 0.01]).tests) == "both"
    assert verdict_class(inference([0.01, 0.02, 0.03], [0.4, 0.2, 0.09]).tests) == "none"
