"""A trained model as users get it: rebuilt from its description and weights, fed image files.

A registered model is stored as a JSON description (family, image size, the family's settings)
plus a tensors-only state dict, so loading it never unpickles anything: the module is rebuilt
from this package's own classes. Serving and `glasses predict` share the preprocessing here.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn

from glasses.data.images import to_rgb
from glasses.families import SPECS, family_of
from glasses.labels import CLASS_NAMES

SPEC_VERSION = 1
SPEC, WEIGHTS = "spec", "weights"  # artifact names: spec.json, weights.pt


def model_spec(model: nn.Module) -> dict[str, Any]:
    """What rebuilds `model`'s architecture: JSON-able, stored beside its weights."""
    return {
        "spec_version": SPEC_VERSION,
        "family": family_of(model).name,
        "image_size": model.image_size,
        "config": model.config.model_dump(mode="json"),
        "classes": list(CLASS_NAMES),
    }


def weights_digest(model: nn.Module) -> str:
    """Hash of a model's weights: the same training gives the same digest in any run."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def build_from_spec(spec: dict[str, Any], state: dict[str, torch.Tensor]) -> nn.Module:
    """The module described by `spec` with the weights `state`, in eval mode on the CPU."""
    if spec.get("spec_version") != SPEC_VERSION:
        raise ValueError(
            f"model description version {spec.get('spec_version')!r} is not {SPEC_VERSION}; "
            "load it with the glasses version that registered it, or re-register it"
        )
    family = SPECS[spec["family"]]
    model = family.build(family.settings_model.model_validate(spec["config"]), spec["image_size"])
    model.load_state_dict(state)
    return model.eval()


def image_pixels(content: bytes | Path, size: int) -> np.ndarray:
    """An image file (path or bytes) as size x size x 3 floats in [0, 1], resized bilinearly."""
    source = content if isinstance(content, Path) else io.BytesIO(content)
    with Image.open(source) as opened:
        rgb = to_rgb(opened)
    resized = rgb.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32) / 255


def class_probabilities(model: nn.Module, pixels: list[np.ndarray]) -> np.ndarray:
    """N x 2 softmax probabilities (columns in `CLASS_NAMES` order) for H x W x 3 images."""
    images = torch.from_numpy(np.stack(pixels).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        return torch.softmax(model.eval()(images), dim=1).numpy()


def prediction_table(probabilities: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """`label`, its `probability`, and `p_<class>` for every class, one row per image."""
    columns = [f"p_{name.replace(' ', '_')}" for name in classes]
    table = pd.DataFrame(probabilities, columns=columns)
    table.insert(0, "probability", probabilities.max(1))
    table.insert(0, "label", [classes[i] for i in probabilities.argmax(1)])
    return table
