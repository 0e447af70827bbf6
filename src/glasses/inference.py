"""A trained model as users get it: rebuilt from its description and weights, fed image files.

A registered model is stored as a JSON description (family, image size, the family's settings)
plus a tensors-only state dict, so loading it never unpickles anything: the module is rebuilt
from this package's own classes. Serving and `glasses predict` share the preprocessing here.

`logits` is the one way a model is run on images: the registry's held-out check, the re-run's
drift columns, cross-validation scores, serving and `glasses predict` all go through it.
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
from glasses.training import Rows, pixels_to_input, predict, resolve_device

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


def logits(
    model: nn.Module,
    images: torch.Tensor,
    rows: np.ndarray | None = None,
    *,
    stored: bool = False,
    batch_size: int = 64,
    device: torch.device | None = None,
) -> torch.Tensor:
    """N x 2 logits (columns in `CLASS_NAMES` order, on the CPU) for `rows` of `images` (default:
    all, in order; the others are never copied), batch by batch in eval mode without gradients.

    `images` are N x 3 x S x S: uint8 pixels as data sets hold them, or floats in [0, 1]. With
    `stored`, they are instead the family's stored inputs (`FamilySpec.inputs`): for the ScatNet
    its cached scattering coefficients, which give the logits of the images without recomputing
    the transform. Runs on `device` (default: CUDA when present); the model ends on the CPU.
    """
    if stored:
        spec = family_of(model)
        classify, to_input = spec.classifier(model), spec.to_input
    else:
        classify, to_input = model, _images_as_input
    device = device or resolve_device()
    model.to(device).eval()
    chosen = images if rows is None else Rows.of(images, None, rows)
    try:
        return predict(classify, chosen, lambda batch, _: to_input(batch), batch_size, device)
    finally:
        model.cpu()


def probabilities(
    model: nn.Module,
    images: torch.Tensor,
    *,
    batch_size: int = 64,
    device: torch.device | None = None,
) -> torch.Tensor:
    """N x 2 softmax probabilities of `logits` (same images, same batches)."""
    return torch.softmax(logits(model, images, batch_size=batch_size, device=device), dim=1)


def class_probabilities(model: nn.Module, pixels: list[np.ndarray]) -> np.ndarray:
    """N x 2 softmax probabilities (columns in `CLASS_NAMES` order) for H x W x 3 images in
    [0, 1] (as `image_pixels` reads them): one batch, on the CPU, as a request is served."""
    images = torch.from_numpy(np.stack(pixels).transpose(0, 3, 1, 2).copy())
    cpu = torch.device("cpu")
    return probabilities(model, images, batch_size=len(images), device=cpu).numpy()


def _images_as_input(batch: torch.Tensor) -> torch.Tensor:
    """uint8 pixels as [0, 1] floats; floats are [0, 1] images already."""
    return batch if batch.is_floating_point() else pixels_to_input(batch)


def prediction_table(probabilities: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """`label`, its `probability`, and `p_<class>` for every class, one row per image."""
    columns = [f"p_{name.replace(' ', '_')}" for name in classes]
    table = pd.DataFrame(probabilities, columns=columns)
    table.insert(0, "probability", probabilities.max(1))
    table.insert(0, "label", [classes[i] for i in probabilities.argmax(1)])
    return table
