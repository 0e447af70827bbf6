"""Scattering coefficients, computed once per image set and cached on disk.

The filters are fixed wavelets, so an image's coefficients never change: every fold, every epoch
and every later run on the same pixels (same data, size, J and L) reuses them. The cache key is a
hash of the decoded pixels themselves, so a changed image can never hit a stale entry.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from glasses.models.scatnet import scattering_transform

CACHE_VERSION = "1"


@dataclass
class CachedCoefficients:
    coefficients: torch.Tensor  # float32, N x 3 x K x side x side
    path: Path
    hit: bool


def compute_coefficients(
    pixels: np.ndarray, J: int, L: int, batch_size: int = 64, device: str = "cpu"
) -> torch.Tensor:
    """Coefficients of uint8 N x 3 x S x S images scaled to [0, 1], as the models see them."""
    pixels = np.ascontiguousarray(pixels)  # kymatio refuses strided tensors
    transform = scattering_transform(J, L, pixels.shape[-1]).to(device)
    parts = []
    with torch.no_grad():
        for start in range(0, len(pixels), batch_size):
            batch = torch.from_numpy(pixels[start : start + batch_size]).to(device).float() / 255
            parts.append(transform(batch).cpu())
    return torch.cat(parts)


def cache_key(pixels: np.ndarray, J: int, L: int) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(pixels).data)
    digest.update(f"J={J};L={L};shape={pixels.shape};v={CACHE_VERSION}".encode())
    return digest.hexdigest()[:24]


def cached_coefficients(
    pixels: np.ndarray, J: int, L: int, cache_dir: Path, device: str = "cpu"
) -> CachedCoefficients:
    """Load the coefficients for these pixels, computing and storing them on a miss.

    Written to a temporary file and renamed, so a killed run never leaves a truncated entry.
    """
    path = cache_dir / "scattering" / f"{cache_key(pixels, J, L)}.npy"
    if path.exists():
        return CachedCoefficients(torch.from_numpy(np.load(path)), path, hit=True)
    coefficients = compute_coefficients(pixels, J, L, device=device)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.save(stream, coefficients.numpy())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return CachedCoefficients(coefficients, path, hit=False)
