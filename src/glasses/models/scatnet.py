"""The scattering network: a fixed kymatio `Scattering2D` in front of the CNN's own head.

The wavelet filters never train, so training only needs each image's coefficients, computed once
(see `glasses.scattering`). The registered model still contains the transform, so it takes images
like the CNN does and gradients flow through the scattering for attribution methods.
"""

from __future__ import annotations

import torch
from kymatio import Scattering2D
from torch import nn

from glasses.config import ScatNetConfig
from glasses.models.head import Classifier


def scattering_transform(J: int, L: int, image_size: int) -> Scattering2D:
    """kymatio's torch frontend, built via the top-level import.

    `kymatio.torch` also imports the 3-D transform, which breaks with scipy >= 1.17.
    """
    if image_size % (2**J):
        raise ValueError(f"data.image_size {image_size} must be divisible by 2**scatnet.J = {2**J}")
    return Scattering2D(J=J, shape=(image_size, image_size), L=L, frontend="torch")


def coefficient_count(J: int, L: int) -> int:
    """Order 0, 1 and 2 paths per colour channel: 1 + JL + L^2 J(J-1)/2 (81 at J=2, L=8)."""
    return 1 + J * L + L * L * J * (J - 1) // 2


class ScatNet(nn.Module):
    """Scattering → per-coefficient standardisation → shared classifier head."""

    def __init__(self, config: ScatNetConfig, image_size: int, n_classes: int = 2):
        super().__init__()
        self.image_size = image_size  # travels with the registered model, for `glasses explain`
        self.config = config  # and this, so `glasses.inference` can rebuild it from weights
        self.scattering = scattering_transform(config.J, config.L, image_size)
        side = image_size // 2**config.J
        shape = (3, coefficient_count(config.J, config.L), side, side)
        # Fitted on training coefficients (`fit_standardisation`): raw scattering coefficients
        # span orders of magnitude across paths, which stalls plain SGD.
        self.register_buffer("coefficient_mean", torch.zeros(shape))
        self.register_buffer("coefficient_std", torch.ones(shape))
        in_features = int(torch.tensor(shape).prod())
        self.head = Classifier(in_features, config.head.hidden, config.head.dropout, n_classes)

    def coefficients(self, images: torch.Tensor) -> torch.Tensor:
        return self.scattering(images)

    def classify(self, coefficients: torch.Tensor) -> torch.Tensor:
        """Logits from precomputed coefficients, the path training takes."""
        return self.head((coefficients - self.coefficient_mean) / self.coefficient_std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classify(self.coefficients(images))

    def fit_standardisation(
        self, coefficients: torch.Tensor, rows: torch.Tensor | None = None, chunk: int = 256
    ) -> None:
        """Mean and standard deviation of the training `rows` of `coefficients` (all rows by
        default), accumulated chunk by chunk in float64, so a memory-mapped cache is read once
        and never copied whole."""
        index = torch.arange(len(coefficients)) if rows is None else rows
        total = torch.zeros(self.coefficient_mean.shape, dtype=torch.float64)
        squares = torch.zeros_like(total)
        for start in range(0, len(index), chunk):
            part = coefficients[index[start : start + chunk]].double()
            total += part.sum(dim=0)
            squares += (part * part).sum(dim=0)
        n = len(index)
        mean = total / n
        variance = (squares - n * mean * mean).clamp_min(0) / max(n - 1, 1)
        self.coefficient_mean.copy_(mean.float())
        self.coefficient_std.copy_(variance.sqrt().float().clamp_min(1e-6))
