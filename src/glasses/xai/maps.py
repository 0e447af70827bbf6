"""The aggregation and normalisation every attribution comparison and figure uses.

Colour-channel aggregation: a pixel's attribution is the SIGNED SUM over its three colour
channels (`to_map`). IG and SHAP attribute the score to each channel and both are additive, so
the sum keeps their completeness (the map still adds up to the explained score difference) and
keeps the sign: evidence for the class and evidence against it do not cancel into "important".
LIME's maps are per pixel already.

Normalisation: each map is divided by its own maximum absolute value (`normalise`), so values
lie in [-1, 1], the most important pixel is at +-1, zero stays zero and signs are kept. Methods
with different units (logit vs probability) and models with different logit scales become
comparable in shape, which is all the figures and the agreement statistics compare.
"""

from __future__ import annotations

import numpy as np
import torch


def to_map(attributions: np.ndarray | torch.Tensor) -> np.ndarray:
    """N x 3 x H x W -> N x H x W, or 3 x H x W -> H x W: signed sum over colour channels."""
    values = as_numpy(attributions)
    if values.ndim not in (3, 4):
        raise ValueError(f"expected 3 x H x W or N x 3 x H x W attributions, got {values.shape}")
    return values.sum(axis=-3)


def normalise(maps: np.ndarray | torch.Tensor) -> np.ndarray:
    """Each H x W map (the last two axes) divided by its own max |value|, into [-1, 1], float64.

    An all-zero map stays zero rather than becoming NaN: "no attribution" is an answer.
    """
    values = as_numpy(maps).astype(np.float64)
    scale = np.abs(values).max(axis=(-2, -1), keepdims=True)
    return np.divide(values, scale, out=np.zeros_like(values), where=scale > 0)


def as_numpy(values: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)
