"""The one inference path: what `glasses.inference` imports, and that its batched logits and
probabilities are each family's own forward pass."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from glasses.config import resolve_config
from glasses.families import FAMILIES, SPECS, Family
from glasses.inference import class_probabilities, logits, probabilities
from glasses.labels import CLASS_NAMES
from glasses.scattering import compute_coefficients


def test_importing_inference_does_not_load_matplotlib() -> None:
    """Serving and `glasses predict` import it: a plotting library has no business there."""
    code = "import sys, glasses.inference; print('matplotlib' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}  # this checkout's glasses
    answer = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert answer.stdout.strip() == "False"


TINY = resolve_config("tiny")
SIDE = TINY.data.image_size
PIXELS = torch.from_numpy(
    np.random.default_rng(0).integers(0, 256, size=(5, 3, SIDE, SIDE), dtype=np.uint8)
)


def tiny_model(family: Family) -> nn.Module:
    """An untrained model of `family`; the ScatNet's standardisation fitted on random images."""
    torch.manual_seed(0)
    spec = SPECS[family]
    model = spec.build(spec.settings(TINY), TINY.data.image_size)
    spec.fit_standardisation(model, stored_inputs(family, PIXELS), torch.arange(len(PIXELS)))
    return model


def stored_inputs(family: Family, pixels: torch.Tensor) -> torch.Tensor:
    """What the family is trained on: pixels, or their scattering coefficients."""
    if SPECS[family].inputs == "pixels":
        return pixels
    return compute_coefficients(pixels.numpy(), TINY.scatnet.J, TINY.scatnet.L)


def forward(model: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(pixels.float() / 255)


@pytest.mark.parametrize("family", FAMILIES)
def test_logits_and_probabilities_are_the_forward_pass_batch_by_batch(family: Family) -> None:
    model = tiny_model(family)
    expected = forward(model, PIXELS)
    torch.testing.assert_close(logits(model, PIXELS, batch_size=2), expected)
    torch.testing.assert_close(
        probabilities(model, PIXELS, batch_size=2), torch.softmax(expected, dim=1)
    )
    torch.testing.assert_close(logits(model, PIXELS.float() / 255), expected)  # [0, 1] floats
    rows = np.array([3, 0, 4])
    torch.testing.assert_close(logits(model, PIXELS, rows, batch_size=2), expected[rows])
    assert not model.training and next(model.parameters()).device.type == "cpu"


@pytest.mark.parametrize("family", FAMILIES)
def test_stored_inputs_give_the_logits_of_the_images(family: Family) -> None:
    """Cross-validation scores the ScatNet on cached coefficients: the same as on its images."""
    model = tiny_model(family)
    inputs, rows = stored_inputs(family, PIXELS), np.array([1, 2, 4])
    torch.testing.assert_close(
        logits(model, inputs, rows, stored=True, batch_size=2), forward(model, PIXELS)[rows]
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_class_probabilities_of_image_files_are_the_forward_pass(family: Family) -> None:
    """Serving and `glasses predict`: H x W x 3 floats in [0, 1], as `image_pixels` reads them."""
    model = tiny_model(family)
    images = list((PIXELS.numpy().transpose(0, 2, 3, 1) / np.float32(255)).astype(np.float32))
    answer = class_probabilities(model, images)
    assert answer.shape == (len(PIXELS), len(CLASS_NAMES))
    np.testing.assert_allclose(
        answer, torch.softmax(forward(model, PIXELS), dim=1).numpy(), rtol=1e-6, atol=1e-7
    )
