"""The vectorised scattering backend computes kymatio's own numbers."""

from __future__ import annotations

import pytest
import torch
from kymatio import Scattering2D

from glasses.models.scatnet import scattering_transform
from glasses.models.scattering_backend import VectorisedBackend


@pytest.mark.parametrize(("size", "J", "L"), [(32, 2, 8), (24, 3, 4)])
def test_coefficients_and_input_gradients_equal_kymatios_bit_for_bit(size, J, L) -> None:
    """Bit for bit, not within a tolerance: a registered ScatNet must explain and predict as it
    did with kymatio's backend, and the cached coefficients stay valid."""
    kymatio = Scattering2D(J=J, shape=(size, size), L=L, frontend="torch")
    ours = scattering_transform(J, L, size)
    assert ours.backend is VectorisedBackend
    images = torch.rand(5, 3, size, size, generator=torch.Generator().manual_seed(0))
    direction = torch.randn(kymatio(images).shape, generator=torch.Generator().manual_seed(1))

    def forward_and_gradient(transform: Scattering2D) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = images.clone().requires_grad_()
        coefficients = transform(pixels)
        (gradient,) = torch.autograd.grad(coefficients, pixels, direction)
        return coefficients.detach(), gradient

    expected, expected_gradient = forward_and_gradient(kymatio)
    coefficients, gradient = forward_and_gradient(ours)
    assert torch.equal(coefficients, expected)
    assert torch.equal(gradient, expected_gradient)
    assert gradient.abs().sum() > 0


def test_a_filter_on_another_dtype_is_refused_as_kymatio_refuses_it() -> None:
    transform = scattering_transform(2, 4, 16)
    spectrum = torch.zeros(2, 3, 16, 16, 2, dtype=torch.float64)
    with pytest.raises(TypeError, match="same dtype"):
        transform.backend.cdgmm(spectrum, torch.ones(16, 16, 1))
