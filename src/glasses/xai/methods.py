"""The attribution methods, one entry each: what a method needs, and the one way to call it.

Every method is `METHODS[name].attribute(model, images, targets, settings, seed)`, on float
[0, 1] `images` (N x 3 x H x W), explaining one class per image (`targets`), and returns an
`Explanation`: N x H x W maps, the N x 3 x H x W values where it attributes per colour channel,
each image's gap of its axiom where it has one, and the seconds it took. The pipeline, the
randomisation check and `glasses explain` look a method up here instead of reading its name, so
another method is one more entry in `METHODS`.

The names are `glasses.config.XAIMethod`'s, as the configuration, the CLI and the MLflow keys
spell them. The configuration cannot import this module (it loads torch, Captum, LIME and SHAP),
so the two lists are checked against each other once, below, when this module loads.

Which class is explained is the caller's choice: the pipeline explains each image's true label
(for a glasses image the maps then show evidence *for glasses*, which is what the ground-truth
masks score), `glasses explain` the model's own prediction (`predicted_targets`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal, get_args

import numpy as np
import torch
from torch import nn

from glasses.config import XAIConfig, XAIMethod
from glasses.families import SPECS, Family
from glasses.xai.baselines import black_baseline, random_baseline
from glasses.xai.captum_ig import captum_integrated_gradients
from glasses.xai.explain import Explanation
from glasses.xai.integrated_gradients import completeness_gap, integrated_gradients
from glasses.xai.lime_map import lime_attributions
from glasses.xai.maps import to_map
from glasses.xai.shap_map import shap_attributions

Absence = Literal["black", "random"]  # a black image, or one seeded uniform-noise image
Gap = Literal["completeness", "additivity"]
# (values, gaps): values N x 3 x H x W for a per-channel method, else N x H x W; gaps N or None.
Compute = Callable[
    [nn.Module, torch.Tensor, torch.Tensor, XAIConfig, int], tuple[np.ndarray, np.ndarray | None]
]


@dataclass(frozen=True)
class MethodSpec:
    name: XAIMethod
    absence: Absence  # what a removed pixel becomes: IG's baseline, LIME's and SHAP's hidden parts
    per_channel: bool  # attributes each colour channel (kept as `raw`), or each pixel
    gap: Gap | None  # the axiom whose per-image gap it reports (IG completeness, SHAP additivity)
    settings: tuple[str, ...]  # the fields of `XAIConfig` it reads; the others cannot change it
    compute: Compute
    # Forward passes per image (a backward pass counted as two): what orders the tasks.
    evaluations: Callable[[XAIConfig], int]
    reference: XAIMethod | None = None  # an independent implementation it must agree with
    compared_with: tuple[XAIMethod, ...] = ()  # plotted against it pixel by pixel, in this order

    def attribute(
        self,
        model: nn.Module,
        images: torch.Tensor,
        targets: torch.Tensor,
        settings: XAIConfig,
        seed: int,
    ) -> Explanation:
        """Attributions of `targets` for float [0, 1] `images` (N x 3 x H x W); a per-channel
        method's maps are the signed sums over the colour channels (`glasses.xai.maps`)."""
        started = time.perf_counter()
        values, gaps = self.compute(model, images, targets, settings, seed)
        if not self.per_channel:
            return Explanation(self.name, values, None, gaps, time.perf_counter() - started)
        maps = np.stack([to_map(v) for v in values])
        return Explanation(self.name, maps, values, gaps, time.perf_counter() - started)


def _integrated_gradients(
    implementation: Callable[..., torch.Tensor],
    absence: Absence,
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    settings: XAIConfig,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Scratch or Captum IG from the `absence` baseline, and its completeness gaps.

    Both implementations run in `ig_dtype`, so they compare like for like. float32 is the
    default: on `quick`-trained models it kept scratch and Captum at 1 - r < 1e-14 with the same
    completeness gaps as float64, 1.6x (ScatNet) to 5x (CNN) faster
    (`python -m benchmarks.ig_precision`). float64 copies the model first.
    """
    dtype = getattr(torch, settings.ig_dtype)
    model = model if dtype == torch.float32 else copy.deepcopy(model).to(dtype)
    images = images.to(dtype)
    baseline = random_baseline(images, seed) if absence == "random" else black_baseline(images)
    attributions = implementation(
        model,
        images,
        targets,
        baseline,
        steps=settings.ig_steps,
        method=settings.ig_method,
        batch_size=settings.ig_batch_size,
    )
    gaps = completeness_gap(model, images, targets, baseline, attributions).cpu().numpy()
    return attributions.float().cpu().numpy(), gaps


def _lime(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, settings: XAIConfig, seed: int
) -> tuple[np.ndarray, None]:
    maps = lime_attributions(
        model,
        images,
        targets,
        num_samples=settings.lime_samples,
        seed=seed,
        batch_size=settings.batch_size,
    )
    return maps, None


def _shap(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, settings: XAIConfig, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    return shap_attributions(model, images, targets, max_evals=settings.shap_max_evals, seed=seed)


def _ig_spec(
    name: XAIMethod,
    implementation: Callable[..., torch.Tensor],
    absence: Absence,
    reference: XAIMethod | None = None,
    compared_with: tuple[XAIMethod, ...] = (),
) -> MethodSpec:
    return MethodSpec(
        name,
        absence=absence,
        per_channel=True,
        gap="completeness",
        settings=("ig_steps", "ig_method", "ig_batch_size", "ig_dtype"),
        compute=partial(_integrated_gradients, implementation, absence),
        evaluations=lambda settings: 3 * settings.ig_steps + 2,  # and the completeness gap's
        reference=reference,
        compared_with=compared_with,
    )


METHODS: dict[XAIMethod, MethodSpec] = {
    "ig": _ig_spec(
        "ig",
        integrated_gradients,
        "black",
        reference="ig_captum",
        compared_with=("ig_captum", "shap", "lime"),
    ),
    "ig_random": _ig_spec(
        "ig_random", integrated_gradients, "random", reference="ig_captum_random"
    ),
    "ig_captum": _ig_spec("ig_captum", captum_integrated_gradients, "black"),
    "ig_captum_random": _ig_spec("ig_captum_random", captum_integrated_gradients, "random"),
    "lime": MethodSpec(
        "lime",
        absence="black",
        per_channel=False,
        gap=None,
        settings=("lime_samples", "batch_size"),
        compute=_lime,
        evaluations=lambda settings: settings.lime_samples,
    ),
    "shap": MethodSpec(
        "shap",
        absence="black",
        per_channel=True,
        gap="additivity",
        settings=("shap_max_evals",),
        compute=_shap,
        evaluations=lambda settings: settings.shap_max_evals + 2,  # and the additivity gap's
        compared_with=("lime",),
    ),
}

if tuple(METHODS) != get_args(XAIMethod):
    raise ImportError(
        f"glasses.xai.methods registers {tuple(METHODS)} but glasses.config.XAIMethod names "
        f"{get_args(XAIMethod)}: add or remove a method in both, in the same order"
    )

# The study's methods, each once: those that remove a pixel by making it black. IG from the
# noise baseline repeats IG to show how much it depends on its baseline. `glasses explain
# --method all` draws these.
MAIN: tuple[XAIMethod, ...] = tuple(n for n, s in METHODS.items() if s.absence == "black")
# The pairwise scatter figure's pairs, in its order.
SCATTER_PAIRS: tuple[tuple[XAIMethod, XAIMethod], ...] = tuple(
    (name, other) for name, spec in METHODS.items() for other in spec.compared_with
)


def explain(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    method: XAIMethod,
    settings: XAIConfig,
    seed: int,
) -> Explanation:
    """`METHODS[method].attribute(...)`: the one way the pipeline and the CLI run a method."""
    return METHODS[method].attribute(model, images, targets, settings, seed)


def explanation_cost(family: Family, method: XAIMethod, images: int, settings: XAIConfig) -> float:
    """Relative cost of explaining `images` images with `method` on a `family` model: how the
    stage orders its tasks, the longest first."""
    return SPECS[family].forward_cost * METHODS[method].evaluations(settings) * images


def predicted_targets(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The class `model` predicts for each image: what `glasses explain` explains."""
    with torch.no_grad():
        return model(images).argmax(1)
