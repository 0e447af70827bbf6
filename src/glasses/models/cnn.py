"""The small CNN of the seed study: three conv / max-pool / ReLU blocks, then the shared head.

The convolutions run channels-last (weights and activations): on a 2-core CPU oneDNN's NHWC
kernels made the seed's plain `paper` loop 1.5x and the pipeline's training step (augmentation
included) 1.25x faster than NCHW (`make benchmark`). The head flattens in the usual C, H, W
order, so the weights mean what they meant before.
"""

from __future__ import annotations

import torch
from torch import nn

from glasses.config import CNNConfig
from glasses.models.head import Classifier, InputNorm


class CNN(nn.Module):
    def __init__(self, config: CNNConfig, image_size: int, n_classes: int = 2):
        super().__init__()
        self.image_size = image_size  # travels with the registered model, for `glasses explain`
        self.config = config  # and this, so `glasses.inference` can rebuild it from weights
        blocks: list[nn.Module] = [InputNorm()]
        channels = 3
        for out_channels, kernel in zip(config.channels, config.kernels, strict=True):
            conv = nn.Conv2d(channels, out_channels, kernel_size=kernel)
            nn.init.xavier_normal_(conv.weight)
            nn.init.zeros_(conv.bias)
            blocks += [conv, nn.MaxPool2d(2), nn.ReLU()]
            channels = out_channels
        self.features = nn.Sequential(*blocks).to(memory_format=torch.channels_last)
        in_features = _feature_count(self.features, image_size, config)
        self.head = Classifier(in_features, config.head.hidden, config.head.dropout, n_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images.contiguous(memory_format=torch.channels_last)))


def _feature_count(features: nn.Module, image_size: int, config: CNNConfig) -> int:
    """Flattened feature size, with a message that names the parameters when it collapses."""
    side = image_size
    for kernel in config.kernels:
        side = (side - kernel + 1) // 2
    if side < 1:
        raise ValueError(
            f"cnn.kernels {config.kernels} do not fit data.image_size {image_size}: each block "
            "shrinks the image by kernel-1 and halves it; use smaller kernels or larger images"
        )
    with torch.no_grad():
        return features(torch.zeros(1, 3, image_size, image_size)).flatten(1).shape[1]
