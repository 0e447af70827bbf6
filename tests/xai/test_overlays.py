"""The attribution figures."""

from __future__ import annotations

from collections.abc import Iterator

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from glasses.xai.maps import normalise
from glasses.xai.overlays import (
    attribution_histograms_figure,
    method_overlays_figure,
    pairwise_scatter_figure,
    shap_vs_ig_figure,
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
