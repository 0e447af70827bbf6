"""Integrated Gradients from scratch, in the seed study's five steps.

IG(x)_i = (x_i - x'_i) * integral_0^1 dF(x' + a (x - x')) / dx_i da, where F is the LOGIT of
the explained class (the same score Captum explains with `target=`), so that the completeness
axiom reads sum_i IG_i = F(x) - F(x') on an unbounded score, not on a saturating probability.

The Riemann rules reproduce Captum's `approximation_methods` exactly (the same alphas bit for
bit, the same weights in exact arithmetic), which is what lets the from-scratch version agree
with Captum to float precision at the same step count. That includes a quirk of Captum's
trapezoid rule: it puts `steps` points on [0, 1] (spacing 1/(steps-1)) but weights them
1/steps, halved at the ends, so its weights sum to 1 - 1/steps and every attribution comes out
scaled by that factor. Its completeness gap is then about |F(x) - F(x')| / steps: it shrinks as
the step count grows, but at 50 steps it is a 2 % bias that the left, right and middle rules
(weights summing to 1) do not have.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import torch
from torch import nn

Method = Literal["riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"]
METHODS: tuple[str, ...] = get_args(Method)
Targets = int | Sequence[int] | torch.Tensor


def alphas(steps: int, method: Method = "riemann_trapezoid") -> tuple[torch.Tensor, torch.Tensor]:
    """Step 1: the points on the straight path and their Riemann weights, as Captum builds them.

    The alphas are Captum's own float32 values, bit for bit. The path integrand jumps where an
    interpolated image crosses a ReLU, max-pooling or scattering-modulus kink, so an alpha one
    float32 ulp away can land on the other side: with alphas merely rounded from float64, 4 of 16
    quick-model explanations (8 images, both models) differed from Captum's by 6e-5 to 1.4e-3
    (relative L2) instead of 1e-7. The weights are exact in float64 (Captum rounds them to
    float32, a smooth 1e-8 effect), so a linear model's IG equals (x - x') w sum(weights) to
    float64 precision.
    """
    if method not in METHODS:
        raise ValueError(f"unknown IG method {method!r}; choose one of {METHODS}")
    if steps < 2:
        raise ValueError(f"IG needs at least 2 steps, got {steps}")
    ranges = {
        "riemann_left": (0.0, 1 - 1 / steps),
        "riemann_right": (1 / steps, 1.0),
        "riemann_middle": (1 / (2 * steps), 1 - 1 / (2 * steps)),
        "riemann_trapezoid": (0.0, 1.0),
    }
    points = torch.linspace(*ranges[method], steps, dtype=torch.float32).double()
    weights = torch.full((steps,), 1 / steps, dtype=torch.float64)
    if method == "riemann_trapezoid":
        weights[[0, -1]] /= 2
    return points, weights


def interpolate(images: torch.Tensor, baseline: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Step 2: x' + a (x - x') for every alpha and image, alpha-major (k*N x C x H x W).

    Contiguous, because kymatio's scattering refuses strided tensors.
    """
    scale = points.to(images).view(-1, *([1] * images.dim()))
    path = baseline + scale * (images - baseline)
    return path.reshape(-1, *images.shape[1:]).contiguous()


def target_logits(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """F: each image's logit of its own target class."""
    return model(images).gather(1, targets.reshape(-1, 1)).squeeze(1)


def gradients(model: nn.Module, path: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Step 3: dF/dx at every interpolated image, in one forward and one backward pass.

    Summing the logits before the backward pass is exact: each image's logit depends on that
    image alone (eval mode, no batch statistics).
    """
    with torch.enable_grad():
        path = path.detach().requires_grad_()
        (grad,) = torch.autograd.grad(target_logits(model, path, targets).sum(), path)
    return grad


def riemann_sum(grads: torch.Tensor, weights: torch.Tensor, n_images: int) -> torch.Tensor:
    """Step 4: the weighted sum over alphas of alpha-major gradients (k*N x ...) -> N x ..."""
    stacked = grads.view(-1, n_images, *grads.shape[1:])
    return torch.tensordot(weights.to(grads), stacked, dims=1)


def scale(average: torch.Tensor, images: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
    """Step 5: multiply the path-averaged gradient by the displacement x - x'."""
    return average * (images - baseline)


def integrated_gradients(
    model: nn.Module,
    images: torch.Tensor,
    targets: Targets,
    baseline: torch.Tensor,
    steps: int = 50,
    method: Method = "riemann_trapezoid",
    batch_size: int = 64,
) -> torch.Tensor:
    """IG of each image's target logit w.r.t. its pixels (N x C x H x W, like `images`).

    `batch_size` counts interpolated images per forward/backward pass, as Captum's
    `internal_batch_size` does: each pass takes max(1, batch_size // N) alphas for all N images,
    and its gradients are summed into the total at once, so memory stays bounded by one batch.
    """
    images = images.detach()
    baseline = baseline.detach().expand_as(images)
    labels = as_targets(targets, len(images), images.device)
    points, weights = alphas(steps, method)
    per_pass = max(1, batch_size // len(images))
    total = torch.zeros_like(images)
    for start in range(0, steps, per_pass):
        chunk = slice(start, start + per_pass)
        path = interpolate(images, baseline, points[chunk])
        grads = gradients(model, path, labels.repeat(len(points[chunk])))
        total += riemann_sum(grads, weights[chunk], len(images))
    return scale(total, images, baseline)


def completeness_gap(
    model: nn.Module,
    images: torch.Tensor,
    targets: Targets,
    baseline: torch.Tensor,
    attributions: torch.Tensor,
) -> torch.Tensor:
    """Per image |sum attributions - (F(x) - F(x'))|: how far IG is from its own axiom.

    Nonzero only through the quadrature error, so it measures whether the step count suffices.
    """
    labels = as_targets(targets, len(images), images.device)
    with torch.no_grad():
        difference = target_logits(model, images, labels) - target_logits(
            model, baseline.expand_as(images).contiguous(), labels
        )
    return (attributions.flatten(1).sum(1) - difference).abs()


def as_targets(targets: Targets, count: int, device: torch.device) -> torch.Tensor:
    """One class index per image; a single int explains that class for every image."""
    labels = torch.as_tensor(targets, dtype=torch.long, device=device).reshape(-1)
    if labels.numel() == 1:
        labels = labels.expand(count)
    if labels.numel() != count:
        raise ValueError(f"got {labels.numel()} targets for {count} images")
    return labels
