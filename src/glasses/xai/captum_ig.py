"""Captum's Integrated Gradients, the reference the from-scratch version is checked against.

It explains the same score (the target class's logit, via `target=`) with the same baselines,
Riemann rule and step count, so any difference between the two is implementation error.
"""

from __future__ import annotations

import torch
from captum.attr import IntegratedGradients
from torch import nn

from glasses.xai.integrated_gradients import Method, Targets, as_targets


def captum_integrated_gradients(
    model: nn.Module,
    images: torch.Tensor,
    targets: Targets,
    baseline: torch.Tensor,
    *,
    steps: int,
    method: Method = "riemann_trapezoid",
    batch_size: int,
) -> torch.Tensor:
    """Captum IG (N x C x H x W); `batch_size` is Captum's `internal_batch_size`."""
    images = images.detach()
    labels = as_targets(targets, len(images), images.device)
    explainer = IntegratedGradients(model)
    attributions = explainer.attribute(
        images,
        baselines=baseline.detach().expand_as(images),
        target=labels.tolist(),
        n_steps=steps,
        method=method,
        internal_batch_size=max(batch_size, len(images)),
    )
    return attributions.detach()
