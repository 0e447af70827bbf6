"""One image of the user's, explained for the class the model predicts: what `glasses explain`
draws, with the default XAI settings and a fixed seed, so the same image gives the same figure."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from glasses.config import XAIConfig, XAIMethod
from glasses.labels import CLASS_NAMES
from glasses.xai.methods import MAIN, explain, predicted_targets
from glasses.xai.overlays import method_overlays_figure

SEED = 0


def methods_named(choice: str) -> tuple[XAIMethod, ...]:
    """`all`: the study's methods, each once (`MAIN`); else the one named, dashes or not."""
    return MAIN if choice == "all" else (choice.replace("-", "_"),)


def explained_image_figure(
    model: nn.Module, pixels: np.ndarray, methods: tuple[XAIMethod, ...], title: str
) -> Figure:
    """`pixels` (H x W x 3 in [0, 1]) and each method's map of the predicted class over it."""
    images = torch.from_numpy(pixels.transpose(2, 0, 1)[None].copy())
    targets = predicted_targets(model, images)
    maps = {
        method: explain(model, images, targets, method, XAIConfig(), seed=SEED).maps[0]
        for method in methods
    }
    return method_overlays_figure(pixels, maps, f"{title}: {CLASS_NAMES[int(targets[0])]}")
