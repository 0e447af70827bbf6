"""What the XAI tests share: untrained tiny models of both families, one image of each class."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from glasses.config import resolve_config
from glasses.models.cnn import CNN
from glasses.models.scatnet import ScatNet

TINY = resolve_config("tiny")
SIZE = 32


@pytest.fixture(scope="session")
def tiny_model() -> Callable[[str], nn.Module]:
    """`tiny_model(kind)`: a new untrained tiny CNN or ScatNet, the same weights every time."""

    def build(kind: str) -> nn.Module:
        torch.manual_seed(0)
        model = CNN(TINY.cnn, SIZE) if kind == "cnn" else ScatNet(TINY.scatnet, SIZE)
        return model.eval()

    return build


@pytest.fixture
def images(image_arrays) -> torch.Tensor:
    """One image of each class from the shared tiny set, as the models take them."""
    pixels, _ = image_arrays(per_class=1, size=SIZE)
    return torch.from_numpy(pixels).float() / 255
