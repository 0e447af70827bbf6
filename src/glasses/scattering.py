"""Scattering coefficients, computed once per image set and cached on disk.

The filters are fixed wavelets, so an image's coefficients never change: every fold, every epoch
and every later run on the same pixels (same data, size, J and L) reuses them. The cache key is a
hash of the decoded pixels themselves, so a changed image can never hit a stale entry. Each entry
carries the SHA-256 of its coefficients and is checked on every read: a damaged one (truncated,
altered, unreadable) is recomputed and replaced, with a `CacheWarning` naming the file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from glasses.models.scatnet import coefficient_count, scattering_transform

CACHE_VERSION = "2"  # 2: .npz with a checksum


class CacheWarning(UserWarning):
    """A cache entry was damaged and is being recomputed; the message names the file."""


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
    """Load the coefficients for these pixels, computing and storing them on a miss or when the
    stored entry fails its checks.

    Written to a temporary file and renamed, so a killed run never leaves a truncated entry
    under the final name; the checks catch what the file system lost anyway.
    """
    path = cache_dir / "scattering" / f"{cache_key(pixels, J, L)}.npz"
    if path.exists():
        expected = (len(pixels), pixels.shape[1], coefficient_count(J, L))
        stored, problem = _load(path, expected)
        if stored is not None:
            return CachedCoefficients(torch.from_numpy(stored), path, hit=True)
        warnings.warn(
            f"scattering cache entry {path} is damaged ({problem}); recomputing it",
            CacheWarning,
            stacklevel=2,
        )
    coefficients = compute_coefficients(pixels, J, L, device=device)
    _store(path, coefficients.numpy())
    return CachedCoefficients(coefficients, path, hit=False)


def _load(path: Path, leading: tuple[int, ...]) -> tuple[np.ndarray | None, str]:
    """The entry's coefficients if they have the expected leading shape and checksum, else
    None and what is wrong."""
    try:
        with np.load(path) as entry:
            coefficients, checksum = entry["coefficients"], entry["sha256"].tobytes()
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        return None, f"unreadable: {error}"
    if coefficients.dtype != np.float32 or coefficients.shape[: len(leading)] != leading:
        return None, f"{coefficients.dtype} {coefficients.shape}, expected float32 {leading} + …"
    if hashlib.sha256(coefficients.tobytes()).digest() != checksum:
        return None, "checksum mismatch"
    return coefficients, ""


def _store(path: Path, coefficients: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    checksum = np.frombuffer(hashlib.sha256(coefficients.tobytes()).digest(), dtype=np.uint8)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, coefficients=coefficients, sha256=checksum)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
