"""Attribution figures: every map is aggregated and normalised as `glasses.xai.maps` says."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from glasses.xai.maps import as_numpy, normalise

CMAP = "bwr"  # blue against the class, red for it, white for nothing


def method_overlays_figure(
    image: np.ndarray | torch.Tensor, maps: dict[str, np.ndarray], title: str
) -> Figure:
    """The image (3 x H x W or H x W x 3, in [0, 1]), then every method's normalised map over it
    (seed Figs. 13-18): len(maps) + 2 axes, the last one the shared colour bar."""
    figure, axes = plt.subplots(
        1, len(maps) + 1, figsize=(2.4 * (len(maps) + 1) + 0.6, 2.8), squeeze=False
    )
    return _overlay_row(figure, axes[0], image, maps, title)


def shap_vs_ig_figure(
    image: np.ndarray | torch.Tensor, shap_map: np.ndarray, ig_map: np.ndarray, title: str
) -> Figure:
    """The image, SHAP and IG side by side on one colour scale (4 axes with the colour bar)."""
    figure, axes = plt.subplots(1, 3, figsize=(7.8, 2.8))
    return _overlay_row(figure, axes, image, {"SHAP": shap_map, "IG": ig_map}, title)


def attribution_histograms_figure(
    maps: dict[str, np.ndarray], threshold: float = 0.2, title: str = ""
) -> Figure:
    """Per method, the normalised attributions with |value| >= threshold (seed Figs. 19-20).

    The many near-zero pixels would otherwise swamp the histogram; both signs are kept, so a
    method that spreads evidence against the class shows it on the left.
    """
    figure, axes = plt.subplots(
        1, len(maps), figsize=(3.0 * len(maps), 2.8), squeeze=False, sharex=True
    )
    bins = np.linspace(-1, 1, 41)
    for axis, (name, values) in zip(axes[0], maps.items(), strict=True):
        scaled = normalise(values).ravel()
        strong = scaled[np.abs(scaled) >= threshold]
        axis.hist(strong, bins=bins, color="tab:blue")
        axis.set(title=f"{name} ({strong.size} px)", xlabel="normalised attribution")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"pixels with |value| >= {threshold}")
    return _finish(figure, title)


def pairwise_scatter_figure(
    maps: dict[str, np.ndarray], pairs: list[tuple[str, str]], title: str
) -> Figure:
    """One scatter per pair of methods, normalised pixel against pixel, with Pearson's r."""
    figure, axes = plt.subplots(1, len(pairs), figsize=(3.0 * len(pairs), 3.0), squeeze=False)
    for axis, (first, second) in zip(axes[0], pairs, strict=True):
        x, y = normalise(maps[first]).ravel(), normalise(maps[second]).ravel()
        axis.scatter(x, y, s=2, alpha=0.3, color="tab:blue", rasterized=True)
        axis.set(xlim=(-1.05, 1.05), ylim=(-1.05, 1.05), xlabel=first, ylabel=second)
        axis.set_title(f"r = {_pearson(x, y):.3f}")
        axis.grid(alpha=0.3)
    return _finish(figure, title)


def _overlay_row(
    figure: Figure,
    axes: np.ndarray,
    image: np.ndarray | torch.Tensor,
    maps: dict[str, np.ndarray],
    title: str,
) -> Figure:
    """Original in the first axis, overlays after it, one shared colour bar at the end."""
    pixels = _channels_last(image)
    axes[0].imshow(pixels)
    axes[0].set_title("image")
    shading = None
    for axis, (name, values) in zip(axes[1:], maps.items(), strict=True):
        shading = _overlay(axis, pixels, normalise(values))
        axis.set_title(name, fontsize=9)
    for axis in axes:
        axis.axis("off")
    if shading is not None:
        figure.colorbar(shading, ax=list(axes), fraction=0.02, label="normalised attribution")
    figure.suptitle(title)
    return figure


def _overlay(axis: Axes, pixels: np.ndarray, scaled: np.ndarray) -> AxesImage:
    """A grey copy of the image under the map, so the map's colours are the only colours."""
    axis.imshow(pixels.mean(axis=2), cmap="gray", vmin=0, vmax=1)
    return axis.imshow(scaled, cmap=CMAP, vmin=-1, vmax=1, alpha=0.6)


def _channels_last(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """H x W x 3 pixels in [0, 1] from either layout: models take 3 x H x W, files H x W x 3."""
    pixels = as_numpy(image)
    if pixels.shape[0] == 3 and pixels.shape[-1] != 3:
        pixels = pixels.transpose(1, 2, 0)
    return np.clip(pixels, 0, 1)


def _finish(figure: Figure, title: str) -> Figure:
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r, or NaN where a map is constant and r is undefined."""
    if x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])
