"""On-the-fly training augmentation, drawn from the fold's own random generator.

The seed study distorted every image once, before cross-validation; here each epoch sees new
random distortions of the training folds only. torchvision's transforms draw from torch's global
generator, which concurrent fold threads would share, so the parameters come from an explicit
`torch.Generator` instead and a fold's augmentations depend on its seed alone.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from glasses.config import AugmentConfig


def _uniform(n: int, spread: float, generator: torch.Generator, centre: float = 0.0):
    return centre + (torch.rand(n, generator=generator) * 2 - 1) * spread


def augment(
    images: torch.Tensor, config: AugmentConfig, generator: torch.Generator
) -> torch.Tensor:
    """Rotation, flips and colour jitter of a float [0, 1] batch (B x 3 x H x W)."""
    n = images.shape[0]
    images = images.clone()  # flips below write in place; never into the caller's batch
    images = _rotate(images, _uniform(n, config.rotation_degrees, generator))
    for probability, dim in ((config.hflip, 3), (config.vflip, 2)):
        flip = torch.rand(n, generator=generator) < probability
        if flip.any():
            images[flip] = images[flip].flip(dim)
    images = images * _uniform(n, config.brightness, generator, 1.0).view(-1, 1, 1, 1)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = mean + (images - mean) * _uniform(n, config.contrast, generator, 1.0).view(-1, 1, 1, 1)
    gray = TF.rgb_to_grayscale(images.clamp(0, 1), num_output_channels=3)
    saturation = _uniform(n, config.saturation, generator, 1.0).view(-1, 1, 1, 1)
    images = (gray + (images - gray) * saturation).clamp(0, 1)
    if config.hue > 0:
        shifts = _uniform(n, config.hue, generator)
        images = torch.stack(
            [TF.adjust_hue(image, float(s)) for image, s in zip(images, shifts, strict=True)]
        )
    return images


def _rotate(images: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Batched rotation about the centre; corners fill with black, as RandomRotation does."""
    if not bool(degrees.abs().gt(0).any()):
        return images
    radians = degrees * math.pi / 180
    cos, sin = torch.cos(radians), torch.sin(radians)
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, padding_mode="zeros", align_corners=False)
