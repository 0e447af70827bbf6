"""One entry point for every attribution method, so the pipeline, the sanity check and the
`glasses explain` command all compute a method the same way.

Which class is explained: the image's true label when known (for a glasses image the maps then
show evidence *for glasses*, which is what the ground-truth masks score), else the model's own
prediction.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from glasses.config import XAIConfig, XAIMethod
from glasses.result_format import stored
from glasses.xai.baselines import black_baseline, random_baseline
from glasses.xai.captum_ig import captum_integrated_gradients
from glasses.xai.integrated_gradients import completeness_gap, integrated_gradients
from glasses.xai.lime_map import lime_attributions
from glasses.xai.maps import to_map
from glasses.xai.shap_map import shap_attributions

GRADIENT_METHODS: tuple[XAIMethod, ...] = ("ig", "ig_random", "ig_captum", "ig_captum_random")


@stored
@dataclass
class Explanation:
    method: XAIMethod
    maps: np.ndarray  # N x H x W, colour channels summed (signed)
    raw: np.ndarray | None  # N x 3 x H x W where the method attributes per channel
    gaps: np.ndarray | None  # IG completeness gap or SHAP additivity gap, per image
    seconds: float


def predicted_targets(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(images).argmax(1)


def explain(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    method: XAIMethod,
    config: XAIConfig,
    seed: int,
) -> Explanation:
    """Attributions of `targets` for float [0, 1] `images` (N x 3 x H x W)."""
    started = time.perf_counter()
    raw, gaps = None, None
    if method in GRADIENT_METHODS:
        # Both implementations in `ig_dtype`, so they compare like for like. float32 is the
        # default: on `quick`-trained models it kept scratch and Captum at 1 - r < 1e-14 with
        # the same completeness gaps as float64, 1.6x (ScatNet) to 5x (CNN) faster
        # (`python -m benchmarks.ig_precision`). float64 copies the model first.
        dtype = getattr(torch, config.ig_dtype)
        model = model if dtype == torch.float32 else copy.deepcopy(model).to(dtype)
        images = images.to(dtype)
        baseline = (
            random_baseline(images, seed) if method.endswith("random") else black_baseline(images)
        )
        compute = captum_integrated_gradients if "captum" in method else integrated_gradients
        attributions = compute(
            model,
            images,
            targets,
            baseline,
            steps=config.ig_steps,
            method=config.ig_method,
            batch_size=config.ig_batch_size,
        )
        gaps = completeness_gap(model, images, targets, baseline, attributions).cpu().numpy()
        raw = attributions.float().cpu().numpy()
        maps = np.stack([to_map(a) for a in raw])
    elif method == "lime":
        maps = lime_attributions(model, images, targets, num_samples=config.lime_samples, seed=seed)
    else:
        raw, gaps = shap_attributions(
            model, images, targets, max_evals=config.shap_max_evals, seed=seed
        )
        maps = np.stack([to_map(a) for a in raw])
    return Explanation(method, maps, raw, gaps, time.perf_counter() - started)
