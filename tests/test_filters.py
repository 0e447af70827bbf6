"""Filter figures for both tiny models; the colour code of complex filters; kymatio path order."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from kymatio import Scattering2D
from matplotlib.colors import rgb_to_hsv
from matplotlib.figure import Figure

from glasses.config import resolve_config
from glasses.filters import (
    cnn_feature_maps_figure,
    cnn_kernels_figure,
    coefficient_orders,
    coefficient_paths,
    complex_to_rgb,
    scattering_coefficients_figure,
    wavelet_filters_figure,
)
from glasses.models.cnn import CNN
from glasses.models.scatnet import ScatNet, coefficient_count, scattering_transform

CONFIG = resolve_config("tiny")
SIZE = CONFIG.data.image_size
J, L = CONFIG.scatnet.J, CONFIG.scatnet.L


def image_axes(figure: Figure) -> list:
    return [axis for axis in figure.get_axes() if axis.images]


@pytest.fixture
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def cnn() -> CNN:
    torch.manual_seed(0)
    return CNN(CONFIG.cnn, SIZE)


def test_kernel_grid_shows_every_first_layer_kernel(cnn, close_figures):
    figure = cnn_kernels_figure(cnn)
    assert len(image_axes(figure)) == CONFIG.cnn.channels[0]
    assert "normalised to [0, 1]" in figure._suptitle.get_text()
    pixels = image_axes(figure)[0].images[0].get_array()
    assert pixels.shape == (CONFIG.cnn.kernels[0], CONFIG.cnn.kernels[0], 3)
    assert pixels.min() == pytest.approx(0) and pixels.max() == pytest.approx(1)


def test_feature_maps_per_image_and_block(cnn, close_figures):
    images = torch.rand(2, 3, SIZE, SIZE)
    figure = cnn_feature_maps_figure(cnn, images, ["glasses", "no glasses"])
    per_image = 1 + sum(min(8, channels) for channels in CONFIG.cnn.channels)
    assert len(image_axes(figure)) == 2 * per_image
    titles = {axis.get_title() for axis in figure.get_axes()}
    assert {"glasses", "no glasses", "block 3 · ch 8"} <= titles
    with pytest.raises(ValueError, match="titles"):
        cnn_feature_maps_figure(cnn, images, ["glasses"])


def test_complex_to_rgb_encodes_phase_as_hue_and_magnitude_as_saturation():
    z = np.array([[1, np.exp(2j * np.pi / 3), np.exp(4j * np.pi / 3), 0, 0.5, -1]])
    hsv = rgb_to_hsv(complex_to_rgb(z))
    assert hsv.shape == (1, 6, 3)
    np.testing.assert_allclose(hsv[0, :3, 0], [0, 1 / 3, 2 / 3], atol=1e-6)
    np.testing.assert_allclose(hsv[0, :, 1], [1, 1, 1, 0, 0.5, 1], atol=1e-6)
    assert hsv[0, 5, 0] == pytest.approx(0.5)  # phase π
    np.testing.assert_allclose(complex_to_rgb(np.zeros((2, 2))), 1.0)  # zero is white


def test_wavelet_figure_draws_the_models_own_filter_bank(close_figures):
    figure = wavelet_filters_figure(J, L, SIZE)
    shown = image_axes(figure)
    assert len(shown) == 2 * J * L  # Fourier and spatial domain, every (j, θ)
    wavelet = scattering_transform(J, L, SIZE).psi[0]["levels"][0]
    pixels = figure.get_axes()[0].images[0].get_array()
    np.testing.assert_allclose(pixels, complex_to_rgb(np.fft.fftshift(wavelet)))
    # The spectrum is real and positive at its peak: phase 0, so pure red, fully saturated.
    peak = np.unravel_index(np.argmax(np.fft.fftshift(wavelet)), wavelet.shape)
    hue, saturation, _ = rgb_to_hsv(pixels[peak])
    assert hue == pytest.approx(0) and saturation == pytest.approx(1)


def test_spatial_wavelet_hue_is_its_phase(close_figures):
    figure = wavelet_filters_figure(J, L, SIZE)
    pixels = figure.get_axes()[J * L].images[0].get_array()  # first spatial-domain filter
    wavelet = np.fft.fftshift(np.fft.ifft2(scattering_transform(J, L, SIZE).psi[0]["levels"][0]))
    centre, reach = np.array(wavelet.shape) // 2, len(pixels) // 2
    crop = wavelet[tuple(slice(c - reach, c + reach + 1) for c in centre)]
    np.testing.assert_allclose(pixels, complex_to_rgb(crop), atol=1e-6)
    hsv = rgb_to_hsv(pixels)
    strong = hsv[..., 1] > 0.5
    phase = np.mod(np.angle(crop[strong]) / (2 * np.pi), 1)
    np.testing.assert_allclose(hsv[..., 0][strong], phase, atol=1e-5)
    assert np.ptp(phase) > 0.5  # the phase turns along the oscillation


def test_coefficient_orders_match_the_models_channel_count():
    for j_max, angles in ((1, 8), (2, 8), (3, 4), (4, 6)):
        orders = coefficient_orders(j_max, angles)
        assert len(orders) == coefficient_count(j_max, angles)
        assert np.bincount(orders, minlength=3).tolist() == [
            1,
            j_max * angles,
            angles**2 * j_max * (j_max - 1) // 2,
        ]


def test_coefficient_paths_follow_kymatios_output_order():
    scattering = Scattering2D(J=3, shape=(16, 16), L=2, frontend="torch", out_type="list")
    kymatio = [(entry["j"], entry["theta"]) for entry in scattering(torch.rand(1, 16, 16))]
    assert coefficient_paths(3, 2) == kymatio


def test_scattering_coefficient_grids_by_order(close_figures):
    model = ScatNet(CONFIG.scatnet, SIZE)
    coefficients = model.coefficients(torch.rand(1, 3, SIZE, SIZE))[0]
    figure = scattering_coefficients_figure(coefficients, J, L, "one image")
    assert len(image_axes(figure)) == coefficient_count(J, L)
    gray = scattering_coefficients_figure(coefficients.mean(0).numpy(), J, L, "gray")
    assert len(image_axes(gray)) == coefficient_count(J, L)
    with pytest.raises(ValueError, match="K = "):
        scattering_coefficients_figure(coefficients[:, :5], J, L, "wrong")
