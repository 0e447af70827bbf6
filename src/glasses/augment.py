"""On-the-fly training augmentation, drawn from the fold's own random generator.

The seed study distorted every image once, before cross-validation; here each epoch sees new
random distortions of the training folds only. torchvision's transforms draw from torch's global
generator, which concurrent fold threads would share, so the parameters come from an explicit
`torch.Generator` instead and a fold's augmentations depend on its seed alone.

Every step is one batched tensor expression per distortion, per-image parameters broadcast: on
a CPU the CNN's training step pays for augmentation in full (`make benchmark`), and torchvision's
per-image hue adjustment was most of it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from glasses.config import AugmentConfig

# Where each of R, G, B peaks on the hue circle, in sixths of a turn (see `shift_hue`).
_HUE_CENTRES = torch.tensor([0.0, 2.0, 4.0]).view(1, 3, 1, 1)


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
    brightness = _uniform(n, config.brightness, generator, 1.0).view(-1, 1, 1, 1)
    contrast = _uniform(n, config.contrast, generator, 1.0).view(-1, 1, 1, 1)
    # Brightness, then contrast about the brightened mean, as one affine map per image.
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = torch.addcmul(brightness * mean * (1 - contrast), images, brightness * contrast)
    gray = grayscale(images.clamp(0, 1))
    saturation = _uniform(n, config.saturation, generator, 1.0).view(-1, 1, 1, 1)
    images = torch.lerp(gray, images, saturation).clamp_(0, 1)
    if config.hue > 0:
        images = shift_hue(images, _uniform(n, config.hue, generator))
    return images


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """Each image's luma (ITU-R 601) in all three channels: torchvision's
    `rgb_to_grayscale(images, 3)`, term for term, so that the library needs no torchvision (its
    PyPI build cannot be imported beside the CPU build of torch that the container image takes).
    """
    red, green, blue = images.unbind(1)
    luma = red.mul(0.2989).add_(green, alpha=0.587).add_(blue, alpha=0.114)
    return luma.unsqueeze(1).expand_as(images)


def shift_hue(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Each image's hue turned by its `shifts` entry (fractions of a turn), saturation and value
    kept: torchvision's `adjust_hue` (HSV), for a whole batch at once.

    In HSV each channel is min + chroma * f(hue), f a trapezoid on the hue circle peaking at the
    channel's own colour; so only the hue is computed, turned, and put back through f.
    """
    red, green, blue = images.unbind(1)
    # Element-wise rather than `aminmax(dim=1)`, which reduces across NCHW planes slowly.
    low = torch.minimum(torch.minimum(red, green), blue)
    high = torch.maximum(torch.maximum(red, green), blue)
    chroma = high - low
    divisor = torch.where(chroma > 0, chroma, torch.ones_like(chroma))  # grey: hue is moot
    sixths = torch.where(
        high == red,
        (green - blue) / divisor,
        torch.where(high == green, (blue - red) / divisor + 2, (red - green) / divisor + 4),
    )
    sixths = (sixths + 6 * shifts.view(-1, 1, 1)).remainder_(6).unsqueeze(1)
    distance = (sixths - _HUE_CENTRES).abs_()
    distance = torch.minimum(distance, 6 - distance)  # around the circle
    weight = (2 - distance).clamp_(0, 1)
    return torch.addcmul(low.unsqueeze(1), chroma.unsqueeze(1), weight)


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
