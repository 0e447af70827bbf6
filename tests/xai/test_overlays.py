"""Channel aggregation, normalisation and the attribution figures."""

from __future__ import annotations

from collections.abc import Iterator

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from glasses.xai.overlays import (
    attribution_histograms_figure,
    method_overlays_figure,
    normalise,
    pairwise_scatter_figure,
    shap_vs_ig_figure,
    to_map,
)

SIZE = 16
METHOD_NAMES = ("IG black", "IG random", "Captum black", "Captum random", "LIME", "SHAP")


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


@pytest.fixture
def maps() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {name: rng.normal(size=(SIZE, SIZE)) for name in METHOD_NAMES}


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(1).random((3, SIZE, SIZE))


def test_to_map_sums_colour_channels_with_their_signs() -> None:
    attributions = np.zeros((2, 3, 4, 4))
    attributions[0, :, 1, 2] = [1.0, -3.0, 0.5]
    attributions[1, 2] = 2.0
    result = to_map(attributions)
    assert result.shape == (2, 4, 4)
    assert result[0, 1, 2] == pytest.approx(-1.5)
    assert np.all(result[1] == 2.0)
    np.testing.assert_array_equal(to_map(torch.from_numpy(attributions[0])), result[0])


def test_to_map_rejects_maps_without_channels() -> None:
    with pytest.raises(ValueError, match="attributions"):
        to_map(np.zeros((4, 4)))


def test_normalise_maps_into_unit_range_keeping_signs() -> None:
    values = np.array([[2.0, -4.0], [1.0, 0.0]])
    result = normalise(values)
    np.testing.assert_array_equal(result, [[0.5, -1.0], [0.25, 0.0]])
    assert np.abs(result).max() == 1.0


def test_normalise_scales_each_map_of_a_stack_on_its_own(maps: dict[str, np.ndarray]) -> None:
    stack = np.stack([maps["LIME"] * 1000, maps["SHAP"] * 1e-3])
    result = normalise(stack)
    assert result.min() >= -1 and result.max() <= 1
    np.testing.assert_array_equal(np.abs(result).max(axis=(1, 2)), [1.0, 1.0])
    np.testing.assert_allclose(result[0], normalise(maps["LIME"]))


def test_normalise_leaves_an_all_zero_map_zero() -> None:
    assert not np.any(normalise(np.zeros((3, 3))))


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_method_overlays_have_the_image_each_map_and_a_colour_bar(
    image: np.ndarray, maps: dict[str, np.ndarray], layout: str
) -> None:
    pixels = image if layout == "channels_first" else image.transpose(1, 2, 0)
    figure = method_overlays_figure(pixels, maps, "cnn: glasses")
    assert len(figure.axes) == len(maps) + 2
    assert [axis.get_title() for axis in figure.axes[1 : len(maps) + 1]] == list(maps)


def test_shap_vs_ig_has_three_panels_and_a_colour_bar(
    image: np.ndarray, maps: dict[str, np.ndarray]
) -> None:
    figure = shap_vs_ig_figure(torch.from_numpy(image), maps["SHAP"], maps["IG black"], "x")
    assert len(figure.axes) == 4


def test_histograms_count_only_strong_attributions(maps: dict[str, np.ndarray]) -> None:
    figure = attribution_histograms_figure(maps, threshold=0.2, title="scatnet")
    assert len(figure.axes) == len(maps)
    for axis, values in zip(figure.axes, maps.values(), strict=True):
        strong = int((np.abs(normalise(values)) >= 0.2).sum())
        assert sum(patch.get_height() for patch in axis.patches) == strong


def test_pairwise_scatter_reports_pearson_per_pair(maps: dict[str, np.ndarray]) -> None:
    maps = {**maps, "mirror": -maps["LIME"], "double": 2 * maps["LIME"]}
    pairs = [("LIME", "double"), ("LIME", "mirror"), ("IG black", "SHAP")]
    figure = pairwise_scatter_figure(maps, pairs, "cnn")
    assert len(figure.axes) == len(pairs)
    titles = [axis.get_title() for axis in figure.axes]
    expected = np.corrcoef(maps["IG black"].ravel(), maps["SHAP"].ravel())[0, 1]
    assert titles == ["r = 1.000", "r = -1.000", f"r = {expected:.3f}"]
