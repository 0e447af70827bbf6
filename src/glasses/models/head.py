"""The classifier head that the CNN and the ScatNet share.

Using one class for both is the study's control: the two models differ only in where their
features come from (learned convolutions vs fixed wavelets), never in how they classify them.
"""

from __future__ import annotations

import torch
from torch import nn


class SeededDropout(nn.Dropout):
    """Dropout that draws from the generator the training loop hands it, never from torch's
    global one: folds trained in concurrent threads would otherwise share (and race for) it."""

    generator: torch.Generator | None = None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return features
        keep = 1 - self.p
        mask = torch.empty_like(features).bernoulli_(keep, generator=self.generator)
        return features * mask / keep


class Classifier(nn.Module):
    """Fully connected layers with ReLU, dropout before the last; returns logits, not softmax.

    The seed study applied softmax in `forward` and then CrossEntropyLoss, a double softmax that
    flattens the loss; logits here, probabilities only where a caller asks for them.
    """

    def __init__(
        self, in_features: int, hidden: tuple[int, ...], dropout: float, n_classes: int = 2
    ):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers += [SeededDropout(dropout), nn.Linear(width, n_classes)]
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features.flatten(1))


class InputNorm(nn.Module):
    """Maps [0, 1] pixels to roughly zero mean inside the model.

    Registered models then take plain [0, 1] images, so a black XAI baseline is literally zeros
    and nobody has to remember a preprocessing step at serving time.
    """

    def __init__(self, mean: float = 0.5, std: float = 0.25):
        super().__init__()
        self.mean = mean
        self.std = std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std
