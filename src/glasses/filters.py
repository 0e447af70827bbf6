"""What each model's filters look like, as matplotlib figures.

The CNN learns its kernels; the ScatNet's wavelets are fixed, so its figures are drawn from the
exact kymatio filter bank and path ordering the model uses.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import hsv_to_rgb
from matplotlib.figure import Figure
from torch import nn

from glasses.models.cnn import CNN
from glasses.models.scatnet import coefficient_count, scattering_transform

MAX_CHANNELS = 8  # feature maps shown per block: enough to see variety, few enough to read
SUPPORT_THRESHOLD = 0.02  # share of a wavelet's peak magnitude that counts as its support


def _bare(axis: Axes) -> None:
    """No ticks, but unlike axis("off") labels stay visible."""
    axis.set_xticks([])
    axis.set_yticks([])


def _hide_unused(axes: np.ndarray) -> None:
    for axis in axes.flat:
        if not axis.images:
            axis.axis("off")


def _unit_range(values: np.ndarray) -> np.ndarray:
    span = values.max() - values.min()
    return (values - values.min()) / span if span > 0 else np.full_like(values, 0.5)


def cnn_kernels_figure(model: CNN) -> Figure:
    """The first layer's kernels, the only ones with RGB inputs and so viewable as colour images.

    Each kernel is stretched to [0, 1] on its own: absolute weights differ a lot between kernels
    and one shared scale would leave most of them flat grey.
    """
    conv = next(module for module in model.features if isinstance(module, nn.Conv2d))
    kernels = conv.weight.detach().cpu().numpy().transpose(0, 2, 3, 1)
    columns = min(MAX_CHANNELS, len(kernels))
    rows = -(-len(kernels) // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(1.3 * columns, 1.3 * rows + 0.8), squeeze=False
    )
    for index, (axis, kernel) in enumerate(zip(axes.flat, kernels, strict=False)):
        axis.imshow(_unit_range(kernel), interpolation="nearest")
        axis.set_title(f"{index + 1}", fontsize=7)
        _bare(axis)
    _hide_unused(axes)
    size = "×".join(str(side) for side in conv.kernel_size)
    figure.suptitle(
        f"CNN first layer: {len(kernels)} learned {size} kernels\n"
        "(RGB, each kernel normalised to [0, 1] on its own)",
        fontsize=10,
    )
    figure.tight_layout()
    return figure


def _block_outputs(features: nn.Sequential, images: torch.Tensor) -> list[torch.Tensor]:
    """Activations at the end of every conv block (whatever follows a Conv2d up to the next).

    Walking the modules instead of assuming conv / pool / ReLU triples keeps this right if the
    block layout changes.
    """
    outputs: list[torch.Tensor] = []
    started = False
    for module in features:
        if isinstance(module, nn.Conv2d):
            if started:
                outputs.append(images)
            started = True
        images = module(images)
    outputs.append(images)
    return outputs


def cnn_feature_maps_figure(model: CNN, images: torch.Tensor, titles: list[str]) -> Figure:
    """Per image, the input and the first channels after every conv block, one row per block.

    `images` are [0, 1] floats, N x 3 x H x W. Each map has its own colour scale: ReLU outputs of
    different channels differ by orders of magnitude and the pattern, not the level, is the point.
    """
    if len(titles) != len(images):
        raise ValueError(f"{len(titles)} titles for {len(images)} images")
    device = next(model.parameters()).device
    with torch.no_grad():
        blocks = [out.cpu().numpy() for out in _block_outputs(model.features, images.to(device))]
    shown = [min(MAX_CHANNELS, block.shape[1]) for block in blocks]
    rows, columns = len(images) * len(blocks), 1 + max(shown)
    figure, axes = plt.subplots(
        rows, columns, figsize=(1.3 * columns, 1.35 * rows + 0.6), squeeze=False
    )
    for index, (image, title) in enumerate(zip(images, titles, strict=True)):
        top = index * len(blocks)
        axes[top, 0].imshow(np.clip(image.detach().cpu().numpy().transpose(1, 2, 0), 0, 1))
        axes[top, 0].set_title(title, fontsize=8)
        _bare(axes[top, 0])
        for number, (block, count) in enumerate(zip(blocks, shown, strict=True), start=1):
            for channel in range(count):
                axis = axes[top + number - 1, channel + 1]
                axis.imshow(block[index, channel], cmap="viridis")
                axis.set_title(f"block {number} · ch {channel + 1}", fontsize=6)
                _bare(axis)
    _hide_unused(axes)
    figure.suptitle(
        f"CNN feature maps after each conv block (first ≤ {MAX_CHANNELS} channels)", fontsize=10
    )
    figure.tight_layout()
    return figure


def complex_to_rgb(z: np.ndarray) -> np.ndarray:
    """H x W x 3 colours in [0, 1]: hue = phase, saturation = magnitude, value = 1.

    Hue is np.angle / 2π taken modulo 1 (phase 0 red, 2π/3 green, 4π/3 blue); saturation is
    |z| / max |z| of this array, so zero is white and the strongest response fully saturated.
    """
    magnitude = np.abs(z)
    peak = magnitude.max()
    hsv = np.stack(
        [
            np.mod(np.angle(z) / (2 * np.pi), 1.0),
            magnitude / peak if peak > 0 else np.zeros_like(magnitude),
            np.ones_like(magnitude),
        ],
        axis=-1,
    )
    return hsv_to_rgb(hsv)


def _central_crop(filters: list[np.ndarray]) -> tuple[slice, slice]:
    """One centred square holding every (fftshifted) wavelet's support, so scales compare."""
    rows, columns = filters[0].shape
    reach = 1
    for spatial in filters:
        magnitude = np.abs(spatial)
        ys, xs = np.nonzero(magnitude > SUPPORT_THRESHOLD * magnitude.max())
        reach = max(reach, np.abs(ys - rows // 2).max(), np.abs(xs - columns // 2).max())
    reach = min(reach + 1, rows // 2, columns // 2)
    return (
        slice(rows // 2 - reach, rows // 2 + reach + 1),
        slice(columns // 2 - reach, columns // 2 + reach + 1),
    )


def wavelet_filters_figure(J: int, L: int, size: int) -> Figure:
    """The ScatNet's J x L Morlet wavelets, taken from the transform the model builds.

    Top block, the Fourier domain (zero frequency centred), where each wavelet is a band-pass
    blob whose distance from the centre is its scale j and whose direction is its angle θ.
    kymatio's Fourier filters are real (a Morlet's spectrum is real), so hue there only tells the
    sign: red positive, cyan the small negative dip that zeroes the mean. Bottom block, the same
    wavelets in space (inverse FFT, centred and cropped to their support), where they are complex
    and hue shows the phase turning along the oscillation. Filters are at the padded size kymatio
    convolves with. kymatio 0.3 numbers angles θ = 0..L-1 for orientations (L/2 - 1 - θ)·π/L.
    """
    psi = scattering_transform(J, L, size).psi
    fourier = [np.fft.fftshift(wavelet["levels"][0]) for wavelet in psi]
    spatial = [np.fft.fftshift(np.fft.ifft2(wavelet["levels"][0])) for wavelet in psi]
    crop = _central_crop(spatial)
    figure, axes = plt.subplots(
        2 * J, L, figsize=(1.3 * L + 0.6, 1.35 * 2 * J + 1.2), squeeze=False
    )
    for wavelet, spectrum, kernel in zip(psi, fourier, spatial, strict=True):
        j, theta = wavelet["j"], wavelet["theta"]
        axes[j, theta].imshow(complex_to_rgb(spectrum))
        axes[J + j, theta].imshow(complex_to_rgb(kernel[crop]))
    for axis in axes.flat:
        _bare(axis)
    for theta in range(L):
        axes[0, theta].set_title(f"θ = {theta}", fontsize=8)
    for j in range(J):
        axes[j, 0].set_ylabel(f"Fourier\nj = {j}", fontsize=8)
        axes[J + j, 0].set_ylabel(f"space\nj = {j}", fontsize=8)
    figure.suptitle(
        f"ScatNet wavelets (J = {J}, L = {L}, {size}×{size} images)\n"
        "hue = complex phase, saturation = complex magnitude",
        fontsize=10,
    )
    figure.tight_layout()
    return figure


def coefficient_paths(J: int, L: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(scales, angles) of every scattering path, in the order of kymatio 0.3's output channels.

    kymatio's `scattering2d` collects orders separately and concatenates them: order 0 ((), ()),
    then all order-1 paths ((j1,), (θ1,)) by j1 then θ1, then all order-2 paths
    ((j1, j2), (θ1, θ2)) with j2 > j1, by j1, θ1, j2, θ2. These are the `j` and `theta` fields
    of its out_type="list" entries.
    """
    first = [((j1,), (t1,)) for j1 in range(J) for t1 in range(L)]
    second = [
        ((j1, j2), (t1, t2))
        for j1 in range(J)
        for t1 in range(L)
        for j2 in range(j1 + 1, J)
        for t2 in range(L)
    ]
    return [((), ()), *first, *second]


def coefficient_orders(J: int, L: int) -> np.ndarray:
    """The order (0, 1, 2) of each of the K scattering channels, in kymatio's order."""
    return np.array([len(scales) for scales, _ in coefficient_paths(J, L)])


def scattering_coefficients_figure(
    coefficients: torch.Tensor | np.ndarray, J: int, L: int, title: str
) -> Figure:
    """One image's scattering coefficients as grids, one block per order.

    `coefficients` are 3 x K x h x w (colour channels, averaged here) or K x h x w. Order 1 has a
    row per scale j and a column per angle θ; order 2 a row per (j1, θ1, j2) and a column per θ2.
    Each order shares one colour scale: within an order magnitudes are comparable, while order 2
    is typically an order of magnitude below order 1 and would vanish on a common scale.
    """
    maps = np.asarray(
        coefficients.detach().cpu() if isinstance(coefficients, torch.Tensor) else coefficients,
        dtype=float,
    )
    if maps.ndim == 4:
        maps = maps.mean(axis=0)
    if maps.ndim != 3 or len(maps) != coefficient_count(J, L):
        raise ValueError(
            f"coefficients of shape {np.shape(coefficients)} are not (3 x) K x h x w with "
            f"K = {coefficient_count(J, L)} paths for J = {J}, L = {L}"
        )
    paths = coefficient_paths(J, L)
    orders = coefficient_orders(J, L)
    grid_rows = {order: -(-int(np.sum(orders == order)) // L) for order in (1, 2)}
    heights = [1, grid_rows[1]] + ([grid_rows[2]] if grid_rows[2] else [])
    figure = plt.figure(figsize=(1.25 * L + 1.6, 1.3 * sum(heights) + 1.6), layout="constrained")
    sections = figure.subfigures(len(heights), 1, height_ratios=heights, squeeze=False)[:, 0]
    for order, section in enumerate(sections):
        selected = np.flatnonzero(orders == order)
        axes = section.subplots(heights[order], L, squeeze=False)
        low, high = maps[selected].min(), maps[selected].max()
        for axis, channel in zip(axes.flat, selected, strict=False):
            image = axis.imshow(maps[channel], cmap="viridis", vmin=low, vmax=high)
            _bare(axis)
            _label_path(axis, paths[channel])
        _hide_unused(axes)
        section.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8)
        section.suptitle(f"order {order}", fontsize=9)
    figure.suptitle(title, fontsize=10)
    return figure


def _label_path(axis: Axes, path: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
    """Column titles on the first row of a grid, row labels on its first column."""
    scales, angles = path
    if len(scales) == 1:
        if scales[0] == 0:
            axis.set_title(f"θ = {angles[0]}", fontsize=7)
        if angles[0] == 0:
            axis.set_ylabel(f"j = {scales[0]}", fontsize=7)
    elif len(scales) == 2:
        if scales == (0, 1) and angles[0] == 0:
            axis.set_title(f"θ2 = {angles[1]}", fontsize=7)
        if angles[1] == 0:
            axis.set_ylabel(f"j1={scales[0]} θ1={angles[0]}\nj2={scales[1]}", fontsize=6)
