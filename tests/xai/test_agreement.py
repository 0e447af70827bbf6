"""The agreement statistics on hand-made maps, where the right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from glasses.statistics import holm
from glasses.xai.agreement import (
    METRICS,
    agreement_table,
    agreement_values,
    barycenter_distance,
    compare_maps,
    model_agreement_test,
    model_agreement_tests,
    pearson,
    spatial_barycenter_distance,
    spearman,
    spread_distance,
    ssim,
    summarise_agreement,
    top_fraction_iou,
)


def smooth_map(seed: int, size: int = 24) -> np.ndarray:
    """A signed, blob-like map with structure at several scales, like an attribution map."""
    rng = np.random.default_rng(seed)
    rows, cols = np.indices((size, size))
    blob = np.exp(-((rows - rng.uniform(5, 19)) ** 2 + (cols - rng.uniform(5, 19)) ** 2) / 20)
    return blob + 0.3 * rng.normal(size=(size, size))


def test_identical_maps_agree_perfectly() -> None:
    a = smooth_map(0)
    result = compare_maps(a, a.copy())
    assert set(result) == set(METRICS)
    assert result["barycenter_distance"] == 0
    assert result["spread_distance"] == 0
    assert result["spatial_barycenter_distance"] == 0
    for metric in ("pearson", "spearman", "top10_iou", "ssim"):
        assert result[metric] == pytest.approx(1.0)


def test_statistics_ignore_the_scale_of_a_map() -> None:
    """Methods differ in raw scale by orders of magnitude; normalisation must remove that."""
    a = smooth_map(1)
    result = compare_maps(a, 1000 * a)
    assert result["barycenter_distance"] == pytest.approx(0, abs=1e-12)
    assert result["spread_distance"] == pytest.approx(0, abs=1e-12)
    assert result["ssim"] == pytest.approx(1.0)


def test_a_map_and_its_negation_are_anticorrelated() -> None:
    a = smooth_map(2)
    assert pearson(a, -a) == pytest.approx(-1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert ssim(a, -a) < 0


def test_seed_distances_on_known_maps() -> None:
    ones = np.ones((4, 4))
    half = np.zeros((4, 4))
    half[:2] = 1.0  # normalised: mean 0.5, population std 0.5
    assert barycenter_distance(ones, half) == pytest.approx(0.5)
    assert spread_distance(ones, half) == pytest.approx(0.5)


def test_spatial_barycenter_is_the_distance_between_positive_centres() -> None:
    a, b = np.zeros((10, 10)), np.zeros((10, 10))
    a[2, 3], b[5, 7] = 1.0, 1.0
    a[9, 9] = -5.0  # negative evidence does not move the centre
    assert spatial_barycenter_distance(a, b) == pytest.approx(5.0)
    assert np.isnan(spatial_barycenter_distance(-np.ones((10, 10)), b))


def test_top_fraction_iou_of_half_overlapping_sets_is_a_third() -> None:
    a, b = np.zeros((10, 10)), np.zeros((10, 10))
    a.ravel()[0:10] = 1.0  # top 10 % of 100 pixels: indices 0-9 ...
    b.ravel()[5:15] = 1.0  # ... and 5-14: 5 shared of 15
    assert top_fraction_iou(a, b) == pytest.approx(1 / 3)
    assert top_fraction_iou(a, a) == 1.0


def test_top_fraction_iou_breaks_ties_deterministically() -> None:
    flat = np.zeros((10, 10))
    assert top_fraction_iou(flat, flat) == 1.0
    shifted = np.zeros((10, 10))
    shifted.ravel()[5:15] = 1.0
    assert top_fraction_iou(flat, shifted) == pytest.approx(1 / 3)  # flat picks indices 0-9


def test_correlations_of_a_constant_map_are_undefined() -> None:
    assert np.isnan(pearson(np.ones((12, 12)), smooth_map(3, 12)))
    assert np.isnan(spearman(np.ones((12, 12)), smooth_map(3, 12)))


def test_ssim_matches_scikit_image_on_maps_shifted_to_non_negative() -> None:
    metrics = pytest.importorskip("skimage.metrics")
    a, b = smooth_map(4, 32), smooth_map(5, 32)
    expected = metrics.structural_similarity(
        a / np.abs(a).max() + 1,
        b / np.abs(b).max() + 1,
        data_range=2.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    assert ssim(a, b) == pytest.approx(expected, rel=1e-9)


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        compare_maps(np.zeros((12, 12)), np.zeros((12, 13)))


def sample_maps(images: int = 6) -> dict[str, dict[str, list[np.ndarray]]]:
    """Two models, three methods; method 'close' is a noisy copy of 'ig', 'other' unrelated."""
    rng = np.random.default_rng(0)
    maps: dict[str, dict[str, list[np.ndarray]]] = {}
    for model, noise in (("cnn", 0.05), ("scatnet", 1.0)):
        ig = [smooth_map(10 + i) for i in range(images)]
        maps[model] = {
            "ig": ig,
            "close": [m + noise * rng.normal(size=m.shape) for m in ig],
            "other": [smooth_map(100 + i) for i in range(images)],
        }
    return maps


def test_agreement_table_has_one_row_per_model_pair_and_metric() -> None:
    table = agreement_table(sample_maps())
    assert len(table) == 2 * 3 * len(METRICS)
    assert list(table.columns) == [
        "model", "method_a", "method_b", "metric", "mean", "ci_low", "ci_high", "n"
    ]  # fmt: skip
    assert (table["ci_low"] <= table["mean"] + 1e-12).all()
    assert (table["mean"] <= table["ci_high"] + 1e-12).all()
    assert (table["n"] == 6).all()
    pairs = set(zip(table["method_a"], table["method_b"], strict=True))
    assert pairs == {("ig", "close"), ("ig", "other"), ("close", "other")}
    close = table.set_index(["model", "method_a", "method_b", "metric"])["mean"]
    assert close["cnn", "ig", "close", "pearson"] > 0.95


def test_summary_leaves_out_undefined_values() -> None:
    maps = {"cnn": {"flat": [np.ones((12, 12)), smooth_map(7, 12)], "ig": [smooth_map(8, 12)] * 2}}
    table = summarise_agreement(agreement_values(maps)).set_index("metric")
    assert table.loc["pearson", "n"] == 1
    assert table.loc["barycenter_distance", "n"] == 2


def test_model_agreement_test_detects_a_clear_shift() -> None:
    rng = np.random.default_rng(1)
    on_cnn = rng.normal(0.8, 0.05, size=30)
    on_scatnet = on_cnn - 0.3 + rng.normal(0, 0.05, size=30)
    result = model_agreement_test(list(on_cnn), list(on_scatnet))
    assert result["n"] == 30
    assert result["mean_difference"] == pytest.approx(0.3, abs=0.05)
    assert result["p_value"] < 1e-6
    assert result["p_value_wilcoxon"] < 1e-4


def test_model_agreement_test_finds_no_shift_in_identical_values() -> None:
    values = [0.1, 0.5, 0.7]
    result = model_agreement_test(values, values)
    assert result["mean_difference"] == 0
    assert result["p_value"] == 1.0
    assert result["n"] == 3


def test_model_agreement_test_drops_images_undefined_on_either_model() -> None:
    result = model_agreement_test([0.5, float("nan"), 0.7, 0.2], [0.4, 0.3, float("nan"), 0.1])
    assert result["n"] == 2
    assert result["mean_difference"] == pytest.approx(0.1)


def test_model_agreement_tests_compare_the_models_per_pair_and_metric() -> None:
    tests = model_agreement_tests(agreement_values(sample_maps()), "cnn", "scatnet")
    assert len(tests) == 3 * len(METRICS)
    close = tests.set_index(["method_a", "method_b", "metric"])
    # 'close' follows 'ig' much more tightly on the CNN than on the ScatNet.
    assert close.loc[("ig", "close", "pearson"), "mean_difference"] > 0.3
    assert close.loc[("ig", "close", "pearson"), "p_value"] < 0.01


def test_model_agreement_tests_are_holm_corrected_across_the_table() -> None:
    """One family: every p-value of the table, Holm-adjusted together, named in the table."""
    tests = model_agreement_tests(agreement_values(sample_maps()), "cnn", "scatnet")
    np.testing.assert_array_equal(tests["p_adjusted"], holm(tests["p_value"]))
    assert (tests["correction"] == "Holm").all()
    finite = tests.dropna(subset=["p_value"])
    assert (finite["p_adjusted"] >= finite["p_value"]).all()
    assert tests["significant"].tolist() == (tests["p_adjusted"] < 0.05).tolist()
    assert tests["significant"].sum() <= (tests["p_value"] < 0.05).sum()
