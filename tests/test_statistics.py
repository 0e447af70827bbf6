"""Confidence intervals, paired tests and the sweep summary on inputs with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from glasses.statistics import (
    bootstrap_ci,
    crossover_size,
    mean_ci,
    paired_test,
    size_tests,
    sweep_table,
    verdict,
)


def test_mean_ci_is_the_student_t_interval():
    mean, low, high = mean_ci([1, 2, 3, 4, 5])
    half = 2.7764451 * math.sqrt(2.5) / math.sqrt(5)  # t_{0.975, 4} · s / √n = 1.963
    assert mean == 3
    assert low == pytest.approx(3 - half) and high == pytest.approx(3 + half)
    assert half == pytest.approx(1.963, abs=1e-3)


def test_mean_ci_of_one_value_has_no_interval():
    mean, low, high = mean_ci([0.7])
    assert mean == 0.7 and math.isnan(low) and math.isnan(high)
    assert mean_ci([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)


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


def records(effect: dict[int, float], repeats: int = 5) -> pd.DataFrame:
    """Sweep records where ScatNet's accuracy exceeds the CNN's by `effect[size]`, plus noise."""
    rng = np.random.default_rng(1)
    rows = []
    for size, shift in effect.items():
        for repeat in range(repeats):
            base = 0.7 + rng.normal(0, 0.03)
            for model, accuracy in (("cnn", base), ("scatnet", base + shift)):
                noisy = accuracy + rng.normal(0, 0.005)
                rows.append(
                    {"size": size, "repeat": repeat, "model": model, "accuracy": noisy, "f1": noisy}
                )
    return pd.DataFrame(rows)


def test_sweep_table_has_one_row_per_size_and_model():
    data = records({1000: 0.0, 100: 0.05})
    table = sweep_table(data)
    assert list(table[["size", "model"]].itertuples(index=False, name=None)) == [
        (1000, "cnn"),
        (1000, "scatnet"),
        (100, "cnn"),
        (100, "scatnet"),
    ]
    assert list(table.columns) == [
        "size",
        "model",
        "n",
        "accuracy_mean",
        "accuracy_low",
        "accuracy_high",
        "f1_mean",
        "f1_low",
        "f1_high",
    ]
    assert (table["n"] == 5).all()
    cell = data[(data["size"] == 100) & (data["model"] == "cnn")]["accuracy"]
    assert tuple(table.loc[2, ["accuracy_mean", "accuracy_low", "accuracy_high"]]) == (
        pytest.approx(mean_ci(cell))
    )


def test_size_tests_pair_the_models_by_repeat():
    tests = size_tests(records({1000: 0.0, 300: 0.03, 100: 0.05}))
    assert tests["size"].tolist() == [1000, 300, 100]
    assert tests.loc[2, "mean_difference"] == pytest.approx(0.05, abs=0.01)
    assert tests.loc[2, "p_value"] < 0.001  # pairing removes the shared subset noise
    assert (tests["n"] == 5).all()
    assert {"p_value_wilcoxon"} <= set(tests.columns)


def size_test_frame(differences: list[float], p_values: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "size": [1000, 300, 100],
            "mean_difference": differences,
            "p_value": p_values,
            "p_value_wilcoxon": p_values,
            "n": 5,
        }
    )


def test_verdict_names_scatnet_at_the_small_sizes():
    line = verdict(size_test_frame([0.01, 0.05, 0.08], [0.4, 0.01, 0.001]))
    assert line.startswith("ScatNet beats the CNN at 300 training images and below (p < 0.05")
    assert "largest p = 0.01" in line


def test_verdict_names_the_cnn_when_it_wins_small():
    line = verdict(size_test_frame([0.0, -0.01, -0.08], [0.9, 0.6, 0.002]))
    assert line == "the CNN beats the ScatNet at 100 training images and below (p = 0.002 < 0.05)"


def test_verdict_reports_the_large_end_too():
    line = verdict(size_test_frame([-0.05, 0.01, 0.06], [0.001, 0.5, 0.01]))
    assert line.startswith("ScatNet beats the CNN at 100 training images and below")
    assert "; the CNN beats the ScatNet at 1000 training images and above" in line


def test_verdict_without_any_significant_size():
    line = verdict(size_test_frame([0.01, 0.02, 0.03], [0.4, 0.2, 0.09]))
    assert line == (
        "no size shows a significant difference between ScatNet and CNN (smallest p = 0.09)"
    )


def test_verdict_on_an_isolated_difference():
    line = verdict(size_test_frame([0.0, 0.04, 0.01], [0.9, 0.01, 0.5]))
    assert line.startswith("no consistent trend") and "300 images" in line
