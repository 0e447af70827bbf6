"""The two IG baselines of the seed study, in the models' input space.

Both models take [0, 1] pixels and normalise inside (`InputNorm`, scattering standardisation),
so a baseline "normalised like the inputs" is simply a [0, 1] image: black is zeros and the
random baseline is uniform noise on [0, 1].
"""

from __future__ import annotations

import torch


def black_baseline(images: torch.Tensor) -> torch.Tensor:
    """All-black images: "no signal" for a model whose inputs are [0, 1] intensities."""
    return torch.zeros_like(images)


def random_baseline(images: torch.Tensor, seed: int) -> torch.Tensor:
    """One seeded uniform-noise image, shared by every image of the batch.

    Sharing one noise image makes an image's attribution independent of the batch it is
    explained in, and the seed makes it the same in every run.
    """
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(images.shape[1:], generator=generator, dtype=torch.float64)
    return noise.to(images.dtype).expand_as(images).contiguous().to(images.device)
