"""Scattering coefficients, computed once per image set and cached on disk.

The filters are fixed wavelets, so an image's coefficients never change: every fold, every epoch
and every later run on the same pixels (same data, size, J and L) reuses them. The cache key is a
hash of the decoded pixels themselves, so a changed image can never hit a stale entry. Each entry
has the SHA-256 of its file beside it and is checked on every read: a damaged one (truncated,
altered, unreadable) is recomputed and replaced, with a `CacheWarning` naming the file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from glasses.cache_files import load_array, store_array, warn_damaged
from glasses.models.scatnet import coefficient_count, scattering_transform

CACHE_VERSION = "4"  # 4: .npy (memory-mapped on read) with its .npy.sha256 beside it


@dataclass
class CachedCoefficients:
    coefficients: torch.Tensor  # float32, N x 3 x K x side x side; memory-mapped from `path`
    path: Path
    hit: bool


def _compute_into(
    out: np.ndarray, pixels: np.ndarray, J: int, L: int, batch_size: int, device: str
) -> None:
    pixels = np.ascontiguousarray(pixels)  # kymatio refuses strided tensors
    transform = scattering_transform(J, L, pixels.shape[-1]).to(device)
    with torch.no_grad():
        for start in range(0, len(pixels), batch_size):
            batch = torch.from_numpy(pixels[start : start + batch_size]).to(device).float() / 255
            out[start : start + batch_size] = transform(batch).cpu().numpy()


def _shape(pixels: np.ndarray, J: int, L: int) -> tuple[int, ...]:
    n, channels, side = len(pixels), pixels.shape[1], pixels.shape[-1] // 2**J
    return (n, channels, coefficient_count(J, L), side, side)


def compute_coefficients(
    pixels: np.ndarray, J: int, L: int, batch_size: int = 64, device: str = "cpu"
) -> torch.Tensor:
    """Coefficients of uint8 N x 3 x S x S images scaled to [0, 1], as the models see them."""
    out = np.empty(_shape(pixels, J, L), dtype=np.float32)
    _compute_into(out, pixels, J, L, batch_size, device)
    return torch.from_numpy(out)


def cache_key(pixels: np.ndarray, J: int, L: int) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(pixels).data)
    digest.update(f"J={J};L={L};shape={pixels.shape};v={CACHE_VERSION}".encode())
    return digest.hexdigest()[:24]


def cached_coefficients(
    pixels: np.ndarray, J: int, L: int, cache_dir: Path, device: str = "cpu"
) -> CachedCoefficients:
    """The coefficients for these pixels, memory-mapped from the cache, computing and storing
    them on a miss or when the stored entry fails its checks.

    Memory-mapped, so a run holds only the pages it reads (the `paper` cache is about 5 GB) and
    concurrent readers (threads, or Dask workers on this machine) share them. Written and checked
    by `glasses.cache_files`: a killed run never leaves a truncated entry, a damaged one is
    recomputed.
    """
    path = entry_path(cache_dir, cache_key(pixels, J, L))
    expected = _shape(pixels, J, L)
    if path.exists():
        stored, problem = load_array(path, expected, np.float32)
        if stored is not None:
            return CachedCoefficients(torch.from_numpy(stored), path, hit=True)
        warn_damaged("scattering", path, problem)
    store_array(
        path, expected, np.float32, lambda out: _compute_into(out, pixels, J, L, 64, device)
    )
    stored, problem = load_array(path, expected, np.float32)
    assert stored is not None, problem
    return CachedCoefficients(torch.from_numpy(stored), path, hit=False)


def entry_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / "scattering" / f"{key}.npy"
